"""Time comes in from the driver. The engine and the ledger read only a ``Clock``.

Time is integer seconds since the Unix epoch (UTC) everywhere in liqeng.
"""

from __future__ import annotations

from typing import Protocol

from liqeng.errors import InvalidArgument

__all__ = ["Clock", "SimClock"]


class Clock(Protocol):
    def now(self) -> int:
        """Current time, integer seconds since the epoch."""
        ...


class SimClock:
    """A clock the driver advances; it never goes backwards."""

    __slots__ = ("_now",)

    def __init__(self, start: int = 0) -> None:
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise InvalidArgument(f"start={start!r} must be a non-negative int of seconds")
        self._now = start

    def now(self) -> int:
        return self._now

    def set(self, ts: int) -> None:
        if isinstance(ts, bool) or not isinstance(ts, int) or ts < self._now:
            raise InvalidArgument(f"ts={ts!r} must be an int >= current time {self._now}")
        self._now = ts
