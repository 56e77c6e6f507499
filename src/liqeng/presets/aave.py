"""Aave v3 (3.0, 3.3, 3.7) and Aave v4 liquidations in Aave's own vocabulary, and the
``aave`` / ``aave_v4`` presets (docs/presets/aave.md).

Units are Aave's: percentages in basis points (``BPS = 10_000``; a 105% bonus is
``10_500``), health factors in WAD (``10**18``), prices in the oracle's base currency with
8 decimals (USD), amounts in each asset's base units. A ``Reserve`` is one asset's
configuration; a holding is ``(reserve, amount)``.

Aave v3 (``liquidation_call``), per ``AaveVersion``:

* ``V3_0`` (``aave-v3-core``): close factor 50% of *this reserve's* debt while
  ``HF > 0.95``, else 100%; half-up rounding; residual debt stays on the account.
* ``V3_3`` (``aave-v3-origin`` 3.3 … 3.4): the whole reserve debt is liquidatable unless
  this reserve's collateral and debt are both worth ``>= $2,000`` and ``HF > 0.95``, then
  at most 50% of the *total* debt (in base currency); the ``$1,000`` dust rule
  (``MustNotLeaveDust``); when the liquidation takes all the account's collateral value,
  the residual debt of every borrowed reserve is burned into ``reserve.deficit``.
  Half-up rounding.
* ``V3_7`` (3.5 … 3.7): as ``V3_3``, with debt valued rounding up, the health factor
  ``Σ(value·LT).wadDiv(debt) / 1e4`` and every liquidation rounding against the liquidator
  (``sizing.AaveRounding.V3_7``).

The amounts delegate to ``liquidation.sizing.aave_v3_liquidation_amounts`` (bit for bit);
the Aave v4 variant (``AaveV4Config``, ``liquidation_call_v4``) to
``sizing.liquidation_bonus`` and ``sizing.debt_to_target_health``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

from liqeng.errors import InvalidArgument, Refused
from liqeng.liquidation.base import Mechanism
from liqeng.liquidation.fixed_fee import FixedFee
from liqeng.liquidation.penalty import AaveV4Bonus, AdaptivePenalty, VolatilityScaling
from liqeng.liquidation.portion import CloseFactor, TargetHealth
from liqeng.liquidation.sizing import (
    AAVE_V3_CLOSE_FACTOR,
    AAVE_V3_MIN_LEFTOVER_BASE,
    AAVE_V4_DUST_LIQUIDATION_THRESHOLD,
    BPS,
    WAD,
    AaveRounding,
    DustMode,
    DustRule,
    MustNotLeaveDust,
    aave_v3_liquidation_amounts,
    debt_to_target_health,
    liquidation_bonus,
)
from liqeng.liquidation.waterfall import Waterfall
from liqeng.presets.base import Preset
from liqeng.units import RATE_SCALE, check_int, mul_div_down, mul_div_up

__all__ = [
    "CLOSE_FACTOR_HF_THRESHOLD",
    "DEFAULT_LIQUIDATION_CLOSE_FACTOR",
    "MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD",
    "MIN_LEFTOVER_BASE",
    "PRESET",
    "PRESET_V4",
    "AaveV4Config",
    "AaveVersion",
    "AccountData",
    "Holding",
    "LiquidationCall",
    "LiquidationCallV4",
    "Reserve",
    "account_data",
    "health_factor",
    "liquidation_call",
    "liquidation_call_v4",
    "preset",
    "preset_v4",
]

_UINT256_MAX: Final = 2**256 - 1

CLOSE_FACTOR_HF_THRESHOLD: Final = 95 * 10**16
"""50% close factor only while ``HF > 0.95e18``."""
DEFAULT_LIQUIDATION_CLOSE_FACTOR: Final = 5_000
"""50% in bps."""
MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD: Final = 2_000 * 10**8
"""v3.3+: below $2,000 of reserve collateral or debt the close factor is 100%."""
MIN_LEFTOVER_BASE: Final = AAVE_V3_MIN_LEFTOVER_BASE
"""v3.3+: $1,000, the least a partial liquidation may leave of debt and of collateral."""


def _amount(name: str, value: object) -> int:
    """A non-negative uint256 amount; ``InvalidArgument`` naming it otherwise."""
    return check_int(name, value, 0, _UINT256_MAX)


def _pmul_half(v: int, p: int) -> int:
    return (v * p + BPS // 2) // BPS


def _wad_div_half(a: int, b: int) -> int:
    return (a * WAD + b // 2) // b


# --- reserves ------------------------------------------------------------------------------


@dataclass(slots=True)
class Reserve:
    """One asset's Aave configuration and its oracle price.

    ``decimals`` in ``[0, 36]``; ``price`` in base currency (8 decimals for USD), ``> 0``;
    ``liquidation_threshold`` (LT) in ``[0, 10_000]`` bps (0: not collateral);
    ``liquidation_bonus`` in bps, ``>= 10_000`` (10_500 = +5%), with
    ``LT · bonus <= 100%`` as Aave's configurator requires; ``liquidation_protocol_fee``
    the share of the bonus to the treasury, in ``[0, 10_000]`` bps. ``deficit`` (v3.3+)
    is the debt burned without repayment, in this asset's base units: ``liquidation_call``
    adds to it. Everything else is read only."""

    symbol: str
    decimals: int
    price: int
    liquidation_threshold: int = 0
    liquidation_bonus: int = BPS
    liquidation_protocol_fee: int = 0
    deficit: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol:
            raise InvalidArgument(f"symbol={self.symbol!r} must be a non-empty string")
        check_int(f"{self.symbol} decimals", self.decimals, 0, 36)
        check_int(f"{self.symbol} price", self.price, 1, _UINT256_MAX)
        lt = check_int(f"{self.symbol} liquidation_threshold", self.liquidation_threshold, 0, BPS)
        bonus = check_int(f"{self.symbol} liquidation_bonus", self.liquidation_bonus, BPS, 10 * BPS)
        check_int(f"{self.symbol} liquidation_protocol_fee", self.liquidation_protocol_fee, 0, BPS)
        _amount(f"{self.symbol} deficit", self.deficit)
        if lt and _pmul_half(lt, bonus) > BPS:
            raise InvalidArgument(
                f"{self.symbol}: liquidation_threshold={lt} × liquidation_bonus={bonus} "
                f"exceeds 100%: a liquidation would seize more than the collateral backs"
            )

    @property
    def unit(self) -> int:
        return int(10**self.decimals)


Holding = tuple[Reserve, int]
"""``(reserve, amount)``: a collateral balance or a debt, in the reserve's base units."""


class AaveVersion(enum.Enum):
    """Which Aave v3 rules ``liquidation_call`` applies (module doc)."""

    V3_0 = "3.0"
    V3_3 = "3.3"
    V3_7 = "3.7"

    @property
    def rounding(self) -> AaveRounding:
        return AaveRounding.V3_7 if self is AaveVersion.V3_7 else AaveRounding.V3_0

    @property
    def origin(self) -> bool:
        """``True`` for 3.3+: position-size close factor, dust rule, deficit."""
        return self is not AaveVersion.V3_0


def _version(version: object) -> AaveVersion:
    if not isinstance(version, AaveVersion):
        raise InvalidArgument(f"version={version!r} must be an AaveVersion")
    return version


def _holdings(name: str, holdings: Sequence[Holding]) -> list[Holding]:
    out: list[Holding] = []
    for i, h in enumerate(holdings):
        if not isinstance(h, tuple) or len(h) != 2 or not isinstance(h[0], Reserve):
            raise InvalidArgument(f"{name}[{i}]={h!r} must be a (Reserve, amount) pair")
        out.append((h[0], _amount(f"{name}[{i}] {h[0].symbol} amount", h[1])))
    return out


def _collateral_base(reserve: Reserve, amount: int) -> int:
    return amount * reserve.price // reserve.unit


def _debt_base(reserve: Reserve, amount: int, version: AaveVersion) -> int:
    if version is AaveVersion.V3_7:
        return mul_div_up(amount, reserve.price, reserve.unit)
    return amount * reserve.price // reserve.unit


# --- health factor -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountData:
    """``GenericLogic.calculateUserAccountData``: totals in base currency, the average
    liquidation threshold (bps, floored) and the health factor (WAD; ``2**256 - 1`` with
    no debt)."""

    total_collateral_base: int
    total_debt_base: int
    avg_liquidation_threshold: int
    health_factor: int


def account_data(
    collateral: Sequence[Holding],
    debt: Sequence[Holding],
    version: AaveVersion = AaveVersion.V3_7,
) -> AccountData:
    """Totals and health factor of an account holding ``collateral`` and owing ``debt``.

    Collateral is valued ``floor(amount·price / unit)`` and counts only with ``LT > 0``;
    debt ``floor`` (3.0, 3.3) or ``ceil`` (3.7). With ``Σ = Σ value_i·LT_i``::

        3.0, 3.3:  HF = wadDiv(percentMul(total_collateral, floor(Σ / total_collateral)), debt)
        3.7:       HF = floor(wadDiv(Σ, debt) / 1e4)

    (``wadDiv`` and ``percentMul`` half-up.)
    """
    v = _version(version)
    coll = _holdings("collateral", collateral)
    debts = _holdings("debt", debt)
    total_c = weighted = 0
    for r, a in coll:
        if r.liquidation_threshold:
            value = _collateral_base(r, a)
            total_c += value
            weighted += value * r.liquidation_threshold
    total_d = sum(_debt_base(r, a, v) for r, a in debts)
    avg_lt = weighted // total_c if total_c else 0
    if total_d == 0:
        hf = _UINT256_MAX
    elif v is AaveVersion.V3_7:
        hf = _wad_div_half(weighted, total_d) // BPS
    else:
        hf = _wad_div_half(_pmul_half(total_c, avg_lt), total_d)
    return AccountData(total_c, total_d, avg_lt, hf)


def health_factor(
    collateral: Sequence[Holding],
    debt: Sequence[Holding],
    version: AaveVersion = AaveVersion.V3_7,
) -> int:
    """The health factor in WAD (``account_data``); liquidatable below ``10**18``."""
    return account_data(collateral, debt, version).health_factor


# --- liquidationCall -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiquidationCall:
    """One ``liquidationCall``: ``debt_repaid`` (debt asset) by the liquidator, who gets
    ``collateral_to_liquidator``; ``protocol_fee`` (collateral asset) to the treasury.
    ``max_liquidatable_debt`` is the close-factor cap; ``deficit`` the residual debt of the
    liquidated reserve burned into its ``deficit`` (v3.3+, collateral exhausted), and
    ``other_deficits`` those of the account's other borrowed reserves. ``debt_left`` and
    ``collateral_left`` are what the account still owes and holds in the two reserves."""

    debt_repaid: int
    collateral_to_liquidator: int
    protocol_fee: int
    health_factor: int
    max_liquidatable_debt: int
    deficit: int
    other_deficits: tuple[tuple[str, int], ...]
    debt_left: int
    collateral_left: int

    @property
    def collateral_seized(self) -> int:
        return self.collateral_to_liquidator + self.protocol_fee


def liquidation_call(
    collateral: Holding,
    debt: Holding,
    debt_to_cover: int | None = None,
    *,
    version: AaveVersion = AaveVersion.V3_7,
    other_collateral: Sequence[Holding] = (),
    other_debt: Sequence[Holding] = (),
) -> LiquidationCall:
    """``Pool.liquidationCall(collateralAsset, debtAsset, user, debtToCover, false)``.

    ``collateral`` and ``debt`` are the user's balance in the reserve seized and its debt in
    the reserve repaid; ``other_collateral`` / ``other_debt`` the rest of the account (they
    count in the health factor and, from 3.3, in the close factor and the bad-debt burn).
    ``debt_to_cover=None`` is ``type(uint256).max``.

    Refused (``Refused``, nothing changes) when ``HF >= 1`` (``aave/health-factor-not-below-
    threshold``), the debt is 0 or the collateral is 0 or not collateral. From 3.3 raises
    ``MustNotLeaveDust`` when a partial liquidation would leave less than $1,000 of debt
    or of collateral. On success, 3.3+ adds the burned residual debt to each reserve's
    ``deficit``.
    """
    v = _version(version)
    ((c_res, c_bal),) = _holdings("collateral", (collateral,))
    ((d_res, d_bal),) = _holdings("debt", (debt,))
    others_c = _holdings("other_collateral", other_collateral)
    others_d = _holdings("other_debt", other_debt)
    cover = _UINT256_MAX if debt_to_cover is None else _amount("debt_to_cover", debt_to_cover)
    data = account_data([(c_res, c_bal), *others_c], [(d_res, d_bal), *others_d], v)
    hf = data.health_factor
    if hf >= WAD:
        raise Refused("aave/health-factor-not-below-threshold", f"health_factor={hf} >= {WAD}")
    if d_bal == 0:
        raise Refused("aave/not-borrowed", f"debt in {d_res.symbol} is 0")
    if c_bal == 0 or c_res.liquidation_threshold == 0:
        raise Refused(
            "aave/collateral-cannot-be-liquidated",
            f"{c_res.symbol}: balance={c_bal}, liquidation_threshold={c_res.liquidation_threshold}",
        )
    if cover == 0:
        raise InvalidArgument("debt_to_cover=0 must be positive")

    # close factor
    if not v.origin:
        cf = DEFAULT_LIQUIDATION_CLOSE_FACTOR if hf > CLOSE_FACTOR_HF_THRESHOLD else BPS
        max_debt = _pmul_half(d_bal, cf)
    else:
        max_debt = d_bal
        debt_base = _debt_base(d_res, d_bal, v)
        if (
            _collateral_base(c_res, c_bal) >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
            and debt_base >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
            and hf > CLOSE_FACTOR_HF_THRESHOLD
        ):
            half_total = _pmul_half(data.total_debt_base, DEFAULT_LIQUIDATION_CLOSE_FACTOR)
            if debt_base > half_total:
                max_debt = half_total * d_res.unit // d_res.price

    out = aave_v3_liquidation_amounts(
        collateral_amount=c_bal,
        collateral_price=c_res.price,
        collateral_decimals=c_res.decimals,
        debt_amount=d_bal,
        debt_price=d_res.price,
        debt_decimals=d_res.decimals,
        liquidation_bonus_bps=c_res.liquidation_bonus,
        protocol_fee_bps=c_res.liquidation_protocol_fee,
        close_factor_bps=BPS,
        debt_to_cover=min(cover, max_debt),
        rounding=v.rounding,
    )
    seized = out.collateral_seized

    if v.origin and out.debt_repaid < d_bal and seized < c_bal:
        # 3.3 compares the collateral left before the fee is taken; 3.5+ after it
        taken = seized if v is AaveVersion.V3_7 else out.collateral_to_liquidator
        debt_left_base = _debt_base(d_res, d_bal - out.debt_repaid, v)
        coll_left_base = _collateral_base(c_res, c_bal - taken)
        for what, left in (("debt", debt_left_base), ("collateral", coll_left_base)):
            if left < MIN_LEFTOVER_BASE:
                raise MustNotLeaveDust(
                    f"MustNotLeaveDust: {what} remnant={left} < min_value={MIN_LEFTOVER_BASE}"
                )

    deficit = 0
    others: list[tuple[str, int]] = []
    if v.origin and data.total_collateral_base == _collateral_base(c_res, seized):
        deficit = d_bal - out.debt_repaid
        d_res.deficit += deficit
        for r, a in others_d:
            if a:
                r.deficit += a
                others.append((r.symbol, a))
    return LiquidationCall(
        out.debt_repaid,
        out.collateral_to_liquidator,
        out.protocol_fee,
        hf,
        max_debt,
        deficit,
        tuple(others),
        d_bal - out.debt_repaid - deficit,
        c_bal - seized,
    )


# --- Aave v4 -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AaveV4Config:
    """Aave v4's liquidation configuration (spoke) and one collateral's dynamic config.

    ``target_health_factor`` (WAD, ``>= 1e18``): sizing restores it;
    ``health_factor_for_max_bonus`` (WAD, ``< 1e18``): at or below it the bonus is maximal;
    ``liquidation_bonus_factor`` (bps): the minimum bonus is this share of the maximum's
    excess; ``collateral_factor`` (bps, ``> 0``); ``max_liquidation_bonus`` (bps,
    ``>= 10_000``, with ``max_bonus · CF < 100%``); ``liquidation_fee`` (bps of the bonus,
    to the protocol)."""

    target_health_factor: int
    health_factor_for_max_bonus: int
    liquidation_bonus_factor: int
    collateral_factor: int
    max_liquidation_bonus: int
    liquidation_fee: int = 0

    def __post_init__(self) -> None:
        check_int("target_health_factor", self.target_health_factor, WAD, _UINT256_MAX)
        check_int("health_factor_for_max_bonus", self.health_factor_for_max_bonus, 0, WAD - 1)
        check_int("liquidation_bonus_factor", self.liquidation_bonus_factor, 0, BPS)
        cf = check_int("collateral_factor", self.collateral_factor, 1, BPS - 1)
        bonus = check_int("max_liquidation_bonus", self.max_liquidation_bonus, BPS, 10 * BPS)
        check_int("liquidation_fee", self.liquidation_fee, 0, BPS)
        if mul_div_up(bonus, cf, BPS) >= BPS:
            raise InvalidArgument(
                f"max_liquidation_bonus={bonus} × collateral_factor={cf} must be below 100%"
            )

    def bonus(self, health_factor: int) -> int:
        """``calculateLiquidationBonus`` at ``health_factor`` (WAD), in bps."""
        return liquidation_bonus(
            health_factor,
            self.health_factor_for_max_bonus,
            self.liquidation_bonus_factor,
            self.max_liquidation_bonus,
        )

    def debt_to_target(
        self,
        total_debt_value: int,
        debt_price: int,
        bonus: int,
        health_factor: int,
        debt_decimals: int = 0,
    ) -> int:
        """``_calculateDebtToTargetHealthFactor``: debt (debt-asset units, scaled as
        ``total_debt_value`` is) to repay to restore ``target_health_factor``, rounded up;
        ``total_debt_value`` in 26-decimal value units, ``debt_price`` 8 decimals."""
        return debt_to_target_health(
            total_debt_value,
            debt_price,
            self.collateral_factor,
            bonus,
            health_factor,
            self.target_health_factor,
            debt_decimals,
        )


def _value26(reserve: Reserve, amount: int, up: bool) -> int:
    """``amount`` in 26-decimal value units (price·1e18)."""
    f = mul_div_up if up else mul_div_down
    return f(amount, reserve.price * WAD, reserve.unit)


@dataclass(frozen=True, slots=True)
class LiquidationCallV4:
    """One Aave v4 liquidation: ``debt_repaid``, ``collateral_to_liquidator``,
    ``protocol_fee`` (collateral), the ``bonus`` (bps) and ``health_factor`` used, and
    ``deficit``: the debt left when the collateral is exhausted."""

    debt_repaid: int
    collateral_to_liquidator: int
    protocol_fee: int
    bonus: int
    health_factor: int
    deficit: int

    @property
    def collateral_seized(self) -> int:
        return self.collateral_to_liquidator + self.protocol_fee


def liquidation_call_v4(
    collateral: Holding,
    debt: Holding,
    debt_to_cover: int | None,
    config: AaveV4Config,
    *,
    health_factor: int | None = None,
    total_debt_value: int | None = None,
) -> LiquidationCallV4:
    """Aave v4 ``LiquidationLogic._calculateLiquidationAmounts`` for one collateral and
    one debt reserve (no premium debt)::

        bonus   = config.bonus(HF)
        debt    = min(debt_balance, debt_to_cover, debt_to_target)
                  (all the debt if the rest is worth < $1,000)
        coll    = floor(debt·debt_price·coll_unit·bonus / (debt_unit·coll_price·BPS))
        if coll > balance or (the rest of the collateral is worth < $1,000 and debt is
        not all the debt): coll = balance, debt = ceil(coll·coll_price·debt_unit·BPS /
                                                       (debt_price·coll_unit·bonus))
        MustNotLeaveDust if debt_to_cover < debt
        fee     = floor(coll·liquidation_fee·(bonus - BPS) / (bonus·BPS))

    ``health_factor`` defaults to ``floor(coll_value·CF·WAD / (BPS·debt_value))`` and
    ``total_debt_value`` to the debt's value (26 decimals, rounded up): pass Aave's own
    for a multi-reserve account. ``debt_to_cover=None`` is ``type(uint256).max``.
    """
    if not isinstance(config, AaveV4Config):
        raise InvalidArgument(f"config={config!r} must be an AaveV4Config")
    ((c_res, c_bal),) = _holdings("collateral", (collateral,))
    ((d_res, d_bal),) = _holdings("debt", (debt,))
    cover = _UINT256_MAX if debt_to_cover is None else _amount("debt_to_cover", debt_to_cover)
    if cover == 0:
        raise InvalidArgument("debt_to_cover=0 must be positive")
    if c_bal == 0 or d_bal == 0:
        raise Refused(
            "aave/nothing-to-liquidate", f"collateral={c_bal}, debt={d_bal} must be positive"
        )
    debt_value = (
        _value26(d_res, d_bal, True)
        if total_debt_value is None
        else _amount("total_debt_value", total_debt_value)
    )
    if health_factor is None:
        weighted = _value26(c_res, c_bal, False) * config.collateral_factor
        hf = mul_div_down(weighted, WAD, BPS * debt_value)
    else:
        hf = _amount("health_factor", health_factor)
    if hf >= WAD:
        raise Refused("aave/health-factor-not-below-threshold", f"health_factor={hf} >= {WAD}")
    bonus = config.bonus(hf)
    cp, cu, dp, du = c_res.price, c_res.unit, d_res.price, d_res.unit

    debt_amt = min(d_bal, cover, config.debt_to_target(debt_value, dp, bonus, hf, d_res.decimals))
    if debt_amt < d_bal and _value26(d_res, d_bal - debt_amt, False) < (
        AAVE_V4_DUST_LIQUIDATION_THRESHOLD
    ):
        debt_amt = d_bal
    coll = mul_div_down(debt_amt, dp * cu * bonus, du * cp * BPS)
    coll_dust = coll < c_bal and _value26(c_res, c_bal - coll, False) < (
        AAVE_V4_DUST_LIQUIDATION_THRESHOLD
    )
    if coll > c_bal or (coll_dust and debt_amt < d_bal):
        coll = c_bal
        debt_amt = mul_div_up(coll, cp * du * BPS, dp * cu * bonus)
    if cover < debt_amt:
        raise MustNotLeaveDust(
            f"MustNotLeaveDust: debt_to_cover={cover} < debt to liquidate={debt_amt}"
        )
    fee = mul_div_down(coll, config.liquidation_fee * (bonus - BPS), bonus * BPS)
    deficit = d_bal - debt_amt if coll == c_bal and debt_amt < d_bal else 0
    return LiquidationCallV4(debt_amt, coll - fee, fee, bonus, hf, deficit)


# --- presets -------------------------------------------------------------------------------

_QUOTE_DUST: Final = 1_000 * 10**6
"""$1,000 in a 6-decimal USD quote (the quickstart's USDC)."""


def _rate(bps: int) -> int:
    return bps * (RATE_SCALE // BPS)


def preset(
    liquidation_bonus: int = 10_500,
    liquidation_protocol_fee: int = 1_000,
    dust_min_value: int = _QUOTE_DUST,
) -> Preset:
    """The ``aave`` preset: liqeng's ``FixedFee`` as Aave v3.3+ configures it.

    Penalty ``bonus - 100%`` of the notional closed; the liquidator (keeper) gets the
    bonus less the protocol's share (``liquidation_protocol_fee`` bps of it, to the fee
    sink), the insurance fund none of it; close factor 50% above ``HF 0.95`` and 100% at
    or below (``AAVE_V3_CLOSE_FACTOR``); a remnant below ``dust_min_value`` (quote base
    units) is taken whole (what a keeper passing ``debtToCover = all`` does). Bad debt is
    covered by the insurance fund (standing for Umbrella, which covers reserve deficits)
    and the rest is booked as uncovered bad debt (the reserve deficit)."""
    bonus = check_int("liquidation_bonus", liquidation_bonus, BPS, 2 * BPS)
    fee_share = check_int("liquidation_protocol_fee", liquidation_protocol_fee, 0, BPS)
    dust = DustRule(check_int("dust_min_value", dust_min_value, 0), DustMode.TAKE_ALL)
    rate = _rate(bonus - BPS)
    protocol = _rate(fee_share)

    def build() -> Mechanism:
        return FixedFee(
            penalty_rate=rate,
            keeper_share=RATE_SCALE - protocol,
            protocol_share=protocol,
            name="aave",
            waterfall=Waterfall(("insurance_fund",)),
            sizing=CloseFactor(AAVE_V3_CLOSE_FACTOR),
            dust=dust,
        )

    build()  # refuses a bad configuration now, not at the first liquidation
    return Preset(
        name="aave",
        protocol="Aave v3.3",
        mechanism=build,
        reproduces=("AAVE-1", "AAVE-2", "AAVE-3", "AAVE-4", "AAVE-5"),
        simplifies=(
            "one fixed bonus on the notional closed instead of per-collateral bonuses on "
            "the debt repaid; the close factor by health only (no $2,000 position-size "
            "rule) and dust taken whole instead of reverting; liquidation_call reproduces "
            "Aave bit for bit"
        ),
    )


def preset_v4(
    config: AaveV4Config | None = None,
    dust_min_value: int = _QUOTE_DUST,
) -> Preset:
    """The ``aave_v4`` preset: ``FixedFee`` with Aave v4's variable bonus
    (``AaveV4Bonus``, no volatility scaling) and ``TargetHealth`` sizing at the config's
    target; keeper and protocol split the bonus as ``liquidation_fee`` says; dust taken
    whole. Default config: target HF 1.05, max bonus 5% at HF <= 0.95, minimum bonus half
    of it, collateral factor 80%, protocol fee 10% of the bonus."""
    cfg = (
        AaveV4Config(105 * 10**16, 95 * 10**16, 5_000, 8_000, 10_500, 1_000)
        if config is None
        else config
    )
    if not isinstance(cfg, AaveV4Config):
        raise InvalidArgument(f"config={cfg!r} must be an AaveV4Config")
    dust = DustRule(check_int("dust_min_value", dust_min_value, 0), DustMode.TAKE_ALL)
    protocol = _rate(cfg.liquidation_fee)
    bonus = AaveV4Bonus(
        cfg.health_factor_for_max_bonus, cfg.liquidation_bonus_factor, cfg.max_liquidation_bonus
    )
    penalty = AdaptivePenalty(
        bonus,
        VolatilityScaling(1.0, Fraction(0), Fraction(1), Fraction(1)),  # factor 1: no vol
        0,
        _rate(cfg.max_liquidation_bonus - BPS),
    )
    target = Fraction(cfg.target_health_factor, WAD)

    def build() -> Mechanism:
        return FixedFee(
            keeper_share=RATE_SCALE - protocol,
            protocol_share=protocol,
            name="aave_v4",
            waterfall=Waterfall(("insurance_fund",)),
            sizing=TargetHealth(target),
            dust=dust,
            penalty=penalty,
        )

    build()
    return Preset(
        name="aave_v4",
        protocol="Aave v4",
        mechanism=build,
        reproduces=("AAVE4-1", "AAVE4-2", "AAVE4-3", "AAVE4-4", "AAVE4-5", "AAVE4-6"),
        simplifies=(
            "the bonus reads liqeng's health (equity / maintenance margin) in place of "
            "Aave's collateral-factor health factor, and applies to the notional closed; "
            "liquidation_call_v4 reproduces Aave v4's amounts for one reserve pair"
        ),
    )


PRESET: Final = preset()
PRESET_V4: Final = preset_v4()
