"""dYdX v4 (``dydxprotocol/v4-chain``, ``x/clob/keeper/liquidations.go``,
``deleveraging.go``; anchors.md §2.6): its liquidation vocabulary, exact, and ``PRESET``.

Words (all money in integer quote quantums, USDC has 6 decimals; ``ppm`` = parts per
million; ``Fraction`` where dYdX uses ``big.Rat``):

* ``TNC`` total net collateral, ``TMMR`` total maintenance margin requirement; a subaccount
  is liquidatable iff ``TMMR > 0 and TNC < TMMR`` (``is_liquidatable``).
* ``PNNV``, ``PMMR``, ``PS``: a position's net notional value, maintenance margin and size.
* Adjusted bankruptcy rating ``ABR = clamp(BA·(1 - TNC/TMMR), 0, 1)``, ``BA`` the
  bankruptcy adjustment (``>= 1``), ``SMMR`` the spread to maintenance margin ratio.
* Fillable price ``(PNNV - ABR·SMMR·PMMR) / PS`` (``fillable_price``), i.e.
  ``P·(1 - SMMR·MMF·ABR)`` for one position at oracle price ``P``: the limit price of the
  protocol's IOC liquidation order.
* Bankruptcy price, as the quote a close of ``delta`` must reach: ``-DNNV -
  floor(TNC·|DMMR| / TMMR)`` (``bankruptcy_quote``; the division floors, so the result rounds
  toward ``+∞`` and a fill there never needs the insurance fund).
* Insurance-fund delta ``Δ = quote - bankruptcy``: ``Δ <= 0`` is paid by the fund (only if
  ``balance + Δ >= 0``), ``Δ > 0`` is capped at the liquidation fee
  ``floor(|quote|·max_liquidation_fee_ppm / 1e6)`` (``insurance_fund_delta``).
* Per-block limits: a position may lose ``max(min(min_position_notional_liquidated,
  |PNNV|), |PNNV|·max_position_portion_liquidated_ppm)`` of notional per block, a subaccount
  ``max_notional_liquidated`` and ``max_quantums_insurance_lost`` (``position_block_limits``,
  ``liquidatable_notional``, ``insurance_lost_room``).
* Deleveraging, the last stage: a subaccount with ``TNC < 0`` (``must_deleverage``) is
  offset at its bankruptcy price against opposite positions iterated from a pseudo-random
  start (``deleveraging_order``, ``waterfall.adl_ranking_dydx``).
* The isolated-market liquidation price from dYdX's docs,
  ``p' = (e - s·p) / (|s|·MMF - s)`` (``isolated_liquidation_price``).

``liquidate_position`` strings these together for a subaccount holding one perpetual, the
setting of anchors.md §3.8 (DYDX-10..13).

``PRESET`` is liqeng's ``FixedFee``: it closes the whole account to the keeper at the oracle
price with the liquidation fee ``ceil(1.5%·notional)`` capped by what is left, ``min(fee,
equity)``, which is dYdX's rule ``min(|quote|·fee_ppm, Δ)`` for a fill at the oracle price
(there ``Δ = TNC``); all of it goes to the insurance fund; bad debt is paid by the insurance
fund, then by deleveraging (dYdX order); ``limits`` are genesis's per-block notional and
insurance-fund-loss caps. See docs/presets/dydx.md for what it simplifies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

from liqeng.errors import InvalidArgument
from liqeng.liquidation.base import Mechanism
from liqeng.liquidation.fixed_fee import FixedFee
from liqeng.liquidation.limits import Limits
from liqeng.liquidation.portion import CloseAll
from liqeng.liquidation.waterfall import AdlCandidate, Waterfall, adl_ranking_dydx
from liqeng.presets.base import Preset
from liqeng.units import RATE_SCALE, check_int

__all__ = [
    "BLOCK_S",
    "GENESIS",
    "PPM",
    "PRESET",
    "QUOTE_DECIMALS",
    "LiquidationsConfig",
    "PositionLiquidation",
    "adjusted_bankruptcy_rating",
    "bankruptcy_quote",
    "deleveraging_order",
    "fillable_price",
    "insurance_fund_delta",
    "insurance_lost_room",
    "is_liquidatable",
    "is_valid_insurance_fund_delta",
    "isolated_liquidation_price",
    "limits",
    "liquidatable_notional",
    "liquidate_position",
    "max_liquidation_fee",
    "mechanism",
    "must_deleverage",
    "position_block_limits",
]

PPM: Final = 1_000_000
QUOTE_DECIMALS: Final = 6
"""USDC: one dollar is ``10**6`` quote quantums."""
BLOCK_S: Final = 1
"""dYdX v4 blocks come about once a second; ``limits`` counts per-block caps over 1 s."""
_USD: Final = 10**QUOTE_DECIMALS
_UINT64_MAX: Final = 2**64 - 1
_UINT32_MAX: Final = 2**32 - 1

Number = int | Fraction


def _exact(name: str, value: object) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, Fraction)):
        raise InvalidArgument(f"{name}={value!r} must be an int or Fraction, not a float")
    return Fraction(value)


@dataclass(frozen=True, slots=True)
class LiquidationsConfig:
    """dYdX's ``LiquidationsConfig`` (``proto/dydxprotocol/clob/liquidations_config.proto``),
    field for field; amounts in quote quantums. The defaults are ``testing/genesis.sh``:
    fee 1.5%, ``BA`` 1, ``SMMR`` 1.5, min $1,000 and 10% per position per block, $100,000
    notional and $1,000,000 insurance loss per subaccount per block (live values are set by
    governance). Validated as ``LiquidationsConfig.Validate``: ``0 < fee <= 1e6`` ppm,
    ``BA >= 1e6``, ``SMMR > 0``, ``0 < portion <= 1e6``, both subaccount caps ``> 0``."""

    max_liquidation_fee_ppm: int = 15_000
    bankruptcy_adjustment_ppm: int = PPM
    spread_to_maintenance_margin_ratio_ppm: int = 1_500_000
    min_position_notional_liquidated: int = 1_000 * _USD
    max_position_portion_liquidated_ppm: int = 100_000
    max_notional_liquidated: int = 100_000 * _USD
    max_quantums_insurance_lost: int = 1_000_000 * _USD

    def __post_init__(self) -> None:
        check_int("max_liquidation_fee_ppm", self.max_liquidation_fee_ppm, 1, PPM)
        check_int("bankruptcy_adjustment_ppm", self.bankruptcy_adjustment_ppm, PPM, _UINT32_MAX)
        check_int(
            "spread_to_maintenance_margin_ratio_ppm",
            self.spread_to_maintenance_margin_ratio_ppm,
            1,
            _UINT32_MAX,
        )
        check_int(
            "min_position_notional_liquidated",
            self.min_position_notional_liquidated,
            0,
            _UINT64_MAX,
        )
        check_int(
            "max_position_portion_liquidated_ppm", self.max_position_portion_liquidated_ppm, 1, PPM
        )
        check_int("max_notional_liquidated", self.max_notional_liquidated, 1, _UINT64_MAX)
        check_int("max_quantums_insurance_lost", self.max_quantums_insurance_lost, 1, _UINT64_MAX)

    @property
    def ba(self) -> Fraction:
        """``BA`` as a number (1 = 1e6 ppm)."""
        return Fraction(self.bankruptcy_adjustment_ppm, PPM)

    @property
    def smmr(self) -> Fraction:
        """``SMMR`` as a number (1.5 = 1.5e6 ppm)."""
        return Fraction(self.spread_to_maintenance_margin_ratio_ppm, PPM)


GENESIS: Final = LiquidationsConfig()


def _config(config: object) -> LiquidationsConfig:
    if not isinstance(config, LiquidationsConfig):
        raise InvalidArgument(f"config={config!r} must be a LiquidationsConfig")
    return config


def _tmmr(tmmr: object) -> int:
    t = check_int("tmmr", tmmr)
    if t <= 0:
        raise InvalidArgument(f"tmmr={t} must be > 0 (a subaccount with no requirement)")
    return t


def is_liquidatable(tnc: int, tmmr: int) -> bool:
    """``TMMR > 0 and TMMR > TNC`` (``lib/margin/risk.go IsLiquidatable``)."""
    return check_int("tmmr", tmmr) > 0 and tmmr > check_int("tnc", tnc)


def adjusted_bankruptcy_rating(
    tnc: int, tmmr: int, config: LiquidationsConfig = GENESIS
) -> Fraction:
    """``ABR = clamp(BA·(1 - TNC/TMMR), 0, 1)``, exact. ``TMMR > 0``."""
    c = _config(config)
    t = _tmmr(tmmr)
    abr = c.ba * (1 - Fraction(check_int("tnc", tnc), t))
    return min(max(abr, Fraction(0)), Fraction(1))


def fillable_price(
    pnnv: int,
    pmmr: int,
    ps: Number,
    tnc: int,
    tmmr: int,
    config: LiquidationsConfig = GENESIS,
) -> Fraction:
    """``(PNNV - ABR·SMMR·PMMR) / PS`` (``GetFillablePrice``), exact: quote quantums per
    unit of ``ps``. ``PNNV`` and ``PS`` share a sign (long: the price is below the oracle;
    short: above); ``PMMR >= 0``."""
    c = _config(config)
    size = _exact("ps", ps)
    value = check_int("pnnv", pnnv)
    if size == 0:
        raise InvalidArgument("ps=0: no position to liquidate")
    if value != 0 and (value > 0) != (size > 0):
        raise InvalidArgument(f"pnnv={value} and ps={size} must share a sign")
    spread = adjusted_bankruptcy_rating(tnc, tmmr, c) * c.smmr * check_int("pmmr", pmmr, 0)
    price = (value - spread) / size
    if price < 0:
        raise InvalidArgument(f"fillable price={price} is negative (pmmr={pmmr} too large)")
    return price


def bankruptcy_quote(dnnv: int, dmmr: int, tnc: int, tmmr: int) -> int:
    """``-DNNV - floor(TNC·|DMMR| / TMMR)`` (``GetBankruptcyPriceInQuoteQuantums``): the
    signed quote a close changing the position's notional by ``DNNV`` (and its requirement
    by ``DMMR <= 0``) must realise so the account ends with nothing; positive when closing a
    long (selling), negative when closing a short (buying)."""
    d = check_int("dmmr", dmmr)
    if d > 0:
        raise InvalidArgument(f"dmmr={d} must be <= 0: a close never raises the requirement")
    return -check_int("dnnv", dnnv) - (check_int("tnc", tnc) * -d) // _tmmr(tmmr)


def max_liquidation_fee(quote: int, config: LiquidationsConfig = GENESIS) -> int:
    """``floor(|quote|·max_liquidation_fee_ppm / 1e6)`` (``BigIntMulPpm`` rounds down)."""
    return abs(check_int("quote", quote)) * _config(config).max_liquidation_fee_ppm // PPM


def insurance_fund_delta(quote: int, bankruptcy: int, config: LiquidationsConfig = GENESIS) -> int:
    """``GetLiquidationInsuranceFundDelta``: ``Δ = quote - bankruptcy``; ``Δ <= 0`` is
    returned as is (the fund pays ``-Δ``); otherwise the fee the fund receives,
    ``min(max_liquidation_fee(quote), Δ)``. The user keeps ``Δ - fee``."""
    delta = check_int("quote", quote) - check_int("bankruptcy", bankruptcy)
    if delta <= 0:
        return delta
    return min(max_liquidation_fee(quote, config), delta)


def is_valid_insurance_fund_delta(delta: int, balance: int) -> bool:
    """``IsValidInsuranceFundDelta``: a fee is always valid; a payout needs
    ``balance + delta >= 0``."""
    d = check_int("delta", delta)
    return d >= 0 or check_int("balance", balance, 0) + d >= 0


def position_block_limits(
    position_notional: int, config: LiquidationsConfig = GENESIS
) -> tuple[int, int]:
    """``GetMaxAndMinPositionNotionalLiquidatable``: ``(min, max)`` notional of a position
    of ``|PNNV| = position_notional`` one block may liquidate: ``min =
    min(min_position_notional_liquidated, |PNNV|)``, ``max = max(min,
    floor(|PNNV|·max_position_portion_liquidated_ppm / 1e6))``."""
    c = _config(config)
    n = check_int("position_notional", position_notional, 0)
    low = min(c.min_position_notional_liquidated, n)
    return low, max(low, n * c.max_position_portion_liquidated_ppm // PPM)


def liquidatable_notional(
    position_notional: int,
    notional_liquidated: int = 0,
    config: LiquidationsConfig = GENESIS,
) -> int:
    """The most notional of the position one liquidation may close in this block:
    ``min(position max, max_notional_liquidated - notional_liquidated)``, the subaccount
    having had ``notional_liquidated`` liquidated earlier in the block
    (``GetLiquidatablePositionSizeDelta`` before rounding to the step size)."""
    c = _config(config)
    done = check_int("notional_liquidated", notional_liquidated, 0, c.max_notional_liquidated)
    return min(position_block_limits(position_notional, c)[1], c.max_notional_liquidated - done)


def insurance_lost_room(insurance_lost: int = 0, config: LiquidationsConfig = GENESIS) -> int:
    """``GetSubaccountMaxInsuranceLost``: what the insurance fund may still pay for this
    subaccount in this block."""
    c = _config(config)
    lost = check_int("insurance_lost", insurance_lost, 0, c.max_quantums_insurance_lost)
    return c.max_quantums_insurance_lost - lost


def must_deleverage(tnc: int) -> bool:
    """Deleveraging starts for a subaccount with negative ``TNC`` (at the bankruptcy
    price; final-settlement markets deleverage at the oracle price, not modelled here)."""
    return check_int("tnc", tnc) < 0


def deleveraging_order(
    candidates: Sequence[AdlCandidate], losing_side: int, start: int
) -> tuple[AdlCandidate, ...]:
    """The offsetting subaccounts in the order ``MaybeDeleverageSubaccount`` tries them:
    every opposite-side position, in account-id order rotated to the pseudo-random
    ``start`` (``waterfall.adl_ranking_dydx``; no profit/leverage ranking in v4)."""
    return adl_ranking_dydx(candidates, losing_side, start)


def isolated_liquidation_price(
    equity: Number, size: Number, price: Number, mmf: Number
) -> Fraction:
    """dYdX docs ("Liquidations"): the oracle price at which an isolated position of signed
    ``size`` with ``equity`` at oracle ``price`` reaches its maintenance margin,
    ``p' = (e - s·p) / (|s|·MMF - s)``, exact. ``0 < MMF < 1``, ``size != 0``."""
    e, s, p, m = (
        _exact(n, v)
        for n, v in (("equity", equity), ("size", size), ("price", price), ("mmf", mmf))
    )
    if not 0 < m < 1:
        raise InvalidArgument(f"mmf={m} must be in (0, 1)")
    if s == 0:
        raise InvalidArgument("size=0: no position, no liquidation price")
    if p <= 0:
        raise InvalidArgument(f"price={p} must be > 0")
    return (e - s * p) / (abs(s) * m - s)


@dataclass(frozen=True, slots=True)
class PositionLiquidation:
    """The liquidation of a subaccount holding one perpetual, closed whole
    (``liquidate_position``). Money in quote quantums; prices in quote quantums per whole
    token; ``insurance_fund_delta`` as dYdX signs it (``> 0`` a fee to the fund, ``< 0``
    paid by it); ``fee`` is its positive part, ``insurance_fund_payment`` its negative part
    negated; ``user_keeps`` is ``Δ - fee`` when ``Δ > 0``, else 0."""

    tnc: int
    tmmr: int
    abr: Fraction
    fillable_price: Fraction
    bankruptcy_quote: int
    bankruptcy_price: Fraction
    fill_price: Fraction
    quote: int
    insurance_fund_delta: int
    fee: int
    insurance_fund_payment: int
    user_keeps: int
    deleverage: bool


def liquidate_position(
    quote_balance: int,
    size: Number,
    oracle_price: int,
    mmf: Number,
    config: LiquidationsConfig = GENESIS,
    fill_price: Number | None = None,
) -> PositionLiquidation:
    """A subaccount with ``quote_balance`` quote quantums and one perpetual of signed
    ``size`` whole tokens at ``oracle_price`` (quote quantums per whole token), maintenance
    fraction ``mmf`` in ``(0, 1)``: ``PNNV = floor(size·P)``, ``PMMR = ceil(|size|·P·MMF)``
    (exact when whole, as in the vectors), ``TNC = quote_balance + PNNV``, ``TMMR = PMMR``.
    The whole position closes at ``fill_price`` (default: the fillable price, the IOC
    order's limit), receiving ``quote = sign(size)·floor(|size|·fill_price)``; the
    result carries every figure above. Refused if the subaccount is not liquidatable."""
    c = _config(config)
    s = _exact("size", size)
    if s == 0:
        raise InvalidArgument("size=0: no position to liquidate")
    p = check_int("oracle_price", oracle_price, 1)
    m = _exact("mmf", mmf)
    if not 0 < m < 1:
        raise InvalidArgument(f"mmf={m} must be in (0, 1)")
    pnnv = math.floor(s * p)
    pmmr = math.ceil(abs(s) * p * m)
    tnc = check_int("quote_balance", quote_balance) + pnnv
    tmmr = pmmr
    if not is_liquidatable(tnc, tmmr):
        raise InvalidArgument(f"tnc={tnc} >= tmmr={tmmr}: the subaccount is not liquidatable")
    fillable = fillable_price(pnnv, pmmr, s, tnc, tmmr, c)
    fill = fillable if fill_price is None else _exact("fill_price", fill_price)
    if fill <= 0:
        raise InvalidArgument(f"fill_price={fill} must be > 0")
    bankrupt = bankruptcy_quote(-pnnv, -pmmr, tnc, tmmr)
    quote = math.floor(abs(s) * fill) * (1 if s > 0 else -1)
    delta = insurance_fund_delta(quote, bankrupt, c)
    gap = quote - bankrupt
    return PositionLiquidation(
        tnc=tnc,
        tmmr=tmmr,
        abr=adjusted_bankruptcy_rating(tnc, tmmr, c),
        fillable_price=fillable,
        bankruptcy_quote=bankrupt,
        bankruptcy_price=Fraction(abs(bankrupt)) / abs(s),
        fill_price=fill,
        quote=quote,
        insurance_fund_delta=delta,
        fee=max(delta, 0),
        insurance_fund_payment=max(-delta, 0),
        user_keeps=gap - delta if gap > 0 else 0,
        deleverage=must_deleverage(tnc),
    )


def mechanism(config: LiquidationsConfig = GENESIS, fee_ppm: int | None = None) -> Mechanism:
    """liqeng's ``FixedFee`` as dYdX: close the account whole at the oracle price, fee
    ``fee_ppm`` (default ``config.max_liquidation_fee_ppm``; above it is refused, the cap
    is the protocol's) of the notional capped by the remaining equity, all of it to the
    insurance fund; bad debt to the insurance fund, then deleveraging in dYdX's order."""
    c = _config(config)
    fee = c.max_liquidation_fee_ppm if fee_ppm is None else check_int("fee_ppm", fee_ppm, 0)
    if fee > c.max_liquidation_fee_ppm:
        raise InvalidArgument(
            f"fee_ppm={fee} exceeds max_liquidation_fee_ppm={c.max_liquidation_fee_ppm}"
        )
    return FixedFee(
        penalty_rate=fee * (RATE_SCALE // PPM),
        keeper_share=0,
        protocol_share=0,
        name="dydx",
        waterfall=Waterfall(("insurance_fund", "adl")),
        sizing=CloseAll(),
        adl_ranking="dydx",
    )


def limits(config: LiquidationsConfig = GENESIS, block_s: int = BLOCK_S) -> Limits:
    """The engine's per-block limits from ``config``: at most ``max_notional_liquidated``
    closed and ``max_quantums_insurance_lost`` paid by the insurance fund per block of
    ``block_s`` seconds, per subaccount (``per_account``) as dYdX counts them."""
    c = _config(config)
    return Limits(
        block_s=block_s,
        max_notional_per_block=c.max_notional_liquidated,
        max_loss_per_block=c.max_quantums_insurance_lost,
        per_account=True,
    )


PRESET: Final = Preset(
    name="dydx",
    protocol="dYdX v4",
    mechanism=mechanism,
    reproduces=("DYDX-10", "DYDX-11", "DYDX-12", "DYDX-13"),
    simplifies=(
        "closes the whole account to the keeper at the oracle price (no order book, "
        "fillable-price spread or 10% position portion); deleveraging starts at index 0, "
        "not a random one"
    ),
    limits=limits(),
)
