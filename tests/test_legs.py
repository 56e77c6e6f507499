"""Which legs to close: Lyra's uniform slice versus the greeks-aware greedy choice."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liqeng.errors import InvalidArgument
from liqeng.ids import InstrumentId, asset_id
from liqeng.ledger.model import Position
from liqeng.liquidation.legs import compare, greedy_legs, uniform_slice, uniform_to_target
from liqeng.market import DatedFuture, EuropeanOption, Instrument, Perpetual
from liqeng.risk.margin import position_value
from liqeng.risk.models import MarketData, PerPosition, Scenario, market_account_risk
from liqeng.risk.portfolio import LYRA_LIKE
from liqeng.units import Asset, mul_div_up

USDC = Asset(asset_id("eth/USDC"), 6)
USD = 10**6
DAY = 86_400
NOW = 10 * DAY
PERP = Perpetual(InstrumentId("ex/ETH-PERP"), "ETH", USDC, 3)
FUT = DatedFuture(InstrumentId("ex/ETH-F"), "ETH", USDC, 3, NOW + 60 * DAY)
C2200 = EuropeanOption(
    InstrumentId("ex/ETH-C-2200"), "ETH", USDC, 3, 2200 * USD, NOW + 30 * DAY, True
)
P1800 = EuropeanOption(
    InstrumentId("ex/ETH-P-1800"), "ETH", USDC, 3, 1800 * USD, NOW + 30 * DAY, False
)
P1600 = EuropeanOption(
    InstrumentId("ex/ETH-P-1600"), "ETH", USDC, 3, 1600 * USD, NOW + 30 * DAY, False
)
P2000 = EuropeanOption(
    InstrumentId("ex/ETH-P-2000"), "ETH", USDC, 3, 2000 * USD, NOW + 7 * DAY, False
)
INSTRUMENTS: dict[InstrumentId, Instrument] = {
    i.id: i for i in (PERP, FUT, C2200, P1800, P1600, P2000)
}
MARKET = MarketData(NOW, {"ETH": 2000 * USD})  # ETH at 2000 USDC, flat vol 80%
PCT = 10_000_000  # 1% in parts per RATE_SCALE

# The example (docs/legs.md): a short 2200/1800 strangle, 10 ETH a wing, hedged by 5 long
# 1600 puts, plus 2 ETH long perp, with 2900 USDC, on Scenario(LYRA_LIKE). Keepers take 2%
# of an option's mark value and 0.5% of a perp's notional; lots of 0.1 ETH.
BOOK = {
    C2200.id: Position(-10_000, 0),
    P1800.id: Position(-10_000, 0),
    P1600.id: Position(5_000, 0),
    PERP.id: Position(2_000, 2000 * USD),
}
CASH = 2_900 * USD
LYRA = Scenario(LYRA_LIKE)
LOTS = {i: 100 for i in INSTRUMENTS}


LINEAR = PCT // 2


def example() -> tuple[object, ...]:
    return (BOOK, INSTRUMENTS, MARKET, LYRA, 2 * PCT, 1)


# --- uniform slice -----------------------------------------------------------------------


def test_uniform_slice_rounds_every_leg_toward_zero() -> None:
    positions = {PERP.id: Position(1_001, 0), C2200.id: Position(-1_001, 0), FUT.id: Position(2, 0)}
    # 1001·1/3 = 333.67 -> 333; -1001/3 -> -333 (toward zero, not -334); 2/3 -> 0, left out
    assert uniform_slice(positions, Fraction(1, 3)) == {C2200.id: -333, PERP.id: 333}
    assert uniform_slice(positions, 1) == {C2200.id: -1_001, FUT.id: 2, PERP.id: 1_001}
    assert uniform_slice(positions, 0) == {}


@pytest.mark.parametrize("fraction", [Fraction(-1, 2), Fraction(3, 2), 0.5])
def test_uniform_slice_refuses_a_fraction_outside_zero_one(fraction: object) -> None:
    with pytest.raises(InvalidArgument, match="fraction="):
        uniform_slice({PERP.id: Position(1, 0)}, fraction)  # type: ignore[arg-type]


# --- greedy on per-position margin: arithmetic by hand -------------------------------------


def test_greedy_closes_the_cheap_short_option_before_the_perp() -> None:
    # per-position MM: perp 1 ETH: 5%·2000 = 100 USDC; short 1800 put 1 ETH:
    # max(10%·2000 - 200, 5%·2000) = 100 USDC. Discount: perp 1% of 2000 notional = 20
    # USDC (relief/discount = 5); put 2% of its mark (91.36 USDC) = 1.83 USDC (ratio ~ 55).
    # Equity 250 - 91.36 = 158.64 < MM 200; closing the put: 156.82 / 100 >= 1.
    positions = {PERP.id: Position(1_000, 2000 * USD), P1800.id: Position(-1_000, 0)}
    before = market_account_risk(250 * USD, positions, INSTRUMENTS, MARKET, {}, PerPosition())
    assert before.maintenance_margin == 200 * USD
    plan = greedy_legs(
        positions,
        INSTRUMENTS,
        MARKET,
        PerPosition(),
        2 * PCT,
        1,
        cash=250 * USD,
        linear_discount_rate=PCT,
        trim=False,
    )
    (first,) = plan.chunks  # closing the put alone restores health
    assert first.legs == ((P1800.id, -1_000),) and first.relief == 100 * USD
    mark_value = -position_value(P1800, Position(-1_000, 0), 2000 * USD, NOW, 0.8)
    assert first.discount == plan.discount == -(-2 * PCT * mark_value // 10**9)  # ceil(2%·value)
    # the account pays it: equity falls by the discount, MM by the put's 100 USDC
    assert plan.risk_after.equity == before.equity - plan.discount
    assert plan.risk_after.maintenance_margin == 100 * USD
    assert plan.reached and plan.health == Fraction(plan.risk_after.equity, 100 * USD)


def test_ties_go_to_the_smaller_instrument_id() -> None:
    positions = {PERP.id: Position(1_000, 2000 * USD), FUT.id: Position(1_000, 2000 * USD)}
    # same MM (5%), same discount: "ex/ETH-F" < "ex/ETH-PERP"
    plan = greedy_legs(
        positions, INSTRUMENTS, MARKET, PerPosition(), PCT, Fraction(3, 2), cash=60 * USD
    )
    assert plan.chunks[0].legs[0][0] == FUT.id


def test_the_trimmed_last_chunk_is_the_least_that_reaches_the_target() -> None:
    positions = {PERP.id: Position(3_000, 2000 * USD)}
    args = (positions, INSTRUMENTS, MARKET, PerPosition(), PCT, 1)
    plan = greedy_legs(*args, cash=250 * USD)  # type: ignore[arg-type]
    assert plan == greedy_legs(*args, cash=250 * USD)  # type: ignore[arg-type]
    c = plan.closed[PERP.id]

    def health_after(closed: int) -> Fraction:
        # perp at entry = index: value 0; discount ceil(1%·ceil(closed·2000/10**3))
        discount = mul_div_up(PCT, mul_div_up(closed, 2000 * USD, 10**3), 10**9)
        rest = {PERP.id: Position(3_000 - closed, 2000 * USD)}
        risk = market_account_risk(
            250 * USD - discount, rest, INSTRUMENTS, MARKET, {}, PerPosition()
        )
        return risk.health

    assert plan.reached and health_after(c) == plan.health >= 1 > health_after(c - 1)


def test_the_plan_is_the_exact_path_after_closing() -> None:
    plan = greedy_legs(*example(), cash=CASH, lots=LOTS, linear_discount_rate=LINEAR)  # type: ignore[arg-type]
    after = {i: Position(p.size - plan.closed.get(i, 0), p.entry_price) for i, p in BOOK.items()}
    risk = market_account_risk(CASH + plan.cash_delta, after, INSTRUMENTS, MARKET, {}, LYRA)
    assert plan.reached and plan.risk_before.health < 1
    assert risk == plan.risk_after
    assert sum(c.discount for c in plan.chunks) == plan.discount  # per-leg discounts telescope


# --- the example -------------------------------------------------------------------------


def test_greeks_aware_choice_restores_health_with_a_smaller_penalty() -> None:
    cmp = compare(*example(), cash=CASH, lots=LOTS, linear_discount_rate=LINEAR)  # type: ignore[arg-type]
    uni, greedy = cmp.uniform, cmp.greedy
    assert Fraction(4, 5) < uni.risk_before.health < Fraction(81, 100)  # 0.8006: liquidatable
    assert uni.reached and greedy.reached
    # Lyra's slice closes ~21% of every leg, the hedge and the perp included
    assert uni.fraction == Fraction(523, 2500)
    assert set(uni.closed) == set(BOOK)
    # the greedy closes short wings only: the hedge and the perp stay
    assert set(greedy.closed) == {C2200.id, P1800.id}
    assert greedy.discount * 2 < uni.discount  # 5.24 vs 13.27 USDC
    assert greedy.notional * 2 < uni.notional  # 5188 vs 11296 USDC of ETH exposure
    assert greedy.closed_value < uni.closed_value
    # docs/legs.md quotes these numbers (float marks: allow a unit's drift)
    assert greedy.discount == pytest.approx(5_237_683, abs=50)
    assert uni.discount == pytest.approx(13_269_027, abs=50)


def test_errors_name_the_value() -> None:
    args = (BOOK, INSTRUMENTS, MARKET, LYRA)
    with pytest.raises(InvalidArgument, match="discount_rate=-1"):
        greedy_legs(*args, -1, 1, cash=CASH)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="linear_discount_rate=-5"):
        greedy_legs(*args, PCT, 1, cash=CASH, linear_discount_rate=-5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="target_health=0 must be > 0"):
        greedy_legs(*args, PCT, 0, cash=CASH)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="target_health=-1"):
        uniform_to_target(*args, PCT, -1, cash=CASH)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"target_health=1\.0 must be a Fraction"):
        compare(*args, PCT, 1.0, cash=CASH)  # type: ignore[arg-type]
    unknown = {**BOOK, InstrumentId("ex/NOPE"): Position(1, 0)}
    with pytest.raises(InvalidArgument, match="instrument='ex/NOPE'"):
        greedy_legs(unknown, INSTRUMENTS, MARKET, LYRA, PCT, 1, cash=CASH)
    with pytest.raises(InvalidArgument, match="instrument='ex/NOPE'"):
        greedy_legs(*args, PCT, 1, cash=CASH, lots={InstrumentId("ex/NOPE"): 1})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="lot of ex/ETH-PERP=0"):
        greedy_legs(*args, PCT, 1, cash=CASH, lots={PERP.id: 0})  # type: ignore[arg-type]


# --- properties, per-position margin -----------------------------------------------------

LEGS = sorted([PERP.id, FUT.id, C2200.id, P1800.id, P2000.id])


@settings(max_examples=120, deadline=None)
@given(
    st.dictionaries(st.sampled_from(LEGS), st.integers(-5_000, 5_000), min_size=1, max_size=4),
    st.integers(0, 3_000),
    st.integers(0, 10 * PCT),
    st.integers(0, 2 * PCT),
    st.sampled_from([Fraction(1), Fraction(5, 4), Fraction(3, 2)]),
    st.integers(100, 1_000),
)
def test_greedy_properties_on_per_position_margin(
    sizes: dict[InstrumentId, int],
    cash_usd: int,
    option_rate: int,
    linear_rate: int,
    target: Fraction,
    lot: int,
) -> None:
    positions = {i: Position(s, 1_990 * USD) for i, s in sizes.items()}
    cmp = compare(
        positions,
        INSTRUMENTS,
        MARKET,
        PerPosition(),
        option_rate,
        target,
        cash=cash_usd * USD,
        linear_discount_rate=linear_rate,
        lots={i: lot for i in LEGS},
        resolution=10**6,
    )
    greedy, uni = cmp.greedy, cmp.uniform
    for iid, c in greedy.closed.items():  # never more than the position, never a sign flip
        assert c * positions[iid].size > 0 and abs(c) <= abs(positions[iid].size)
    # uniform_to_target tries f = 1 (close everything) before giving up
    if uni.reached:
        assert greedy.reached
        # LP optimality of relief/discount order, up to each leg's discount rounding up once
        assert greedy.discount < uni.discount + max(len(greedy.closed), 1)
    if greedy.reached:
        assert greedy.health >= target


@settings(max_examples=15, deadline=None)
@given(
    st.dictionaries(st.sampled_from(LEGS), st.integers(-3_000, 3_000), min_size=1, max_size=3),
    st.integers(0, 2_000),
)
def test_greedy_never_flips_a_leg_on_scenario_margin(
    sizes: dict[InstrumentId, int], cash_usd: int
) -> None:
    positions = {i: Position(s, 2_000 * USD) for i, s in sizes.items()}
    args = (positions, INSTRUMENTS, MARKET, LYRA, 2 * PCT, 1)
    plan = greedy_legs(*args, cash=cash_usd * USD, lots={i: 500 for i in LEGS})
    assert plan == greedy_legs(*args, cash=cash_usd * USD, lots={i: 500 for i in LEGS})
    for iid, c in plan.closed.items():
        assert c * positions[iid].size > 0 and abs(c) <= abs(positions[iid].size)
    assert plan.health >= Fraction(1) or not plan.reached
