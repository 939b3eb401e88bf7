"""Memory: resident size of the gunicorn workers and of a timer worker process, before and after work.

Against PostgreSQL, in a schema of its own: gunicorn in the production setup (``bench/server.py``) and one
timer worker process start; their resident set sizes (``VmRSS`` in ``/proc/<pid>/status``) are read once
they are idle (the baselines). Then 8 clients run HTTP lifecycles of the two-task process for a while
(``--seconds``) and the worker fires a batch of timers that are already due; the sizes are read again,
with the peak (``VmHWM``). For the two gunicorn workers the table gives the median and the larger.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.bench_http import CLIENTS, concurrent
from bench.bench_timers import ALREADY_DUE, create_instances
from bench.common import pg_schema, postgres_url, report, rss_mib
from bench.server import free_port, gunicorn, issue_tokens
from engine.bpmn import SourceFile
from engine.container import build_services
from engine.db import transaction
from engine.models import Timer
from engine.registry import Deployer
from engine.settings import PROJECT_ROOT, Settings

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _deploy(url: str) -> None:
    services = build_services(Settings(database_url=url))
    with transaction(services.sessions) as session:
        Deployer(session, services.context.registry, services.clock).deploy(
            [
                SourceFile(name, (FIXTURES / name).read_text())
                for name in ("two_tasks.bpmn", "timer_until.bpmn")
            ],
            by="bench",
        )
    services.db.dispose()


def _sizes(name: str, pids: list[int], *, baseline: str | None = None, **extra: Any) -> dict[str, Any]:
    rss = [rss_mib(pid) for pid in pids]
    peak = [rss_mib(pid, "VmHWM") for pid in pids]
    row: dict[str, Any] = {
        "name": name,
        "median_mib": statistics.median(rss),
        "p95_mib": max(rss),
        "n": len(pids),
        "peak_mib": max(peak),
        **extra,
    }
    if baseline:
        row["baseline"] = baseline
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a shorter load and fewer timers")
    parser.add_argument("--seconds", type=float, default=None, help="length of the HTTP load")
    args = parser.parse_args(argv)
    base = postgres_url()
    if base is None:
        print("bench_memory: set OPSFLOW_BENCH_DATABASE_URL to a PostgreSQL database; skipped")
        return
    seconds = args.seconds or (2.0 if args.quick else 20.0)
    timers = 100 if args.quick else 2000
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, pg_schema(base, "bench_memory") as url:
        _deploy(url)
        key_dir = Path(tmp)
        port = free_port()
        tokens = issue_tokens(key_dir, port, CLIENTS)
        worker = subprocess.Popen(
            [sys.executable, "-m", "engine.worker", "--database-url", url, "--worker-id", "bench-memory"],
            cwd=PROJECT_ROOT,
            env=dict(os.environ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with gunicorn(url, key_dir, port) as server:
                time.sleep(1.5)  # both idle, start-up finished
                workers = server.worker_pids()
                idle_server = "gunicorn worker, idle after start (baseline)"
                idle_worker = "engine.worker, idle after start (baseline)"
                rows.append(_sizes(idle_server, workers))
                rows.append(_sizes(idle_worker, [worker.pid]))
                rows.append(_sizes("gunicorn master", [server.process.pid], baseline=idle_server))
                load = concurrent(port, tokens, seconds)
                done = len(load["lifecycles"])
                rows.append(
                    _sizes(f"gunicorn worker, after {done:,} lifecycles", workers, baseline=idle_server)
                )
            create_instances(url, timers, ALREADY_DUE)
            engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
            deadline = time.monotonic() + 300
            with engine.connect() as conn:
                while conn.execute(sa.select(sa.func.count()).select_from(Timer)).scalar_one() > 0:
                    if time.monotonic() > deadline:
                        raise TimeoutError("the worker did not fire the timers within 300 s")
                    time.sleep(0.2)
                    conn.rollback()
            engine.dispose()
            rows.append(
                _sizes(f"engine.worker, after firing {timers:,} timers", [worker.pid], baseline=idle_worker)
            )
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
    report(
        "Memory: resident set size (MiB; p95 column = the largest process)",
        rows,
        json_name="memory",
        unit="mib",
        columns=[("peak_mib", "peak MiB")],
    )


if __name__ == "__main__":
    main()
