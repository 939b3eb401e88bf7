"""Timer firing on PostgreSQL: lateness with 10,000 waiting timers, and draining 5,000 due at once.

* **Lateness.** A backlog of timers due years ahead waits in the table while a stream of new timers,
  each due two seconds after it is created, comes due; two worker processes fire them. Lateness is the
  ``lateness_seconds`` each ``timer.fired`` audit event records (when the worker began firing, minus the
  due time). Backlog plus stream make 10,000 waiting timers. Target: p99 under 1 s.
* **Drain.** 5,000 timers already due when two worker processes start; the time from the first firing to
  the last (process start-up excluded; it is shown separately). Target: under 30 s.

Runs against ``OPSFLOW_BENCH_DATABASE_URL`` (or ``OPSFLOW_TEST_DATABASE_URL``) in a schema of its own,
dropped afterwards. ``--quick`` runs a twentieth of the sizes.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from bench.common import report
from engine.bpmn import SourceFile
from engine.container import build_services
from engine.db import transaction
from engine.instances import Actor, InstanceService
from engine.models import AuditEvent, Timer
from engine.registry import Deployer
from engine.settings import PROJECT_ROOT, Settings

PROCESS = Path(__file__).resolve().parent / "fixtures" / "timer_until.bpmn"
FORMS = PROJECT_ROOT / "tests" / "fixtures" / "forms"
ACTOR = Actor("bench.user", "Bench user")
FAR_AHEAD = "2030-01-01T00:00:00+00:00"
ALREADY_DUE = "2026-01-01T00:00:00+00:00"
STREAM_LEAD = timedelta(seconds=2)


def _settings(url: str) -> Settings:
    return Settings(database_url=url, forms_dir=FORMS)


def create_instances(url: str, count: int, expires_at: str, per_transaction: int = 50) -> int:
    """Start ``count`` instances whose timer is due at ``expires_at`` (run in a helper process)."""
    services = build_services(_settings(url))
    made = 0
    while made < count:
        with transaction(services.sessions) as session:
            service = InstanceService(session, services.context)
            for _ in range(min(per_transaction, count - made)):
                service.start(
                    "timer_until",
                    variables={"expires_at": expires_at},
                    unit="Bench",
                    classification="OFFICIAL",
                    started_by=ACTOR,
                )
                made += 1
    services.db.dispose()
    return made


def stream_instances(url: str, count: int, rate: float) -> int:
    """Start ``count`` instances at ``rate`` per second, each due two seconds after it starts."""
    services = build_services(_settings(url))
    began = time.monotonic()
    for index in range(count):
        pause = began + index / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        expires_at = (datetime.now(UTC) + STREAM_LEAD).isoformat()
        with transaction(services.sessions) as session:
            InstanceService(session, services.context).start(
                "timer_until",
                business_key="stream",
                variables={"expires_at": expires_at},
                unit="Bench",
                classification="OFFICIAL",
                started_by=ACTOR,
            )
    services.db.dispose()
    return count


def _in_parallel(function: Any, jobs: list[tuple[Any, ...]]) -> int:
    with ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(function, *job) for job in jobs]
        return sum(future.result() for future in futures)


def _workers(url: str, count: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "OPSFLOW_FORMS_DIR": str(FORMS)}
    return [
        subprocess.Popen(
            [sys.executable, "-m", "engine.worker", "--database-url", url, "--worker-id", f"bench-{n}"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(1, count + 1)
    ]


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(60)


def _scalar(engine: sa.Engine, query: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(query).scalar()


def _wait_for(engine: sa.Engine, query: Any, target: int, *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while _scalar(engine, query) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting after {seconds:.0f} s")
        time.sleep(0.2)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def lateness(url: str, *, waiting: int, measured: int, rate: float) -> dict[str, Any]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    backlog = waiting - measured
    _in_parallel(create_instances, [(url, backlog // 2, FAR_AHEAD), (url, backlog - backlog // 2, FAR_AHEAD)])
    workers = _workers(url, 2)
    try:
        time.sleep(3)  # let the workers start before the stream begins
        _in_parallel(stream_instances, [(url, measured, rate)])
        fired = sa.select(sa.func.count()).where(AuditEvent.action == "timer.fired")
        _wait_for(engine, fired, measured, seconds=120)
        waiting_now = _scalar(engine, sa.select(sa.func.count()).select_from(Timer))
    finally:
        _stop(workers)
    with engine.connect() as conn:
        late = [
            float(detail["lateness_seconds"])
            for detail in conn.execute(
                sa.select(AuditEvent.detail).where(AuditEvent.action == "timer.fired")
            ).scalars()
        ]
    engine.dispose()
    return {
        "name": f"lateness with {waiting:,} waiting timers (2 workers)",
        "baseline": f"lateness with {waiting:,} waiting timers (2 workers)",
        "median_ms": _percentile(late, 0.5) * 1000,
        "p95_ms": _percentile(late, 0.95) * 1000,
        "p99_ms": _percentile(late, 0.99) * 1000,
        "max_ms": max(late) * 1000,
        "n": len(late),
        "stream_per_second": rate,
        "backlog_left_waiting": waiting_now,
        "target": "p99 < 1000 ms",
    }


def drain(url: str, *, timers: int) -> dict[str, Any]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    _in_parallel(
        create_instances, [(url, timers // 2, ALREADY_DUE), (url, timers - timers // 2, ALREADY_DUE)]
    )
    launched = time.monotonic()
    workers = _workers(url, 2)
    try:
        # The lateness backlog (due in 2030) stays in the table, as waiting timers do in production.
        left = sa.select(sa.func.count()).where(Timer.due_at < datetime(2027, 1, 1, tzinfo=UTC))
        deadline = time.monotonic() + 300
        while _scalar(engine, left) > 0:
            if time.monotonic() > deadline:
                raise TimeoutError("the drain did not finish in 300 s")
            time.sleep(0.2)
        wall = time.monotonic() - launched
    finally:
        _stop(workers)
    with engine.connect() as conn:
        fired_at = [
            datetime.fromisoformat(detail["fired_at"])
            for detail in conn.execute(
                sa.select(AuditEvent.detail).where(
                    AuditEvent.action == "timer.fired", AuditEvent.detail["due_at"].as_string() == ALREADY_DUE
                )
            ).scalars()
        ]
    engine.dispose()
    seconds = (max(fired_at) - min(fired_at)).total_seconds()
    return {
        "name": f"drain {timers:,} due at once (2 workers), first to last firing",
        "baseline": f"drain {timers:,} due at once (2 workers), first to last firing",
        "median_ms": seconds * 1000,
        "p95_ms": seconds * 1000,
        "n": len(fired_at),
        "seconds": round(seconds, 2),
        "timers_per_second": round(len(fired_at) / seconds, 1) if seconds else None,
        "seconds_including_worker_start": round(wall, 2),
        "target": "< 30 s",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    base = os.environ.get("OPSFLOW_BENCH_DATABASE_URL") or os.environ.get("OPSFLOW_TEST_DATABASE_URL")
    if not base or not base.startswith("postgresql"):
        print("bench_timers: set OPSFLOW_BENCH_DATABASE_URL to a PostgreSQL database; skipped")
        return
    scale = 20 if args.quick else 1
    schema = f"bench_timers_{os.getpid()}"
    url = _create_schema(base, schema)
    try:
        _migrate(url)
        services = build_services(_settings(url))
        with transaction(services.sessions) as session:
            Deployer(session, services.context.registry, services.clock).deploy(
                [SourceFile(PROCESS.name, PROCESS.read_text())], by="bench"
            )
        services.db.dispose()
        rows = [
            lateness(url, waiting=10_000 // scale, measured=1_000 // scale, rate=50.0),
            drain(url, timers=5_000 // scale),
        ]
    finally:
        _drop_schema(base, schema)
    report("Timers on PostgreSQL", rows, json_name="timers")
    late, drained = rows
    print(
        f"\nlateness p50 {late['median_ms']:.0f} ms, p99 {late['p99_ms']:.0f} ms, "
        f"max {late['max_ms']:.0f} ms "
        f"(target p99 < 1000 ms); drain {drained['seconds']} s for {drained['n']} timers, "
        f"{drained['timers_per_second']}/s (target < 30 s)"
    )


def _create_schema(url: str, schema: str) -> str:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine.dispose()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


def _drop_schema(url: str, schema: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    engine.dispose()


def _migrate(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        config = Config(str(PROJECT_ROOT / "alembic.ini"))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    engine.dispose()


if __name__ == "__main__":
    main()
