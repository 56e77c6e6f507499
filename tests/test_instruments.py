"""Dated futures, expired options, spot collateral, vol surfaces in marks, initial margin.

Units as in ``test_margin``: USDC has 6 decimals (a price of 1800 USDC per ETH is
``1_800_000_000``); instruments have ``size_decimals=3`` (``size=1500`` is 1.5 ETH).
"""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liqeng.errors import InvalidArgument
from liqeng.ids import InstrumentId, asset_id, instrument_id
from liqeng.ledger.model import InstrumentSpec, Position
from liqeng.market import (
    DatedFuture,
    EuropeanOption,
    Instrument,
    Perpetual,
    SpotCollateral,
    SviSlice,
    Unsettled,
    VolSurface,
    black76,
    mark_price,
    option_marks,
    year_fraction,
)
from liqeng.risk import AccountRisk, MarginParams, account_risk, maintenance_margin, position_value
from liqeng.risk.margin import collateral_value, initial_margin
from liqeng.units import RATE_SCALE, Asset

USDC = Asset(asset_id("eth/USDC"), 6)
DAI = Asset(asset_id("eth/DAI"), 18)
WETH = Asset(asset_id("eth/WETH"), 18)
WSTETH = Asset(asset_id("eth/wstETH"), 18)
DAY = 24 * 3600
EXPIRY = 30 * DAY  # 2_592_000
ETH = 1_000  # one whole ETH in instrument base units (size_decimals=3)


def usdc(x: float) -> int:
    return round(x * 10**6)


ETH_PERP = Perpetual(instrument_id("quickstart/ETH-PERP"), "ETH", USDC, 3)
ETH_FUT = DatedFuture(instrument_id("quickstart/ETH-FUT-30D"), "ETH", USDC, 3, EXPIRY)
ETH_C2000 = EuropeanOption(
    instrument_id("quickstart/ETH-C-2000"), "ETH", USDC, 3, usdc(2000), EXPIRY, True
)
ETH_P1800 = EuropeanOption(
    instrument_id("quickstart/ETH-P-1800"), "ETH", USDC, 3, usdc(1800), EXPIRY, False
)
ETH_P1900_60D = EuropeanOption(
    instrument_id("quickstart/ETH-P-1900-60D"), "ETH", USDC, 3, usdc(1900), 60 * DAY, False
)
ETH_C2200_120D = EuropeanOption(
    instrument_id("quickstart/ETH-C-2200-120D"), "ETH", USDC, 3, usdc(2200), 120 * DAY, True
)
INSTRUMENTS: dict[InstrumentId, Instrument] = {
    i.id: i for i in (ETH_PERP, ETH_FUT, ETH_C2000, ETH_P1800, ETH_P1900_60D)
}
PARAMS = MarginParams()
WETH_COLL = SpotCollateral(WETH, "ETH", haircut=100_000_000)  # 10%
WSTETH_COLL = SpotCollateral(WSTETH, "ETH", haircut=100_000_000, exchange_rate=True)
RATE_117 = 1_170_000_000  # 1.17 ETH per wstETH

# Skewed SVI slices at 30 and 90 days: ATM w(0) = a + b·sigma.
SURFACE = VolSurface(
    (30 / 365, 90 / 365),
    (SviSlice(0.04, 0.1, -0.5, 0.0, 0.1), SviSlice(0.12, 0.15, -0.4, 0.0, 0.15)),
)


# --- DatedFuture ---------------------------------------------------------------------------


def test_future_gives_its_ledger_spec() -> None:
    assert ETH_FUT.spec() == InstrumentSpec(ETH_FUT.id, 3, net_zero=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"underlying": "eth"}, "underlying='eth' must be 1-32 uppercase letters or digits"),
        ({"underlying": "ETH-USD"}, "underlying='ETH-USD'"),
        ({"expiry_ts": 1.5}, "expiry_ts=1.5 must be an int"),
        ({"expiry_ts": "2592000"}, "expiry_ts='2592000' must be an int"),
        ({"expiry_ts": True}, "expiry_ts=True must be an int"),
    ],
)
def test_invalid_future_is_refused_naming_the_value(
    kwargs: dict[str, object], message: str
) -> None:
    fields: dict[str, object] = {
        "id": "quickstart/F",
        "underlying": "ETH",
        "quote": USDC,
        "size_decimals": 3,
        "expiry_ts": EXPIRY,
    }
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        DatedFuture(**(fields | kwargs))  # type: ignore[arg-type]


def test_future_marks_at_index_before_expiry_and_settlement_from_it() -> None:
    # before expiry a settlement price is ignored
    assert mark_price(ETH_FUT, usdc(1800), EXPIRY - 1, 0.8, usdc(2500)) == usdc(1800)
    # at and after expiry the index is ignored
    for now in (EXPIRY, EXPIRY + DAY):
        assert mark_price(ETH_FUT, usdc(1800), now, 0.8, usdc(2100)) == usdc(2100)


def test_future_value_before_and_after_expiry() -> None:
    long = Position(1_500, usdc(2000))
    # live, index 1800: 1.5 * (1800 - 2000) = -300 USDC
    assert position_value(ETH_FUT, long, usdc(1800), 0, 0.8, usdc(2500)) == usdc(-300)
    # settled at 2100, index 1500 ignored: 1.5 * (2100 - 2000) = +150 USDC
    assert position_value(ETH_FUT, long, usdc(1500), EXPIRY, 0.8, usdc(2100)) == usdc(150)
    # 2.001 ETH short settled at 2100.000001: -2001 * 100_000_001 / 1000
    # = -200_100_002.001 → floor -200_100_003
    short = Position(-2_001, usdc(2000))
    settled = usdc(2100) + 1
    assert position_value(ETH_FUT, short, usdc(1500), EXPIRY, 0.8, settled) == -200_100_003
    # live, 0.007 ETH, index 3 units above entry: ±7 * 3 / 1000 = ±0.021 → 0 and -1
    up = usdc(2000) + 3
    assert position_value(ETH_FUT, Position(7, usdc(2000)), up, 0, 0.8) == 0
    assert position_value(ETH_FUT, Position(-7, usdc(2000)), up, 0, 0.8) == -1


def test_future_value_is_exact_for_an_18_decimal_quote() -> None:
    fut = DatedFuture(instrument_id("quickstart/ETH-FUT-DAI"), "ETH", DAI, 3, EXPIRY)
    entry = 2000 * 10**18
    long = Position(ETH, entry)
    # 1 ETH, index 1 unit above entry: 1 * 1 = 1 unit (float(2e21 + 1) == 2e21 gives 0)
    assert position_value(fut, long, entry + 1, 0, 0.8) == 1
    assert position_value(fut, long, entry, EXPIRY, 0.8, entry + 1) == 1


def test_future_margin_is_perp_formula_live_and_zero_settled() -> None:
    for size in (1_500, -1_500):
        position = Position(size, usdc(2000))
        # live, index 1800: MM 5% * 1.5 * 1800 = 135 USDC, IM 10% = 270 USDC
        assert maintenance_margin(ETH_FUT, position, usdc(1800), EXPIRY - 1, PARAMS) == usdc(135)
        assert initial_margin(ETH_FUT, position, usdc(1800), EXPIRY - 1, PARAMS) == usdc(270)
        for now in (EXPIRY, EXPIRY + DAY):
            assert maintenance_margin(ETH_FUT, position, usdc(1800), now, PARAMS) == 0
            assert initial_margin(ETH_FUT, position, usdc(1800), now, PARAMS) == 0


@pytest.mark.parametrize("instrument", [ETH_FUT, ETH_C2000])
def test_expired_without_settlement_raises_unsettled(instrument: Instrument) -> None:
    message = rf"{re.escape(instrument.id)} expired at ts=2592000 \(now 2678400\)"
    with pytest.raises(Unsettled, match=message):
        mark_price(instrument, usdc(1800), EXPIRY + DAY, 0.8)
    with pytest.raises(Unsettled, match=message) as info:
        position_value(instrument, Position(ETH, usdc(2000)), usdc(1800), EXPIRY + DAY, 0.8)
    assert isinstance(info.value, InvalidArgument)


def test_account_risk_uses_settlements() -> None:
    positions = {ETH_FUT.id: Position(1_500, usdc(2000)), ETH_PERP.id: Position(ETH, usdc(2000))}
    index = {"ETH": usdc(1500)}
    now = EXPIRY + DAY
    with pytest.raises(Unsettled, match="ETH-FUT-30D"):
        account_risk(usdc(1000), positions, INSTRUMENTS, index, now, PARAMS)
    risk = account_risk(
        usdc(1000), positions, INSTRUMENTS, index, now, PARAMS, settlements={ETH_FUT.id: usdc(2100)}
    )
    # equity 1000 + future 1.5 * (2100 - 2000) + perp 1 * (1500 - 2000) = 650 USDC
    # margin only on the perp: MM 5% * 1500 = 75, IM 10% * 1500 = 150 USDC
    assert risk == AccountRisk(usdc(650), usdc(75), usdc(150))


# --- expired options -----------------------------------------------------------------------


@pytest.mark.parametrize("index", [usdc(1000), usdc(2000), usdc(3000)])
def test_expired_option_is_intrinsic_at_settlement_whatever_the_index(index: int) -> None:
    # settled at 2100: call 2000 worth 100, put 1800 worth 0
    assert mark_price(ETH_C2000, index, EXPIRY, 0.8, usdc(2100)) == usdc(100)
    assert mark_price(ETH_P1800, index, EXPIRY, 0.8, usdc(2100)) == 0
    # settled at 1700: call worth 0, put worth 100
    assert mark_price(ETH_C2000, index, EXPIRY + DAY, 0.8, usdc(1700)) == 0
    assert mark_price(ETH_P1800, index, EXPIRY + DAY, 0.8, usdc(1700)) == usdc(100)
    # 2 ETH short of the call settled at 2100: -2 * 100 = -200 USDC
    short = Position(-2 * ETH, usdc(30))
    assert position_value(ETH_C2000, short, index, EXPIRY, 0.8, usdc(2100)) == usdc(-200)
    # the value is final: no requirement (a live short call at 3000 would need 600 USDC)
    assert maintenance_margin(ETH_C2000, short, index, EXPIRY, PARAMS) == 0
    assert initial_margin(ETH_C2000, short, index, EXPIRY, PARAMS) == 0


def test_live_short_option_still_has_margin_one_second_before_expiry() -> None:
    # 2 ETH short of the 2000 call at 3000: 2 * max(0.1 * 3000 - 0, 0.05 * 3000) = 600 USDC
    short = Position(-2 * ETH, usdc(30))
    assert maintenance_margin(ETH_C2000, short, usdc(3000), EXPIRY - 1, PARAMS) == usdc(600)


def test_expired_option_value_is_exact_and_never_rounded_up() -> None:
    strike = 1000 * 10**18
    call = EuropeanOption(instrument_id("quickstart/ETH-C-DAI"), "ETH", DAI, 3, strike, 0, True)
    intrinsic = 2**70 - 1  # float(2**70 - 1) == 2**70
    value = position_value(call, Position(ETH, 0), strike, 0, 0.8, strike + intrinsic)
    assert value == intrinsic  # 1 ETH * intrinsic; got 2**70, one unit too many


def test_option_marks_refuses_expired_options() -> None:
    prices = {"ETH": usdc(2000)}
    with pytest.raises(Unsettled, match=r"quickstart/ETH-C-2000 expired at ts=2592000"):
        option_marks([ETH_P1900_60D, ETH_C2000], prices, EXPIRY, 0.8)
    # one second earlier both are live
    assert option_marks([ETH_P1900_60D, ETH_C2000], prices, EXPIRY - 1, 0.8).shape == (2,)


# --- spot collateral -----------------------------------------------------------------------


def test_plain_token_collateral_value() -> None:
    # 2.5 WETH at 2000 USDC, 10% haircut: 2.5 * 2000 * 0.9 = 4500 USDC
    assert collateral_value(WETH_COLL, 25 * 10**17, usdc(2000)) == usdc(4500)
    # at 2000.000001: 2.5 * 2_000_000_001 * 0.9 = 4_500_000_002.25 → 4_500_000_002
    assert collateral_value(WETH_COLL, 25 * 10**17, usdc(2000) + 1) == 4_500_000_002
    # a plain token ignores an exchange rate
    assert collateral_value(WETH_COLL, 25 * 10**17, usdc(2000), 2 * RATE_SCALE) == usdc(4500)
    # a full haircut counts nothing
    full = SpotCollateral(WETH, "ETH", haircut=RATE_SCALE)
    assert collateral_value(full, 25 * 10**17, usdc(2000)) == 0


def test_lst_collateral_value_needs_its_rate() -> None:
    # 2 wstETH at 2000 USDC, rate 1.17, 10% haircut: 2 * 2000 * 1.17 * 0.9 = 4212 USDC
    assert collateral_value(WSTETH_COLL, 2 * 10**18, usdc(2000), RATE_117) == usdc(4212)
    with pytest.raises(InvalidArgument, match="eth/wstETH needs an exchange rate"):
        collateral_value(WSTETH_COLL, 2 * 10**18, usdc(2000))


def test_bad_haircut_is_refused() -> None:
    with pytest.raises(InvalidArgument, match=r"haircut of eth/WETH=1000000001 is outside"):
        SpotCollateral(WETH, "ETH", haircut=RATE_SCALE + 1)
    with pytest.raises(InvalidArgument, match=r"haircut of eth/WETH=-1 is outside"):
        SpotCollateral(WETH, "ETH", haircut=-1)


def test_account_risk_adds_collateral_to_equity_only() -> None:
    positions = {ETH_PERP.id: Position(ETH, usdc(2000))}
    index = {"ETH": usdc(2000)}
    bare = account_risk(usdc(100), positions, INSTRUMENTS, index, 0, PARAMS)
    # perp worth 0 at its entry; MM 5% * 2000 = 100, IM 10% * 2000 = 200 USDC
    assert bare == AccountRisk(usdc(100), usdc(100), usdc(200))
    risk = account_risk(
        usdc(100),
        positions,
        INSTRUMENTS,
        index,
        0,
        PARAMS,
        collateral={WETH_COLL: 25 * 10**17, WSTETH_COLL: 2 * 10**18},
        exchange_rates={WSTETH.id: RATE_117},
    )
    # 100 + 4500 (WETH) + 4212 (wstETH) = 8812 USDC; requirements unchanged
    assert risk == AccountRisk(usdc(8812), usdc(100), usdc(200))


@given(
    st.integers(0, 10**30),
    st.integers(1, 10**13),
    st.integers(0, RATE_SCALE),
    st.integers(0, 36),
    st.none() | st.integers(1, 1000 * RATE_SCALE),
)
def test_collateral_value_rounds_down(
    balance: int, index: int, haircut: int, decimals: int, rate: int | None
) -> None:
    asset = Asset(asset_id("eth/TOKEN"), decimals)
    coll = SpotCollateral(asset, "ETH", haircut=haircut, exchange_rate=rate is not None)
    value = collateral_value(coll, balance, index, rate)
    price = Fraction(index) * Fraction(RATE_SCALE if rate is None else rate, RATE_SCALE)
    exact = balance * price * Fraction(RATE_SCALE - haircut, RATE_SCALE) / 10**decimals
    assert value <= exact < value + 1


# --- vol surface in marks ------------------------------------------------------------------


@pytest.mark.parametrize("option", [ETH_C2000, ETH_P1800, ETH_P1900_60D, ETH_C2200_120D])
@pytest.mark.parametrize("index", [usdc(1700), usdc(2000), usdc(2300)])
def test_mark_reads_the_surface(option: EuropeanOption, index: int) -> None:
    now = 5 * DAY
    f, k = float(index), float(option.strike)
    t = year_fraction(now, option.expiry_ts)
    sigma = SURFACE.vol(k, f, t)
    assert isinstance(sigma, float)
    expected = black76.price(f, k, t, sigma, option.is_call)
    assert mark_price(option, index, now, SURFACE) == pytest.approx(expected, rel=1e-12)


def test_skew_prices_an_otm_put_above_the_atm_vol() -> None:
    t = year_fraction(0, EXPIRY)
    atm = SURFACE.vol(float(usdc(2000)), float(usdc(2000)), t)
    otm = SURFACE.vol(float(usdc(1800)), float(usdc(2000)), t)
    assert isinstance(atm, float)
    # ATM w = 0.04 + 0.1 * 0.1 = 0.05; at k = ln(0.9): w ≈ 0.0598, a higher vol
    assert atm == pytest.approx((0.05 / t) ** 0.5, rel=1e-12)
    assert otm > atm * 1.05
    skewed = mark_price(ETH_P1800, usdc(2000), 0, SURFACE)
    flat = mark_price(ETH_P1800, usdc(2000), 0, atm)
    assert skewed > flat * 1.05


def test_option_marks_agree_with_mark_price_on_a_surface() -> None:
    options = [ETH_C2000, ETH_P1800, ETH_P1900_60D, ETH_C2200_120D]
    now = 3 * DAY
    marks = option_marks(options, {"ETH": usdc(1950)}, now, SURFACE)
    assert marks.shape == (4,)
    for option, mark in zip(options, marks, strict=True):
        assert float(mark) == pytest.approx(mark_price(option, usdc(1950), now, SURFACE), rel=1e-12)
    # and the surface matters: a flat vol gives other marks
    assert (marks != option_marks(options, {"ETH": usdc(1950)}, now, 0.8)).all()


def test_account_risk_uses_the_surface() -> None:
    positions = {ETH_P1800.id: Position(-2 * ETH, usdc(40))}
    index = {"ETH": usdc(2000)}
    atm = SURFACE.vol(float(usdc(2000)), float(usdc(2000)), year_fraction(0, EXPIRY))
    assert isinstance(atm, float)
    cash = usdc(1000)
    skewed = account_risk(cash, positions, INSTRUMENTS, index, 0, PARAMS, vols={"ETH": SURFACE})
    flat = account_risk(cash, positions, INSTRUMENTS, index, 0, PARAMS, vols={"ETH": atm})
    short = Position(-2 * ETH, usdc(40))
    assert skewed.equity == usdc(1000) + position_value(ETH_P1800, short, usdc(2000), 0, SURFACE)
    assert skewed.equity < flat.equity  # the short put is worth more against the writer
    # requirements do not depend on the vol: 2 * max(0.1 * 2000 - 200, 0.05 * 2000) = 200
    assert skewed.maintenance_margin == flat.maintenance_margin == usdc(200)


# --- initial margin ------------------------------------------------------------------------


def test_short_option_initial_margin_uses_initial_rates() -> None:
    short = Position(-ETH, usdc(30))
    # 2000 call at 1950, otm 50: MM max(195 - 50, 97.5) = 145; IM max(292.5 - 50, 195) = 242.5
    assert maintenance_margin(ETH_C2000, short, usdc(1950), 0, PARAMS) == usdc(145)
    assert initial_margin(ETH_C2000, short, usdc(1950), 0, PARAMS) == usdc(242.5)


@st.composite
def margin_params(draw: st.DrawFn) -> MarginParams:
    rate = st.integers(0, RATE_SCALE)
    perp = draw(rate)
    floor = draw(rate)
    option = draw(st.integers(floor, RATE_SCALE))
    initial_floor = draw(st.integers(floor, RATE_SCALE))
    return MarginParams(
        perp_maintenance_rate=perp,
        option_maintenance_rate=option,
        option_floor_rate=floor,
        perp_initial_rate=draw(st.integers(perp, RATE_SCALE)),
        option_initial_rate=draw(st.integers(max(option, initial_floor), RATE_SCALE)),
        option_initial_floor_rate=initial_floor,
    )


@given(
    st.sampled_from([ETH_PERP, ETH_FUT, ETH_C2000, ETH_P1800, ETH_P1900_60D]),
    st.integers(-(10**9), 10**9),
    st.integers(1, 10**13),
    st.sampled_from([0, EXPIRY - 1, EXPIRY]),
    st.just(PARAMS) | margin_params(),
)
def test_initial_margin_is_at_least_maintenance(
    instrument: Instrument, size: int, index: int, now: int, params: MarginParams
) -> None:
    position = Position(size, usdc(2000))
    mm = maintenance_margin(instrument, position, index, now, params)
    im = initial_margin(instrument, position, index, now, params)
    assert 0 <= mm <= im


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"perp_initial_rate": 40_000_000},
            "perp_maintenance_rate=50000000 must not exceed perp_initial_rate=40000000",
        ),
        (
            {"option_initial_rate": 99_999_999, "option_initial_floor_rate": 50_000_000},
            "option_maintenance_rate=100000000 must not exceed option_initial_rate=99999999",
        ),
        (
            {"option_initial_floor_rate": 49_999_999},
            "option_floor_rate=50000000 must not exceed option_initial_floor_rate=49999999",
        ),
    ],
)
def test_initial_rate_below_maintenance_is_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        MarginParams(**kwargs)


# --- AccountRisk ---------------------------------------------------------------------------


def test_account_risk_initial_defaults_to_maintenance() -> None:
    assert AccountRisk(usdc(100), usdc(50)).initial_margin == usdc(50)
    assert AccountRisk(usdc(100), usdc(50), usdc(80)).initial_margin == usdc(80)
    with pytest.raises(InvalidArgument, match=r"initial_margin=49999999 is outside \[50000000"):
        AccountRisk(usdc(100), usdc(50), usdc(50) - 1)


def test_account_risk_refuses_explicit_negative_initial_margin() -> None:
    with pytest.raises(InvalidArgument, match="initial_margin=-1"):
        AccountRisk(usdc(100), usdc(50), -1)
