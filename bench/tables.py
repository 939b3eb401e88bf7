"""Print the figures in ``var/bench/*.json`` as Markdown tables, for ``docs/performance.md``.

``python -m bench.tables [NAME ...]`` (names such as ``http`` or ``inbox``; default: every file).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from bench.common import RESULTS_DIR

EXTRA = {
    "lifecycles_per_s": "per s",
    "server_cpu_ms": "server CPU ms per lifecycle",
    "p99_ms": "p99 ms",
    "rows": "rows",
    "index": "index",
    "state_bytes": "state bytes",
    "history_rows": "history rows",
    "stored_bytes": "stored bytes",
    "peak_mib": "peak MiB",
}


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


def table(document: dict[str, Any]) -> str:
    rows = document["rows"]
    unit = "mib" if "median_mib" in rows[0] else "ms"
    label = "MiB" if unit == "mib" else "ms"
    extra = [key for key in EXTRA if any(key in row for row in rows)]
    header = ["", f"median {label}", f"p95 {label}", "ratio", "n", *(EXTRA[key] for key in extra)]
    lines = [
        f"{document['title']} (recorded {document['recorded_at']})",
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
    ]
    for row in rows:
        cells = [
            str(row["name"]),
            _number(row[f"median_{unit}"]),
            _number(row[f"p95_{unit}"]),
            f"{row['ratio']:.2f}",
            _number(row["n"]),
            *(_number(row.get(key)) for key in extra),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    names = argv if argv is not None else sys.argv[1:]
    paths = [RESULTS_DIR / f"{name}.json" for name in names] or sorted(RESULTS_DIR.glob("*.json"))
    for path in paths:
        print(table(json.loads(path.read_text())))
        print()


if __name__ == "__main__":
    main()
