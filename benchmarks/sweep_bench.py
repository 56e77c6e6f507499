"""Sweep speed: the same grid serially and on a Dask LocalCluster of 1 and 2 workers.

Usage::

    python benchmarks/sweep_bench.py [--accounts N] [--json out.json] [--tmpdir DIR]

The grid: 4 penalty rates x 2 perpetual maintenance rates = 8 points, 1 seed, on a copy of
``scenarios/quickstart.toml`` with 100 accounts (Black Thursday, tick by tick). Three ways
to run it, each timed end to end by ``liqeng.sim.sweep.sweep``:

- ``serial``: one run after the other in this process (``scheduler="serial"``);
- ``dask-1``, ``dask-2``: a ``distributed.LocalCluster`` of 1 or 2 worker processes (one
  thread each), started first (its start-up time is reported apart: ``cluster_start_s``),
  then the sweep through its address twice: ``cold`` (each worker pays its own first
  imports and numba compilation inside the sweep, as a one-off sweep does) and ``warm``
  (the same workers again). Serial is timed cold and warm too.

Every way must give the same runs, down to each run's log head (``log_heads_agree``).
Figure to measure (issue 8): the speed-up of 2 workers over 1 (``speedup_2_vs_1``, warm;
``speedup_2_vs_1_cold`` with the workers' start-up inside).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from liqeng.sim.sweep import Grid, SweepResult, sweep  # noqa: E402

QUICKSTART = REPO / "scenarios" / "quickstart.toml"
GRID = Grid(
    {"penalty_rate": [0.02, 0.03, 0.04, 0.05], "perp_maintenance_rate": [0.05, 0.08]},
    seeds=[7],
)


def scenario(folder: Path, accounts: int) -> Path:
    """A copy of the quickstart with ``accounts`` accounts, its price data linked."""
    (folder / "data").symlink_to(QUICKSTART.parent / "data")
    text = QUICKSTART.read_text()
    assert "count = 300" in text
    path = folder / f"quickstart-{accounts}.toml"
    path.write_text(text.replace("count = 300", f"count = {accounts}", 1))
    return path


def on_cluster(path: Path, work: Path, workers: int) -> tuple[SweepResult, SweepResult, float]:
    """The sweep on a fresh LocalCluster of ``workers`` (cold: its workers import and
    compile), then again on the same cluster (warm); and the cluster's start-up time."""
    from distributed import LocalCluster

    t0 = time.perf_counter()
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    start = time.perf_counter() - t0
    try:
        cold = sweep(path, GRID, scheduler=cluster.scheduler_address, workdir=work / "cold")
        warm = sweep(path, GRID, scheduler=cluster.scheduler_address, workdir=work / "warm")
    finally:
        cluster.close()
    return cold, warm, start


def figures(cold: SweepResult, warm: SweepResult, start: float | None) -> dict[str, Any]:
    return {
        "scheduler": cold.scheduler,
        "workers": cold.workers,
        "cluster_start_s": start,
        "cold_sweep_s": cold.seconds,
        "warm_sweep_s": warm.seconds,
        "runs": len(cold.runs),
        "warm_runs_per_s": len(warm.runs) / warm.seconds,
    }


def machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    import dask

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": commit,
        "python": platform.python_version(),
        "dask": dask.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


def run(accounts: int, tmpdir: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=tmpdir) as tmp:
        work = Path(tmp)
        path = scenario(work, accounts)
        serial = sweep(path, GRID, scheduler="serial", workdir=work / "serial-cold")
        serial_warm = sweep(path, GRID, scheduler="serial", workdir=work / "serial-warm")
        one, one_warm, start1 = on_cluster(path, work / "dask-1", 1)
        two, two_warm, start2 = on_cluster(path, work / "dask-2", 2)
    every = (serial, serial_warm, one, one_warm, two, two_warm)
    heads = [[r.head for r in res.runs] for res in every]
    return {
        "machine": machine(),
        "scenario": "quickstart copy",
        "accounts": accounts,
        "grid": {n: list(v) for n, v in GRID.params.items()},
        "seeds": list(GRID.seeds),
        "points": len(GRID.points()),
        "ways": {
            "serial": figures(serial, serial_warm, None),
            "dask-1": figures(one, one_warm, start1),
            "dask-2": figures(two, two_warm, start2),
        },
        "speedup_2_vs_1": one_warm.seconds / two_warm.seconds,
        "speedup_2_vs_1_cold": one.seconds / two.seconds,
        "speedup_2_vs_serial": serial_warm.seconds / two_warm.seconds,
        "log_heads_agree": all(r.runs == serial.runs for r in every)
        and all(h == heads[0] for h in heads),
        "log_heads": heads[0],
    }


def table(res: dict[str, Any]) -> str:
    rows = [("way", "workers", "cluster start", "cold sweep", "warm sweep", "warm runs/s")]
    for name, f in res["ways"].items():
        start = "" if f["cluster_start_s"] is None else f"{f['cluster_start_s']:.2f} s"
        rows.append(
            (
                name,
                str(f["workers"]),
                start,
                f"{f['cold_sweep_s']:.2f} s",
                f"{f['warm_sweep_s']:.2f} s",
                f"{f['warm_runs_per_s']:.2f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        f"{res['points']} points x {len(res['seeds'])} seed, {res['accounts']} accounts "
        f"(quickstart copy), {res['machine']['cpu_count']} CPUs",
        "  ".join(h.ljust(w) for h, w in zip(rows[0], widths, strict=True)),
        "-" * (sum(widths) + 2 * (len(widths) - 1)),
    ]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows[1:]]
    lines += [
        f"speed-up, 2 workers vs 1: {res['speedup_2_vs_1']:.2f}x warm, "
        f"{res['speedup_2_vs_1_cold']:.2f}x cold (2 workers vs serial, warm: "
        f"{res['speedup_2_vs_serial']:.2f}x)",
        f"same runs and log heads every way: {res['log_heads_agree']}",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "sweep.json")
    parser.add_argument("--tmpdir", type=Path, default=None)
    args = parser.parse_args()
    res = run(args.accounts, args.tmpdir)
    print(table(res))
    args.json.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0 if res["log_heads_agree"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
