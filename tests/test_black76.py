"""Black-76 against an independent scalar reference (``math.erfc``, ``NormalDist``).

The reference CDF is ``math.erfc(-x/√2)/2``, not ``NormalDist.cdf``: the latter computes
``(1 + erf(x/√2))/2`` and loses relative accuracy in the lower tail (4e-11 at x = -5).
"""

from __future__ import annotations

import itertools
import math
import re
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from liqeng.errors import InvalidArgument
from liqeng.ids import asset_id, instrument_id
from liqeng.market import (
    YEAR_SECONDS,
    EuropeanOption,
    Perpetual,
    Unsettled,
    mark_price,
    option_marks,
    year_fraction,
)
from liqeng.market import black76 as b76
from liqeng.units import Asset

N = NormalDist()


def ncdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


USDC = Asset(asset_id("eth/USDC"), 6)
DAY = 24 * 3600


# --- the reference: textbook Black-76, one scalar at a time, on the standard library -------


def ref_d1(f: float, k: float, t: float, s: float) -> float:
    return (math.log(f / k) + 0.5 * s**2 * t) / (s * math.sqrt(t))


def ref_legs(f: float, k: float, t: float, s: float, call: bool, r: float = 0.0) -> float:
    """``D·(F·N(±d1) + K·N(±d2))``: the size of the two terms a price is the difference of."""
    d1 = ref_d1(f, k, t, s)
    d2 = d1 - s * math.sqrt(t)
    sign = 1.0 if call else -1.0
    return math.exp(-r * t) * (f * ncdf(sign * d1) + k * ncdf(sign * d2))


def ref_price(f: float, k: float, t: float, s: float, call: bool, r: float = 0.0) -> float:
    d1 = ref_d1(f, k, t, s)
    d2 = d1 - s * math.sqrt(t)
    disc = math.exp(-r * t)
    if call:
        return disc * (f * ncdf(d1) - k * ncdf(d2))
    return disc * (k * ncdf(-d2) - f * ncdf(-d1))


def ref_greeks(
    f: float, k: float, t: float, s: float, call: bool, r: float = 0.0
) -> dict[str, float]:
    d1 = ref_d1(f, k, t, s)
    disc = math.exp(-r * t)
    pdf = N.pdf(d1)
    decay = disc * f * pdf * s / (2 * math.sqrt(t))
    carry = r * ref_price(f, k, t, s, call, r)
    return {
        "delta": disc * (ncdf(d1) if call else -ncdf(-d1)),
        "gamma": disc * pdf / (f * s * math.sqrt(t)),
        "vega": disc * f * pdf * math.sqrt(t),
        "theta": carry - decay,
        "theta_scale": abs(carry) + decay,
    }


FORWARD = 100.0
STRIKES = [40.0, 70.0, 90.0, 99.0, 100.0, 101.0, 110.0, 140.0, 250.0]
TIMES = [1 / 365, 7 / 365, 0.25, 1.0, 4.0]
SIGMAS = [0.05, 0.3, 0.8, 1.5]
GRID = list(itertools.product(STRIKES, TIMES, SIGMAS, [True, False]))
REL = 1e-12


def close(ours: float, ref: float, scale: float | None = None) -> bool:
    """``|ours - ref| <= 1e-12·scale``, ``scale = |ref|`` unless given.

    A price is a difference of two terms (``F·N(d1) - K·N(d2)``) that cancel far out of the
    money, in the reference as in the code under test, so prices are compared relative to
    the larger of the price and its legs (``ref_legs``): strictly relative wherever the
    legs do not cancel, and never looser than 1e-12 of the legs.
    """
    return abs(ours - ref) <= REL * (abs(ref) if scale is None else scale)


def price_close(ours: float, k: float, t: float, s: float, call: bool, r: float = 0.0) -> bool:
    ref = ref_price(FORWARD, k, t, s, call, r)
    return close(ours, ref, max(abs(ref), ref_legs(FORWARD, k, t, s, call, r)))


# --- erfc and N ----------------------------------------------------------------------------


def test_erfc_matches_math_erfc_to_1e_15() -> None:
    xs = np.concatenate([np.linspace(-6.0, 26.5, 65_001), np.linspace(-0.5, 0.5, 2_001)])
    ours = b76.erfc(xs)
    ref = np.array([math.erfc(x) for x in xs])
    assert np.max(np.abs(ours - ref) / ref) < 2e-15


def test_erfc_edges() -> None:
    assert b76.erfc(0.0) == 1.0
    assert b76.erfc(30.0) == 0.0  # below the smallest normal double: Cody's XBIG cut-off
    assert b76.erfc(-30.0) == 2.0
    assert b76.erfc(math.inf) == 0.0 and b76.erfc(-math.inf) == 2.0
    assert math.isnan(b76.erfc(math.nan))


@given(st.floats(-37.0, 37.0))
def test_norm_cdf_matches_normal_dist(x: float) -> None:
    assert math.isclose(b76.norm_cdf(x), ncdf(x), rel_tol=1e-14, abs_tol=1e-300)
    assert math.isclose(b76.norm_pdf(x), N.pdf(x), rel_tol=1e-14, abs_tol=1e-300)


# --- price and greeks against the reference ------------------------------------------------


@pytest.mark.parametrize(("k", "t", "s", "call"), GRID)
def test_price_matches_reference(k: float, t: float, s: float, call: bool) -> None:
    assert price_close(b76.price(FORWARD, k, t, s, call), k, t, s, call)


def test_price_is_strictly_relative_where_the_legs_do_not_cancel() -> None:
    # legs within 10x of the price: agreement is ~1e-15 relative, pinned here at 1e-13
    checked = 0
    for k, t, s, call in GRID:
        ref = ref_price(FORWARD, k, t, s, call)
        if ref_legs(FORWARD, k, t, s, call) <= 10 * ref:
            assert math.isclose(b76.price(FORWARD, k, t, s, call), ref, rel_tol=1e-13)
            checked += 1
    assert checked > len(GRID) // 2


@pytest.mark.parametrize(("k", "t", "s", "call"), GRID)
def test_greeks_match_reference(k: float, t: float, s: float, call: bool) -> None:
    ref = ref_greeks(FORWARD, k, t, s, call)
    assert close(b76.delta(FORWARD, k, t, s, call), ref["delta"])
    assert close(b76.gamma(FORWARD, k, t, s, call), ref["gamma"])
    assert close(b76.vega(FORWARD, k, t, s, call), ref["vega"])
    assert close(b76.theta(FORWARD, k, t, s, call), ref["theta"], ref["theta_scale"])


def test_discounted_price_and_greeks_match_reference() -> None:
    r = 0.05
    for k, t, s, call in GRID:
        assert price_close(b76.price(FORWARD, k, t, s, call, r), k, t, s, call, r)
        ref = ref_greeks(FORWARD, k, t, s, call, r)
        assert close(b76.delta(FORWARD, k, t, s, call, r), ref["delta"])
        assert close(b76.vega(FORWARD, k, t, s, call, r), ref["vega"])
        assert close(b76.theta(FORWARD, k, t, s, call, r), ref["theta"], ref["theta_scale"])


def test_vectorised_grid_equals_scalar_reference() -> None:
    # one call over the whole grid, broadcast (strike, 1, 1) x (time, 1) x (sigma,)
    k = np.array(STRIKES)[:, None, None]
    t = np.array(TIMES)[:, None]
    s = np.array(SIGMAS)
    for call in (True, False):
        out = b76.price(FORWARD, k, t, s, call)
        assert isinstance(out, np.ndarray)
        assert out.shape == (len(STRIKES), len(TIMES), len(SIGMAS))
        for (i, kk), (j, tt), (m, ss) in itertools.product(
            enumerate(STRIKES), enumerate(TIMES), enumerate(SIGMAS)
        ):
            assert price_close(float(out[i, j, m]), kk, tt, ss, call)


def test_is_call_broadcasts_as_an_array() -> None:
    calls = np.array([True, False])
    out = b76.price(np.array([100.0, 100.0]), 90.0, 0.5, 0.6, calls)
    assert isinstance(out, np.ndarray)
    assert out[0] == b76.price(100.0, 90.0, 0.5, 0.6, True)
    assert out[1] == b76.price(100.0, 90.0, 0.5, 0.6, False)


def test_scalars_in_give_a_float_out() -> None:
    assert type(b76.price(100.0, 100.0, 1.0, 0.8, True)) is float
    assert type(b76.gamma(100, 100, 1, 0.8, False)) is float


# --- parity and finite differences ---------------------------------------------------------


@pytest.mark.parametrize(("k", "t", "s"), list(itertools.product(STRIKES, TIMES, SIGMAS)))
def test_put_call_parity_undiscounted(k: float, t: float, s: float) -> None:
    # C - P = F - K, to rounding of the larger leg
    c = b76.price(FORWARD, k, t, s, True)
    p = b76.price(FORWARD, k, t, s, False)
    assert math.isclose(c - p, FORWARD - k, rel_tol=1e-12, abs_tol=1e-12 * max(FORWARD, k))


def test_put_call_parity_discounted() -> None:
    # C - P = exp(-rT)·(F - K): r = 5%, T = 2 → 0.904837… · (100 - 80)
    c = b76.price(100.0, 80.0, 2.0, 0.5, True, r=0.05)
    p = b76.price(100.0, 80.0, 2.0, 0.5, False, r=0.05)
    assert math.isclose(c - p, math.exp(-0.1) * 20.0, rel_tol=1e-12)


@pytest.mark.parametrize(
    ("k", "t", "s", "call"),
    [
        (k, t, s, call)
        for k, t, s, call in GRID
        if t >= 7 / 365 and b76.vega(FORWARD, k, t, s, True) > 1e-3
    ],
)
def test_greeks_match_finite_differences(k: float, t: float, s: float, call: bool) -> None:
    def v(f: float = FORWARD, tt: float = t, ss: float = s) -> float:
        return b76.price(f, k, tt, ss, call)

    h = 1e-4 * FORWARD * s * math.sqrt(t)  # a small step on the scale of the smile
    fd_delta = (v(FORWARD + h) - v(FORWARD - h)) / (2 * h)
    fd_gamma = (v(FORWARD + h) - 2 * v() + v(FORWARD - h)) / (h * h)
    hs = 1e-5
    fd_vega = (v(ss=s + hs) - v(ss=s - hs)) / (2 * hs)
    ht = 1e-6 * t
    fd_theta = -(v(tt=t + ht) - v(tt=t - ht)) / (2 * ht)
    assert math.isclose(b76.delta(FORWARD, k, t, s, call), fd_delta, rel_tol=1e-6, abs_tol=1e-8)
    assert math.isclose(b76.gamma(FORWARD, k, t, s, call), fd_gamma, rel_tol=1e-4, abs_tol=1e-6)
    assert math.isclose(b76.vega(FORWARD, k, t, s, call), fd_vega, rel_tol=1e-6, abs_tol=1e-6)
    assert math.isclose(b76.theta(FORWARD, k, t, s, call), fd_theta, rel_tol=1e-5, abs_tol=1e-6)


# --- degenerate inputs: expiry and zero vol ------------------------------------------------


@pytest.mark.parametrize("t", [0.0, -1.0])
def test_at_or_after_expiry_the_option_is_its_intrinsic_value(t: float) -> None:
    # call K=90 on F=100: max(100-90, 0) = 10; put: max(90-100, 0) = 0
    assert b76.price(100.0, 90.0, t, 0.8, True) == 10.0
    assert b76.price(100.0, 90.0, t, 0.8, False) == 0.0
    assert b76.price(100.0, 90.0, t, 0.8, True, r=0.05) == 10.0  # D = 1 once T <= 0
    assert b76.delta(100.0, 90.0, t, 0.8, True) == 1.0
    assert b76.delta(100.0, 90.0, t, 0.8, False) == 0.0
    assert b76.delta(100.0, 110.0, t, 0.8, False) == -1.0
    assert b76.delta(100.0, 100.0, t, 0.8, True) == 0.5
    assert b76.delta(100.0, 100.0, t, 0.8, False) == -0.5
    assert b76.gamma(100.0, 100.0, t, 0.8, True) == 0.0
    assert b76.vega(100.0, 100.0, t, 0.8, True) == 0.0
    assert b76.theta(100.0, 90.0, t, 0.8, True) == 0.0


def test_zero_vol_is_discounted_intrinsic_value_with_limiting_greeks() -> None:
    # K=90, T=1, r=5%: exp(-0.05) · 10 for the call, 0 for the put
    d = math.exp(-0.05)
    assert b76.price(100.0, 90.0, 1.0, 0.0, True, r=0.05) == d * 10.0
    assert b76.price(100.0, 90.0, 1.0, 0.0, False, r=0.05) == 0.0
    assert b76.delta(100.0, 90.0, 1.0, 0.0, True, r=0.05) == d
    assert b76.theta(100.0, 90.0, 1.0, 0.0, True, r=0.05) == 0.05 * d * 10.0
    assert b76.vega(100.0, 90.0, 1.0, 0.0, True) == 0.0
    # at the money vega tends to F·√T/√(2π) as σ → 0: 100 · 2 / 2.5066… = 79.788…
    atm = b76.vega(100.0, 100.0, 4.0, 0.0, True)
    assert math.isclose(atm, 200.0 / math.sqrt(2 * math.pi), rel_tol=1e-15)
    assert math.isclose(atm, b76.vega(100.0, 100.0, 4.0, 1e-9, True), rel_tol=1e-9)


def test_deep_in_the_money_price_never_falls_below_intrinsic() -> None:
    k = np.linspace(1.0, 99.0, 981)
    assert np.all(b76.price(100.0, k, 1 / 365, 0.05, True) >= 100.0 - k)
    k = k + 100.0
    assert np.all(b76.price(100.0, k, 1 / 365, 0.05, False) >= k - 100.0)


# --- properties ----------------------------------------------------------------------------

money = st.floats(1e-3, 1e7)


@given(money, money, st.floats(0.0, 10.0), st.floats(0.0, 3.0), st.booleans())
def test_price_within_no_arbitrage_bounds(f: float, k: float, t: float, s: float, c: bool) -> None:
    # max(F-K, 0) <= C <= F and max(K-F, 0) <= P <= K (undiscounted)
    p = b76.price(f, k, t, s, c)
    lo, hi = (max(f - k, 0.0), f) if c else (max(k - f, 0.0), k)
    assert lo <= p <= hi * (1 + 1e-12)


@given(money, money, st.floats(1e-3, 5.0), st.floats(0.01, 2.0), st.booleans())
def test_price_increases_with_vol(f: float, k: float, t: float, s: float, c: bool) -> None:
    assert b76.price(f, k, t, s * 1.1, c) >= b76.price(f, k, t, s, c)


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0.0, 100.0, 1.0, 0.8, True), "forward=0.0 must be finite and positive"),
        ((math.nan, 100.0, 1.0, 0.8, True), "forward=nan"),
        ((100.0, -5.0, 1.0, 0.8, True), "strike=-5.0 must be finite and positive"),
        ((100.0, math.inf, 1.0, 0.8, True), "strike=inf"),
        ((100.0, 100.0, math.nan, 0.8, True), "t_years=nan must be finite"),
        ((100.0, 100.0, 1.0, -0.1, True), "sigma=-0.1 must be finite and non-negative"),
        ((100.0, 100.0, 1.0, math.inf, True), "sigma=inf"),
        ((100.0, 100.0, 1.0, 0.8, 1), "is_call=1 must be a bool"),
        ((True, 100.0, 1.0, 0.8, True), "forward=True must be a number"),
        (("100", 100.0, 1.0, 0.8, True), "forward='100' must be a number"),
        ((100.0, 100.0, 1.0, 1j, True), "sigma=1j must be a number"),
    ],
)
def test_invalid_inputs_are_refused_naming_the_value(
    args: tuple[object, ...], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        b76.price(*args)  # type: ignore[call-overload]


def test_invalid_array_element_is_named_with_its_index() -> None:
    with pytest.raises(InvalidArgument, match=r"strike\[2\]=-1.0 must be finite and positive"):
        b76.delta(100.0, np.array([90.0, 100.0, -1.0]), 1.0, 0.8, True)
    with pytest.raises(InvalidArgument, match=r"sigma\[\(1, 0\)\]=nan"):
        b76.vega(100.0, 100.0, 1.0, np.array([[0.1], [math.nan]]), True)
    with pytest.raises(InvalidArgument, match=r"r=nan"):
        b76.price(100.0, 100.0, 1.0, 0.8, True, r=math.nan)
    with pytest.raises(InvalidArgument, match="do not broadcast"):
        b76.price(np.ones(2), np.ones(3), 1.0, 0.8, True)


# --- time and marks ------------------------------------------------------------------------


def test_year_fraction() -> None:
    assert YEAR_SECONDS == 31_536_000
    assert year_fraction(0, YEAR_SECONDS) == 1.0
    assert year_fraction(1_000, 1_000 + 73 * DAY) == 0.2  # 73 / 365
    assert year_fraction(2_000, 1_000) == 0.0  # expired: clamped at 0
    with pytest.raises(InvalidArgument, match=r"now_ts=1\.5"):
        year_fraction(1.5, 10)  # type: ignore[arg-type]


ETH_PERP = Perpetual(instrument_id("quickstart/ETH-PERP"), "ETH", USDC, 3)
ETH_C2000 = EuropeanOption(
    instrument_id("quickstart/ETH-C-2000"), "ETH", USDC, 3, 2_000_000_000, 30 * DAY, True
)
ETH_P1800 = EuropeanOption(
    instrument_id("quickstart/ETH-P-1800"), "ETH", USDC, 3, 1_800_000_000, 90 * DAY, False
)


def test_perp_mark_is_the_index() -> None:
    assert mark_price(ETH_PERP, 1_900_000_000, 0, 0.8) == 1_900_000_000.0


def test_option_mark_is_black76_on_the_index() -> None:
    # call K=2000 on index 1900 USDC, 30 days, 80% vol: Black-76 in price units
    mark = mark_price(ETH_C2000, 1_900_000_000, 0, 0.8)
    expected = ref_price(1.9e9, 2.0e9, 30 / 365, 0.8, True)
    assert math.isclose(mark, expected, rel_tol=1e-12)
    # after expiry: intrinsic at the settlement price, 2100 - 2000 = 100 USDC, whatever the index
    assert mark_price(ETH_C2000, 1_000_000_000, 31 * DAY, 0.8, 2_100_000_000) == 100_000_000.0
    # ... and without one it cannot be valued
    with pytest.raises(Unsettled, match=r"ETH-C-2000 expired at ts=2592000 \(now 2678400\)"):
        mark_price(ETH_C2000, 2_100_000_000, 31 * DAY, 0.8)


def test_mark_price_refuses_bad_inputs() -> None:
    with pytest.raises(InvalidArgument, match="index_price=0"):
        mark_price(ETH_PERP, 0, 0, 0.8)
    with pytest.raises(InvalidArgument, match=r"vol=-0\.2 must be non-negative"):
        mark_price(ETH_C2000, 1_900_000_000, 0, -0.2)
    with pytest.raises(InvalidArgument, match="vol=nan"):
        mark_price(ETH_C2000, 1_900_000_000, 0, math.nan)


@given(st.integers(1, 10**12), st.integers(0, 30 * DAY - 1), st.floats(0.0, 3.0))
def test_option_marks_agree_with_mark_price(index: int, now: int, vol: float) -> None:
    options = [ETH_C2000, ETH_P1800]
    marks = option_marks(options, {"ETH": index}, now, vol)
    for option, mark in zip(options, marks, strict=True):
        assert math.isclose(float(mark), mark_price(option, index, now, vol), rel_tol=1e-13)


def test_option_marks_needs_every_index() -> None:
    with pytest.raises(InvalidArgument, match="underlying='ETH'"):
        option_marks([ETH_C2000], {"BTC": 1}, 0, 0.8)
