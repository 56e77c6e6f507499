"""How much of an eligible account one liquidation closes: a fraction ``f`` of every
position and collateral balance (a uniform slice, ``legs.uniform_slice``).

With ``N`` the account's notional, ``MM`` its maintenance margin, ``H = equity / MM`` and
``p`` the penalty rate:

* ``CloseAll``: ``f = 1``.
* ``CloseFactor(bands)``: ``f = close_factor_by_health(H, bands)`` (Aave v3: 50% above
  ``H = 0.95``, 100% at or below it).
* ``TargetHealth(target)``: the least ``f`` that restores ``target`` after the penalty.
  With the requirement ``MM = V + F``, ``V`` proportional to the sizes and ``F`` a fixed
  part (a keeper reward's tip and gas reserved in it), closing ``f`` leaves
  ``(E - f·p·N) / ((1 - f)·V + F)``, so ``f = (T·MM - E) / (T·V - p·N)`` (exact for a
  requirement linear in the sizes; 1 when closing can never reach ``T``). The mechanism
  rounds each closed size up, so the target is reached, not missed by a unit.

Then, in this order: a remnant notional ``(1 - f)·N`` below ``dust.min_value`` closes
everything instead (``TAKE_ALL``) or is refused (``REFUSE``); and the engine's throughput
limit ``max_notional`` caps ``f <= max_notional / N`` (the limit wins over dust: the rest is
taken in a later window). A mechanism closes a whole account that a partial close would
leave in debt, limit or not: a throttle must not keep bad debt open.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from liqeng.errors import InvalidArgument, Refused
from liqeng.liquidation.sizing import CloseFactorBands, DustRule, close_factor_by_health
from liqeng.risk.margin import AccountRisk
from liqeng.units import RATE_SCALE, check_int

__all__ = ["CloseAll", "CloseFactor", "Sizing", "TargetHealth", "close_fraction"]


@dataclass(frozen=True, slots=True)
class CloseAll:
    """Close the whole account (``f = 1``)."""


@dataclass(frozen=True, slots=True)
class CloseFactor:
    """Close ``close_factor_by_health(health, bands)`` of the account."""

    bands: CloseFactorBands

    def __post_init__(self) -> None:
        if not isinstance(self.bands, CloseFactorBands):
            raise InvalidArgument(f"bands={self.bands!r} must be CloseFactorBands")


@dataclass(frozen=True, slots=True)
class TargetHealth:
    """Close just enough to bring health back to ``target`` (``>= 1``)."""

    target: Fraction

    def __post_init__(self) -> None:
        t = self.target
        if isinstance(t, bool) or not isinstance(t, (int, Fraction)) or t < 1:
            raise InvalidArgument(f"target={t!r} must be a Fraction >= 1")


Sizing = CloseAll | CloseFactor | TargetHealth


def close_fraction(
    sizing: Sizing,
    risk: AccountRisk,
    notional: int,
    penalty_rate: int,
    dust: DustRule | None = None,
    max_notional: int | None = None,
    fixed: int = 0,
) -> Fraction:
    """``f`` in ``(0, 1]`` (module doc; ``fixed`` is the part of the requirement that does
    not scale with the sizes); ``Refused("liquidation/throttled")`` when ``max_notional``
    is 0."""
    n = check_int("notional", notional, 0)
    if isinstance(sizing, CloseAll) or n == 0:
        f = Fraction(1)
    elif isinstance(sizing, CloseFactor):
        f = close_factor_by_health(risk.health, sizing.bands)
    elif isinstance(sizing, TargetHealth):
        t, mm = Fraction(sizing.target), risk.maintenance_margin
        v = mm - min(check_int("fixed", fixed, 0), mm)
        num = t * mm - risk.equity
        den = t * v - Fraction(penalty_rate * n, RATE_SCALE)
        f = Fraction(1) if den <= 0 or num >= den else max(num / den, Fraction(0))
        f = f if f > 0 else Fraction(1)
    else:
        raise InvalidArgument(f"sizing={sizing!r} must be CloseAll, CloseFactor or TargetHealth")
    if dust is not None and f < 1 and dust.take_all(n - (f * n).__ceil__(), "notional"):
        f = Fraction(1)
    if max_notional is not None:
        cap = check_int("max_notional", max_notional, 0)
        if cap == 0:
            raise Refused("liquidation/throttled", "no liquidation capacity left")
        if cap < f * n:
            f = Fraction(cap, n)
    return f
