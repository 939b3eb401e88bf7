"""Run every benchmark: `python -m bench` (make bench) or `python -m bench --quick` (make bench-quick)."""

from __future__ import annotations

import importlib
import sys
import time

BENCHMARKS = (
    "bench.bench_engine",
    "bench.bench_http",
    "bench.bench_history",
    "bench.bench_timers",
    "bench.bench_inbox",
    "bench.bench_memory",
    "bench.bench_sandbox",
)


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    began = time.monotonic()
    for name in BENCHMARKS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        started = time.monotonic()
        module.main(["--quick"] if quick else [])
        print(f"[{name} took {time.monotonic() - started:.0f} s]")
    print(f"\nall benchmarks took {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
