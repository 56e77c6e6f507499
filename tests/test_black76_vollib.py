"""Black-76 against an independent implementation: the `vollib` package.

vollib's conventions: ``black(flag, F, K, t, r, sigma)``, vega per 1 vol point (ours per
1.00 of vol, so ours = 100 x theirs), theta per calendar day (ours per year: 365 x theirs).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liqeng.market import black76

vb = pytest.importorskip("vollib.black")
vg = pytest.importorskip("vollib.black.greeks.analytical")

forwards = st.floats(10.0, 200_000.0)
moneyness = st.floats(-0.7, 0.7)  # ln(K/F)
years = st.floats(1 / 365, 3.0)
vols = st.floats(0.05, 3.0)
rates = st.floats(0.0, 0.1)


def close(ours: float, theirs: float, rel: float, floor: float) -> bool:
    """``|ours - theirs| <= max(rel * |theirs|, floor)``: relative, with an absolute floor
    (scaled to the forward) where both formulas cancel to a value near zero."""
    return abs(ours - theirs) <= max(rel * abs(theirs), floor)


@settings(max_examples=500, deadline=None)
@given(f=forwards, k=moneyness, t=years, s=vols, r=rates, call=st.booleans())
def test_price_and_greeks_agree_with_vollib(
    f: float, k: float, t: float, s: float, r: float, call: bool
) -> None:
    strike = f * math.exp(k)
    flag = "c" if call else "p"
    args = (f, strike, t, s, call)
    ref = (flag, f, strike, t, r, s)
    assert close(black76.price(*args, r=r), vb.black(*ref), 1e-12, 1e-12 * f)
    assert close(black76.delta(*args, r=r), vg.delta(*ref), 1e-12, 1e-12)
    assert close(black76.gamma(*args, r=r), vg.gamma(*ref), 1e-10, 1e-12 / f)
    assert close(black76.vega(*args, r=r), 100 * vg.vega(*ref), 1e-10, 1e-12 * f)
    assert close(black76.theta(*args, r=r), 365 * vg.theta(*ref), 1e-9, 1e-10 * f)


def test_a_worked_value() -> None:
    # F = 100, K = 110, T = 0.5, sigma = 0.6, r = 0: both give 13.0757998546446..
    assert black76.price(100.0, 110.0, 0.5, 0.6, True) == pytest.approx(
        vb.black("c", 100.0, 110.0, 0.5, 0.0, 0.6), rel=1e-14
    )
