"""Mark prices: what an instrument is worth now, in price units, as a float.

* ``Perpetual``: the index, ``float(index_price)``.
* ``EuropeanOption``: Black-76 with forward = index, flat volatility ``vol``, ``r = 0``
  and ``T = year_fraction(now_ts, expiry_ts)``; at and after expiry, intrinsic value.

Floats stop here: ``liqeng.risk`` turns a mark into integer base units exactly
(``fractions.Fraction(mark)``) and rounds in the direction that favours solvency.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np

from liqeng.errors import InvalidArgument
from liqeng.market import black76
from liqeng.market.black76 import FloatArray, year_fraction
from liqeng.market.instruments import EuropeanOption, Instrument, Perpetual
from liqeng.units import PRICE_MAX, check_int

__all__ = ["check_index_price", "check_vol", "mark_price", "option_marks"]


def check_index_price(index_price: object, name: str = "index_price") -> int:
    """Return ``index_price`` if it is an int price in ``1..PRICE_MAX``."""
    return check_int(name, index_price, 1, PRICE_MAX)


def check_vol(vol: object) -> float:
    """Return ``vol`` as a float if it is a finite, non-negative number (0.8 = 80%)."""
    if isinstance(vol, bool) or not isinstance(vol, (int, float)) or not math.isfinite(vol):
        raise InvalidArgument(f"vol={vol!r} must be a finite number")
    if vol < 0:
        raise InvalidArgument(f"vol={vol!r} must be non-negative")
    return float(vol)


@lru_cache(maxsize=65_536)
def _option_mark(option: EuropeanOption, index_price: int, now_ts: int, vol: float) -> float:
    """Memoised: one engine step values the same few options for thousands of accounts."""
    t = year_fraction(now_ts, option.expiry_ts)
    return black76.price(float(index_price), float(option.strike), t, vol, option.is_call)


def mark_price(instrument: Instrument, index_price: int, now_ts: int, vol: float) -> float:
    """Mark of ``instrument`` in price units: the index for a perpetual, Black-76 for an
    option, ``price(F=index, K=strike, T=year_fraction(now_ts, expiry_ts), σ=vol)``."""
    check_index_price(index_price)
    check_int("now_ts", now_ts)
    sigma = check_vol(vol)
    if isinstance(instrument, Perpetual):
        return float(index_price)
    if isinstance(instrument, EuropeanOption):
        return _option_mark(instrument, index_price, now_ts, sigma)
    raise InvalidArgument(f"instrument={instrument!r} is not a Perpetual or EuropeanOption")


def option_marks(
    options: Sequence[EuropeanOption], index_prices: Mapping[str, int], now_ts: int, vol: float
) -> FloatArray:
    """``mark_price`` of many options in one vectorised Black-76 call, in input order.

    ``index_prices`` is keyed by underlying; a missing one raises ``InvalidArgument``.
    """
    check_int("now_ts", now_ts)
    sigma = check_vol(vol)
    n = len(options)
    forward = np.empty(n, dtype=np.float64)
    strike = np.empty(n, dtype=np.float64)
    t_years = np.empty(n, dtype=np.float64)
    is_call = np.empty(n, dtype=np.bool_)
    for i, option in enumerate(options):
        if not isinstance(option, EuropeanOption):
            raise InvalidArgument(f"options[{i}]={option!r} is not a EuropeanOption")
        if option.underlying not in index_prices:
            raise InvalidArgument(
                f"no index price for underlying={option.underlying!r} of {option.id}"
            )
        index = check_index_price(
            index_prices[option.underlying], f"index_prices[{option.underlying!r}]"
        )
        forward[i] = float(index)
        strike[i] = float(option.strike)
        t_years[i] = year_fraction(now_ts, option.expiry_ts)
        is_call[i] = option.is_call
    return black76.price(forward, strike, t_years, np.full(n, sigma), is_call)
