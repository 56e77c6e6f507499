"""Mechanisms by name: adding one is one module and one line in ``MECHANISMS``.

``mechanism("fixed-fee", penalty_rate=30_000_000)`` builds one from keyword parameters
(scenario files and presets use the names); an unknown name or parameter is an
``InvalidArgument`` that names it and lists what is known.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Final

from liqeng.errors import InvalidArgument
from liqeng.liquidation.base import Mechanism
from liqeng.liquidation.dutch_auction import DutchAuction
from liqeng.liquidation.english_auction import EnglishAuction
from liqeng.liquidation.fixed_fee import FixedFee
from liqeng.liquidation.pool import BackstopPool

__all__ = ["MECHANISMS", "mechanism"]

MECHANISMS: Final[dict[str, Callable[..., Mechanism]]] = {
    "fixed-fee": FixedFee,
    "dutch-auction": DutchAuction,
    "backstop-pool": BackstopPool,
    "english-auction": EnglishAuction,
}


def mechanism(name: str, **params: Any) -> Mechanism:
    """The mechanism registered as ``name``, built with ``params``."""
    factory = MECHANISMS.get(name) if isinstance(name, str) else None
    if factory is None:
        raise InvalidArgument(f"mechanism={name!r} is unknown; known: {sorted(MECHANISMS)}")
    accepted = inspect.signature(factory).parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise InvalidArgument(
            f"mechanism {name!r} has no parameter {unknown}; it takes {sorted(accepted)}"
        )
    return factory(**params)
