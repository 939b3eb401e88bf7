"""The sandbox's cost: typical conditions and scripts, cached, against plain eval/exec of the same code.

Each sandboxed row is compared with its own baseline row: the same source, compiled once with the
built-in ``compile`` and run with ``eval``/``exec`` on a fresh copy of the same data and helpers. The
last pair shows the cost of a cache miss (RestrictedPython compile plus the policy's rewriting).

Run with ``python -m bench.bench_sandbox`` (``--quick`` for fewer samples).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import measure, report
from engine.sandbox import Sandbox

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
HELPERS: dict[str, Callable[..., Any]] = {
    "now": lambda: NOW,
    "days_after": lambda start, days: start + timedelta(days=days),
}
DATA: dict[str, Any] = {
    "amount": 2500,
    "risk": {"level": "high", "score": 7},
    "approvals": {"inspector": True},
    "officers": [{"name": f"PC {n}", "firearms": n % 3 == 0} for n in range(6)],
    "score": 7,
    "assessment": {
        "factors": [
            {"name": name, "weight": weight, "kind": kind}
            for name, weight, kind in [
                ("history", 4, "intel"),
                ("weapons", 6, "weapons"),
                ("location", 2, "intel"),
                ("vulnerability", 3, "welfare"),
                ("noise", 0, "intel"),
            ]
        ]
    },
}
CONDITIONS = {
    "condition: comparison": "amount > 1000 and risk['level'] == 'high'",
    "condition: dict lookups": "risk['level'] in ('high', 'critical') and not approvals.get('chief')",
    "condition: generator": "len(officers) >= 2 and any(o['firearms'] for o in officers)",
    "DMN cell": "(score) == (7)",
}
SCRIPTS = {
    "script: assignments and helper": (
        "status = 'authorised' if approvals.get('inspector') else 'pending'\n"
        "review_due = days_after(now(), 28)\n"
    ),
    "script: risk scoring": (
        "factors = [f for f in assessment['factors'] if f['weight'] > 0]\n"
        "score = sum(f['weight'] for f in factors)\n"
        "counts = {}\n"
        "for f in factors:\n"
        "    counts[f['kind']] = counts.get(f['kind'], 0) + 1\n"
        "names = sorted((f['name'] for f in factors), key=lambda n: n.lower())\n"
        "summary = f\"{len(factors)} factors, score {score}: {', '.join(names)}\"\n"
    ),
}


def _plain_eval(source: str) -> Callable[[], object]:
    code = compile(source, "<bench>", "eval")
    return lambda: eval(code, {**HELPERS, **DATA})  # noqa: S307 - the unsandboxed baseline being compared


def _plain_exec(source: str) -> Callable[[], object]:
    code = compile(source, "<bench>", "exec")
    return lambda: exec(code, {**HELPERS, **DATA})  # noqa: S102 - the unsandboxed baseline being compared


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    args = parser.parse_args(argv)
    repeat = 100 if args.quick else 400
    sandbox = Sandbox(HELPERS)
    rows: list[dict[str, Any]] = []

    def pair(name: str, baseline: Callable[[], object], sandboxed: Callable[[], object], number: int) -> None:
        base_name = f"{name} (plain baseline)"
        rows.append(
            {
                "name": base_name,
                "baseline": base_name,
                **measure(baseline, repeat=repeat, warmup=50, number=number),
            }
        )
        rows.append(
            {
                "name": f"{name} (sandbox)",
                "baseline": base_name,
                **measure(sandboxed, repeat=repeat, warmup=50, number=number),
            }
        )

    for name, source in CONDITIONS.items():
        pair(name, _plain_eval(source), lambda source=source: sandbox.evaluate(source, DATA), number=20)
    for name, source in SCRIPTS.items():
        pair(name, _plain_exec(source), lambda source=source: sandbox.execute(source, dict(DATA)), number=10)

    # A cache of one entry and two alternating sources: every call compiles.
    uncached = Sandbox(HELPERS, cache_size=1)
    sources = list(CONDITIONS.values())[:2]
    turn = iter(range(10**9))

    def compile_and_evaluate() -> object:
        return uncached.evaluate(sources[next(turn) % 2], DATA)

    def plain_compile_and_eval() -> object:
        code = compile(sources[next(turn) % 2], "<bench>", "eval")
        return eval(code, {**HELPERS, **DATA})  # noqa: S307 - the unsandboxed baseline being compared

    pair("cache miss: compile + evaluate", plain_compile_and_eval, compile_and_evaluate, number=5)
    report("Script sandbox: cached evaluate/execute against plain eval/exec", rows, json_name="sandbox")


if __name__ == "__main__":
    main()
