"""The ledger benchmark runs end to end (``--quick``) and writes every figure it promises.

No timing is asserted beyond "positive": the machine running the tests may be busy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import liqeng

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "ledger_bench.py"
SRC = Path(liqeng.__file__).resolve().parent.parent


def run_quick(script: Path, out: Path, *extra: str) -> tuple[dict[str, Any], str]:
    """Run ``script --quick --json out`` on this checkout's sources: its JSON and table."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(script), "--quick", "--json", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(out.read_text())
    return result, proc.stdout


@pytest.mark.slow
def test_quick_benchmark_writes_its_figures(tmp_path: Path) -> None:
    res, table = run_quick(BENCH, tmp_path / "ledger.json", "--tmpdir", str(tmp_path))
    assert "postings/s" in table

    assert res["mode"] == "quick"
    assert res["durability"] == {"journal_mode": "wal", "synchronous": "FULL"}
    machine = res["machine"]
    for key in ("python", "sqlite", "cpu_count", "date", "git_commit"):
        assert machine[key], key
    for name, per_commit in (("single", 1), ("batched", 1000)):
        fig = res[name]
        assert fig["tx_per_commit"] == per_commit
        assert fig["transactions"] > 0
        for key in ("seconds", "commits_per_s", "tx_per_s", "postings_per_s"):
            assert fig[key] > 0, (name, key)
        assert fig["postings_per_s"] == pytest.approx(2 * fig["tx_per_s"])
    reopen = res["reopen"]
    assert reopen["transactions"] == 20_000
    assert reopen["events"] > reopen["transactions"]
    assert 0 < reopen["tail_tx"] < reopen["transactions"]
    for key in ("snapshot_at_end_s", "snapshot_then_tail_s"):
        runs = reopen[key]
        assert runs["median"] > 0 and runs["min"] > 0, key
        assert len(runs["runs"]) == reopen["repeats"], key
    assert reopen["build"]["tx_per_s"] > 0


SCAN_BENCH = BENCH.parent / "scan_bench.py"


@pytest.mark.slow
def test_quick_scan_benchmark_writes_its_figures(tmp_path: Path) -> None:
    res, table = run_quick(SCAN_BENCH, tmp_path / "scan.json")
    assert "full scan" in table
    assert res["mode"] == "quick"
    assert res["incremental"]["equals_full_scan"] is True
    for section, key in (
        ("full_scan", "median"),
        ("incremental", "median"),
        ("black76", "options_per_s"),
        ("copy", "gb_per_s"),
        ("memory", "scan_traced_peak_bytes"),
    ):
        assert res[section][key] > 0, (section, key)
    assert res["book"]["accounts"] > 0 and res["book"]["positions"] > 0
    sc = res["scenario_scan"]
    assert "scenario scan" in table
    assert sc["scenarios"] == 23
    assert sc["incremental_2_workers"]["equals_full_scan"] is True
    for key in ("full_2_workers", "full_1_worker", "incremental_2_workers", "incremental_1_worker"):
        assert sc[key]["median"] > 0, key
    assert sc["scan_traced_peak_bytes"] > 0
    assert all(v > 0 for v in sc["breakdown_1_thread_s"].values())


LIQ_BENCH = BENCH.parent / "liquidation_bench.py"


@pytest.mark.slow
def test_quick_liquidation_benchmark_liquidates_every_eligible_account(tmp_path: Path) -> None:
    res, table = run_quick(LIQ_BENCH, tmp_path / "liq.json", "--tmpdir", str(tmp_path))
    assert "liquidations per second" in table
    assert res["mode"] == "quick"
    single, batched = res["single"], res["batched"]
    assert single["liquidations"] > 0 and single["per_s"] > 0
    assert 0 < single["p50_ms"] <= single["p99_ms"]
    # one price update makes every account eligible, and the step liquidates them all
    assert batched["liquidations"] == batched["eligible"] == res["accounts"]
    assert batched["seconds_update_to_all_committed"] > 0 and batched["per_s"] > 0
