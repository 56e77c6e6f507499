"""The child process of ``tests/test_crash.py``: commits a seeded stream of transactions.

    python tests/crash_child.py DB SEED [--snapshot-every N]

Opens (or resumes) the ledger in the SQLite file ``DB``, makes sure the asset and the
accounts exist, prints ``ready <K>`` (``K`` transactions of the stream are already
committed), then commits the stream from transaction ``K + 1`` on and prints
``ack <id> <id> ...`` (flushed) after each commit *returns*. It runs until it is killed.

The stream is a pure function of the seed and of the committed prefix: transaction ``n``
has id ``t<n:06d>``; ``groups(seed)`` cuts the stream into single ``apply`` calls and
``with ledger.batch():`` groups of random size, so a commit always ends on a group
boundary; ``make_tx(ledger, seed, n)`` draws the content of transaction ``n`` from
``Random(seed, n)`` and the current balances (never an overdraft: nothing is refused).
The parent imports these functions to replay the same stream into an in-memory model.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from pathlib import Path

from liqeng.clock import SimClock
from liqeng.ids import AccountId, AssetId, TxId
from liqeng.ledger.core import Ledger
from liqeng.ledger.model import AccountKind, AccountSpec, Posting, Transaction
from liqeng.ledger.sqlite import SqliteStorage
from liqeng.ledger.storage import Storage
from liqeng.units import Asset

BASE_TS = 1_700_000_000
USDC = Asset(AssetId("crash/USDC"), 6)
EXTERNAL = AccountId("crash/external")
USERS = tuple(AccountId(f"crash/user-{i}") for i in range(4))
BATCH_MAX = 40
MAX_TX = 10**6  # a bound on the loop; the parent kills the child long before


def txid(n: int) -> TxId:
    return TxId(f"t{n:06d}")


def groups(seed: int) -> Iterator[tuple[int, int, bool]]:
    """``(first, size, batched)`` for each commit of the stream, in order."""
    rng = random.Random(f"groups:{seed}")
    first = 1
    while first <= MAX_TX:
        batched = rng.random() < 0.5
        size = rng.randint(1, BATCH_MAX) if batched else 1
        yield first, size, batched
        first += size


def boundaries(seed: int, upto: int) -> set[int]:
    """Every number of transactions at which a commit of the stream can end, up to ``upto``."""
    ends = {0}
    for first, size, _ in groups(seed):
        if first > upto:
            break
        ends.add(first + size - 1)
    return ends


def setup(ledger: Ledger) -> None:
    """Idempotent: the default ids make a second call a no-op (``created=False``)."""
    ledger.register_asset(USDC)
    ledger.open_account(AccountSpec(EXTERNAL, AccountKind.EXTERNAL))
    for user in USERS:
        ledger.open_account(AccountSpec(user))


def make_tx(ledger: Ledger, seed: int, n: int) -> Transaction:
    rng = random.Random(f"tx:{seed}:{n}")
    user = rng.choice(USERS)
    other = rng.choice([u for u in USERS if u != user])
    op = rng.random()
    big = rng.random() < 0.02  # past 2**63 now and then: amounts are stored as text
    amount = rng.randint(10**24, 10**25) if big else rng.randint(1, 10**9)
    have = ledger.balance_units(user, USDC.id)
    memo = {"n": n}
    if op < 0.35 or have == 0:
        legs = ((EXTERNAL, -amount), (user, amount))
        kind = "crash.deposit"
    elif op < 0.75:
        amount = min(amount, have)
        legs = ((user, -amount), (other, amount))
        kind = "crash.transfer"
    else:
        amount = min(amount, have)
        legs = ((user, -amount), (EXTERNAL, amount))
        kind = "crash.withdraw"
    postings = tuple(Posting(acc, USDC.units(units)) for acc, units in legs)
    return Transaction(txid(n), kind, postings, memo=memo)


def commit_group(ledger: Ledger, clock: SimClock, seed: int, first: int, size: int) -> None:
    """Commit transactions ``first .. first + size - 1`` as one batch."""
    with ledger.batch():
        for n in range(first, first + size):
            clock.set(BASE_TS + n)
            ledger.apply(make_tx(ledger, seed, n))


def committed_count(storage: Storage) -> int:
    """The largest ``k`` with ``t<k>`` committed, assuming a prefix (the parent checks it)."""
    hi = 1
    while storage.find_event(txid(hi)) is not None:
        hi *= 2
    lo = hi // 2  # t<lo> is committed (or lo == 0); t<hi> is not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if storage.find_event(txid(mid)) is not None:
            lo = mid
        else:
            hi = mid
    return lo


def run(path: Path, seed: int, snapshot_every: int) -> None:
    storage = SqliteStorage(path)
    clock = SimClock(BASE_TS)
    ledger = Ledger(storage, clock, snapshot_every=snapshot_every)
    setup(ledger)
    done = committed_count(storage)
    out = sys.stdout
    out.write(f"ready {done}\n")
    out.flush()
    for first, size, batched in groups(seed):
        last = first + size - 1
        if last <= done:
            continue
        if first <= done:
            raise SystemExit(f"partial group on disk: {done} committed inside {first}..{last}")
        if batched:
            commit_group(ledger, clock, seed, first, size)
        else:
            clock.set(BASE_TS + first)
            ledger.apply(make_tx(ledger, seed, first))
        out.write("ack " + " ".join(txid(n) for n in range(first, last + 1)) + "\n")
        out.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db", type=Path)
    parser.add_argument("seed", type=int)
    parser.add_argument("--snapshot-every", type=int, default=100_000)
    args = parser.parse_args()
    run(args.db, args.seed, args.snapshot_every)


if __name__ == "__main__":
    main()
