"""Timer workers in real time: the embedded scheduler, and worker processes racing on PostgreSQL.

These run on the wall clock, so they are marked slow; each finishes in seconds. Workers are given a long
idle interval, so a timer firing within the deadline shows that the wake-up notification worked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import sqlalchemy as sa

from engine.bpmn import SourceFile
from engine.container import Services, build_services
from engine.db import transaction
from engine.instances import Actor, InstanceService
from engine.models import AuditEvent, ProcessInstance, TaskHistory, Timer, WorkerHeartbeat
from engine.registry import Deployer
from engine.settings import Settings
from engine.worker import TimerScheduler

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
OFFICER = Actor("dc.jones", "DC Jones")

pytestmark = pytest.mark.slow


def wait_until(condition: Callable[[], bool], *, seconds: float, every: float = 0.05) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


def count(live: Services, query: Any) -> int:
    with live.sessions() as session:
        return int(session.scalar(query) or 0)


@pytest.fixture
def live(services: Services, settings: Settings) -> Iterator[Services]:
    """Services on the wall clock, on the database the ``services`` fixture has just wiped."""
    built = build_services(settings)
    files = [SourceFile("timer_variable.bpmn", (FIXTURES / "timers" / "timer_variable.bpmn").read_text())]
    with transaction(built.sessions) as session:
        Deployer(session, built.context.registry, built.clock).deploy(files, by="designer")
    yield built
    built.db.dispose()


def start_many(live: Services, number: int, *, delay: str, per_transaction: int = 100) -> list[str]:
    ids: list[str] = []
    while len(ids) < number:
        with transaction(live.sessions) as session:
            service = InstanceService(session, live.context)
            for _ in range(min(per_transaction, number - len(ids))):
                instance = service.start(
                    "timer_variable",
                    variables={"delay": delay},
                    unit="MIT-North",
                    classification="OFFICIAL",
                    started_by=OFFICER,
                )
                ids.append(instance.id)
    return ids


def test_embedded_worker_wakes_for_a_new_timer_and_fires_it(live: Services) -> None:
    scheduler = TimerScheduler(live, max_idle=60).start()
    try:
        assert wait_until(
            lambda: count(live, sa.select(sa.func.count()).select_from(WorkerHeartbeat)) == 1, seconds=10
        )
        [instance_id] = start_many(live, 1, delay="PT1S")
        done = sa.select(sa.func.count()).where(ProcessInstance.status == "completed")
        assert wait_until(lambda: count(live, done) == 1, seconds=15)
    finally:
        scheduler.stop()
    fired = sa.select(sa.func.count()).where(
        AuditEvent.action == "timer.fired", AuditEvent.instance_id == instance_id
    )
    assert count(live, fired) == 1
    assert count(live, sa.select(sa.func.count()).select_from(Timer)) == 0
    assert count(live, sa.select(sa.func.count()).select_from(WorkerHeartbeat)) == 0  # retired on stop


def spawn(url: str, worker_id: str, log: IO[bytes]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OPSFLOW_FORMS_DIR": str(FIXTURES / "forms")}
    command = [
        sys.executable,
        "-m",
        "engine.worker",
        "--database-url",
        url,
        "--worker-id",
        worker_id,
        "--batch-size",
        "20",
        "--lease-seconds",
        "3",
        "--max-idle",
        "60",
        "--threads",
        "2",
    ]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def test_three_worker_processes_fire_500_timers_exactly_once_when_one_is_killed_mid_batch(
    live: Services, settings: Settings, backend: str, tmp_path: Path
) -> None:
    if backend != "postgresql":
        pytest.skip("worker processes share a PostgreSQL database (SQLite is for one process)")
    logs = {w: (tmp_path / f"{w}.log").open("wb") for w in ("w1", "w2", "w3")}
    workers = {w: spawn(settings.database_url, w, log) for w, log in logs.items()}
    try:
        beats = sa.select(sa.func.count()).select_from(WorkerHeartbeat)
        assert wait_until(lambda: count(live, beats) == 3, seconds=30), "workers did not start"

        ids = start_many(live, 500, delay="PT2S")
        held_by_w1 = sa.select(sa.func.count()).where(Timer.lease_owner == "w1")
        fired = sa.select(sa.func.count()).where(AuditEvent.action == "timer.fired")
        assert wait_until(
            lambda: count(live, held_by_w1) >= 3 and count(live, fired) > 0, seconds=30, every=0.005
        )
        workers["w1"].send_signal(signal.SIGKILL)
        workers["w1"].wait(10)
        with live.sessions() as session:
            orphaned = set(session.scalars(sa.select(Timer.instance_id).where(Timer.lease_owner == "w1")))
        assert orphaned, "w1 was killed holding no lease; the scenario did not happen"

        remaining = sa.select(sa.func.count()).select_from(Timer)
        assert wait_until(lambda: count(live, remaining) == 0, seconds=30), "timers left unfired"
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in workers.values():
            process.wait(30)
        for log in logs.values():
            log.close()

    assert workers["w2"].returncode == workers["w3"].returncode == 0
    with live.sessions() as session:
        per_instance = dict(
            session.execute(
                sa.select(AuditEvent.instance_id, sa.func.count())
                .where(AuditEvent.action == "timer.fired")
                .group_by(AuditEvent.instance_id)
            ).all()
        )
        steps = dict(
            session.execute(
                sa.select(TaskHistory.instance_id, sa.func.count())
                .where(TaskHistory.element_id == "wait")
                .group_by(TaskHistory.instance_id)
            ).all()
        )
        statuses = dict(session.execute(sa.select(ProcessInstance.id, ProcessInstance.status)).all())
        rescuers = {
            e.detail["worker_id"]
            for e in session.scalars(
                sa.select(AuditEvent).where(
                    AuditEvent.action == "timer.fired", AuditEvent.instance_id.in_(orphaned)
                )
            )
        }
    assert per_instance == dict.fromkeys(ids, 1)
    assert steps == dict.fromkeys(ids, 1)
    assert set(statuses.values()) == {"completed"}
    assert rescuers <= {"w2", "w3"}
