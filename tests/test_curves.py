"""Dutch-auction price curves against Maker (MKR-A*) and Lyra (LYRA-*) vectors."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liqeng.errors import InvalidArgument
from liqeng.liquidation.curves import (
    RAY,
    WAD,
    Curve,
    ExponentialDecrease,
    LinearDecrease,
    StairstepExponentialDecrease,
    TwoSlope,
    needs_reset,
    rdiv,
    rmul,
    rpow,
    start_price,
)

CUT_99 = 99 * RAY // 100  # 0.99 RAY
LYRA_TEST = TwoSlope(Fraction(1), Fraction(4, 5), 600, 7200)  # test/config-test.sol
LYRA_PMRM = TwoSlope(Fraction(98, 100), Fraction(4, 5), 100, 14_400)  # lyra_pmrm.md §5.1


# --- Maker primitives ---------------------------------------------------------------------


def test_rpow_rounds_half_up_at_each_step() -> None:
    # base 10: rpow(15, 2, 10) = (15*15 + 5) // 10 = 23 (1.5^2 = 2.25 -> 2.3 half up)
    assert rpow(15, 2, 10) == 23
    # n = 3: z = 15; x = (225+5)//10 = 23; z = (15*23 + 5)//10 = 35 (1.5^3 = 3.375)
    assert rpow(15, 3, 10) == 35
    assert rpow(0, 0, RAY) == RAY and rpow(0, 5, RAY) == 0 and rpow(CUT_99, 1) == CUT_99


def test_rpow_overflow_raises_like_dss() -> None:
    with pytest.raises(InvalidArgument, match="2\\*\\*128"):
        rpow(2**128, 2, RAY)


def test_rmul_rdiv_floor() -> None:
    # rmul(5 RAY, 0.99 RAY) = 4.95 RAY exactly; rdiv floors: 1/3 RAY
    assert rmul(5 * RAY, CUT_99) == 495 * RAY // 100
    assert rdiv(1, 3) == RAY // 3
    with pytest.raises(InvalidArgument, match="y=0"):
        rdiv(1, 0)


# --- MKR-A1 .. A7 -------------------------------------------------------------------------


def test_mkr_a1_linear_decrease_steps_of_a_tenth() -> None:
    # tau = 3600, top = 1000 RAY: price = 1000 * (3600 - dur) / 3600 -> 1000, 900, ..., 0
    curve = LinearDecrease(3600)
    prices = [curve.price(1000 * RAY, dur) for dur in range(0, 3601, 360)]
    assert prices == [(1000 - 100 * i) * RAY for i in range(11)]
    assert curve.price(1000 * RAY, 10**9) == 0


def test_mkr_a2_linear_decrease_midpoint_and_last_second() -> None:
    curve = LinearDecrease(3600)
    # 1800 s: rmul(1000 RAY, 1800 RAY / 3600) = 500 RAY
    assert curve.price(1000 * RAY, 1800) == 500 * RAY
    # 3599 s: (1 * RAY) // 3600 = 277777777777777777777777 (floor), * 1000 = 0.2777... RAY
    assert curve.price(1000 * RAY, 3599) == 277_777_777_777_777_777_777_777_000


def test_mkr_a3_exponential_half_life_900s() -> None:
    # cut = 0.999230132966 RAY halves the price about every 900 s; dss rpow's rounding
    # makes it a hair above each power of two; compare with the float repr in anchors.md.
    curve = ExponentialDecrease(999_230_132_966 * 10**15)
    prices = [curve.price(4000 * RAY, dur) for dur in (0, 900, 1800, 2700, 3600)]
    assert prices[0] == 4000 * RAY
    assert [float(Fraction(p, RAY)) for p in prices[1:]] == [
        2000.0000002587572,
        1000.0000002587573,
        500.0000001940679,
        250.00000012937863,
    ]
    assert prices[1] == 2_000_000_000_258_757_259_554_676_144_000
    for p, ideal in zip(prices, (4000, 2000, 1000, 500, 250), strict=True):
        assert abs(p - ideal * RAY) < RAY // 1000  # within 0.001 RAY (the dss test)


def test_mkr_a4_stairstep_one_second_60s() -> None:
    # 5 * 0.99^60 with dss rpow rounding (clip.t.sol literal)
    curve = StairstepExponentialDecrease(CUT_99, 1)
    assert curve.price(5 * RAY, 60) == 2_735_783_211_953_807_380_973_706_855


def test_mkr_a5_stairstep_one_second_30s() -> None:
    # 5 * 0.99^30 = 3.6985...
    curve = StairstepExponentialDecrease(CUT_99, 1)
    assert curve.price(5 * RAY, 30) == 3_698_501_866_941_402_113_650_075_460


@pytest.mark.parametrize(
    ("dur", "digits"),
    [
        (89, "1200"),  # 89 // 90 = 0 steps
        (90, "1188"),  # 1200 * 0.99
        (180, "1176.12"),  # 1200 * 0.99^2
        (900, "1085.2584900105653880"),  # 10 steps
        (1800, "981.4883251166770450670"),  # 20 steps
        (3600, "802.7661102836166167260"),  # 40 steps
        (8400, "471.2532340293662212339"),  # 93 steps
    ],
)
def test_mkr_a6_stairstep_90s(dur: int, digits: str) -> None:
    price = StairstepExponentialDecrease(CUT_99, 90).price(1200 * RAY, dur)
    expected = Fraction(digits) * RAY
    # anchors.md gives the value rounded to its last digit
    places = len(digits.partition(".")[2])
    assert abs(price - expected) <= Fraction(RAY, 2 * 10**places)


def test_mkr_a7_cusp_reset_first_at_8280() -> None:
    # 8280 // 90 = 92 steps: 0.99^92 = 0.396678 < cusp 0.40; 91 steps: 0.400685 >= 0.40
    curve = StairstepExponentialDecrease(CUT_99, 90)
    top, cusp, tail = 1200 * RAY, 40 * RAY // 100, 10**9
    first = next(
        d for d in range(0, 10_000, 10) if needs_reset(top, curve.price(top, d), d, tail, cusp)
    )
    assert first == 8280
    assert not needs_reset(top, curve.price(top, 8279), 8279, tail, cusp)
    assert rdiv(curve.price(top, 8280), top) == 396_677_806_422_025_438_749_065_577


def test_needs_reset_by_tail_is_strict() -> None:
    # clip.sol: done = now - tic > tail
    assert not needs_reset(RAY, RAY, 5400, 5400, 0)
    assert needs_reset(RAY, RAY, 5401, 5400, 0)


def test_start_price_is_rmul_of_buf() -> None:
    # clip.t.sol takeSetup: price 4, buf 1.25 -> top = 5 RAY
    assert start_price(4 * RAY, 125 * RAY // 100) == 5 * RAY


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: LinearDecrease(0), "tau"),
        (lambda: LinearDecrease(-1), "tau"),
        (lambda: ExponentialDecrease(0), "cut"),
        (lambda: ExponentialDecrease(RAY), "cut"),
        (lambda: StairstepExponentialDecrease(RAY + 1, 1), "cut"),
        (lambda: StairstepExponentialDecrease(CUT_99, 0), "step"),
        (lambda: TwoSlope(Fraction(11, 10), Fraction(1, 2), 1, 1), "start"),
        (lambda: TwoSlope(Fraction(1, 2), Fraction(3, 4), 1, 1), "cutoff"),
        (lambda: TwoSlope(Fraction(1), Fraction(1, 2), 0, 1), "fast"),
        (lambda: TwoSlope(Fraction(1), Fraction(1, 2), 1, 0), "slow"),
        (lambda: TwoSlope(0.9, Fraction(1, 2), 1, 1), "start"),  # type: ignore[arg-type]
        (lambda: LinearDecrease(10).price(-1, 0), "top"),
        (lambda: LinearDecrease(10).price(1, -1), "dur"),
        (lambda: start_price(RAY, 0), "buf"),
        (lambda: needs_reset(0, 0, 0, 0, 0), "top"),
    ],
)
def test_bad_parameters_raise_naming_the_value(make: object, name: str) -> None:
    with pytest.raises(InvalidArgument, match=name):
        make()  # type: ignore[operator]


# --- Lyra two-slope -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "d"),
    [(300, Fraction(9, 10)), (600, Fraction(4, 5)), (960, Fraction(76, 100)), (7800, 0)],
)
def test_lyra_1_discount(t: int, d: Fraction) -> None:
    # fast: 1 - 0.2 * 300/600 = 0.9; slow: 0.8 - floor(0.8 * 360) / 7200 = 0.8 - 288/7200
    assert LYRA_TEST.discount(t) == d
    assert LYRA_TEST.discount_wad(t) == d * WAD


@pytest.mark.parametrize(
    ("t", "d"),
    [
        (0, Fraction(96, 100)),
        (150, Fraction(88, 100)),
        (300, Fraction(4, 5)),
        (6780, Fraction(8, 100)),
    ],
)
def test_lyra_2_discount(t: int, d: Fraction) -> None:
    # start 0.96, fast 300: 0.96 - 0.16 * 150/300 = 0.88; t = 300 + 6480:
    # 0.8 - floor(0.8 * 6480) / 7200 = 0.8 - 5184/7200 = 0.08
    curve = TwoSlope(Fraction(96, 100), Fraction(4, 5), 300, 7200)
    assert curve.discount(t) == d
    assert curve.discount_wad(t) == d * WAD


def test_lyra_pmrm_5_3_examples() -> None:
    # d(30) = 0.98 - 0.18 * 30/100 = 0.926; d(600) = 0.8 - 400/14400 = 0.7722...;
    # d(9000) = 0.8 - 7120/14400 = 0.30555...; d(14500) = 0
    d = LYRA_PMRM.discount
    assert [d(0), d(30), d(100)] == [Fraction(98, 100), Fraction(926, 1000), Fraction(4, 5)]
    assert d(600) == Fraction(139, 180) and d(9000) == Fraction(11, 36) and d(14_500) == 0
    # on chain each division floors, so the subtracted term is 1e-18 short: d rounds up
    assert LYRA_PMRM.discount_wad(600) == 772_222_222_222_222_223
    assert LYRA_PMRM.discount_wad(9000) == 305_555_555_555_555_556


def test_lyra_truncation_quirk() -> None:
    # e = t - 100 = 1: floor(0.8 * 1) = 0, so on chain d stays 0.8 for a second;
    # the ideal line has already dropped 0.8/14400.
    ideal = TwoSlope(Fraction(98, 100), Fraction(4, 5), 100, 14_400, truncate=False)
    assert LYRA_PMRM.discount(101) == Fraction(4, 5) == Fraction(LYRA_PMRM.discount_wad(101), WAD)
    assert ideal.discount(101) == Fraction(4, 5) - Fraction(4, 5) / 14_400
    # they agree when 0.8 * e is whole: e = 5 -> 4
    assert LYRA_PMRM.discount(105) == ideal.discount(105)


def test_two_slope_price_floors_top_times_d() -> None:
    # top 1000, d(600) = 139/180 -> 772.22... -> 772
    assert LYRA_PMRM.price(1000, 600) == 772


def test_discount_wad_needs_wad_exact_parameters() -> None:
    with pytest.raises(InvalidArgument, match="cutoff"):
        TwoSlope(Fraction(1), Fraction(1, 3), 1, 1).discount_wad(0)


# --- properties ---------------------------------------------------------------------------

CURVES: list[Curve] = [
    LinearDecrease(3600),
    StairstepExponentialDecrease(CUT_99, 90),
    ExponentialDecrease(999_230_132_966 * 10**15),
    LYRA_TEST,
    LYRA_PMRM,
]


@given(
    idx=st.integers(0, len(CURVES) - 1),
    top=st.integers(0, 10**12 * RAY),
    t1=st.integers(0, 20_000),
    t2=st.integers(0, 20_000),
)
def test_curves_non_increasing_and_at_most_top(idx: int, top: int, t1: int, t2: int) -> None:
    curve = CURVES[idx]
    lo, hi = sorted((t1, t2))
    assert 0 <= curve.price(top, hi) <= curve.price(top, lo) <= top


@given(t1=st.integers(0, 20_000), t2=st.integers(0, 20_000), trunc=st.booleans())
def test_two_slope_discount_non_increasing(t1: int, t2: int, trunc: bool) -> None:
    curve = TwoSlope(Fraction(98, 100), Fraction(7, 10), 900, 43_200, truncate=trunc)
    lo, hi = sorted((t1, t2))
    assert 0 <= curve.discount(hi) <= curve.discount(lo) <= Fraction(98, 100)
    assert 0 <= curve.discount_wad(hi) <= curve.discount_wad(lo)


@given(t=st.integers(0, 20_000))
def test_discount_wad_within_1e18_of_exact(t: int) -> None:
    # the WAD path floors once more than the exact truncated path: |diff| <= 1e-18
    assert abs(LYRA_PMRM.discount_wad(t) - LYRA_PMRM.discount(t) * WAD) < 1
