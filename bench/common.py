"""The benchmark harness: time a callable, print the figures as a table and keep them as JSON.

A benchmark measures its subject and a baseline in the same run, so the ratio survives a slow machine::

    rows = [
        {"name": "plain eval (baseline)", **measure(plain, repeat=2000, warmup=200)},
        {"name": "sandbox", **measure(sandboxed, repeat=2000, warmup=200)},
    ]
    report("Gateway conditions", rows, json_name="sandbox")

The ratio column compares each row with the row named by its ``"baseline"`` key, or else with the first
row. Figures land in ``var/bench/<json_name>.json``.
"""

from __future__ import annotations

import json
import math
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


def report(title: str, rows: Sequence[Mapping[str, Any]], *, json_name: str) -> Path:
    """Print an aligned table of ``rows`` and write them, with the run's context, to JSON.

    Each row needs ``name``, ``median_ms``, ``p95_ms`` and ``n``; ``baseline`` (a row name) is optional.
    Returns the path of the JSON file.
    """
    by_name = {row["name"]: row for row in rows}
    table: list[dict[str, Any]] = []
    for row in rows:
        base = by_name[row["baseline"]] if "baseline" in row else rows[0]
        ratio = row["median_ms"] / base["median_ms"] if base["median_ms"] else math.nan
        table.append({**row, "ratio": round(ratio, 3)})

    width = max([len("name"), *(len(str(row["name"])) for row in table)])
    print(f"\n{title}")
    print(f"{'name':<{width}}  {'median ms':>10}  {'p95 ms':>10}  {'ratio':>7}  {'n':>6}")
    print("-" * (width + 42))
    for row in table:
        print(
            f"{row['name']:<{width}}  {row['median_ms']:>10.4g}  {row['p95_ms']:>10.4g}  "
            f"{row['ratio']:>6.2f}x  {row['n']:>6}"
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
