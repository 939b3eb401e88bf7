"""Rank and separation of duties on tasks that are not approvals (a review only a Superintendent may do)."""

from __future__ import annotations

import sqlalchemy as sa
from api_support import AUTHORISER, INSPECTOR, Api, Person, assert_problem, deploy, start_case

from engine.container import Services
from engine.db import transaction
from engine.models import HumanTask, ProcessInstance

SUPT_APPLICANT = Person("supt.cole", roles=("authorising_officer",), rank="superintendent", name="Supt Cole")
SUPT_ON_TEAM = Person("supt.ray", roles=("authorising_officer",), rank="superintendent", name="Supt Ray")


def _review_task(services: Services, **variables: object) -> tuple[str, str]:
    deploy(services, "api_ranked_review.bpmn")
    instance_id = start_case(services, "api_ranked_review", **variables)
    with transaction(services.sessions) as session:
        task_id = session.scalar(sa.select(HumanTask.id).where(HumanTask.instance_id == instance_id))
    assert task_id is not None
    return instance_id, task_id


def test_a_ranked_task_refuses_a_lower_rank_and_the_excluded_person(api: Api, services: Services) -> None:
    instance_id, task_id = _review_task(services, applicant=SUPT_APPLICANT.subject, team=[])
    complete = f"/api/v1/tasks/{task_id}/complete"

    low = assert_problem(api.post(complete, INSPECTOR, json={"data": {}}), 403, "rank-too-low")
    assert "Superintendent" in low["detail"]
    assert_problem(api.post(f"/api/v1/tasks/{task_id}/claim", INSPECTOR), 403, "rank-too-low")
    own = assert_problem(api.post(complete, SUPT_APPLICANT, json={"data": {}}), 403, "separation-of-duties")
    assert "separation of duties" in own["detail"]

    done = api.post(complete, AUTHORISER, json={"data": {}})
    assert done.status_code == 200, done.get_data(as_text=True)
    assert done.get_json()["completed_by"] == AUTHORISER.subject
    with transaction(services.sessions) as session:
        instance = session.get(ProcessInstance, instance_id)
        assert instance is not None
        assert instance.status == "completed"


def test_a_team_member_may_take_a_flag_policy_task_and_the_record_shows_it(
    api: Api, services: Services
) -> None:
    _, task_id = _review_task(services, applicant="dc.jones", team=[SUPT_ON_TEAM.subject])
    done = api.post(f"/api/v1/tasks/{task_id}/complete", SUPT_ON_TEAM, json={"data": {}})
    assert done.status_code == 200, done.get_data(as_text=True)
    with transaction(services.sessions) as session:
        task = session.get(HumanTask, task_id)
        assert task is not None
        assert task.flagged is True
