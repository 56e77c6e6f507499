"""The ledger's hot path: the garbage collector is paused only for a batch and always turned
back on; the event log is bit-for-bit what the code before the speed-up wrote."""

from __future__ import annotations

import gc
import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import ALICE, BOB, FUND, USDC, WETH, WORLD, deposit, open_ledger

from liqeng.clock import SimClock
from liqeng.errors import Refused
from liqeng.ids import AccountId, InstrumentId
from liqeng.ledger.core import Ledger
from liqeng.ledger.model import (
    AccountKind,
    AccountSpec,
    InstrumentSpec,
    PositionChange,
    Posting,
    Transaction,
)
from liqeng.ledger.sqlite import SqliteStorage
from liqeng.units import Asset

PERP = InstrumentId("t/ETH-PERP")


@pytest.fixture(autouse=True)
def gc_on() -> Iterator[None]:
    """Each test starts with the collector on and leaves it as it found it."""
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def move(txid: str, src: AccountId, dst: AccountId, units: int) -> Transaction:
    return Transaction(
        txid, "transfer", (Posting(src, USDC.units(-units)), Posting(dst, USDC.units(units)))
    )


def test_a_batch_pauses_the_collector_and_turns_it_back_on(ledger: Ledger) -> None:
    deposit(ledger, "d1", ALICE, 100)
    assert gc.isenabled()  # a single apply outside a batch leaves it on
    with ledger.batch():
        assert not gc.isenabled()
        with ledger.batch():  # a nested batch (savepoint) leaves it to the outermost
            ledger.apply(move("t1", ALICE, BOB, 10))
        assert not gc.isenabled()
        with pytest.raises(RuntimeError), ledger.batch():
            raise RuntimeError("nested block fails")
        assert not gc.isenabled()
        with pytest.raises(Refused):
            ledger.apply(move("t2", ALICE, BOB, 1_000))
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_collector_is_back_on_after_an_exception(ledger: Ledger) -> None:
    with pytest.raises(RuntimeError), ledger.batch():
        ledger.apply(move("t1", WORLD, ALICE, 10))
        raise RuntimeError("driver failed mid-batch")
    assert gc.isenabled()
    with pytest.raises(KeyboardInterrupt), ledger.batch():
        raise KeyboardInterrupt
    assert gc.isenabled()


def test_the_collector_is_back_on_after_a_storage_failure(ledger: Ledger) -> None:
    storage = ledger._storage
    real = storage.append

    def failing(*a: object, **k: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    storage.append = failing  # type: ignore[method-assign]
    try:
        with pytest.raises(sqlite3.OperationalError), ledger.batch():
            ledger.apply(move("t1", WORLD, ALICE, 10))
        assert gc.isenabled()
        with pytest.raises(sqlite3.OperationalError):
            ledger.apply(move("t2", WORLD, ALICE, 10))  # its own batch
        assert gc.isenabled()
    finally:
        storage.append = real  # type: ignore[method-assign]


def test_a_collector_turned_off_by_the_caller_stays_off(ledger: Ledger) -> None:
    gc.disable()
    with ledger.batch():
        ledger.apply(move("t1", WORLD, ALICE, 10))
    assert not gc.isenabled()
    with pytest.raises(RuntimeError), ledger.batch():
        raise RuntimeError
    assert not gc.isenabled()


def _scenario(led: Ledger, clock: SimClock) -> None:
    """Every kind of event, refusals and rollbacks included, deterministically."""
    led.register_asset(USDC)
    led.register_asset(WETH)
    led.open_account(AccountSpec(WORLD, AccountKind.EXTERNAL))
    for acc in (ALICE, BOB):
        led.open_account(AccountSpec(acc))
    led.open_account(AccountSpec(FUND, AccountKind.SYSTEM))
    led.list_instrument(InstrumentSpec(PERP, 6))
    deposit(led, "d1", ALICE, 10**12)
    deposit(led, "d2", BOB, 10**12)
    deposit(led, "d3", ALICE, 5 * 10**18, WETH)
    usdc_copy = Asset(USDC.id, 6)  # equal to the registered asset, another object
    for i in range(40):
        clock.set(clock.now() + 1 + i % 3)
        with led.batch():
            size = (i % 7 + 1) * 10**6
            led.apply(
                Transaction(
                    f"trade-{i}",
                    "trade",
                    (Posting(ALICE, usdc_copy.units(-(i + 1))), Posting(FUND, USDC.units(i + 1))),
                    (
                        PositionChange(ALICE, PERP, size, 2_000 * 10**6 + i),
                        PositionChange(BOB, PERP, -size, 2_000 * 10**6 - i),
                    ),
                    {"i": i, "note": f"tr\u00e9s {i}", "nested": {"b": [1, "x"], "a": None}},
                )
            )
            with pytest.raises(Refused):
                led.apply(move(f"bad-{i}", BOB, ALICE, 10**15))  # burns the id
            if i % 5 == 0:
                with pytest.raises(RuntimeError), led.batch():
                    led.apply(move(f"undone-{i}", ALICE, BOB, 7))
                    raise RuntimeError
            led.record(f"fact-{i}", "oracle.index", {"price": str(1_900 + i)})
        if i % 10 == 9:
            close = led.position(ALICE, PERP)
            assert close is not None
            led.apply(
                Transaction(
                    f"close-{i}",
                    "trade",
                    position_changes=(
                        PositionChange(ALICE, PERP, -close.size, 0),
                        PositionChange(BOB, PERP, close.size, 0),
                    ),
                )
            )
        if i == 20:
            led.snapshot()
    assert led.apply(move("t-last", ALICE, BOB, 3)).created
    assert not led.apply(move("t-last", ALICE, BOB, 3)).created  # an idempotent retry


# What the ledger wrote for ``_scenario`` before the hot-path work (GC paused in a batch,
# pending events kept as rows, inlined staging): the log must stay bit-for-bit the same.
GOLDEN_HEAD = "2aba73920d7f1ee98bfc4f7e185f5426ed213f628d5b7bd303863d65329e3d7c"
GOLDEN_LOG = "7ff55e3431ae0e389875098fe1bfcfb7b95d4494007b7bb25781a76e55506636"
GOLDEN_STATE = "a40a68cdce0e095ab5d9d183f53bd5f5309b2c0ee8a372b3a38cce73dfdc86eb"


def test_the_event_log_is_bit_for_bit_unchanged(tmp_path: Path) -> None:
    clock = SimClock(1_000)
    path = tmp_path / "golden.sqlite"
    led = open_ledger(path, clock, snapshot_every=50)
    _scenario(led, clock)
    rows = list(led._storage.event_rows())
    log = hashlib.sha256(repr(rows).encode()).hexdigest()
    refusals = led._storage._db.execute(  # type: ignore[attr-defined]
        "SELECT tx_id, code, digest FROM refusals ORDER BY tx_id"
    ).fetchall()
    log = hashlib.sha256((log + repr(refusals)).encode()).hexdigest()
    assert (led.head.hex(), log, led.state_digest()) == (GOLDEN_HEAD, GOLDEN_LOG, GOLDEN_STATE)
    led._storage.close()
    again = Ledger(SqliteStorage(path), clock)  # and it reopens to the same state
    assert again.state_digest() == GOLDEN_STATE
    again._storage.close()
