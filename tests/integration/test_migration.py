"""Migrating running cases to a new process version, in the engine and over HTTP, on both backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from api_support import APPLICANT, OUTSIDER, Api, assert_problem
from api_support import open_tasks as inbox
from click.testing import CliRunner
from flask import Flask

from engine.bpmn import SourceFile
from engine.clock import FrozenClock
from engine.container import Services
from engine.db import transaction
from engine.errors import InstanceStateError
from engine.instances import Actor, InstanceService
from engine.migration import (
    ACTIVITY_START,
    KEPT,
    ORIGINAL_START,
    MigrationRefusedError,
    MigrationService,
    migrate_version,
)
from engine.models import AuditEvent, HumanTask, ProcessInstance, Timer
from engine.registry import Deployer
from engine.worker import TimerWorker

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "migration"
OFFICER = Actor("dc.jones", "DC Jones")
DESIGNER = Actor("pd.carter", "Jo Carter")
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MIGRATOR = APPLICANT.but(
    subject="pd.owen",
    scopes=(*APPLICANT.scopes, "instances:migrate"),
    name="Process designer",
)


def deploy(services: Services, name: str) -> None:
    with transaction(services.sessions) as session:
        Deployer(session, services.context.registry, services.clock).deploy(
            [SourceFile(name, (FIXTURES / name).read_text())], by="designer"
        )


def start(services: Services, key: str = "casefile", **variables: Any) -> str:
    with transaction(services.sessions) as session:
        return (
            InstanceService(session, services.context)
            .start(
                key,
                business_key="OP-1",
                variables=variables,
                unit="MIT-North",
                classification="SECRET",
                started_by=OFFICER,
            )
            .id
        )


def open_tasks(services: Services, instance_id: str) -> list[HumanTask]:
    with services.sessions() as session:
        return InstanceService(session, services.context).open_tasks(instance_id)


def complete(services: Services, instance_id: str, element_id: str, **data: Any) -> None:
    (task,) = [t for t in open_tasks(services, instance_id) if t.element_id == element_id]
    with transaction(services.sessions) as session:
        InstanceService(session, services.context).complete_task(task.id, data, actor=OFFICER)


def instance_row(services: Services, instance_id: str) -> ProcessInstance:
    with services.sessions() as session:
        found = session.get(ProcessInstance, instance_id)
        assert found is not None
        return found


def timers(services: Services, instance_id: str) -> list[Timer]:
    with services.sessions() as session:
        return list(session.scalars(sa.select(Timer).where(Timer.instance_id == instance_id)))


def migrations(services: Services, instance_id: str) -> list[AuditEvent]:
    with services.sessions() as session:
        return list(
            session.scalars(
                sa.select(AuditEvent).where(
                    AuditEvent.instance_id == instance_id, AuditEvent.action == "instance.migrated"
                )
            )
        )


def migrate(services: Services, instance_id: str, to_version: int, **kwargs: Any) -> Any:
    with transaction(services.sessions) as session:
        return MigrationService(session, services.context).migrate(
            instance_id, to_version=to_version, actor=DESIGNER, **kwargs
        )


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


# -- the engine ---------------------------------------------------------------------------------------


def test_added_step_dry_run_then_migrate_then_finish_on_v2(services: Services, clock: FrozenClock) -> None:
    deploy(services, "casefile_v1.bpmn")
    instance_id = start(services, suspect="A. Smith")
    deploy(services, "casefile_v2.bpmn")
    (before,) = open_tasks(services, instance_id)
    assert [t.due_at for t in timers(services, instance_id)] == [T0 + timedelta(days=7)]
    state_before = instance_row(services, instance_id).state
    clock.advance(timedelta(days=2))

    dry = migrate(services, instance_id, 2, dry_run=True)
    assert dry.possible
    assert not dry.migrated
    assert [(e.element_id, e.to_element_id, e.state) for e in dry.elements] == [
        ("gather", "gather", "ready"),
        ("deadline", "deadline", "waiting"),
    ]
    (timer,) = dry.timers
    assert (timer.to_element_id, timer.value, timer.to_value, timer.basis) == (
        "deadline",
        "P7D",
        "P10D",
        ORIGINAL_START,
    )
    assert timer.to_due_at == T0 + timedelta(days=10)  # counted from the original start, not the migration
    row = instance_row(services, instance_id)
    assert (row.process_version, row.state) == (1, state_before)
    assert migrations(services, instance_id) == []

    report = migrate(services, instance_id, 2)
    assert report.migrated
    row = instance_row(services, instance_id)
    assert (row.process_version, row.status) == (2, "running")
    (after,) = open_tasks(services, instance_id)
    assert (after.id, after.element_id, after.process_version) == (before.id, "gather", 2)
    assert [(t.element_id, t.due_at) for t in timers(services, instance_id)] == [
        ("deadline", T0 + timedelta(days=10))
    ]
    assert after.due_at == T0 + timedelta(days=10)

    complete(services, instance_id, "gather", evidence="statement")
    assert [t.element_id for t in open_tasks(services, instance_id)] == ["peer_review"]
    assert timers(services, instance_id) == []
    complete(services, instance_id, "peer_review")
    (decide,) = open_tasks(services, instance_id)
    assert decide.process_version == 2
    complete(services, instance_id, "decide", charge=True)
    row = instance_row(services, instance_id)
    assert row.status == "completed"
    with services.sessions() as session:
        variables = InstanceService(session, services.context).variables(instance_id)
    assert variables["suspect"] == "A. Smith"  # data started on v1 is kept
    assert variables["evidence"] == "statement"


def test_refused_when_the_waiting_task_was_removed_and_a_mapping_fixes_it(services: Services) -> None:
    deploy(services, "casefile_v1.bpmn")
    instance_id = start(services)
    complete(services, instance_id, "gather")
    deploy(services, "casefile_v2.bpmn")
    deploy(services, "casefile_v3.bpmn")
    (waiting,) = open_tasks(services, instance_id)
    state_before = instance_row(services, instance_id).state

    dry = migrate(services, instance_id, 3, dry_run=True)
    assert not dry.possible
    assert [r.element_id for r in dry.reasons] == ["decide"]
    assert "version 3 does not have" in dry.reasons[0].message

    with pytest.raises(MigrationRefusedError) as refused:
        migrate(services, instance_id, 3)
    assert refused.value.errors == {"$.elements.decide": [refused.value.report.reasons[0].message]}
    row = instance_row(services, instance_id)
    assert (row.process_version, row.state) == (1, state_before)
    assert [(t.id, t.element_id, t.process_version) for t in open_tasks(services, instance_id)] == [
        (waiting.id, "decide", 1)
    ]
    assert migrations(services, instance_id) == []

    report = migrate(services, instance_id, 3, mapping={"decide": "final_decision"})
    assert [(e.element_id, e.to_element_id, e.mapped) for e in report.elements] == [
        ("decide", "final_decision", True)
    ]
    (moved,) = open_tasks(services, instance_id)
    assert (moved.id, moved.element_id, moved.name) == (
        waiting.id,
        "final_decision",
        "Final decision on charge",
    )
    (event,) = migrations(services, instance_id)
    assert event.actor == "pd.carter"
    assert event.detail["from_version"] == 1
    assert event.detail["to_version"] == 3
    assert event.detail["mapping"] == {"decide": "final_decision"}
    complete(services, instance_id, "final_decision", charge=False)
    assert instance_row(services, instance_id).status == "completed"


def test_timer_kept_when_its_value_is_unchanged(services: Services, clock: FrozenClock) -> None:
    deploy(services, "casefile_v2.bpmn")  # deployed first, so it is version 1 here
    instance_id = start(services)
    clock.advance(timedelta(hours=5))
    deploy(services, "casefile_v3.bpmn")  # version 2: the same P10D deadline on the waiting task
    report = migrate(services, instance_id, 2)
    (timer,) = report.timers
    assert (timer.basis, timer.due_at, timer.to_due_at) == (
        KEPT,
        T0 + timedelta(days=10),
        T0 + timedelta(days=10),
    )
    assert [t.due_at for t in timers(services, instance_id)] == [T0 + timedelta(days=10)]


def test_subprocess_tasks_move_and_a_step_added_inside_is_taken(services: Services) -> None:
    deploy(services, "enquiry_v1.bpmn")
    instance_id = start(services, "enquiry")
    deploy(services, "enquiry_v2.bpmn")
    (interview,) = open_tasks(services, instance_id)
    report = migrate(services, instance_id, 2)
    assert ("interview", "enquiries") in [(e.element_id, e.process) for e in report.elements]
    assert ("enquiries", "enquiry") in [(e.element_id, e.process) for e in report.elements]
    (moved,) = open_tasks(services, instance_id)
    assert (moved.id, moved.process_version) == (interview.id, 2)
    complete(services, instance_id, "interview")
    assert [t.element_id for t in open_tasks(services, instance_id)] == ["check_statement"]
    complete(services, instance_id, "check_statement")
    complete(services, instance_id, "file")
    assert instance_row(services, instance_id).status == "completed"


def test_bulk_moves_the_rest_when_one_is_refused(services: Services) -> None:
    deploy(services, "casefile_v1.bpmn")
    first, second, at_decide = start(services), start(services), start(services)
    complete(services, at_decide, "gather")
    deploy(services, "casefile_v2.bpmn")
    deploy(services, "casefile_v3.bpmn")

    results = migrate_version(
        services.sessions, services.context, key="casefile", from_version=1, to_version=3, actor=DESIGNER
    )
    assert {r.instance_id: r.outcome for r in results} == {
        first: "migrated",
        second: "migrated",
        at_decide: "refused",
    }
    refused = next(r for r in results if r.instance_id == at_decide)
    assert refused.report is not None
    assert [r.element_id for r in refused.report.reasons] == ["decide"]
    assert [instance_row(services, i).process_version for i in (first, second, at_decide)] == [3, 3, 1]
    assert len(migrations(services, first)) == 1
    assert migrations(services, at_decide) == []


def test_a_suspended_case_moves_and_stays_suspended_but_a_finished_one_does_not(services: Services) -> None:
    deploy(services, "casefile_v1.bpmn")
    suspended, finished = start(services), start(services)
    complete(services, finished, "gather")
    complete(services, finished, "decide")
    deploy(services, "casefile_v2.bpmn")
    with transaction(services.sessions) as session:
        InstanceService(session, services.context).suspend(suspended, actor=OFFICER)
    (waiting,) = open_tasks(services, suspended)

    migrate(services, suspended, 2)
    row = instance_row(services, suspended)
    assert (row.status, row.process_version) == ("suspended", 2)
    assert [(t.id, t.status, t.process_version) for t in open_tasks(services, suspended)] == [
        (waiting.id, "ready", 2)
    ]
    with pytest.raises(InstanceStateError, match="this one is completed"):
        migrate(services, finished, 2)
    assert instance_row(services, finished).process_version == 1


def test_boundary_timers_follow_the_activity_they_are_attached_to(
    services: Services, clock: FrozenClock
) -> None:
    deploy(services, "casefile_v1.bpmn")  # the deadline is on "gather"
    at_gather, at_decide = start(services), start(services)
    clock.advance(timedelta(hours=1))
    complete(services, at_decide, "gather")
    deploy(services, "casefile_v4.bpmn")  # version 2 here: the deadline (P3D) is on "decide"
    clock.advance(timedelta(days=1))

    moved = migrate(services, at_gather, 2)
    assert [(e.element_id, e.change) for e in moved.elements] == [
        ("deadline", "dropped"),
        ("gather", "moved"),
    ]
    assert timers(services, at_gather) == []

    armed = migrate(services, at_decide, 2)
    assert [(e.element_id, e.change) for e in armed.elements] == [("deadline", "added"), ("decide", "moved")]
    (timer,) = armed.timers
    due = T0 + timedelta(hours=1, days=3)  # counted from when "decide" reached the inbox
    assert (timer.basis, timer.to_due_at) == (ACTIVITY_START, due)
    assert [(t.element_id, t.due_at) for t in timers(services, at_decide)] == [("deadline", due)]
    (decide,) = open_tasks(services, at_decide)
    assert decide.due_at == due

    clock.set(due + timedelta(minutes=1))
    assert TimerWorker(services, worker_id="migration-test").fire_due() == 1
    assert instance_row(services, at_decide).status == "completed"
    assert open_tasks(services, at_decide) == []
    with services.sessions() as session:
        assert InstanceService(session, services.context).variables(at_decide)["lapsed"] is True
    complete(services, at_gather, "gather")
    assert [t.element_id for t in open_tasks(services, at_gather)] == ["peer_review"]


# -- over HTTP ----------------------------------------------------------------------------------------


def test_http_dry_run_migrate_and_the_new_step_reaches_the_inbox(api: Api, services: Services) -> None:
    deploy(services, "casefile_v1.bpmn")
    instance_id = start(services)
    deploy(services, "casefile_v2.bpmn")
    path = f"/api/v1/process-instances/{instance_id}/migrate"

    dry = api.post(path, MIGRATOR, json={"to_version": 2, "dry_run": True})
    assert dry.status_code == 200, dry.get_data(as_text=True)
    body = dry.get_json()
    assert (body["possible"], body["migrated"], body["dry_run"]) == (True, False, True)
    assert body["timers"][0]["to_due_at"] == "2026-01-15T09:00:00+00:00"
    assert api.get(f"/api/v1/process-instances/{instance_id}", MIGRATOR).get_json()["process_version"] == 1

    done = api.post(path, MIGRATOR, json={"to_version": 2})
    assert done.status_code == 200, done.get_data(as_text=True)
    assert done.get_json()["migrated"] is True
    detail = api.get(f"/api/v1/process-instances/{instance_id}", MIGRATOR).get_json()
    assert detail["process_version"] == 2
    assert [t["due_at"] for t in detail["timers"]] == ["2026-01-15T09:00:00+00:00"]
    (gather,) = inbox(api, APPLICANT)
    completed = api.post(f"/api/v1/tasks/{gather['id']}/complete", APPLICANT, json={"data": {}})
    assert completed.status_code == 200, completed.get_data(as_text=True)
    assert [(t["element_id"], t["process_version"]) for t in inbox(api, APPLICANT)] == [("peer_review", 2)]
    trail = api.get(f"/api/v1/process-instances/{instance_id}/history", APPLICANT.but(scopes=("audit:read",)))
    (event,) = [e for e in trail.get_json()["items"] if e["action"] == "instance.migrated"]
    assert (event["actor"], event["detail"]["from_version"], event["detail"]["to_version"]) == (
        "pd.owen",
        1,
        2,
    )


def test_http_refusal_names_the_element_and_a_mapping_succeeds(api: Api, services: Services) -> None:
    deploy(services, "casefile_v1.bpmn")
    instance_id = start(services)
    complete(services, instance_id, "gather")
    deploy(services, "casefile_v2.bpmn")
    deploy(services, "casefile_v3.bpmn")
    path = f"/api/v1/process-instances/{instance_id}/migrate"

    refused = assert_problem(api.post(path, MIGRATOR, json={"to_version": 3}), 409, "migration-refused")
    assert [r["element_id"] for r in refused["reasons"]] == ["decide"]
    assert list(refused["errors"]) == ["$.elements.decide"]
    assert api.get(f"/api/v1/process-instances/{instance_id}", MIGRATOR).get_json()["process_version"] == 1

    unknown = api.post(path, MIGRATOR, json={"to_version": 3, "mapping": {"decide": "nowhere"}})
    assert assert_problem(unknown, 422, "validation-failed")["errors"] == {
        "$.mapping.decide": ["'nowhere' is not an element of the target version"]
    }
    moved = api.post(path, MIGRATOR, json={"to_version": 3, "mapping": {"decide": "final_decision"}})
    assert moved.status_code == 200, moved.get_data(as_text=True)
    assert [t["element_id"] for t in inbox(api, APPLICANT)] == ["final_decision"]


def test_http_scope_visibility_and_unknown_versions(api: Api, services: Services) -> None:
    deploy(services, "casefile_v1.bpmn")
    instance_id = start(services)
    deploy(services, "casefile_v2.bpmn")
    path = f"/api/v1/process-instances/{instance_id}/migrate"
    bulk = "/api/v1/process-definitions/casefile/versions/1/migrate"

    assert_problem(api.post(path, APPLICANT, json={"to_version": 2}), 403, "scope-missing")
    assert_problem(api.post(bulk, APPLICANT, json={"to_version": 2}), 403, "scope-missing")
    assert_problem(api.post(path, None, json={"to_version": 2}), 401)
    outsider = OUTSIDER.but(scopes=MIGRATOR.scopes)
    assert_problem(api.post(path, outsider, json={"to_version": 2}), 404, "not-found")
    assert_problem(api.post(path, MIGRATOR, json={"to_version": 9}), 404, "not-found")
    assert_problem(
        api.post("/api/v1/process-definitions/casefile/versions/7/migrate", MIGRATOR, json={"to_version": 2}),
        404,
        "not-found",
    )
    assert_problem(api.post(bulk, MIGRATOR, json={"to_version": 9}), 404, "not-found")
    assert_problem(api.post(path, MIGRATOR, json={"to_version": 1}), 422, "validation-failed")
    assert_problem(api.post(path, MIGRATOR, json={}), 422, "validation-failed")
    assert instance_row(services, instance_id).process_version == 1
    nothing = api.post(bulk, outsider, json={"to_version": 2})
    assert nothing.get_json()["results"] == []  # cases outside the caller's need to know are left alone
    assert instance_row(services, instance_id).process_version == 1


def test_http_bulk_reports_each_instance(api: Api, services: Services) -> None:
    deploy(services, "casefile_v1.bpmn")
    first, at_decide = start(services), start(services)
    complete(services, at_decide, "gather")
    deploy(services, "casefile_v2.bpmn")
    deploy(services, "casefile_v3.bpmn")
    bulk = "/api/v1/process-definitions/casefile/versions/1/migrate"

    dry = api.post(bulk, MIGRATOR, json={"to_version": 3, "dry_run": True}).get_json()
    assert dry["counts"] == {"possible": 1, "refused": 1}
    done = api.post(bulk, MIGRATOR, json={"to_version": 3})
    assert done.status_code == 200, done.get_data(as_text=True)
    body = done.get_json()
    assert body["counts"] == {"migrated": 1, "refused": 1}
    outcome = {r["instance_id"]: r for r in body["results"]}
    assert outcome[first]["outcome"] == "migrated"
    assert [r["element_id"] for r in outcome[at_decide]["report"]["reasons"]] == ["decide"]
    assert [instance_row(services, i).process_version for i in (first, at_decide)] == [3, 1]


# -- the command line ---------------------------------------------------------------------------------


def test_cli_single_and_bulk(services: Services) -> None:
    from api.migrate_cli import migrate_command

    deploy(services, "casefile_v1.bpmn")
    at_gather, at_decide = start(services), start(services)
    complete(services, at_decide, "gather")
    deploy(services, "casefile_v2.bpmn")
    deploy(services, "casefile_v3.bpmn")
    app = Flask("migrate-test")
    app.extensions["opsflow"] = services
    runner = CliRunner()
    with app.app_context():
        dry = runner.invoke(migrate_command, [at_decide, "--to-version", "3", "--dry-run"])
        assert dry.exit_code == 1, dry.output
        assert "refused  decide: the case is at decide (ready)" in dry.output
        bad = runner.invoke(migrate_command, [at_decide, "--to-version", "3", "--map", "decide"])
        assert bad.exit_code == 2
        assert "is not OLD_ID=NEW_ID" in bad.output
        mapped = runner.invoke(
            migrate_command,
            [at_decide, "--to-version", "3", "--map", "decide=final_decision", "--by", "pd.carter"],
        )
        assert mapped.exit_code == 0, mapped.output
        assert "ready    decide -> final_decision" in mapped.output
        bulk = runner.invoke(
            migrate_command,
            ["--process", "casefile", "--from-version", "1", "--to-version", "2", "--format", "json"],
        )
        assert bulk.exit_code == 0, bulk.output
    assert [(r["instance_id"], r["outcome"]) for r in json.loads(bulk.output)] == [(at_gather, "migrated")]
    assert [instance_row(services, i).process_version for i in (at_gather, at_decide)] == [2, 3]
    (event,) = migrations(services, at_decide)
    assert event.actor == "pd.carter"
