"""Mark prices: what an instrument is worth now, in price units, as a float.

* ``Perpetual``: the index, ``float(index_price)``.
* ``DatedFuture``: the index before ``expiry_ts``; the settlement price at and after it.
* ``EuropeanOption``: before expiry, Black-76 with forward = index, ``r = 0``,
  ``T = year_fraction(now_ts, expiry_ts)`` and ``σ`` either a flat ``vol`` or read off a
  ``VolSurface`` at ``(K, F = index, T)`` (the skew); at and after expiry, the intrinsic
  value at the settlement price.

An expired future or option without a settlement price cannot be valued: ``mark_price``
raises ``Unsettled`` (an ``InvalidArgument``) naming the instrument, never guessing from
the index.

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
from liqeng.market.instruments import DatedFuture, EuropeanOption, Instrument, Perpetual
from liqeng.market.surface import VolSurface
from liqeng.units import PRICE_MAX, check_int

__all__ = [
    "Unsettled",
    "Vol",
    "check_index_price",
    "check_vol",
    "check_vol_source",
    "exact_mark",
    "mark_price",
    "option_marks",
    "option_vol",
]

Vol = float | VolSurface
"""Where an option's σ comes from: one flat vol, or a surface with skew."""


class Unsettled(InvalidArgument):
    """An expired instrument has no settlement price: it cannot be valued."""


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


def check_vol_source(vol: object) -> Vol:
    """Return ``vol`` if it is a ``VolSurface`` or a valid flat vol (see ``check_vol``)."""
    return vol if isinstance(vol, VolSurface) else check_vol(vol)


def option_vol(option: EuropeanOption, index_price: int, now_ts: int, vol: Vol) -> float:
    """``σ`` of ``option``: ``vol`` if flat, else ``surface.vol(K, F=index, T)`` (T > 0)."""
    if not isinstance(vol, VolSurface):
        return vol
    t = year_fraction(now_ts, option.expiry_ts)
    return float(vol.vol(float(option.strike), float(index_price), t))


@lru_cache(maxsize=65_536)
def _option_mark(option: EuropeanOption, index_price: int, now_ts: int, vol: Vol) -> float:
    """Memoised: one engine step values the same few options for thousands of accounts."""
    t = year_fraction(now_ts, option.expiry_ts)
    sigma = option_vol(option, index_price, now_ts, vol)
    return black76.price(float(index_price), float(option.strike), t, sigma, option.is_call)


def _settled(instrument: DatedFuture | EuropeanOption, now_ts: int, settlement: int | None) -> int:
    if settlement is None:
        raise Unsettled(
            f"instrument={instrument.id} expired at ts={instrument.expiry_ts} "
            f"(now {now_ts}) and has no settlement price"
        )
    return check_index_price(settlement, f"settlement price of {instrument.id}")


def exact_mark(
    instrument: Instrument, index_price: int, now_ts: int, settlement: int | None = None
) -> int | None:
    """The mark as an exact int where it is one: the index for a perpetual or a live
    future, the settlement price for an expired future, ``max(±(settlement - K), 0)`` for
    an expired option; ``None`` for a live option (Black-76, a float)."""
    check_index_price(index_price)
    check_int("now_ts", now_ts)
    if isinstance(instrument, Perpetual):
        return index_price
    if not isinstance(instrument, (DatedFuture, EuropeanOption)):
        raise InvalidArgument(
            f"instrument={instrument!r} is not a Perpetual, DatedFuture or EuropeanOption"
        )
    if now_ts < instrument.expiry_ts:
        return index_price if isinstance(instrument, DatedFuture) else None
    final = _settled(instrument, now_ts, settlement)
    if isinstance(instrument, DatedFuture):
        return final
    k = instrument.strike
    return max(final - k, 0) if instrument.is_call else max(k - final, 0)


def mark_price(
    instrument: Instrument,
    index_price: int,
    now_ts: int,
    vol: Vol,
    settlement: int | None = None,
) -> float:
    """Mark of ``instrument`` in price units (module doc): ``exact_mark`` as a float where
    it is an int, Black-76 ``price(F=index, K, T, σ)`` for a live option."""
    sigma = check_vol_source(vol)
    exact = exact_mark(instrument, index_price, now_ts, settlement)
    if exact is not None:
        return float(exact)
    assert isinstance(instrument, EuropeanOption)
    return _option_mark(instrument, index_price, now_ts, sigma)


def option_marks(
    options: Sequence[EuropeanOption], index_prices: Mapping[str, int], now_ts: int, vol: Vol
) -> FloatArray:
    """``mark_price`` of many live options in one vectorised Black-76 call, in input order.

    ``index_prices`` is keyed by underlying; a missing one raises ``InvalidArgument``, an
    expired option ``Unsettled`` (value those one by one with their settlement price).
    """
    check_int("now_ts", now_ts)
    source = check_vol_source(vol)
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
        if now_ts >= option.expiry_ts:
            _settled(option, now_ts, None)
        forward[i] = float(index)
        strike[i] = float(option.strike)
        t_years[i] = year_fraction(now_ts, option.expiry_ts)
        is_call[i] = option.is_call
    if isinstance(source, VolSurface):
        sigma = np.asarray(source.vol(strike, forward, t_years), dtype=np.float64)
    else:
        sigma = np.full(n, source)
    return black76.price(forward, strike, t_years, sigma, is_call)
