"""Liquidation eligibility and sizing: close factors, Aave v3/v4 amounts, target health,
dust, and the self-liquidation window.

Pure functions, exact arithmetic. Health is ``equity / maintenance_margin`` (or Aave's
health factor) as a ``Fraction``; money is integer base units.

Functions named ``aave_*`` reproduce Aave's contracts bit for bit and so take Aave's own
units: percentages in basis points (``BPS = 10_000``; a 105% bonus is ``10_500``), health
factors in WAD (``10**18``), prices in the oracle's base currency (8 decimals for USD).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

from liqeng.errors import InvalidArgument
from liqeng.units import RATE_SCALE, check_int, mul_div_down, mul_div_up

__all__ = [
    "AAVE_V3_CLOSE_FACTOR",
    "AAVE_V3_MIN_LEFTOVER_BASE",
    "AAVE_V4_DUST_LIQUIDATION_THRESHOLD",
    "BPS",
    "WAD",
    "AaveAmounts",
    "AaveRounding",
    "CloseFactorBands",
    "DustMode",
    "DustRule",
    "MustNotLeaveDust",
    "TargetHealthClose",
    "aave_v3_liquidation_amounts",
    "close_factor_by_health",
    "debt_to_target_health",
    "liquidation_bonus",
    "self_liquidation_window",
    "target_health_close",
]

BPS: Final = 10_000
WAD: Final = 10**18
_UINT256_MAX: Final = 2**256 - 1

AAVE_V3_MIN_LEFTOVER_BASE: Final = 1_000 * 10**8
"""Aave v3.3+ ``MIN_LEFTOVER_BASE``: $1,000 in 8-decimal base currency."""

AAVE_V4_DUST_LIQUIDATION_THRESHOLD: Final = 1_000 * 10**26
"""Aave v4 ``DUST_LIQUIDATION_THRESHOLD``: $1,000 in 26-decimal value units."""


class MustNotLeaveDust(InvalidArgument):
    """A liquidation would leave a remnant worth less than the dust minimum (Aave's
    ``MustNotLeaveDust`` revert). The message names the remnant and the minimum."""


def _u(name: str, value: object, lo: int = 0) -> int:
    return check_int(name, value, lo, _UINT256_MAX)


def _frac(name: str, value: object) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, Fraction)):
        raise InvalidArgument(f"{name}={value!r} must be a Fraction or int, not a float")
    return Fraction(value)


# --- close factor ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CloseFactorBands:
    """Close factor by health band: ``close_factor = cf_i`` for the *lowest* ceiling
    ``h_i`` with ``health <= h_i``, else ``default``. ``bands`` are ``(h_i, cf_i)``;
    every close factor is in ``(0, 1]`` and must not fall as health falls (a sicker
    account may always be closed at least as much), so the map is non-increasing in
    health. ``CloseFactorBands(cf)`` with no bands is a fixed close factor."""

    default: Fraction
    bands: tuple[tuple[Fraction, Fraction], ...] = ()

    def __post_init__(self) -> None:
        default = _frac("default", self.default)
        if not 0 < default <= 1:
            raise InvalidArgument(f"close factor default={default} must be in (0, 1]")
        bands = sorted((_frac("ceiling", h), _frac("close_factor", cf)) for h, cf in self.bands)
        prev = default
        for h, cf in reversed(bands):
            if not 0 < cf <= 1:
                raise InvalidArgument(f"close_factor={cf} at health<={h} must be in (0, 1]")
            if cf < prev:
                raise InvalidArgument(
                    f"close_factor={cf} at health<={h} is below {prev} at a higher health"
                )
            prev = cf
        if len({h for h, _ in bands}) != len(bands):
            raise InvalidArgument(f"bands={self.bands!r} repeat a health ceiling")
        object.__setattr__(self, "default", default)
        object.__setattr__(self, "bands", tuple(bands))


AAVE_V3_CLOSE_FACTOR: Final = CloseFactorBands(Fraction(1, 2), ((Fraction(95, 100), Fraction(1)),))
"""Aave v3: 50% when ``HF > 0.95``, 100% at or below (``CLOSE_FACTOR_HF_THRESHOLD``)."""


def close_factor_by_health(health: Fraction, bands: CloseFactorBands) -> Fraction:
    """The share of debt (or of the portfolio) one liquidation may close at ``health``.

    ``close_factor_by_health(Fraction(95, 100), AAVE_V3_CLOSE_FACTOR) == 1`` (boundary:
    50% needs ``HF > 0.95``).
    """
    h = _frac("health", health)
    for ceiling, cf in bands.bands:
        if h <= ceiling:
            return cf
    return bands.default


# --- dust --------------------------------------------------------------------------------


class DustMode(enum.Enum):
    """What a ``DustRule`` does with a remnant below its minimum."""

    TAKE_ALL = "take-all"
    """Round the take up to everything (Maker ``bark``, Aave v4)."""
    REFUSE = "refuse"
    """Raise ``MustNotLeaveDust`` (Aave v3.3+)."""


@dataclass(frozen=True, slots=True)
class DustRule:
    """A remnant worth ``0 < remnant < min_value`` may not be left behind: either the
    liquidation takes everything (``TAKE_ALL``) or it is refused (``REFUSE``, raising
    ``MustNotLeaveDust``, an ``InvalidArgument``). A zero remnant is never dust.
    ``min_value`` is in the caller's value units (Aave v3: 8-decimal base currency)."""

    min_value: int
    mode: DustMode = DustMode.TAKE_ALL

    def __post_init__(self) -> None:
        _u("min_value", self.min_value)
        if not isinstance(self.mode, DustMode):
            raise InvalidArgument(f"mode={self.mode!r} must be a DustMode")

    def is_dust(self, remnant: int) -> bool:
        return 0 < _u("remnant", remnant) < self.min_value

    def take_all(self, remnant: int, what: str) -> bool:
        """``True`` if the liquidation must take everything because ``remnant`` is dust;
        raises ``MustNotLeaveDust`` instead under ``REFUSE``."""
        if not self.is_dust(remnant):
            return False
        if self.mode is DustMode.REFUSE:
            raise MustNotLeaveDust(
                f"MustNotLeaveDust: {what} remnant={remnant} < min_value={self.min_value}"
            )
        return True


# --- Aave v3 amounts ---------------------------------------------------------------------


class AaveRounding(enum.Enum):
    """``V3_0``: ``aave-v3-core`` half-up ``percentMul``/``percentDiv`` everywhere.
    ``V3_7``: ``aave-v3-origin`` 3.7, every rounding against the liquidator:
    ``maxCollateral = percentMulFloor``, ``debtNeeded = percentDivCeil``, bonus base
    ``percentDivFloor``, ``fee = percentMulCeil``."""

    V3_0 = "v3.0"
    V3_7 = "v3.7"


def _pmul_half(v: int, p: int) -> int:
    return (v * p + BPS // 2) // BPS


def _pdiv_half(v: int, p: int) -> int:
    return (v * BPS + p // 2) // p


@dataclass(frozen=True, slots=True)
class AaveAmounts:
    """Result of one Aave v3 liquidation, in base units of each asset.

    ``collateral_seized = collateral_to_liquidator + protocol_fee``."""

    debt_repaid: int
    collateral_to_liquidator: int
    protocol_fee: int

    @property
    def collateral_seized(self) -> int:
        return self.collateral_to_liquidator + self.protocol_fee


def aave_v3_liquidation_amounts(
    *,
    collateral_amount: int,
    collateral_price: int,
    collateral_decimals: int,
    debt_amount: int,
    debt_price: int,
    debt_decimals: int,
    liquidation_bonus_bps: int,
    protocol_fee_bps: int,
    close_factor_bps: int,
    debt_to_cover: int | None = None,
    rounding: AaveRounding = AaveRounding.V3_7,
    dust: DustRule | None = None,
) -> AaveAmounts:
    """Aave v3 ``LiquidationLogic`` sizing for one collateral and one debt reserve.

    With ``cu = 10**collateral_decimals``, ``du = 10**debt_decimals``, bonus ``B`` and
    protocol fee share ``φ`` in bps::

        debt      = min(debt_to_cover, percentMul(debt_amount, close_factor))
        base      = floor(debt_price * debt * cu / (collateral_price * du))
        max_coll  = base * B / BPS                         (V3_0 half-up, V3_7 floor)
        if max_coll > collateral_amount:                   (collateral exhausted)
            coll  = collateral_amount
            debt  = floor(collateral_price * coll * du / (debt_price * cu)) * BPS / B
                                                           (V3_0 half-up, V3_7 ceil)
        else: coll = max_coll
        bonus     = coll - coll * BPS / B                  (V3_0 half-up, V3_7 floor)
        fee       = bonus * φ / BPS                        (V3_0 half-up, V3_7 ceil)
        liquidator gets coll - fee; the protocol gets fee.

    ``close_factor_bps`` is applied to this reserve's debt (v3.0 semantics; v3.3+ applies
    50% to the *total* debt in base currency, which is the same with one debt reserve).
    ``debt_to_cover=None`` means ``type(uint256).max``.

    ``dust`` (v3.3+ with ``DustRule(AAVE_V3_MIN_LEFTOVER_BASE, DustMode.REFUSE)``): unless
    all debt or all collateral is taken, the leftover debt
    ``ceil(left * debt_price / du)`` and the leftover collateral
    ``floor(left * collateral_price / cu)`` (base currency) must both be ``>= min_value``.
    Under ``TAKE_ALL`` a dusty liquidation is redone with ``debt_to_cover`` = all debt,
    overriding the close factor.
    """
    coll_bal = _u("collateral_amount", collateral_amount)
    cp = _u("collateral_price", collateral_price, 1)
    cu = 10 ** check_int("collateral_decimals", collateral_decimals, 0, 36)
    debt_bal = _u("debt_amount", debt_amount)
    dp = _u("debt_price", debt_price, 1)
    du = 10 ** check_int("debt_decimals", debt_decimals, 0, 36)
    bonus = check_int("liquidation_bonus_bps", liquidation_bonus_bps, BPS, 10 * BPS)
    fee_share = check_int("protocol_fee_bps", protocol_fee_bps, 0, BPS)
    cf = check_int("close_factor_bps", close_factor_bps, 1, BPS)
    cover = _UINT256_MAX if debt_to_cover is None else _u("debt_to_cover", debt_to_cover)
    if not isinstance(rounding, AaveRounding):
        raise InvalidArgument(f"rounding={rounding!r} must be an AaveRounding")
    v30 = rounding is AaveRounding.V3_0

    def size(cover: int, max_debt: int) -> AaveAmounts:
        debt = min(cover, max_debt)
        base = dp * debt * cu // (cp * du)
        max_coll = _pmul_half(base, bonus) if v30 else base * bonus // BPS
        if max_coll > coll_bal:
            coll = coll_bal
            raw = cp * coll * du // (dp * cu)
            debt = _pdiv_half(raw, bonus) if v30 else mul_div_up(raw, BPS, bonus)
        else:
            coll = max_coll
        fee = 0
        if fee_share:
            bonus_coll = coll - (_pdiv_half(coll, bonus) if v30 else coll * BPS // bonus)
            fee = (
                _pmul_half(bonus_coll, fee_share) if v30 else mul_div_up(bonus_coll, fee_share, BPS)
            )
        return AaveAmounts(debt, coll - fee, fee)

    out = size(cover, _pmul_half(debt_bal, cf))
    if dust is not None and out.debt_repaid < debt_bal and out.collateral_seized < coll_bal:
        debt_left = mul_div_up(debt_bal - out.debt_repaid, dp, du)
        coll_left = mul_div_down(coll_bal - out.collateral_seized, cp, cu)
        if dust.take_all(debt_left, "debt") or dust.take_all(coll_left, "collateral"):
            out = size(debt_bal, debt_bal)
    return out


# --- Aave v4 -----------------------------------------------------------------------------


def liquidation_bonus(health: int, hf_for_max_bonus: int, bonus_factor: int, max_bonus: int) -> int:
    """Aave v4 variable bonus (bps), growing as health (WAD) falls::

        health <= hf_for_max_bonus: max_bonus
        otherwise: min + floor((max_bonus - min) * (WAD - health) / (WAD - hf_for_max_bonus))
        where min = floor((max_bonus - BPS) * bonus_factor / BPS) + BPS

    ``hf_for_max_bonus < WAD``; ``bonus_factor`` in ``[0, BPS]``; ``max_bonus >= BPS``.
    """
    hf = _u("health", health)
    hf_max = check_int("hf_for_max_bonus", hf_for_max_bonus, 0, WAD - 1)
    factor = check_int("bonus_factor", bonus_factor, 0, BPS)
    top = check_int("max_bonus", max_bonus, BPS, _UINT256_MAX)
    if hf <= hf_max:
        return top
    if hf > WAD:
        raise InvalidArgument(f"health={hf} above 1e18 is not liquidatable")
    low = (top - BPS) * factor // BPS + BPS
    return low + (top - low) * (WAD - hf) // (WAD - hf_max)


def debt_to_target_health(
    total_debt: int,
    price: int,
    collateral_factor: int,
    bonus: int,
    health: int,
    target_health: int,
    debt_decimals: int = 0,
) -> int:
    """Aave v4 ``_calculateDebtToTargetHealthFactor``: debt to repay so that health
    returns to ``target_health``, rounded up::

        penalty = ceil(bonus * 1e14 * collateral_factor / BPS)        (WAD)
        debt    = ceil(total_debt * 10**debt_decimals * (target - health)
                       / ((target - penalty) * price * WAD))

    Units: ``total_debt`` in value units (Aave: 26 decimals, possibly ray-scaled, in
    which case the result is ray-scaled too), ``price`` with 8 decimals, bonus and
    collateral factor in bps, health and target in WAD. Derivation: repaying ``x`` of
    debt value removes ``x`` of debt and ``x * bonus`` of collateral, i.e.
    ``x * bonus * CF`` of weighted collateral; ``(H*D - x*bonus*CF) / (D - x) = T``
    gives ``x = D * (T - H) / (T - bonus*CF)``.
    """
    d = _u("total_debt", total_debt)
    p = _u("price", price, 1)
    cf = check_int("collateral_factor", collateral_factor, 0, BPS)
    b = check_int("bonus", bonus, BPS, _UINT256_MAX)
    hf = _u("health", health)
    thf = _u("target_health", target_health)
    unit = 10 ** check_int("debt_decimals", debt_decimals, 0, 36)
    if thf < hf:
        raise InvalidArgument(f"target_health={thf} is below health={hf}")
    penalty = mul_div_up(b * 10**14, cf, BPS)
    if thf <= penalty:
        raise InvalidArgument(
            f"target_health={thf} must exceed bonus*collateral_factor={penalty}: "
            "liquidating would never restore health"
        )
    return mul_div_up(d, unit * (thf - hf), (thf - penalty) * p * WAD)


# --- generic target-health close ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TargetHealthClose:
    """``fraction`` of every position to close (exact, in ``[0, 1]``), the ``notional``
    that is (``ceil(fraction * total notional)``), and ``dust``: the remnant was below the
    dust minimum, so everything is closed."""

    fraction: Fraction
    notional: int
    dust: bool


def target_health_close(
    equity: int,
    maintenance_margin: int,
    target: Fraction,
    penalty_rate: int,
    mm_rate_of_closed: int,
    dust: DustRule | None = None,
) -> TargetHealthClose:
    """The share ``f`` of a perp/option portfolio to close so that health
    ``H = equity / MM`` returns to ``target`` ``T``.

    ``m = mm_rate_of_closed / RATE_SCALE`` is the maintenance margin per unit of notional
    of what is closed (so the notional is ``N = MM / m``) and
    ``p = penalty_rate / RATE_SCALE``. Closing ``f`` removes ``f * MM`` of requirement
    and costs ``f * p * N = f * MM * p / m`` of equity::

        (E - f * MM * p / m) / ((1 - f) * MM) = T   =>   f = (T - H) / (T - p / m)

    clamped: ``f = 0`` if ``H >= T`` (or ``MM = 0``); ``f = 1`` when ``T <= p / m`` or
    ``H <= p / m`` (closing can never restore the target). For ``0 < f < 1`` the new
    health is exactly ``T``. With ``dust``, a remnant notional ``N - notional`` that is
    dust closes everything (or raises under ``REFUSE``).
    """
    e = check_int("equity", equity)
    mm = check_int("maintenance_margin", maintenance_margin, 0)
    t = _frac("target", target)
    if t <= 0:
        raise InvalidArgument(f"target={t} must be positive")
    p = Fraction(check_int("penalty_rate", penalty_rate, 0, RATE_SCALE), RATE_SCALE)
    m = Fraction(check_int("mm_rate_of_closed", mm_rate_of_closed, 1, RATE_SCALE), RATE_SCALE)
    if mm == 0:
        return TargetHealthClose(Fraction(0), 0, False)
    total = mm / m
    h = Fraction(e, mm)
    if h >= t:
        f = Fraction(0)
    elif t <= p / m or h <= p / m:
        f = Fraction(1)
    else:
        f = min(Fraction(1), (t - h) / (t - p / m))
    notional, full = math.ceil(f * total), math.ceil(total)
    if dust is not None and 0 < f < 1 and dust.take_all(max(full - notional, 0), "notional"):
        return TargetHealthClose(Fraction(1), full, True)
    return TargetHealthClose(f, notional, False)


# --- self-liquidation window -------------------------------------------------------------


def self_liquidation_window(
    became_eligible_at: int, now: int, window_s: int, health: Fraction, hard_floor: Fraction
) -> bool:
    """``True`` while an account that became liquidatable at ``became_eligible_at`` may
    still close itself without penalty: ``now - became_eligible_at < window_s`` and
    ``health >= hard_floor``. Times are integer seconds; ``now`` may not precede the
    start."""
    start = check_int("became_eligible_at", became_eligible_at, 0)
    t = check_int("now", now, 0)
    w = check_int("window_s", window_s, 0)
    if t < start:
        raise InvalidArgument(f"now={t} precedes became_eligible_at={start}")
    return t - start < w and _frac("health", health) >= _frac("hard_floor", hard_floor)
