"""The benchmark harness: time a callable, print the figures as a table and keep them as JSON.

A benchmark measures its subject and a baseline in the same run, so the ratio survives a slow machine::

    rows = [
        {"name": "plain eval (baseline)", **measure(plain, repeat=2000, warmup=200)},
        {"name": "sandbox", **measure(sandboxed, repeat=2000, warmup=200)},
    ]
    report("Gateway conditions", rows, json_name="sandbox")

The ratio column compares each row with the row named by its ``"baseline"`` key, or else with the first
row. Figures land in ``var/bench/<json_name>.json``.

The PostgreSQL benchmarks each work in a schema of their own (:func:`pg_schema`), created and dropped
in the database named by ``OPSFLOW_BENCH_DATABASE_URL`` (or ``OPSFLOW_TEST_DATABASE_URL``); the server
itself is never reconfigured.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

RESULTS_DIR = Path(__file__).resolve().parent.parent / "var" / "bench"


def measure(fn: Callable[[], object], *, repeat: int, warmup: int = 0, number: int = 1) -> dict[str, Any]:
    """Call ``fn`` ``warmup`` times, then time ``repeat`` samples of ``number`` calls each.

    Returns the median and 95th percentile of one call in milliseconds, and the number of samples.
    Use ``number`` > 1 for calls of a few microseconds, where the clock's own cost would show.
    """
    if repeat < 1 or number < 1:
        raise ValueError("repeat and number must be at least 1")
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(repeat):
        start = clock()
        for _ in range(number):
            fn()
        samples.append((clock() - start) / number / 1e6)
    samples.sort()
    p95 = samples[min(len(samples) - 1, math.ceil(0.95 * len(samples)) - 1)]
    return {"median_ms": statistics.median(samples), "p95_ms": p95, "n": repeat}


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` 0.95 for p95) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def summarise(samples: Sequence[float], unit: str = "ms") -> dict[str, Any]:
    """Median, 95th percentile and count of ``samples``, keyed as :func:`report` expects."""
    return {
        f"median_{unit}": statistics.median(samples),
        f"p95_{unit}": percentile(samples, 0.95),
        "n": len(samples),
    }


def report(
    title: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    json_name: str,
    unit: str = "ms",
    columns: Sequence[tuple[str, str]] = (),
) -> Path:
    """Print an aligned table of ``rows`` and write them, with the run's context, to JSON.

    Each row needs ``name``, ``median_<unit>``, ``p95_<unit>`` and ``n``; ``baseline`` (a row name) is
    optional. ``columns`` adds (key, heading) columns printed after ``n`` for rows that have the key.
    Returns the path of the JSON file.
    """
    median, p95 = f"median_{unit}", f"p95_{unit}"
    by_name = {row["name"]: row for row in rows}
    table: list[dict[str, Any]] = []
    for row in rows:
        base = by_name[row["baseline"]] if "baseline" in row else rows[0]
        ratio = row[median] / base[median] if base[median] else math.nan
        table.append({**row, "ratio": round(ratio, 3)})

    width = max([len("name"), *(len(str(row["name"])) for row in table)])
    extra = "".join(f"  {heading:>10}" for _, heading in columns)
    print(f"\n{title}")
    print(f"{'name':<{width}}  {'median ' + unit:>10}  {'p95 ' + unit:>10}  {'ratio':>7}  {'n':>6}{extra}")
    print("-" * (width + 42 + 12 * len(columns)))
    for row in table:
        cells = "".join(f"  {_cell(row.get(key)):>10}" for key, _ in columns)
        print(
            f"{row['name']:<{width}}  {row[median]:>10.4g}  {row[p95]:>10.4g}  "
            f"{row['ratio']:>6.2f}x  {row['n']:>6}{cells}"
        )

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{json_name}.json"
    document = {
        "title": title,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "rows": table,
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {path}")
    return path


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def postgres_url() -> str | None:
    """The PostgreSQL database the benchmarks may make schemas in, or None when none is configured."""
    url = os.environ.get("OPSFLOW_BENCH_DATABASE_URL") or os.environ.get("OPSFLOW_TEST_DATABASE_URL")
    return url if url and url.startswith("postgresql") else None


@contextmanager
def pg_schema(base_url: str, prefix: str) -> Iterator[str]:
    """A fresh schema in ``base_url``, migrated to head; yields a URL whose search path is that schema.

    The schema is dropped afterwards, whatever happens.
    """
    schema = f"{prefix}_{os.getpid()}_{int(time.time())}"
    engine = sa.create_engine(base_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in base_url else "?"
    url = f"{base_url}{separator}options=-csearch_path%3D{schema}"
    try:
        migrate(url)
        yield url
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()


def migrate(url: str) -> None:
    """Apply the Alembic migrations to ``url``, as ``opsflow db upgrade`` does."""
    from alembic import command
    from alembic.config import Config

    from engine.settings import PROJECT_ROOT

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        config = Config(str(PROJECT_ROOT / "alembic.ini"))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    engine.dispose()


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident set size (``VmRSS``; ``VmHWM`` for its peak) of process ``pid`` in MiB, from ``/proc``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no {field} for process {pid}")


def cpu_seconds(pids: Sequence[int]) -> float:
    """User plus system CPU time used so far by the processes ``pids``, from ``/proc/<pid>/stat``."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime and stime, the 14th and 15th fields
    return ticks / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The direct child processes of ``pid`` (gunicorn's workers under its master)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name in parentheses may contain spaces; the parent pid is the 2nd field after it
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)
