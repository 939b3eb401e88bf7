"""Run every benchmark: `python -m bench` (make bench) or `python -m bench --quick` (make bench-quick)."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("bench.bench_engine", "bench.bench_sandbox", "bench.bench_timers")


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    for name in BENCHMARKS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.main(["--quick"] if quick else [])


if __name__ == "__main__":
    main()
