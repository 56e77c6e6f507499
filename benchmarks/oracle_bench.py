"""Oracle feed throughput and per-step latency.

Usage::

    python benchmarks/oracle_bench.py [--quick] [--json out.json]

A ``median_feed`` of 100 markets x 7 equally weighted sources (quorum 4, the default
outlier guards). Every step each source reports every market (700 reports): a random walk
per market with per-source noise of a few basis points, and one source in twenty steps
off by 20% (an outlier the feed rejects). Reports are built before the clock starts.

Three variants: ``fast/submit_many`` (``Feed`` with one ``submit_many`` per step, the
headline), ``fast/submit`` (``Feed`` with one ``submit`` per report, what ``Engine.step``
does) and ``reference/submit`` (``ReferenceFeed``, the pure-Python feed of before). The
compiled kernel is loaded (or compiled) by a warm-up before any clock starts; its time is
reported as ``warmup_s``. The variants' outputs are checked equal, untimed.

- ``throughput``: ingest of the 700 reports then ``update``, step after step: reports
  aggregated per second;
- ``step``: what the engine's oracle stage costs per ``Engine.step`` (``feed.snapshot()``
  for rollback, ingest, ``update``), per step, with the three parts timed apart.
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

from liqeng.oracle.config import MarketConfig, SourceConfig  # noqa: E402
from liqeng.oracle.feed import Feed  # noqa: E402
from liqeng.oracle.feed_reference import ReferenceFeed  # noqa: E402
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

VARIANTS = ("fast/submit_many", "fast/submit", "reference/submit")
HEADLINE = "fast/submit_many"

BEFORE = {
    "what": "ReferenceFeed (pure Python), per-report submit; full sizes, 2026-11-25T07:25",
    "reports_per_s": 191_355.95259243096,
    "step_median_ms": 4.117961500242018,
    "step_p99_ms": 8.369814999696246,
    "parts_median_ms": {
        "snapshot": 0.004989499984731083,
        "submit": 0.8196719998068147,
        "update": 3.2895785000164324,
    },
}
"""The figures this file held before the compiled kernel (``reference/submit`` re-measures
the same code on the day)."""


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


def new_reference() -> ReferenceFeed:
    configs = [
        MarketConfig(m, tuple(SourceConfig(n, max_age_s=60) for n in SOURCES), quorum=QUORUM)
        for m in MARKETS
    ]
    return ReferenceFeed(configs, 60)


Ingest = Any  # (feed, reports, ts) -> None


def _submit_each(feed: Any, reports: list[SourceReport], ts: int) -> None:
    for r in reports:
        feed.submit(r, ts)


def _submit_many(feed: Any, reports: list[SourceReport], ts: int) -> None:
    feed.submit_many(reports, ts)


def variant(name: str) -> tuple[Any, Ingest]:
    """``(new feed, ingest)`` of a variant."""
    impl, how = name.split("/")
    make = new_feed if impl == "fast" else new_reference
    return make, _submit_many if how == "submit_many" else _submit_each


def warm_up() -> float:
    """Load (or compile) the kernel: the first ``update`` of a process."""
    t0 = time.perf_counter()
    feed = new_feed()
    for ts, reports in build_steps(2):
        feed.submit_many(reports, ts)
        feed.update(ts)
    return time.perf_counter() - t0


def check_equal(steps: list[tuple[int, list[SourceReport]]]) -> None:
    """Every variant gives the reference's outputs (untimed)."""
    feeds = [(variant(v)[0](), variant(v)[1]) for v in VARIANTS]
    for ts, reports in steps:
        outs = []
        for feed, ingest in feeds:
            ingest(feed, reports, ts)
            outs.append(feed.update(ts))
        if any(o != outs[-1] for o in outs):
            raise AssertionError(f"the variants disagree at ts={ts}")


@contextmanager
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def run_throughput(steps: list[tuple[int, list[SourceReport]]], name: str) -> float:
    """Seconds to ingest and update every step once."""
    make, ingest = variant(name)
    feed = make()
    with no_gc():
        t0 = time.perf_counter()
        for ts, reports in steps:
            ingest(feed, reports, ts)
            feed.update(ts)
        return time.perf_counter() - t0


def summarise_throughput(
    steps: list[tuple[int, list[SourceReport]]], runs: list[float]
) -> dict[str, Any]:
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


def run_step(
    steps: list[tuple[int, list[SourceReport]]],
    name: str,
    per_step: list[float],
    parts: dict[str, list[float]],
) -> None:
    """Time every step once, as ``Engine.step`` runs the oracle, into ``per_step``/``parts``."""
    make, ingest = variant(name)
    clock = time.perf_counter
    feed = make()
    with no_gc():
        for ts, reports in steps:
            t0 = clock()
            feed.snapshot()
            t1 = clock()
            ingest(feed, reports, ts)
            t2 = clock()
            feed.update(ts)
            t3 = clock()
            per_step.append(t3 - t0)
            parts["snapshot"].append(t1 - t0)
            parts["submit"].append(t2 - t1)
            parts["update"].append(t3 - t2)


def summarise_step(
    per_step: list[float], parts: dict[str, list[float]], n_steps: int
) -> dict[str, Any]:
    """Medians over every timed step, and the median of each repeat (on a shared machine
    a whole repeat runs slower when another process takes the core)."""
    ms = sorted(x * 1e3 for x in per_step)
    by_repeat = [
        statistics.median(per_step[k : k + n_steps]) * 1e3 for k in range(0, len(per_step), n_steps)
    ]
    return {
        "markets": len(MARKETS),
        "reports_per_step": len(MARKETS) * len(SOURCES),
        "steps_timed": len(per_step),
        "median_ms": statistics.median(ms),
        "median_ms_by_repeat": by_repeat,
        "median_ms_best_repeat": min(by_repeat),
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

    console = Console(width=120)
    title = f"liqeng oracle feed, {len(MARKETS)} markets x {len(SOURCES)} sources"
    table = Table(title=f"{title} ({results['mode']})")
    table.add_column("measure", justify="left")
    for name in VARIANTS:
        table.add_column(name, justify="right")
    table.add_column("target", justify="right")
    v = results["variants"]
    table.add_row(
        "reports aggregated/s (ingest + update)",
        *(f"{v[n]['throughput']['reports_per_s']:,.0f}" for n in VARIANTS),
        f">= {TARGET_REPORTS_S:,}",
    )
    table.add_row(
        "oracle stage per engine step, median",
        *(f"{v[n]['step']['median_ms']:.3f} ms" for n in VARIANTS),
        f"<= {TARGET_STEP_MS:g} ms",
    )
    table.add_row(
        "  (median of the fastest repeat)",
        *(f"{v[n]['step']['median_ms_best_repeat']:.3f} ms" for n in VARIANTS),
        "",
    )
    table.add_row(
        "oracle stage per engine step, p99",
        *(f"{v[n]['step']['p99_ms']:.3f} ms" for n in VARIANTS),
        "",
    )
    for part in ("snapshot", "submit", "update"):
        table.add_row(
            f"  of which {part}",
            *(f"{v[n]['step']['parts_median_ms'][part]:.3f} ms" for n in VARIANTS),
            "",
        )
    console.print(table)
    console.print(f"kernel warm-up (first update of the process): {results['warmup_s']:.2f} s")
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
    warmup_s = warm_up()
    steps = build_steps(sizes["steps"])
    check_equal(steps)
    # Repeats outermost, variants interleaved: the machine's load drifts over a run, and
    # each variant should see the same drift.
    runs: dict[str, list[float]] = {n: [] for n in VARIANTS}
    per_step: dict[str, list[float]] = {n: [] for n in VARIANTS}
    parts: dict[str, dict[str, list[float]]] = {
        n: {"snapshot": [], "submit": [], "update": []} for n in VARIANTS
    }
    for _ in range(sizes["repeats"]):
        for name in VARIANTS:
            runs[name].append(run_throughput(steps, name))
            run_step(steps, name, per_step[name], parts[name])
    variants = {
        name: {
            "throughput": summarise_throughput(steps, runs[name]),
            "step": summarise_step(per_step[name], parts[name], len(steps)),
        }
        for name in VARIANTS
    }
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "markets": len(MARKETS),
        "sources": len(SOURCES),
        "quorum": QUORUM,
        "machine": machine(),
        "headline": HEADLINE,
        "throughput": variants[HEADLINE]["throughput"],
        "step": variants[HEADLINE]["step"],
        "variants": variants,
        "warmup_s": warmup_s,
        "before": BEFORE,
    }
    render(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
