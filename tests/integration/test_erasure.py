"""Erasing a finished case's data once its retention period is over: real removal, logged, refused early."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from api_support import APPLICANT, FIXTURES, OUTSIDER, Api, Person, assert_problem, deploy, start_case
from werkzeug.test import TestResponse

from engine.audit import verify
from engine.calendars import parse_instant
from engine.clock import FrozenClock
from engine.container import Services
from engine.db import transaction
from engine.erasure import retain_until, retention_years
from engine.instances import Actor, InstanceService
from engine.models import AuditEvent, HumanTask, ProcessInstance, TaskHistory
from engine.process_settings import ProcessSettings

RECORDS = Person(
    "records.mgr",
    roles=("records_manager",),
    scopes=("instances:read", "instances:erase", "audit:read", "tasks:read"),
    name="Records Manager",
)
REVIEWER = Actor("supt.khan", "Supt Khan")


def finished_case(services: Services, clock: FrozenClock) -> tuple[str, str]:
    """A review_loop case run to its end with some personal data in it; returns (instance, task) ids."""
    deploy(services, "review_loop.bpmn", directory=FIXTURES)
    instance_id = start_case(services, "review_loop", business_key="OP-SMITH", subject_name="John Smith")
    with transaction(services.sessions) as session:
        service = InstanceService(session, services.context)
        [submit] = service.open_tasks(instance_id)
        service.complete_task(submit.id, {"subject": "Surveillance of John Smith"}, actor=Actor("dc.jones"))
    with transaction(services.sessions) as session:
        service = InstanceService(session, services.context)
        [review] = service.open_tasks(instance_id)
        service.complete_task(review.id, {"continue_review": False}, actor=REVIEWER)
        assert service.get(instance_id).status == "completed"
    return instance_id, submit.id


def erase(
    api: Api, instance_id: str, who: Person = RECORDS, reason: str = "Retention period over; MOPI review"
) -> TestResponse:
    return api.post(f"/api/v1/process-instances/{instance_id}/erase", who, json={"reason": reason})


def test_erasure_waits_for_the_retention_period_then_removes_the_data_for_good(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    instance_id, task_id = finished_case(services, clock)
    ended = clock.now()
    keep_until = "2032-01-06T00:00:00+00:00"  # 6 years (the default) beginning with 6 January 2026

    early = assert_problem(erase(api, instance_id), 409, "retention-period")
    assert early["retain_until"] == keep_until
    assert keep_until in early["detail"]
    clock.advance(parse_instant(keep_until) - ended - timedelta(seconds=1))
    assert_problem(erase(api, instance_id), 409, "retention-period")

    clock.advance(timedelta(seconds=1))
    response = erase(api, instance_id)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["instance_id"], body["retain_until"], body["tasks"]) == (instance_id, keep_until, 2)
    assert body["history_rows"] >= 4

    # Gone from every table that held it, not hidden.
    with transaction(services.sessions) as session:
        instance = session.get(ProcessInstance, instance_id)
        assert instance is not None
        assert (instance.status, instance.state, instance.business_key) == (
            "completed",
            {"erased": True},
            None,
        )
        assert instance.erased_by == RECORDS.subject
        assert instance.erased_at == parse_instant(keep_until)
        tasks = session.scalars(sa.select(HumanTask).where(HumanTask.instance_id == instance_id)).all()
        assert [(t.submitted_data, t.summary, t.business_key) for t in tasks] == [(None, None, None)] * 2
        changes = session.scalars(
            sa.select(TaskHistory.data_changes).where(TaskHistory.instance_id == instance_id)
        ).all()
        assert changes
        assert all(c == {} for c in changes)
        stored = " ".join(
            str(v)
            for v in session.execute(
                sa.select(ProcessInstance.state, HumanTask.submitted_data, TaskHistory.data_changes)
                .join(HumanTask, HumanTask.instance_id == ProcessInstance.id)
                .join(TaskHistory, TaskHistory.instance_id == ProcessInstance.id)
                .where(ProcessInstance.id == instance_id)
            ).all()
        )
        assert "Smith" not in stored
        [event] = session.scalars(
            sa.select(AuditEvent).where(AuditEvent.instance_id == instance_id, AuditEvent.kind == "erasure")
        ).all()
        assert (event.actor, event.action) == (RECORDS.subject, "instance.erased")
        assert event.detail["reason"] == "Retention period over; MOPI review"
        assert event.detail["retained_until"] == keep_until
        assert verify(session)[1] is None  # the trail itself is intact

    # Reading the data now says it was erased; the case itself is still listed.
    gone = api.get(
        f"/api/v1/process-instances/{instance_id}/variables", RECORDS, headers={"X-Purpose": "records review"}
    )
    assert assert_problem(gone, 410, "erased")["erased_at"] == keep_until
    assert_problem(api.get(f"/api/v1/tasks/{task_id}", APPLICANT), 410, "erased")
    assert api.get(f"/api/v1/process-instances/{instance_id}", RECORDS).get_json()["status"] == "completed"
    assert_problem(erase(api, instance_id), 409, "instance-state")


def test_erasure_is_refused_for_running_cases_bad_reasons_and_callers_without_the_scope(
    api: Api, services: Services, clock: FrozenClock
) -> None:
    deploy(services, "review_loop.bpmn", directory=FIXTURES)
    running = start_case(services, "review_loop")
    clock.advance(timedelta(days=365 * 20))
    problem = assert_problem(erase(api, running), 409, "instance-state")
    assert "only a finished case can be erased" in problem["detail"]
    assert list(assert_problem(erase(api, running, reason="old"), 422, "validation-failed")["errors"]) == [
        "$.reason"
    ]
    assert_problem(erase(api, running, who=APPLICANT), 403, "scope-missing")
    assert_problem(erase(api, running, who=OUTSIDER.but(scopes=("instances:erase",))), 404, "not-found")
    with transaction(services.sessions) as session:
        assert session.get(ProcessInstance, running).erased_at is None  # type: ignore[union-attr]
        erasures = session.scalar(sa.select(sa.func.count()).where(AuditEvent.kind == "erasure"))
        assert erasures == 0


@pytest.mark.parametrize(
    ("ended", "years", "until"),
    [
        # Counted from the day after the case ended, to the end of the anniversary of the day it ended.
        ("2026-03-10T15:00:00+00:00", 3, "2029-03-11T00:00:00+00:00"),
        ("2026-07-10T15:00:00+00:00", 3, "2029-07-10T23:00:00+00:00"),  # British Summer Time
        ("2028-02-29T10:00:00+00:00", 3, "2031-03-01T00:00:00+00:00"),  # no 29 February in 2031
    ],
)
def test_the_retention_period_covers_whole_years_after_the_day_the_case_ended(
    ended: str, years: int, until: str
) -> None:
    instance = ProcessInstance(ended_at=parse_instant(ended))
    assert retain_until(instance, years).isoformat() == until


def test_surveillance_records_are_kept_three_years_and_others_by_the_default() -> None:
    shipped = ProcessSettings.from_file(FIXTURES.parent.parent / "processes" / "settings.json")
    assert retention_years(shipped, "surveillance_authorisation") == 3
    assert retention_years(shipped, "homicide_investigation") == shipped.get(
        "records.retention_years.default"
    )
    assert retention_years(ProcessSettings({"records.retention_years.default": 7}), "kidnap_response") == 7
