"""Simulation speed of the block-by-block simulator (issue 8).

    python benchmarks/blocks_bench.py [--accounts N] [--hours H] [--json out.json]

Runs ``scenarios/congested.toml`` (Black Thursday, 12 s blocks, a gas war, ten keepers, an
AMM) with ``N`` generated accounts for ``H`` hours of blocks from the start of the
crash day, end to end: building the population and opening its positions, then every
block (oracle, engine step with the scan, the chain, keepers, metrics). Prints a table
and writes the same figures as JSON (``benchmarks/results/blocks.json`` by default).
Target: a 24-hour replay (7,200 blocks) in <= 60 s on the 2-core machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from liqeng.sim.blocks import run_blocks  # noqa: E402
from liqeng.sim.scenario import load_scenario  # noqa: E402

SCENARIO = REPO / "scenarios" / "congested.toml"


def machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": commit,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


def bench(accounts: int, hours: float, tmpdir: Path | None) -> dict[str, Any]:
    sc = load_scenario(SCENARIO)
    assert sc.chain is not None
    chain = dataclasses.replace(sc.chain, start_s=86_400, duration_s=round(hours * 3600))
    sc = dataclasses.replace(sc, accounts=accounts, chain=chain)
    ticks: list[float] = []
    with tempfile.TemporaryDirectory(dir=tmpdir) as tmp:
        t0 = time.perf_counter()

        def on_block(n: int, total: int) -> None:
            if n == 1:
                ticks.append(time.perf_counter())

        run = run_blocks(sc, Path(tmp) / "b.sqlite", on_block)
        total = time.perf_counter() - t0
    setup = ticks[0] - t0 if ticks else 0.0
    blocks_s = total - setup
    return {
        "accounts": accounts,
        "hours": hours,
        "blocks": run.blocks,
        "total_s": total,
        "setup_s": setup,
        "blocks_s": blocks_s,
        "blocks_per_s": run.blocks / blocks_s if blocks_s else 0.0,
        "liquidations": run.liquidations,
        "head": run.head,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "blocks.json")
    ap.add_argument("--tmpdir", type=Path, default=None)
    args = ap.parse_args(argv)
    r = bench(args.accounts, args.hours, args.tmpdir)
    rows = [
        ("accounts", f"{r['accounts']:,}", ""),
        ("blocks (12 s)", f"{r['blocks']:,} ({r['hours']:g} h)", ""),
        ("setup: population, positions", f"{r['setup_s']:.1f} s", ""),
        ("blocks: oracle, engine, chain, keepers", f"{r['blocks_s']:.1f} s", ""),
        ("blocks per second", f"{r['blocks_per_s']:,.0f}", ""),
        ("end to end", f"{r['total_s']:.1f} s", "<= 60 s for 24 h"),
        ("liquidations", f"{r['liquidations']:,}", ""),
        ("log head", r["head"][:16] + "…", ""),
    ]
    print(f"{'figure':<42}{'measured':>28}  target")
    print("-" * 84)
    for name, value, target in rows:
        print(f"{name:<42}{value:>28}  {target}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine(), **r}, indent=2, sort_keys=True))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
