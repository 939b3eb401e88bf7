"""The benchmark harness: percentiles, the ratio against a baseline row, and the JSON it leaves."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import common


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert common.percentile(values, 0.95) == 95.0
    assert common.percentile(values, 0.5) == 50.0
    assert common.percentile([7.0], 0.99) == 7.0
    assert common.summarise([3.0, 1.0, 2.0]) == {"median_ms": 2.0, "p95_ms": 3.0, "n": 3}


def test_report_compares_each_row_with_its_baseline_and_writes_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    rows = [
        {"name": "floor", "median_ms": 2.0, "p95_ms": 3.0, "n": 10},
        {"name": "subject", "median_ms": 5.0, "p95_ms": 9.0, "n": 10, "per_s": 12.5},
        {"name": "against subject", "baseline": "subject", "median_ms": 10.0, "p95_ms": 11.0, "n": 4},
    ]
    path = common.report("Title", rows, json_name="sample", columns=[("per_s", "per s")])
    document = json.loads(path.read_text())
    assert path == tmp_path / "sample.json"
    assert document["title"] == "Title"
    assert [row["ratio"] for row in document["rows"]] == [1.0, 2.5, 2.0]
    assert document["rows"][1]["per_s"] == 12.5
    printed = capsys.readouterr().out
    assert "subject" in printed
    assert "2.50x" in printed
    assert "12.5" in printed


def test_cpu_and_memory_of_a_process_come_from_proc() -> None:
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux /proc")
    assert common.rss_mib(os.getpid()) > 1
    assert common.rss_mib(os.getpid(), "VmHWM") >= common.rss_mib(os.getpid())
    assert common.cpu_seconds([os.getpid()]) > 0
    assert os.getpid() in common.children(os.getppid())
