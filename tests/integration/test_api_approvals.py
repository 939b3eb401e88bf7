"""Approvals over HTTP: who is offered a decision, rank and separation of duties, flagged team members."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from api_support import (
    APPLICANT,
    APPROVAL_FILES,
    AUTHORISER,
    FIXTURES,
    INSPECTOR,
    Api,
    assert_problem,
    deploy,
    open_tasks,
    start_case,
)

from engine.clock import FrozenClock
from engine.container import Services
from engine.db import transaction
from engine.instances import InstanceService
from engine.models import AuditEvent, HumanTask, ProcessInstance
from engine.worker import TimerWorker

TEAM_MEMBER = AUTHORISER.but(subject="supt.team", name="Supt Team")
APPLICANT_AS_AUTHORISER = APPLICANT.but(roles=("authorising_officer",), rank="chief_superintendent")
RATIONALE = "Necessary and proportionate: the intrusion is limited to public places for fourteen days."


def applied(api: Api, services: Services, key: str = "api_approval") -> dict[str, Any]:
    """A case whose application was submitted by DC Jones, with Supt Team on the investigation team."""
    instance_id = start_case(services, key)
    [apply] = open_tasks(api, APPLICANT, process_key=key)
    response = api.post(
        f"/api/v1/tasks/{apply['id']}/complete",
        APPLICANT,
        json={"data": {"operation": "Kestrel", "team": ["supt.team"]}},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    with transaction(services.sessions) as session:
        task = session.scalars(
            sa.select(HumanTask).where(HumanTask.instance_id == instance_id, HumanTask.status == "ready")
        ).one()
        return {"instance_id": instance_id, "task_id": task.id}


@pytest.fixture
def case(api: Api, services: Services) -> dict[str, Any]:
    deploy(services, *APPROVAL_FILES)
    return applied(api, services)


def approvals(api: Api, person: Any) -> list[dict[str, Any]]:
    response = api.get("/api/v1/approvals", person)
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(response.get_json()["items"])


def decide(api: Api, person: Any, task_id: str, **body: Any) -> Any:
    payload = {"decision": "granted", "rationale": RATIONALE, **body}
    return api.post(f"/api/v1/approvals/{task_id}/decision", person, json=payload)


def test_the_approval_is_offered_only_to_those_who_may_decide_it(
    api: Api, services: Services, case: dict[str, Any]
) -> None:
    [offered] = approvals(api, AUTHORISER)
    assert offered["id"] == case["task_id"]
    assert offered["summary"] == "Authorise Kestrel"
    assert offered["required_rank"] == "superintendent"
    assert offered["priority"] == 90
    assert offered["will_be_flagged"] is False
    # The process's 72-hour boundary timer closes the approval window.
    assert offered["expires_at"] == (services.clock.now() + timedelta(hours=72)).isoformat()
    assert approvals(api, INSPECTOR) == []  # rank too low
    assert approvals(api, APPLICANT_AS_AUTHORISER) == []  # the applicant
    [for_team] = approvals(api, TEAM_MEMBER)  # the process allows the team, flagged
    assert for_team["will_be_flagged"] is True
    assert for_team["flag_reasons"] == ["the decision maker is a member of the investigation team"]
    assert approvals(api, AUTHORISER.but(units=("MIT-South",))) == []
    assert approvals(api, AUTHORISER.but(clearance="OFFICIAL")) == []
    detail = api.get(f"/api/v1/process-instances/{case['instance_id']}", APPLICANT).get_json()
    [timer] = detail["timers"]
    assert (timer["element_id"], timer["interrupting"], timer["attached_to_task_id"]) == (
        "lapse",
        True,
        case["task_id"],
    )
    assert timer["due_at"] == offered["expires_at"]


def test_a_decision_lands_in_the_case_data_and_the_audit_trail(
    api: Api, services: Services, case: dict[str, Any]
) -> None:
    response = decide(api, AUTHORISER, case["task_id"], conditions="Review weekly", duration_days=14)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["decision"] == "granted"
    assert body["flagged"] is False
    assert body["decided_by"] == "supt.khan"
    assert body["instance_status"] == "completed"
    with transaction(services.sessions) as session:
        data = InstanceService(session, services.context).variables(case["instance_id"])
        decided = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "task.decided")).one()
    assert (data["decision"], data["rationale"], data["decided_by"]) == ("granted", RATIONALE, "supt.khan")
    assert data["duration_days"] == 14
    assert data["authoriser_flagged"] is False
    assert decided.actor == "supt.khan"
    assert decided.detail["decision"] == "granted"
    assert_problem(decide(api, AUTHORISER, case["task_id"]), 409, "task-not-ready")


def test_rank_and_separation_of_duties_are_refused_with_their_reason(
    api: Api, services: Services, case: dict[str, Any]
) -> None:
    low = assert_problem(decide(api, INSPECTOR, case["task_id"]), 403, "rank-too-low")
    assert "Superintendent" in low["detail"]
    own = assert_problem(decide(api, APPLICANT_AS_AUTHORISER, case["task_id"]), 403, "separation-of-duties")
    assert "separation of duties" in own["detail"]
    # The generic completion endpoint applies the same checks to an approval task.
    complete = f"/api/v1/tasks/{case['task_id']}/complete"
    data = {"data": {"decision": "granted", "rationale": RATIONALE}}
    assert_problem(api.post(complete, INSPECTOR, json=data), 403, "rank-too-low")
    no_scope = AUTHORISER.but(scopes=("tasks:read", "tasks:write"))
    assert_problem(api.post(complete, no_scope, json=data), 403, "scope-missing")
    assert_problem(api.post(f"/api/v1/tasks/{case['task_id']}/claim", INSPECTOR), 403, "rank-too-low")
    with transaction(services.sessions) as session:
        assert session.get(HumanTask, case["task_id"]).status == "ready"  # type: ignore[union-attr]


def test_a_team_member_is_flagged_or_refused_as_the_process_says(api: Api, services: Services) -> None:
    deploy(services, *APPROVAL_FILES)
    flagged_case = applied(api, services, "api_approval")
    strict_case = applied(api, services, "api_approval_strict")

    assert [a["id"] for a in approvals(api, TEAM_MEMBER)] == [flagged_case["task_id"]]
    assert_problem(decide(api, TEAM_MEMBER, strict_case["task_id"]), 403, "separation-of-duties")

    response = decide(api, TEAM_MEMBER, flagged_case["task_id"], decision="refused")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["flagged"] is True
    with transaction(services.sessions) as session:
        data = InstanceService(session, services.context).variables(flagged_case["instance_id"])
        task = session.get(HumanTask, flagged_case["task_id"])
        decided = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "task.decided")).one()
    assert data["authoriser_flagged"] is True
    assert task is not None
    assert task.flagged is True
    assert (decided.actor, decided.detail["decision"], decided.detail["flagged"]) == (
        "supt.team",
        "refused",
        True,
    )


def test_a_decision_is_validated(api: Api, services: Services, case: dict[str, Any]) -> None:
    task_id = case["task_id"]
    thin = assert_problem(decide(api, AUTHORISER, task_id, rationale="ok"), 422, "validation-failed")
    assert "$.rationale" in thin["errors"]
    wrong = assert_problem(decide(api, AUTHORISER, task_id, decision="maybe"), 422, "validation-failed")
    assert "$.decision" in wrong["errors"]
    assert (
        "$.duration_days" in assert_problem(decide(api, AUTHORISER, task_id, duration_days=0), 422)["errors"]
    )
    too_long = assert_problem(decide(api, AUTHORISER, task_id, duration_days=200), 422, "form-data-invalid")
    assert "$.duration_days" in too_long["errors"]
    missing = api.post(f"/api/v1/approvals/{task_id}/decision", AUTHORISER, json={"decision": "granted"})
    assert "$.rationale" in assert_problem(missing, 422)["errors"]
    with transaction(services.sessions) as session:
        assert session.get(ProcessInstance, case["instance_id"]).status == "running"  # type: ignore[union-attr]


def test_decision_endpoint_refusals(api: Api, services: Services, case: dict[str, Any]) -> None:
    assert_problem(decide(api, None, case["task_id"]), 401, "token-missing")
    assert_problem(
        decide(api, AUTHORISER.but(scopes=("tasks:write",)), case["task_id"]), 403, "scope-missing"
    )
    assert_problem(api.get("/api/v1/approvals", AUTHORISER.but(scopes=("tasks:read",))), 403, "scope-missing")
    assert_problem(decide(api, AUTHORISER, str(uuid.uuid4())), 404, "not-found")
    assert_problem(decide(api, AUTHORISER.but(clearance="OFFICIAL"), case["task_id"]), 404, "not-found")
    assert_problem(decide(api, AUTHORISER.but(units=("MIT-South",)), case["task_id"]), 403, "unit-mismatch")
    deploy(services, "review_loop.bpmn", directory=FIXTURES)
    start_case(services, "review_loop")
    [plain] = open_tasks(api, APPLICANT, process_key="review_loop")
    assert_problem(decide(api, APPLICANT, plain["id"]), 404, "not-found")


def test_an_approval_not_decided_in_time_lapses_and_leaves_the_list(
    api: Api, services: Services, clock: FrozenClock, case: dict[str, Any]
) -> None:
    assert [a["id"] for a in approvals(api, AUTHORISER)] == [case["task_id"]]
    clock.advance(timedelta(hours=72, minutes=1))
    assert TimerWorker(services, worker_id="api-tests", threads=1).fire_due() == 1
    assert approvals(api, AUTHORISER) == []
    assert_problem(decide(api, AUTHORISER, case["task_id"]), 409, "task-not-ready")
    detail = api.get(f"/api/v1/process-instances/{case['instance_id']}", APPLICANT).get_json()
    assert (detail["status"], detail["timers"], detail["open_tasks"]) == ("completed", [], [])


def test_a_task_that_is_not_an_approval_still_applies_rank_and_separation_of_duties(
    api: Api, services: Services
) -> None:
    """A review task with a required rank, excluded subjects and a team is guarded like an approval."""
    deploy(services, "api_guarded_task.bpmn", "api_application.schema.json")
    guarded = applied(api, services, "api_guarded_task")
    base = f"/api/v1/tasks/{guarded['task_id']}"
    low = assert_problem(api.post(f"{base}/complete", INSPECTOR, json={"data": {}}), 403, "rank-too-low")
    assert "Superintendent" in low["detail"]
    assert_problem(api.post(f"{base}/claim", INSPECTOR), 403, "rank-too-low")
    own = assert_problem(
        api.post(f"{base}/complete", APPLICANT_AS_AUTHORISER, json={"data": {}}), 403, "separation-of-duties"
    )
    assert "separation of duties" in own["detail"]
    team = assert_problem(
        api.post(f"{base}/complete", TEAM_MEMBER, json={"data": {}}), 403, "separation-of-duties"
    )
    assert "investigation team" in team["detail"]
    with transaction(services.sessions) as session:
        assert session.get(HumanTask, guarded["task_id"]).status == "ready"  # type: ignore[union-attr]
    done = api.post(f"{base}/complete", AUTHORISER, json={"data": {}})
    assert done.status_code == 200, done.get_data(as_text=True)
    assert done.get_json()["completed_by"] == "supt.khan"
    with transaction(services.sessions) as session:
        assert session.get(ProcessInstance, guarded["instance_id"]).status == "completed"  # type: ignore[union-attr]
