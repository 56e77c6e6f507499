"""The Hyperliquid preset: anchors.md §3.9 vectors through ``liqeng.presets.hyperliquid``,
bad input, and ``PRESET`` liquidating in a real engine."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest
from tests.conftest import ALICE, BOB
from tests.test_engine import KEEPER, PERP, SYS, alice_goes_long, make_engine, reports, trade

from liqeng.errors import InvalidArgument
from liqeng.ids import AccountId
from liqeng.liquidation import FixedFee
from liqeng.liquidation.portion import close_fraction
from liqeng.liquidation.waterfall import AdlCandidate
from liqeng.presets import hyperliquid as hl
from liqeng.risk.margin import AccountRisk
from liqeng.units import RATE_SCALE

USD = 10**6
ETH = 10**6


def _cents(x: Fraction) -> Fraction:
    return Fraction(round(x, 2))


def _hl_1() -> tuple[Fraction, Fraction, bool]:
    # isolated long 1 BTC at mark 100,000, margin 5,000, 40x: MM rate 1/80, MM 1,250,
    # available 3,750: liq = 100,000 - 3,750/(1 - 1/80) = 96,202.53
    liq = hl.liquidation_price(100_000, 1, 5_000, 40)
    equity = 5_000 + (liq - 100_000)
    mm = hl.maintenance_margin(liq, 40)
    return _cents(liq), _cents(equity), equity == mm and not hl.is_liquidatable(equity, mm)


def _hl_2() -> Fraction:
    # the same as a short: liq = 100,000 + 3,750/(1 + 1/80) = 103,703.70
    return _cents(hl.liquidation_price(100_000, -1, 5_000, 40))


def _hl_3() -> tuple[Fraction, bool, bool, bool]:
    # equity < 2/3·MM: 5,000 + (p - 100,000) < (2/3)·p/80  <=>  p < 95,000/(1 - (2/3)/80)
    p = hl.backstop_price(100_000, 1, 5_000, 40)
    exact = p == Fraction(95_000) / (1 - Fraction(2, 3) / 80)

    def backstop_at(price: Fraction) -> bool:
        return hl.is_backstop(5_000 + price - 100_000, hl.maintenance_margin(price, 40))

    return _cents(p), exact, backstop_at(p - Fraction(1, 10**9)), backstop_at(p)


def _hl_4() -> tuple[Fraction, Fraction, list[str]]:
    # (mark/entry)·(notional/account value): A (110/100)·(11,000/2,000) = 6.05,
    # B (110/100)·(5,500/5,000) = 1.21: A is deleveraged first (against a bankrupt short)
    a = AdlCandidate(AccountId("t/a"), 100, 100, 110, 2_000)
    b = AdlCandidate(AccountId("t/b"), 50, 100, 110, 5_000)
    queue = hl.adl_queue([b, a], losing_side=-1)
    return hl.adl_index(a), hl.adl_index(b), [c.account for c in queue]


def _hl_5() -> tuple[Fraction, Fraction, Fraction]:
    # 150,000 > 100,000: the first market liquidation sends 20% = 30,000; during the 30 s
    # cooldown the order is for the whole remaining 120,000; afterwards 20% again
    first = hl.market_liquidation_notional(150_000)
    in_cooldown = hl.market_liquidation_notional(150_000 - first, seconds_since_partial=10)
    after = hl.market_liquidation_notional(120_000, seconds_since_partial=30)
    return first, in_cooldown, after


VECTORS = [
    pytest.param(_hl_1, (Fraction("96202.53"), Fraction("1202.53"), True), id="HL-1"),
    pytest.param(_hl_2, Fraction("103703.70"), id="HL-2"),
    pytest.param(_hl_3, (Fraction("95798.32"), True, True, False), id="HL-3"),
    pytest.param(_hl_4, (Fraction("6.05"), Fraction("1.21"), ["t/a", "t/b"]), id="HL-4"),
    pytest.param(_hl_5, (30_000, 120_000, 24_000), id="HL-5"),
]


@pytest.mark.parametrize(("compute", "expected"), VECTORS)
def test_hyperliquid_vectors(compute: Callable[[], object], expected: object) -> None:
    assert compute() == expected


def test_maintenance_margin_from_max_leverage() -> None:
    assert hl.maintenance_margin_rate(50) == Fraction(1, 100)
    assert hl.maintenance_margin_rate(40) == Fraction(1, 80)
    assert hl.maintenance_margin_rate(3) == Fraction(1, 6)
    assert hl.maintenance_leverage(25) == 50
    assert hl.maintenance_margin(100_000, 40) == 1_250
    params = hl.margin_model(40).params
    assert (params.perp_maintenance_rate, params.perp_initial_rate) == (12_500_000, 25_000_000)
    assert hl.margin_model(3).params.perp_maintenance_rate == 166_666_667  # rounded up


def test_preset_sizes_as_hyperliquid() -> None:
    fee = hl.PRESET.mechanism()
    assert isinstance(fee, FixedFee) and fee.penalty is not None
    assert fee.waterfall.stages == ("insurance_fund", "adl") and fee.adl_ranking == "hyperliquid"
    assert (fee.keeper_share, fee.protocol_share) == (0, 0)
    # health = equity/MM; market liquidation (H >= 2/3): no fee; backstop (H < 2/3): 100%
    mm = 3 * 10**9
    assert fee.penalty.rate(Fraction(2, 3), 0.5, 0.5) == 0
    assert fee.penalty.rate(Fraction(2 * mm - 1, 3 * mm), 0.5, 0.5) == RATE_SCALE
    # 20% above $100,000 of notional, all of it at or below, all of it in the backstop
    healthy = AccountRisk(equity=2_400 * USD, maintenance_margin=3_000 * USD)
    bankrupt_ish = AccountRisk(equity=1_999 * USD, maintenance_margin=3_000 * USD)
    sizing, dust = fee.sizing, fee.dust

    def f(risk: AccountRisk, notional: int) -> Fraction:
        return close_fraction(sizing, risk, notional, 0, dust)

    assert f(healthy, 150_000 * USD) == Fraction(1, 5)
    assert f(healthy, 100_000 * USD + 2) == Fraction(1, 5)
    assert f(healthy, 100_000 * USD) == 1
    assert f(bankrupt_ish, 150_000 * USD) == 1


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda: hl.maintenance_margin_rate(0), "max_leverage=0"),
        (lambda: hl.maintenance_margin_rate(-5), "max_leverage=-5"),
        (lambda: hl.maintenance_margin_rate(True), "max_leverage=True"),
        (lambda: hl.maintenance_margin_rate(2.5), "max_leverage=2.5"),  # type: ignore[arg-type]
        (lambda: hl.margin_model(0), "max_leverage=0"),
        (lambda: hl.liquidation_price(100_000, 1, 5_000, 0), "max_leverage=0"),
        (lambda: hl.liquidation_price(100_000, 0, 5_000, 40), "size=0"),
        (lambda: hl.liquidation_price(-1, 1, 5_000, 40), "price=-1"),
        (lambda: hl.liquidation_price(100_000, 1, 5_000.0, 40), "margin=5000.0"),  # type: ignore[arg-type]
        (lambda: hl.liquidation_price(100_000, 1, 5_000, 40, threshold=0), "threshold=0"),
        (lambda: hl.liquidation_price(100_000, 1, 5_000, 40, threshold=2), "threshold=2"),
        (lambda: hl.maintenance_margin(-1, 40), "notional=-1"),
        (lambda: hl.market_liquidation_notional(-150_000), "position_notional=-150000"),
        (lambda: hl.market_liquidation_notional(1, seconds_since_partial=-1), "partial=-1"),
        (lambda: hl.is_backstop(1, -3), "mm=-3"),
        (lambda: hl.mechanism(quote_decimals=-1), "quote_decimals=-1"),
    ],
)
def test_bad_input_is_refused_naming_the_value(call: Callable[[], object], named: str) -> None:
    with pytest.raises(InvalidArgument, match=named):
        call()


def test_preset_market_liquidation_closes_a_small_account_whole_without_fee(
    tmp_path: Path,
) -> None:
    engine, clock = make_engine(tmp_path, mechanism=hl.PRESET.mechanism())
    engine.step(reports(0, *[2000] * 5))
    alice_goes_long(engine, 5, 2000)
    clock.set(60)
    step = engine.step(reports(60, *[1880] * 5), keeper=KEEPER)
    # equity 1,000 - 600 = 400 < MM 470 but >= 2/3·470: market liquidation, notional
    # 9,400 <= 100,000: all of it, no clearance fee; the trader keeps the 400
    plan = step.liquidations[0].plan
    assert (plan.notional, plan.penalty) == (9_400 * USD, 0)
    led = engine.ledger
    assert led.positions_of(ALICE) == {}
    assert led.balance_units(ALICE, engine.quote.id) == 400 * USD
    led.check_invariants()


def test_preset_market_liquidation_takes_20_percent_of_a_large_account(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path, alice_usd=10_000, mechanism=hl.PRESET.mechanism())
    engine.step(reports(0, *[2000] * 5))
    trade(engine, "open", ALICE, BOB, PERP, 60 * ETH, 2000)
    clock.set(60)
    step = engine.step(reports(60, *[1910] * 5), keeper=KEEPER)
    # equity 10,000 - 5,400 = 4,600; MM 5%·114,600 = 5,730; health 0.80 >= 2/3 and
    # notional 114,600 > 100,000: 20% (12 ETH) goes, no fee
    plan = step.liquidations[0].plan
    assert (plan.notional, plan.penalty) == (22_920 * USD, 0)
    led = engine.ledger
    assert led.position(ALICE, PERP.id).size == 48 * ETH  # type: ignore[union-attr]
    led.check_invariants()


def test_preset_backstop_keeps_the_margin_for_the_fund(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path, alice_usd=10_000, mechanism=hl.PRESET.mechanism())
    engine.step(reports(0, *[2000] * 5))
    trade(engine, "open", ALICE, BOB, PERP, 60 * ETH, 2000)
    clock.set(60)
    step = engine.step(reports(60, *[1880] * 5), keeper=KEEPER)
    # equity 10,000 - 7,200 = 2,800 < 2/3·(5%·112,800 = 5,640): the backstop takes all of
    # it and the remaining 2,800 of margin goes to the insurance fund (HLP)
    plan = step.liquidations[0].plan
    assert (plan.notional, plan.penalty, plan.insurance_fee) == (112_800 * USD,) + (
        2_800 * USD,
    ) * 2
    led = engine.ledger
    assert led.positions_of(ALICE) == {}
    assert led.balance_units(ALICE, engine.quote.id) == 0
    assert led.balance_units(SYS.insurance_fund, engine.quote.id) == 12_800 * USD
    led.check_invariants()
