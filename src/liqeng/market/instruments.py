"""Tradable instruments: linear perpetuals and cash-settled European options.

Both are quoted in one ``quote`` asset and sized in instrument base units: a position of
``size`` is ``size / 10**size_decimals`` whole underlying tokens. Prices (``strike``, entry,
index, mark) are quote base units per one *whole* underlying token (see ``liqeng.units``),
so a position's value in quote base units is ``size * price / 10**size_decimals``.

* ``Perpetual`` is *futures-style*: no premium changes hands at the trade and the position
  is worth ``size * (mark - entry) / 10**size_decimals``.
* ``EuropeanOption`` is *premium-style*: the buyer pays the premium at the trade and the
  position is worth ``size * mark / 10**size_decimals`` (negative for the writer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeAlias

from liqeng.errors import InvalidArgument
from liqeng.ids import InstrumentId, check_id
from liqeng.ledger.model import InstrumentSpec
from liqeng.units import DECIMALS_MAX, PRICE_MAX, Asset, check_int

__all__ = ["EuropeanOption", "Instrument", "Perpetual", "check_underlying", "spec"]

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


Instrument: TypeAlias = Perpetual | EuropeanOption


def spec(instrument: Instrument) -> InstrumentSpec:
    """The ledger's ``InstrumentSpec`` of ``instrument`` (``net_zero=True``)."""
    if not isinstance(instrument, (Perpetual, EuropeanOption)):
        raise InvalidArgument(f"instrument={instrument!r} is not a Perpetual or EuropeanOption")
    return instrument.spec()
