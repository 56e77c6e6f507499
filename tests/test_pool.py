"""Backstop-pool liquidation (Liquity Stability Pool semantics) on a real SQLite ledger."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tests.conftest import BOB, USDC, WETH, deposit, open_ledger

from liqeng.clock import SimClock
from liqeng.engine import Engine
from liqeng.errors import InvalidArgument, Refused
from liqeng.ids import AccountId, AssetId, InstrumentId
from liqeng.ledger.core import Ledger
from liqeng.ledger.model import AccountKind, AccountSpec, Transaction
from liqeng.liquidation.base import LiquidationPlan, SystemAccounts
from liqeng.liquidation.keeper import KeeperReward
from liqeng.liquidation.pool import BackstopPool
from liqeng.market.instruments import Perpetual, SpotCollateral
from liqeng.market.trading import fill
from liqeng.oracle import SourceReport, median_feed
from liqeng.risk.margin import MarginParams
from liqeng.units import RATE_SCALE

SYS = SystemAccounts.of("t")
ALICE = AccountId("t/alice")
KEEPER = AccountId("t/keeper")
D1, D2, D3 = AccountId("t/d1"), AccountId("t/d2"), AccountId("t/d3")
PERP = Perpetual(InstrumentId("t/ETH-PERP"), "ETH", USDC, 6)
WETH_COLL = SpotCollateral(WETH, "ETH", haircut=500_000_000)  # counted at 50% in the margin
SOURCES = ["s1", "s2", "s3", "s4", "s5"]
USD, ETH, WEI = 10**6, 10**6, 10**18  # USDC base units, perp size units, WETH base units
PREC = 10**18


def make_engine(
    path: Path,
    *,
    fund_usd: int = 0,
    clock: SimClock | None = None,
    bob_usd: int = 10**7,
    depositor_usd: int = 10**5,
    **pool_params: Any,
) -> tuple[Engine, BackstopPool]:
    clock = clock or SimClock(0)
    led = open_ledger(path, clock)
    led.register_asset(USDC)
    led.register_asset(WETH)
    for acc, kind in [
        (AccountId("t/world"), AccountKind.EXTERNAL),
        (SYS.insurance_fund, AccountKind.SYSTEM),
        (SYS.fee_sink, AccountKind.SYSTEM),
        (SYS.backstop_pool, AccountKind.SYSTEM),
        (SYS.settlement, AccountKind.SETTLEMENT),
        (SYS.bad_debt, AccountKind.BAD_DEBT),
        (ALICE, AccountKind.USER),
        (BOB, AccountKind.USER),
        (KEEPER, AccountKind.USER),
        (D1, AccountKind.USER),
        (D2, AccountKind.USER),
        (D3, AccountKind.USER),
    ]:
        led.open_account(AccountSpec(acc, kind))
    led.list_instrument(PERP.spec())
    if bob_usd:
        deposit(led, "d-bob", BOB, bob_usd * USD)
    deposit(led, "d-keeper", KEEPER, 10**6 * USD)
    for d in (D1, D2, D3):
        if depositor_usd:
            deposit(led, f"d-{d}", d, depositor_usd * USD)
    if fund_usd:
        deposit(led, "d-fund", SYS.insurance_fund, fund_usd * USD)
    params: dict[str, Any] = {
        "penalty_rate": 5_500_000,  # 0.55% of the closed notional
        "keeper_reward": KeeperReward(tip=10 * USD, share=0),  # a flat 10 USDC
    }
    mech = BackstopPool(**(params | pool_params))
    engine = Engine(
        led,
        median_feed(SOURCES, ["ETH"], 3600, 3),
        clock=clock,
        quote=USDC,
        instruments={PERP.id: PERP},
        margin=MarginParams(),
        mechanism=mech,
        system=SYS,
        collateral=[WETH_COLL],
    )
    engine.step([SourceReport(s, "ETH", 1_000 * USD, clock.now()) for s in SOURCES])
    return engine, mech


def open_long(
    engine: Engine, who: AccountId, size: int, entry_usd: int, txid: str = "open"
) -> None:
    """``who`` buys ``size`` of the perp from Bob at ``entry_usd`` (the index is 1,000)."""
    led = engine.ledger
    f = fill(
        buyer=who,
        seller=BOB,
        instrument=PERP.id,
        size=size,
        price=entry_usd * USD,
        size_decimals=PERP.size_decimals,
        premium=False,
        quote=USDC,
        buyer_position=led.position(who, PERP.id),
        seller_position=led.position(BOB, PERP.id),
        settlement=SYS.settlement,
    )
    led.apply(Transaction(txid, "trade", f.postings, f.position_changes))


def alice_underwater(engine: Engine, cash_usd: int = 1_010, weth: int = 2 * WEI) -> None:
    """Alice: ``cash_usd`` USDC, ``weth`` WETH, long 20 ETH at 1,100 with the index at 1,000:
    equity = cash − 2,000 + 1,000·weth/1e18·50%; maintenance = 5% · 20,000 = 1,000."""
    led = engine.ledger
    if cash_usd:
        deposit(led, "d-alice", ALICE, cash_usd * USD)
    if weth:
        deposit(led, "d-alice-weth", ALICE, weth, WETH)
    open_long(engine, ALICE, 20 * ETH, 1_100)


def asset_sums(led: Ledger) -> dict[AssetId, int]:
    out: dict[AssetId, int] = {}
    for (_, asset), units in led.balances().items():
        out[asset] = out.get(asset, 0) + units
    return out


def check_pool(engine: Engine, mech: BackstopPool) -> None:
    """The pool's accounting against the ledger (module doc, invariants)."""
    led, state = engine.ledger, mech.state
    engine.ledger.check_invariants()
    assert all(v == 0 for v in asset_sums(led).values())
    held_quote = state.collateral.get(USDC.id, 0)
    assert led.balance_units(SYS.backstop_pool, USDC.id) == state.total + held_quote
    assert sum(mech.compounded_deposit(d) for d in mech.depositors()) <= state.total
    for asset in (USDC.id, WETH.id):
        gains = sum(mech.gains(d).get(asset, 0) for d in mech.depositors())
        assert gains <= state.collateral.get(asset, 0)
    assert led.balance_units(SYS.backstop_pool, WETH.id) == state.collateral.get(WETH.id, 0)


def test_offset_with_collateral_worked_numbers(tmp_path: Path) -> None:
    engine, mech = make_engine(tmp_path / "p.sqlite")
    led = engine.ledger
    mech.deposit(engine, D1, 6_000 * USD, "sp-d1")
    mech.deposit(engine, D2, 4_000 * USD, "sp-d2")
    assert led.balance_units(SYS.backstop_pool, USDC.id) == 10_000 * USD
    alice_underwater(engine)
    # equity = 1,010 − 2,000 + 2·1,000·50% = 10 < maintenance 1,000: liquidatable
    liq = engine.liquidate(ALICE, KEEPER, "liq-1")
    plan = liq.plan
    m = plan.transaction.memo
    # close-out at 1,000: c1 = 1,010 − 20·100 = −990; notional 20,000;
    # penalty = 0.55% · 20,000 = 110; keeper R = 10 (tip) -> c2 = −1,000: debt D = 1,000;
    # nothing paid in cash, owed = 110 − 10 = 100; T = D + owed = 1,100
    assert (plan.notional, m["penalty_charged"], plan.keeper_reward) == (
        20_000 * USD,
        str(110 * USD),
        10 * USD,
    )
    assert m["debt"] == str(1_000 * USD)
    # 2 WETH are worth 2,000 > T at the index (no haircut): seize 2·1,100/2,000 = 1.1 WETH;
    # 0.9 WETH stays with Alice (surplus)
    assert m["collateral_seized"] == {WETH.id: str(11 * WEI // 10)}
    assert m["collateral_seized_value"] == str(1_100 * USD)
    # the pool (max_offset = 10,000) pays all 1,000 and takes all 1.1 WETH
    assert (plan.bad_debt_covered, plan.bad_debt_uncovered) == (1_000 * USD, 0)
    assert m["pool"]["op"] == "offset" and m["pool"]["debt"] == str(1_000 * USD)
    # seized = 1,010 of cash (all of it) + 1,100 of collateral = 2,000 realised + 110 penalty
    assert plan.seized == 2_110 * USD
    assert (plan.penalty, plan.insurance_fee, plan.protocol_fee) == (10 * USD, 0, 0)

    # Liquity's offset over total = 10,000e6 (PREC = 1e18):
    # gain/unit = 1.1e18·1e18 // 1e10 = 1.1e26 (no error);
    # loss/unit = 1e9·1e18 // 1e10 + 1 = 1e17 + 1; error = (1e17 + 1)·1e10 − 1e27 = 1e10
    # S = 1.1e26 · P(=1e18) = 1.1e44; P = 1e18·(1e18 − 1e17 − 1) // 1e18 = 9e17 − 1
    state = mech.state
    assert state.total == 9_000 * USD
    assert state.p == 9 * 10**17 - 1 and (state.scale, state.epoch) == (0, 0)
    assert state.sums[(WETH.id, 0, 0)] == 11 * 10**43
    assert state.loss_error == 10**10
    # compounded: 6e9·(9e17 − 1) // 1e18 = 5,399.999999 and 4e9·… = 3,599.999999 USDC
    # (2 units of dust stay in the pool, owned by nobody)
    assert mech.compounded_deposit(D1) == 5_399_999_999
    assert mech.compounded_deposit(D2) == 3_599_999_999
    # gains: 6e9·1.1e44 // 1e18 // 1e18 = 0.66 WETH and 0.44 WETH, exactly 1.1 in all
    assert mech.gains(D1) == {WETH.id: 66 * WEI // 100}
    assert mech.gains(D2) == {WETH.id: 44 * WEI // 100}

    # the ledger: Alice ends at 0 USDC with 0.9 WETH and no position; the keeper took the
    # position and 10 USDC; the pool holds 9,000 USDC and 1.1 WETH
    assert led.balance_units(ALICE, USDC.id) == 0
    assert led.balance_units(ALICE, WETH.id) == 9 * WEI // 10
    assert led.positions_of(ALICE) == {}
    assert led.position(KEEPER, PERP.id).size == 20 * ETH  # type: ignore[union-attr]
    assert led.balance_units(KEEPER, USDC.id) == 10**6 * USD + 10 * USD
    assert led.balance_units(SYS.backstop_pool, USDC.id) == 9_000 * USD
    assert led.balance_units(SYS.backstop_pool, WETH.id) == 11 * WEI // 10
    assert led.balance_units(SYS.bad_debt, USDC.id) == 0
    check_pool(engine, mech)

    # claims pay the gains out; a withdrawal pays the compounded deposit and the gains
    mech.claim(engine, D1, "claim-d1")
    assert led.balance_units(D1, WETH.id) == 66 * WEI // 100 and mech.gains(D1) == {}
    assert mech.compounded_deposit(D1) == 5_399_999_999
    mech.withdraw(engine, D2, 3_599_999_999, "wd-d2")
    assert led.balance_units(D2, WETH.id) == 44 * WEI // 100
    assert led.balance_units(D2, USDC.id) == (10**5 - 4_000) * USD + 3_599_999_999
    assert D2 not in mech.depositors()
    check_pool(engine, mech)


def test_pool_too_small_then_insurance_fund_then_uncovered(tmp_path: Path) -> None:
    engine, mech = make_engine(tmp_path / "p.sqlite", fund_usd=300)
    led = engine.ledger
    mech.deposit(engine, D1, 600 * USD, "sp-d1")
    alice_underwater(engine)
    plan = engine.liquidate(ALICE, KEEPER, "liq-1").plan
    m = plan.transaction.memo
    # debt 1,000 as above: the pool (v1, keep = 0) offsets all its 600 and empties (epoch 1);
    # the insurance fund pays 300; 100 is booked uncovered against the bad-debt account
    assert (m["pool_offset"], m["insurance_fund_cover"]) == (str(600 * USD), str(300 * USD))
    assert (plan.bad_debt_covered, plan.bad_debt_uncovered) == (900 * USD, 100 * USD)
    # the 1.1 WETH follow who paid: pool ⌊1.1·600/1000⌋ = 0.66, fund ⌊1.1·900/1000⌋ − 0.66
    # = 0.33, the bad-debt entry the last 0.11 (a recovery against its 100 USDC)
    assert m["collateral_to_pool"] == {WETH.id: str(66 * WEI // 100)}
    assert m["collateral_to_insurance_fund"] == {WETH.id: str(33 * WEI // 100)}
    assert m["collateral_to_bad_debt"] == {WETH.id: str(11 * WEI // 100)}
    state = mech.state
    assert (state.total, state.epoch, state.scale, state.p) == (0, 1, 0, PREC)
    assert mech.compounded_deposit(D1) == 0
    assert mech.gains(D1) == {WETH.id: 66 * WEI // 100}
    assert led.balance_units(SYS.backstop_pool, USDC.id) == 0
    assert led.balance_units(SYS.insurance_fund, USDC.id) == 0
    assert led.balance_units(SYS.insurance_fund, WETH.id) == 33 * WEI // 100
    assert led.balance_units(SYS.bad_debt, USDC.id) == -100 * USD
    assert led.balance_units(SYS.bad_debt, WETH.id) == 11 * WEI // 100
    assert led.balance_units(ALICE, USDC.id) == 0
    check_pool(engine, mech)
    # the emptied pool pays its last depositor the gain; new deposits start afresh
    mech.withdraw(engine, D1, 0, "wd-d1")
    assert led.balance_units(D1, WETH.id) == 66 * WEI // 100
    mech.deposit(engine, D2, 50 * USD, "sp-d2")
    assert mech.compounded_deposit(D2) == 50 * USD
    check_pool(engine, mech)


def test_keep_floor_head_semantics(tmp_path: Path) -> None:
    engine, mech = make_engine(tmp_path / "p.sqlite", keep=1 * USD)
    mech.deposit(engine, D1, 600 * USD, "sp-d1")
    alice_underwater(engine)
    plan = engine.liquidate(ALICE, KEEPER, "liq-1").plan
    # max_offset = 600 − min(1, 600) = 599: the pool never empties; no fund: 401 uncovered
    assert (plan.bad_debt_covered, plan.bad_debt_uncovered) == (599 * USD, 401 * USD)
    assert mech.state.total == 1 * USD and mech.state.epoch == 0
    check_pool(engine, mech)


def test_no_debt_the_penalty_is_the_pools_gain(tmp_path: Path) -> None:
    engine, mech = make_engine(tmp_path / "p.sqlite")
    mech.deposit(engine, D1, 6_000 * USD, "sp-d1")
    mech.deposit(engine, D2, 4_000 * USD, "sp-d2")
    alice_underwater(engine, cash_usd=2_500, weth=0)
    plan = engine.liquidate(ALICE, KEEPER, "liq-1").plan
    m = plan.transaction.memo
    # c1 = 2,500 − 2,000 = 500 (equity 500 < 1,000); penalty 110: 10 to the keeper, the
    # other 100 paid in cash to the pool; Alice keeps 500 − 110 = 390; no debt
    assert (m["debt"], m["penalty_paid_in_cash"], m["pool"]["op"]) == (
        "0",
        str(100 * USD),
        "reward",
    )
    assert engine.ledger.balance_units(ALICE, USDC.id) == 390 * USD
    # quote gain/unit = 1e8·1e18 // 1e10 = 1e16; S[USDC] = 1e16·1e18; P unchanged
    assert mech.state.sums[(USDC.id, 0, 0)] == 10**34 and mech.state.p == PREC
    assert mech.gains(D1) == {USDC.id: 60 * USD} and mech.gains(D2) == {USDC.id: 40 * USD}
    assert mech.compounded_deposit(D1) == 6_000 * USD
    check_pool(engine, mech)
    mech.claim(engine, D1, "claim-d1")
    assert engine.ledger.balance_units(D1, USDC.id) == (10**5 - 6_000 + 60) * USD
    check_pool(engine, mech)


def test_no_debt_owed_penalty_is_taken_in_collateral(tmp_path: Path) -> None:
    engine, mech = make_engine(tmp_path / "p.sqlite")
    mech.deposit(engine, D1, 1_000 * USD, "sp-d1")
    alice_underwater(engine, cash_usd=2_050, weth=WEI)
    plan = engine.liquidate(ALICE, KEEPER, "liq-1").plan
    m = plan.transaction.memo
    # c1 = 50: 10 to the keeper, 40 of the penalty in cash, 60 still owed, no debt;
    # 1 WETH (1,000) > 60: the pool takes 0.06 WETH as its gain with the 40 USDC
    assert (m["debt"], m["penalty_paid_in_cash"]) == ("0", str(40 * USD))
    assert m["collateral_to_pool"] == {WETH.id: str(6 * WEI // 100)}
    assert mech.gains(D1) == {USDC.id: 40 * USD, WETH.id: 6 * WEI // 100}
    assert engine.ledger.balance_units(ALICE, WETH.id) == 94 * WEI // 100
    check_pool(engine, mech)


def test_without_depositors_the_gains_go_to_the_insurance_fund(tmp_path: Path) -> None:
    engine, mech = make_engine(tmp_path / "p.sqlite")
    alice_underwater(engine, cash_usd=2_500, weth=0)
    plan = engine.liquidate(ALICE, KEEPER, "liq-1").plan
    assert (plan.penalty, plan.keeper_reward, plan.insurance_fee) == (
        110 * USD,
        10 * USD,
        100 * USD,
    )
    assert engine.ledger.balance_units(SYS.insurance_fund, USDC.id) == 100 * USD
    assert mech.version == 0
    check_pool(engine, mech)


def test_restore_rebuilds_the_state_and_retries_do_not_double_commit(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite"
    clock = SimClock(0)
    engine, mech = make_engine(path, fund_usd=300, clock=clock)
    mech.deposit(engine, D1, 6_000 * USD, "sp-d1")
    mech.deposit(engine, D2, 4_000 * USD, "sp-d2")
    alice_underwater(engine)
    first = engine.liquidate(ALICE, KEEPER, "liq-1")
    mech.claim(engine, D1, "claim-d1")
    state, version = mech.state, mech.version
    # a retried liquidation id answers from the log: nothing is applied twice
    again = engine.liquidate(ALICE, KEEPER, "liq-1")
    assert not again.created and again.seq == first.seq
    mech.commit(first.plan)  # a second commit of the same tx id is a no-op
    assert mech.deposit(engine, D1, 6_000 * USD, "sp-d1").created is False
    assert mech.claim(engine, D1, "claim-d1").created is False
    with pytest.raises(Refused, match="exists-with-different-content"):
        mech.deposit(engine, D1, 7_000 * USD, "sp-d1")
    assert (mech.state, mech.version) == (state, version)
    # a fresh mechanism on the reopened ledger rebuilds the same state from the log
    engine.ledger._storage.close()
    led = open_ledger(path, clock)
    fresh = BackstopPool(penalty_rate=5_500_000, keeper_reward={"tip": 10 * USD, "share": 0})
    fresh.restore(led)
    assert (fresh.state, fresh.version) == (state, version)
    assert fresh.applied("liq-1") and fresh.applied("claim-d1")
    assert (fresh.account, fresh.quote) == (SYS.backstop_pool, USDC.id)
    # and it continues on the ledger alone (account and quote learnt from the log)
    fresh.deposit(led, D3, 500 * USD, "sp-d3")
    assert fresh.compounded_deposit(D3) == 500 * USD
    restored = BackstopPool()
    restored.restore(led)
    assert restored.state == fresh.state
    led._storage.close()


def test_a_stale_plan_is_refused_and_rollback_undoes_commits(tmp_path: Path) -> None:
    engine, mech = make_engine(tmp_path / "p.sqlite")
    mech.deposit(engine, D1, 6_000 * USD, "sp-d1")
    alice_underwater(engine)
    positions = engine.ledger.positions_of(ALICE)
    ctx = engine.context(ALICE, KEEPER, "liq-x", positions, engine.risk(ALICE), {"ETH"})
    plan = mech.plan(ctx)
    assert mech.version == 1  # planning moves nothing
    mech.deposit(engine, D2, 1_000 * USD, "sp-d2")
    with pytest.raises(InvalidArgument, match="pool version 1, the pool is at 2"):
        mech.commit(plan)
    # a batch that rolls back: the caller rolls the pool back to its mark
    mark = mech.mark()
    with pytest.raises(RuntimeError), engine.ledger.batch():
        engine.liquidate(ALICE, KEEPER, "liq-1")
        assert mech.applied("liq-1")
        raise RuntimeError("the step failed")
    mech.rollback(mark)
    assert not mech.applied("liq-1") and mech.version == 2
    assert engine.ledger.positions_of(ALICE)
    engine.liquidate(ALICE, KEEPER, "liq-2")
    check_pool(engine, mech)


def test_refusals_and_bad_config(tmp_path: Path) -> None:
    engine, mech = make_engine(tmp_path / "p.sqlite")
    alice_underwater(engine, cash_usd=5_000)  # equity 4,000 >= 1,000: healthy
    positions = engine.ledger.positions_of(ALICE)
    ctx = engine.context(ALICE, KEEPER, "liq-x", positions, engine.risk(ALICE), {"ETH"})
    with pytest.raises(Refused) as exc:
        mech.plan(ctx)
    assert exc.value.code == "liquidation/not-liquidatable"
    with pytest.raises(Refused, match="not-liquidatable"):
        engine.liquidate(ALICE, KEEPER, "liq-1")
    crashed = engine.risk(ALICE, index_prices={"ETH": 100 * USD})  # underwater at 100
    assert crashed.is_liquidatable
    bctx = replace(ctx, keeper=ALICE, risk=crashed)
    with pytest.raises(InvalidArgument, match="cannot liquidate itself"):
        mech.plan(bctx)
    bad_configs: list[tuple[dict[str, Any], str]] = [
        ({"penalty_rate": -1}, "penalty_rate=-1"),
        ({"penalty_rate": RATE_SCALE + 1}, f"penalty_rate={RATE_SCALE + 1}"),
        ({"penalty_rate": 0.05}, "penalty_rate=0.05"),
        ({"keep": -5}, "keep=-5"),
        ({"precision": 10}, "precision=10"),
        ({"keeper_reward": {"tip": -1, "share": 0}}, "tip=-1"),
        ({"keeper_reward": {"tipp": 1}}, "tipp"),
        ({"keeper_reward": 3}, "keeper_reward=3"),
        ({"account": "nope"}, "account='nope'"),
        ({"redistribute": 1}, "redistribute=1"),
    ]
    for bad, match in bad_configs:
        with pytest.raises(InvalidArgument, match=match):
            BackstopPool(**bad)
    with pytest.raises(InvalidArgument, match="no deposit"):
        mech.withdraw(engine, D1, 1, "wd-d1")
    mech.deposit(engine, D1, 100 * USD, "sp-d1")
    with pytest.raises(InvalidArgument, match="exceeds the compounded deposit"):
        mech.withdraw(engine, D1, 101 * USD, "wd-d1")
    with pytest.raises(InvalidArgument, match="amount=0"):
        mech.deposit(engine, D1, 0, "sp-d1-0")
    other = BackstopPool()
    with pytest.raises(InvalidArgument, match="unknown"):
        other.deposit(engine.ledger, D1, 1, "x-1")
    assert BackstopPool().name == "backstop-pool"


# ------------------------------------------------------------- redistribution

REDISTRIBUTION_KEYS = {
    "bad_debt_socialised",
    "redistribution_haircuts",
    "collateral_redistributed",
    "collateral_to_holders",
}


def redistribution_engine(
    path: Path, holders: dict[AccountId, int], *, fund_usd: int = 0, **pool_params: Any
) -> tuple[Engine, BackstopPool]:
    """D1 deposits 600 (all it has) in the pool; ``holders`` (USD) are the only other user
    accounts with quote, besides Alice and the keeper (Bob and D1 hold none)."""
    engine, mech = make_engine(path, fund_usd=fund_usd, bob_usd=0, depositor_usd=0, **pool_params)
    deposit(engine.ledger, "d-d1", D1, 600 * USD)
    for who, usd in holders.items():
        deposit(engine.ledger, f"d-{who}", who, usd * USD)
    mech.deposit(engine, D1, 600 * USD, "sp-d1")
    return engine, mech


def test_redistribution_worked_example(tmp_path: Path) -> None:
    engine, mech = redistribution_engine(
        tmp_path / "p.sqlite", {D2: 3_000, D3: 1_000}, redistribute=True
    )
    led = engine.ledger
    alice_underwater(engine)
    plan = engine.liquidate(ALICE, KEEPER, "liq-1").plan
    m = plan.transaction.memo
    # as in the worked offset: debt D = 1,000, T = D + owed = 1,100, 1.1 WETH seized (worth
    # 1,100 at the index); the pool (v1) offsets all its 600 and empties: d = 400 is left
    assert (m["debt"], m["pool_offset"]) == (str(1_000 * USD), str(600 * USD))
    # stakes: D2 3,000, D3 1,000 (B = 4,000; D1, Bob hold no quote, Alice and the keeper
    # are left out); red = min(400, 4,000) = 400:
    # h_D2 = 400·3,000/4,000 = 300, h_D3 = 400·1,000/4,000 = 100 (no leftover unit)
    assert m["redistribution_haircuts"] == {D2: str(300 * USD), D3: str(100 * USD)}
    assert (plan.bad_debt_covered, plan.bad_debt_socialised, plan.bad_debt_uncovered) == (
        600 * USD,
        400 * USD,
        0,
    )
    assert m["bad_debt_socialised"] == str(400 * USD) and m["insurance_fund_cover"] == "0"
    # collateral, cumulative floors over D = 1,000: pool ⌊1.1·600/1,000⌋ = 0.66 WETH;
    # holders ⌊1.1·(600 + 400)/1,000⌋ − 0.66 = 0.44 WETH, split as the haircuts:
    # D2 0.44·300/400 = 0.33, D3 0.44·100/400 = 0.11 (exact); the fund and bad debt get 0
    assert m["collateral_to_pool"] == {WETH.id: str(66 * WEI // 100)}
    assert m["collateral_redistributed"] == {WETH.id: str(44 * WEI // 100)}
    assert m["collateral_to_holders"] == {
        D2: {WETH.id: str(33 * WEI // 100)},
        D3: {WETH.id: str(11 * WEI // 100)},
    }
    assert m["collateral_to_insurance_fund"] == {} and m["collateral_to_bad_debt"] == {}
    # the ledger: D2 paid 300 USDC for 0.33 WETH (worth 330), D3 100 for 0.11 (110)
    assert led.balance_units(D2, USDC.id) == 2_700 * USD
    assert led.balance_units(D2, WETH.id) == 33 * WEI // 100
    assert led.balance_units(D3, USDC.id) == 900 * USD
    assert led.balance_units(D3, WETH.id) == 11 * WEI // 100
    assert led.balance_units(ALICE, USDC.id) == 0
    assert led.balance_units(ALICE, WETH.id) == 9 * WEI // 10
    assert led.balance_units(SYS.bad_debt, USDC.id) == 0
    assert led.balance_units(SYS.bad_debt, WETH.id) == 0
    # the pool's side is the plain offset: emptied (epoch 1), D1 gains the 0.66 WETH
    assert (mech.state.total, mech.state.epoch) == (0, 1)
    assert mech.gains(D1) == {WETH.id: 66 * WEI // 100}
    check_pool(engine, mech)
    # the plan reads back from its memo, and the pool state restores from the log
    from_memo = LiquidationPlan.from_transaction(plan.transaction)
    assert from_memo == plan
    fresh = BackstopPool()
    fresh.restore(led)
    assert (fresh.state, fresh.version) == (mech.state, mech.version)


def test_redistribution_remainder_units(tmp_path: Path) -> None:
    engine, mech = redistribution_engine(
        tmp_path / "p.sqlite", {BOB: 1_000, D2: 1_000, D3: 1_000}, redistribute=True
    )
    led = engine.ledger
    alice_underwater(engine, weth=WEI + 1)
    plan = engine.liquidate(ALICE, KEEPER, "liq-1").plan
    m = plan.transaction.memo
    # 1 WETH + 1 wei is worth 1,000.000… < T = 1,100: all of it is seized; D = 1,000 still
    assert m["collateral_seized"] == {WETH.id: str(WEI + 1)}
    # quote: red = 400e6 over three equal stakes: ⌊400e6/3⌋ = 133,333,333 each, one unit
    # left; the remainders tie, so it goes to the smallest id, t/bob
    assert m["redistribution_haircuts"] == {
        BOB: "133333334",
        D2: "133333333",
        D3: "133333333",
    }
    # collateral: pool ⌊(1e18 + 1)·0.6⌋ = 6e17; holders (1e18 + 1) − 6e17 = 4e17 + 1 wei;
    # Bob ⌊(4e17 + 1)·133,333,334/4e8⌋ = 133,333,334e9 (remainder 133,333,334),
    # D2, D3 133,333,333e9 (remainder 133,333,333): the 1 wei left goes to the largest
    # remainder, Bob's
    assert m["collateral_redistributed"] == {WETH.id: str(4 * 10**17 + 1)}
    assert m["collateral_to_holders"] == {
        BOB: {WETH.id: str(133_333_334 * 10**9 + 1)},
        D2: {WETH.id: str(133_333_333 * 10**9)},
        D3: {WETH.id: str(133_333_333 * 10**9)},
    }
    assert plan.bad_debt_socialised == 400 * USD and plan.bad_debt_uncovered == 0
    assert led.balance_units(BOB, USDC.id) == 1_000 * USD - 133_333_334
    check_pool(engine, mech)


def test_redistribution_holders_too_poor_then_fund_then_uncovered(tmp_path: Path) -> None:
    engine, mech = redistribution_engine(
        tmp_path / "p.sqlite", {D2: 150, D3: 50}, fund_usd=100, redistribute=True
    )
    led = engine.ledger
    alice_underwater(engine)
    plan = engine.liquidate(ALICE, KEEPER, "liq-1").plan
    m = plan.transaction.memo
    # D = 1,000: the pool offsets 600; d = 400 > B = 200: each holder pays all it has
    # (150 and 50, red = 200); the fund pays its 100; 100 is booked uncovered
    assert m["redistribution_haircuts"] == {D2: str(150 * USD), D3: str(50 * USD)}
    assert m["insurance_fund_cover"] == str(100 * USD)
    assert (plan.bad_debt_covered, plan.bad_debt_socialised, plan.bad_debt_uncovered) == (
        700 * USD,
        200 * USD,
        100 * USD,
    )
    # collateral, cumulative floors of 1.1 WETH: pool 1.1·600/1,000 = 0.66; holders
    # 1.1·800/1,000 − 0.66 = 0.22 (D2 0.22·150/200 = 0.165, D3 0.055); fund
    # 1.1·900/1,000 − 0.88 = 0.11; the bad-debt entry the last 0.11
    assert m["collateral_to_holders"] == {
        D2: {WETH.id: str(165 * WEI // 1000)},
        D3: {WETH.id: str(55 * WEI // 1000)},
    }
    assert m["collateral_to_insurance_fund"] == {WETH.id: str(11 * WEI // 100)}
    assert m["collateral_to_bad_debt"] == {WETH.id: str(11 * WEI // 100)}
    assert led.balance_units(D2, USDC.id) == 0 and led.balance_units(D3, USDC.id) == 0
    assert led.balance_units(SYS.insurance_fund, USDC.id) == 0
    assert led.balance_units(SYS.bad_debt, USDC.id) == -100 * USD
    assert led.balance_units(ALICE, USDC.id) == 0
    check_pool(engine, mech)


def test_redistribution_without_holders_callable(tmp_path: Path) -> None:
    engine, mech = redistribution_engine(
        tmp_path / "p.sqlite", {D2: 3_000, D3: 1_000}, redistribute=True
    )
    alice_underwater(engine)
    positions = engine.ledger.positions_of(ALICE)
    ctx = engine.context(ALICE, KEEPER, "liq-x", positions, engine.risk(ALICE), {"ETH"})
    with_holders = mech.plan(ctx)
    assert with_holders.bad_debt_socialised == 400 * USD
    # no ``holders`` in the context: nothing to redistribute over, the 400 is uncovered
    plan = mech.plan(replace(ctx, holders=None))
    assert (plan.bad_debt_covered, plan.bad_debt_socialised, plan.bad_debt_uncovered) == (
        600 * USD,
        0,
        400 * USD,
    )
    assert plan.transaction.memo["redistribution_haircuts"] == {}
    # system accounts, the account and the keeper are never stakes, even if listed
    odd = {SYS.insurance_fund: 10**9, ALICE: 10**9, KEEPER: 10**9, D2: 3_000 * USD}
    plan = mech.plan(replace(ctx, holders=lambda: odd))
    assert plan.transaction.memo["redistribution_haircuts"] == {D2: str(400 * USD)}


def test_redistribute_false_is_unchanged(tmp_path: Path) -> None:
    holders = {D2: 3_000, D3: 1_000}
    on, _ = redistribution_engine(tmp_path / "on.sqlite", holders, redistribute=True)
    off, mech = redistribution_engine(tmp_path / "off.sqlite", holders)
    assert mech.redistribute is False
    for engine in (on, off):
        alice_underwater(engine)
    plan_on = on.liquidate(ALICE, KEEPER, "liq-1").plan
    plan = off.liquidate(ALICE, KEEPER, "liq-1").plan
    m = plan.transaction.memo
    # the holders are not touched: the 400 goes to the (empty) fund, then uncovered, with
    # the 0.44 WETH to the bad-debt entry; the memo has none of the redistribution keys
    assert (plan.bad_debt_covered, plan.bad_debt_socialised, plan.bad_debt_uncovered) == (
        600 * USD,
        0,
        400 * USD,
    )
    assert set(plan_on.transaction.memo) - set(m) == REDISTRIBUTION_KEYS
    assert not REDISTRIBUTION_KEYS & set(m)
    assert m["collateral_to_bad_debt"] == {WETH.id: str(44 * WEI // 100)}
    assert off.ledger.balance_units(D2, USDC.id) == 3_000 * USD
    assert off.ledger.balance_units(D3, USDC.id) == 1_000 * USD
    assert off.ledger.balance_units(SYS.bad_debt, USDC.id) == -400 * USD
    check_pool(off, mech)


# ------------------------------------------------------------------- property

OPS = st.one_of(
    st.tuples(st.just("deposit"), st.integers(0, 2), st.integers(1, 5_000)),
    st.tuples(st.just("withdraw"), st.integers(0, 2), st.integers(0, 100)),
    st.tuples(st.just("claim"), st.integers(0, 2), st.just(0)),
    st.tuples(
        st.just("liquidate"),
        st.integers(0, 6_000),  # cash, USD
        st.integers(0, 300),  # WETH, hundredths
        st.integers(5, 30),  # size, ETH
        st.integers(50, 400),  # entry above the index, USD
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.lists(st.tuples(st.integers(0, 2), st.integers(100, 5_000)), max_size=3),
    ops=st.lists(OPS, min_size=1, max_size=14),
    keep=st.sampled_from([0, 1 * USD]),
    fund=st.sampled_from([0, 500]),
    rate=st.sampled_from([0, 5_500_000, 50_000_000]),
    redistribute=st.booleans(),
    poor=st.booleans(),
)
def test_conservation_property(
    first: list[tuple[int, int]],
    ops: list[tuple[Any, ...]],
    keep: int,
    fund: int,
    rate: int,
    redistribute: bool,
    poor: bool,
) -> None:
    depositors = (D1, D2, D3)
    with tempfile.TemporaryDirectory() as tmp:
        # poor: no Bob money and 1,000 per depositor, so the holders run short at times
        engine, mech = make_engine(
            Path(tmp) / "p.sqlite",
            fund_usd=fund,
            keep=keep,
            penalty_rate=rate,
            redistribute=redistribute,
            bob_usd=0 if poor else 10**7,
            depositor_usd=1_000 if poor else 10**5,
        )
        led = engine.ledger

        def provide(who: AccountId, units: int, txid: str) -> None:
            units = min(units, led.balance_units(who, USDC.id))
            if units:
                mech.deposit(engine, who, units, txid)

        for n, (who, usd) in enumerate(first):
            provide(depositors[who], usd * USD, f"first-{n}")
        for n, op in enumerate(ops):
            before = asset_sums(led)
            if op[0] == "deposit":
                provide(depositors[op[1]], op[2] * USD, f"op-{n}")
            elif op[0] in ("withdraw", "claim"):
                holder = depositors[op[1]]
                if holder in mech.depositors():
                    amount = mech.compounded_deposit(holder) * op[2] // 100
                    mech.withdraw(engine, holder, amount, f"op-{n}")
            else:
                _, cash, weth, size, gap = op
                victim = AccountId(f"t/v{n}")
                led.open_account(AccountSpec(victim))
                if cash:
                    deposit(led, f"cash-{n}", victim, cash * USD)
                if weth:
                    deposit(led, f"weth-{n}", victim, weth * WEI // 100, WETH)
                open_long(engine, victim, size * ETH, 1_000 + gap, f"open-{n}")
                version, digest = mech.version, led.state_digest()
                before = asset_sums(led)
                try:
                    liq = engine.liquidate(victim, KEEPER, f"liq-{n}")
                except Refused as exc:
                    assert exc.code == "liquidation/not-liquidatable"
                    assert (mech.version, led.state_digest()) == (version, digest)
                else:
                    plan = liq.plan
                    assert led.positions_of(victim) == {}
                    assert led.balance_units(victim, USDC.id) >= 0
                    m = plan.transaction.memo
                    debt = int(m["debt"])
                    event(f"pool op {m['pool']['op']}, uncovered {plan.bad_debt_uncovered > 0}")
                    event(f"socialised {plan.bad_debt_socialised > 0}")
                    socialised = plan.bad_debt_socialised
                    assert plan.bad_debt_covered + socialised + plan.bad_debt_uncovered == debt
                    if not redistribute:
                        assert socialised == 0 and not REDISTRIBUTION_KEYS & set(m)
                    else:
                        cuts = m["redistribution_haircuts"]
                        assert sum(int(h) for h in cuts.values()) == socialised
                        got = sum(
                            int(c.get(WETH.id, 0)) for c in m["collateral_to_holders"].values()
                        )
                        assert got == int(m["collateral_redistributed"].get(WETH.id, 0))
                        if plan.bad_debt_uncovered:  # every holder paid all its quote
                            event("redistributed, then uncovered")
                            assert not engine._holders(victim, KEEPER)
            after = asset_sums(led)  # every liquidation and pool move conserves every asset
            assert all(after.get(a, 0) == before.get(a, 0) for a in {*before, *after})
            check_pool(engine, mech)
        fresh = BackstopPool(keep=keep, penalty_rate=rate)
        fresh.restore(led)
        assert (fresh.state, fresh.version) == (mech.state, mech.version)
        led._storage.close()
