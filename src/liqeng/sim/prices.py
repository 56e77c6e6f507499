"""Historical price paths: candle files in, timed source reports out.

Each candle ``[ts, ts + step)`` of each source becomes 1, 2 or 4 reports spaced
``step / n`` apart: 4 = open, high and low (low first when the candle closes below its
open, so a falling hour visits its low before it recovers), close; 2 = open, close;
1 = close. Decimal prices are
turned into integer price units by truncation (``floor``), never through a float.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from pathlib import Path

from liqeng.errors import InvalidArgument
from liqeng.oracle.reports import SourceReport
from liqeng.units import EXACT

__all__ = ["Candle", "read_candles", "source_name", "ticks"]

_SHAPES = {1: (3,), 2: (0, 3), 4: (0, 1, 2, 3)}  # which of open, high|low, low|high, close


@dataclass(frozen=True, slots=True)
class Candle:
    ts: int
    open: int
    high: int
    low: int
    close: int


def source_name(path: Path) -> str:
    """``eth_usd-coinbase-2020-03-11-1h.csv`` -> ``coinbase``."""
    parts = path.name.split("-")
    return parts[1] if len(parts) > 2 else path.stem


def _units(text: str, decimals: int, where: str) -> int:
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise InvalidArgument(f"{where}: price={text!r} is not a decimal number") from None
    if not d.is_finite() or d <= 0:
        raise InvalidArgument(f"{where}: price={text!r} must be finite and positive")
    return int(d.scaleb(decimals, context=EXACT).to_integral_value(ROUND_FLOOR, EXACT))


def _utc_seconds(text: str) -> int:
    """ISO-8601 time to epoch seconds; a time without an offset is UTC, never local."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def read_candles(path: Path, decimals: int) -> list[Candle]:
    """Read ``ts,open,high,low,close[,volume]`` rows; ``ts`` ISO-8601 UTC."""
    out: list[Candle] = []
    with path.open(newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=2):
            where = f"{path.name}:{n}"
            try:
                ts = _utc_seconds(row["ts"])
                o, h, lo, c = (
                    _units(row[k], decimals, where) for k in ("open", "high", "low", "close")
                )
            except KeyError as exc:
                raise InvalidArgument(f"{where}: missing column {exc}") from None
            except (ValueError, TypeError) as exc:
                if isinstance(exc, InvalidArgument):
                    raise
                raise InvalidArgument(f"{where}: bad row {row!r}: {exc}") from None
            if out and ts <= out[-1].ts:
                raise InvalidArgument(f"{where}: ts={row['ts']} is not after the previous row")
            out.append(Candle(ts, o, h, lo, c))
    if len(out) < 2:
        raise InvalidArgument(f"{path.name}: needs at least two candles")
    return out


def ticks(
    files: tuple[Path, ...], underlying: str, decimals: int, per_candle: int
) -> Iterator[tuple[int, list[SourceReport]]]:
    """Yield ``(ts, reports)`` in time order, one report per source per tick."""
    if per_candle not in _SHAPES:
        raise InvalidArgument(f"ticks_per_candle={per_candle} must be 1 (close), 2 or 4")
    series = {source_name(f): read_candles(f, decimals) for f in files}
    step = min(b.ts - a.ts for c in series.values() for a, b in itertools.pairwise(c))
    by_time: dict[int, list[SourceReport]] = {}
    for source, candles in sorted(series.items()):
        for c in candles:
            path = [c.open, c.high, c.low, c.close]
            if c.close < c.open:
                path = [c.open, c.low, c.high, c.close]
            path = [path[k] for k in _SHAPES[per_candle]]
            for i, price in enumerate(path):
                ts = c.ts + i * step // per_candle
                by_time.setdefault(ts, []).append(SourceReport(source, underlying, price, ts))
    for ts in sorted(by_time):
        yield ts, by_time[ts]
