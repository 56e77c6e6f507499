"""One engine step end to end: oracle -> risk -> fixed-fee liquidation -> ledger."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ALICE, BOB, USDC, WETH, deposit, open_ledger

from liqeng.clock import SimClock
from liqeng.engine import Engine
from liqeng.errors import InvalidArgument, Refused
from liqeng.ids import AccountId, InstrumentId, asset_id
from liqeng.ledger.core import Ledger
from liqeng.ledger.model import AccountKind, AccountSpec, Transaction
from liqeng.liquidation import FixedFee
from liqeng.liquidation.base import SystemAccounts
from liqeng.liquidation.waterfall import Waterfall
from liqeng.market import SviSlice, VolSurface, mark_price, year_fraction
from liqeng.market.instruments import EuropeanOption, Perpetual, SpotCollateral
from liqeng.market.trading import fill
from liqeng.oracle import SourceReport, median_feed
from liqeng.risk.margin import MarginParams
from liqeng.risk.models import Scenario
from liqeng.risk.portfolio import LYRA_LIKE, ScenarioPosition
from liqeng.units import Asset

KEEPER = AccountId("t/keeper")
SYS = SystemAccounts.of("t")
PERP = Perpetual(InstrumentId("t/ETH-PERP"), "ETH", USDC, 6)
PUT = EuropeanOption(InstrumentId("t/ETH-1500-P"), "ETH", USDC, 6, 1500 * 10**6, 30 * 86400, False)
SOURCES = ["s1", "s2", "s3", "s4", "s5"]
ETH, USD = 10**6, 10**6


def make_engine(
    tmp_path: Path,
    fund_usd: int = 10_000,
    *,
    alice_usd: int = 1_000,
    instruments: tuple[Perpetual | EuropeanOption, ...] = (PERP, PUT),
    **engine_kwargs: Any,
) -> tuple[Engine, SimClock]:
    clock = SimClock(0)
    led: Ledger = open_ledger(tmp_path / "e.sqlite", clock)
    led.register_asset(USDC)
    for acc, kind in [
        (AccountId("t/world"), AccountKind.EXTERNAL),
        (SYS.insurance_fund, AccountKind.SYSTEM),
        (SYS.fee_sink, AccountKind.SYSTEM),
        (SYS.settlement, AccountKind.SETTLEMENT),
        (SYS.bad_debt, AccountKind.BAD_DEBT),
        (ALICE, AccountKind.USER),
        (BOB, AccountKind.USER),
        (KEEPER, AccountKind.USER),
    ]:
        led.open_account(AccountSpec(acc, kind))
    for inst in instruments:
        led.list_instrument(inst.spec())
    deposit(led, "d-alice", ALICE, alice_usd * USD)
    deposit(led, "d-bob", BOB, 10**7 * USD)
    deposit(led, "d-keeper", KEEPER, 10**6 * USD)
    if fund_usd:
        deposit(led, "d-fund", SYS.insurance_fund, fund_usd * USD)
    engine = Engine(
        led,
        median_feed(SOURCES, sorted({i.underlying for i in instruments}), 3600, 3),
        clock=clock,
        quote=USDC,
        instruments={i.id: i for i in instruments},
        margin=MarginParams(),
        system=SYS,
        **{"mechanism": FixedFee(), **engine_kwargs},
    )
    return engine, clock


def reports(ts: int, *prices: int) -> list[SourceReport]:
    return [SourceReport(s, "ETH", p * USD, ts) for s, p in zip(SOURCES, prices, strict=True)]


def trade(
    engine: Engine,
    txid: str,
    buyer: AccountId,
    seller: AccountId,
    inst: Perpetual | EuropeanOption,
    size: int,
    price_usd: int,
) -> None:
    """``buyer`` buys ``size`` of ``inst`` from ``seller`` at ``price_usd``."""
    led = engine.ledger
    f = fill(
        buyer=buyer,
        seller=seller,
        instrument=inst.id,
        size=size,
        price=price_usd * USD,
        size_decimals=inst.size_decimals,
        premium=isinstance(inst, EuropeanOption),
        quote=USDC,
        buyer_position=led.position(buyer, inst.id),
        seller_position=led.position(seller, inst.id),
        settlement=SYS.settlement,
    )
    led.apply(Transaction(txid, "trade", f.postings, f.position_changes))


def alice_goes_long(engine: Engine, eth: int, at_usd: int) -> None:
    trade(engine, "open", ALICE, BOB, PERP, eth * ETH, at_usd)


def test_liquidation_numbers(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path)
    engine.step(reports(0, 2000, 2000, 2000, 2000, 2000))
    alice_goes_long(engine, 5, 2000)
    clock.set(60)
    step = engine.step(reports(60, 1850, 1850, 1850, 1850, 1850), keeper=KEEPER)
    # equity = 1000 + 5 * (1850 - 2000) = 250; maintenance = 5% * 5 * 1850 = 462.5 -> liquidated
    assert [liq.account for liq in step.liquidations] == [ALICE]
    plan = step.liquidations[0].plan
    # notional 5 * 1850 = 9250; penalty 5% = 462.5 but only 250 is left: fee = 250
    assert (plan.notional, plan.penalty) == (9_250 * USD, 250 * USD)
    # keeper share 50%: 125 to the keeper, 125 to the insurance fund; no bad debt
    assert (plan.keeper_reward, plan.insurance_fee, plan.bad_debt_covered) == (
        125 * USD,
        125 * USD,
        0,
    )
    assert plan.seized == 1_000 * USD  # 750 realised loss + 250 penalty
    led = engine.ledger
    assert led.balance_units(ALICE, USDC.id) == 0 and led.positions_of(ALICE) == {}
    assert led.position(KEEPER, PERP.id).size == 5 * ETH  # type: ignore[union-attr]
    assert led.balance_units(SYS.insurance_fund, USDC.id) == 10_125 * USD
    led.check_invariants()


def test_bad_debt_is_drawn_from_the_insurance_fund_then_booked(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path, fund_usd=200)
    engine.step(reports(0, 2000, 2000, 2000, 2000, 2000))
    alice_goes_long(engine, 5, 2000)
    clock.set(60)
    step = engine.step(reports(60, 1700, 1700, 1700, 1700, 1700), keeper=KEEPER)
    plan = step.liquidations[0].plan
    # equity = 1000 + 5 * (1700 - 2000) = -500: no fee, 500 of bad debt;
    # the fund holds 200 -> covers 200, 300 booked against the bad-debt account
    assert (plan.penalty, plan.bad_debt_covered, plan.bad_debt_uncovered) == (
        0,
        200 * USD,
        300 * USD,
    )
    led = engine.ledger
    assert led.balance_units(SYS.insurance_fund, USDC.id) == 0
    assert led.balance_units(SYS.bad_debt, USDC.id) == -300 * USD
    assert led.balance_units(ALICE, USDC.id) == 0
    led.check_invariants()


def test_the_backstop_pool_covers_after_the_insurance_fund(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path, fund_usd=200)
    led = engine.ledger
    led.open_account(AccountSpec(SYS.backstop_pool, AccountKind.SYSTEM))
    deposit(led, "d-pool", SYS.backstop_pool, 250 * USD)
    engine.step(reports(0, 2000, 2000, 2000, 2000, 2000))
    alice_goes_long(engine, 5, 2000)
    clock.set(60)
    step = engine.step(reports(60, 1700, 1700, 1700, 1700, 1700), keeper=KEEPER)
    plan = step.liquidations[0].plan
    # 500 of bad debt: the fund's 200, then the pool's 250, then 50 booked uncovered
    assert (plan.bad_debt_covered, plan.bad_debt_uncovered) == (450 * USD, 50 * USD)
    assert led.balance_units(SYS.insurance_fund, USDC.id) == 0
    assert led.balance_units(SYS.backstop_pool, USDC.id) == 0
    assert led.balance_units(SYS.bad_debt, USDC.id) == -50 * USD
    led.check_invariants()


def test_fixed_fee_refuses_a_funded_stage_after_a_terminal_one() -> None:
    FixedFee(waterfall=Waterfall(("insurance_fund", "adl")))
    with pytest.raises(InvalidArgument, match=r"stages \['insurance_fund'\] come after a terminal"):
        FixedFee(waterfall=Waterfall(("socialised", "insurance_fund")))


def test_a_single_lying_source_triggers_nothing(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path)
    engine.step(reports(0, 2000, 2000, 2000, 2000, 2000))
    alice_goes_long(engine, 5, 2000)
    clock.set(60)
    # one source prints 1000 (a 50% crash); the median of the five stays 2000
    step = engine.step(reports(60, 2000, 1000, 2001, 1999, 2000), keeper=KEEPER)
    assert step.index_prices["ETH"] == 2000 * USD
    assert step.liquidations == () and engine.ledger.positions_of(ALICE)


def test_keeper_request_is_rechecked_at_the_current_price(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path)
    engine.step(reports(0, 2000, 2000, 2000, 2000, 2000))
    alice_goes_long(engine, 5, 2000)
    clock.set(60)
    engine.step(reports(60, 1850, 1850, 1850, 1850, 1850))  # no keeper this step
    clock.set(120)
    engine.step(reports(120, 1990, 1990, 1990, 1990, 1990))  # price recovered
    before = engine.ledger.state_digest()
    # the keeper saw 1850; at execution the index is 1990 and alice is healthy
    with pytest.raises(Refused, match="liquidation/not-liquidatable"):
        engine.liquidate(ALICE, KEEPER, "late-keeper")
    assert engine.ledger.state_digest() == before


def test_short_put_account_is_liquidated_in_a_crash(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path)
    engine.step(reports(0, 2000, 2000, 2000, 2000, 2000))
    # alice writes 5 puts struck at 1500 for a 10 USD premium each: maintenance
    # 5 * max(10% * 2000 - 500 OTM, 5% * 2000) = 500 < equity 1050 - 5 * mark(~19.8)
    trade(engine, "sell-puts", BOB, ALICE, PUT, 5 * ETH, 10)
    assert engine.risk(ALICE).is_liquidatable is False
    clock.set(3600)
    step = engine.step(reports(3600, 1400, 1400, 1400, 1400, 1400), keeper=KEEPER)
    assert [liq.account for liq in step.liquidations] == [ALICE]
    # the keeper took the short puts and was paid their mark to carry them
    assert engine.ledger.position(KEEPER, PUT.id).size == -5 * ETH  # type: ignore[union-attr]
    engine.ledger.check_invariants()


def test_prices_older_than_the_oracle_allows_are_refused(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path)
    engine.step(reports(0, 2000, 2000, 2000, 2000, 2000))
    alice_goes_long(engine, 5, 2000)
    clock.set(60)
    engine.step(reports(60, 1850, 1850, 1850, 1850, 1850))  # liquidatable, no keeper here
    clock.set(60 + 3601)  # no step since: the index is older than max_age_s = 3600
    with pytest.raises(Refused, match="liquidation/stale-price"):
        engine.liquidate(ALICE, KEEPER, "too-late")
    assert engine.ledger.positions_of(ALICE)


def test_a_refused_liquidation_is_reported_and_the_step_goes_on(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path)
    led = engine.ledger
    carol, poor = AccountId("t/carol"), AccountId("t/poor-keeper")
    for acc in (carol, poor):
        led.open_account(AccountSpec(acc))
    deposit(led, "d-carol", carol, 1_000 * USD)
    engine.step(reports(0, 2000, 2000, 2000, 2000, 2000))
    alice_goes_long(engine, 5, 2000)
    trade(engine, "carol-long", carol, BOB, PERP, 5 * ETH, 2000)
    # alice also holds a long put: whoever takes it over must pay its premium
    trade(engine, "alice-put", ALICE, BOB, PUT, ETH, 10)
    engine.mechanism = FixedFee(penalty_rate=0)  # no reward to pay the premium with
    clock.set(60)
    step = engine.step(reports(60, 1850, 1850, 1850, 1850, 1850), keeper=poor)
    # the keeper has no cash for alice's put: refused and reported; carol still closed
    assert step.refused == ((ALICE, "ledger/negative-balance"),)
    assert [liq.account for liq in step.liquidations] == [carol]
    assert led.positions_of(ALICE) and not led.positions_of(carol)
    assert engine.index_prices["ETH"] == 1850 * USD
    led.check_invariants()


def test_retrying_a_liquidation_returns_the_first_one(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path)
    engine.step(reports(0, 2000, 2000, 2000, 2000, 2000))
    alice_goes_long(engine, 5, 2000)
    clock.set(60)
    engine.step(reports(60, 1850, 1850, 1850, 1850, 1850))
    first = engine.liquidate(ALICE, KEEPER, "keeper-req-1")
    again = engine.liquidate(ALICE, KEEPER, "keeper-req-1")
    assert first.created and not again.created
    assert again.seq == first.seq and again.plan.penalty == first.plan.penalty == 250 * USD
    with pytest.raises(Refused, match="not-liquidatable"):
        engine.liquidate(ALICE, KEEPER, "keeper-req-2")  # a new id: nothing left to close


def test_the_penalty_splits_three_ways(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path)
    engine.mechanism = FixedFee(keeper_share=500_000_000, protocol_share=100_000_000)
    engine.step(reports(0, 2000, 2000, 2000, 2000, 2000))
    alice_goes_long(engine, 5, 2000)
    clock.set(60)
    step = engine.step(reports(60, 1850, 1850, 1850, 1850, 1850), keeper=KEEPER)
    plan = step.liquidations[0].plan
    # fee 250 (see test_liquidation_numbers): keeper 50% = 125, fee sink 10% = 25, fund 100
    assert (plan.keeper_reward, plan.protocol_fee, plan.insurance_fee) == (
        125 * USD,
        25 * USD,
        100 * USD,
    )
    assert engine.ledger.balance_units(SYS.fee_sink, USDC.id) == 25 * USD
    with pytest.raises(InvalidArgument, match="protocol_share=600000000"):
        FixedFee(keeper_share=500_000_000, protocol_share=600_000_000)


def test_an_expired_option_settles_at_the_first_index_after_expiry(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path)
    engine.step(reports(0, 2000, 2000, 2000, 2000, 2000))
    trade(engine, "sell-puts", BOB, ALICE, PUT, 2 * ETH, 10)  # alice: 1000 + 20 cash
    expiry = PUT.expiry_ts
    clock.set(expiry - 60)
    engine.step(reports(expiry - 60, 1450, 1450, 1450, 1450, 1450))
    assert PUT.id not in engine.settlements  # not expired yet
    clock.set(expiry + 60)
    engine.step(reports(expiry + 60, 1400, 1400, 1400, 1400, 1400))
    assert engine.settlements == {PUT.id: 1400 * USD}
    # settled: worth its intrinsic value 2 * (1500 - 1400) = 200 to the holder, no margin
    risk = engine.risk(ALICE)
    assert (risk.equity, risk.maintenance_margin) == (1_020 * USD - 200 * USD, 0)
    clock.set(expiry + 120)
    engine.step(reports(expiry + 120, 1000, 1000, 1000, 1000, 1000))
    assert engine.settlements == {PUT.id: 1400 * USD}  # fixed once, whatever the index does
    assert engine.risk(ALICE).equity == 820 * USD
    events = engine.ledger._storage.find_event(f"settle:{PUT.id}")
    assert events is not None and events.kind == "market.settlement"
    assert b'"price":"1400000000"' in events.body


def test_a_market_can_use_scenario_margin(tmp_path: Path) -> None:
    scenario = Scenario(LYRA_LIKE)
    engine, clock = make_engine(tmp_path, markets={"ETH": scenario})
    engine.step(reports(0, 2000, 2000, 2000, 2000, 2000))
    trade(engine, "sell-puts", BOB, ALICE, PUT, 5 * ETH, 10)
    risk = engine.risk(ALICE)
    # the requirement is the 23-scenario model's, rounded up to a unit of USDC
    t = year_fraction(0, PUT.expiry_ts)
    short = ScenarioPosition("put", -5.0, 2000.0 * USD, t, 1500.0 * USD, 0.8)
    expected = LYRA_LIKE.margin([short], 2000.0 * USD)
    assert risk.maintenance_margin == math.ceil(Fraction(expected.maintenance))
    assert risk.initial_margin == math.ceil(Fraction(expected.initial))
    # the worst scenario (-20% spot) loses far less than the per-position rate charges
    (tmp_path / "pp").mkdir()
    per_position, _ = make_engine(tmp_path / "pp")
    per_position.step(reports(0, 2000, 2000, 2000, 2000, 2000))
    trade(per_position, "sell-puts", BOB, ALICE, PUT, 5 * ETH, 10)
    assert risk.maintenance_margin < per_position.risk(ALICE).maintenance_margin
    clock.set(3600)
    step = engine.step(reports(3600, 1300, 1300, 1300, 1300, 1300), keeper=KEEPER)
    assert [liq.account for liq in step.liquidations] == [ALICE]
    engine.ledger.check_invariants()


def test_spot_and_staked_collateral_count_toward_equity(tmp_path: Path) -> None:
    steth = Asset(asset_id("eth/wstETH"), 18)
    weth = SpotCollateral(WETH, "ETH", haircut=100_000_000)  # 10% haircut
    lst = SpotCollateral(steth, "ETH", haircut=200_000_000, exchange_rate=True)
    engine, _ = make_engine(tmp_path, collateral=[weth, lst])
    led = engine.ledger
    for asset in (WETH, steth):
        led.register_asset(asset)
        deposit(led, f"d-{asset.id}", ALICE, 2 * 10**18, asset)
    engine.exchange_rates[steth.id] = 1_170_000_000  # 1 wstETH = 1.17 ETH
    engine.step(reports(0, 2000, 2000, 2000, 2000, 2000))
    # 1000 USDC + 2 WETH * 2000 * 0.9 + 2 wstETH * 2000 * 1.17 * 0.8 = 1000 + 3600 + 3744
    assert engine.risk(ALICE).equity == 8_344 * USD
    engine.exchange_rates[steth.id] = 900_000_000  # the staking protocol loses 23% of 1.17
    assert engine.risk(ALICE).equity == (1_000 + 3_600 + 2_880) * USD
    (tmp_path / "bad").mkdir()
    with pytest.raises(InvalidArgument, match=r"collateral=.*must be a SpotCollateral"):
        make_engine(tmp_path / "bad", collateral=[WETH])


def test_an_option_market_can_price_off_a_vol_surface(tmp_path: Path) -> None:
    engine, _ = make_engine(tmp_path)
    engine.step(reports(0, 2000, 2000, 2000, 2000, 2000))
    trade(engine, "sell-puts", BOB, ALICE, PUT, 5 * ETH, 10)
    flat = engine.risk(ALICE).equity
    # a put skew: the 1500 put (k = ln(0.75)) carries more vol than the 80% flat vol
    skew = VolSurface((30 / 365,), (SviSlice(a=0.04, b=0.2, rho=-0.7, m=0.0, sigma=0.2),))
    engine.vols["ETH"] = skew
    sigma = skew.vol(1500.0, 2000.0, year_fraction(0, PUT.expiry_ts))
    mark = mark_price(PUT, 2000 * USD, 0, float(sigma))
    assert engine.risk(ALICE).equity == 1_050 * USD + (Fraction(mark) * -5).__floor__()
    assert engine.risk(ALICE).equity != flat


@pytest.mark.parametrize("scenario", [False, True])
def test_the_scan_screen_changes_nothing_the_exact_path_decides(
    tmp_path: Path, scenario: bool
) -> None:
    """Twenty accounts through a crash, once screened by the scan (per-position margin) or
    the scenario scan (23 scenarios) and once re-checking every account exactly: the same
    liquidations in the same order, the same ledger."""
    markets = {"ETH": Scenario(LYRA_LIKE)} if scenario else {}
    runs = []
    for screen in (True, False):
        (tmp_path / str(screen)).mkdir()
        engine, clock = make_engine(tmp_path / str(screen), screen=screen, markets=markets)
        engine.step(reports(0, 2000, 2000, 2000, 2000, 2000))
        led = engine.ledger
        for n in range(20):
            acct = AccountId(f"t/u{n:02d}")
            led.open_account(AccountSpec(acct, AccountKind.USER))
            deposit(led, f"d-{acct}", acct, (300 + 37 * n) * USD)
            size = (1 + n % 4) * ETH // 2
            buyer, seller = (acct, BOB) if n % 3 else (BOB, acct)
            trade(engine, f"perp-{acct}", buyer, seller, PERP, size, 2000)
            if n % 2:
                trade(engine, f"put-{acct}", BOB, acct, PUT, ETH, 12)
        steps = []
        for k, price in enumerate((1950, 1900, 1850, 1800, 2100, 2300, 1700, 1500), start=1):
            clock.set(600 * k)
            step = engine.step(reports(600 * k, *[price] * 5), keeper=KEEPER)
            steps.append([(liq.account, liq.seq) for liq in step.liquidations])
        runs.append((steps, led.state_digest(), led.head))
        if screen:  # the screen did run, with the scan for this market's model
            assert engine._book is not None and (engine._book[2] is not None) == scenario
    assert runs[0] == runs[1]
    assert sum(len(s) for s in runs[0][0]) >= 5  # the crash did liquidate


@pytest.mark.parametrize("band", [True, False])
def test_band_eligibility_waits_while_the_sources_disagree(tmp_path: Path, band: bool) -> None:
    """Alice, long 5 ETH from 2000 with 1000 USDC, is liquidatable below ~1894.7. Four
    venues say 1870, 1880, 1900, 1910 and the fifth is an outlier at 2000: the index is
    the midpoint 1890, but the band where five honest venues' median could lie is
    [1870, 1910], and at 1910 she is healthy: with band eligibility she waits."""
    engine, clock = make_engine(tmp_path, band_eligibility=band)
    engine.step(reports(0, 2000, 2000, 2000, 2000, 2000))
    alice_goes_long(engine, 5, 2000)
    clock.set(60)
    step = engine.step(reports(60, 1870, 1880, 1900, 1910, 2000), keeper=KEEPER)
    assert step.index_prices["ETH"] == 1890 * USD
    assert step.feed["ETH"].band == (1870 * USD, 1910 * USD)
    assert [liq.account for liq in step.liquidations] == ([] if band else [ALICE])
    if band:
        risk, why = engine.eligible(ALICE)
        assert risk.is_liquidatable and why is not None and "healthiest corner" in why
        assert "{'ETH': 1910000000}" in why  # the high end is healthiest for a long
        with pytest.raises(Refused, match="healthiest corner"):
            engine.liquidate(ALICE, KEEPER, "k-1")
        clock.set(120)  # the venues agree again below her threshold: now she goes
        step = engine.step(reports(120, 1860, 1860, 1860, 1860, 1860), keeper=KEEPER)
        assert [liq.account for liq in step.liquidations] == [ALICE]


def test_a_hedge_across_two_scenario_markets_is_still_screened_in(tmp_path: Path) -> None:
    """Long 10 BTC-perp against short 10 ETH-perp, both at 2000, each market on the
    23-scenario model: the exact path margins each market apart (a 20% move on either
    leg), so the hedge does not cancel; the screen must not hide the account."""
    btc = Perpetual(InstrumentId("t/BTC-PERP"), "BTC", USDC, 6)
    engine, clock = make_engine(
        tmp_path,
        alice_usd=3_000,
        instruments=(PERP, btc),
        markets={"ETH": Scenario(LYRA_LIKE), "BTC": Scenario(LYRA_LIKE)},
    )
    both = [SourceReport(s, m, 2000 * USD, 0) for s in SOURCES for m in ("ETH", "BTC")]
    engine.step(both)
    trade(engine, "long-btc", ALICE, BOB, btc, 10 * ETH, 2000)
    trade(engine, "short-eth", BOB, ALICE, PERP, 10 * ETH, 2000)
    risk = engine.risk(ALICE)
    assert risk.is_liquidatable  # each leg alone loses 20% of 20,000 in its worst scenario
    clock.set(60)
    step = engine.step(
        [SourceReport(s, m, 2000 * USD, 60) for s in SOURCES for m in ("ETH", "BTC")],
        keeper=KEEPER,
    )
    assert [liq.account for liq in step.liquidations] == [ALICE]


def test_the_keeper_must_be_an_open_user_account(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path)
    engine.step(reports(0, 2000, 2000, 2000, 2000, 2000))
    alice_goes_long(engine, 5, 2000)
    clock.set(60)
    before = engine.ledger.head
    with pytest.raises(InvalidArgument, match="keeper='t/insurance-fund' is not an open user"):
        engine.step(reports(60, 1850, 1850, 1850, 1850, 1850), keeper=SYS.insurance_fund)
    assert engine.ledger.head == before and engine.prices_ts == 0  # nothing changed


def test_collateral_is_sold_to_the_keeper_at_its_haircut_value(tmp_path: Path) -> None:
    weth = SpotCollateral(WETH, "ETH", haircut=100_000_000)  # 10% haircut
    engine, clock = make_engine(tmp_path, collateral=[weth])
    led = engine.ledger
    led.register_asset(WETH)
    deposit(led, "d-weth", ALICE, 10**18, WETH)  # 1 WETH beside 1000 USDC
    engine.step(reports(0, 2000, 2000, 2000, 2000, 2000))
    alice_goes_long(engine, 20, 2000)
    clock.set(60)
    fund = led.balance_units(SYS.insurance_fund, USDC.id)
    step = engine.step(reports(60, 1880, 1880, 1880, 1880, 1880), keeper=KEEPER)
    # equity 1000 + 0.9 * 1880 + 20 * (1880 - 2000) = 292 < MM 5% * 20 * 1880 = 1880.
    # The WETH goes to the keeper for 1692 USDC; the perp loss takes 2400; the 292 left
    # pays the fee (penalty 1880 capped at what is left): no bad debt.
    (liq,) = step.liquidations
    assert (liq.plan.penalty, liq.plan.bad_debt_covered, liq.plan.bad_debt_uncovered) == (
        292 * USD,
        0,
        0,
    )
    assert led.balance_units(ALICE, WETH.id) == 0 and led.balance_units(KEEPER, WETH.id) == 10**18
    assert led.balance_units(ALICE, USDC.id) == 0
    assert led.balance_units(SYS.insurance_fund, USDC.id) == fund + 146 * USD
    led.check_invariants()
