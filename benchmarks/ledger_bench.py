"""Ledger throughput and reopen benchmark on SQLite with durability on.

Usage::

    python benchmarks/ledger_bench.py [--quick] [--json out.json] [--tmpdir DIR]

Every figure is measured on a real database file (``journal_mode=WAL``,
``synchronous=FULL``, checked by ``SqliteStorage``) in a temporary directory on the same
disk as the repository (``--tmpdir`` to choose another one):

- ``single``: one transaction per commit (one ``apply`` outside any batch): every commit
  is a durable SQLite transaction, an fsync of the WAL;
- ``batched``: 1,000 transactions per commit (``with ledger.batch():``);
- ``reopen_snapshot``: ``Ledger(SqliteStorage(path), clock)`` on a ledger of N committed
  transactions with a snapshot at the very end: verifies the whole hash chain (every event
  re-hashed) and restores the snapshot;
- ``reopen_tail``: the same ledger with its latest snapshot ``tail`` transactions before
  the end: verifies the whole chain, restores the snapshot and replays the tail.

Every transaction is a deposit: two postings (an external account pays a user account).
Transactions are built before the clock starts; the timings cover ``apply``/``batch``
(checks, staging, canonical JSON, hashing, the SQLite write and its fsync).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from liqeng.clock import SimClock  # noqa: E402
from liqeng.ids import AccountId, AssetId, TxId  # noqa: E402
from liqeng.ledger.core import Ledger  # noqa: E402
from liqeng.ledger.model import AccountKind, AccountSpec, Posting, Transaction  # noqa: E402
from liqeng.ledger.sqlite import SqliteStorage  # noqa: E402
from liqeng.units import Asset  # noqa: E402

USDC = Asset(AssetId("bench/USDC"), 6)
EXTERNAL = AccountId("bench/external")
USERS = [AccountId(f"bench/user-{i:04d}") for i in range(100)]
POSTINGS_PER_TX = 2
BATCH = 1_000
START_TS = 1_700_000_000

FULL = {
    "single_tx": 2_000,
    "batched_tx": 100_000,
    "reopen_tx": 1_000_000,
    "tail_tx": 100_000,
    "repeats": 3,
}
QUICK = {"single_tx": 200, "batched_tx": 5_000, "reopen_tx": 20_000, "tail_tx": 5_000, "repeats": 2}

TARGET_BATCHED_POSTINGS_S = 20_000
TARGET_REOPEN_S = 5.0


def deposit(n: int, prefix: str) -> Transaction:
    return Transaction(
        TxId(f"{prefix}{n:08d}"),
        "bench.deposit",
        (
            Posting(EXTERNAL, USDC.units(-(n % 1000 + 1))),
            Posting(USERS[n % len(USERS)], USDC.units(n % 1000 + 1)),
        ),
    )


def new_ledger(path: Path, snapshot_every: int = 10**12) -> tuple[Ledger, SqliteStorage]:
    storage = SqliteStorage(path)
    ledger = Ledger(storage, SimClock(START_TS), snapshot_every=snapshot_every)
    ledger.register_asset(USDC)
    ledger.open_account(AccountSpec(EXTERNAL, AccountKind.EXTERNAL))
    for user in USERS:
        ledger.open_account(AccountSpec(user))
    return ledger, storage


@contextmanager
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def bench_single(workdir: Path, n_tx: int) -> dict[str, float]:
    ledger, storage = new_ledger(workdir / "single.db")
    txs = [deposit(i, "s") for i in range(n_tx)]
    with no_gc():
        t0 = time.perf_counter()
        for tx in txs:
            ledger.apply(tx)
        elapsed = time.perf_counter() - t0
    ledger.check_invariants()
    storage.close()
    return {
        "transactions": n_tx,
        "tx_per_commit": 1,
        "seconds": elapsed,
        "commits_per_s": n_tx / elapsed,
        "tx_per_s": n_tx / elapsed,
        "postings_per_s": n_tx * POSTINGS_PER_TX / elapsed,
    }


def bench_batched(workdir: Path, n_tx: int) -> dict[str, float]:
    ledger, storage = new_ledger(workdir / "batched.db")
    elapsed = 0.0
    with no_gc():
        for start in range(0, n_tx, BATCH):
            txs = [deposit(i, "b") for i in range(start, min(start + BATCH, n_tx))]
            t0 = time.perf_counter()
            with ledger.batch():
                for tx in txs:
                    ledger.apply(tx)
            elapsed += time.perf_counter() - t0
    ledger.check_invariants()
    storage.close()
    commits = -(-n_tx // BATCH)
    return {
        "transactions": n_tx,
        "tx_per_commit": BATCH,
        "seconds": elapsed,
        "commits_per_s": commits / elapsed,
        "tx_per_s": n_tx / elapsed,
        "postings_per_s": n_tx * POSTINGS_PER_TX / elapsed,
        "target_postings_per_s": TARGET_BATCHED_POSTINGS_S,
    }


def build(path: Path, n_tx: int, snapshot_at: int) -> dict[str, float]:
    """Commit ``n_tx`` deposits in batches, with one snapshot after ``snapshot_at`` of them."""
    ledger, storage = new_ledger(path)
    t0 = time.perf_counter()
    with no_gc():
        for start in range(0, n_tx, BATCH):
            if start == snapshot_at:
                ledger.snapshot()
            with ledger.batch():
                for i in range(start, min(start + BATCH, n_tx)):
                    ledger.apply(deposit(i, "r"))
    elapsed = time.perf_counter() - t0
    ledger.check_invariants()
    seq = ledger.seq
    storage.close()
    return {"transactions": n_tx, "events": seq, "seconds": elapsed, "tx_per_s": n_tx / elapsed}


def timed_reopen(path: Path) -> tuple[float, Ledger, SqliteStorage]:
    gc.collect()
    t0 = time.perf_counter()
    storage = SqliteStorage(path)
    ledger = Ledger(storage, SimClock(START_TS))
    return time.perf_counter() - t0, ledger, storage


def repeated_reopen(path: Path, repeats: int, expect: tuple[str, int]) -> dict[str, Any]:
    """Reopen ``repeats`` times; every reopen must rebuild the same state."""
    runs = []
    for _ in range(repeats):
        seconds, ledger, storage = timed_reopen(path)
        got = (ledger.state_digest(), ledger.seq)
        storage.close()
        if got != expect:
            raise AssertionError(f"reopen of {path} gave {got}, expected {expect}")
        runs.append(seconds)
    return {"runs": runs, "median": statistics.median(runs), "min": min(runs)}


def bench_reopen(workdir: Path, n_tx: int, tail_tx: int, repeats: int) -> dict[str, Any]:
    if n_tx % BATCH or tail_tx % BATCH or not 0 < tail_tx < n_tx:
        raise ValueError(f"reopen sizes n_tx={n_tx} tail_tx={tail_tx}: multiples of {BATCH}")
    path = workdir / "reopen.db"
    built = build(path, n_tx, snapshot_at=n_tx - tail_tx)

    _, ledger, storage = timed_reopen(path)
    expect = (ledger.state_digest(), ledger.seq)
    snap = storage.latest_snapshot()
    if snap is None or ledger.seq - snap.seq != tail_tx:
        raise AssertionError(f"snapshot at {snap and snap.seq}, log ends at {ledger.seq}")
    storage.close()
    tail = repeated_reopen(path, repeats, expect)

    _, ledger, storage = timed_reopen(path)
    ledger.snapshot()  # now at the very end of the log (one more, chained, event)
    expect_end = (ledger.state_digest(), ledger.seq)
    storage.close()
    if expect_end != (expect[0], expect[1] + 1):
        raise AssertionError(f"a snapshot changed the state: {expect} -> {expect_end}")
    at_end = repeated_reopen(path, repeats, expect_end)
    return {
        "transactions": n_tx,
        "events": expect[1],
        "db_bytes": path.stat().st_size,
        "build": built,
        "repeats": repeats,
        "snapshot_at_end_s": at_end,
        "tail_tx": tail_tx,
        "snapshot_then_tail_s": tail,
        "target_s": TARGET_REOPEN_S,
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


def machine(workdir: Path) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "db_dir_same_device_as_repo": os.stat(workdir).st_dev == os.stat(REPO).st_dev,
    }


def render(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    single, batched, reopen = results["single"], results["batched"], results["reopen"]
    console = Console(width=120)
    title = f"liqeng ledger, SQLite WAL + synchronous=FULL ({results['mode']})"
    table = Table(title=f"{title}: throughput ({POSTINGS_PER_TX} postings per tx)")
    for col in ("measure", "tx", "commits/s", "tx/s", "postings/s", "target"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    for label, fig, target in (
        ("1 tx per commit", single, ""),
        (f"{BATCH:,} tx per commit", batched, f">= {TARGET_BATCHED_POSTINGS_S:,} postings/s"),
    ):
        table.add_row(
            label,
            f"{fig['transactions']:,}",
            f"{fig['commits_per_s']:,.1f}",
            f"{fig['tx_per_s']:,.0f}",
            f"{fig['postings_per_s']:,.0f}",
            target,
        )
    console.print(table)

    table = Table(title=f"{title}: reopen, {reopen['repeats']} runs")
    for col in ("measure", "log", "median s", "min s", "target"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    size = f"{reopen['transactions']:,} tx"
    end, tail = reopen["snapshot_at_end_s"], reopen["snapshot_then_tail_s"]
    table.add_row(
        "snapshot at the end",
        size,
        f"{end['median']:.2f}",
        f"{end['min']:.2f}",
        f"<= {TARGET_REOPEN_S:g} s",
    )
    table.add_row(
        f"snapshot + replay of {reopen['tail_tx']:,} tx",
        size,
        f"{tail['median']:.2f}",
        f"{tail['min']:.2f}",
        "",
    )
    console.print(table)
    build = reopen["build"]
    console.print(
        f"built the reopen ledger ({build['transactions']:,} tx, batched) at "
        f"{build['tx_per_s']:,.0f} tx/s; database {reopen['db_bytes'] / 1e6:,.0f} MB"
    )
    m = results["machine"]
    console.print(
        f"python {m['python']}, sqlite {m['sqlite']}, {m['cpu_count']} cpus, "
        f"{m['platform']}, commit {m['git_commit']}, {m['date']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes (for tests)")
    parser.add_argument(
        "--json",
        type=Path,
        default=REPO / "benchmarks" / "results" / "ledger.json",
        help="where to write the figures (default benchmarks/results/ledger.json)",
    )
    parser.add_argument(
        "--tmpdir",
        type=Path,
        default=REPO / "benchmarks",
        help="directory for the throwaway databases (default: inside the repo's disk)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix=".ledger-bench-", dir=args.tmpdir) as tmp:
        workdir = Path(tmp)
        results: dict[str, Any] = {
            "mode": "quick" if args.quick else "full",
            "durability": {"journal_mode": "wal", "synchronous": "FULL"},
            "postings_per_tx": POSTINGS_PER_TX,
            "machine": machine(workdir),
            "single": bench_single(workdir, sizes["single_tx"]),
            "batched": bench_batched(workdir, sizes["batched_tx"]),
            "reopen": bench_reopen(workdir, sizes["reopen_tx"], sizes["tail_tx"], sizes["repeats"]),
        }
    render(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
