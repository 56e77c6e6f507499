"""Hyperliquid (docs only: hyperliquid.gitbook.io ``trading/liquidations``,
``trading/auto-deleveraging``; anchors.md §2.7): its liquidation vocabulary, exact, and
``PRESET``.

Words (money in whole USDC as exact ``int``/``Fraction``; floats are refused):

* Maintenance margin from the asset's max leverage: ``MM rate = 1/(2·maxLev)`` of the
  notional at mark (``maintenance_margin_rate``), i.e. ``l = 1/MAINTENANCE_LEVERAGE`` with
  ``MAINTENANCE_LEVERAGE = 2·maxLev``: 1% at 50×, 1.25% at 40×, 16.7% at 3×.
* Liquidatable when ``equity < MM`` at the mark price (``is_liquidatable``).
* Liquidation price ``liq = price - side·margin_available/|size|/(1 - l·side)``,
  ``margin_available = margin - MM_required`` (isolated margin, or account value for
  cross; ``liquidation_price``).
* Market liquidation: a market order for the whole position, or for 20% of it when its
  notional is above 100,000 USDC; after such a partial one a 30 s cooldown follows in which
  market liquidation orders are for the whole position (the testnet announcement; the wiki
  says "after the cooldown"; ``market_liquidation_notional``). No clearance fee.
* Backstop: when ``equity < 2/3·MM`` (``is_backstop``; ``backstop_price``) the liquidator
  vault (part of HLP) takes the position and its margin; the margin is not returned.
* ADL: if an account (or isolated position) value is negative, opposite-side positions are
  ranked by ``(mark/entry)·(notional/account_value)`` (``adl_index``, ``adl_queue``;
  ``waterfall.adl_ranking``) and closed at the previous mark.

``PRESET`` is liqeng's ``FixedFee`` configured so: health ``H = equity/MM`` at or above
2/3 (market liquidation) pays no fee and closes 20% of the account when its notional is
above 100,000 USDC (``CloseFactor`` 1/5 plus a ``DustRule`` that closes everything when
the remnant would be below 80,000 USDC, i.e. the notional is at most 100,000), all of it
otherwise; below 2/3 (backstop) it closes everything and the whole remaining equity goes to
the insurance fund (the HLP analog), as a 100% penalty capped by the equity. Bad debt: the
insurance fund, then ADL in Hyperliquid's order. See docs/presets/hyperliquid.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Final

from liqeng.errors import InvalidArgument
from liqeng.liquidation.base import Mechanism
from liqeng.liquidation.fixed_fee import FixedFee
from liqeng.liquidation.penalty import AdaptivePenalty, HealthTiers, TierMode, VolatilityScaling
from liqeng.liquidation.portion import CloseFactor
from liqeng.liquidation.sizing import CloseFactorBands, DustMode, DustRule
from liqeng.liquidation.waterfall import AdlCandidate, Waterfall, adl_index, adl_ranking
from liqeng.presets.base import Preset
from liqeng.risk.margin import MarginParams
from liqeng.risk.models import PerPosition
from liqeng.units import DECIMALS_MAX, RATE_SCALE, check_int

__all__ = [
    "BACKSTOP_HEALTH",
    "BACKSTOP_THRESHOLD",
    "COOLDOWN_S",
    "PARTIAL_FRACTION",
    "PARTIAL_NOTIONAL",
    "PRESET",
    "adl_index",
    "adl_queue",
    "backstop_price",
    "is_backstop",
    "is_liquidatable",
    "liquidation_price",
    "maintenance_leverage",
    "maintenance_margin",
    "maintenance_margin_rate",
    "margin_model",
    "market_liquidation_notional",
    "mechanism",
]

BACKSTOP_THRESHOLD: Final = Fraction(2, 3)
"""The liquidator vault takes over below ``2/3`` of the maintenance margin."""
PARTIAL_NOTIONAL: Final = 100_000
"""USDC: positions above this notional are market-liquidated 20% at a time."""
PARTIAL_FRACTION: Final = Fraction(1, 5)
COOLDOWN_S: Final = 30
"""Seconds after a partial market liquidation during which orders are for the whole."""
BACKSTOP_HEALTH: Final = BACKSTOP_THRESHOLD - Fraction(1, 10**30)
"""The health ceiling ``PRESET`` treats as "below 2/3": ``H <= 2/3 - 1e-30``. For integer
equity and ``MM < 10**30/3`` base units this is exactly ``equity < 2/3·MM`` (``H < 2/3``
implies ``H <= 2/3 - 1/(3·MM)``), since ``CloseFactorBands`` and ``HealthTiers`` compare
``health <= ceiling``."""

Number = int | Fraction


def _exact(name: str, value: object) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, Fraction)):
        raise InvalidArgument(f"{name}={value!r} must be an int or Fraction, not a float")
    return Fraction(value)


def _max_leverage(value: object) -> int:
    """Hyperliquid's max leverage is a whole number ``>= 1`` (3× … 50×)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"max_leverage={value!r} must be an int >= 1")
    if value < 1:
        raise InvalidArgument(f"max_leverage={value} must be >= 1")
    return value


def _nonneg(name: str, value: object) -> Fraction:
    x = _exact(name, value)
    if x < 0:
        raise InvalidArgument(f"{name}={x} must be >= 0")
    return x


def maintenance_leverage(max_leverage: int) -> int:
    """``MAINTENANCE_LEVERAGE = 2·maxLev``: the maintenance margin is half the initial
    margin at max leverage."""
    return 2 * _max_leverage(max_leverage)


def maintenance_margin_rate(max_leverage: int) -> Fraction:
    """``1/(2·maxLev)``: 1/80 at 40×, 1/100 at 50×."""
    return Fraction(1, maintenance_leverage(max_leverage))


def maintenance_margin(notional: Number, max_leverage: int) -> Fraction:
    """``notional/(2·maxLev)``, ``notional = |size|·mark`` (USDC)."""
    return _nonneg("notional", notional) * maintenance_margin_rate(max_leverage)


def is_liquidatable(equity: Number, mm: Number) -> bool:
    """``equity < MM`` (both at the mark price)."""
    return _exact("equity", equity) < _nonneg("mm", mm)


def is_backstop(equity: Number, mm: Number) -> bool:
    """``equity < 2/3·MM``: the liquidator vault takes the position and its margin."""
    return _exact("equity", equity) < BACKSTOP_THRESHOLD * _nonneg("mm", mm)


def _threshold(value: object) -> Fraction:
    t = _exact("threshold", value)
    if not 0 < t <= 1:
        raise InvalidArgument(f"threshold={t} must be in (0, 1]")
    return t


def liquidation_price(
    price: Number,
    size: Number,
    margin: Number,
    max_leverage: int,
    *,
    threshold: Number = 1,
) -> Fraction:
    """The mark at which ``equity = threshold·MM``, exact::

        liq = price - side·margin_available/|size|/(1 - l·side)
        margin_available = margin - threshold·|size|·price·l,   l = threshold/(2·maxLev)

    ``margin`` is the position's isolated margin (or the account value, cross) at mark
    ``price``, unrealised PnL included; ``size`` signed (long > 0). ``threshold = 1`` is
    the liquidation price, ``2/3`` the backstop price (``backstop_price``)."""
    p = _exact("price", price)
    if p <= 0:
        raise InvalidArgument(f"price={p} must be > 0")
    s = _exact("size", size)
    if s == 0:
        raise InvalidArgument("size=0: no position, no liquidation price")
    m = _exact("margin", margin)
    lev = maintenance_leverage(max_leverage)
    t = _threshold(threshold)
    side = 1 if s > 0 else -1
    l_eff = t / lev
    available = m - abs(s) * p * l_eff
    return p - side * available / abs(s) / (1 - l_eff * side)


def backstop_price(price: Number, size: Number, margin: Number, max_leverage: int) -> Fraction:
    """The mark below which (long; above, short) ``equity < 2/3·MM`` and the backstop
    takes over: ``liquidation_price(..., threshold=2/3)``."""
    return liquidation_price(price, size, margin, max_leverage, threshold=BACKSTOP_THRESHOLD)


def market_liquidation_notional(
    position_notional: Number, seconds_since_partial: int | None = None
) -> Fraction:
    """The notional one market liquidation sends to the book: the whole position, or
    ``20%`` of it when it is above 100,000 USDC and no partial liquidation happened in the
    last 30 s (``seconds_since_partial`` ``None``: none yet; in ``[0, 30)``: cooldown, the
    order is for the whole position)."""
    n = _nonneg("position_notional", position_notional)
    if seconds_since_partial is not None:
        since = check_int("seconds_since_partial", seconds_since_partial, 0)
        if since < COOLDOWN_S:
            return n
    return n * PARTIAL_FRACTION if n > PARTIAL_NOTIONAL else n


def adl_queue(
    candidates: Sequence[AdlCandidate], losing_side: int, size_decimals: int = 0
) -> tuple[AdlCandidate, ...]:
    """The ADL queue against a bankrupt position on ``losing_side`` (1 long, -1 short):
    profitable opposite positions with positive account value, by ``adl_index``
    ``(mark/entry)·(notional/account_value)`` descending (``waterfall.adl_ranking``)."""
    return adl_ranking(candidates, losing_side, size_decimals)


def margin_model(max_leverage: int) -> PerPosition:
    """liqeng's per-position margin with Hyperliquid's perp rates: maintenance
    ``ceil(1e9/(2·maxLev))`` and initial ``ceil(1e9/maxLev)`` parts per ``RATE_SCALE``
    (exact at 40× and 50×). Options keep liqeng's default rates (Hyperliquid lists none)."""
    lev = _max_leverage(max_leverage)
    return PerPosition(
        MarginParams(
            perp_maintenance_rate=-(-RATE_SCALE // (2 * lev)),
            perp_initial_rate=-(-RATE_SCALE // lev),
        )
    )


_NO_VOL: Final = VolatilityScaling(1.0, Fraction(0), Fraction(1), Fraction(1))
"""A volatility factor of exactly 1: Hyperliquid prices no volatility into liquidation."""


def mechanism(quote_decimals: int = 6) -> Mechanism:
    """liqeng's ``FixedFee`` as Hyperliquid (module doc), amounts in quote base units of
    ``quote_decimals`` digits (USDC: 6): penalty 0 at health ``>= 2/3``, 100% (capped by
    the equity: the vault keeps the margin) below; close factor 1/5 at health ``>= 2/3``,
    1 below; a remnant below ``80,000`` USDC closes everything; fees to the insurance
    fund; bad debt to the insurance fund, then Hyperliquid-ranked ADL."""
    d = check_int("quote_decimals", quote_decimals, 0, DECIMALS_MAX)
    remnant = PARTIAL_NOTIONAL * (1 - PARTIAL_FRACTION) * 10**d
    return FixedFee(
        penalty_rate=0,
        keeper_share=0,
        protocol_share=0,
        name="hyperliquid",
        waterfall=Waterfall(("insurance_fund", "adl")),
        sizing=CloseFactor(CloseFactorBands(PARTIAL_FRACTION, ((BACKSTOP_HEALTH, Fraction(1)),))),
        dust=DustRule(int(remnant) + 1, DustMode.TAKE_ALL),
        penalty=AdaptivePenalty(
            HealthTiers(((BACKSTOP_HEALTH, RATE_SCALE), (Fraction(1), 0)), TierMode.STEP),
            _NO_VOL,
            floor=0,
            cap=RATE_SCALE,
        ),
        adl_ranking="hyperliquid",
    )


PRESET: Final = Preset(
    name="hyperliquid",
    protocol="Hyperliquid",
    mechanism=mechanism,
    reproduces=("HL-1", "HL-2", "HL-3", "HL-4", "HL-5"),
    simplifies=(
        "the keeper takes the positions at mark (no order book); the 20% partial applies "
        "to the whole account's notional and may repeat every step (no 30 s cooldown); the "
        "scenario's margin is kept (margin_model(max_leverage) gives Hyperliquid's)"
    ),
)
