"""Fixed-rate-fee liquidation: the keeper takes the positions at mark, for a fee.

For a liquidatable account with cash ``c``, a fraction ``f`` of it is closed (``sizing``,
``liquidation.portion``: all of it by default; a close factor; or just enough to restore a
target health; capped by the engine's throughput limit); each slice is ``trunc(x·f)`` of a
position or collateral balance, so below "every position" and "its collateral" mean those
slices:

0. its spot and LST collateral is sold to the keeper at its haircut value,
   ``collateral_value`` rounded down (the haircut is the keeper's discount): cash
   ``c0 = c + Σ value``;
1. each position moves to the keeper at its mark (perps at the index price; options at the
   Black-76 mark, rounded up when the account buys back a short, down when it sells a
   long); the fills realise cash ``c1 = c0 + sum(fill cash)``;
2. ``penalty = ceil(rate * notional)`` with ``notional = sum |size| * index`` of what is
   closed and ``rate`` the fixed ``penalty_rate`` or, with an ``AdaptivePenalty``, its rate
   at the account's health and the markets' realised and implied vol; the account pays
   ``fee = min(penalty, max(c1, 0))``; the keeper gets ``floor(fee * keeper_share)`` or,
   with a ``KeeperReward``, ``min(reward(penalty, gas), fee)`` (gas price and gas-token
   price clamped to ``max_gas_price`` / ``max_quote_per_gas``); the fee sink
   ``floor(rest * protocol_share)``, the insurance fund the rest;
3. if ``c2 = c1 - fee < 0`` the shortfall is bad debt, passed down the ``waterfall``
   (``liquidation.waterfall``): the insurance fund covers up to its balance (with this
   liquidation's fee), then the backstop pool up to its balance; the remainder is booked
   against the bad-debt account (uncovered), a named ledger entry, which the waterfall's
   terminal stages repay in the same transaction: ``adl`` (before the funded stages pay,
   the bankrupt perps close against ranked profitable opposite positions at their
   bankruptcy prices, ``loss.deleverage``) and ``socialised`` (a pro-rata haircut of the
   holders' quote balances, ``loss.socialised_loss``).

A partial close that would leave the account in debt (``c2 < 0``) closes it whole
instead. With ``legs="greedy"`` (and ``TargetHealth`` sizing) the legs to close are the
greeks-aware choice of ``legs.greedy_legs`` instead of a uniform slice, and the penalty
is its discount (``rate`` of an option's mark value, of a perp's notional).

``surcharge`` is what the engine adds to the maintenance margin so the keeper reward is
always collectable (at the highest penalty rate and gas price); a reward with a tip or gas
term needs a dust rule whose penalty covers it (``keeper.check_config``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from liqeng.errors import InvalidArgument, Refused
from liqeng.ids import InstrumentId
from liqeng.ledger.model import Position, PositionChange, Posting, Transaction
from liqeng.liquidation.base import LiquidationContext, LiquidationPlan
from liqeng.liquidation.keeper import KeeperReward, check_config
from liqeng.liquidation.legs import greedy_legs, uniform_slice
from liqeng.liquidation.loss import RANKINGS, deleverage, socialised_loss
from liqeng.liquidation.penalty import AdaptivePenalty
from liqeng.liquidation.portion import CloseAll, Sizing, TargetHealth, close_fraction
from liqeng.liquidation.settle import FUNDED, check_terms, settle
from liqeng.liquidation.sizing import DustRule
from liqeng.liquidation.surcharge import Surcharge
from liqeng.liquidation.waterfall import Waterfall
from liqeng.market.instruments import EuropeanOption
from liqeng.market.marks import exact_mark, mark_price
from liqeng.market.trading import fill
from liqeng.risk.margin import AccountRisk, collateral_value
from liqeng.units import RATE_SCALE, check_int, mul_div_up

__all__ = ["FixedFee"]


@dataclass(frozen=True, slots=True)
class FixedFee:
    """Rates are parts per ``RATE_SCALE`` (5% = 5e7); ``keeper_share + protocol_share``
    of the penalty may not exceed the whole of it. ``waterfall`` orders the funded stages
    (``insurance_fund``, ``backstop_pool``) that cover bad debt. ``penalty`` (adaptive)
    replaces ``penalty_rate``; ``keeper_reward`` replaces ``keeper_share``."""

    penalty_rate: int = 50_000_000
    keeper_share: int = 500_000_000
    protocol_share: int = 0
    name: str = "fixed-fee"
    waterfall: Waterfall = field(default_factory=lambda: Waterfall(FUNDED))
    sizing: Sizing = field(default_factory=CloseAll)
    dust: DustRule | None = None
    penalty: AdaptivePenalty | None = None
    keeper_reward: KeeperReward | None = None
    max_gas_price: int = 0
    max_quote_per_gas: int = 0
    adl_ranking: str = "hyperliquid"
    legs: str = "uniform"

    def __post_init__(self) -> None:
        check_terms(
            self.penalty_rate, self.keeper_share, self.protocol_share, self.waterfall, "fixed fee"
        )
        for attr, kind in (
            ("dust", DustRule),
            ("penalty", AdaptivePenalty),
            ("keeper_reward", KeeperReward),
        ):
            value = getattr(self, attr)
            if value is not None and not isinstance(value, kind):
                raise InvalidArgument(f"{attr}={value!r} must be a {kind.__name__} or None")
        close_fraction(self.sizing, _PROBE, 1, 0)  # refuses what is not a Sizing
        check_int("max_gas_price", self.max_gas_price, 0)
        check_int("max_quote_per_gas", self.max_quote_per_gas, 0)
        if self.legs not in ("uniform", "greedy"):
            raise InvalidArgument(f"legs={self.legs!r} must be 'uniform' or 'greedy'")
        if self.legs == "greedy" and not isinstance(self.sizing, TargetHealth):
            raise InvalidArgument(
                f"legs='greedy' needs sizing=TargetHealth(...), not {self.sizing}"
            )
        if self.adl_ranking not in RANKINGS:
            raise InvalidArgument(f"adl_ranking={self.adl_ranking!r} is not one of {RANKINGS}")
        reward = self.keeper_reward
        if reward is not None and (reward.tip or reward.gas_units):
            if self.dust is None:
                raise InvalidArgument(
                    f"keeper_reward with tip={reward.tip} and gas_units={reward.gas_units} "
                    "needs a dust rule: below some size no penalty pays it"
                )
            check_config(
                reward,
                self.min_rate,
                self.dust.min_value,
                self.max_gas_price,
                self.max_quote_per_gas,
            )

    @property
    def min_rate(self) -> int:
        """The lowest penalty rate this mechanism charges."""
        return self.penalty_rate if self.penalty is None else self.penalty.min_rate

    @property
    def max_rate(self) -> int:
        """The highest penalty rate this mechanism charges."""
        return self.penalty_rate if self.penalty is None else self.penalty.cap

    @property
    def surcharge(self) -> Surcharge | None:
        """The keeper reward reserved in the maintenance margin (``liquidation.surcharge``):
        ``fixed = reserved_requirement(0, max gas) + 1`` (tip and gas, and the one unit the
        penalty's ``ceil`` can add to the share) and ``rate = ceil(share·max_rate)``, so
        ``of(notional) >= reward`` at any rate, gas price and gas-token price up to the
        maxima; ``None`` without a ``keeper_reward``."""
        r = self.keeper_reward
        if r is None:
            return None
        fixed = r.reserved_requirement(0, self.max_gas_price, self.max_quote_per_gas) + 1
        return Surcharge(fixed, mul_div_up(r.share, self.max_rate, RATE_SCALE), r.cap)

    def plan(self, ctx: LiquidationContext) -> LiquidationPlan:
        if not ctx.risk.is_liquidatable:
            raise Refused(
                "liquidation/not-liquidatable",
                f"{ctx.account}: equity={ctx.risk.equity} >= "
                f"maintenance_margin={ctx.risk.maintenance_margin}",
            )
        if ctx.keeper == ctx.account:
            raise InvalidArgument(f"keeper={ctx.keeper!r} cannot liquidate itself")
        if self.penalty is None:
            rate = self.penalty_rate
        else:
            rate = self.penalty.rate(ctx.risk.health, ctx.realised_vol, ctx.implied_vol)
        if self.legs == "greedy" and ctx.max_notional is None and ctx.margin_model is not None:
            greedy = self._greedy(ctx, rate)
            if greedy is not None:
                return greedy
        f = Fraction(1)
        if not isinstance(self.sizing, CloseAll) or ctx.max_notional is not None:
            whole = sum(ctx.notional(iid, pos.size) for iid, pos in ctx.positions.items())
            fixed = 0 if self.surcharge is None else self.surcharge.fixed
            f = close_fraction(
                self.sizing, ctx.risk, whole, rate, self.dust, ctx.max_notional, fixed
            )
        if f < 1 and not uniform_slice(ctx.positions, f):
            if ctx.max_notional is not None:  # the limit allows less than one base unit
                raise Refused(
                    "liquidation/throttled",
                    f"{ctx.account}: max_notional={ctx.max_notional} closes nothing",
                )
            f = Fraction(1)
        if f < 1:
            # a target is a floor: round each slice up unless a limit caps the notional
            up = isinstance(self.sizing, TargetHealth) and ctx.max_notional is None
            partial = self._plan(ctx, f, rate, round_up=up)
            if partial is not None:
                return partial
        plan = self._plan(ctx, Fraction(1), rate)
        assert plan is not None
        return plan

    def _greedy(self, ctx: LiquidationContext, rate: int) -> LiquidationPlan | None:
        """The greeks-aware choice (``legs.greedy_legs``): the legs whose close releases
        the most requirement per unit of penalty, until the target health; the penalty is
        its discount (``rate`` of an option's mark value, of a perp's notional). ``None``
        when it cannot reach the target or would close everything: then a uniform slice."""
        assert isinstance(self.sizing, TargetHealth) and ctx.margin_model is not None
        cp = greedy_legs(
            ctx.positions,
            ctx.instruments,
            ctx.market,
            ctx.margin_model,
            rate,
            Fraction(self.sizing.target),
            cash=ctx.cash,
            models=ctx.margin_models,
            collateral=ctx.collateral,
        )
        whole = {iid: p.size for iid, p in ctx.positions.items()}
        if not cp.reached or not cp.closed or dict(cp.closed) == whole:
            return None
        return self._plan(ctx, Fraction(0), rate, dict(cp.closed), cp.discount)

    def _plan(
        self,
        ctx: LiquidationContext,
        f: Fraction,
        rate: int,
        chosen: dict[InstrumentId, int] | None = None,
        discount: int | None = None,
        round_up: bool = False,
    ) -> LiquidationPlan | None:
        """The plan closing ``f`` of the account (or the ``chosen`` sizes, for the
        penalty ``discount``), or ``None`` when a partial close would leave the account in
        debt."""
        q = ctx.quote
        postings: list[Posting] = []
        changes: list[PositionChange] = []
        notional = sold = 0
        if chosen is not None:
            f = Fraction(0)  # no collateral is sold
        for spec in sorted(ctx.collateral, key=lambda c: c.asset.id) if ctx.collateral else ():
            balance = ctx.collateral[spec] if f == 1 else _trunc(ctx.collateral[spec] * f)
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
        if chosen is not None:
            closed = chosen
        elif f == 1:
            closed = {iid: ctx.positions[iid].size for iid in sorted(ctx.positions)}
        elif round_up:
            closed = {
                iid: min(math.ceil(abs(p.size) * f), abs(p.size)) * (1 if p.size > 0 else -1)
                for iid, p in sorted(ctx.positions.items())
            }
        else:
            closed = uniform_slice(ctx.positions, f)
        notional = sum(ctx.notional(iid, size) for iid, size in closed.items())
        fills = [_to_keeper(ctx, iid, size, ctx.positions[iid]) for iid, size in closed.items()]
        c1 = _cash_after(ctx, postings, fills)
        penalty = mul_div_up(notional, rate, RATE_SCALE) if discount is None else discount
        fee = min(penalty, max(c1, 0))
        c2 = c1 - fee
        if f < 1 and c2 < 0:
            return None
        deleveraged = 0
        if c2 < 0 and "adl" in self.waterfall.stages:
            fills, deleveraged = self._deleverage(ctx, closed, fills, self._adl_loss(ctx, -c2))
            c2 += deleveraged  # the account was bankrupt: fee 0, and ADL paid this much in
        for fl in fills:
            postings += fl[0]
            changes += fl[1]
        reward = None
        if self.keeper_reward is not None:
            reward = self.keeper_reward.reward(
                penalty,
                min(ctx.gas_price, self.max_gas_price),
                min(ctx.quote_per_gas, self.max_quote_per_gas),
            )
        st = settle(
            ctx,
            fee,
            max(-c2, 0),
            self.keeper_share,
            self.protocol_share,
            self.waterfall,
            reward=reward,
        )
        postings += st.postings
        uncovered, socialised = st.uncovered, 0
        if uncovered and "socialised" in self.waterfall.stages and ctx.holders is not None:
            sl = socialised_loss(uncovered, ctx.holders(), ctx.system.bad_debt, q)
            postings += sl.postings
            uncovered, socialised = sl.uncovered, sl.covered
        seized = max(ctx.cash + sold - max(c2, 0), 0)  # cash, and collateral at its sale value
        memo = {
            "account": ctx.account,
            "keeper": ctx.keeper,
            "mechanism": self.name,
            "equity": str(ctx.risk.equity),
            "maintenance_margin": str(ctx.risk.maintenance_margin),
            "fraction": str(f) if chosen is None else "greedy",
            "penalty_rate": str(rate),
            "notional": str(notional),
            "seized": str(seized),
            "penalty": str(fee),
            "keeper_reward": str(st.keeper_reward),
            "insurance_fee": str(st.insurance_fee),
            "protocol_fee": str(st.protocol_fee),
            "bad_debt_covered": str(st.covered),
            "bad_debt_uncovered": str(uncovered),
        }
        if socialised or deleveraged:
            memo["bad_debt_socialised"] = str(socialised)
            memo["bad_debt_deleveraged"] = str(deleveraged)
        tx = Transaction(ctx.tx_id, "liquidation", tuple(postings), tuple(changes), memo)
        return LiquidationPlan(
            tx,
            notional,
            seized,
            fee,
            st.keeper_reward,
            st.insurance_fee,
            st.protocol_fee,
            st.covered,
            uncovered,
            socialised,
            deleveraged,
        )

    def _adl_loss(self, ctx: LiquidationContext, bad: int) -> int:
        """The part of ``bad`` the stages before ``adl`` leave to it: funded balances,
        then the holders' balances if ``socialised`` comes first."""
        left = bad
        for stage in self.waterfall.stages:
            if stage == "adl":
                break
            if stage == "insurance_fund":
                left -= min(left, max(ctx.insurance_fund_balance, 0))
            elif stage == "backstop_pool":
                left -= min(left, max(ctx.backstop_pool_balance, 0))
            elif stage == "socialised" and ctx.holders is not None:
                left -= min(left, sum(max(b, 0) for b in ctx.holders().values()))
        return left

    def _deleverage(
        self,
        ctx: LiquidationContext,
        closed: Mapping[InstrumentId, int],
        fills: list[_Fill],
        loss: int,
    ) -> tuple[list[_Fill], int]:
        """Cover ``loss`` by ADL (``loss.deleverage``): each perpetual or future, in id
        order, is closed first against ranked profitable opposite positions at their
        bankruptcy prices, the rest to the keeper at mark."""
        if loss == 0 or ctx.counterparties is None:
            return fills, 0
        out: list[_Fill] = []
        covered = 0
        for (iid, size), fl in zip(closed.items(), fills, strict=True):
            inst = ctx.instruments[iid]
            if loss == 0 or isinstance(inst, EuropeanOption):
                out.append(fl)
                continue
            pos = ctx.positions[iid]
            d = deleverage(
                loss,
                inst,
                (ctx.account, pos),
                ctx.counterparties(iid),
                _price(ctx, iid, size),
                inst.size_decimals,
                ctx.system.settlement,
                ctx.quote,
                self.adl_ranking,
            )
            out.append((d.postings, d.position_changes))
            if d.remaining is not None and d.remaining.size:
                out.append(_to_keeper(ctx, iid, d.remaining.size, d.remaining))
            covered += d.covered
            loss = d.uncovered
        return out, covered


_Fill = tuple[tuple[Posting, ...], tuple[PositionChange, ...]]


def _price(ctx: LiquidationContext, iid: InstrumentId, size: int) -> int:
    """The mark a close of ``size`` of ``iid`` fills at: exact for futures-style
    instruments and settled options; an option's Black-76 mark rounded against the account
    (up when it buys back a short, down when it sells a long)."""
    inst = ctx.instruments[iid]
    index = ctx.market.index_prices[inst.underlying]
    now, settlement = ctx.market.now_ts, ctx.market.settlements.get(iid)
    exact = exact_mark(inst, index, now, settlement)
    if exact is not None:
        return exact
    mark = Fraction(mark_price(inst, index, now, ctx.market.vol(inst.underlying)))
    return math.ceil(mark) if size < 0 else math.floor(mark)


def _to_keeper(ctx: LiquidationContext, iid: InstrumentId, size: int, held: Position) -> _Fill:
    """The account (holding ``held``) closes ``size`` of ``iid`` to the keeper at mark."""
    inst = ctx.instruments[iid]
    buyer, seller = (ctx.keeper, ctx.account) if size > 0 else (ctx.account, ctx.keeper)
    kept = ctx.keeper_positions.get(iid)
    f = fill(
        buyer=buyer,
        seller=seller,
        instrument=iid,
        size=abs(size),
        price=_price(ctx, iid, size),
        size_decimals=inst.size_decimals,
        premium=isinstance(inst, EuropeanOption),
        quote=ctx.quote,
        buyer_position=kept if buyer == ctx.keeper else held,
        seller_position=kept if seller == ctx.keeper else held,
        settlement=ctx.system.settlement,
    )
    return tuple(f.postings), tuple(f.position_changes)


def _cash_after(ctx: LiquidationContext, postings: list[Posting], fills: list[_Fill]) -> int:
    """The account's quote cash after ``postings`` and ``fills``."""
    c = ctx.cash
    q = ctx.quote.id
    for p in (*postings, *(p for fl in fills for p in fl[0])):
        if p.account == ctx.account and p.amount.asset.id == q:
            c += p.amount.units
    return c


_PROBE = AccountRisk(0, 1)


def _trunc(x: Fraction) -> int:
    """``x`` rounded toward zero."""
    return math.trunc(x)
