"""A process killed with SIGKILL while completing a task leaves the task fully completed or untouched.

The completion runs in a child process that kills itself at a chosen point of its one transaction:
after the Nth write statement, when the commit is about to be sent, or just after the commit returned.
The parent then checks what a user would see: the task, the case, its history and the audit chain.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from engine.audit import verify
from engine.bpmn import SourceFile
from engine.container import Services
from engine.db import transaction
from engine.instances import Actor, InstanceService
from engine.models import AuditEvent, HumanTask, ProcessInstance, TaskHistory
from engine.registry import Deployer
from engine.settings import Settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ROOT = FIXTURES.parent.parent
APPLICANT = Actor("dc.jones", "DC Jones")

CHILD = """
import os, signal, sys
from pathlib import Path
import sqlalchemy as sa
from sqlalchemy.orm import Session
from engine.container import build_services
from engine.db import transaction
from engine.instances import Actor, InstanceService
from engine.settings import Settings

url, forms, task_id, kill_at = sys.argv[1:5]
services = build_services(Settings(database_url=url, forms_dir=Path(forms)))
writes = 0

def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

@sa.event.listens_for(services.db, "after_cursor_execute")
def after_write(conn, cursor, statement, parameters, context, executemany):
    global writes
    if statement.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
        writes += 1
        print("write", writes, statement.split(" ", 3)[:3], flush=True)
        if kill_at == f"write:{writes}":
            die()

@sa.event.listens_for(services.db, "commit")
def before_commit(conn):
    if kill_at == "commit":
        die()

@sa.event.listens_for(Session, "after_commit")
def after_commit(session):
    if kill_at == "after-commit":
        die()

with transaction(services.sessions) as session:
    InstanceService(session, services.context).complete_task(
        task_id, {"subject": "Operation Kestrel"}, actor=Actor("dc.jones", "DC Jones")
    )
print("finished", writes, flush=True)
"""


def _snapshot(services: Services, instance_id: str) -> dict[str, object]:
    with transaction(services.sessions) as session:
        instance = session.get(ProcessInstance, instance_id)
        assert instance is not None
        tasks = session.scalars(
            sa.select(HumanTask).where(HumanTask.instance_id == instance_id).order_by(HumanTask.created_at)
        ).all()
        checked, broken = verify(session)
        assert broken is None, broken
        return {
            "lock_version": instance.lock_version,
            "status": instance.status,
            "tasks": [(t.element_id, t.status, t.completed_by) for t in tasks],
            "history": _count(session, TaskHistory.instance_id == instance_id),
            "audit": _count(session, AuditEvent.instance_id == instance_id),
            "audit_checked": checked,
        }


def _count(session: Session, condition: sa.ColumnElement[bool]) -> int:
    return int(session.scalar(sa.select(sa.func.count()).where(condition)) or 0)


def _prepare(services: Services) -> tuple[str, str]:
    files = [SourceFile("review_loop.bpmn", (FIXTURES / "review_loop.bpmn").read_text())]
    with transaction(services.sessions) as session:
        Deployer(session, services.context.registry, services.clock).deploy(files, by="designer")
    with transaction(services.sessions) as session:
        service = InstanceService(session, services.context)
        instance = service.start(
            "review_loop",
            business_key="OP-9",
            variables={},
            unit="MIT-North",
            classification="SECRET",
            started_by=APPLICANT,
        )
        [task] = service.open_tasks(instance.id)
        return instance.id, task.id


def _complete_in_child(settings: Settings, task_id: str, kill_at: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, settings.database_url, str(FIXTURES / "forms"), task_id, kill_at],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def _writes_in_a_completion(settings: Settings, services: Services) -> int:
    """How many write statements one completion takes (measured on a separate case)."""
    _instance_id, task_id = _prepare(services)
    result = _complete_in_child(settings, task_id, "never")
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().splitlines()[-1].split()[1])


@pytest.mark.parametrize("kill_at", ["write:1", "write:middle", "write:last", "commit"])
def test_killed_before_the_commit_leaves_the_task_untouched(
    settings: Settings, services: Services, kill_at: str
) -> None:
    writes = _writes_in_a_completion(settings, services)
    assert writes >= 3, "a completion writes the task, the case, its history and the audit trail"
    point = {"write:middle": f"write:{writes // 2}", "write:last": f"write:{writes}"}.get(kill_at, kill_at)
    instance_id, task_id = _prepare(services)
    before = _snapshot(services, instance_id)

    result = _complete_in_child(settings, task_id, point)

    assert result.returncode == -signal.SIGKILL, result.stdout + result.stderr
    assert "finished" not in result.stdout
    assert _snapshot(services, instance_id) == before
    # Nothing is left locked or half-written: the task can be completed as if nothing happened.
    with transaction(services.sessions) as session:
        InstanceService(session, services.context).complete_task(
            task_id, {"subject": "Operation Kestrel"}, actor=APPLICANT
        )
    after = _snapshot(services, instance_id)
    assert after["tasks"][0] == ("submit", "completed", "dc.jones")  # type: ignore[index]


def test_killed_just_after_the_commit_leaves_the_task_fully_completed(
    settings: Settings, services: Services
) -> None:
    instance_id, task_id = _prepare(services)
    before = _snapshot(services, instance_id)

    result = _complete_in_child(settings, task_id, "after-commit")

    assert result.returncode == -signal.SIGKILL, result.stdout + result.stderr
    after = _snapshot(services, instance_id)
    assert after["lock_version"] == before["lock_version"] + 1  # type: ignore[operator]
    assert after["tasks"] == [("submit", "completed", "dc.jones"), ("review", "ready", None)]
    assert after["history"] > before["history"]  # type: ignore[operator]
    assert after["audit"] > before["audit"]  # type: ignore[operator]
    with transaction(services.sessions) as session:
        data = InstanceService(session, services.context).variables(instance_id)
    assert data["subject"] == "Operation Kestrel"
