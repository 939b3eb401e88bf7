"""HTTP lifecycle on the production server setup, sequential and with 8 concurrent clients, audit on and off.

A lifecycle is five authenticated requests on one keep-alive connection: start an instance of the
two-user-task process, list the inbox to find its first task, complete it, list the inbox again for the
second task, complete that. The server is gunicorn with two gthread workers of four threads
(``bench/server.py``) against PostgreSQL, in a schema of its own; tokens are real RS256 access tokens
from the embedded issuer.

Baselines measured in the same run: the same lifecycle in-process through ``InstanceService`` (no HTTP,
no token), and the liveness probe (HTTP and gunicorn alone) for single requests.

The concurrent run also reports the CPU time the gunicorn workers used per lifecycle (from
``/proc/<pid>/stat``), and the load generator's own share of a core.

Audit: the concurrent run is repeated against ``bench.wsgi:app_without_audit()``, the same app with
:meth:`engine.audit.AuditLog.record` building its event without locking, hashing or inserting; the
difference in throughput is what the audit trail costs. Every event of the audited runs is checked to
be on its case's own chain (none on the shared ``system`` chain).

Targets (benchmark 2): sequential median at most 15 ms per lifecycle; at least 150 lifecycles per
second with 8 concurrent clients on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.bench_engine import opsflow_steps
from bench.common import cpu_seconds, measure, pg_schema, postgres_url, report, summarise
from bench.server import (
    APP_WITHOUT_AUDIT,
    PRODUCTION_APP,
    THREADS,
    WORKERS,
    Client,
    free_port,
    gunicorn,
    issue_tokens,
)

CLIENTS = 8


def sequential(port: int, token: str, count: int, *, probes: int) -> Client:
    client = Client(port, token)
    for _ in range(5):
        client.lifecycle(f"warm-{uuid.uuid4()}")
        client.probe()
    client.samples.clear()
    client.lifecycles.clear()
    for _ in range(count):
        client.lifecycle(f"seq-{uuid.uuid4()}")
    for _ in range(probes):
        client.probe()
    client.close()
    return client


def concurrent(
    port: int, tokens: list[str], seconds: float, *, server_pids: Sequence[int] = ()
) -> dict[str, Any]:
    """``len(tokens)`` clients running lifecycles back to back for ``seconds`` after a short warm-up.

    ``server_pids`` are the server's processes, whose CPU time during the run is reported.
    """
    clients = [Client(port, token) for token in tokens]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(clients) + 1)
    stop_at: list[float] = []

    def run(client: Client) -> None:
        try:
            for _ in range(3):
                client.lifecycle(f"warm-{uuid.uuid4()}")
            barrier.wait()
            client.samples.clear()
            client.lifecycles.clear()
            client.finished_at.clear()
            while time.monotonic() < stop_at[0]:
                client.lifecycle(f"load-{uuid.uuid4()}")
        except Exception as exc:  # noqa: BLE001  (re-raised by the main thread)
            errors.append(exc)
            barrier.abort()
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    stop_at.append(time.monotonic() + 3600)
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait()
    began = time.monotonic()
    cpu_began = time.process_time()
    server_began = cpu_seconds(server_pids)
    stop_at[0] = began + seconds
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    server_cpu = cpu_seconds(server_pids) - server_began
    ended = max(at for client in clients for at in client.finished_at)
    done = sum(len(client.lifecycles) for client in clients)
    by_kind: dict[str, list[float]] = {}
    for client in clients:
        for kind, values in client.samples.items():
            by_kind.setdefault(kind, []).extend(values)
    return {
        "per_second": done / (ended - began),
        "lifecycles": [value for client in clients for value in client.lifecycles],
        "requests": by_kind,
        "client_cpu_share": (time.process_time() - cpu_began) / (ended - began),
        "seconds": ended - began,
        "server_cpu_seconds": server_cpu,
    }


def _statements_per_lifecycle(lifecycle: Any) -> float:
    """SQL statements sent to the database by one in-process lifecycle (mean of ten)."""
    sent = [0]

    def count(*_: Any) -> None:
        sent[0] += 1

    sa.event.listen(sa.Engine, "before_cursor_execute", count)
    try:
        for _ in range(10):
            lifecycle()
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", count)
    return sent[0] / 10


def _system_chain_events(url: str) -> int:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        count = conn.exec_driver_sql("SELECT count(*) FROM audit_event WHERE chain = 'system'").scalar_one()
    engine.dispose()
    return int(count)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer lifecycles, shorter concurrent runs")
    parser.add_argument("--workers", type=int, default=WORKERS, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=THREADS, help="threads per gunicorn worker")
    args = parser.parse_args(argv)
    base = postgres_url()
    if base is None:
        print("bench_http: set OPSFLOW_BENCH_DATABASE_URL to a PostgreSQL database; skipped")
        return
    count, seconds, rounds = (10, 2.0, 1) if args.quick else (150, 15.0, 2)
    rows: list[dict[str, Any]] = []
    labels = {"audit on": PRODUCTION_APP, "audit off": APP_WITHOUT_AUDIT}
    results = {label: _Totals() for label in labels}
    with tempfile.TemporaryDirectory() as tmp, pg_schema(base, "bench_http") as url:
        steps = opsflow_steps(url)  # deploys the two-task process
        rows.append(
            {
                "name": "in-process lifecycle, InstanceService (baseline)",
                **measure(steps["lifecycle"], repeat=count * rounds, warmup=10),
            }
        )
        statements = _statements_per_lifecycle(steps["lifecycle"])
        key_dir = Path(tmp)
        port = free_port()
        tokens = issue_tokens(key_dir, port, CLIENTS)
        # on, off, on, off, ...: a drift in the machine's load touches both alike
        for _ in range(rounds):
            for label, app in labels.items():
                server_setup = gunicorn(
                    url, key_dir, port, app=app, workers=args.workers, threads=args.threads
                )
                with server_setup as server:
                    results[label].add(
                        sequential(port, tokens[0], count, probes=count * 2),
                        concurrent(port, tokens, seconds, server_pids=server.worker_pids()),
                    )
        system_events = _system_chain_events(url)

    on, off = results["audit on"], results["audit off"]
    probe = "GET /health/live"
    floor = "HTTP probe, GET /health/live (floor)"
    rows.append({"name": floor, **summarise(on.sequential[probe])})
    rows.append({"name": "sequential: lifecycle (5 requests)", **summarise(on.sequential_lifecycles)})
    for kind, values in on.sequential.items():
        if kind != probe:
            rows.append({"name": f"sequential: {kind}", "baseline": floor, **summarise(values)})
    rows.append({"name": "sequential, audit off: lifecycle", **summarise(off.sequential_lifecycles)})
    for label, totals in results.items():
        rows.append(
            {
                "name": f"{CLIENTS} clients, {label}: lifecycle",
                **summarise(totals.concurrent_lifecycles),
                "lifecycles_per_s": round(totals.per_second, 1),
                "client_cpu_share": round(totals.client_cpu / totals.seconds, 2),
                "server_cpu_ms": round(1000 * totals.server_cpu / len(totals.concurrent_lifecycles), 1),
            }
        )
    for kind, values in on.concurrent.items():
        rows.append({"name": f"{CLIENTS} clients, audit on: {kind}", "baseline": floor, **summarise(values)})
    server = f"gunicorn --workers {args.workers} --worker-class gthread --threads {args.threads}"
    path = report(
        f"HTTP lifecycle on PostgreSQL ({server}; {os.cpu_count()} cores)",
        rows,
        json_name="http",
        columns=[("lifecycles_per_s", "per s"), ("server_cpu_ms", "srv CPU ms")],
    )
    seq_median = summarise(on.sequential_lifecycles)["median_ms"]
    print(
        f"\nsequential lifecycle median {seq_median:.1f} ms (target <= 15 ms); "
        f"{CLIENTS} clients: {on.per_second:.1f} lifecycles/s with audit, {off.per_second:.1f} without "
        f"(target >= 150/s; audit costs {100 * (1 - on.per_second / off.per_second):.0f}% of throughput); "
        f"audit events on the shared system chain during the runs: {system_events}; "
        f"SQL statements per in-process lifecycle: {statements}"
    )
    _annotate(path, system_events=system_events, rounds=rounds, statements_per_lifecycle=statements)


class _Totals:
    """One server variant's samples over every round."""

    def __init__(self) -> None:
        self.sequential: dict[str, list[float]] = {}
        self.sequential_lifecycles: list[float] = []
        self.concurrent: dict[str, list[float]] = {}
        self.concurrent_lifecycles: list[float] = []
        self.seconds = 0.0
        self.client_cpu = 0.0
        self.server_cpu = 0.0

    def add(self, seq: Client, load: dict[str, Any]) -> None:
        for kind, values in seq.samples.items():
            self.sequential.setdefault(kind, []).extend(values)
        self.sequential_lifecycles.extend(seq.lifecycles)
        for kind, values in load["requests"].items():
            self.concurrent.setdefault(kind, []).extend(values)
        self.concurrent_lifecycles.extend(load["lifecycles"])
        self.seconds += load["seconds"]
        self.client_cpu += load["client_cpu_share"] * load["seconds"]
        self.server_cpu += load["server_cpu_seconds"]

    @property
    def per_second(self) -> float:
        return len(self.concurrent_lifecycles) / self.seconds


def _annotate(path: Path, **extra: Any) -> None:
    import json

    document = json.loads(path.read_text())
    document.update(extra)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
