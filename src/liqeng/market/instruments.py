"""Tradable instruments (perpetuals, dated futures, cash-settled European options) and
spot collateral (plain tokens and tokens priced through an exchange rate, e.g. LSTs).

Both are quoted in one ``quote`` asset and sized in instrument base units: a position of
``size`` is ``size / 10**size_decimals`` whole underlying tokens. Prices (``strike``, entry,
index, mark) are quote base units per one *whole* underlying token (see ``liqeng.units``),
so a position's value in quote base units is ``size * price / 10**size_decimals``.

* ``Perpetual`` is *futures-style*: no premium changes hands at the trade and the position
  is worth ``size * (mark - entry) / 10**size_decimals``.
* ``DatedFuture`` is futures-style too, marked at the index until ``expiry_ts`` and at its
  settlement price from then on (the driver supplies it; without it, valuing it raises).
* ``EuropeanOption`` is *premium-style*: the buyer pays the premium at the trade and the
  position is worth ``size * mark / 10**size_decimals`` (negative for the writer); at and
  after expiry it is worth its intrinsic value at the settlement price.

``SpotCollateral`` is not a position but a token balance counted toward equity, at
``price = index(underlying)`` or, for a token whose value depends on another protocol
(``exchange_rate=True``: a liquid staking token), ``price = index(underlying) · rate`` with
the rate (parts per ``RATE_SCALE``) supplied by the driver, so it can be stressed apart
from the underlying. Its value is ``floor(balance · price · (1 - haircut) / 10**decimals)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeAlias

from liqeng.errors import InvalidArgument
from liqeng.ids import InstrumentId, check_id
from liqeng.ledger.model import InstrumentSpec
from liqeng.units import DECIMALS_MAX, PRICE_MAX, RATE_SCALE, Asset, check_int

__all__ = [
    "DatedFuture",
    "EuropeanOption",
    "Instrument",
    "Perpetual",
    "SpotCollateral",
    "check_underlying",
    "spec",
]

_UNDERLYING = re.compile(r"[A-Z0-9]{1,32}")


def check_underlying(value: object) -> str:
    """Return ``value`` if it names an underlying: 1-32 uppercase letters or digits."""
    if not isinstance(value, str) or _UNDERLYING.fullmatch(value) is None:
        raise InvalidArgument(
            f"underlying={value!r} must be 1-32 uppercase letters or digits, like 'ETH'"
        )
    return value


def _check_common(iid: object, underlying: object, quote: object, size_decimals: object) -> None:
    check_id("instrument", iid)
    check_underlying(underlying)
    if not isinstance(quote, Asset):
        raise InvalidArgument(f"quote={quote!r} of {iid} must be an Asset")
    check_int("size_decimals", size_decimals, 0, DECIMALS_MAX)


@dataclass(frozen=True, slots=True)
class Perpetual:
    """A linear perpetual on ``underlying`` quoted in ``quote``; value ``size·(mark-entry)``."""

    id: InstrumentId
    underlying: str
    quote: Asset
    size_decimals: int

    def __post_init__(self) -> None:
        _check_common(self.id, self.underlying, self.quote, self.size_decimals)

    def spec(self) -> InstrumentSpec:
        """What the ledger needs: id, ``size_decimals``, ``net_zero=True``."""
        return InstrumentSpec(self.id, self.size_decimals, net_zero=True)


@dataclass(frozen=True, slots=True)
class DatedFuture:
    """A linear future expiring at ``expiry_ts``; value ``size·(mark-entry)``, marked at
    the index before expiry and at the settlement price at and after it."""

    id: InstrumentId
    underlying: str
    quote: Asset
    size_decimals: int
    expiry_ts: int

    def __post_init__(self) -> None:
        _check_common(self.id, self.underlying, self.quote, self.size_decimals)
        check_int("expiry_ts", self.expiry_ts)

    def spec(self) -> InstrumentSpec:
        """What the ledger needs: id, ``size_decimals``, ``net_zero=True``."""
        return InstrumentSpec(self.id, self.size_decimals, net_zero=True)


@dataclass(frozen=True, slots=True)
class EuropeanOption:
    """A cash-settled European call or put; value ``size·mark``, premium paid at the trade.

    ``strike`` is in price units (``1..PRICE_MAX``); ``expiry_ts`` in integer seconds of
    the driver's clock.
    """

    id: InstrumentId
    underlying: str
    quote: Asset
    size_decimals: int
    strike: int
    expiry_ts: int
    is_call: bool

    def __post_init__(self) -> None:
        _check_common(self.id, self.underlying, self.quote, self.size_decimals)
        if isinstance(self.strike, bool) or not isinstance(self.strike, int):
            raise InvalidArgument(f"strike={self.strike!r} of {self.id} must be an int price")
        if self.strike <= 0:
            raise InvalidArgument(f"strike={self.strike} of {self.id} must be positive")
        if self.strike > PRICE_MAX:
            raise InvalidArgument(f"strike={self.strike} of {self.id} exceeds PRICE_MAX=2**96")
        check_int("expiry_ts", self.expiry_ts)
        if not isinstance(self.is_call, bool):
            raise InvalidArgument(f"is_call={self.is_call!r} of {self.id} must be a bool")

    def spec(self) -> InstrumentSpec:
        """What the ledger needs: id, ``size_decimals``, ``net_zero=True``."""
        return InstrumentSpec(self.id, self.size_decimals, net_zero=True)


Instrument: TypeAlias = Perpetual | DatedFuture | EuropeanOption
INSTRUMENT_TYPES = (Perpetual, DatedFuture, EuropeanOption)
"""The classes of ``Instrument``, for ``isinstance`` checks."""


def check_instrument(instrument: object) -> Instrument:
    """Return ``instrument`` if it is a Perpetual, DatedFuture or EuropeanOption."""
    if not isinstance(instrument, INSTRUMENT_TYPES):
        raise InvalidArgument(
            f"instrument={instrument!r} is not a Perpetual, DatedFuture or EuropeanOption"
        )
    return instrument


def spec(instrument: Instrument) -> InstrumentSpec:
    """The ledger's ``InstrumentSpec`` of ``instrument`` (``net_zero=True``)."""
    return check_instrument(instrument).spec()


@dataclass(frozen=True, slots=True)
class SpotCollateral:
    """A token counted toward equity: ``balance · price · (RATE_SCALE - haircut) /
    (RATE_SCALE · 10**asset.decimals)``, rounded down, with ``price = index(underlying)``,
    times ``exchange_rate / RATE_SCALE`` when ``exchange_rate`` is set (an LST).

    ``haircut`` is in parts per ``RATE_SCALE`` (``0..RATE_SCALE``; 1e8 = 10%).
    """

    asset: Asset
    underlying: str
    haircut: int = 0
    exchange_rate: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.asset, Asset):
            raise InvalidArgument(f"asset={self.asset!r} of collateral must be an Asset")
        check_underlying(self.underlying)
        check_int(f"haircut of {self.asset.id}", self.haircut, 0, RATE_SCALE)
        if not isinstance(self.exchange_rate, bool):
            raise InvalidArgument(f"exchange_rate={self.exchange_rate!r} must be a bool")
