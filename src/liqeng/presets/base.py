"""What a preset is: liqeng's own mechanism, margin and limits configured to behave as a
named protocol does, plus that protocol's vocabulary as a thin API in its module.

A preset never adds a second engine: ``mechanism()`` builds one of liqeng's mechanisms
(``liqeng.liquidation.registry``), ``margin`` (if any) replaces the per-position model of
every market (e.g. Lyra's portfolio margin), ``limits`` sets the engine's throughput
limits (dYdX's per-block limits). ``reproduces`` lists the anchors.md section 3 vector ids
its tests reproduce; ``simplifies`` says in a sentence what it leaves out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from liqeng.errors import InvalidArgument
from liqeng.liquidation.base import Mechanism
from liqeng.liquidation.limits import Limits
from liqeng.risk.models import MarginModel

__all__ = ["Preset"]


@dataclass(frozen=True, slots=True)
class Preset:
    """``name`` (``maker``, ``aave``, …) and ``protocol`` (its full name) label runs;
    ``mechanism()`` builds a fresh mechanism for one engine."""

    name: str
    protocol: str
    mechanism: Callable[[], Mechanism]
    reproduces: tuple[str, ...]
    simplifies: str
    margin: MarginModel | None = None
    limits: Limits | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise InvalidArgument(f"preset name={self.name!r} must be a lowercase identifier")
        if not callable(self.mechanism):
            raise InvalidArgument(f"preset {self.name}: mechanism must be callable")
