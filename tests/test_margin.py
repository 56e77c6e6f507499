"""Standard margin and account health: exact integers, rounding against the account.

Units: USDC has 6 decimals, so a price of 1800 USDC per ETH is ``1_800_000_000``;
instruments have ``size_decimals=3``, so ``size=2000`` is 2 ETH.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from liqeng.errors import InvalidArgument
from liqeng.ids import InstrumentId, asset_id, instrument_id
from liqeng.ledger.model import InstrumentSpec, Position
from liqeng.market import EuropeanOption, Instrument, Perpetual, mark_price, spec
from liqeng.risk import (
    HEALTH_MAX,
    AccountRisk,
    MarginParams,
    account_risk,
    maintenance_margin,
    position_value,
)
from liqeng.units import PRICE_MAX, RATE_SCALE, Asset

USDC = Asset(asset_id("eth/USDC"), 6)
USDT = Asset(asset_id("eth/USDT"), 6)
DAY = 24 * 3600
ETH = 1_000  # one whole ETH in instrument base units (size_decimals=3)


def usdc(x: float) -> int:
    return round(x * 10**6)


ETH_PERP = Perpetual(instrument_id("quickstart/ETH-PERP"), "ETH", USDC, 3)
BTC_PERP = Perpetual(instrument_id("quickstart/BTC-PERP"), "BTC", USDC, 3)
ETH_C2000 = EuropeanOption(
    instrument_id("quickstart/ETH-C-2000"), "ETH", USDC, 3, usdc(2000), 30 * DAY, True
)
ETH_P1800 = EuropeanOption(
    instrument_id("quickstart/ETH-P-1800"), "ETH", USDC, 3, usdc(1800), 30 * DAY, False
)
ETH_PERP_USDT = Perpetual(instrument_id("quickstart/ETH-PERP-USDT"), "ETH", USDT, 3)
INSTRUMENTS: dict[InstrumentId, Instrument] = {
    i.id: i for i in (ETH_PERP, BTC_PERP, ETH_C2000, ETH_P1800, ETH_PERP_USDT)
}
PARAMS = MarginParams()
INTRINSIC = MarginParams(vol=0.0)  # option marks are intrinsic values: round numbers


# --- instruments ---------------------------------------------------------------------------


def test_instruments_give_their_ledger_spec() -> None:
    assert spec(ETH_PERP) == InstrumentSpec(ETH_PERP.id, 3, net_zero=True)
    assert ETH_C2000.spec() == InstrumentSpec(ETH_C2000.id, 3, net_zero=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strike": -5}, "strike=-5 of quickstart/X must be positive"),
        ({"strike": 0}, "strike=0 of quickstart/X must be positive"),
        ({"strike": PRICE_MAX + 1}, "exceeds PRICE_MAX"),
        ({"strike": 2000.0}, "strike=2000.0 of quickstart/X must be an int price"),
        ({"expiry_ts": 1.5}, "expiry_ts=1.5 must be an int"),
        ({"is_call": 1}, "is_call=1 of quickstart/X must be a bool"),
        ({"underlying": "eth"}, "underlying='eth' must be 1-32 uppercase letters or digits"),
        ({"underlying": ""}, "underlying=''"),
        ({"size_decimals": -1}, "size_decimals=-1 is outside"),
        ({"quote": "eth/USDC"}, "quote='eth/USDC' of quickstart/X must be an Asset"),
        ({"id": "X"}, "instrument='X' must be '<namespace>/<name>'"),
    ],
)
def test_invalid_option_is_refused_naming_the_value(
    kwargs: dict[str, object], message: str
) -> None:
    fields: dict[str, object] = {
        "id": "quickstart/X",
        "underlying": "ETH",
        "quote": USDC,
        "size_decimals": 3,
        "strike": usdc(2000),
        "expiry_ts": 0,
        "is_call": True,
    }
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        EuropeanOption(**(fields | kwargs))  # type: ignore[arg-type]


def test_invalid_perpetual_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="underlying='ETH-USD'"):
        Perpetual(instrument_id("quickstart/ETH-PERP"), "ETH-USD", USDC, 3)
    with pytest.raises(InvalidArgument, match="is not a Perpetual, DatedFuture or EuropeanOption"):
        spec("quickstart/ETH-PERP")  # type: ignore[arg-type]


# --- position value ------------------------------------------------------------------------


def test_perp_value_is_size_times_index_move() -> None:
    # 2 ETH long at 2000, index 1800: 2 * (1800 - 2000) = -400 USDC
    long = Position(2 * ETH, usdc(2000))
    assert position_value(ETH_PERP, long, usdc(1800), 0, 0.8) == usdc(-400)
    # 2 ETH short at 2000, index 1800: -2 * (1800 - 2000) = +400 USDC
    short = Position(-2 * ETH, usdc(2000))
    assert position_value(ETH_PERP, short, usdc(1800), 0, 0.8) == usdc(400)


def test_perp_value_rounds_down_for_longs_and_shorts() -> None:
    # 0.001 ETH, index 1 base unit above entry: ±0.001 * 1 = ±0.001 unit
    up = usdc(2000) + 1
    assert position_value(ETH_PERP, Position(1, usdc(2000)), up, 0, 0.8) == 0  # floor(0.001)
    assert position_value(ETH_PERP, Position(-1, usdc(2000)), up, 0, 0.8) == -1  # floor(-0.001)


def test_option_value_is_size_times_mark_premium_style() -> None:
    # 2 ETH of the 2000 call, index 2100, vol 0 (mark = intrinsic 100 USDC):
    # 2 * 100 = 200 USDC, whatever the entry (the premium was paid at the trade)
    for entry in (0, usdc(50), usdc(150)):
        long = Position(2 * ETH, entry)
        assert position_value(ETH_C2000, long, usdc(2100), 0, 0.0) == usdc(200)
        short = Position(-2 * ETH, entry)
        assert position_value(ETH_C2000, short, usdc(2100), 0, 0.0) == usdc(-200)
    # out of the money at vol 0: worth nothing
    assert position_value(ETH_C2000, Position(ETH, 0), usdc(1900), 0, 0.0) == 0


def test_option_value_uses_the_exact_binary_value_of_the_mark() -> None:
    # 1.5 ETH short of the 2000 call at index 1900, 30 days, 80% vol
    mark = mark_price(ETH_C2000, usdc(1900), 0, 0.8)
    exact = Fraction(mark) * -1_500 / 1_000
    value = position_value(ETH_C2000, Position(-1_500, 0), usdc(1900), 0, 0.8)
    assert value == math.floor(exact)
    assert value < exact  # the mark is not a whole number of units: rounded away


def exact_value(instrument: Instrument, position: Position, index: int, vol: float) -> Fraction:
    scale: int = 10**instrument.size_decimals
    if isinstance(instrument, Perpetual):
        return Fraction(position.size * (index - position.entry_price), scale)
    return Fraction(mark_price(instrument, index, 0, vol)) * position.size / scale


sizes = st.integers(-(10**9), 10**9)
prices = st.integers(1, 10**13)


@given(
    st.sampled_from([ETH_PERP, ETH_C2000, ETH_P1800]),
    sizes,
    prices,
    prices,
    st.floats(0.0, 3.0),
)
def test_value_is_floor_of_the_exact_value(
    instrument: Instrument, size: int, entry: int, index: int, vol: float
) -> None:
    position = Position(size, entry)
    value = position_value(instrument, position, index, 0, vol)
    exact = exact_value(instrument, position, index, vol)
    assert value <= exact < value + 1


# --- maintenance margin --------------------------------------------------------------------


def test_perp_margin_is_rate_times_notional() -> None:
    # 2 ETH at index 1800, 5%: 0.05 * 2 * 1800 = 180 USDC, long or short
    for size in (2 * ETH, -2 * ETH):
        position = Position(size, usdc(2000))
        assert maintenance_margin(ETH_PERP, position, usdc(1800), 0, PARAMS) == usdc(180)


def test_perp_margin_rounds_up() -> None:
    # 0.001 ETH at 1800.000001: 0.05 * 0.001 * 1_800_000_001 = 90_000.00005 → 90_001 units
    position = Position(1, usdc(1800))
    assert maintenance_margin(ETH_PERP, position, usdc(1800) + 1, 0, PARAMS) == 90_001


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (usdc(2100), usdc(210)),  # ITM, otm 0: max(0.1*2100 - 0, 0.05*2100) = 210
        (usdc(1950), usdc(145)),  # otm 50: max(195 - 50, 97.5) = 145
        (usdc(1800), usdc(90)),  # otm 200: max(180 - 200, 90) = 90, the floor
    ],
)
def test_short_call_margin(index: int, expected: int) -> None:
    # 1 ETH short of the 2000 call
    position = Position(-ETH, usdc(30))
    assert maintenance_margin(ETH_C2000, position, index, 0, PARAMS) == expected


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (usdc(1700), usdc(170)),  # ITM, otm 0: max(0.1*1700, 85) = 170
        (usdc(1850), usdc(135)),  # otm 50: max(185 - 50, 92.5) = 135
        (usdc(2000), usdc(100)),  # otm 200: max(200 - 200, 100) = 100, the floor
    ],
)
def test_short_put_margin(index: int, expected: int) -> None:
    # 1 ETH short of the 1800 put
    position = Position(-ETH, usdc(30))
    assert maintenance_margin(ETH_P1800, position, index, 0, PARAMS) == expected


def test_short_option_margin_rounds_up_and_long_option_needs_none() -> None:
    # 0.001 ETH short of the 2000 call at index 2000.000001, otm 0:
    # 0.1 * 2_000_000_001 * 0.001 = 200_000.0001 → 200_001 units
    position = Position(-1, 0)
    assert maintenance_margin(ETH_C2000, position, usdc(2000) + 1, 0, PARAMS) == 200_001
    assert maintenance_margin(ETH_C2000, Position(5 * ETH, 0), usdc(2000), 0, PARAMS) == 0


@given(
    st.sampled_from([ETH_PERP, ETH_C2000, ETH_P1800]),
    sizes,
    prices,
    st.integers(0, RATE_SCALE),
    st.integers(0, RATE_SCALE),
)
def test_margin_is_never_negative_and_grows_with_size(
    instrument: Instrument, size: int, index: int, rate: int, floor: int
) -> None:
    top = RATE_SCALE  # initial rates at their maximum, above any maintenance rate
    params = MarginParams(rate, max(rate, floor), min(rate, floor), 0.8, top, top, top)
    small = maintenance_margin(instrument, Position(size, 1), index, 0, params)
    large = maintenance_margin(instrument, Position(2 * size, 1), index, 0, params)
    assert 0 <= small <= large
    if isinstance(instrument, EuropeanOption) and size >= 0:
        assert large == 0


def test_margin_params_are_validated() -> None:
    with pytest.raises(InvalidArgument, match="perp_maintenance_rate=-1 is outside"):
        MarginParams(perp_maintenance_rate=-1)
    with pytest.raises(InvalidArgument, match="option_maintenance_rate=1000000001 is outside"):
        MarginParams(option_maintenance_rate=RATE_SCALE + 1)
    with pytest.raises(InvalidArgument, match=r"option_floor_rate=0\.05 must be an int"):
        MarginParams(option_floor_rate=0.05)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="option_floor_rate=200000000 must not exceed"):
        MarginParams(option_floor_rate=200_000_000)
    with pytest.raises(InvalidArgument, match="vol=nan"):
        MarginParams(vol=math.nan)
    with pytest.raises(InvalidArgument, match=r"vol=-0\.1 must be non-negative"):
        MarginParams(vol=-0.1)


def test_bad_positions_and_prices_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="index_price=0 is outside"):
        position_value(ETH_PERP, Position(ETH, usdc(2000)), 0, 0, 0.8)
    with pytest.raises(InvalidArgument, match=r"size in quickstart/ETH-PERP=1\.5"):
        position_value(ETH_PERP, Position(1.5, usdc(2000)), usdc(2000), 0, 0.8)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="entry_price in quickstart/ETH-PERP=-1"):
        maintenance_margin(ETH_PERP, Position(ETH, -1), usdc(2000), 0, PARAMS)
    with pytest.raises(InvalidArgument, match="is not a Perpetual, DatedFuture or EuropeanOption"):
        maintenance_margin("ETH", Position(ETH, 1), usdc(2000), 0, PARAMS)  # type: ignore[arg-type]


# --- account risk --------------------------------------------------------------------------


def test_account_risk_predicates() -> None:
    # equity 150, requirement 100: health 3/2, healthy
    ok = AccountRisk(usdc(150), usdc(100))
    assert not ok.is_liquidatable and ok.health == Fraction(3, 2) and ok.shortfall == 0
    # equity 80, requirement 100: health 4/5, short by 20
    bad = AccountRisk(usdc(80), usdc(100))
    assert bad.is_liquidatable and bad.health == Fraction(4, 5) and bad.shortfall == usdc(20)
    # exactly at the requirement is not liquidatable
    assert not AccountRisk(usdc(100), usdc(100)).is_liquidatable


def test_account_without_requirement() -> None:
    # no requirement and equity >= 0: healthy, health is the HEALTH_MAX sentinel
    assert not AccountRisk(0, 0).is_liquidatable
    assert AccountRisk(0, 0).health == HEALTH_MAX == Fraction(10**18)
    # no requirement but negative equity (bad debt): liquidatable, health -HEALTH_MAX
    debt = AccountRisk(-1, 0)
    assert debt.is_liquidatable and debt.health == -HEALTH_MAX and debt.shortfall == 1


def test_account_risk_is_validated() -> None:
    with pytest.raises(InvalidArgument, match="maintenance_margin=-1 is outside"):
        AccountRisk(0, -1)
    with pytest.raises(InvalidArgument, match=r"equity=1\.0 must be an int"):
        AccountRisk(1.0, 0)  # type: ignore[arg-type]


@given(st.integers(-(10**30), 10**30), st.integers(0, 10**30))
def test_health_below_one_iff_liquidatable(equity: int, requirement: int) -> None:
    risk = AccountRisk(equity, requirement)
    assert (risk.health < 1) == risk.is_liquidatable
    assert -HEALTH_MAX <= risk.health <= HEALTH_MAX
    assert risk.shortfall == max(requirement - equity, 0)


def test_short_put_account_becomes_liquidatable_as_index_falls() -> None:
    # 1 ETH short of the 1800 put, 300 USDC cash, vol 0 (mark = intrinsic)
    positions = {ETH_P1800.id: Position(-ETH, usdc(40))}

    def at(index: float) -> AccountRisk:
        return account_risk(usdc(300), positions, INSTRUMENTS, {"ETH": usdc(index)}, 0, INTRINSIC)

    # index 1800: equity 300 - 0 = 300; requirement max(0.1*1800, 90) = 180;
    # initial max(0.15*1800, 0.10*1800) = 270
    assert at(1800) == AccountRisk(usdc(300), usdc(180), usdc(270))
    # index 1700: equity 300 - 100 = 200; requirement 170 → still healthy
    assert at(1700) == AccountRisk(usdc(200), usdc(170), usdc(255))
    assert not at(1700).is_liquidatable
    # index 1600: equity 300 - 200 = 100; requirement 160 → liquidatable, short by 60
    assert at(1600) == AccountRisk(usdc(100), usdc(160), usdc(240))
    assert at(1600).is_liquidatable and at(1600).shortfall == usdc(60)


def test_account_risk_sums_every_position() -> None:
    # cash 1000, 2 ETH perp long at 2000, 1 ETH short 2000 call, 0.5 BTC short at 60000
    positions = {
        ETH_PERP.id: Position(2 * ETH, usdc(2000)),
        ETH_C2000.id: Position(-ETH, usdc(80)),
        BTC_PERP.id: Position(-500, usdc(60_000)),
        ETH_P1800.id: Position(0, 0),  # closed: ignored
    }
    index = {"ETH": usdc(1900), "BTC": usdc(61_000)}
    risk = account_risk(usdc(1000), positions, INSTRUMENTS, index, 0, PARAMS)
    call_value = position_value(ETH_C2000, positions[ETH_C2000.id], usdc(1900), 0, 0.8)
    # equity: 1000 + 2*(1900-2000) + call value + (-0.5)*(61000-60000) = 1000 - 200 - 500 + call
    assert risk.equity == usdc(300) + call_value
    # requirement: 0.05*2*1900 + max(0.1*1900 - 100, 0.05*1900) + 0.05*0.5*61000
    #            = 190 + 95 + 1525 = 1810 USDC
    assert risk.maintenance_margin == usdc(1810)


def test_account_risk_refuses_what_it_cannot_price() -> None:
    index = {"ETH": usdc(2000)}
    with pytest.raises(InvalidArgument, match="instrument='quickstart/SOL-PERP' has a position"):
        unknown = {instrument_id("quickstart/SOL-PERP"): Position(ETH, 1)}
        account_risk(0, unknown, INSTRUMENTS, index, 0, PARAMS)
    with pytest.raises(InvalidArgument, match="no index price for underlying='BTC'"):
        account_risk(0, {BTC_PERP.id: Position(ETH, 1)}, INSTRUMENTS, index, 0, PARAMS)
    mixed = {ETH_PERP.id: Position(ETH, 1), ETH_PERP_USDT.id: Position(ETH, 1)}
    with pytest.raises(InvalidArgument, match="quoted in eth/USDT, other positions in eth/USDC"):
        account_risk(0, mixed, INSTRUMENTS, index, 0, PARAMS)
    misfiled = {ETH_PERP.id: ETH_C2000}
    with pytest.raises(InvalidArgument, match="has id='quickstart/ETH-C-2000'"):
        account_risk(0, {ETH_PERP.id: Position(ETH, 1)}, misfiled, index, 0, PARAMS)
    # a closed position needs neither instrument nor index
    sol = instrument_id("quickstart/SOL-PERP")
    assert account_risk(5, {sol: Position(0, 0)}, {}, {}, 0, PARAMS) == AccountRisk(5, 0)


position_sets = st.fixed_dictionaries(
    {},
    optional={
        ETH_PERP.id: st.builds(Position, sizes, prices),
        ETH_C2000.id: st.builds(Position, sizes, prices),
        ETH_P1800.id: st.builds(Position, sizes, prices),
    },
)


@given(position_sets, st.integers(-(10**15), 10**15), st.integers(0, 10**15), prices)
def test_equity_is_monotonic_in_cash(
    positions: dict[InstrumentId, Position], cash: int, extra: int, index: int
) -> None:
    before = account_risk(cash, positions, INSTRUMENTS, {"ETH": index}, 0, PARAMS)
    after = account_risk(cash + extra, positions, INSTRUMENTS, {"ETH": index}, 0, PARAMS)
    assert after.equity == before.equity + extra
    assert after.maintenance_margin == before.maintenance_margin
    assert after.health >= before.health
    assert after.is_liquidatable <= before.is_liquidatable  # more cash never hurts


@given(
    st.integers(1, 100 * ETH),
    st.integers(0, 10**12),
    st.integers(usdc(100), usdc(1800)),
    st.integers(usdc(100), usdc(1800)),
    st.integers(0, 29 * DAY),
)
def test_short_put_slack_shrinks_as_index_falls(
    size: int, cash: int, i1: int, i2: int, now: int
) -> None:
    # below the strike the put's delta (|Δ| >= N(-σ√T/2) >= 0.4 at σ√T <= 0.5) outruns the
    # 10% requirement, so equity - requirement falls with the index (within rounding)
    assume(i1 != i2)
    high, low = max(i1, i2), min(i1, i2)
    positions = {ETH_P1800.id: Position(-size, 0)}

    def slack(index: int) -> int:
        risk = account_risk(cash, positions, INSTRUMENTS, {"ETH": index}, now, PARAMS)
        return risk.equity - risk.maintenance_margin

    assert slack(low) <= slack(high) + 2
