"""Standard (per-position) margin and account health, in exact integers.

Marks are floats (``liqeng.market.marks``); everything that decides is an ``int`` of quote
base units, converted exactly from the float's binary value with ``fractions.Fraction``
and rounded against the account: values round *down* (toward minus infinity, for longs
and shorts alike), requirements round *up*. With ``sd = size_decimals`` and every price
in quote base units per whole underlying token:

==================  ===========================================================================
position value      perp: ``floor(size·(index - entry) / 10**sd)``
                    option: ``floor(mark·size / 10**sd)`` (premium-style; mark by Black-76)
maintenance margin  perp: ``ceil(perp_rate·|size|·index / (RATE_SCALE·10**sd))``
                    long option: ``0`` (its premium is paid; the most it can lose is its value)
                    short option: ``ceil(|size|·max(opt_rate·index/RATE_SCALE - otm,
                    floor_rate·index/RATE_SCALE) / 10**sd)``, ``otm = max(K - index, 0)`` for
                    a call, ``max(index - K, 0)`` for a put
equity              ``cash + Σ position value``
account             liquidatable iff ``equity < Σ maintenance margin``
==================  ===========================================================================

The short-option requirement is Deribit's ``max(rate·index - OTM, floor·index) + mark``
without the ``+ mark`` term: the mark liability is already in equity, through the
position's (negative) value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

from liqeng.errors import InvalidArgument
from liqeng.ids import InstrumentId
from liqeng.ledger.model import Position
from liqeng.market.instruments import EuropeanOption, Instrument, Perpetual
from liqeng.market.marks import check_index_price, check_vol, mark_price
from liqeng.units import PRICE_MAX, RATE_SCALE, Asset, check_int, mul_div_down, mul_div_up

__all__ = [
    "HEALTH_MAX",
    "AccountRisk",
    "MarginParams",
    "account_risk",
    "maintenance_margin",
    "position_value",
]

HEALTH_MAX: Final = Fraction(10**18)
"""Bound of ``AccountRisk.health``: the health of an account with no requirement."""


@dataclass(frozen=True, slots=True)
class MarginParams:
    """Standard-margin parameters; rates are parts per ``RATE_SCALE = 10**9``.

    ``perp_maintenance_rate`` (5%) of the perp notional; for a short option
    ``option_maintenance_rate`` (10%) of the index less the out-of-the-money amount, at
    least ``option_floor_rate`` (5%) of the index; ``vol`` is the flat Black-76 volatility
    of option marks (0.8 = 80%). Rates lie in ``0..RATE_SCALE`` and
    ``option_floor_rate <= option_maintenance_rate``; ``vol`` is finite and ``>= 0``.
    """

    perp_maintenance_rate: int = 50_000_000
    option_maintenance_rate: int = 100_000_000
    option_floor_rate: int = 50_000_000
    vol: float = 0.8

    def __post_init__(self) -> None:
        check_int("perp_maintenance_rate", self.perp_maintenance_rate, 0, RATE_SCALE)
        check_int("option_maintenance_rate", self.option_maintenance_rate, 0, RATE_SCALE)
        check_int("option_floor_rate", self.option_floor_rate, 0, RATE_SCALE)
        if self.option_floor_rate > self.option_maintenance_rate:
            raise InvalidArgument(
                f"option_floor_rate={self.option_floor_rate} must not exceed "
                f"option_maintenance_rate={self.option_maintenance_rate}"
            )
        check_vol(self.vol)


def _unknown(instrument: object) -> InvalidArgument:
    return InvalidArgument(f"instrument={instrument!r} is not a Perpetual or EuropeanOption")


def _check_position(instrument: Instrument, position: Position) -> None:
    if not isinstance(instrument, (Perpetual, EuropeanOption)):
        raise _unknown(instrument)
    if not isinstance(position, Position):
        raise InvalidArgument(f"position={position!r} in {instrument.id} must be a Position")
    check_int(f"size in {instrument.id}", position.size)
    check_int(f"entry_price in {instrument.id}", position.entry_price, 0, PRICE_MAX)


def position_value(
    instrument: Instrument, position: Position, index_price: int, now_ts: int, vol: float
) -> int:
    """Value of ``position`` in quote base units, rounded down (against the holder).

    Perpetual: ``floor(size·(index - entry) / 10**sd)``. Option:
    ``floor(Fraction(mark)·size / 10**sd)`` with ``mark = mark_price(...)``, the float's
    exact binary value; the entry price plays no part (the premium was paid at the trade).
    """
    _check_position(instrument, position)
    check_index_price(index_price)
    scale: int = 10**instrument.size_decimals
    if isinstance(instrument, Perpetual):
        return mul_div_down(position.size, index_price - position.entry_price, scale)
    mark = Fraction(mark_price(instrument, index_price, now_ts, vol))
    return (mark.numerator * position.size) // (mark.denominator * scale)


def maintenance_margin(
    instrument: Instrument,
    position: Position,
    index_price: int,
    now_ts: int,
    params: MarginParams,
) -> int:
    """Maintenance requirement of ``position`` in quote base units, rounded up, ``>= 0``.

    Perpetual: ``ceil(perp_rate·|size|·index / (RATE_SCALE·10**sd))``. Long option: 0.
    Short option: ``ceil(|size|·max(opt_rate·index - otm·RATE_SCALE, floor_rate·index)
    / (RATE_SCALE·10**sd))`` with ``otm = max(K - index, 0)`` (call) or
    ``max(index - K, 0)`` (put). ``now_ts`` is unused by these formulas and checked only.
    """
    _check_position(instrument, position)
    check_index_price(index_price)
    check_int("now_ts", now_ts)
    if not isinstance(params, MarginParams):
        raise InvalidArgument(f"params={params!r} must be MarginParams")
    size = position.size
    if isinstance(instrument, Perpetual):
        scale = RATE_SCALE * 10**instrument.size_decimals
        return mul_div_up(params.perp_maintenance_rate * abs(size), index_price, scale)
    if size >= 0:
        return 0  # a long option
    strike = instrument.strike
    otm = max(strike - index_price, 0) if instrument.is_call else max(index_price - strike, 0)
    per_token = max(
        params.option_maintenance_rate * index_price - otm * RATE_SCALE,
        params.option_floor_rate * index_price,
    )  # price units · RATE_SCALE, >= 0
    return mul_div_up(-size, per_token, RATE_SCALE * 10**instrument.size_decimals)


@dataclass(frozen=True, slots=True)
class AccountRisk:
    """An account's ``equity`` and ``maintenance_margin`` (quote base units, exact)."""

    equity: int
    maintenance_margin: int

    def __post_init__(self) -> None:
        check_int("equity", self.equity)
        check_int("maintenance_margin", self.maintenance_margin, 0)

    @property
    def is_liquidatable(self) -> bool:
        """``equity < maintenance_margin``: exact; with no requirement, iff equity < 0."""
        return self.equity < self.maintenance_margin

    @property
    def health(self) -> Fraction:
        """``equity / maintenance_margin`` clamped to ``[-HEALTH_MAX, HEALTH_MAX]``.

        With no requirement it is ``HEALTH_MAX`` (``10**18``) if ``equity >= 0`` and
        ``-HEALTH_MAX`` otherwise, so ``health < 1`` exactly when ``is_liquidatable``.
        """
        if self.maintenance_margin == 0:
            return HEALTH_MAX if self.equity >= 0 else -HEALTH_MAX
        ratio = Fraction(self.equity, self.maintenance_margin)
        return max(-HEALTH_MAX, min(ratio, HEALTH_MAX))

    @property
    def shortfall(self) -> int:
        """``max(maintenance_margin - equity, 0)``: what restores the requirement."""
        return max(self.maintenance_margin - self.equity, 0)


def account_risk(
    cash: int,
    positions: Mapping[InstrumentId, Position],
    instruments: Mapping[InstrumentId, Instrument],
    index_prices: Mapping[str, int],
    now_ts: int,
    params: MarginParams,
) -> AccountRisk:
    """``equity = cash + Σ position_value``, ``maintenance_margin = Σ maintenance_margin``.

    ``cash`` is in base units of the instruments' quote asset; every open position must
    be quoted in that one asset (mixing assets raises). ``index_prices`` is keyed by
    underlying. Positions of size 0 are skipped; an unknown instrument or a missing index
    price raises ``InvalidArgument`` naming it.
    """
    check_int("cash", cash)
    if not isinstance(params, MarginParams):
        raise InvalidArgument(f"params={params!r} must be MarginParams")
    equity = cash
    requirement = 0
    quote: Asset | None = None
    for iid in sorted(positions):
        position = positions[iid]
        if not isinstance(position, Position):
            raise InvalidArgument(f"position={position!r} in {iid} must be a Position")
        if position.size == 0:
            continue
        instrument = instruments.get(iid)
        if instrument is None:
            raise InvalidArgument(f"instrument={iid!r} has a position but no Instrument")
        if not isinstance(instrument, (Perpetual, EuropeanOption)):
            raise _unknown(instrument)
        if instrument.id != iid:
            raise InvalidArgument(f"instruments[{iid!r}] has id={instrument.id!r}")
        if quote is None:
            quote = instrument.quote
        elif instrument.quote != quote:
            raise InvalidArgument(
                f"instrument={iid!r} is quoted in {instrument.quote.id}, "
                f"other positions in {quote.id}: cannot add them"
            )
        index = index_prices.get(instrument.underlying)
        if index is None:
            raise InvalidArgument(
                f"no index price for underlying={instrument.underlying!r} of {iid}"
            )
        equity += position_value(instrument, position, index, now_ts, params.vol)
        requirement += maintenance_margin(instrument, position, index, now_ts, params)
    return AccountRisk(equity, requirement)
