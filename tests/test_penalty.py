"""Adaptive penalty: health schedules (Aave v4, dYdX, tiers), volatility scaling, bounds."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liqeng.errors import InvalidArgument
from liqeng.liquidation import penalty as penalty_mod
from liqeng.liquidation.penalty import (
    FACTOR_SCALE,
    AaveV4Bonus,
    AdaptivePenalty,
    HealthTiers,
    TierMode,
    VolatilityScaling,
    implied_atm_vol,
    realised_vol,
)
from liqeng.liquidation.sizing import WAD
from liqeng.market.surface import SviSlice, VolSurface
from liqeng.units import RATE_SCALE

PCT = RATE_SCALE // 100  # 1% = 10_000_000

# 10% at health <= 1/2, falling linearly to 2% at health 1.
LINEAR = HealthTiers(((Fraction(1, 2), 10 * PCT), (Fraction(1), 2 * PCT)), TierMode.LINEAR)
STEPS = HealthTiers(((Fraction(1, 2), 10 * PCT), (Fraction(3, 4), 5 * PCT), (Fraction(1), 2 * PCT)))
# Calm reference 60% vol, factor σ/σ_ref clamped to [1/2, 3].
SCALING = VolatilityScaling(0.6, Fraction(1), Fraction(1, 2), Fraction(3))
ADAPTIVE = AdaptivePenalty(LINEAR, SCALING, floor=PCT // 2, cap=25 * PCT)


# --- health schedules --------------------------------------------------------------------


def test_step_tiers_read_ceilings() -> None:
    # rate = r_i for the lowest ceiling h_i >= health; above the last ceiling, the last rate
    assert STEPS.rate(Fraction(1, 10)) == 10 * PCT
    assert STEPS.rate(Fraction(1, 2)) == 10 * PCT  # a ceiling is inclusive
    assert STEPS.rate(Fraction(51, 100)) == 5 * PCT
    assert STEPS.rate(Fraction(9, 10)) == 2 * PCT
    assert STEPS.rate(Fraction(3, 2)) == 2 * PCT
    assert STEPS.lowest_rate == 2 * PCT


def test_linear_tiers_interpolate_exactly() -> None:
    # h = 0.9: 10% + (2% - 10%)·(0.9 - 0.5)/(1 - 0.5) = 10% - 6.4% = 3.6%
    assert LINEAR.rate_exact(Fraction(9, 10)) == 36_000_000
    # h = 0.7: 10% - 8%·0.4 = 6.8%;  h = 2/3: 10% - 8%·(1/3) = 7.333…% -> ceil
    assert LINEAR.rate(Fraction(7, 10)) == 68_000_000
    assert LINEAR.rate_exact(Fraction(2, 3)) == Fraction(220_000_000, 3)
    assert LINEAR.rate(Fraction(2, 3)) == 73_333_334
    # flat beyond the ends; negative equity is the sickest
    assert LINEAR.rate(Fraction(-1)) == 10 * PCT
    assert LINEAR.rate(Fraction(5)) == 2 * PCT


def test_points_are_sorted_on_construction() -> None:
    t = HealthTiers(((Fraction(1), 0), (Fraction(1, 2), 7)))
    assert t.points == ((Fraction(1, 2), 7), (Fraction(1), 0))


@pytest.mark.parametrize(
    ("hf_max", "factor", "max_bonus", "hf", "bonus", "rate"),
    [
        # AAVE4-1: HFmaxBonus 0.8, factor 50%, max 110%, HF 1 - 1e-18 -> 105.00% (rounding)
        (8 * WAD // 10, 5_000, 11_000, WAD - 1, 10_500, 50_000_000),
        # AAVE4-2: same, HF 0.96 -> 106.00%
        (8 * WAD // 10, 5_000, 11_000, 96 * WAD // 100, 10_600, 60_000_000),
        # AAVE4-3: threshold 0.9, factor 40%, max 120% (min 108%), HF 0.95 -> 114.00%
        (9 * WAD // 10, 4_000, 12_000, 95 * WAD // 100, 11_400, 140_000_000),
    ],
)
def test_aave_v4_bonus_vectors(
    hf_max: int, factor: int, max_bonus: int, hf: int, bonus: int, rate: int
) -> None:
    aave = AaveV4Bonus(hf_max, factor, max_bonus)
    h = Fraction(hf, WAD)
    assert aave.bonus_bps(h) == bonus
    assert aave.rate_exact(h) == rate  # (bonus - 10_000) bps · 1e5
    # through the adaptive penalty at the calm reference (factor exactly 1): unchanged
    calm = AdaptivePenalty(aave, SCALING, 0, RATE_SCALE)
    assert calm.rate(h, 0.6, 0.6) == rate
    assert SCALING.factor(0.6, 0.6) == 1


def test_aave_v4_bonus_clamps_health() -> None:
    aave = AaveV4Bonus(8 * WAD // 10, 5_000, 11_000)
    assert aave.rate_exact(Fraction(3, 2)) == aave.lowest_rate == 50_000_000  # min bonus 105%
    assert aave.rate_exact(Fraction(-1)) == 100_000_000  # max bonus 110%
    assert aave.rate_exact(Fraction(8, 10)) == 100_000_000


def test_dydx_like_matches_fillable_price_vectors() -> None:
    # anchors.md §3.8: 0.1 BTC at $50,000, MMF 10% (PMMR $500), SMMR 1.5, BA 1
    dydx = HealthTiers.dydx_like(mmf=10 * PCT)
    assert dydx.points == ((Fraction(0), 15 * PCT), (Fraction(1), 0))
    # DYDX-11: TNC 400 / TMMR 500 = 0.8 -> 1.5·10%·0.2 = 3% -> fillable 50,000·0.97 = 48,500
    assert dydx.rate_exact(Fraction(4, 5)) == 3 * PCT
    assert 50_000 * (RATE_SCALE - dydx.rate(Fraction(4, 5))) // RATE_SCALE == 48_500
    # DYDX-10: TNC 499 -> 0.15·0.002 = 0.03% -> fillable 49,985
    assert dydx.rate_exact(Fraction(499, 500)) == 300_000
    assert 50_000 * (RATE_SCALE - dydx.rate(Fraction(499, 500))) // RATE_SCALE == 49_985
    # BA 2: the discount saturates at H = 1 - 1/2
    assert HealthTiers.dydx_like(10 * PCT, ba=Fraction(2)).rate(Fraction(1, 4)) == 15 * PCT


@pytest.mark.parametrize(
    ("points", "needle"),
    [
        (((Fraction(1, 2), 1 * PCT), (Fraction(1), 2 * PCT)), "rate=20000000 at health=1"),
        (((Fraction(1, 2), 1), (Fraction(1, 2), 1)), "repeat health=1/2"),
        (((0.5, 1),), "health=0.5"),
        (((Fraction(1), RATE_SCALE + 1),), "rate=1000000001"),
        (((Fraction(1), -1),), "rate=-1"),
        ((), "points=()"),
    ],
)
def test_bad_tiers_raise_naming_the_value(points: object, needle: str) -> None:
    with pytest.raises(InvalidArgument, match=needle.replace("(", r"\(").replace(")", r"\)")):
        HealthTiers(points)  # type: ignore[arg-type]


def test_bad_preset_parameters_raise() -> None:
    with pytest.raises(InvalidArgument, match="ba=1/2"):
        HealthTiers.dydx_like(10 * PCT, ba=Fraction(1, 2))
    with pytest.raises(InvalidArgument, match="mmf=0"):
        HealthTiers.dydx_like(0)
    with pytest.raises(InvalidArgument, match="hf_for_max_bonus"):
        AaveV4Bonus(WAD, 5_000, 11_000)
    with pytest.raises(InvalidArgument, match="max_bonus=9999"):
        AaveV4Bonus(8 * WAD // 10, 5_000, 9_999)
    with pytest.raises(InvalidArgument, match=r"health=0\.9"):
        LINEAR.rate(0.9)  # type: ignore[arg-type]


# --- volatility ----------------------------------------------------------------------------


def test_realised_vol_of_a_daily_path() -> None:
    # every day +1% then -1%·… : r_i = ±ln(1.01) (exact ratios), σ = |r|·sqrt(365)
    prices = [1_000_000, 1_010_000, 1_000_000, 1_010_000, 1_000_000]
    days = [i * 86_400 for i in range(5)]
    assert realised_vol(prices, days) == pytest.approx(math.log(1.01) * math.sqrt(365), rel=1e-12)
    assert realised_vol([7, 7, 7], [0, 1, 2]) == 0.0
    # time-normalised: the same moves over twice the time give σ/√2
    slow = realised_vol(prices, [2 * d for d in days])
    assert slow == pytest.approx(realised_vol(prices, days) / math.sqrt(2), rel=1e-12)


@pytest.mark.parametrize(
    ("prices", "times", "needle"),
    [
        ([1, 2], [0], "same length"),
        ([1], [0], "same length"),
        ([1, 0], [0, 1], r"prices\[1\]=0"),
        ([1, 2.0], [0, 1], r"prices\[1\]=2.0"),
        ([1, 2, 3], [0, 5, 5], r"timestamps\[2\]=5 must be after"),
    ],
)
def test_realised_vol_refuses_bad_paths(prices: list[int], times: list[int], needle: str) -> None:
    with pytest.raises(InvalidArgument, match=needle):
        realised_vol(prices, times)


def test_implied_atm_vol_reads_the_surface() -> None:
    # flat smile: w = a = 0.3²·0.25 at t = 0.25 -> 30% at the money; flat in t before it
    surface = VolSurface((0.25,), (SviSlice(0.09 * 0.25, 0.0, 0.0, 0.0, 0.1),))
    assert implied_atm_vol(surface, 2_000.0, 1 / 365) == pytest.approx(0.3, rel=1e-12)
    assert implied_atm_vol(surface, 2_000, 0.25) == pytest.approx(0.3, rel=1e-12)
    with pytest.raises(InvalidArgument, match="forward=0"):
        implied_atm_vol(surface, 0, 0.25)
    with pytest.raises(InvalidArgument, match=r"t=0\.0"):
        implied_atm_vol(surface, 1.0, 0.0)


def test_factor_is_exact() -> None:
    # float 0.3, 0.6 and 1.2 share a mantissa: the ratios are exactly 1/2 and 2
    assert SCALING.factor(0.3, 0.1) == Fraction(1, 2)
    assert SCALING.factor(0.1, 1.2) == 2  # σ = max(realised, implied)
    assert SCALING.factor(0.0, 0.0) == Fraction(1, 2)  # clamped to lo
    assert SCALING.factor(100.0, 0.0) == 3  # clamped to hi
    root = VolatilityScaling(0.6, Fraction(1, 2), Fraction(0), Fraction(10))
    # sqrt(2) and sqrt(1/2), floored to 1e-18
    assert root.factor(1.2, 0.0) == Fraction(1_414_213_562_373_095_048, FACTOR_SCALE)
    assert root.factor(0.3, 0.0) == Fraction(707_106_781_186_547_524, FACTOR_SCALE)
    blend = VolatilityScaling(0.6, Fraction(1), Fraction(0), Fraction(3), Fraction(1, 4))
    # σ = 1/4·1.2 + 3/4·0.6 (as exact binary values) ≈ 0.75 -> 1.25
    assert blend.factor(0.6, 1.2) == Fraction(5, 4)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(sigma_ref=0.0), "sigma_ref=0.0"),
        (dict(sigma_ref=math.nan), "sigma_ref=nan"),
        (dict(exponent=0.5), "exponent=0.5"),
        (dict(exponent=Fraction(-1)), "exponent=-1"),
        (dict(exponent=Fraction(1, 17)), "exponent=1/17"),
        (dict(lo=Fraction(3, 2)), "lo=3/2"),
        (dict(hi=Fraction(1, 2)), "hi=1/2"),
        (dict(implied_weight=Fraction(2)), "implied_weight=2"),
    ],
)
def test_bad_scaling_raises_naming_the_value(kwargs: dict[str, object], needle: str) -> None:
    base: dict[str, object] = dict(
        sigma_ref=0.6, exponent=Fraction(1), lo=Fraction(1, 2), hi=Fraction(3)
    )
    with pytest.raises(InvalidArgument, match=needle):
        VolatilityScaling(**{**base, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("realised", "implied", "needle"),
    [(math.nan, 0.3, "realised_vol=nan"), (0.3, -0.1, "implied_vol=-0.1"), (0.3, "x", "'x'")],
)
def test_bad_vols_raise(realised: object, implied: object, needle: str) -> None:
    with pytest.raises(InvalidArgument, match=needle):
        ADAPTIVE.rate(Fraction(9, 10), realised, implied)  # type: ignore[arg-type]


# --- adaptive penalty ----------------------------------------------------------------------


def test_calm_versus_stressed() -> None:
    # health 0.9 -> tier 3.6%; σ_ref = 60%
    h = Fraction(9, 10)
    assert ADAPTIVE.rate(h, 0.6, 0.6) == 36_000_000  # calm reference: 3.6%
    assert ADAPTIVE.rate(h, 0.3, 0.3) == 18_000_000  # 30% vol: ×1/2 -> 1.8%
    assert ADAPTIVE.rate(h, 0.3, 1.2) == 72_000_000  # 120% implied: ×2 -> 7.2%
    # k = 1/2: 3.6% × sqrt(1/2) = 2.5455844…% and × sqrt(2) = 5.0911688…%, rounded up
    sqrt_scaling = VolatilityScaling(0.6, Fraction(1, 2), Fraction(1, 2), Fraction(3))
    soft = AdaptivePenalty(LINEAR, sqrt_scaling, 0, RATE_SCALE)
    assert soft.rate(h, 0.3, 0.3) == 25_455_845  # ceil(36e6 × 0.707106781186547524)
    assert soft.rate(h, 1.2, 0.3) == 50_911_689  # ceil(36e6 × 1.414213562373095048)


def test_floor_and_cap() -> None:
    # health 0.3 -> tier 10%; ×3 at extreme vol = 30% -> capped at 25%
    assert ADAPTIVE.rate(Fraction(3, 10), 9.0, 0.0) == 25 * PCT
    # health 2 -> tier 2%; ×1/2 in a dead-calm market = 1% (above the 0.5% floor)
    assert ADAPTIVE.rate(Fraction(2), 0.0, 0.0) == PCT
    floored = AdaptivePenalty(LINEAR, SCALING, floor=3 * PCT // 2, cap=25 * PCT)
    assert floored.rate(Fraction(2), 0.0, 0.0) == 3 * PCT // 2
    assert ADAPTIVE.min_rate == PCT  # ceil(2% × 1/2)
    assert floored.min_rate == 3 * PCT // 2


def test_auction_params_scale_with_vol() -> None:
    h = Fraction(9, 10)
    calm = ADAPTIVE.auction_params(h, 0.3, 0.3, base_decay_per_s=1_000_000)
    ref = ADAPTIVE.auction_params(h, 0.6, 0.6, base_decay_per_s=1_000_000)
    stressed = ADAPTIVE.auction_params(h, 1.2, 0.3, base_decay_per_s=1_000_000)
    # start discount = the penalty rate; decay = ceil(0.1%/s × factor)
    assert (calm.start_discount, calm.decay_per_s, calm.speed) == (
        18_000_000,
        500_000,
        Fraction(1, 2),
    )
    assert (ref.start_discount, ref.decay_per_s) == (36_000_000, 1_000_000)
    assert ref.speed == 1
    assert (stressed.start_discount, stressed.decay_per_s) == (72_000_000, 2_000_000)
    # decay is capped at the whole price per second
    assert ADAPTIVE.auction_params(h, 9.0, 0.0, RATE_SCALE).decay_per_s == RATE_SCALE
    with pytest.raises(InvalidArgument, match="base_decay_per_s=-1"):
        ADAPTIVE.auction_params(h, 0.3, 0.3, -1)


def test_bad_adaptive_parameters_raise() -> None:
    with pytest.raises(InvalidArgument, match="floor=6"):
        AdaptivePenalty(LINEAR, SCALING, floor=6, cap=5)
    with pytest.raises(InvalidArgument, match="cap=1000000001"):
        AdaptivePenalty(LINEAR, SCALING, floor=0, cap=RATE_SCALE + 1)
    with pytest.raises(InvalidArgument, match="tiers="):
        AdaptivePenalty("tiers", SCALING, 0, 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="scaling="):
        AdaptivePenalty(LINEAR, None, 0, 1)  # type: ignore[arg-type]


# --- properties ----------------------------------------------------------------------------

healths = st.fractions(min_value=-2, max_value=3, max_denominator=10**6)
vols = st.floats(min_value=0.0, max_value=20.0, allow_nan=False)


@st.composite
def tiers(draw: st.DrawFn) -> HealthTiers:
    hs = draw(st.lists(healths, min_size=1, max_size=6, unique=True))
    rates = sorted(
        draw(st.lists(st.integers(0, RATE_SCALE), min_size=len(hs), max_size=len(hs))),
        reverse=True,
    )
    mode = draw(st.sampled_from(TierMode))
    return HealthTiers(tuple(zip(sorted(hs), rates, strict=True)), mode)


@st.composite
def scalings(draw: st.DrawFn) -> VolatilityScaling:
    ref = draw(st.floats(min_value=0.01, max_value=3.0))
    k = draw(st.fractions(min_value=0, max_value=4, max_denominator=8))
    lo = draw(st.fractions(min_value=0, max_value=1, max_denominator=100))
    hi = draw(st.fractions(min_value=1, max_value=10, max_denominator=100))
    w = draw(st.none() | st.fractions(min_value=0, max_value=1, max_denominator=100))
    return VolatilityScaling(ref, k, lo, hi, w)


@st.composite
def penalties(draw: st.DrawFn) -> AdaptivePenalty:
    cap = draw(st.integers(0, RATE_SCALE))
    floor = draw(st.integers(0, cap))
    return AdaptivePenalty(draw(tiers()), draw(scalings()), floor, cap)


@given(tiers(), healths, healths)
def test_tiers_never_fall_as_health_falls(t: HealthTiers, a: Fraction, b: Fraction) -> None:
    lo, hi = sorted((a, b))
    assert t.rate_exact(lo) >= t.rate_exact(hi) >= t.lowest_rate
    assert 0 <= t.rate(hi) <= RATE_SCALE


@given(
    st.integers(1, WAD - 1),
    st.integers(0, 10_000),
    st.integers(10_000, 20_000),
    healths,
    healths,
)
def test_aave_bonus_never_falls_as_health_falls(
    hf_max: int, factor: int, top: int, a: Fraction, b: Fraction
) -> None:
    aave = AaveV4Bonus(hf_max, factor, top)
    lo, hi = sorted((a, b))
    assert aave.rate_exact(lo) >= aave.rate_exact(hi) >= aave.lowest_rate


@given(penalties(), healths, healths, vols, vols)
def test_monotone_in_health_and_bounded(
    p: AdaptivePenalty, a: Fraction, b: Fraction, r: float, i: float
) -> None:
    lo, hi = sorted((a, b))
    sick, healthy = p.rate(lo, r, i), p.rate(hi, r, i)
    assert sick >= healthy >= p.min_rate
    assert p.floor <= healthy <= sick <= p.cap


@given(penalties(), healths, vols, vols, vols, vols)
def test_monotone_in_volatility(
    p: AdaptivePenalty, h: Fraction, r1: float, r2: float, i1: float, i2: float
) -> None:
    (ra, rb), (ia, ib) = sorted((r1, r2)), sorted((i1, i2))
    assert p.rate(h, ra, ia) <= p.rate(h, rb, ia) <= p.rate(h, rb, ib)
    calm, stressed = p.auction_params(h, ra, ia, 10**6), p.auction_params(h, rb, ib, 10**6)
    assert calm.start_discount <= stressed.start_discount
    assert calm.decay_per_s <= stressed.decay_per_s


@given(scalings(), vols, vols)
def test_factor_matches_float_pow(s: VolatilityScaling, r: float, i: float) -> None:
    f = s.factor(r, i)
    assert s.lo <= f <= s.hi
    approx = min(max(float(s.sigma(r, i)) / s.sigma_ref, 0.0) ** float(s.exponent), float(s.hi))
    approx = max(approx, float(s.lo))
    assert float(f) == pytest.approx(approx, rel=1e-9, abs=2e-18)


@given(st.integers(0, 10**60), st.integers(1, 16))
def test_integer_root(n: int, q: int) -> None:
    r = penalty_mod._iroot(n, q)
    assert r**q <= n < (r + 1) ** q
