"""Oracle feed throughput and per-step latency.

Usage::

    python benchmarks/oracle_bench.py [--quick] [--json out.json]

A ``median_feed`` of 100 markets x 7 equally weighted sources (quorum 4, the default
outlier guards). Every step each source reports every market (700 reports): a random walk
per market with per-source noise of a few basis points, and one source in twenty steps
off by 20% (an outlier the feed rejects). Reports are built before the clock starts.

- ``throughput``: ``submit`` of the 700 reports then ``update``, step after step:
  reports aggregated per second;
- ``step``: what the engine's oracle stage costs per ``Engine.step`` (``feed.snapshot()``
  for rollback, 700 ``submit``, ``update``), per step, with the three parts timed apart.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from liqeng.oracle.feed import Feed  # noqa: E402
from liqeng.oracle.presets import median_feed  # noqa: E402
from liqeng.oracle.reports import SourceReport  # noqa: E402

MARKETS = [f"M{i:03d}" for i in range(100)]
SOURCES = [f"src{i}" for i in range(7)]
QUORUM = 4
START_TS = 1_700_000_000
STEP_S = 5
SEED = 20_200_312

FULL = {"steps": 400, "repeats": 5}
QUICK = {"steps": 40, "repeats": 2}

TARGET_REPORTS_S = 100_000
TARGET_STEP_MS = 1.0


def build_steps(n_steps: int) -> list[tuple[int, list[SourceReport]]]:
    rng = random.Random(SEED)
    price = {m: rng.randrange(10**8, 10**11) for m in MARKETS}
    out = []
    for k in range(n_steps):
        ts = START_TS + k * STEP_S
        reports = []
        for m in MARKETS:
            price[m] = max(1000, int(price[m] * (1 + rng.gauss(0, 0.002))))
            for s in SOURCES:
                p = int(price[m] * (1 + rng.gauss(0, 0.0003)))
                if rng.random() < 0.05 / len(SOURCES):
                    p = int(p * 0.8)
                reports.append(SourceReport(s, m, p, ts))
        out.append((ts, reports))
    return out


def new_feed() -> Feed:
    return median_feed(SOURCES, MARKETS, max_age_s=60, quorum=QUORUM)


@contextmanager
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def bench_throughput(steps: list[tuple[int, list[SourceReport]]], repeats: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeats):
        feed = new_feed()
        with no_gc():
            t0 = time.perf_counter()
            for ts, reports in steps:
                for r in reports:
                    feed.submit(r, ts)
                feed.update(ts)
            runs.append(time.perf_counter() - t0)
    n = sum(len(r) for _, r in steps)
    best = min(runs)
    return {
        "reports": n,
        "steps": len(steps),
        "seconds": runs,
        "reports_per_s": n / statistics.median(runs),
        "reports_per_s_best": n / best,
        "target_reports_per_s": TARGET_REPORTS_S,
    }


def bench_step(steps: list[tuple[int, list[SourceReport]]], repeats: int) -> dict[str, Any]:
    per_step: list[float] = []
    parts: dict[str, list[float]] = {"snapshot": [], "submit": [], "update": []}
    clock = time.perf_counter
    for _ in range(repeats):
        feed = new_feed()
        with no_gc():
            for ts, reports in steps:
                t0 = clock()
                feed.snapshot()
                t1 = clock()
                for r in reports:
                    feed.submit(r, ts)
                t2 = clock()
                feed.update(ts)
                t3 = clock()
                per_step.append(t3 - t0)
                parts["snapshot"].append(t1 - t0)
                parts["submit"].append(t2 - t1)
                parts["update"].append(t3 - t2)
    ms = sorted(x * 1e3 for x in per_step)
    return {
        "markets": len(MARKETS),
        "reports_per_step": len(MARKETS) * len(SOURCES),
        "steps_timed": len(per_step),
        "median_ms": statistics.median(ms),
        "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))],
        "parts_median_ms": {k: statistics.median(v) * 1e3 for k, v in parts.items()},
        "target_ms": TARGET_STEP_MS,
    }


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out + ("+dirty" if dirty else "")


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
    }


def render(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    thr, step = results["throughput"], results["step"]
    console = Console(width=120)
    title = f"liqeng oracle feed, {len(MARKETS)} markets x {len(SOURCES)} sources"
    table = Table(title=f"{title} ({results['mode']})")
    for col in ("measure", "value", "target"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    table.add_row(
        "reports aggregated/s (submit + update)",
        f"{thr['reports_per_s']:,.0f}",
        f">= {TARGET_REPORTS_S:,}",
    )
    table.add_row(
        "oracle stage per engine step, median",
        f"{step['median_ms']:.2f} ms",
        f"<= {TARGET_STEP_MS:g} ms",
    )
    table.add_row("oracle stage per engine step, p99", f"{step['p99_ms']:.2f} ms", "")
    for part, v in step["parts_median_ms"].items():
        table.add_row(f"  of which {part}", f"{v:.3f} ms", "")
    console.print(table)
    m = results["machine"]
    console.print(
        f"python {m['python']}, {m['cpu_count']} cpus, {m['platform']}, "
        f"commit {m['git_commit']}, {m['date']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes (for tests)")
    parser.add_argument(
        "--json",
        type=Path,
        default=REPO / "benchmarks" / "results" / "oracle.json",
        help="where to write the figures (default benchmarks/results/oracle.json)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    steps = build_steps(sizes["steps"])
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "markets": len(MARKETS),
        "sources": len(SOURCES),
        "quorum": QUORUM,
        "machine": machine(),
        "throughput": bench_throughput(steps, sizes["repeats"]),
        "step": bench_step(steps, sizes["repeats"]),
    }
    render(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
