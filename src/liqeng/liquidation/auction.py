"""Dutch auction of a derivative portfolio: kick, partial (and flash) takes, redo.

A liquidatable account's whole book (perps, futures, options and its spot collateral) is
offered to takers at a price that falls with time. Every step that moves money is ONE ledger
``Transaction`` inside a ``LiquidationPlan``; the house only *computes* steps and keeps the
auction records, which change in ``commit`` once the engine has applied the transaction.

Model (``docs/auction.md`` has the derivation and a worked example)
----------------------------------------------------------------------

* **Curve factor.** ``top`` is a RAY factor (``buf``, e.g. 1.05e27: the auction opens 5%
  *above* the mark), and ``phi(t) = curve.price(top, now - tic)`` with any ``curves`` curve
  (Maker's ``LinearDecrease``, ``StairstepExponentialDecrease``, ``ExponentialDecrease`` or
  Lyra's ``TwoSlope``, whose ``price(RAY, dur) = floor(RAY * d(dur))``). The auction must be
  reset (``redo``) once ``needs_reset(top, phi, dur, tail, cusp)``.
* **Base.** Lyra's ``MtM - R``: ``B = equity - reserved`` where ``equity`` is the account's
  mark-to-market equity *now* (``ctx.risk.equity``: cash + collateral + positions) and
  ``reserved`` (R) the part of it that is no longer for sale (what earlier takes paid in,
  net of penalties and of bad debt the waterfall covered). With prices unchanged,
  ``B`` after a take of ``f`` is exactly ``(1 - f) * B`` before it.
* **Price** of 100% of the remaining lot, signed, paid by the taker::

      P = B - |B| * (RAY - phi) / RAY
        = B * phi / RAY                 if B >= 0   (solvent: the taker pays; Lyra's (MtM-R)*d)
        = B * (2*RAY - phi) / RAY       if B <  0   (insolvent: the taker *receives* -P)

  i.e. the taker's gain over the mark, the *concession* ``|B| * (RAY - phi) / RAY``, is the
  same function of the curve in both cases and grows as the curve falls. ``phi > RAY``
  (the ``buf``) makes the concession negative: the taker pays above the mark.
* **Take** of a fraction ``f`` of the remaining lot (``0 < f <= 1``): every remaining leg
  ``l`` gives a slice ``trunc(l * f)`` (toward zero) and every collateral balance
  ``trunc(balance * f)``. One transaction then: sells the collateral slices to the taker
  at their haircut value (as ``FixedFee``); fills the position slices to the taker at their
  mark (``market.trading.fill``: options at Black-76 rounded against the account, perps at
  the index through the settlement account); pays the taker the concession
  ``floor(f * |B| * (RAY - phi) / RAY)`` out of the account (or, when ``phi > RAY``, takes
  ``ceil`` of the negative concession from the taker); charges the penalty slice
  ``ceil(f * tab)`` (all of ``tab`` on the last take), capped at the account's cash and
  split like ``FixedFee`` (``keeper_share`` to the taker, ``protocol_share`` to the fee
  sink, the rest to the insurance fund); and passes any negative cash left down the
  ``waterfall`` (insurance fund, backstop pool, then booked as uncovered bad debt). The
  fills at mark plus the concession are exactly the Lyra bid: the taker ends
  ``f * (B - P)`` better off than at the mark, the account that much worse off.
* **Kick** records the lot (every open position), ``tab = ceil(penalty_rate * notional)``
  (Maker's ``chop``, collected pro rata by the takes), ``top`` and ``tic``; with a
  ``KeeperReward`` it pays the kicker ``reward(tab, gas)`` (Maker's ``tip + chip * tab``):
  the account pays it out of ``tab`` (capped at its cash), the insurance fund the rest up
  to its balance (Maker's ``suck`` from the Vow).
* **Flash take.** ``take(..., flash=callback)``: the callback sees what the taker is
  about to receive and owe and returns extra postings and position changes (e.g. the taker
  selling the seized collateral to a third party) that go into the *same* transaction,
  between the credits to the taker and the taker's payment (Maker's ``clipperCall``).
  Atomicity is the ledger's: ``Ledger.apply`` checks every balance *net* of the whole
  transaction and commits all of it or nothing, so a taker who cannot pay (even after its
  callback) gets ``ledger/negative-balance`` and nothing moves.

State
-----

``AuctionHouse.auctions`` maps an auction id to its frozen ``Auction`` record. ``kick``,
``take`` and ``redo`` never mutate it: they return a ``Step`` (the record after the step and
the plan, if money moves). The engine applies ``step.plan.transaction`` and only then calls
``house.commit(step)``; a refused transaction therefore leaves the house as it was.
``commit`` refuses a step computed from an older version of the record
(``auction/stale-step``). Each transaction's memo carries the record after the step, so the
house can be rebuilt from the ledger's log (``Auction.from_memo``). No clock: times are
passed in (integer seconds).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Final

from liqeng.errors import InvalidArgument, Refused
from liqeng.ids import AccountId, InstrumentId, check_id
from liqeng.ledger.model import PositionChange, Posting, Transaction
from liqeng.liquidation.base import LiquidationContext, LiquidationPlan
from liqeng.liquidation.curves import RAY, UINT256_MAX, Curve, needs_reset, start_price
from liqeng.liquidation.keeper import KeeperReward
from liqeng.liquidation.settle import FUNDED, check_terms, settle
from liqeng.liquidation.sizing import DustRule
from liqeng.liquidation.waterfall import Waterfall
from liqeng.market.instruments import EuropeanOption
from liqeng.market.marks import exact_mark, mark_price
from liqeng.market.trading import Fill, fill
from liqeng.risk.margin import collateral_value
from liqeng.units import RATE_SCALE, check_int, mul_div_up

__all__ = [
    "Auction",
    "AuctionHouse",
    "FlashCallback",
    "FlashQuote",
    "Quote",
    "Step",
]


MECHANISM: Final = "dutch-auction"


@dataclass(frozen=True, slots=True)
class Auction:
    """One auction's state. ``lot`` is the remaining signed size per instrument (sorted,
    zeros dropped); ``initial_lot`` what was kicked; ``tab`` the penalty still to collect
    (quote units); ``reserved`` Lyra's R (exact); ``mtm`` the equity at kick (for reports);
    ``top`` (RAY factor) and ``tic`` (seconds) the current curve start; ``version`` counts
    committed steps; ``done`` once the lot is sold."""

    id: str
    account: AccountId
    kicker: AccountId
    lot: tuple[tuple[InstrumentId, int], ...]
    initial_lot: tuple[tuple[InstrumentId, int], ...]
    tab: int
    reserved: Fraction
    mtm: int
    top: int
    tic: int
    version: int = 0
    done: bool = False
    speed: Fraction = Fraction(1)

    @property
    def lot_map(self) -> dict[InstrumentId, int]:
        return dict(self.lot)

    def to_memo(self) -> dict[str, Any]:
        """JSON-able record (ints and Fractions as decimal text)."""
        return {
            "id": self.id,
            "account": self.account,
            "kicker": self.kicker,
            "lot": [[i, str(s)] for i, s in self.lot],
            "initial_lot": [[i, str(s)] for i, s in self.initial_lot],
            "tab": str(self.tab),
            "reserved": str(self.reserved),
            "mtm": str(self.mtm),
            "top": str(self.top),
            "tic": str(self.tic),
            "version": self.version,
            "done": self.done,
            **({} if self.speed == 1 else {"speed": str(self.speed)}),
        }

    @staticmethod
    def from_memo(m: Mapping[str, Any]) -> Auction:
        """The record a committed step carried (``tx.memo["auction"]``)."""

        def lot(items: Any) -> tuple[tuple[InstrumentId, int], ...]:
            return tuple((InstrumentId(i), int(s)) for i, s in items)

        return Auction(
            str(m["id"]),
            AccountId(m["account"]),
            AccountId(m["kicker"]),
            lot(m["lot"]),
            lot(m["initial_lot"]),
            int(m["tab"]),
            Fraction(m["reserved"]),
            int(m["mtm"]),
            int(m["top"]),
            int(m["tic"]),
            int(m["version"]),
            bool(m["done"]),
            Fraction(m.get("speed", 1)),
        )


@dataclass(frozen=True, slots=True)
class Quote:
    """The auction at one instant: curve ``factor`` (RAY), ``base = equity - reserved``,
    ``price`` of 100% of the remaining lot (signed, exact; > 0 the taker pays) and
    ``concession = base - price = |base| * (RAY - factor) / RAY``."""

    factor: int
    base: Fraction
    price: Fraction
    concession: Fraction
    needs_reset: bool


@dataclass(frozen=True, slots=True)
class FlashQuote:
    """What a flash callback sees before it adds its own legs: the taker, the position
    slices (signed, as the account held them) and collateral slices it receives, and the
    transaction so far (``postings`` credit the taker first, then its payments)."""

    auction_id: str
    taker: AccountId
    slices: tuple[tuple[InstrumentId, int], ...]
    collateral: tuple[tuple[str, int], ...]
    postings: tuple[Posting, ...]
    position_changes: tuple[PositionChange, ...]


FlashCallback = Callable[[FlashQuote], tuple[tuple[Posting, ...], tuple[PositionChange, ...]]]


@dataclass(frozen=True, slots=True)
class Step:
    """The record after a step, the version it was computed from (``-1`` for a kick) and
    the plan carrying the one transaction (``None`` when nothing moves: a redo, or a kick
    without incentive)."""

    kind: str
    auction: Auction
    base_version: int
    plan: LiquidationPlan | None


def _fraction(name: str, value: object) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, Fraction)):
        raise InvalidArgument(f"{name}={value!r} must be a Fraction or int, not a float")
    return Fraction(value)


def _trunc(x: Fraction) -> int:
    """Toward zero: the account keeps the remainder and never flips sign."""
    return math.trunc(x)


@dataclass
class AuctionHouse:
    """Dutch auctions over the ledger's accounts (see the module doc).

    ``buf`` (RAY, ``>= 1``) and ``cusp`` (RAY, ``0..RAY``) as Maker; ``tail`` seconds;
    rates in parts per ``RATE_SCALE``; ``dust`` applies to the remaining lot's notional
    (quote units: ``TAKE_ALL`` turns a dusty partial take into a full one, ``REFUSE``
    raises ``MustNotLeaveDust``).
    """

    curve: Curve
    buf: int = RAY
    tail: int = UINT256_MAX
    cusp: int = 0
    penalty_rate: int = 50_000_000
    keeper_share: int = 0
    protocol_share: int = 0
    keeper_reward: KeeperReward | None = None
    dust: DustRule | None = None
    waterfall: Waterfall = field(default_factory=lambda: Waterfall(FUNDED))
    auctions: dict[str, Auction] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not callable(getattr(self.curve, "price", None)):
            raise InvalidArgument(f"curve={self.curve!r} must have price(top, dur)")
        check_int("buf", self.buf, RAY, UINT256_MAX)
        check_int("tail", self.tail, 0, UINT256_MAX)
        check_int("cusp", self.cusp, 0, RAY)
        if self.keeper_reward is not None and not isinstance(self.keeper_reward, KeeperReward):
            raise InvalidArgument(f"keeper_reward={self.keeper_reward!r} must be a KeeperReward")
        if self.dust is not None and not isinstance(self.dust, DustRule):
            raise InvalidArgument(f"dust={self.dust!r} must be a DustRule")
        check_terms(
            self.penalty_rate, self.keeper_share, self.protocol_share, self.waterfall, "auction"
        )

    # ------------------------------------------------------------------ reads

    def get(self, auction_id: str) -> Auction:
        """The record, or ``Refused("auction/not-found")``."""
        a = self.auctions.get(auction_id)
        if a is None:
            raise Refused("auction/not-found", f"auction_id={auction_id!r} is not known")
        return a

    def active_for(self, account: AccountId) -> Auction | None:
        for a in self.auctions.values():
            if a.account == account and not a.done:
                return a
        return None

    def factor(self, auction: Auction, now: int) -> int:
        """``curve.price(top, floor((now - tic)·speed))``: the RAY factor on the mark
        (``now >= tic``; ``speed`` is 1 unless an adaptive penalty set it at the kick)."""
        return self.curve.price(auction.top, math.floor(self._dur(auction, now) * auction.speed))

    def status(self, auction: Auction, now: int) -> tuple[int, bool]:
        """``(factor, needs_reset)``, Maker's ``status`` (``tail`` counts seconds)."""
        dur = self._dur(auction, now)
        phi = self.curve.price(auction.top, math.floor(dur * auction.speed))
        return phi, needs_reset(auction.top, phi, dur, self.tail, self.cusp)

    def price(self, auction: Auction, now: int, equity: int) -> Quote:
        """The quote for all of the remaining lot given the account's current ``equity``
        (``ctx.risk.equity``); see the module doc for the sign."""
        check_int("equity", equity)
        phi, reset = self.status(auction, now)
        base = equity - auction.reserved
        concession = abs(base) * (RAY - phi) / RAY
        return Quote(phi, base, base - concession, concession, reset)

    @staticmethod
    def _dur(auction: Auction, now: int) -> int:
        check_int("now", now, 0, UINT256_MAX)
        if now < auction.tic:
            raise InvalidArgument(f"now={now} precedes the auction's tic={auction.tic}")
        return now - auction.tic

    # ------------------------------------------------------------------ steps

    def kick(
        self,
        ctx: LiquidationContext,
        auction_id: str,
        now: int,
        gas_price: int = 0,
        quote_per_gas: int = 0,
        penalty_rate: int | None = None,
        speed: Fraction = Fraction(1),
    ) -> Step:
        """Start an auction of ``ctx.account``'s whole book; ``ctx.keeper`` is the kicker.
        ``penalty_rate`` (default the house's) sets the tab; ``speed`` (> 0) runs the
        curve that many times faster (an ``AdaptivePenalty``'s ``auction_params``).

        Refused: ``liquidation/not-liquidatable`` (healthy account), ``auction/exists``
        (the id is taken), ``auction/account-busy`` (an auction of this account runs),
        ``auction/empty-lot`` (no position and no collateral)."""
        check_id("auction_id", auction_id)
        check_int("now", now, 0, UINT256_MAX)
        if not ctx.risk.is_liquidatable:
            raise Refused(
                "liquidation/not-liquidatable",
                f"{ctx.account}: equity={ctx.risk.equity} >= "
                f"maintenance_margin={ctx.risk.maintenance_margin}",
            )
        if ctx.keeper == ctx.account:
            raise InvalidArgument(f"keeper={ctx.keeper!r} cannot kick its own account")
        if auction_id in self.auctions:
            raise Refused("auction/exists", f"auction_id={auction_id!r} is already used")
        busy = self.active_for(ctx.account)
        if busy is not None:
            raise Refused(
                "auction/account-busy", f"{ctx.account} is already in auction {busy.id!r}"
            )
        lot = tuple((i, ctx.positions[i].size) for i in sorted(ctx.positions))
        lot = tuple((i, s) for i, s in lot if s)
        if not lot and not any(b > 0 for b in ctx.collateral.values()):
            raise Refused("auction/empty-lot", f"{ctx.account} holds no position or collateral")
        notional = sum(ctx.notional(i, s) for i, s in lot)
        rate = self.penalty_rate if penalty_rate is None else penalty_rate
        check_int("penalty_rate", rate, 0, RATE_SCALE)
        if not isinstance(speed, (int, Fraction)) or isinstance(speed, bool) or speed <= 0:
            raise InvalidArgument(f"speed={speed!r} must be a positive Fraction")
        tab = mul_div_up(notional, rate, RATE_SCALE)
        coin = from_account = from_fund = 0
        if self.keeper_reward is not None:
            coin = self.keeper_reward.reward(tab, gas_price, quote_per_gas)
            from_account = min(coin, tab, max(ctx.cash, 0))
            from_fund = min(coin - from_account, max(ctx.insurance_fund_balance, 0))
        auction = Auction(
            auction_id,
            ctx.account,
            ctx.keeper,
            lot,
            lot,
            tab - from_account,
            Fraction(-from_account),  # the penalty is not part of what is for sale
            ctx.risk.equity,
            start_price(RAY, self.buf),
            now,
            speed=Fraction(speed),
        )
        paid = from_account + from_fund
        if paid == 0:
            return Step("kick", auction, -1, None)
        q = ctx.quote
        moves = (
            (ctx.account, -from_account),
            (ctx.system.insurance_fund, -from_fund),
            (ctx.keeper, paid),
        )
        postings = tuple(Posting(a, q.units(u)) for a, u in moves if u)
        memo = self._memo(ctx, "kick", auction, now, {})
        figures = {
            "notional": notional,
            "seized": from_account,
            "penalty": from_account,
            "keeper_reward": paid,
            "insurance_fee": -from_fund,  # the fund paid the part the account could not
            "protocol_fee": 0,
            "bad_debt_covered": 0,
            "bad_debt_uncovered": 0,
        }
        memo.update({k: str(v) for k, v in figures.items()})
        tx = Transaction(ctx.tx_id, "auction-kick", postings, (), memo)
        return Step("kick", auction, -1, LiquidationPlan(tx, **figures))

    def redo(self, auction_id: str, now: int, new_top: int | None = None) -> Step:
        """Maker's ``redo``: restart the curve at ``now`` from ``new_top`` (default ``buf``),
        only once ``needs_reset``; else ``Refused("auction/no-reset-needed")``."""
        a = self._live(auction_id)
        top = self.buf if new_top is None else check_int("new_top", new_top, 1, UINT256_MAX)
        phi, reset = self.status(a, now)
        if not reset:
            raise Refused(
                "auction/no-reset-needed",
                f"auction {auction_id!r} at now={now}: factor={phi} (top={a.top}, "
                f"dur={now - a.tic} <= tail={self.tail}, cusp={self.cusp})",
            )
        return Step("redo", replace(a, top=top, tic=now, version=a.version + 1), a.version, None)

    def take(
        self,
        ctx: LiquidationContext,
        auction_id: str,
        fraction: Fraction | int,
        max_price: int,
        now: int,
        flash: FlashCallback | None = None,
    ) -> Step:
        """``ctx.keeper`` buys ``fraction`` of the remaining lot if the price of all of it
        is ``<= max_price`` (signed quote units; see ``price``). One transaction, id
        ``ctx.tx_id``. Refused: ``auction/not-found``, ``auction/finished``,
        ``auction/needs-reset``, ``auction/price-above-max``, ``auction/lot-mismatch``
        (the account no longer holds the lot); ``InvalidArgument`` for a fraction outside
        ``(0, 1]``, one that slices nothing, or a dusty remnant under ``REFUSE``."""
        a = self._live(auction_id)
        f = _fraction("fraction", fraction)
        if not 0 < f <= 1:
            raise InvalidArgument(f"fraction={f} must be in (0, 1]")
        check_int("max_price", max_price)
        if ctx.account != a.account:
            raise InvalidArgument(f"ctx.account={ctx.account!r} is not {a.account!r}")
        if ctx.keeper == a.account:
            raise InvalidArgument(f"taker={ctx.keeper!r} cannot take its own auction")
        quote = self.price(a, now, ctx.risk.equity)
        if quote.needs_reset:
            raise Refused(
                "auction/needs-reset",
                f"auction {auction_id!r} at now={now}: factor={quote.factor}, "
                f"top={a.top}, dur={now - a.tic}, tail={self.tail}, cusp={self.cusp}",
            )
        if math.ceil(quote.price) > max_price:
            raise Refused(
                "auction/price-above-max",
                f"auction {auction_id!r}: price={math.ceil(quote.price)} > max_price={max_price}",
            )
        for iid, size in a.lot:
            held = ctx.positions.get(iid)
            if held is None or (held.size > 0) != (size > 0) or abs(held.size) < abs(size):
                raise Refused(
                    "auction/lot-mismatch",
                    f"{a.account} holds {held.size if held else 0} of {iid}, lot is {size}",
                )
        slices = {i: _trunc(s * f) for i, s in a.lot}
        rest = sum(ctx.notional(i, s - slices[i]) for i, s in a.lot)
        if self.dust is not None and f < 1 and self.dust.take_all(rest, "lot notional"):
            f = Fraction(1)
            slices = dict(a.lot)
        coll = [
            (spec, _trunc(bal * f))
            for spec, bal in sorted(ctx.collateral.items(), key=lambda kv: kv[0].asset.id)
            if bal > 0
        ]
        coll = [(spec, b) for spec, b in coll if b > 0]
        if not any(slices.values()) and not coll:
            raise InvalidArgument(f"fraction={f} of auction {auction_id!r} slices nothing")
        final = f == 1
        q, taker, acct = ctx.quote, ctx.keeper, ctx.account
        postings: list[Posting] = []
        changes: list[PositionChange] = []
        sold = notional = 0
        for spec, bal in coll:
            value = collateral_value(
                spec,
                bal,
                ctx.market.index_prices[spec.underlying],
                ctx.market.exchange_rates.get(spec.asset.id),
            )
            sold += value
            postings += [
                Posting(acct, spec.asset.units(-bal)),
                Posting(taker, spec.asset.units(bal)),
                Posting(taker, q.units(-value)),
                Posting(acct, q.units(value)),
            ]
        for iid, size in sorted(slices.items()):
            if size == 0:
                continue
            notional += ctx.notional(iid, size)
            f_ = self._fill_at_mark(ctx, iid, size)
            postings += f_.postings
            changes += f_.position_changes
        # the concession: what the taker gains over the mark on this slice
        conc_exact = f * quote.concession
        conc = math.floor(conc_exact) if conc_exact >= 0 else math.ceil(conc_exact)
        if conc:
            postings += [Posting(acct, q.units(-conc)), Posting(taker, q.units(conc))]
        c1 = ctx.cash + sum(
            p.amount.units for p in postings if p.account == acct and p.asset == q.id
        )
        due = a.tab if final else min(a.tab, mul_div_up(a.tab, f.numerator, f.denominator))
        # the penalty never takes the account's equity below 0: an insolvent account pays
        # none (its slice of the tab is forgiven), as with FixedFee
        fee = min(due, max(c1, 0), max(ctx.risk.equity - conc, 0))
        st = settle(
            ctx,
            fee,
            max(fee - c1, 0),
            self.keeper_share,
            self.protocol_share,
            self.waterfall,
            taker,
        )
        postings += st.postings
        keeper_reward, protocol_fee, insurance_fee = (
            st.keeper_reward,
            st.protocol_fee,
            st.insurance_fee,
        )
        covered, uncovered = st.covered, st.uncovered
        # flash ordering: every credit to the taker, the callback's legs, then the rest
        credits = [p for p in postings if p.account == taker and p.amount.units > 0]
        others = [p for p in postings if not (p.account == taker and p.amount.units > 0)]
        extra_p: tuple[Posting, ...] = ()
        extra_c: tuple[PositionChange, ...] = ()
        if flash is not None:
            fq = FlashQuote(
                auction_id,
                taker,
                tuple((i, s) for i, s in sorted(slices.items()) if s),
                tuple((spec.asset.id, b) for spec, b in coll),
                tuple(credits + others),
                tuple(changes),
            )
            extra_p, extra_c = flash(fq)
            if not isinstance(extra_p, tuple) or not isinstance(extra_c, tuple):
                raise InvalidArgument("flash callback must return (postings, position_changes)")
        taken = {spec: b for spec, b in coll}
        coll_left = any(b - taken.get(spec, 0) > 0 for spec, b in ctx.collateral.items())
        lot_after = tuple((i, s - slices[i]) for i, s in a.lot if s - slices[i])
        after = replace(
            a,
            lot=lot_after,
            tab=a.tab - due,
            reserved=a.reserved + f * quote.base - conc - fee + covered + uncovered,
            version=a.version + 1,
            done=final or (not lot_after and not coll_left),
        )
        seized = max(ctx.cash + sold - max(c1 - fee, 0), 0)
        figures = {
            "notional": notional,
            "seized": seized,
            "penalty": fee,
            "keeper_reward": keeper_reward,
            "insurance_fee": insurance_fee,
            "protocol_fee": protocol_fee,
            "bad_debt_covered": covered,
            "bad_debt_uncovered": uncovered,
        }
        extra = {
            "fraction": str(f),
            "factor": str(quote.factor),
            "base": str(quote.base),
            "price": str(quote.price),
            "concession": str(conc),
            "collateral_sold": str(sold),
            "flash": flash is not None,
        }
        memo = self._memo(ctx, "take", after, now, extra)
        memo.update({k: str(v) for k, v in figures.items()})
        tx = Transaction(
            ctx.tx_id,
            "auction-take",
            tuple(credits) + extra_p + tuple(others),
            tuple(changes) + extra_c,
            memo,
        )
        return Step("take", after, a.version, LiquidationPlan(tx, **figures))

    def commit(self, step: Step) -> Auction:
        """Record ``step`` once its transaction (if any) committed. ``auction/stale-step``
        if the record moved on since the step was computed (or a kick's id is taken)."""
        if not isinstance(step, Step):
            raise InvalidArgument(f"step={step!r} must be a Step")
        cur = self.auctions.get(step.auction.id)
        version = -1 if cur is None else cur.version
        if version != step.base_version:
            raise Refused(
                "auction/stale-step",
                f"{step.kind} of auction {step.auction.id!r} was computed from version "
                f"{step.base_version}, the record is at {version}",
            )
        self.auctions[step.auction.id] = step.auction
        return step.auction

    # -------------------------------------------------------------- internals

    def _live(self, auction_id: str) -> Auction:
        a = self.get(auction_id)
        if a.done:
            raise Refused("auction/finished", f"auction {auction_id!r} sold its whole lot")
        return a

    @staticmethod
    def _fill_at_mark(ctx: LiquidationContext, iid: InstrumentId, size: int) -> Fill:
        """``size`` (signed as the account holds it) moves to the taker at its mark, rounded
        against the account as in ``FixedFee``."""
        inst = ctx.instruments[iid]
        index = ctx.market.index_prices[inst.underlying]
        now, settlement = ctx.market.now_ts, ctx.market.settlements.get(iid)
        exact = exact_mark(inst, index, now, settlement)
        if exact is not None:
            price = exact
        else:
            mark = Fraction(mark_price(inst, index, now, ctx.market.vol(inst.underlying)))
            price = math.ceil(mark) if size < 0 else math.floor(mark)
        pos = ctx.positions[iid]
        kpos = ctx.keeper_positions.get(iid)
        buyer, seller = (ctx.keeper, ctx.account) if size > 0 else (ctx.account, ctx.keeper)
        return fill(
            buyer=buyer,
            seller=seller,
            instrument=iid,
            size=abs(size),
            price=price,
            size_decimals=inst.size_decimals,
            premium=isinstance(inst, EuropeanOption),
            quote=ctx.quote,
            buyer_position=kpos if buyer == ctx.keeper else pos,
            seller_position=kpos if seller == ctx.keeper else pos,
            settlement=ctx.system.settlement,
        )

    def _memo(
        self, ctx: LiquidationContext, step: str, auction: Auction, now: int, extra: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "account": ctx.account,
            "keeper": ctx.keeper,
            "mechanism": MECHANISM,
            "step": step,
            "now": str(now),
            "equity": str(ctx.risk.equity),
            "maintenance_margin": str(ctx.risk.maintenance_margin),
            "auction": auction.to_memo(),
            **extra,
        }
