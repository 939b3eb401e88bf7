"""Timers on SQLite and PostgreSQL: every kind fires once, on the injected clock, through the worker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.bpmn import SourceFile
from engine.clock import FrozenClock
from engine.container import Services, build_services
from engine.db import transaction
from engine.errors import DefinitionError
from engine.instances import Actor, InstanceService
from engine.models import AuditEvent, HumanTask, Incident, ProcessInstance, TaskHistory, Timer
from engine.registry import Deployer
from engine.settings import Settings
from engine.worker import FIRED, SKIPPED, TimerWorker

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "timers"
OFFICER = Actor("dc.jones", "DC Jones")
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def deploy(services: Services, *names: str) -> None:
    files = [SourceFile(n, (FIXTURES / n).read_text()) for n in names]
    with transaction(services.sessions) as session:
        Deployer(session, services.context.registry, services.clock).deploy(files, by="designer")


def start(services: Services, key: str, **variables: Any) -> str:
    with transaction(services.sessions) as session:
        instance = InstanceService(session, services.context).start(
            key,
            business_key="OP-1",
            variables=variables,
            unit="MIT-North",
            classification="SECRET",
            started_by=OFFICER,
        )
        return instance.id


def timers(services: Services, instance_id: str | None = None) -> list[Timer]:
    with services.sessions() as session:
        query = sa.select(Timer).order_by(Timer.due_at, Timer.id)
        if instance_id is not None:
            query = query.where(Timer.instance_id == instance_id)
        return list(session.scalars(query))


def instance_row(services: Services, instance_id: str) -> ProcessInstance:
    with services.sessions() as session:
        found = session.get(ProcessInstance, instance_id)
        assert found is not None
        return found


def open_tasks(services: Services, instance_id: str) -> list[HumanTask]:
    with services.sessions() as session:
        return InstanceService(session, services.context).open_tasks(instance_id)


def steps(services: Services, instance_id: str) -> list[str]:
    with services.sessions() as session:
        return list(
            session.scalars(
                sa.select(TaskHistory.element_id)
                .where(TaskHistory.instance_id == instance_id)
                .order_by(TaskHistory.id)
            )
        )


def fired_events(services: Services, instance_id: str) -> list[dict[str, Any]]:
    with services.sessions() as session:
        return [
            e.detail
            for e in session.scalars(
                sa.select(AuditEvent)
                .where(AuditEvent.instance_id == instance_id, AuditEvent.action == "timer.fired")
                .order_by(AuditEvent.id)
            )
        ]


def variables(services: Services, instance_id: str) -> dict[str, Any]:
    with services.sessions() as session:
        return InstanceService(session, services.context).variables(instance_id)


def complete(services: Services, task_id: str, actor: Actor = OFFICER) -> None:
    with transaction(services.sessions) as session:
        InstanceService(session, services.context).complete_task(task_id, {}, actor=actor)


@pytest.fixture
def worker(services: Services) -> TimerWorker:
    return TimerWorker(services, worker_id="worker-1", max_attempts=3)


def test_intermediate_duration_timer_fires_once_when_due(
    services: Services, clock: FrozenClock, worker: TimerWorker
) -> None:
    deploy(services, "timer_catch.bpmn")
    instance_id = start(services, "timer_catch")
    [row] = timers(services, instance_id)
    assert (row.element_id, row.kind, row.expression, row.due_at) == (
        "wait",
        "duration",
        "PT1H",
        T0 + timedelta(hours=1),
    )
    assert (row.interrupting, row.attached_to_task_id, row.attempts, row.lease_owner) == (
        False,
        None,
        0,
        None,
    )

    assert worker.fire_due() == 0
    clock.advance(timedelta(minutes=59, seconds=59))
    assert worker.fire_due() == 0
    assert instance_row(services, instance_id).status == "running"

    clock.advance(timedelta(seconds=3))
    assert worker.fire_due() == 1
    assert worker.fire_due() == 0
    assert instance_row(services, instance_id).status == "completed"
    assert timers(services) == []
    assert steps(services, instance_id) == ["start", "wait", "after", "done"]
    assert variables(services, instance_id)["woken"] is True
    [event] = fired_events(services, instance_id)
    assert event["element_id"] == "wait"
    assert event["due_at"] == (T0 + timedelta(hours=1)).isoformat()
    assert event["lateness_seconds"] == 2.0
    assert event["worker_id"] == "worker-1"


def test_date_timer_from_case_data_and_a_past_date_fires_at_once(
    services: Services, clock: FrozenClock, worker: TimerWorker
) -> None:
    deploy(services, "timer_date.bpmn")
    future = start(services, "timer_date", expires_at="2026-04-14T23:00:00+00:00")
    past = start(services, "timer_date", expires_at="2025-12-31T00:00:00Z")
    assert [(t.instance_id, t.due_at) for t in timers(services)] == [
        (past, datetime(2025, 12, 31, tzinfo=UTC)),
        (future, datetime(2026, 4, 14, 23, tzinfo=UTC)),
    ]
    assert worker.fire_due() == 1
    assert instance_row(services, past).status == "completed"
    assert instance_row(services, future).status == "running"
    clock.set(datetime(2026, 4, 14, 23, tzinfo=UTC))
    assert worker.fire_due() == 1
    assert instance_row(services, future).status == "completed"
    assert fired_events(services, future)[0]["lateness_seconds"] == 0.0


def test_timer_survives_a_restart_between_arming_and_firing(
    services: Services, settings: Settings, clock: FrozenClock
) -> None:
    deploy(services, "timer_catch.bpmn")
    instance_id = start(services, "timer_catch")
    services.db.dispose()

    restarted = build_services(settings, clock=clock)
    try:
        clock.advance(timedelta(hours=2))
        assert TimerWorker(restarted, worker_id="after-restart").fire_due() == 1
        assert instance_row(restarted, instance_id).status == "completed"
        assert steps(restarted, instance_id) == ["start", "wait", "after", "done"]
        assert timers(restarted) == []
    finally:
        restarted.db.dispose()


def test_boundary_timer_sets_task_due_and_completing_the_task_removes_its_timers(
    services: Services, clock: FrozenClock, worker: TimerWorker
) -> None:
    deploy(services, "timer_boundary.bpmn")
    instance_id = start(services, "timer_boundary")
    [renew] = open_tasks(services, instance_id)
    assert renew.element_id == "renew"
    assert renew.due_at == T0 + timedelta(hours=72)  # the interrupting timer, not the reminder
    rows = timers(services, instance_id)
    assert [(t.element_id, t.interrupting, t.attached_to_task_id) for t in rows] == [
        ("remind", False, renew.id),
        ("lapse", True, renew.id),
    ]

    clock.advance(timedelta(hours=1))
    complete(services, renew.id)
    assert timers(services) == []
    assert instance_row(services, instance_id).status == "completed"
    clock.advance(timedelta(days=10))
    assert worker.fire_due() == 0
    assert fired_events(services, instance_id) == []


def test_non_interrupting_boundary_raises_an_escalation_task_then_interrupting_one_lapses(
    services: Services, clock: FrozenClock, worker: TimerWorker
) -> None:
    deploy(services, "timer_boundary.bpmn")
    instance_id = start(services, "timer_boundary")
    clock.advance(timedelta(hours=48))
    assert worker.fire_due() == 1
    tasks = {t.element_id: t for t in open_tasks(services, instance_id)}
    assert set(tasks) == {"renew", "chase"}
    assert [t.element_id for t in timers(services, instance_id)] == ["lapse"]

    clock.advance(timedelta(hours=24))
    assert worker.fire_due() == 1
    assert [t.element_id for t in open_tasks(services, instance_id)] == ["chase"]
    with services.sessions() as session:
        renew = session.get(HumanTask, tasks["renew"].id)
        assert renew is not None
        assert renew.status == "cancelled"
    assert timers(services) == []
    with services.sessions() as session:
        [lapse] = session.scalars(
            sa.select(TaskHistory).where(
                TaskHistory.instance_id == instance_id, TaskHistory.element_id == "record_lapse"
            )
        )
        assert lapse.data_changes["updated"] == {"lapsed": True}
    assert [e["element_id"] for e in fired_events(services, instance_id)] == ["remind", "lapse"]

    complete(services, tasks["chase"].id)
    assert instance_row(services, instance_id).status == "completed"


def test_cycle_rearms_after_each_firing_until_its_repetitions_are_used(
    services: Services, clock: FrozenClock, worker: TimerWorker
) -> None:
    deploy(services, "timer_cycle.bpmn")
    instance_id = start(services, "timer_cycle", cycle="R3/PT9H")
    dues = []
    for occurrence in (1, 2, 3):
        [row] = timers(services, instance_id)
        assert (row.kind, row.expression, row.attempts, row.lease_owner) == ("cycle", "R3/PT9H", 0, None)
        dues.append(row.due_at)
        clock.set(row.due_at)
        assert worker.fire_due() == 1
        reviews = [t for t in open_tasks(services, instance_id) if t.element_id == "review"]
        assert len(reviews) == occurrence
    assert dues == [T0 + timedelta(hours=9 * k) for k in (1, 2, 3)]
    assert timers(services) == []
    assert [(e["occurrence"], e["next_due_at"]) for e in fired_events(services, instance_id)] == [
        (1, dues[1].isoformat()),
        (2, dues[2].isoformat()),
        (3, None),
    ]
    clock.advance(timedelta(days=3))
    assert worker.fire_due() == 0
    assert [t.element_id for t in open_tasks(services, instance_id)].count("review") == 3


def test_unbounded_cycle_stops_when_its_activity_completes(
    services: Services, clock: FrozenClock, worker: TimerWorker
) -> None:
    deploy(services, "timer_cycle.bpmn")
    instance_id = start(services, "timer_cycle", cycle="R/PT9H")
    for _ in range(4):
        clock.advance(timedelta(hours=9))
        assert worker.fire_due() == 1
    [row] = timers(services, instance_id)
    assert row.due_at == T0 + timedelta(hours=45)
    detain = next(t for t in open_tasks(services, instance_id) if t.element_id == "detain")
    complete(services, detain.id)
    assert timers(services) == []
    assert len(fired_events(services, instance_id)) == 4


def test_timer_start_event_holds_the_instance_at_its_start_until_due(
    services: Services, clock: FrozenClock, worker: TimerWorker
) -> None:
    deploy(services, "timer_start.bpmn")
    instance_id = start(services, "timer_start")
    [row] = timers(services, instance_id)
    # Six calendar months on the London wall clock: 09:00 GMT in January is 09:00 BST (08:00 UTC) in July.
    assert (row.element_id, row.due_at) == ("start", datetime(2026, 7, 5, 8, tzinfo=UTC))
    assert instance_row(services, instance_id).status == "running"
    assert steps(services, instance_id) == []
    clock.set(row.due_at)
    assert worker.fire_due() == 1
    assert steps(services, instance_id) == ["start", "check", "done"]
    assert instance_row(services, instance_id).status == "completed"


def test_timer_inside_an_embedded_subprocess(
    services: Services, clock: FrozenClock, worker: TimerWorker
) -> None:
    deploy(services, "timer_subprocess.bpmn")
    instance_id = start(services, "timer_subprocess")
    [row] = timers(services, instance_id)
    assert (row.element_id, row.due_at) == ("cool", T0 + timedelta(days=2))
    clock.advance(timedelta(days=2))
    assert worker.fire_due() == 1
    assert instance_row(services, instance_id).status == "completed"
    assert variables(services, instance_id)["cooled"] is True


def test_case_data_includes_what_a_running_embedded_subprocess_has_set(
    services: Services, clock: FrozenClock, worker: TimerWorker
) -> None:
    deploy(services, "timer_subprocess_data.bpmn")
    instance_id = start(services, "timer_subprocess_data", case_ref="C-3")
    data = variables(services, instance_id)
    assert (data["case_ref"], data["stage"]) == ("C-3", "cooling")
    assert data["ends_at"] == (T0 + timedelta(days=2)).isoformat()
    clock.advance(timedelta(days=2))
    assert worker.fire_due() == 1
    assert instance_row(services, instance_id).status == "completed"
    assert variables(services, instance_id)["stage"] == "cooling"


def test_a_suspended_instance_keeps_its_timer_until_resumed(
    services: Services, clock: FrozenClock, worker: TimerWorker
) -> None:
    deploy(services, "timer_catch.bpmn")
    instance_id = start(services, "timer_catch")
    with transaction(services.sessions) as session:
        InstanceService(session, services.context).suspend(instance_id, actor=OFFICER)
    clock.advance(timedelta(hours=3))
    assert worker.fire_due() == 0
    assert len(timers(services, instance_id)) == 1
    with transaction(services.sessions) as session:
        InstanceService(session, services.context).resume(instance_id, actor=OFFICER)
    assert worker.fire_due() == 1
    assert instance_row(services, instance_id).status == "completed"
    assert fired_events(services, instance_id)[0]["lateness_seconds"] == 7200.0


def test_cancelling_an_instance_removes_its_timers(
    services: Services, clock: FrozenClock, worker: TimerWorker
) -> None:
    deploy(services, "timer_boundary.bpmn")
    instance_id = start(services, "timer_boundary")
    assert len(timers(services, instance_id)) == 2
    with transaction(services.sessions) as session:
        InstanceService(session, services.context).cancel(
            instance_id, reason="operation stood down", actor=OFFICER
        )
    assert timers(services) == []
    clock.advance(timedelta(days=5))
    assert worker.fire_due() == 0


def test_an_expired_lease_is_reclaimed_and_the_timer_still_fires_once(
    services: Services, clock: FrozenClock
) -> None:
    deploy(services, "timer_catch.bpmn")
    instance_id = start(services, "timer_catch")
    clock.advance(timedelta(hours=1))
    crashed = TimerWorker(services, worker_id="crashed", lease_seconds=60)
    survivor = TimerWorker(services, worker_id="survivor", lease_seconds=60)
    [claimed] = crashed.claim()
    [row] = timers(services, instance_id)
    assert (row.lease_owner, row.lease_until) == ("crashed", clock.now() + timedelta(seconds=60))

    assert survivor.fire_due() == 0  # still leased
    clock.advance(timedelta(seconds=61))
    assert survivor.fire_due() == 1
    assert crashed.fire(claimed) == SKIPPED  # came back after losing its lease: no second effect
    assert [e["worker_id"] for e in fired_events(services, instance_id)] == ["survivor"]
    assert steps(services, instance_id).count("wait") == 1


class FailingHook:
    """A collaborator whose failure stands for a database or infrastructure fault while firing."""

    def __init__(self) -> None:
        self.failing = False

    def after_step(self, session: Any, instance: Any, workflow: Any, service: Any) -> None:
        if self.failing:
            raise RuntimeError("storage unavailable")

    def due_for_task(self, session: Any, workflow: Any, task_id: str) -> None:
        return None

    def instance_ended(self, session: Any, instance: Any) -> None:
        return None


@pytest.fixture
def failing_hook(services: Services) -> Iterator[FailingHook]:
    hook = FailingHook()
    services.context.hooks.append(hook)
    yield hook
    services.context.hooks.remove(hook)


def test_repeated_failure_backs_off_then_raises_an_incident_and_retry_fires(
    services: Services, clock: FrozenClock, worker: TimerWorker, failing_hook: FailingHook
) -> None:
    deploy(services, "timer_catch.bpmn")
    instance_id = start(services, "timer_catch")
    failing_hook.failing = True
    clock.advance(timedelta(hours=1))

    assert worker.fire_due() == 0
    [row] = timers(services, instance_id)
    assert (row.attempts, row.lease_owner, row.lease_until) == (1, None, clock.now() + timedelta(seconds=2))
    assert row.last_error == "RuntimeError: storage unavailable"
    assert worker.fire_due() == 0  # backing off
    assert timers(services, instance_id)[0].attempts == 1
    clock.advance(timedelta(seconds=2))
    assert worker.fire_due() == 0
    assert timers(services, instance_id)[0].lease_until == clock.now() + timedelta(seconds=4)
    clock.advance(timedelta(seconds=4))
    assert worker.fire_due() == 0

    assert instance_row(services, instance_id).status == "failed"
    with services.sessions() as session:
        [incident] = session.scalars(sa.select(Incident).where(Incident.instance_id == instance_id))
        assert (incident.element_id, incident.error_type) == ("wait", "timer-failed")
        assert "failed 3 times" in incident.message
    [row] = timers(services, instance_id)
    assert (row.attempts, row.lease_owner, row.lease_until) == (0, None, None)
    assert steps(services, instance_id) == ["start"]
    assert fired_events(services, instance_id) == []

    failing_hook.failing = False
    with transaction(services.sessions) as session:
        InstanceService(session, services.context).retry(instance_id, actor=OFFICER)
    assert worker.fire_due() == 1
    assert instance_row(services, instance_id).status == "completed"
    assert len(fired_events(services, instance_id)) == 1


def test_a_bad_timer_value_at_runtime_becomes_an_incident_and_retry_evaluates_it_again(
    services: Services, clock: FrozenClock, worker: TimerWorker
) -> None:
    deploy(services, "timer_variable.bpmn")
    instance_id = start(services, "timer_variable", delay="three days")
    assert instance_row(services, instance_id).status == "failed"
    assert timers(services) == []
    with services.sessions() as session:
        [incident] = session.scalars(sa.select(Incident).where(Incident.instance_id == instance_id))
    assert (incident.element_id, incident.error_type) == ("wait", "validation-failed")
    assert "'three days'" in incident.message

    with transaction(services.sessions) as session:
        InstanceService(session, services.context).retry(instance_id, actor=OFFICER)
    with services.sessions() as session:
        incidents = list(
            session.scalars(
                sa.select(Incident).where(Incident.instance_id == instance_id).order_by(Incident.id)
            )
        )
    assert [i.resolved_by for i in incidents] == ["dc.jones", None]
    assert instance_row(services, instance_id).status == "failed"


def test_a_missing_timer_variable_becomes_an_incident(services: Services, worker: TimerWorker) -> None:
    deploy(services, "timer_variable.bpmn")
    instance_id = start(services, "timer_variable")
    assert instance_row(services, instance_id).status == "failed"
    with services.sessions() as session:
        [incident] = session.scalars(sa.select(Incident).where(Incident.instance_id == instance_id))
    assert incident.element_id == "wait"
    assert "delay" in incident.message


def test_a_constant_timer_that_is_not_iso_8601_fails_the_deployment(services: Services) -> None:
    text = (FIXTURES / "timer_catch.bpmn").read_text().replace('"PT1H"', '"PT1 hour"')
    with pytest.raises(DefinitionError) as info, transaction(services.sessions) as session:
        Deployer(session, services.context.registry, services.clock).deploy(
            [SourceFile("timer_catch.bpmn", text)], by="designer"
        )
    [problem] = info.value.problems
    assert problem["element_id"] == "wait"
    assert problem["line"] == 8  # the timeDuration element
    assert "'PT1 hour'" in problem["message"]


def test_fired_timer_row_and_effect_commit_together(services: Services, clock: FrozenClock) -> None:
    deploy(services, "timer_catch.bpmn")
    instance_id = start(services, "timer_catch")
    clock.advance(timedelta(hours=1))
    worker = TimerWorker(services, worker_id="w")
    [claimed] = worker.claim()
    assert worker.fire(claimed) == FIRED
    assert worker.fire(claimed) == SKIPPED
    assert timers(services) == []
    assert len(fired_events(services, instance_id)) == 1


def test_worker_heartbeat_is_recorded(services: Services, worker: TimerWorker) -> None:
    from engine.models import WorkerHeartbeat

    worker.heartbeat()
    worker.heartbeat()
    with services.sessions() as session:
        [beat] = session.scalars(sa.select(WorkerHeartbeat))
    assert (beat.worker_id, beat.seen_at) == ("worker-1", T0)
    worker.retire()
    with services.sessions() as session:
        assert session.scalars(sa.select(WorkerHeartbeat)).all() == []
