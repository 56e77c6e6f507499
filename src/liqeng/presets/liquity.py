"""Liquity v1 (``liquity/dev``, ``packages/contracts/contracts/``) as a liqeng preset.

Two parts, both built on liqeng's own pieces (docs/presets/liquity.md):

* **Vocabulary** (exact integer arithmetic, Liquity's units: 18-decimal ETH and LUSD, prices
  in LUSD per ETH with 18 decimals). ``liquidate(trove, price, sp_total, mode)`` is
  ``TroveManager._liquidateNormalMode`` / ``_liquidateRecoveryMode`` for one trove: gas
  compensation, the Stability Pool offset (``getMaxAmountToOffset``), collateral to the SP,
  the redistributed debt and collateral, Recovery Mode's capped offset
  (``_getCappedOffsetVals``) and the collateral surplus; it then runs the offset through
  ``liquidation.backstop.BackstopPool`` (Liquity's ``P``/``S``/scale/epoch, exact) for the
  per-unit figures (``LUSDLossPerUnitStaked``, the new ``P``, ``ETHGainPerUnitStaked``) and,
  if given one, the redistribution through ``backstop.Redistribution``. ``PriceFeed`` is
  the two-source ``fetchPrice`` (Chainlink then Tellor) on liqeng's oracle, configured by
  ``liqeng.oracle.presets.liquity``.
* **Engine preset** ``PRESET``: liqeng's ``backstop-pool`` mechanism
  (``liquidation.pool.BackstopPool``) configured as Liquity (``liquity_mechanism``).

Semantics (anchors.md §2.3 caveat), chosen explicitly by ``semantics``:

* ``"head"`` (default): the 2025 fix (PR #1044): the pool always keeps
  ``MIN_LUSD_IN_SP = 1 LUSD``, ``getMaxAmountToOffset = total − min(1e18, total)``; the pool
  never empties (vector LQTY-4).
* ``"v1"``: the immutable 2021 mainnet contracts: an offset may take the whole pool, whose
  epoch then increments (vector LQTY-4b).

Formulas (``coll``/``debt`` are the trove's *entire* collateral and debt, pending
redistribution rewards included; the debt includes the 200 LUSD gas reserve; all
divisions floor as in Solidity)::

    ICR = coll·price // debt                               (LiquityMath._computeCR)
    maxOffset = sp_total − min(keep, sp_total)             (keep = 1e18 head, 0 v1)
    gasComp(c) = c // 200 ;  LUSD gas compensation 200e18  (to the liquidator)

    Normal mode, ICR < MCR; Recovery mode, 100% < ICR < MCR:
        collToLiquidate = coll − gasComp(coll)
        debtToOffset = min(debt, maxOffset); collToSP = collToLiquidate·debtToOffset // debt
        debtToRedistribute = debt − debtToOffset; collToRedistribute = collToLiquidate − collToSP
    Recovery mode, ICR ≤ 100%: everything is redistributed (no offset)
    Recovery mode, MCR ≤ ICR < TCR and debt ≤ maxOffset (the capped offset):
        cappedColl = debt·MCR // price; gasComp(cappedColl)
        debtToOffset = debt; collToSP = cappedColl − gasComp(cappedColl)
        collSurplus = coll − cappedColl                    (claimable by the borrower)
    otherwise: not liquidated (all zero, ``liquidated=False``)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Final, Literal

from liqeng.errors import InvalidArgument
from liqeng.ids import AccountId, AssetId
from liqeng.liquidation import backstop as bs
from liqeng.liquidation.keeper import KeeperReward
from liqeng.liquidation.pool import BackstopPool
from liqeng.oracle.feed import Feed, MarketPrice
from liqeng.oracle.presets import liquity as liquity_feed_config
from liqeng.oracle.presets import liquity_status, scale_to_digits
from liqeng.oracle.reports import SourceReport
from liqeng.presets.base import Preset
from liqeng.units import RATE_SCALE, check_int

__all__ = [
    "CCR",
    "DECIMAL_PRECISION",
    "LUSD_GAS_COMPENSATION",
    "MCR",
    "MIN_LUSD_IN_SP",
    "MIN_NET_DEBT",
    "PERCENT_DIVISOR",
    "PRESET",
    "FetchedPrice",
    "Liquidation",
    "LiquidationValues",
    "Mode",
    "PriceFeed",
    "Semantics",
    "Trove",
    "capped_offset_values",
    "coll_gas_compensation",
    "compute_cr",
    "is_recovery_mode",
    "keep_for",
    "liquidate",
    "liquity_mechanism",
    "max_amount_to_offset",
]

DECIMAL_PRECISION: Final = 10**18
MCR: Final = 11 * 10**17  # 110%
CCR: Final = 15 * 10**17  # 150%
LUSD_GAS_COMPENSATION: Final = 200 * 10**18
MIN_NET_DEBT: Final = 1_800 * 10**18
PERCENT_DIVISOR: Final = 200  # 0.5%
MIN_LUSD_IN_SP: Final = 10**18  # HEAD (PR #1044)
_MAX_UINT: Final = 2**256 - 1
_ETH: Final = AssetId("eth/ETH")
_SP_DEPOSITOR: Final = AccountId("liquity/stability-pool")

Mode = Literal["normal", "recovery"]
Semantics = Literal["head", "v1"]


def keep_for(semantics: Semantics) -> int:
    """The LUSD the pool never offsets: ``MIN_LUSD_IN_SP`` (``"head"``) or 0 (``"v1"``)."""
    if semantics == "head":
        return MIN_LUSD_IN_SP
    if semantics == "v1":
        return 0
    raise InvalidArgument(f"semantics={semantics!r} must be 'head' or 'v1'")


@dataclass(frozen=True, slots=True)
class Trove:
    """A trove's entire collateral (wei) and entire debt (LUSD, 18 decimals, the 200 LUSD gas
    reserve and pending rewards included)."""

    coll: int
    debt: int

    def __post_init__(self) -> None:
        check_int("coll", self.coll, 0, _MAX_UINT)
        check_int("debt", self.debt, 1, _MAX_UINT)


def compute_cr(coll: int, debt: int, price: int) -> int:
    """``LiquityMath._computeCR``: ``coll·price // debt`` (``2**256 − 1`` if ``debt == 0``)."""
    check_int("coll", coll, 0, _MAX_UINT)
    check_int("debt", debt, 0, _MAX_UINT)
    check_int("price", price, 0, _MAX_UINT)
    return coll * price // debt if debt else _MAX_UINT


def is_recovery_mode(tcr: int, ccr: int = CCR) -> bool:
    """``TCR < CCR``."""
    return check_int("tcr", tcr, 0, _MAX_UINT) < check_int("ccr", ccr, 0, _MAX_UINT)


def coll_gas_compensation(coll: int) -> int:
    """``_getCollGasCompensation``: ``coll // PERCENT_DIVISOR`` (0.5%)."""
    return check_int("coll", coll, 0, _MAX_UINT) // PERCENT_DIVISOR


def max_amount_to_offset(sp_total: int, semantics: Semantics = "head") -> int:
    """``StabilityPool.getMaxAmountToOffset``: ``total − min(keep, total)``."""
    total = check_int("sp_total", sp_total, 0, _MAX_UINT)
    return total - min(keep_for(semantics), total)


@dataclass(frozen=True, slots=True)
class LiquidationValues:
    """Liquity's ``LiquidationValues`` for one trove (every field 18-decimal units)."""

    liquidated: bool
    entire_trove_debt: int
    entire_trove_coll: int
    coll_gas_compensation: int
    lusd_gas_compensation: int
    debt_to_offset: int
    coll_to_send_to_sp: int
    debt_to_redistribute: int
    coll_to_redistribute: int
    coll_surplus: int


_ZERO = LiquidationValues(False, 0, 0, 0, 0, 0, 0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Liquidation:
    """``values`` (what ``TroveManager`` computes), ``max_offset`` (the SP's
    ``getMaxAmountToOffset`` it used), ``offset`` (the SP's per-unit figures:
    ``loss_per_unit_staked`` = ``LUSDLossPerUnitStaked``, ``p`` the new ``P``,
    ``gain_per_unit_staked[eth/ETH]`` = ``ETHGainPerUnitStaked``, scale, epoch), ``pool``
    the SP after the offset and ``redistribution`` after the redistribution (``None`` if
    none was given)."""

    values: LiquidationValues
    max_offset: int
    offset: bs.OffsetResult
    pool: bs.BackstopPool
    redistribution: bs.Redistribution | None


def _offset_values(trove: Trove, max_offset: int) -> LiquidationValues:
    gas = coll_gas_compensation(trove.coll)
    to_liquidate = trove.coll - gas
    off, coll_sp = bs.offset_and_redistribution(trove.debt, to_liquidate, max_offset)
    return LiquidationValues(
        True,
        trove.debt,
        trove.coll,
        gas,
        LUSD_GAS_COMPENSATION,
        off,
        coll_sp,
        trove.debt - off,
        to_liquidate - coll_sp,
        0,
    )


def capped_offset_values(trove: Trove, price: int, mcr: int = MCR) -> LiquidationValues:
    """``_getCappedOffsetVals``: ``cappedColl = debt·MCR // price`` goes to the SP less its
    0.5% gas compensation, ``coll − cappedColl`` is the borrower's surplus."""
    check_int("price", price, 1, _MAX_UINT)
    capped = trove.debt * mcr // price
    if capped > trove.coll:
        raise InvalidArgument(
            f"cappedColl={capped} exceeds coll={trove.coll}: ICR < MCR, not a capped offset"
        )
    gas = coll_gas_compensation(capped)
    return LiquidationValues(
        True,
        trove.debt,
        trove.coll,
        gas,
        LUSD_GAS_COMPENSATION,
        trove.debt,
        capped - gas,
        0,
        0,
        trove.coll - capped,
    )


def _values(
    trove: Trove, price: int, max_offset: int, mode: Mode, tcr: int | None, mcr: int
) -> LiquidationValues:
    icr = compute_cr(trove.coll, trove.debt, price)
    if mode == "normal":
        return _offset_values(trove, max_offset) if icr < mcr else _ZERO
    if mode != "recovery":
        raise InvalidArgument(f"mode={mode!r} must be 'normal' or 'recovery'")
    if tcr is None:
        raise InvalidArgument("mode='recovery' needs tcr= (the system's total CR)")
    check_int("tcr", tcr, 0, _MAX_UINT)
    if icr <= DECIMAL_PRECISION:  # ICR <= 100%: pure redistribution
        gas = coll_gas_compensation(trove.coll)
        return LiquidationValues(
            True,
            trove.debt,
            trove.coll,
            gas,
            LUSD_GAS_COMPENSATION,
            0,
            0,
            trove.debt,
            trove.coll - gas,
            0,
        )
    if icr < mcr:
        return _offset_values(trove, max_offset)
    if icr < tcr and trove.debt <= max_offset:
        return capped_offset_values(trove, price, mcr)
    return _ZERO


def liquidate(
    trove: Trove,
    price: int,
    sp_total: int,
    mode: Mode = "normal",
    *,
    tcr: int | None = None,
    semantics: Semantics = "head",
    pool: bs.BackstopPool | None = None,
    redistribution: bs.Redistribution | None = None,
    mcr: int = MCR,
) -> Liquidation:
    """Liquidate ``trove`` at ``price`` (LUSD per ETH, 18 decimals) against a Stability Pool
    holding ``sp_total`` LUSD, in ``mode`` (``"recovery"`` needs ``tcr``; module doc).

    ``pool`` is the SP's state (``backstop.BackstopPool`` with ``total == sp_total`` and
    ``keep`` matching ``semantics``); by default a fresh pool (``P = 1e18``, no errors) with
    one deposit of ``sp_total``. ``redistribution`` (``backstop.Redistribution``), if given,
    receives the redistributed debt and collateral. ``mcr`` defaults to 110% and must be
    above 100%.
    """
    if not isinstance(trove, Trove):
        raise InvalidArgument(f"trove={trove!r} must be a Trove")
    check_int("price", price, 1, _MAX_UINT)
    check_int("sp_total", sp_total, 0, _MAX_UINT)
    check_int("mcr", mcr, 0, _MAX_UINT)
    if mcr <= DECIMAL_PRECISION:
        raise InvalidArgument(f"mcr={mcr} must be above 100% (1e18)")
    keep = keep_for(semantics)
    if pool is None:
        pool = bs.BackstopPool.new(keep=keep)
        if sp_total:
            pool, _ = pool.deposit(_SP_DEPOSITOR, sp_total)
    elif not isinstance(pool, bs.BackstopPool):
        raise InvalidArgument(f"pool={pool!r} must be a backstop.BackstopPool")
    elif pool.total != sp_total or pool.keep != keep:
        raise InvalidArgument(
            f"pool total={pool.total}, keep={pool.keep} differ from sp_total={sp_total}, "
            f"semantics={semantics!r} (keep={keep})"
        )
    max_offset = pool.max_offset()
    values = _values(trove, price, max_offset, mode, tcr, mcr)
    coll = {_ETH: values.coll_to_send_to_sp} if values.debt_to_offset else {}
    pool_after, offset = pool.offset(values.debt_to_offset, coll)
    red = redistribution
    if red is not None:
        if not isinstance(red, bs.Redistribution):
            raise InvalidArgument(f"redistribution={red!r} must be a backstop.Redistribution")
        red = red.redistribute(values.debt_to_redistribute, values.coll_to_redistribute)
    return Liquidation(values, max_offset, offset, pool_after, red)


# --- PriceFeed ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchedPrice:
    """``fetchPrice``'s answer: Liquity's ``status`` number (0..4) and the 18-decimal price
    (``lastGoodPrice`` when nothing is trustworthy), plus liqeng's full ``MarketPrice``."""

    status: int
    price: int | None
    market_price: MarketPrice


class PriceFeed:
    """Liquity's ``PriceFeed``: Chainlink primary, Tellor fallback, on liqeng's ``Feed``
    with ``oracle.presets.liquity`` (that module's table maps each rule). Answers are
    scaled to 18 decimals: Chainlink by its ``decimals``, Tellor from 6 decimals."""

    TELLOR_DIGITS: Final = 6

    def __init__(self, market: str = "ETH") -> None:
        self.market = market
        self.feed = Feed([liquity_feed_config(market)])

    def chainlink(self, answer: int, decimals: int, updated_at: int, now: int) -> None:
        """A Chainlink round: ``answer`` with ``decimals`` digits, updated at ``updated_at``."""
        self.feed.submit(
            SourceReport("chainlink", self.market, scale_to_digits(answer, decimals), updated_at),
            now,
        )

    def tellor(self, value: int, updated_at: int, now: int) -> None:
        """A Tellor value with 6 digits."""
        self.feed.submit(
            SourceReport(
                "tellor", self.market, scale_to_digits(value, self.TELLOR_DIGITS), updated_at
            ),
            now,
        )

    def fetch_price(self, now: int) -> FetchedPrice:
        """``fetchPrice()`` at ``now``: status and price."""
        mp = self.feed.update(now)[self.market]
        return FetchedPrice(liquity_status(mp), mp.price, mp)


# --- the engine preset -------------------------------------------------------------------


def liquity_mechanism(
    *,
    quote_decimals: int = 6,
    semantics: Semantics = "head",
    mcr: int = MCR,
    redistribute: bool = True,
    keeper_reward: KeeperReward | Mapping[str, int] | None = None,
) -> BackstopPool:
    """liqeng's ``backstop-pool`` configured as Liquity (docs/presets/liquity.md):

    * ``penalty_rate = MCR − 100%`` of the closed notional (10% at MCR 110%: Liquity's
      liquidation gain is the collateral above the debt, at most 10% since a trove is
      liquidated below 110%);
    * keeper = gas compensation: ``tip`` 200 whole quote tokens (``200·10**quote_decimals``)
      plus ``share`` = 0.5% of the collateral expressed as a share of that penalty
      (``0.5% / (MCR − 100%)``, 5% at MCR 110%);
    * ``keep`` = 1 whole quote token (``"head"``) or 0 (``"v1"``);
    * ``redistribute=True``: what the pool cannot offset is shared among the other users
      (eagerly, over quote balances; see ``liquidation.pool``)."""
    qd = check_int("quote_decimals", quote_decimals, 0, 36)
    check_int("mcr", mcr, 0, _MAX_UINT)
    if mcr <= DECIMAL_PRECISION or mcr > 2 * DECIMAL_PRECISION:
        raise InvalidArgument(f"mcr={mcr} must be in (100%, 200%] (1e18 = 100%)")
    penalty_rate = (mcr - DECIMAL_PRECISION) * RATE_SCALE // DECIMAL_PRECISION
    if keeper_reward is None:
        share = RATE_SCALE * DECIMAL_PRECISION // (PERCENT_DIVISOR * (mcr - DECIMAL_PRECISION))
        keeper_reward = KeeperReward(tip=200 * 10**qd, share=min(share, RATE_SCALE))
    return BackstopPool(
        penalty_rate=penalty_rate,
        keeper_reward=keeper_reward,
        keep=keep_for(semantics) * 10**qd // DECIMAL_PRECISION,
        redistribute=redistribute,
    )


PRESET: Final = Preset(
    name="liquity",
    protocol="Liquity v1",
    mechanism=partial(liquity_mechanism),
    reproduces=(
        "LQTY-4",
        "LQTY-4b",
        "LQTY-5",
        "LQTY-PF1",
        "LQTY-PF2",
        "LQTY-PF3",
        "LQTY-PF4",
        "LQTY-PF5",
        "LQTY-PF6",
        "LQTY-PF7",
        "LQTY-PF8",
    ),
    simplifies=(
        "the engine preset closes positions at the mark and charges a 10% penalty on the "
        "notional (Liquity: the collateral above the debt) with gas compensation as the "
        "keeper reward; redistribution is eager over quote balances, not pending on "
        "collateral stakes; Recovery Mode is in the vocabulary API only"
    ),
)
"""Liquity v1 in the engine: ``liquity_mechanism()`` (HEAD semantics, 6-decimal quote)."""
