"""Engine lifecycle: start + two task completions, persisted with audit, against SpiffWorkflow alone.

The baseline runs the same two-user-task process in the library itself, serialising to JSON and back
at each of its three wait states, in the same run. Each database is measured separately; PostgreSQL
only when OPSFLOW_BENCH_DATABASE_URL (or OPSFLOW_TEST_DATABASE_URL) is set.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer  # noqa: TID251  (the baseline is the library alone)
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow  # noqa: TID251  (the baseline is the library alone)
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser  # noqa: TID251  (the baseline is the library alone)
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG  # noqa: TID251  (the baseline is the library alone)
from SpiffWorkflow.util.task import TaskState  # noqa: TID251  (the baseline is the library alone)

from bench.common import measure, report
from engine.bpmn import SourceFile
from engine.container import build_services
from engine.db import transaction
from engine.instances import Actor, InstanceService
from engine.registry import Deployer
from engine.settings import PROJECT_ROOT, Settings

PROCESS = Path(__file__).resolve().parent / "fixtures" / "two_tasks.bpmn"
ACTOR = Actor("bench.user", "Bench user")


def spiff_lifecycle() -> Callable[[], None]:
    parser = SpiffBpmnParser()
    parser.add_bpmn_file(str(PROCESS))
    spec = parser.get_spec("two_tasks")
    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))

    def run() -> None:
        workflow = BpmnWorkflow(spec)
        workflow.do_engine_steps()
        state = serializer.serialize_json(workflow)
        for _ in range(2):
            workflow = serializer.deserialize_json(state)
            [task] = workflow.get_tasks(state=TaskState.READY, manual=True)
            task.data.update({"note": "done"})
            task.run()
            workflow.do_engine_steps()
            state = serializer.serialize_json(workflow)

    return run


def _migrate(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        config = Config(str(PROJECT_ROOT / "alembic.ini"))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    engine.dispose()


def opsflow_steps(url: str) -> dict[str, Callable[[], None]]:
    _migrate(url)
    services = build_services(Settings(database_url=url))
    with transaction(services.sessions) as session:
        Deployer(session, services.context.registry, services.clock).deploy(
            [SourceFile(PROCESS.name, PROCESS.read_text())], by="bench"
        )
    pending: list[str] = []

    def start() -> None:
        with transaction(services.sessions) as session:
            service = InstanceService(session, services.context)
            instance = service.start("two_tasks", unit="Bench", classification="OFFICIAL", started_by=ACTOR)
            pending.append(instance.id)

    def complete_next(instance_id: str) -> None:
        with transaction(services.sessions) as session:
            service = InstanceService(session, services.context)
            [task] = service.open_tasks(instance_id)
            service.complete_task(task.id, {"note": "done"}, actor=ACTOR)

    def lifecycle() -> None:
        start()
        instance_id = pending.pop()
        complete_next(instance_id)
        complete_next(instance_id)

    def completion() -> None:
        # measured on instances prepared by the start() calls
        complete_next(pending[-1])
        complete_next(pending.pop())

    return {"start": start, "two completions": completion, "lifecycle": lifecycle}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    repeat = 20 if args.quick else 300
    rows: list[dict[str, object]] = []
    baseline = measure(spiff_lifecycle(), repeat=repeat, warmup=20)
    rows.append({"name": "SpiffWorkflow alone, JSON at 3 wait states (baseline)", **baseline})
    backends: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        backends["sqlite"] = f"sqlite:///{tmp}/bench.sqlite3"
        pg = os.environ.get("OPSFLOW_BENCH_DATABASE_URL") or os.environ.get("OPSFLOW_TEST_DATABASE_URL")
        schema = None
        if pg:
            schema, backends["postgresql"] = _fresh_schema(pg)
        for name, url in backends.items():
            steps = opsflow_steps(url)
            for label, step, warmup in (
                ("start to first task", "start", 10),
                ("complete two tasks", "two completions", 0),
                ("whole lifecycle", "lifecycle", 10),
            ):
                rows.append(
                    {"name": f"{name}: {label}", **measure(steps[step], repeat=repeat, warmup=warmup)}
                )
        if pg and schema:
            _drop_schema(pg, schema)
    report("Engine lifecycle (start + 2 user tasks, persisted with audit)", rows, json_name="engine")


def _drop_schema(url: str, schema: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    engine.dispose()


def _fresh_schema(url: str) -> tuple[str, str]:
    schema = f"bench_{int(time.time())}"
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine.dispose()
    separator = "&" if "?" in url else "?"
    return schema, f"{url}{separator}options=-csearch_path%3D{schema}"


if __name__ == "__main__":
    main()
