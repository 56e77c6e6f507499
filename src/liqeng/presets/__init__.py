"""Presets that configure liqeng to behave as today's liquidation engines, number for
number (docs/presets.md): one module per protocol, each with a ``PRESET`` and the
protocol's own vocabulary as a thin API. ``PRESETS`` maps names to presets."""

from __future__ import annotations

from liqeng.errors import InvalidArgument
from liqeng.presets import aave, compound, dydx, hyperliquid, liquity, lyra, maker
from liqeng.presets.base import Preset

__all__ = ["PRESETS", "Preset", "preset"]

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        maker.PRESET,
        aave.PRESET,
        aave.PRESET_V4,
        liquity.PRESET,
        compound.PRESET,
        lyra.PRESET,
        dydx.PRESET,
        hyperliquid.PRESET,
    )
}


def preset(name: str) -> Preset:
    """The preset called ``name``; ``InvalidArgument`` naming the known ones otherwise."""
    found = PRESETS.get(name) if isinstance(name, str) else None
    if found is None:
        raise InvalidArgument(f"preset={name!r} is unknown; known: {sorted(PRESETS)}")
    return found
