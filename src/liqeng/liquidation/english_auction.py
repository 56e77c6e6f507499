"""The first-price English auction of Maker Liquidations 1.x (``Flipper``: ``kick``,
``tend``, ``dent``, ``deal``, ``tick``) as an engine mechanism: ``english-auction``.

It is here to reproduce the Black Thursday lesson (12 Mar 2020): with bids that rise only
when keepers show up, a congested network let single keepers win whole lots with
near-zero bids, and the system was left with the debt. ``EnglishAuction`` plugs into the
engine as ``DutchAuction`` does: the engine drives the *kick* (``plan(ctx)`` then
``commit(plan)``); keepers drive the rest through methods that take the engine.

Model (all amounts in quote base units, exact integers)
------------------------------------------------------

* **Kick** (``plan(ctx)``, for a liquidatable account; ``ctx.keeper`` is the kicker). The
  lot is the account's whole book at the kick: every open position (``lot``) and every
  spot-collateral balance (``collateral``). With ``D`` the quote the account would receive
  (negative: pay) if every position were filled at its mark (``AuctionHouse``'s fills,
  rounded against the account) and ``cash`` its quote balance::

      close_cash = cash + D
      debt       = max(-close_cash, 0)
      penalty    = ceil(penalty_rate * notional / RATE_SCALE)   (notional at index, as the
                                                                 Dutch auction; Maker's chop
                                                                 is on the debt instead)
      tab        = debt + penalty
      end        = now + tau,  bid = 0,  share = 1,  no bidder,  no tic

  Nothing moves at the kick: it is one ``auction-kick`` transaction without postings
  whose memo carries the record. The account is held (``holds``) until the auction is
  dealt. A kick with ``tab == 0`` is refused (``auction/empty-tab``): nothing to raise.
* **Tend** (phase 1, ``bid < tab``): a bidder offers ``bid`` quote for the whole lot::

      0 < bid <= tab,   bid > previous bid,   bid * WAD >= beg * previous bid  or  bid == tab

  (``beg`` is WAD: 1.03e18 asks for +3%; reaching ``tab`` exactly is always allowed, as
  in flip.sol). The bid is escrowed in the ``escrow`` system account: the bidder pays
  ``bid`` in, the previous high bidder gets its bid back, in the same transaction
  (kind ``auction-tend``). ``tic = now + ttl``.
* **Dent** (phase 2, once ``bid == tab``): bidders compete by accepting a smaller share of
  the lot for the same ``tab``::

      0 < share' < share,   beg * share' <= WAD * share            (share is exact)

  A new high bidder escrows ``tab`` and the previous one is refunded ``tab`` (kind
  ``auction-dent``; no money moves when the high bidder lowers its own share).
  ``tic = now + ttl``.
* **End.** Bids are taken while ``now < ends_at = min(tic, end)`` (``end`` alone before
  the first bid). Maker checks ``tic > now`` to bid and ``tic < now`` to deal, leaving a
  second where neither is possible; here the auction is over from ``now >= ends_at``.
* **Tick** (``tick``): an auction nobody bid on by ``end`` restarts: ``end = now + tau``
  (Maker; ``auction/has-bid`` once a bid exists, ``auction/not-finished`` before ``end``).
  Logged with ``ledger.record`` (kind ``auction.tick``).
* **Deal** (``deal``, once over with a bid). One ``auction-deal`` transaction, at the
  engine's current marks (refused with ``liquidation/stale-price`` as ``Engine.liquidate``):

  1. the winner takes ``trunc(share * size)`` of every position of the lot, filled at its
     mark exactly as a Dutch take (the account realises at mark through the settlement
     account; the winner opens at mark; options pay their premium at mark), and
     ``trunc(share * units)`` of every collateral balance of the lot, for nothing more;
  2. the escrow pays the winning ``bid`` to the account;
  3. with ``c1`` the account's quote cash after 1-2, the penalty collected is::

         fee = min(penalty, max(bid - debt, 0), max(c1, 0))

     (the part of the bid above the debt, as Maker's Vow keeps what a flip raises over
     the debt, never more than the account holds), split by ``settle`` (``keeper_share``
     to the kicker, ``protocol_share`` to the fee sink, the rest to the insurance fund);
  4. the shortfall ``max(-c1, 0)`` (at unchanged prices and ``share == 1``, exactly
     ``max(debt - bid, 0)``: Maker's ``tab - bid`` less the penalty not raised) goes down
     the ``waterfall`` (``settle``: insurance fund, backstop pool, then booked against the
     bad-debt account as uncovered): never left silently;
  5. the rest of the lot (``lot - slices``, the collateral not taken) stays with the
     account, as does any cash left, ``c1 - fee``.

  The winner ends ``share`` of the positions at mark (worth what it paid for them) plus
  the collateral slices, having paid ``bid``: what bidders bid for is the collateral (and
  the positions' risk); what the bid pays for is the account's debt and the penalty.
  Black Thursday: a lone bid of 1 unit that nobody beats within ``ttl`` wins the whole
  collateral, the account's cash is ``close_cash + 1``, and ``debt - 1`` is bad debt.

Escrow. Bids are held by a dedicated ``SYSTEM`` account (never negative):
``escrow=`` if given, else ``<namespace of the engine's settlement account>/auction-escrow``.
The ledger must have it open (``InvalidArgument`` otherwise, at the first bid). Its
balance is always the sum of the live auctions' standing bids.

State and the log. ``flips`` maps an auction id to its frozen ``Flip`` record. Every step
writes one ledger event whose memo carries the record after it (``Flip.from_memo``), and
the record changes only once that event is newly committed: a refusal anywhere leaves the
ledger and ``flips`` as they were. ``restore(ledger)`` rebuilds ``flips`` from the log;
``mark()``/``rollback(mark)`` let the engine undo a kick whose batch rolled back.

Keeper calls. ``tend``, ``dent``, ``deal`` and ``tick`` take the engine and a ``txid``;
calling again with a committed ``txid`` returns the committed result (``created=False``)
without changing anything; a ``txid`` that committed something else is refused
(``ledger/exists-with-different-content``). ``tend``/``dent``/``tick`` read no price (bids
are quote, as in Maker: a Flipper does not look at the oracle), so only ``deal`` (and
``lot_value``) refuse stale prices. Refusal codes: ``auction/not-found``,
``auction/finished`` (dealt, or past ``ends_at`` for a bid), ``auction/not-finished``,
``auction/no-bid``, ``auction/has-bid``, ``auction/bid-too-low``, ``auction/bid-above-tab``,
``auction/dent-phase`` (a tend once ``bid == tab``), ``auction/tend-phase`` (a dent
before), ``auction/lot-too-high``, ``auction/lot-mismatch`` (the account no longer holds
the lot), ``ledger/negative-balance`` (the bidder cannot pay), ``liquidation/stale-price``,
``liquidation/market-paused``, ``liquidation/unsettled``. Bad input (a bid ``<= 0``, a
float, a share outside ``(0, 1]``, an unknown bidder, the account bidding on itself,
``beg < WAD``, ``ttl``/``tau <= 0``) is ``InvalidArgument`` naming the value.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final

from liqeng.errors import InvalidArgument, Refused, StorageCorrupt
from liqeng.ids import AccountId, AssetId, InstrumentId, account_id, tx_id
from liqeng.ledger.core import Ledger
from liqeng.ledger.events import decode
from liqeng.ledger.model import AccountKind, PositionChange, Posting, Transaction
from liqeng.liquidation.auction import AuctionHouse
from liqeng.liquidation.base import PLAN_FIGURES, LiquidationContext, LiquidationPlan
from liqeng.liquidation.curves import WAD
from liqeng.liquidation.dutch_auction import KICK, DutchAuction
from liqeng.liquidation.settle import FUNDED, check_terms, settle
from liqeng.liquidation.waterfall import Waterfall
from liqeng.market.instruments import SpotCollateral
from liqeng.risk.margin import collateral_value
from liqeng.units import AMOUNT_MAX, RATE_SCALE, check_int, mul_div_up

if TYPE_CHECKING:
    from liqeng.engine import Engine

__all__ = ["MECHANISM", "EnglishAuction", "Flip", "FlipResult"]

MECHANISM: Final = "english-auction"
TEND: Final = "auction-tend"
DENT: Final = "auction-dent"
DEAL: Final = "auction-deal"
TICK: Final = "auction.tick"
_STEP_KINDS: Final = frozenset({KICK, TEND, DENT, DEAL, TICK})


@dataclass(frozen=True, slots=True)
class Flip:
    """One English auction (Maker's ``Bid``). ``lot`` and ``collateral`` are what was
    kicked (signed position sizes, collateral units; sorted); ``debt`` and ``penalty``
    make ``tab``; ``bid`` is the standing bid, ``guy`` its bidder (``None`` before the
    first), ``share`` of the lot it wins (1 in phase 1); ``tic`` the bid expiry (``None``
    before the first bid), ``end`` the auction's deadline, ``kicked`` the kick time;
    ``version`` counts committed steps; ``done`` once dealt."""

    id: str
    account: AccountId
    kicker: AccountId
    lot: tuple[tuple[InstrumentId, int], ...]
    collateral: tuple[tuple[AssetId, int], ...]
    debt: int
    penalty: int
    kicked: int
    end: int
    bid: int = 0
    share: Fraction = Fraction(1)
    guy: AccountId | None = None
    tic: int | None = None
    version: int = 0
    done: bool = False

    @property
    def tab(self) -> int:
        """What the auction raises at most: ``debt + penalty``."""
        return self.debt + self.penalty

    @property
    def ends_at(self) -> int:
        """``min(tic, end)`` (``end`` before the first bid): bids are taken before it."""
        return self.end if self.tic is None else min(self.tic, self.end)

    @property
    def phase(self) -> str:
        """``"tend"`` while ``bid < tab``, then ``"dent"``."""
        return "tend" if self.bid < self.tab else "dent"

    def to_memo(self) -> dict[str, Any]:
        """JSON-able record (ints and Fractions as decimal text)."""
        return {
            "id": self.id,
            "account": self.account,
            "kicker": self.kicker,
            "lot": [[i, str(s)] for i, s in self.lot],
            "collateral": [[a, str(u)] for a, u in self.collateral],
            "debt": str(self.debt),
            "penalty": str(self.penalty),
            "kicked": str(self.kicked),
            "end": str(self.end),
            "bid": str(self.bid),
            "share": str(self.share),
            "guy": self.guy,
            "tic": None if self.tic is None else str(self.tic),
            "version": self.version,
            "done": self.done,
        }

    @staticmethod
    def from_memo(m: Mapping[str, Any]) -> Flip:
        """The record a committed step carried (``memo["auction"]``)."""
        guy, tic = m["guy"], m["tic"]
        return Flip(
            str(m["id"]),
            AccountId(m["account"]),
            AccountId(m["kicker"]),
            tuple((InstrumentId(i), int(s)) for i, s in m["lot"]),
            tuple((AssetId(a), int(u)) for a, u in m["collateral"]),
            int(m["debt"]),
            int(m["penalty"]),
            int(m["kicked"]),
            int(m["end"]),
            int(m["bid"]),
            Fraction(m["share"]),
            None if guy is None else AccountId(guy),
            None if tic is None else int(tic),
            int(m["version"]),
            bool(m["done"]),
        )


@dataclass(frozen=True, slots=True)
class FlipResult:
    """A committed step: the account, the ledger ``seq`` of its event, ``created`` (False
    when it answers a retried ``txid``), the record after it, the transaction (``None``
    for a tick) and the plan (a deal's figures; ``None`` for a tend, dent or tick)."""

    account: AccountId
    seq: int
    created: bool
    auction: Flip
    transaction: Transaction | None
    plan: LiquidationPlan | None


def _trunc(x: Fraction) -> int:
    """Toward zero: the account keeps the remainder and never flips sign."""
    return math.trunc(x)


def _share(value: object) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, Fraction)):
        raise InvalidArgument(f"lot_fraction={value!r} must be a Fraction or int, not a float")
    f = Fraction(value)
    if not 0 < f <= 1:
        raise InvalidArgument(f"lot_fraction={f} must be in (0, 1]")
    return f


@dataclass(frozen=True)
class EnglishAuction:
    """Maker's Flipper over the engine's accounts (see the module doc).

    ``beg`` (WAD, ``>= WAD``; default 1.03: each bid +3%, each dent -3% of the share),
    ``ttl`` (seconds a bid stands before it wins; Maker's default 3 h), ``tau`` (seconds
    from the kick, or a ``tick``, to the auction's end; Maker's default 2 days),
    ``penalty_rate`` (parts per ``RATE_SCALE`` of the kicked notional), ``keeper_share``
    (of the penalty, to the kicker) and ``protocol_share`` (to the fee sink), the
    ``waterfall`` for the shortfall, and the ``escrow`` system account (default
    ``<ns>/auction-escrow``). The configuration is frozen; the auctions live in ``flips``.
    """

    beg: int = 103 * WAD // 100
    ttl: int = 3 * 3600
    tau: int = 2 * 86400
    penalty_rate: int = 130_000_000
    keeper_share: int = 0
    protocol_share: int = 0
    waterfall: Waterfall = field(default_factory=lambda: Waterfall(FUNDED))
    escrow: AccountId | None = None
    name: str = MECHANISM
    flips: dict[str, Flip] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        check_int("beg", self.beg, WAD, AMOUNT_MAX)
        check_int("ttl", self.ttl, 1, 2**48)
        check_int("tau", self.tau, 1, 2**48)
        check_terms(
            self.penalty_rate, self.keeper_share, self.protocol_share, self.waterfall, "auction"
        )
        if self.escrow is not None:
            account_id(self.escrow)
        if self.name != MECHANISM:
            raise InvalidArgument(f"name={self.name!r} must be {MECHANISM!r}")

    # ------------------------------------------------------ the engine's contract

    def plan(self, ctx: LiquidationContext) -> LiquidationPlan:
        """The kick of ``ctx.account``'s whole book by ``ctx.keeper`` at
        ``ctx.market.now_ts``: one ``auction-kick`` transaction with id ``ctx.tx_id`` and no
        postings; the auction's id is ``auction_id_for(ctx.account, ctx.tx_id)``. Refused:
        ``liquidation/not-liquidatable``, ``auction/exists``, ``auction/account-busy``,
        ``auction/empty-lot``, ``auction/empty-tab``."""
        now = ctx.market.now_ts
        account = ctx.account
        if not ctx.risk.is_liquidatable:
            raise Refused(
                "liquidation/not-liquidatable",
                f"{account}: equity={ctx.risk.equity} >= "
                f"maintenance_margin={ctx.risk.maintenance_margin}",
            )
        if ctx.keeper == account:
            raise InvalidArgument(f"keeper={ctx.keeper!r} cannot kick its own account")
        aid = self.auction_id_for(account, ctx.tx_id)
        if aid in self.flips:
            raise Refused("auction/exists", f"auction_id={aid!r} is already used")
        busy = self._active_for(account)
        if busy is not None:
            raise Refused("auction/account-busy", f"{account} is already in auction {busy.id!r}")
        lot = tuple((i, ctx.positions[i].size) for i in sorted(ctx.positions))
        lot = tuple((i, s) for i, s in lot if s)
        coll = tuple(
            sorted((spec.asset.id, bal) for spec, bal in ctx.collateral.items() if bal > 0)
        )
        if not lot and not coll:
            raise Refused("auction/empty-lot", f"{account} holds no position or collateral")
        q = ctx.quote.id
        proceeds = 0
        for iid, size in lot:
            f = AuctionHouse._fill_at_mark(ctx, iid, size)
            proceeds += sum(
                p.amount.units for p in f.postings if p.account == account and p.asset == q
            )
        close_cash = ctx.cash + proceeds
        debt = max(-close_cash, 0)
        notional = sum(ctx.notional(i, s) for i, s in lot)
        penalty = mul_div_up(notional, self.penalty_rate, RATE_SCALE)
        if debt + penalty == 0:
            raise Refused(
                "auction/empty-tab",
                f"{account}: no debt (cash after closing at mark {close_cash}) and no "
                f"penalty (penalty_rate={self.penalty_rate}): nothing to raise",
            )
        flip = Flip(aid, account, ctx.keeper, lot, coll, debt, penalty, now, now + self.tau)
        memo: dict[str, Any] = {
            "account": account,
            "keeper": ctx.keeper,
            "mechanism": MECHANISM,
            "step": "kick",
            "now": str(now),
            "equity": str(ctx.risk.equity),
            "maintenance_margin": str(ctx.risk.maintenance_margin),
            "close_cash": str(close_cash),
            "tab": str(flip.tab),
            "auction": flip.to_memo(),
        }
        memo.update({k: "0" for k in PLAN_FIGURES})
        memo["notional"] = str(notional)
        tx = Transaction(ctx.tx_id, KICK, (), (), memo)
        return LiquidationPlan(tx, notional, 0, 0, 0, 0, 0, 0, 0)

    def commit(self, plan: LiquidationPlan) -> Flip:
        """Record the kick whose transaction the engine committed (``plan`` from ``plan``)."""
        tx = plan.transaction
        memo = tx.memo
        if tx.kind != KICK or memo.get("mechanism") != MECHANISM or "auction" not in memo:
            raise InvalidArgument(f"plan of tx {tx.id!r} (kind={tx.kind!r}) is not a kick")
        flip = Flip.from_memo(memo["auction"])
        if flip.id in self.flips:
            raise Refused("auction/stale-step", f"auction {flip.id!r} is already recorded")
        self.flips[flip.id] = flip
        return flip

    def mark(self) -> dict[str, Flip]:
        """A point to ``rollback`` to: the records now (they are frozen)."""
        return dict(self.flips)

    def rollback(self, mark: dict[str, Flip]) -> None:
        """Forget every step committed since ``mark`` (its ledger batch rolled back)."""
        self.flips.clear()
        self.flips.update(mark)

    def holds(self, account: AccountId) -> str | None:
        """``"auction <id> running"`` until ``account``'s auction is dealt, else ``None``."""
        a = self._active_for(account)
        return None if a is None else f"auction {a.id} running"

    @staticmethod
    def auction_id_for(account: AccountId, txid: str) -> str:
        """The id of the auction kicked by ``txid`` (``DutchAuction.auction_id_for``)."""
        return DutchAuction.auction_id_for(account, txid)

    def escrow_for(self, engine: Engine) -> AccountId:
        """The escrow account: ``escrow``, or ``<ns>/auction-escrow`` with ``ns`` the
        namespace of ``engine.system.settlement``."""
        if self.escrow is not None:
            return self.escrow
        ns = engine.system.settlement.split("/", 1)[0]
        return account_id(f"{ns}/auction-escrow")

    # ------------------------------------------------------------------ reads

    def get(self, auction_id: str) -> Flip:
        """The record, or ``Refused("auction/not-found")``."""
        a = self.flips.get(auction_id)
        if a is None:
            raise Refused("auction/not-found", f"auction_id={auction_id!r} is not known")
        return a

    def min_bid(self, auction_id: str) -> int:
        """The least ``tend`` accepted now: ``min(max(ceil(beg * bid / WAD), bid + 1),
        tab)`` (phase 1 only)."""
        a = self.get(auction_id)
        return min(max(mul_div_up(a.bid, self.beg, WAD), a.bid + 1), a.tab)

    def max_share(self, auction_id: str) -> Fraction:
        """The largest ``dent`` share accepted now: ``share * WAD / beg`` (when ``beg`` is
        1, any share below the standing one)."""
        a = self.get(auction_id)
        return a.share * WAD / self.beg

    def lot_value(self, engine: Engine, auction_id: str) -> int:
        """What the standing ``share`` of the lot is worth to a winner now: its collateral
        slices at index, without haircut (``floor``); the positions change hands at their
        mark, which is worth what the winner pays for them. Refused on stale prices."""
        a = self.get(auction_id)
        DutchAuction._fresh(engine, a.account)  # refuses stale or missing prices
        value = 0
        for asset, units in a.collateral:
            spec = engine.collateral.get(asset)
            if spec is None or spec.underlying not in engine.index_prices:
                continue
            unhaircut = replace(spec, haircut=0)
            value += collateral_value(
                unhaircut,
                _trunc(units * a.share),
                engine.index_prices[spec.underlying],
                engine.exchange_rates.get(asset),
            )
        return value

    # ------------------------------------------------------- keeper operations

    def tend(
        self, engine: Engine, auction_id: str, bidder: AccountId, bid: int, txid: str
    ) -> FlipResult:
        """Phase 1: ``bidder`` bids ``bid`` quote units for the whole lot (module doc). One
        ``auction-tend`` transaction with id ``txid``: ``bid`` into the escrow, the
        previous bid back to its bidder (a bidder raising its own bid pays the
        difference)."""
        tx_id(txid)
        done = self._retried(engine.ledger, txid, TEND, auction_id)
        if done is not None:
            return done
        check_int("bid", bid)
        if bid <= 0:
            raise InvalidArgument(f"bid={bid} must be > 0")
        now = engine.clock.now()
        a = self._open(auction_id, now)
        self._check_bidder(engine, a, bidder)
        if a.bid >= a.tab:
            raise Refused(
                "auction/dent-phase",
                f"auction {auction_id!r}: bid={a.bid} == tab; bid on a smaller share (dent)",
            )
        if bid > a.tab:
            raise Refused(
                "auction/bid-above-tab", f"auction {auction_id!r}: bid={bid} > tab={a.tab}"
            )
        if bid <= a.bid or (bid * WAD < self.beg * a.bid and bid != a.tab):
            raise Refused(
                "auction/bid-too-low",
                f"auction {auction_id!r}: bid={bid} < {self.min_bid(auction_id)} "
                f"(standing bid {a.bid} * beg {Fraction(self.beg, WAD)}, or tab={a.tab})",
            )
        escrow = self._escrow(engine)
        moves: list[tuple[AccountId, int]]
        if a.guy == bidder:
            moves = [(bidder, -(bid - a.bid)), (escrow, bid - a.bid)]
        else:
            moves = [(bidder, -bid), (escrow, bid)]
            if a.guy is not None:
                moves += [(escrow, -a.bid), (a.guy, a.bid)]
        after = replace(a, bid=bid, guy=bidder, tic=now + self.ttl, version=a.version + 1)
        return self._apply(engine, txid, TEND, a, after, bidder, now, moves, {"bid_before": a.bid})

    def dent(
        self,
        engine: Engine,
        auction_id: str,
        bidder: AccountId,
        lot_fraction: Fraction | int,
        txid: str,
    ) -> FlipResult:
        """Phase 2 (``bid == tab``): ``bidder`` pays ``tab`` for ``lot_fraction`` of the lot
        (``beg * lot_fraction <= WAD * share``). One ``auction-dent`` transaction with id
        ``txid``: a new high bidder escrows ``tab`` and the previous one gets ``tab``
        back."""
        tx_id(txid)
        done = self._retried(engine.ledger, txid, DENT, auction_id)
        if done is not None:
            return done
        share = _share(lot_fraction)
        now = engine.clock.now()
        a = self._open(auction_id, now)
        self._check_bidder(engine, a, bidder)
        if a.bid < a.tab:
            raise Refused(
                "auction/tend-phase",
                f"auction {auction_id!r}: bid={a.bid} < tab={a.tab}; raise the bid (tend)",
            )
        if share >= a.share or self.beg * share > WAD * a.share:
            raise Refused(
                "auction/lot-too-high",
                f"auction {auction_id!r}: lot_fraction={share} > {a.share} / beg "
                f"{Fraction(self.beg, WAD)} = {self.max_share(auction_id)}",
            )
        escrow = self._escrow(engine)
        moves: list[tuple[AccountId, int]] = []
        if a.guy != bidder:
            assert a.guy is not None  # bid == tab > 0: someone bid
            moves = [(bidder, -a.bid), (escrow, a.bid), (escrow, -a.bid), (a.guy, a.bid)]
        after = replace(a, share=share, guy=bidder, tic=now + self.ttl, version=a.version + 1)
        extra = {"share_before": str(a.share)}
        return self._apply(engine, txid, DENT, a, after, bidder, now, moves, extra)

    def tick(self, engine: Engine, auction_id: str, txid: str) -> FlipResult:
        """Restart an auction nobody bid on by its ``end``: ``end = now + tau``. Logged as
        an ``auction.tick`` event with id ``txid``; nothing moves."""
        tx_id(txid)
        done = self._retried(engine.ledger, txid, TICK, auction_id)
        if done is not None:
            return done
        a = self._live(auction_id)
        now = engine.clock.now()
        if a.guy is not None:
            raise Refused(
                "auction/has-bid",
                f"auction {auction_id!r} has a bid of {a.bid} by {a.guy}: deal it once over",
            )
        if now < a.end:
            raise Refused("auction/not-finished", f"auction {auction_id!r} runs until end={a.end}")
        after = replace(a, end=now + self.tau, version=a.version + 1)
        memo = {
            "account": a.account,
            "mechanism": MECHANISM,
            "step": "tick",
            "now": str(now),
            "end_before": str(a.end),
            "auction": after.to_memo(),
        }
        receipt = engine.ledger.record(txid, TICK, memo)
        if receipt.created:
            self._commit(a, after)
        return FlipResult(a.account, receipt.seq, receipt.created, after, None, None)

    def deal(self, engine: Engine, auction_id: str, txid: str) -> FlipResult:
        """Settle an auction that is over (``now >= ends_at``) with a bid: the winner takes
        its share of the lot, the account gets the bid, the penalty is collected and the
        shortfall goes down the waterfall (module doc). One ``auction-deal`` transaction
        with id ``txid``, at the engine's current marks."""
        tx_id(txid)
        done = self._retried(engine.ledger, txid, DEAL, auction_id)
        if done is not None:
            return done
        a = self._live(auction_id)
        now = engine.clock.now()
        if a.guy is None:
            if now >= a.end:
                raise Refused(
                    "auction/no-bid", f"auction {auction_id!r} ended without a bid: tick it"
                )
            raise Refused("auction/not-finished", f"auction {auction_id!r} has no bid yet")
        if now < a.ends_at:
            raise Refused(
                "auction/not-finished",
                f"auction {auction_id!r} takes bids until {a.ends_at} (now={now})",
            )
        winner = a.guy
        escrow = self._escrow(engine)
        positions, risk, markets = DutchAuction._fresh(engine, a.account)
        paused = sorted(m for m in markets if not engine.oracle.liquidation_allowed(m, risk.health))
        if paused:
            raise Refused(
                "liquidation/market-paused",
                f"the feed of {paused} allows no deal at health {float(risk.health):.4f}",
            )
        ctx = engine.context(a.account, winner, txid, positions, risk, markets)
        acct, q = a.account, ctx.quote
        for iid, size in a.lot:
            held = positions.get(iid)
            if held is None or (held.size > 0) != (size > 0) or abs(held.size) < abs(size):
                raise Refused(
                    "auction/lot-mismatch",
                    f"{acct} holds {held.size if held else 0} of {iid}, the lot is {size}",
                )
        specs: dict[AssetId, tuple[SpotCollateral, int]] = {
            spec.asset.id: (spec, bal) for spec, bal in ctx.collateral.items()
        }
        for asset, units in a.collateral:
            spec_bal = specs.get(asset)
            if spec_bal is None or spec_bal[1] < units:
                raise Refused(
                    "auction/lot-mismatch",
                    f"{acct} holds {0 if spec_bal is None else spec_bal[1]} of {asset}, "
                    f"the lot is {units}",
                )
        postings: list[Posting] = []
        changes: list[PositionChange] = []
        notional = sold = 0
        for iid, size in a.lot:
            piece = _trunc(size * a.share)
            if piece == 0:
                continue
            notional += ctx.notional(iid, piece)
            f = AuctionHouse._fill_at_mark(ctx, iid, piece)
            postings += f.postings
            changes += f.position_changes
        for asset, units in a.collateral:
            spec, _ = specs[asset]
            piece = _trunc(units * a.share)
            if piece == 0:
                continue
            sold += collateral_value(
                spec,
                piece,
                ctx.market.index_prices[spec.underlying],
                ctx.market.exchange_rates.get(asset),
            )
            postings += [
                Posting(acct, spec.asset.units(-piece)),
                Posting(winner, spec.asset.units(piece)),
            ]
        postings += [Posting(escrow, q.units(-a.bid)), Posting(acct, q.units(a.bid))]
        c1 = ctx.cash + sum(
            p.amount.units for p in postings if p.account == acct and p.asset == q.id
        )
        due = min(a.penalty, max(a.bid - a.debt, 0))
        fee = min(due, max(c1, 0))
        bad = max(fee - c1, 0)
        st = settle(ctx, fee, bad, self.keeper_share, self.protocol_share, self.waterfall, a.kicker)
        postings += st.postings
        cash_after = c1 - fee + st.covered + st.uncovered
        figures = {
            "notional": notional,
            "seized": max(ctx.cash + sold - cash_after, 0),
            "penalty": fee,
            "keeper_reward": st.keeper_reward,
            "insurance_fee": st.insurance_fee,
            "protocol_fee": st.protocol_fee,
            "bad_debt_covered": st.covered,
            "bad_debt_uncovered": st.uncovered,
        }
        after = replace(a, version=a.version + 1, done=True)
        memo: dict[str, Any] = {
            "account": acct,
            "keeper": winner,
            "mechanism": MECHANISM,
            "step": "deal",
            "now": str(now),
            "equity": str(risk.equity),
            "maintenance_margin": str(risk.maintenance_margin),
            "winner": winner,
            "bid": str(a.bid),
            "share": str(a.share),
            "tab": str(a.tab),
            "cash_before_fee": str(c1),
            "penalty_due": str(due),
            "collateral_sold": str(sold),
            "auction": after.to_memo(),
        }
        memo.update({k: str(v) for k, v in figures.items()})
        tx = Transaction(txid, DEAL, tuple(postings), tuple(changes), memo)
        plan = LiquidationPlan(tx, **figures)
        receipt = engine.ledger.apply(tx)
        if receipt.created:
            self._commit(a, after)
        return FlipResult(acct, receipt.seq, receipt.created, after, tx, plan)

    # ------------------------------------------------------------------ restore

    def restore(self, ledger: Ledger) -> int:
        """Rebuild ``flips`` from ``ledger``'s committed log (replacing what it held);
        returns the number of auctions. The versions of one auction must follow each other
        (else ``StorageCorrupt``)."""
        flips: dict[str, Flip] = {}
        for seq, kind, memo in _step_memos(ledger):
            a = Flip.from_memo(memo["auction"])
            prev = flips.get(a.id)
            expected = 0 if prev is None else prev.version + 1
            if a.version != expected or (kind == KICK) != (prev is None):
                raise StorageCorrupt(
                    f"event seq={seq} ({kind}) carries auction {a.id!r} version "
                    f"{a.version}, {expected} was expected"
                )
            flips[a.id] = a
        self.flips.clear()
        self.flips.update(flips)
        return len(flips)

    # -------------------------------------------------------------- internals

    def _active_for(self, account: AccountId) -> Flip | None:
        for a in self.flips.values():
            if a.account == account and not a.done:
                return a
        return None

    def _live(self, auction_id: str) -> Flip:
        a = self.get(auction_id)
        if a.done:
            raise Refused("auction/finished", f"auction {auction_id!r} was dealt")
        return a

    def _open(self, auction_id: str, now: int) -> Flip:
        """The record, if it still takes bids at ``now``."""
        a = self._live(auction_id)
        if now >= a.ends_at:
            what = "deal it" if a.guy is not None else "tick it to restart"
            raise Refused(
                "auction/finished",
                f"auction {auction_id!r} stopped taking bids at {a.ends_at} (now={now}): {what}",
            )
        return a

    @staticmethod
    def _check_bidder(engine: Engine, a: Flip, bidder: AccountId) -> None:
        if engine.ledger.accounts.get(bidder) is not AccountKind.USER:
            raise InvalidArgument(f"bidder={bidder!r} is not an open user account")
        if bidder == a.account:
            raise InvalidArgument(f"bidder={bidder!r} cannot bid in its own auction")

    def _escrow(self, engine: Engine) -> AccountId:
        escrow = self.escrow_for(engine)
        if engine.ledger.accounts.get(escrow) is not AccountKind.SYSTEM:
            raise InvalidArgument(f"escrow={escrow!r} is not an open system account")
        return escrow

    def _apply(
        self,
        engine: Engine,
        txid: str,
        kind: str,
        before: Flip,
        after: Flip,
        bidder: AccountId,
        now: int,
        moves: list[tuple[AccountId, int]],
        extra: dict[str, Any],
    ) -> FlipResult:
        q = engine.quote
        postings = tuple(Posting(acc, q.units(u)) for acc, u in moves if u)
        memo: dict[str, Any] = {
            "account": before.account,
            "keeper": bidder,
            "mechanism": MECHANISM,
            "step": kind.removeprefix("auction-"),
            "now": str(now),
            "bidder_before": before.guy,
            **{k: str(v) for k, v in extra.items()},
            "auction": after.to_memo(),
        }
        tx = Transaction(txid, kind, postings, (), memo)
        receipt = engine.ledger.apply(tx)
        if receipt.created:
            self._commit(before, after)
        return FlipResult(before.account, receipt.seq, receipt.created, after, tx, None)

    def _commit(self, before: Flip, after: Flip) -> None:
        cur = self.flips.get(before.id)
        if cur is None or cur.version != before.version:
            raise Refused(
                "auction/stale-step",
                f"auction {before.id!r} moved on from version {before.version}",
            )
        self.flips[after.id] = after

    @staticmethod
    def _retried(ledger: Ledger, txid: str, kind: str, auction_id: str) -> FlipResult | None:
        """The committed result of ``txid`` if it is this step of this auction; refused if
        ``txid`` committed something else; ``None`` if it never committed."""
        done = ledger.committed(txid)
        if done is None:
            return None
        receipt, tx = done
        rec = tx.memo.get("auction")
        if (
            tx.kind != kind
            or tx.memo.get("mechanism") != MECHANISM
            or not isinstance(rec, Mapping)
            or rec.get("id") != auction_id
        ):
            raise Refused(
                "ledger/exists-with-different-content",
                f"tx_id={txid!r} committed {tx.kind} at seq {receipt.seq}",
            )
        a = Flip.from_memo(rec)
        plan = LiquidationPlan.from_transaction(tx) if kind == DEAL else None
        return FlipResult(a.account, receipt.seq, False, a, None if kind == TICK else tx, plan)


def _step_memos(ledger: Ledger) -> Iterator[tuple[int, str, Mapping[str, Any]]]:
    """``(seq, kind, memo)`` of every committed English-auction step, in log order (read
    from the ledger's storage, as ``dutch_auction``: call it outside a batch)."""
    storage = ledger._storage
    for seq, _ts, kind, _txid, body, _prev, _hash in storage.event_rows():
        if kind not in _STEP_KINDS:
            continue
        memo = decode(body).get("memo", {})
        if memo.get("mechanism") == MECHANISM and "auction" in memo:
            yield seq, kind, memo
