"""Fixed-rate-fee liquidation: the keeper takes every position at mark, for a fee.

For a liquidatable account with cash ``c``:

0. its spot and LST collateral is sold to the keeper at its haircut value,
   ``collateral_value`` rounded down (the haircut is the keeper's discount): cash
   ``c0 = c + Σ value``;
1. each position moves to the keeper at its mark (perps at the index price; options at the
   Black-76 mark, rounded up when the account buys back a short, down when it sells a
   long); the fills realise cash ``c1 = c0 + sum(fill cash)``;
2. ``penalty = ceil(penalty_rate * notional)`` with ``notional = sum |size| * index``;
   the account pays ``fee = min(penalty, max(c1, 0))``; the keeper gets
   ``floor(fee * keeper_share)``, the fee sink ``floor(fee * protocol_share)``, the
   insurance fund the rest;
3. if ``c2 = c1 - fee < 0`` the shortfall is bad debt, passed down the ``waterfall``
   (``liquidation.waterfall``): the insurance fund covers up to its balance (with this
   liquidation's fee), then the backstop pool up to its balance; the remainder is booked
   against the bad-debt account (uncovered), a named ledger entry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

from liqeng.errors import InvalidArgument, Refused
from liqeng.ledger.model import PositionChange, Posting, Transaction
from liqeng.liquidation.base import LiquidationContext, LiquidationPlan
from liqeng.liquidation.settle import FUNDED, check_terms, settle
from liqeng.liquidation.waterfall import Waterfall
from liqeng.market.instruments import EuropeanOption
from liqeng.market.marks import exact_mark, mark_price
from liqeng.market.trading import fill
from liqeng.risk.margin import collateral_value
from liqeng.units import RATE_SCALE, mul_div_up

__all__ = ["FixedFee"]


@dataclass(frozen=True, slots=True)
class FixedFee:
    """Rates are parts per ``RATE_SCALE`` (5% = 5e7); ``keeper_share + protocol_share``
    of the penalty may not exceed the whole of it. ``waterfall`` orders the funded stages
    (``insurance_fund``, ``backstop_pool``) that cover bad debt."""

    penalty_rate: int = 50_000_000
    keeper_share: int = 500_000_000
    protocol_share: int = 0
    name: str = "fixed-fee"
    waterfall: Waterfall = field(default_factory=lambda: Waterfall(FUNDED))

    def __post_init__(self) -> None:
        check_terms(
            self.penalty_rate, self.keeper_share, self.protocol_share, self.waterfall, "fixed fee"
        )

    def plan(self, ctx: LiquidationContext) -> LiquidationPlan:
        if not ctx.risk.is_liquidatable:
            raise Refused(
                "liquidation/not-liquidatable",
                f"{ctx.account}: equity={ctx.risk.equity} >= "
                f"maintenance_margin={ctx.risk.maintenance_margin}",
            )
        if ctx.keeper == ctx.account:
            raise InvalidArgument(f"keeper={ctx.keeper!r} cannot liquidate itself")
        q = ctx.quote
        postings: list[Posting] = []
        changes: list[PositionChange] = []
        notional = sold = 0
        for spec in sorted(ctx.collateral, key=lambda c: c.asset.id) if ctx.collateral else ():
            balance = ctx.collateral[spec]
            if balance <= 0:
                continue
            value = collateral_value(
                spec,
                balance,
                ctx.market.index_prices[spec.underlying],
                ctx.market.exchange_rates.get(spec.asset.id),
            )
            sold += value
            postings += [
                Posting(ctx.account, spec.asset.units(-balance)),
                Posting(ctx.keeper, spec.asset.units(balance)),
                Posting(ctx.keeper, q.units(-value)),
                Posting(ctx.account, q.units(value)),
            ]
        for iid in sorted(ctx.positions):
            pos = ctx.positions[iid]
            inst = ctx.instruments[iid]
            index = ctx.market.index_prices[inst.underlying]
            sd = inst.size_decimals
            notional += mul_div_up(abs(pos.size), index, 10**sd)
            now, settlement = ctx.market.now_ts, ctx.market.settlements.get(iid)
            exact = exact_mark(inst, index, now, settlement)
            premium = isinstance(inst, EuropeanOption)
            if exact is not None:  # futures-style, or a settled option: an exact int
                price = exact
            else:
                vol = ctx.market.vol(inst.underlying)
                mark = Fraction(mark_price(inst, index, now, vol))
                price = math.ceil(mark) if pos.size < 0 else math.floor(mark)
            buyer, seller = (ctx.keeper, ctx.account) if pos.size > 0 else (ctx.account, ctx.keeper)
            f = fill(
                buyer=buyer,
                seller=seller,
                instrument=iid,
                size=abs(pos.size),
                price=price,
                size_decimals=sd,
                premium=premium,
                quote=q,
                buyer_position=ctx.keeper_positions.get(iid) if buyer == ctx.keeper else pos,
                seller_position=ctx.keeper_positions.get(iid) if seller == ctx.keeper else pos,
                settlement=ctx.system.settlement,
            )
            postings += f.postings
            changes += f.position_changes
        c1 = ctx.cash
        for p in postings:
            if p.account == ctx.account and p.amount.asset.id == q.id:
                c1 += p.amount.units
        penalty = mul_div_up(notional, self.penalty_rate, RATE_SCALE)
        fee = min(penalty, max(c1, 0))
        c2 = c1 - fee
        st = settle(ctx, fee, max(-c2, 0), self.keeper_share, self.protocol_share, self.waterfall)
        postings += st.postings
        keeper_reward, protocol_fee, insurance_fee = (
            st.keeper_reward,
            st.protocol_fee,
            st.insurance_fee,
        )
        covered, uncovered = st.covered, st.uncovered
        seized = max(ctx.cash + sold - max(c2, 0), 0)  # cash, and collateral at its sale value
        memo = {
            "account": ctx.account,
            "keeper": ctx.keeper,
            "mechanism": self.name,
            "equity": str(ctx.risk.equity),
            "maintenance_margin": str(ctx.risk.maintenance_margin),
            "notional": str(notional),
            "seized": str(seized),
            "penalty": str(fee),
            "keeper_reward": str(keeper_reward),
            "insurance_fee": str(insurance_fee),
            "protocol_fee": str(protocol_fee),
            "bad_debt_covered": str(covered),
            "bad_debt_uncovered": str(uncovered),
        }
        tx = Transaction(ctx.tx_id, "liquidation", tuple(postings), tuple(changes), memo)
        return LiquidationPlan(
            tx,
            notional,
            seized,
            fee,
            keeper_reward,
            insurance_fee,
            protocol_fee,
            covered,
            uncovered,
        )
