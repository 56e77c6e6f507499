"""The ledger: atomic apply, named refusals, idempotency, the hash chain, reopening."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from tests.conftest import ALICE, BOB, FUND, USDC, WETH, WORLD, deposit, open_ledger

from liqeng.clock import SimClock
from liqeng.errors import InvalidArgument, Refused, StorageConflict, StorageCorrupt
from liqeng.ids import AccountId, InstrumentId
from liqeng.ledger.core import Ledger
from liqeng.ledger.model import (
    AccountKind,
    AccountSpec,
    InstrumentSpec,
    Position,
    PositionChange,
    Posting,
    Transaction,
)
from liqeng.ledger.sqlite import SqliteStorage
from liqeng.units import Amount, Asset

PERP = InstrumentId("t/ETH-PERP")


def transfer(
    txid: str, src: AccountId, dst: AccountId, units: int, asset: Asset = USDC
) -> Transaction:
    return Transaction(
        txid, "transfer", (Posting(src, asset.units(-units)), Posting(dst, asset.units(units)))
    )


def test_deposit_and_transfer(ledger: Ledger) -> None:
    deposit(ledger, "d1", ALICE, 100_000_000)  # 100 USDC
    r = ledger.apply(transfer("t1", ALICE, BOB, 40_000_000))
    assert r.created
    assert ledger.balance(ALICE, USDC.id) == USDC.parse("60")
    assert ledger.balance(BOB, USDC.id) == USDC.parse("40")
    # the world went negative by what came in: conservation includes it
    assert ledger.balance(WORLD, USDC.id) == USDC.parse("-100")
    ledger.check_invariants()


def test_refused_transaction_changes_nothing(ledger: Ledger) -> None:
    deposit(ledger, "d1", ALICE, 10)
    before = (ledger.state_digest(), ledger.seq, ledger.head)
    with pytest.raises(Refused, match=r"ledger/negative-balance.*t/alice would hold -1"):
        ledger.apply(transfer("t1", ALICE, BOB, 11))
    assert (ledger.state_digest(), ledger.seq, ledger.head) == before


@pytest.mark.parametrize(
    ("tx", "code", "names"),
    [
        (
            Transaction("u", "x", (Posting(ALICE, USDC.units(-1)), Posting(BOB, USDC.units(2)))),
            "ledger/unbalanced",
            "eth/USDC sum to 1",
        ),
        (
            transfer("a", ALICE, AccountId("t/nobody"), 1),
            "ledger/account-not-found",
            "account='t/nobody'",
        ),
        (
            transfer("b", ALICE, BOB, 1, Asset("eth/DAI", 18)),  # type: ignore[arg-type]
            "ledger/asset-not-found",
            "asset='eth/DAI'",
        ),
        (
            transfer("c", ALICE, BOB, 1, Asset(USDC.id, 8)),
            "ledger/asset-mismatch",
            "decimals=8",
        ),
        (
            Transaction(
                "i",
                "x",
                position_changes=(
                    PositionChange(ALICE, PERP, 1, 5),
                    PositionChange(BOB, PERP, -1, 5),
                ),
            ),
            "ledger/instrument-not-found",
            "instrument='t/ETH-PERP'",
        ),
        (Transaction("r", "ledger.asset"), "ledger/reserved-kind", "kind='ledger.asset'"),
    ],
)
def test_each_refusal_names_its_code_and_value(
    ledger: Ledger, tx: Transaction, code: str, names: str
) -> None:
    deposit(ledger, "d1", ALICE, 10)
    before = (ledger.state_digest(), ledger.seq, ledger.head)
    with pytest.raises(Refused) as info:
        ledger.apply(tx)
    assert info.value.code == code
    assert names in str(info.value)
    assert (ledger.state_digest(), ledger.seq, ledger.head) == before


def test_balance_exactly_at_the_limit(ledger: Ledger) -> None:
    deposit(ledger, "d1", ALICE, 10)
    ledger.apply(transfer("t1", ALICE, BOB, 10))  # exactly to zero: allowed
    assert ledger.balance_units(ALICE, USDC.id) == 0
    with pytest.raises(Refused, match="negative-balance"):
        ledger.apply(transfer("t2", ALICE, BOB, 1))  # one unit past: refused


def test_precedence_first_code_wins(ledger: Ledger) -> None:
    # unbalanced AND unknown account: the shape check comes first
    tx = Transaction("p", "x", (Posting(AccountId("t/nobody"), USDC.units(5)),))
    with pytest.raises(Refused) as info:
        ledger.apply(tx)
    assert info.value.code == "ledger/unbalanced"


def test_idempotent_retry_and_conflicting_reuse(ledger: Ledger) -> None:
    deposit(ledger, "d1", ALICE, 100)
    first = ledger.apply(transfer("t1", ALICE, BOB, 5))
    again = ledger.apply(transfer("t1", ALICE, BOB, 5))
    assert (again.seq, again.hash, again.created) == (first.seq, first.hash, False)
    assert ledger.balance_units(BOB, USDC.id) == 5  # applied once
    with pytest.raises(Refused, match="exists-with-different-content"):
        ledger.apply(transfer("t1", ALICE, BOB, 6))


def test_state_dependent_refusal_burns_the_id(ledger: Ledger) -> None:
    with pytest.raises(Refused, match="negative-balance"):
        ledger.apply(transfer("t1", ALICE, BOB, 5))
    deposit(ledger, "d1", ALICE, 100)  # now it would succeed, but the id is burned
    with pytest.raises(Refused, match="id-already-failed"):
        ledger.apply(transfer("t1", ALICE, BOB, 5))
    assert ledger.balance_units(BOB, USDC.id) == 0


def test_shape_refusal_does_not_burn_the_id(ledger: Ledger) -> None:
    deposit(ledger, "d1", ALICE, 100)
    bad = Transaction("t1", "x", (Posting(ALICE, USDC.units(-5)), Posting(BOB, USDC.units(4))))
    with pytest.raises(Refused, match="unbalanced"):
        ledger.apply(bad)
    assert ledger.apply(transfer("t1", ALICE, BOB, 5)).created


@pytest.mark.parametrize(
    ("build", "needle"),
    [
        (lambda: Posting(ALICE, 5), "posting amount=5 must be an Amount"),  # type: ignore[arg-type]
        (lambda: Posting(ALICE, Amount(1.5, USDC)), "must be an int"),  # type: ignore[arg-type]
        (lambda: Posting(ALICE, Amount(float("nan"), USDC)), "nan"),  # type: ignore[arg-type]
        (lambda: Amount(5, "eth/USDC"), "asset='eth/USDC' of an amount"),  # type: ignore[arg-type]
        (lambda: Posting("alice", USDC.units(1)), "account='alice'"),  # type: ignore[arg-type]
        (lambda: Transaction("bad id!", "x"), "tx_id='bad id!'"),
        (lambda: Transaction("t", "x", postings=(5,)), "holds 5, not a Posting"),  # type: ignore[arg-type]
        (lambda: Transaction("t", "x", memo=5), "memo=5"),  # type: ignore[arg-type]
        (lambda: PositionChange(ALICE, PERP, 0, 1), "size_delta=0"),
        (lambda: PositionChange(ALICE, PERP, 1, -3), "entry_price=-3"),
    ],
)
def test_malformed_values_are_refused_at_construction(build: object, needle: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(needle)):
        build()  # type: ignore[operator]


def test_bad_calls_name_the_value_and_change_nothing(ledger: Ledger) -> None:
    deposit(ledger, "d1", ALICE, 10)
    before = (ledger.state_digest(), ledger.seq, ledger.head)
    for call, needle in [
        (lambda: ledger.apply("pay alice"), "tx='pay alice' must be a Transaction"),
        (
            lambda: ledger.register_asset(Asset(USDC.id, 8), "usdc-again"),
            "asset='eth/USDC' is already registered",
        ),
        (
            lambda: ledger.open_account(AccountSpec(ALICE), "alice-again"),
            "account='t/alice' is already open",
        ),
        (lambda: ledger.balance(ALICE, "eth/DAI"), "asset='eth/DAI' is not registered"),
        (lambda: ledger.record("bad id!", "note", {}), "tx_id='bad id!'"),
        (lambda: ledger.record("n1", "note", {"x": float("nan")}), "not canonical JSON"),
    ]:
        with pytest.raises(InvalidArgument, match=re.escape(needle)):
            call()  # type: ignore[no-untyped-call]
        assert (ledger.state_digest(), ledger.seq, ledger.head) == before, needle


def test_positions_must_net_to_zero(ledger: Ledger) -> None:
    ledger.list_instrument(InstrumentSpec(PERP, 6))
    half = (PositionChange(ALICE, PERP, 2_000_000, 2_000_000_000),)
    with pytest.raises(Refused, match=r"positions-not-net-zero.*sum to 2000000"):
        ledger.apply(Transaction("q1", "trade", position_changes=half))
    both = (*half, PositionChange(BOB, PERP, -2_000_000, 2_000_000_000))
    ledger.apply(Transaction("q2", "trade", position_changes=both))
    assert ledger.position(ALICE, PERP) == Position(2_000_000, 2_000_000_000)
    close = (PositionChange(ALICE, PERP, -2_000_000, 0), PositionChange(BOB, PERP, 2_000_000, 0))
    ledger.apply(Transaction("q3", "trade", position_changes=close))
    assert ledger.position(ALICE, PERP) is None
    ledger.check_invariants()


def test_batch_is_all_or_nothing(ledger: Ledger) -> None:
    deposit(ledger, "d1", ALICE, 100)
    before = (ledger.state_digest(), ledger.seq)
    with pytest.raises(RuntimeError), ledger.batch():
        ledger.apply(transfer("t1", ALICE, BOB, 30))
        ledger.apply(transfer("t2", ALICE, BOB, 30))
        raise RuntimeError("driver failed mid-batch")
    assert (ledger.state_digest(), ledger.seq) == before
    assert ledger._storage.find_event("t1") is None
    # and the ids were not burned: the batch never happened
    ledger.apply(transfer("t1", ALICE, BOB, 30))


def test_refusal_inside_batch_drops_only_that_transaction(ledger: Ledger) -> None:
    deposit(ledger, "d1", ALICE, 100)
    with ledger.batch():
        ledger.apply(transfer("t1", ALICE, BOB, 60))
        with pytest.raises(Refused):
            ledger.apply(transfer("t2", ALICE, BOB, 60))  # sees t1: only 40 left
        ledger.apply(transfer("t3", ALICE, BOB, 40))
    assert ledger.balance_units(BOB, USDC.id) == 100


def test_storage_failure_rolls_the_batch_back(ledger: Ledger) -> None:
    deposit(ledger, "d1", ALICE, 100)
    before = (ledger.state_digest(), ledger.seq, ledger.head)
    storage = ledger._storage
    real = storage.append

    def failing(*a: object, **k: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    storage.append = failing  # type: ignore[method-assign]
    with pytest.raises(sqlite3.OperationalError):
        ledger.apply(transfer("t1", ALICE, BOB, 5))
    storage.append = real  # type: ignore[method-assign]
    assert (ledger.state_digest(), ledger.seq, ledger.head) == before
    assert ledger.apply(transfer("t1", ALICE, BOB, 5)).created


def test_reopen_rebuilds_state_and_verifies_chain(tmp_path: Path, ledger: Ledger) -> None:
    deposit(ledger, "d1", ALICE, 100)
    deposit(ledger, "d2", BOB, 10**30, WETH)  # past 2**63: stored as text, exact
    ledger.apply(transfer("t1", ALICE, FUND, 7))
    digest, seq, head = ledger.state_digest(), ledger.seq, ledger.head
    ledger._storage.close()
    again = open_ledger(tmp_path / "ledger.sqlite")
    assert (again.state_digest(), again.seq, again.head) == (digest, seq, head)
    assert again.balance_units(BOB, WETH.id) == 10**30


def test_reopen_through_a_snapshot(tmp_path: Path) -> None:
    led = open_ledger(tmp_path / "s.sqlite", snapshot_every=3)
    led.register_asset(USDC)
    led.open_account(AccountSpec(WORLD, AccountKind.EXTERNAL))
    led.open_account(AccountSpec(ALICE))
    for i in range(10):
        deposit(led, f"d{i}", ALICE, 1 + i)
    digest = led.state_digest()
    snap = led._storage.latest_snapshot()
    assert snap is not None and 0 < snap.seq <= led.seq
    led._storage.close()
    again = open_ledger(tmp_path / "s.sqlite")
    assert again.state_digest() == digest
    assert again.balance_units(ALICE, USDC.id) == sum(range(1, 11))


def _tamper(path: Path, sql: str) -> None:
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER events_append_only_update")
    db.execute("DROP TRIGGER events_append_only_delete")
    db.execute(sql)
    db.commit()
    db.close()


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        (
            "UPDATE events SET body = CAST(replace(CAST(body AS TEXT), '100', '999') AS BLOB)"
            " WHERE tx_id = 'd1'",
            "breaks the hash chain",
        ),
        ("DELETE FROM events WHERE seq = 3", "gap"),
        (
            "UPDATE events SET ts = 5 WHERE seq = (SELECT max(seq) FROM events)",
            "breaks the hash chain",
        ),
    ],
)
def test_tampering_is_detected(tmp_path: Path, ledger: Ledger, sql: str, needle: str) -> None:
    deposit(ledger, "d1", ALICE, 100)
    ledger.apply(transfer("t1", ALICE, BOB, 7))
    ledger._storage.close()
    _tamper(tmp_path / "ledger.sqlite", sql)
    with pytest.raises(StorageCorrupt, match=needle):
        open_ledger(tmp_path / "ledger.sqlite")


def test_events_are_append_only_in_sqlite(tmp_path: Path, ledger: Ledger) -> None:
    deposit(ledger, "d1", ALICE, 100)
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE events SET ts = 0")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM events")
    db.close()


def test_postings_view_shows_exact_amounts(tmp_path: Path, ledger: Ledger) -> None:
    deposit(ledger, "d1", ALICE, 10**30, WETH)
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    rows = db.execute(
        "SELECT account, asset, amount_units FROM postings WHERE tx_id='d1' ORDER BY account"
    ).fetchall()
    assert rows == [(ALICE, WETH.id, str(10**30)), (WORLD, WETH.id, str(-(10**30)))]
    db.close()


def test_sqlite_durability_settings(ledger: Ledger) -> None:
    db = ledger._storage._db  # type: ignore[attr-defined]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    strict = db.execute("SELECT sql FROM sqlite_master WHERE name='events'").fetchone()[0]
    assert strict.rstrip().endswith("STRICT")


def test_clock_going_backwards_is_refused(tmp_path: Path) -> None:
    clock = SimClock(100)
    led = open_ledger(tmp_path / "c.sqlite", clock)
    led.register_asset(USDC)
    clock._now = 50  # a broken driver
    with pytest.raises(InvalidArgument, match="now=50 is before the last event ts=100"):
        led.open_account(AccountSpec(ALICE))


def test_tampered_snapshot_is_detected(tmp_path: Path) -> None:
    led = open_ledger(tmp_path / "s.sqlite")
    led.register_asset(USDC)
    led.open_account(AccountSpec(WORLD, AccountKind.EXTERNAL))
    led.open_account(AccountSpec(ALICE))
    deposit(led, "d1", ALICE, 300)
    led.snapshot()
    led._storage.close()
    con = sqlite3.connect(tmp_path / "s.sqlite")
    con.execute("DROP TRIGGER snapshots_append_only")
    # move 999000 units to alice and away from the world: conserved, but not what happened
    con.execute(
        "UPDATE snapshots SET state = CAST(replace(replace(CAST(state AS TEXT),"
        " '\"300\"', '\"999300\"'), '\"-300\"', '\"-999300\"') AS BLOB)"
    )
    con.commit()
    con.close()
    with pytest.raises(StorageCorrupt, match="does not match the digest chained"):
        open_ledger(tmp_path / "s.sqlite")


def test_snapshot_inside_a_batch_is_refused(ledger: Ledger) -> None:
    deposit(ledger, "d1", ALICE, 100)
    with pytest.raises(InvalidArgument, match="inside a batch"), ledger.batch():
        ledger.snapshot()
    assert ledger._storage.latest_snapshot() is None


def test_a_clock_that_is_not_an_int_is_refused(tmp_path: Path) -> None:
    class FloatClock:
        def now(self) -> int:
            return 5.0  # type: ignore[return-value]

    led = Ledger(SqliteStorage(tmp_path / "f.sqlite"), FloatClock())
    with pytest.raises(InvalidArgument, match=r"clock now=5\.0 must be an int"):
        led.register_asset(USDC)
    assert led.seq == 0


def test_an_id_refused_in_a_rolled_back_batch_stays_refused(ledger: Ledger) -> None:
    with pytest.raises(RuntimeError), ledger.batch():
        with pytest.raises(Refused, match="negative-balance"):
            ledger.apply(transfer("pay-1", ALICE, BOB, 5))
        raise RuntimeError("the driver failed after telling the caller pay-1 was refused")
    deposit(ledger, "d1", ALICE, 100)
    with pytest.raises(Refused, match="id-already-failed"):
        ledger.apply(transfer("pay-1", ALICE, BOB, 5))


def test_a_nested_batch_is_a_savepoint(ledger: Ledger) -> None:
    deposit(ledger, "d1", ALICE, 100)
    with ledger.batch():
        ledger.apply(transfer("t1", ALICE, BOB, 10))
        with pytest.raises(RuntimeError), ledger.batch():
            ledger.apply(transfer("t2", ALICE, BOB, 20))
            raise RuntimeError("inner block fails")
        ledger.apply(transfer("t3", ALICE, BOB, 30))
    assert ledger.balance_units(BOB, USDC.id) == 40  # t1 + t3, not t2
    assert ledger._storage.find_event("t2") is None
    assert ledger.apply(transfer("t2", ALICE, BOB, 20)).created  # never burned


def test_committed_reads_a_transaction_back(ledger: Ledger) -> None:
    deposit(ledger, "d1", ALICE, 100)
    tx = transfer("t1", ALICE, BOB, 7)
    receipt = ledger.apply(tx)
    got = ledger.committed("t1")
    assert got is not None and got[1] == tx and got[0].seq == receipt.seq
    assert ledger.committed("nope") is None


def test_a_second_writer_gets_a_conflict_not_a_raw_error(tmp_path: Path, ledger: Ledger) -> None:
    other = open_ledger(tmp_path / "ledger.sqlite")
    deposit(ledger, "d1", ALICE, 100)  # the first writer moves on
    with pytest.raises(StorageConflict, match="another writer committed first"):
        deposit(other, "d2", ALICE, 5)
    assert other.balance_units(ALICE, USDC.id) == 0  # its failed batch rolled back
    other._storage.close()


def test_verify_refuses_a_file_that_is_not_a_ledger(tmp_path: Path) -> None:
    notes = tmp_path / "notes.sqlite"
    con = sqlite3.connect(notes)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(InvalidArgument, match="is not a liqeng database"):
        SqliteStorage(notes, readonly=True)
    con = sqlite3.connect(notes)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    assert tables == {"t"}  # untouched
    con.close()
