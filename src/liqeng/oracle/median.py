"""The walking-skeleton oracle: the median of fresh reports from independent sources.

``index = median(latest price of each source reported within max_age_s)``; for an even
count the lower of the two middle prices is taken (an exact integer, never an average
that a single source can pull), and fewer than ``quorum`` fresh sources gives no price.
A single lying source therefore cannot move the index past an honest neighbour's price.
Reports are validated at the edge and refused, naming the value, without changing state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from liqeng.errors import InvalidArgument
from liqeng.units import PRICE_MAX, check_int

__all__ = ["AggregatePrice", "MedianOracle", "PriceReport"]


@dataclass(frozen=True, slots=True)
class PriceReport:
    """One source's price of one underlying, in price units (quote base units per whole
    token), at ``ts`` (seconds)."""

    source: str
    underlying: str
    price: int
    ts: int

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise InvalidArgument(f"source={self.source!r} must be a non-empty str")
        if not isinstance(self.underlying, str) or not self.underlying:
            raise InvalidArgument(f"underlying={self.underlying!r} must be a non-empty str")
        check_int(f"price from {self.source}", self.price, 1, PRICE_MAX)
        check_int(f"ts from {self.source}", self.ts, 0, 2**62)


@dataclass(frozen=True, slots=True)
class AggregatePrice:
    underlying: str
    price: int
    sources: int
    ts: int


class MedianOracle:
    """Latest report per (source, underlying); ``aggregate`` takes the median of fresh ones."""

    def __init__(
        self,
        sources: Iterable[str],
        underlyings: Iterable[str],
        max_age_s: int,
        quorum: int,
    ) -> None:
        self.sources = frozenset(sources)
        self.underlyings = frozenset(underlyings)
        check_int("max_age_s", max_age_s, 1, 2**40)
        check_int("quorum", quorum, 1, max(1, len(self.sources)))
        if not self.sources or not self.underlyings:
            raise InvalidArgument("an oracle needs at least one source and one underlying")
        self.max_age_s = max_age_s
        self.quorum = quorum
        self._latest: dict[tuple[str, str], PriceReport] = {}

    def submit(self, report: PriceReport, now: int) -> None:
        """Accept ``report`` or raise naming what is wrong (and keep the previous one)."""
        if not isinstance(report, PriceReport):
            raise InvalidArgument(f"report={report!r} must be a PriceReport")
        if report.source not in self.sources:
            raise InvalidArgument(f"source={report.source!r} is not a configured source")
        if report.underlying not in self.underlyings:
            raise InvalidArgument(f"underlying={report.underlying!r} has no feed")
        if report.ts > now:
            raise InvalidArgument(f"report ts={report.ts} from {report.source} is after now={now}")
        last = self._latest.get((report.source, report.underlying))
        if last is not None and report.ts <= last.ts:
            raise InvalidArgument(
                f"report ts={report.ts} from {report.source} is not after its last ts={last.ts}"
            )
        self._latest[(report.source, report.underlying)] = report

    def aggregate(self, underlying: str, now: int) -> AggregatePrice | None:
        """Median of the fresh reports, or ``None`` below quorum."""
        fresh = sorted(
            r.price
            for (_, u), r in self._latest.items()
            if u == underlying and now - r.ts <= self.max_age_s
        )
        if len(fresh) < self.quorum:
            return None
        return AggregatePrice(underlying, fresh[(len(fresh) - 1) // 2], len(fresh), now)

    def index_prices(self, now: int) -> Mapping[str, AggregatePrice]:
        out = {}
        for u in sorted(self.underlyings):
            agg = self.aggregate(u, now)
            if agg is not None:
                out[u] = agg
        return out
