"""The engine service on SQLite and PostgreSQL: start, complete, loops, restarts, conflicts, state size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.audit import verify
from engine.bpmn import SourceFile
from engine.container import Services
from engine.db import transaction
from engine.errors import ConflictError, FormDataError, InstanceStateError, NotFoundError
from engine.instances import Actor, InstanceService
from engine.models import AuditEvent, HumanTask, ProcessInstance, TaskHistory
from engine.registry import Deployer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ROOT = FIXTURES.parent.parent
APPLICANT = Actor("dc.jones", "DC Jones")
AUTHORISER = Actor("supt.khan", "Supt Khan")


def deploy(services: Services, *names: str) -> None:
    files = [SourceFile(n, (FIXTURES / n).read_text()) for n in names]
    with transaction(services.sessions) as session:
        Deployer(session, services.context.registry, services.clock).deploy(files, by="designer")


def open_tasks(services: Services, instance_id: str) -> list[HumanTask]:
    with transaction(services.sessions) as session:
        return InstanceService(session, services.context).open_tasks(instance_id)


def start(services: Services, key: str = "review_loop", **variables: object) -> str:
    with transaction(services.sessions) as session:
        instance = InstanceService(session, services.context).start(
            key,
            business_key="OP-1",
            variables=variables,
            unit="MIT-North",
            classification="SECRET",
            started_by=APPLICANT,
        )
        return instance.id


def complete(services: Services, task_id: str, data: dict[str, object], actor: Actor) -> None:
    with transaction(services.sessions) as session:
        InstanceService(session, services.context).complete_task(task_id, data, actor=actor)


def test_two_lanes_gateway_script_run_to_the_end(services: Services) -> None:
    deploy(services, "review_loop.bpmn")
    instance_id = start(services, case_ref="C-77")

    [submit] = open_tasks(services, instance_id)
    assert (submit.element_id, submit.role, submit.lane, submit.priority) == (
        "submit",
        "applicant",
        "Applicant",
        70,
    )
    assert (submit.unit, submit.classification, submit.form) == ("MIT-North", "SECRET", "test_application")

    complete(services, submit.id, {"subject": "Operation Kestrel"}, APPLICANT)
    [review] = open_tasks(services, instance_id)
    assert review.role == "authorising_officer"
    assert review.excluded_subjects == ["dc.jones"]  # record_actor_as on submit feeds separation of duties
    assert review.summary == "Review 1"

    complete(services, review.id, {"continue_review": False}, AUTHORISER)
    with transaction(services.sessions) as session:
        instance = session.get(ProcessInstance, instance_id)
        assert instance is not None
        assert instance.status == "completed"
        assert instance.ended_at is not None
        tasks = session.scalars(sa.select(HumanTask).where(HumanTask.instance_id == instance_id)).all()
        assert {(t.element_id, t.status, t.completed_by) for t in tasks} == {
            ("submit", "completed", "dc.jones"),
            ("review", "completed", "supt.khan"),
        }
        steps = [h.element_id for h in session.scalars(sa.select(TaskHistory).order_by(TaskHistory.id))]
        assert steps == ["start", "submit", "init", "count", "review", "again", "done"]
        actions = [e.action for e in session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))]
        assert actions == ["instance.started", "task.completed", "task.completed", "instance.completed"]
        assert verify(session) == (4, None)
        variables = InstanceService(session, services.context).variables(instance_id)
        assert variables["case_ref"] == "C-77"
        assert variables["reviews"] == 1
        assert variables["applicant"] == "dc.jones"


def test_form_data_is_validated_and_nothing_changes_on_failure(services: Services) -> None:
    deploy(services, "review_loop.bpmn")
    instance_id = start(services)
    [submit] = open_tasks(services, instance_id)
    with pytest.raises(FormDataError) as info:
        complete(services, submit.id, {"subject": "x", "a": "many"}, APPLICANT)
    assert set(info.value.errors) == {"$.subject", "$.a"}
    [still] = open_tasks(services, instance_id)
    assert (still.id, still.status) == (submit.id, "ready")


def test_completed_task_cannot_be_completed_again(services: Services) -> None:
    deploy(services, "review_loop.bpmn")
    instance_id = start(services)
    [submit] = open_tasks(services, instance_id)
    complete(services, submit.id, {"subject": "Operation Kestrel"}, APPLICANT)
    with pytest.raises(ConflictError):
        complete(services, submit.id, {"subject": "Operation Kestrel"}, APPLICANT)
    with pytest.raises(NotFoundError):
        complete(services, "00000000-0000-0000-0000-000000000000", {}, APPLICANT)


def test_suspend_blocks_completion_until_resumed_and_cancel_closes_tasks(services: Services) -> None:
    deploy(services, "review_loop.bpmn")
    instance_id = start(services)
    [submit] = open_tasks(services, instance_id)
    with transaction(services.sessions) as session:
        InstanceService(session, services.context).suspend(instance_id, actor=AUTHORISER)
    with pytest.raises(InstanceStateError):
        complete(services, submit.id, {"subject": "Operation Kestrel"}, APPLICANT)
    with transaction(services.sessions) as session:
        InstanceService(session, services.context).resume(instance_id, actor=AUTHORISER)
    complete(services, submit.id, {"subject": "Operation Kestrel"}, APPLICANT)
    with transaction(services.sessions) as session:
        instance = InstanceService(session, services.context).cancel(
            instance_id, reason="Operation stood down", actor=AUTHORISER
        )
        assert instance.status == "cancelled"
    assert open_tasks(services, instance_id) == []
    with transaction(services.sessions) as session:
        statuses = session.scalars(
            sa.select(HumanTask.status)
            .where(HumanTask.instance_id == instance_id)
            .order_by(HumanTask.created_at)
        ).all()
        assert list(statuses) == ["completed", "cancelled"]


def test_review_loop_runs_600_iterations_without_losing_work(services: Services) -> None:
    deploy(services, "review_loop.bpmn")
    instance_id = start(services)
    [submit] = open_tasks(services, instance_id)
    complete(services, submit.id, {"subject": "Operation Kestrel"}, APPLICANT)
    for i in range(600):
        [review] = open_tasks(services, instance_id)
        assert review.element_id == "review"
        complete(services, review.id, {"continue_review": True, "decision": i}, AUTHORISER)
    with transaction(services.sessions) as session:
        instance = session.get(ProcessInstance, instance_id)
        assert instance is not None
        assert instance.status == "running"
        decisions = [
            h.data_changes["updated"]["decision"]
            for h in session.scalars(
                sa.select(TaskHistory)
                .where(TaskHistory.instance_id == instance_id, TaskHistory.element_id == "review")
                .order_by(TaskHistory.id)
            )
        ]
        assert decisions == list(range(600))
        service = InstanceService(session, services.context)
        assert service.variables(instance_id)["reviews"] == 601
        [review] = service.open_tasks(instance_id)
        assert review.summary == "Review 601"
        assert len(json.dumps(instance.state)) < 8000  # the live tree does not grow with the loop


def test_a_three_way_parallel_join_waits_for_branches_that_arrive_one_at_a_time(services: Services) -> None:
    """Branches reaching a join in separate steps: the first arrival must still count when the last comes."""
    deploy(services, "three_branches.bpmn")
    instance_id = start(services, "three_branches")
    tasks = {t.element_id: t for t in open_tasks(services, instance_id)}
    assert sorted(tasks) == ["branch_a", "branch_b", "branch_c"]
    complete(services, tasks["branch_a"].id, {"a": 1}, APPLICANT)
    complete(services, tasks["branch_b"].id, {"b": 2}, APPLICANT)
    assert [t.element_id for t in open_tasks(services, instance_id)] == ["branch_c"]
    # The branches parked at the join still show what they recorded in the case's variables.
    with transaction(services.sessions) as session:
        parked = InstanceService(session, services.context).variables(instance_id)
    assert (parked["a"], parked["b"]) == (1, 2)
    complete(services, tasks["branch_c"].id, {"c": 4}, APPLICANT)
    with transaction(services.sessions) as session:
        instance = session.get(ProcessInstance, instance_id)
        assert instance is not None
        assert instance.status == "completed"
        assert InstanceService(session, services.context).variables(instance_id)["total"] == 7


def test_fresh_twenty_element_instance_stores_under_4kb(services: Services) -> None:
    deploy(services, "twenty_steps.bpmn")
    with transaction(services.sessions) as session:
        instance = InstanceService(session, services.context).start(
            "twenty_steps", unit="MIT-North", classification="OFFICIAL", started_by=APPLICANT
        )
        size = len(services.context.runtime.json_dumps(instance.state))
    assert size < 4096, size


WORKER_SCRIPT = """
import json, sys
from engine.container import build_services
from engine.db import transaction
from engine.instances import Actor, InstanceService
from engine.settings import Settings
from pathlib import Path
settings = Settings(database_url=sys.argv[1], forms_dir=Path(sys.argv[2]))
services = build_services(settings)
with transaction(services.sessions) as session:
    service = InstanceService(session, services.context)
    [task] = service.open_tasks(sys.argv[3])
    service.complete_task(task.id, {"continue_review": False}, actor=Actor("supt.khan"))
    print(json.dumps({"status": service.get(sys.argv[3]).status}))
"""


def test_waiting_instance_survives_a_restart(services: Services, settings) -> None:  # type: ignore[no-untyped-def]
    deploy(services, "review_loop.bpmn")
    instance_id = start(services)
    [submit] = open_tasks(services, instance_id)
    complete(services, submit.id, {"subject": "Operation Kestrel"}, APPLICANT)
    services.db.dispose()
    result = subprocess.run(
        [sys.executable, "-c", WORKER_SCRIPT, settings.database_url, str(FIXTURES / "forms"), instance_id],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=120,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"status": "completed"}


POSTGRES_ONLY = pytest.param(
    "postgresql",
    id="postgresql",
    marks=pytest.mark.skipif(
        not os.environ.get("OPSFLOW_TEST_DATABASE_URL"), reason="row locks are a PostgreSQL behaviour"
    ),
)


@pytest.mark.parametrize("backend", [POSTGRES_ONLY], indirect=True)
def test_two_threads_completing_one_task_one_wins(services: Services) -> None:
    deploy(services, "review_loop.bpmn")
    instance_id = start(services)
    [submit] = open_tasks(services, instance_id)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def attempt() -> None:
        barrier.wait()
        try:
            complete(services, submit.id, {"subject": "Operation Kestrel"}, APPLICANT)
            outcomes.append("ok")
        except ConflictError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok", "task-not-ready"]
    with transaction(services.sessions) as session:
        count = session.scalar(
            sa.select(sa.func.count()).select_from(TaskHistory).where(TaskHistory.element_id == "submit")
        )
        assert count == 1


def test_failing_script_becomes_an_incident_and_keeps_the_officers_work(services: Services) -> None:
    deploy(services, "divide.bpmn")
    with transaction(services.sessions) as session:
        instance_id = (
            InstanceService(session, services.context)
            .start("divide", unit="MIT-North", classification="OFFICIAL", started_by=APPLICANT)
            .id
        )
    [collect] = open_tasks(services, instance_id)
    complete(services, collect.id, {"total": 10, "divisor": 0}, APPLICANT)
    with transaction(services.sessions) as session:
        service = InstanceService(session, services.context)
        instance = service.get(instance_id)
        assert instance.status == "failed"
        [incident] = service.incidents(instance_id)
        assert (incident.element_id, incident.line, incident.resolved_at) == ("compute", 2, None)
        assert "ZeroDivisionError" in incident.message
        assert session.get(HumanTask, collect.id).status == "completed"  # type: ignore[union-attr]
        assert "partial" not in service.variables(instance_id)
    with pytest.raises(ConflictError):
        complete(services, collect.id, {}, APPLICANT)
    with transaction(services.sessions) as session:
        again = InstanceService(session, services.context).retry(instance_id, actor=AUTHORISER)
        assert again.status == "failed"
        incidents = InstanceService(session, services.context).incidents(instance_id)
        assert [i.resolved_by for i in incidents] == ["supt.khan", None]


def test_sandbox_refusal_is_an_incident_not_a_crash(services: Services, tmp_path: Path) -> None:
    source = (FIXTURES / "divide.bpmn").read_text().replace("rate = total / divisor", "rate = type(total)")
    with transaction(services.sessions) as session:
        Deployer(session, services.context.registry, services.clock).deploy(
            [SourceFile("divide.bpmn", source)], by="designer"
        )
        instance_id = (
            InstanceService(session, services.context)
            .start("divide", unit="MIT-North", classification="OFFICIAL", started_by=APPLICANT)
            .id
        )
    [collect] = open_tasks(services, instance_id)
    complete(services, collect.id, {"total": 10, "divisor": 2}, APPLICANT)
    with transaction(services.sessions) as session:
        [incident] = InstanceService(session, services.context).incidents(instance_id)
        assert incident.element_id == "compute"
        assert incident.error_type == "script-forbidden"
