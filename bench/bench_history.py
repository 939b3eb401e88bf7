"""History growth: the cost of one step of a review loop at iteration 10, 100 and 1,000, and the bytes stored.

Instances of ``fixtures/review_loop.bpmn`` (a script task counting reviews, a user task, an exclusive
gateway back to the count) loop through ``InstanceService``: each step is one transaction that finds
the open task and completes it, persisted with its ``task_history`` rows, ``human_task`` rows and audit
events. One instance is brought to each checkpoint; then their next ``--window`` steps are timed in
turn (10, 100, 1,000, 10, 100, ...), so that every checkpoint sees the same machine load. The
baseline is the step at iteration 10. At each checkpoint the instance's stored bytes are read from
the database: the ``process_instance`` row (and its ``state`` column alone), and its ``task_history``,
``human_task`` and ``audit_event`` rows (``pg_column_size`` of each row on PostgreSQL; on SQLite only
the length of their JSON columns).

Runs on PostgreSQL when ``OPSFLOW_BENCH_DATABASE_URL`` (or ``OPSFLOW_TEST_DATABASE_URL``) is set, else on
SQLite. Target (benchmark 3): a step at iteration 1,000 costs at most twice a step at iteration 10.
``--quick`` stops at iteration 100.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import migrate, pg_schema, postgres_url, report, summarise
from engine.bpmn import SourceFile
from engine.container import build_services
from engine.db import transaction
from engine.instances import Actor, InstanceService
from engine.registry import Deployer
from engine.settings import Settings

PROCESS = Path(__file__).resolve().parent / "fixtures" / "review_loop.bpmn"
ACTOR = Actor("bench.reviewer", "Bench reviewer")

PG_BYTES = """
SELECT
  (SELECT pg_column_size(p.*) FROM process_instance p WHERE p.id = :id),
  (SELECT pg_column_size(p.state) FROM process_instance p WHERE p.id = :id),
  (SELECT octet_length(p.state::text) FROM process_instance p WHERE p.id = :id),
  (SELECT count(*) FROM task_history t WHERE t.instance_id = :id),
  (SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM task_history t WHERE t.instance_id = :id),
  (SELECT coalesce(sum(pg_column_size(h.*)), 0) FROM human_task h WHERE h.instance_id = :id),
  (SELECT coalesce(sum(pg_column_size(a.*)), 0) FROM audit_event a WHERE a.instance_id = :id)
"""
SQLITE_BYTES = """
SELECT
  (SELECT length(p.state) FROM process_instance p WHERE p.id = :id),
  (SELECT length(p.state) FROM process_instance p WHERE p.id = :id),
  (SELECT length(p.state) FROM process_instance p WHERE p.id = :id),
  (SELECT count(*) FROM task_history t WHERE t.instance_id = :id),
  (SELECT coalesce(sum(length(t.data_changes)), 0)
     FROM task_history t WHERE t.instance_id = :id),
  (SELECT coalesce(sum(length(coalesce(h.submitted_data, ''))), 0)
     FROM human_task h WHERE h.instance_id = :id),
  (SELECT coalesce(sum(length(a.detail)), 0) FROM audit_event a WHERE a.instance_id = :id)
"""


def stored_bytes(engine: sa.Engine, instance_id: str) -> dict[str, int]:
    query = PG_BYTES if engine.dialect.name == "postgresql" else SQLITE_BYTES
    with engine.connect() as conn:
        row = conn.execute(sa.text(query), {"id": instance_id}).one()
    instance, state, state_text, history_rows, history, tasks, audit = (int(value or 0) for value in row)
    return {
        "instance_row_bytes": instance,
        "state_bytes": state,
        "state_json_bytes": state_text,
        "history_rows": history_rows,
        "history_bytes": history,
        "human_task_bytes": tasks,
        "audit_bytes": audit,
        "stored_bytes": instance + history + tasks + audit,
    }


def run(url: str, checkpoints: list[int], window: int) -> list[dict[str, Any]]:
    services = build_services(Settings(database_url=url))
    with transaction(services.sessions) as session:
        Deployer(session, services.context.registry, services.clock).deploy(
            [SourceFile(PROCESS.name, PROCESS.read_text())], by="bench"
        )

    def start() -> str:
        with transaction(services.sessions) as session:
            service = InstanceService(session, services.context)
            return service.start("review_loop", unit="Bench", classification="OFFICIAL", started_by=ACTOR).id

    def step(instance_id: str, iteration: int) -> float:
        began = time.perf_counter_ns()
        with transaction(services.sessions) as session:
            service = InstanceService(session, services.context)
            [task] = service.open_tasks(instance_id)
            service.complete_task(
                task.id, {"continue_review": True, "note": f"review {iteration}"}, actor=ACTOR
            )
        return (time.perf_counter_ns() - began) / 1e6

    # One instance per checkpoint, each brought to its iteration; then their steps are timed in turn,
    # so that every checkpoint sees the same machine load.
    instances = [start() for _ in checkpoints]
    for instance_id, checkpoint in zip(instances, checkpoints, strict=True):
        for iteration in range(1, checkpoint):  # the instance waits in its first review when started
            step(instance_id, iteration)
    sizes = [stored_bytes(services.db, instance_id) for instance_id in instances]
    samples: list[list[float]] = [[] for _ in checkpoints]
    for offset in range(window):
        for index, (instance_id, checkpoint) in enumerate(zip(instances, checkpoints, strict=True)):
            samples[index].append(step(instance_id, checkpoint + offset))
    rows = [
        {
            "name": f"step at iteration {checkpoint:,}" + (" (baseline)" if index == 0 else ""),
            **summarise(samples[index]),
            **sizes[index],
        }
        for index, checkpoint in enumerate(checkpoints)
    ]
    services.db.dispose()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="checkpoints 10 and 100 only")
    parser.add_argument("--window", type=int, default=None, help="steps timed at each checkpoint")
    args = parser.parse_args(argv)
    checkpoints = [10, 100] if args.quick else [10, 100, 1000]
    window = args.window or (5 if args.quick else 40)
    with ExitStack() as stack:
        base = postgres_url()
        if base:
            url = stack.enter_context(pg_schema(base, "bench_history"))
            backend = "PostgreSQL"
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            url = f"sqlite:///{tmp}/history.sqlite3"
            migrate(url)
            backend = "SQLite"
        rows = run(url, checkpoints, window)
    report(
        f"History growth: one review-loop step on {backend}",
        rows,
        json_name="history",
        columns=[
            ("state_bytes", "state B"),
            ("history_rows", "hist rows"),
            ("stored_bytes", "stored B"),
        ],
    )
    last = rows[-1]
    ratio = last["median_ms"] / rows[0]["median_ms"]
    print(
        f"\nstep at iteration {checkpoints[-1]:,} costs {ratio:.2f}x a step at iteration 10 "
        f"(target <= 2x); stored state {rows[0]['state_bytes']} -> {last['state_bytes']} bytes; "
        f"{last['stored_bytes'] / 1024:.0f} KiB stored for the instance in all"
    )


if __name__ == "__main__":
    main()
