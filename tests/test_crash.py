"""Crash safety for real: a child process commits, the parent SIGKILLs it, reopens, checks.

The child (``tests/crash_child.py``) commits a seeded stream of single transactions and
batches on a SQLite file and prints every acknowledged id after its commit returns. The
parent kills it at seeded random moments (during start-up and recovery too), then checks:

- ``PRAGMA integrity_check`` is ``ok``;
- the stream's ids in the log are exactly ``t000001 .. t<K>`` in order (a prefix), ``K``
  ends a commit group (no partial batch) and never goes down from one crash to the next;
- every acknowledged id is in the log (``storage.find_event``);
- the ledger opens (which verifies the whole hash chain), ``check_invariants`` passes,
  every asset sums to zero (conservation), and the state equals an in-memory model that
  replayed the first ``K`` transactions of the same stream;
- the restarted child resumes exactly at ``K``.

Every failure message names the seed; ``seed=<n>`` with the same kill count reproduces the
kill parameters (the kill moments themselves also depend on scheduling).
"""

from __future__ import annotations

import importlib.util
import os
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest

import liqeng
from liqeng.clock import SimClock
from liqeng.ledger.core import Ledger
from liqeng.ledger.sqlite import SqliteStorage

CHILD = Path(__file__).with_name("crash_child.py")
SRC = Path(liqeng.__file__).resolve().parent.parent
READ_TIMEOUT_S = 30.0


def _load_child() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crash_child", CHILD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


child = _load_child()


@dataclass
class Run:
    """What the parent knows across the kills of one test."""

    db: Path
    seed: int
    snapshot_every: int
    acked: list[str] = field(default_factory=list)
    committed: int = 0  # K after the last check
    model: Ledger | None = None
    model_clock: SimClock = field(default_factory=lambda: SimClock(child.BASE_TS))
    model_k: int = 0
    kills_mid_stream: int = 0
    snapshot_opens: int = 0
    log: list[str] = field(default_factory=list)

    def where(self) -> str:
        return f"seed={self.seed} db={self.db} history={self.log}"


def _spawn(run: Run, cycle: int) -> tuple[subprocess.Popen[bytes], Path]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    stderr = run.db.with_name(f"child-{cycle}.stderr")
    cmd = [sys.executable, str(CHILD), str(run.db), str(run.seed)]
    cmd += ["--snapshot-every", str(run.snapshot_every)]
    with stderr.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env)
    return proc, stderr


def _lines(buf: bytearray) -> Iterator[str]:
    """Complete lines out of ``buf`` (a line cut by the kill stays in it, unused)."""
    while (end := buf.find(b"\n")) >= 0:
        line = bytes(buf[:end]).decode()
        del buf[: end + 1]
        yield line


def _read_until(proc: subprocess.Popen[bytes], buf: bytearray, acks: int, run: Run) -> list[str]:
    """Read complete lines until ``acks`` ack lines have arrived."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    got: list[str] = []
    deadline = time.monotonic() + READ_TIMEOUT_S
    while sum(line.startswith("ack ") for line in got) < acks:
        left = deadline - time.monotonic()
        assert left > 0, f"child too slow: {got[-3:]} {run.where()}"
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        assert chunk, f"child exited by itself (rc={proc.poll()}) {run.where()}"
        buf += chunk
        got.extend(_lines(buf))
    return got


def _take_acks(run: Run, lines: list[str]) -> None:
    for line in lines:
        word, *rest = line.split()
        if word == "ready":
            (k,) = rest
            assert int(k) == run.committed, f"child resumed at {k}, not {run.committed}"
        else:
            assert word == "ack", f"unexpected child output {line!r} {run.where()}"
            run.acked.extend(rest)


def _one_crash(run: Run, rng: random.Random, cycle: int) -> None:
    proc, stderr = _spawn(run, cycle)
    buf = bytearray()
    try:
        style = rng.random()
        if style < 0.2:  # during start-up: imports, recovery, chain verification, setup
            acks, delay = 0, rng.uniform(0.0, 0.4)
        elif style < 0.5:
            acks, delay = rng.randint(1, 5), rng.uniform(0.0, 0.003)
        else:
            acks, delay = rng.randint(5, 60), rng.uniform(0.0, 0.003)
        lines = _read_until(proc, buf, acks, run)
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.stdout is not None
        rest = proc.stdout.read()
        proc.stdout.close()
    buf += rest
    lines.extend(_lines(buf))
    err = stderr.read_text()
    assert proc.returncode == -signal.SIGKILL, f"child rc={proc.returncode}: {err}"
    assert "Traceback" not in err, err
    _take_acks(run, lines)
    run.log.append(f"{cycle}:acks={acks},delay={delay:.4f}")
    run.kills_mid_stream += acks > 0


def _stream_ids(db: Path) -> list[str]:
    """The stream's ids in log order, after ``PRAGMA integrity_check`` said ``ok``."""
    if not db.exists():  # killed before the child created the file
        return []
    con = sqlite3.connect(db)
    try:
        ok = con.execute("PRAGMA integrity_check").fetchall()
        assert ok == [("ok",)], f"integrity_check: {ok}"
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        if not {"events", "refusals"} <= tables:  # killed while creating the schema
            return []
        rows = con.execute("SELECT tx_id FROM events WHERE kind GLOB 'crash.*' ORDER BY seq")
        ids = [r[0] for r in rows]
        refused = con.execute("SELECT count(*) FROM refusals").fetchone()[0]
        assert refused == 0, f"{refused} refused ids: the stream never overdraws"
    finally:
        con.close()
    return ids


def _advance_model(run: Run, k: int) -> Ledger:
    """The in-memory model after the first ``k`` transactions of the stream."""
    if run.model is None:
        run.model = Ledger(
            SqliteStorage(":memory:"), run.model_clock, snapshot_every=run.snapshot_every
        )
        child.setup(run.model)
    for first, size, _ in child.groups(run.seed):
        if first > k:
            break
        if first > run.model_k:
            child.commit_group(run.model, run.model_clock, run.seed, first, size)
    run.model_k = k
    return run.model


def _check(run: Run) -> None:
    ids = _stream_ids(run.db)
    k = len(ids)
    assert ids == [child.txid(n) for n in range(1, k + 1)], f"not a prefix {run.where()}"
    assert k in child.boundaries(run.seed, k), f"K={k} splits a batch {run.where()}"
    assert k >= run.committed, f"K went down from {run.committed} to {k} {run.where()}"

    storage = SqliteStorage(run.db)
    try:
        missing = [i for i in run.acked if storage.find_event(i) is None]
        assert not missing, f"acknowledged but lost: {missing[:5]} {run.where()}"
        ledger = Ledger(storage, SimClock(child.BASE_TS))  # verifies the whole chain
        ledger.check_invariants()
        totals: dict[str, int] = {}
        for (_, asset), units in ledger.balances().items():
            totals[asset] = totals.get(asset, 0) + units
        assert all(v == 0 for v in totals.values()), f"conservation: {totals} {run.where()}"
        if storage.latest_snapshot() is not None:
            run.snapshot_opens += 1
        if k > 0:  # the set-up is complete once a stream transaction committed
            model = _advance_model(run, k)
            assert ledger.state_digest() == model.state_digest(), f"state {run.where()}"
            assert ledger.seq == model.seq, run.where()
            assert ledger.head == model.head, f"chain head differs {run.where()}"
    finally:
        storage.close()
    run.committed = k


def crash_loop(tmp_path: Path, seed: int, kills: int, snapshot_every: int = 100_000) -> Run:
    run = Run(tmp_path / "crash.sqlite", seed, snapshot_every)
    rng = random.Random(f"kills:{seed}")
    for cycle in range(kills):
        _one_crash(run, rng, cycle)
        _check(run)
    return run


def test_crash_quick(tmp_path: Path) -> None:
    run = crash_loop(tmp_path, seed=1, kills=3)
    assert run.committed > 0 and run.acked, run.where()


@pytest.mark.slow
def test_crash_many_kills(tmp_path: Path) -> None:
    started = time.monotonic()
    run = crash_loop(tmp_path, seed=20_251_125, kills=40)
    assert run.kills_mid_stream >= 20, run.where()
    assert len(run.acked) > 200, run.where()
    assert time.monotonic() - started < 120, "crash loop far slower than expected"


def test_crash_reopens_through_snapshots(tmp_path: Path) -> None:
    run = crash_loop(tmp_path, seed=7, kills=4, snapshot_every=5)
    storage = SqliteStorage(run.db)
    try:
        snap = storage.latest_snapshot()
        assert snap is not None, run.where()
        ledger = Ledger(storage, SimClock(child.BASE_TS))
        assert 0 < snap.seq <= ledger.seq, run.where()
        assert run.snapshot_opens >= 1, run.where()
    finally:
        storage.close()


def test_snapshot_and_full_replay_agree_after_crashes(tmp_path: Path) -> None:
    """Opening through the latest snapshot and replaying from genesis give one state."""
    run = crash_loop(tmp_path, seed=3, kills=2, snapshot_every=7)
    replay = tmp_path / "no-snapshots.sqlite"
    shutil.copy(run.db, replay)
    con = sqlite3.connect(replay)
    con.execute("DELETE FROM snapshots")
    con.commit()
    con.close()
    fast = Ledger(SqliteStorage(run.db), SimClock(child.BASE_TS))
    assert fast._storage.latest_snapshot() is not None, run.where()
    full = Ledger(SqliteStorage(replay), SimClock(child.BASE_TS))
    model = _advance_model(run, run.committed)
    assert fast.state_digest() == full.state_digest() == model.state_digest()
    assert fast.head == full.head == model.head
    full._storage.close()
    fast._storage.close()
