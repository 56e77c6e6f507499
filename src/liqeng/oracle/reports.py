"""One source's price report for one market, validated at the edge.

A ``SourceReport`` is ``(source, market, price, ts, confidence)``: ``price`` is an integer in
price units (quote base units per whole token, ``1..PRICE_MAX``), ``ts`` whole seconds,
``confidence`` an optional half-width of the source's uncertainty in the same price units
(``0..PRICE_MAX``). Floats (NaN and infinities included), booleans, zero or negative prices
and empty names are refused with ``InvalidArgument`` naming the value; a report that exists
is well formed. Whether it is *acceptable* (known source and market, not in the future, after
the source's last report) is decided by ``Feed.submit``, which has the state to decide it.
"""

from __future__ import annotations

from dataclasses import dataclass

from liqeng.errors import InvalidArgument
from liqeng.units import PRICE_MAX, check_int

__all__ = ["TS_MAX", "SourceReport"]

TS_MAX = 2**62
"""Bound of a timestamp in seconds."""


@dataclass(frozen=True, slots=True)
class SourceReport:
    """``source`` says ``market`` traded at ``price`` at ``ts`` (± ``confidence``)."""

    source: str
    market: str
    price: int
    ts: int
    confidence: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise InvalidArgument(f"source={self.source!r} must be a non-empty str")
        if not isinstance(self.market, str) or not self.market:
            raise InvalidArgument(f"market={self.market!r} must be a non-empty str")
        check_int(f"price from {self.source}", self.price, 1, PRICE_MAX)
        check_int(f"ts from {self.source}", self.ts, 0, TS_MAX)
        if self.confidence is not None:
            check_int(f"confidence from {self.source}", self.confidence, 0, PRICE_MAX)
