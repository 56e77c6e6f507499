"""The Dutch auction (``auction.AuctionHouse``) as an engine mechanism: ``dutch-auction``.

``DutchAuction`` is what ``Engine`` is given as its ``mechanism``. The engine drives the
*kick*; keepers drive everything after it through methods that take the engine:

* ``plan(ctx)`` is the kick. The engine calls it for an eligible account (``Engine.step``
  with a keeper, ``Engine.liquidate``), applies ``plan.transaction`` (kind
  ``auction-kick``) and, once it is newly committed, calls ``commit(plan)``, which records
  the auction in the house. A kick that moves nothing (no ``keeper_reward``) is still one
  transaction, without postings, so that every auction starts with a durable log entry
  whose memo carries the record.
* ``holds(account)`` answers ``"auction <id> running"`` while the account's auction is
  live: the engine passes it by in ``step`` and refuses ``liquidate`` (``liquidation/held``).
  It answers ``None`` again once the lot is sold or the auction is terminated.
* ``take``, ``redo``, ``quote`` and ``terminate`` build the context with
  ``engine.context(...)`` at the engine's current index prices and clock (refused with
  ``liquidation/stale-price`` when ``engine.prices_ts`` is older than the oracle's
  ``max_age_s``, as ``Engine.liquidate``), ask the house for the step, write it to the
  ledger, and only then ``house.commit(step)``. A refusal anywhere leaves the ledger and
  the house as they were.
* ``redo`` and ``terminate`` move no money; each is logged with ``ledger.record`` (kinds
  ``auction.redo`` and ``auction.terminate``), its memo carrying the record after it.
* ``restore(ledger)`` rebuilds the house from the log: every ``auction-kick``,
  ``auction-take``, ``auction.redo`` and ``auction.terminate`` memo carries the record after
  its step (``Auction.from_memo``), so a restarted engine continues the auctions.

Healthy again mid-auction. Maker keeps an auction running whatever the vault's collateral
ratio does; Lyra/Derive ends a solvent auction once the account is back above maintenance.
Here the auction keeps running (takes stay allowed, as in Maker) until someone calls
``terminate``, which anyone may do once ``engine.risk(account)`` is no longer liquidatable
at the current prices (``equity >= maintenance_margin``). Termination ends the auction with
the rest of the lot left with the account; the penalty not yet collected (``tab``) is
forgiven; what earlier takes paid stays paid.

Flash takes. The callback may only add legs of the *taker*: a posting that debits any other
account, any posting to the liquidated account and any position change of an account other
than the taker are refused with ``InvalidArgument`` naming the leg (whether a third party
consents to a debit is outside what the engine can know). The ledger checks balances net of
the whole transaction, so a taker may pay with what the take credits it, and a taker who
cannot pay is refused with ``ledger/negative-balance`` and nothing moves.

Retries. Every keeper-facing call takes a ``txid``; calling again with a committed one
returns the committed result (``created=False``) without touching the house.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final

from liqeng.errors import InvalidArgument, Refused, StorageCorrupt
from liqeng.ids import AccountId, InstrumentId, check_id, tx_id
from liqeng.ledger.core import Ledger
from liqeng.ledger.events import decode
from liqeng.ledger.model import AccountKind, Position, PositionChange, Posting, Transaction
from liqeng.liquidation.auction import (
    MECHANISM,
    Auction,
    AuctionHouse,
    FlashCallback,
    FlashQuote,
    Quote,
    Step,
)
from liqeng.liquidation.base import PLAN_FIGURES, LiquidationContext, LiquidationPlan
from liqeng.liquidation.curves import RAY, Curve, StairstepExponentialDecrease
from liqeng.liquidation.keeper import KeeperReward
from liqeng.liquidation.penalty import AdaptivePenalty
from liqeng.liquidation.settle import FUNDED
from liqeng.liquidation.sizing import DustRule
from liqeng.liquidation.waterfall import Waterfall
from liqeng.market.marks import Unsettled
from liqeng.risk.margin import AccountRisk

if TYPE_CHECKING:
    from liqeng.engine import Engine

__all__ = ["AuctionResult", "DutchAuction"]

KICK: Final = "auction-kick"
TAKE: Final = "auction-take"
REDO: Final = "auction.redo"
TERMINATE: Final = "auction.terminate"
_STEP_KINDS: Final = frozenset({KICK, TAKE, REDO, TERMINATE})


@dataclass(frozen=True, slots=True)
class AuctionResult:
    """A committed auction step, like ``engine.Liquidation``: the account, the ledger
    ``seq`` of the step's event, ``created`` (False when it answers a retried ``txid``),
    the record after the step and the plan (``None`` for a redo or a termination)."""

    account: AccountId
    seq: int
    created: bool
    auction: Auction
    plan: LiquidationPlan | None


def _default_curve() -> Curve:
    # Maker-style stair-step: -1% every 90 s
    return StairstepExponentialDecrease(cut=99 * RAY // 100, step=90)


@dataclass(frozen=True)
class DutchAuction:
    """Dutch auctions of whole books, in the engine (see the module doc).

    The parameters are ``AuctionHouse``'s: ``curve`` (any ``curves`` curve; default
    -1% every 90 s), ``buf`` (RAY factor over the mark the auction opens at; default
    1.10), ``tail`` (seconds before a reset is needed; default 2 h 20 min), ``cusp`` (RAY
    fraction of ``top`` below which a reset is needed; default 0.40), ``penalty_rate``,
    ``keeper_share``, ``protocol_share`` (parts per ``RATE_SCALE``), ``keeper_reward`` (the
    kick incentive), ``dust`` (on the remaining lot's notional) and ``waterfall``. With an
    ``AdaptivePenalty`` the kick's tab rate is its rate at the account's health and the
    markets' vol, and the curve runs ``factor(σ)`` times faster (``auction_params``): a
    stressed market's auction falls faster. The configuration is frozen; the auctions
    live in ``house``.
    """

    curve: Curve = field(default_factory=_default_curve)
    buf: int = 110 * RAY // 100
    tail: int = 8_400
    cusp: int = 40 * RAY // 100
    penalty_rate: int = 50_000_000
    keeper_share: int = 0
    protocol_share: int = 0
    keeper_reward: KeeperReward | None = None
    dust: DustRule | None = None
    waterfall: Waterfall = field(default_factory=lambda: Waterfall(FUNDED))
    penalty: AdaptivePenalty | None = None
    name: str = MECHANISM
    house: AuctionHouse = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.penalty is not None and not isinstance(self.penalty, AdaptivePenalty):
            raise InvalidArgument(f"penalty={self.penalty!r} must be an AdaptivePenalty or None")
        if self.name != MECHANISM:
            # the house writes ``mechanism: "dutch-auction"`` into every memo
            raise InvalidArgument(f"name={self.name!r} must be {MECHANISM!r}")
        house = AuctionHouse(
            self.curve,
            buf=self.buf,
            tail=self.tail,
            cusp=self.cusp,
            penalty_rate=self.penalty_rate,
            keeper_share=self.keeper_share,
            protocol_share=self.protocol_share,
            keeper_reward=self.keeper_reward,
            dust=self.dust,
            waterfall=self.waterfall,
        )
        object.__setattr__(self, "house", house)

    # ------------------------------------------------------ the engine's contract

    def plan(self, ctx: LiquidationContext) -> LiquidationPlan:
        """The kick of ``ctx.account``'s whole book (``ctx.keeper`` kicks), at
        ``ctx.market.now_ts``, as one ``auction-kick`` transaction with id ``ctx.tx_id``;
        the auction's id is ``auction_id_for(ctx.account, ctx.tx_id)``."""
        now = ctx.market.now_ts
        rate, speed = None, Fraction(1)
        if self.penalty is not None:
            params = self.penalty.auction_params(
                ctx.risk.health, ctx.realised_vol, ctx.implied_vol, 0
            )
            rate, speed = params.start_discount, params.speed
        step = self.house.kick(
            ctx,
            self.auction_id_for(ctx.account, ctx.tx_id),
            now,
            ctx.gas_price,
            ctx.quote_per_gas,
            rate,
            speed,
        )
        if step.plan is not None:
            return step.plan
        # no incentive: nothing moves, but the kick is still logged, with the record
        a = step.auction
        notional = sum(ctx.notional(iid, size) for iid, size in a.lot)
        memo: dict[str, Any] = {
            "account": ctx.account,
            "keeper": ctx.keeper,
            "mechanism": MECHANISM,
            "step": "kick",
            "now": str(now),
            "equity": str(ctx.risk.equity),
            "maintenance_margin": str(ctx.risk.maintenance_margin),
            "auction": a.to_memo(),
        }
        memo.update({k: "0" for k in PLAN_FIGURES})
        memo["notional"] = str(notional)
        tx = Transaction(ctx.tx_id, KICK, (), (), memo)
        return LiquidationPlan(tx, notional, 0, 0, 0, 0, 0, 0, 0)

    def commit(self, plan: LiquidationPlan) -> Auction:
        """Record the kick whose transaction the engine committed (``plan`` from ``plan``)."""
        tx = plan.transaction
        memo = tx.memo
        if tx.kind != KICK or memo.get("mechanism") != MECHANISM or "auction" not in memo:
            raise InvalidArgument(f"plan of tx {tx.id!r} (kind={tx.kind!r}) is not a kick")
        return self.house.commit(Step("kick", Auction.from_memo(memo["auction"]), -1, plan))

    def mark(self) -> dict[str, Auction]:
        """A point to ``rollback`` to: the auction records now (they are frozen)."""
        return dict(self.house.auctions)

    def rollback(self, mark: dict[str, Auction]) -> None:
        """Forget every step committed since ``mark`` (its ledger batch rolled back)."""
        self.house.auctions.clear()
        self.house.auctions.update(mark)

    def holds(self, account: AccountId) -> str | None:
        """``"auction <id> running"`` while ``account``'s auction is live, else ``None``."""
        a = self.house.active_for(account)
        return None if a is None else f"auction {a.id} running"

    @staticmethod
    def auction_id_for(account: AccountId, txid: str) -> str:
        """The id of the auction kicked by ``txid``: ``<account's namespace>/<txid>``
        with ``/`` turned into ``:`` (a hash of ``txid`` when that is not a valid id)."""
        namespace = account.split("/", 1)[0]
        name = txid.replace("/", ":")
        candidate = f"{namespace}/{name}"
        try:
            return check_id("auction_id", candidate)
        except InvalidArgument:
            digest = hashlib.sha256(txid.encode()).hexdigest()[:32]
            return check_id("auction_id", f"{namespace}/kick-{digest}")

    # ------------------------------------------------------- keeper operations

    def quote(self, engine: Engine, auction_id: str) -> Quote:
        """The price of all of the remaining lot now (``Quote``: the curve ``factor``,
        ``base``, ``price`` (> 0: the taker pays), ``concession``, ``needs_reset``), at the
        engine's current prices and clock."""
        a = self._live(auction_id)
        _, risk, _ = self._fresh(engine, a.account)
        return self.house.price(a, engine.clock.now(), risk.equity)

    def take(
        self,
        engine: Engine,
        auction_id: str,
        keeper: AccountId,
        fraction: Fraction | int,
        max_price: int,
        txid: str,
        flash: FlashCallback | None = None,
    ) -> AuctionResult:
        """``keeper`` buys ``fraction`` (``0 < fraction <= 1``, a ``Fraction`` or int) of
        the remaining lot if the price of all of it now is ``<= max_price`` (signed quote
        units). One ``auction-take`` transaction with id ``txid``; see the module doc for
        ``flash``. Refusals (nothing changes): ``auction/not-found``, ``auction/finished``,
        ``auction/needs-reset``, ``auction/price-above-max``, ``auction/lot-mismatch``,
        ``liquidation/stale-price``, ``liquidation/market-paused``,
        ``liquidation/unsettled``, ``ledger/negative-balance`` (the taker cannot pay),
        ``ledger/exists-with-different-content`` (``txid`` used by something else)."""
        tx_id(txid)
        done = self._retried(engine.ledger, txid, TAKE, auction_id)
        if done is not None:
            return done
        a = self._live(auction_id)
        self._check_user(engine, "keeper", keeper)
        positions, risk, markets = self._fresh(engine, a.account)
        paused = sorted(m for m in markets if not engine.oracle.liquidation_allowed(m, risk.health))
        if paused:
            raise Refused(
                "liquidation/market-paused",
                f"the feed of {paused} allows no take at health {float(risk.health):.4f}",
            )
        ctx = engine.context(a.account, keeper, txid, positions, risk, markets)
        guarded = None if flash is None else _guard(flash, keeper, a.account)
        step = self.house.take(
            ctx, auction_id, fraction, max_price, ctx.market.now_ts, flash=guarded
        )
        assert step.plan is not None  # a take always moves something
        receipt = engine.ledger.apply(step.plan.transaction)
        if receipt.created:
            self.house.commit(step)
        return AuctionResult(a.account, receipt.seq, receipt.created, step.auction, step.plan)

    def redo(
        self,
        engine: Engine,
        auction_id: str,
        keeper: AccountId,
        txid: str,
        new_top: int | None = None,
    ) -> AuctionResult:
        """Maker's ``redo``: restart the curve now at ``buf`` (or ``new_top``), once the
        auction ``needs_reset`` (else ``auction/no-reset-needed``). Nothing moves; the
        reset is logged as an ``auction.redo`` event with id ``txid``. Also refused with
        ``liquidation/stale-price``."""
        tx_id(txid)
        done = self._retried(engine.ledger, txid, REDO, auction_id)
        if done is not None:
            return done
        a = self._live(auction_id)
        self._check_user(engine, "keeper", keeper)
        self._fresh(engine, a.account)
        now = engine.clock.now()
        phi, _ = self.house.status(a, now)
        step = self.house.redo(auction_id, now, new_top)
        memo = {
            "account": a.account,
            "keeper": keeper,
            "mechanism": MECHANISM,
            "step": "redo",
            "now": str(now),
            "factor_before": str(phi),
            "top_before": str(a.top),
            "tic_before": str(a.tic),
            "auction": step.auction.to_memo(),
        }
        receipt = engine.ledger.record(txid, REDO, memo)
        if receipt.created:
            self.house.commit(step)
        return AuctionResult(a.account, receipt.seq, receipt.created, step.auction, None)

    def terminate(self, engine: Engine, auction_id: str, txid: str) -> AuctionResult:
        """End the auction once its account is no longer liquidatable at the current prices
        (``engine.risk``: ``equity >= maintenance_margin``); else
        ``auction/still-liquidatable``. The rest of the lot stays with the account and the
        uncollected ``tab`` is forgiven. Logged as an ``auction.terminate`` event with id
        ``txid``. Also refused with ``liquidation/stale-price``."""
        tx_id(txid)
        done = self._retried(engine.ledger, txid, TERMINATE, auction_id)
        if done is not None:
            return done
        a = self._live(auction_id)
        _, risk, _ = self._fresh(engine, a.account)
        if risk.is_liquidatable:
            raise Refused(
                "auction/still-liquidatable",
                f"auction {auction_id!r}: {a.account} equity={risk.equity} < "
                f"maintenance_margin={risk.maintenance_margin}",
            )
        after = replace(a, version=a.version + 1, done=True)
        memo = {
            "account": a.account,
            "mechanism": MECHANISM,
            "step": "terminate",
            "now": str(engine.clock.now()),
            "equity": str(risk.equity),
            "maintenance_margin": str(risk.maintenance_margin),
            "tab_forgiven": str(a.tab),
            "auction": after.to_memo(),
        }
        receipt = engine.ledger.record(txid, TERMINATE, memo)
        if receipt.created:
            self.house.commit(Step("terminate", after, a.version, None))
        return AuctionResult(a.account, receipt.seq, receipt.created, after, None)

    # ------------------------------------------------------------------ restore

    def restore(self, ledger: Ledger) -> int:
        """Rebuild the house from ``ledger``'s committed log (replacing what it held);
        returns the number of auctions. Each step's memo carries the record after it; the
        versions of one auction must follow each other (else ``StorageCorrupt``)."""
        auctions: dict[str, Auction] = {}
        for seq, kind, memo in _step_memos(ledger):
            a = Auction.from_memo(memo["auction"])
            prev = auctions.get(a.id)
            expected = 0 if prev is None else prev.version + 1
            if a.version != expected or (kind == KICK) != (prev is None):
                raise StorageCorrupt(
                    f"event seq={seq} ({kind}) carries auction {a.id!r} version "
                    f"{a.version}, {expected} was expected"
                )
            auctions[a.id] = a
        self.house.auctions.clear()
        self.house.auctions.update(auctions)
        return len(auctions)

    # -------------------------------------------------------------- internals

    def _live(self, auction_id: str) -> Auction:
        a = self.house.get(auction_id)
        if a.done:
            raise Refused("auction/finished", f"auction {auction_id!r} is over")
        return a

    @staticmethod
    def _check_user(engine: Engine, what: str, account: AccountId) -> None:
        if engine.ledger.accounts.get(account) is not AccountKind.USER:
            raise InvalidArgument(f"{what}={account!r} is not an open user account")

    @staticmethod
    def _fresh(
        engine: Engine, account: AccountId
    ) -> tuple[dict[InstrumentId, Position], AccountRisk, set[str]]:
        """The account's positions, its risk now and the underlyings it trades or holds as
        collateral; refused when the index prices are stale or missing (as
        ``Engine.liquidate``) or an expired instrument is not settled yet."""
        now = engine.clock.now()
        if engine.prices_ts is None or now - engine.prices_ts > engine.oracle.max_age_s:
            raise Refused(
                "liquidation/stale-price",
                f"index prices from ts={engine.prices_ts} are too old at now={now}",
            )
        positions = engine.ledger.positions_of(account)
        markets: set[str] = set()
        for iid in positions:
            inst = engine.instruments.get(iid)
            if inst is None:
                raise InvalidArgument(f"instrument={iid!r} is in the ledger but not in the engine")
            markets.add(inst.underlying)
        markets |= {
            spec.underlying
            for asset, spec in engine.collateral.items()
            if engine.ledger.balance_units(account, asset) > 0
        }
        missing = markets - set(engine.index_prices)
        if missing:
            raise Refused("liquidation/stale-price", f"no index price for {sorted(missing)}")
        try:
            risk = engine.risk(account, positions)
        except Unsettled as exc:
            raise Refused("liquidation/unsettled", str(exc)) from None
        return positions, risk, markets

    @staticmethod
    def _retried(ledger: Ledger, txid: str, kind: str, auction_id: str) -> AuctionResult | None:
        """The committed result of ``txid`` if it is this step of this auction; refused if
        ``txid`` committed something else; ``None`` if it never committed."""
        done = ledger.committed(txid)
        if done is None:
            return None
        receipt, tx = done
        rec = tx.memo.get("auction")
        if tx.kind != kind or not isinstance(rec, Mapping) or rec.get("id") != auction_id:
            raise Refused(
                "ledger/exists-with-different-content",
                f"tx_id={txid!r} committed {tx.kind} at seq {receipt.seq}",
            )
        a = Auction.from_memo(rec)
        plan = LiquidationPlan.from_transaction(tx) if kind == TAKE else None
        return AuctionResult(a.account, receipt.seq, False, a, plan)


def _guard(flash: FlashCallback, taker: AccountId, account: AccountId) -> FlashCallback:
    """``flash``, refusing any leg that is not the taker's own (module doc)."""

    def guarded(fq: FlashQuote) -> tuple[tuple[Posting, ...], tuple[PositionChange, ...]]:
        out = flash(fq)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise InvalidArgument(f"flash callback returned {out!r}, not (postings, changes)")
        postings, changes = out
        if not isinstance(postings, tuple) or not isinstance(changes, tuple):
            raise InvalidArgument("flash callback must return (postings, position_changes)")
        for p in postings:
            if not isinstance(p, Posting):
                raise InvalidArgument(f"flash posting {p!r} is not a Posting")
            if p.account == account:
                raise InvalidArgument(
                    f"flash posting {p!r} changes the liquidated account {account!r}"
                )
            if p.amount.units < 0 and p.account != taker:
                raise InvalidArgument(
                    f"flash posting {p!r} debits {p.account!r}, not the taker {taker!r}"
                )
        for c in changes:
            if not isinstance(c, PositionChange):
                raise InvalidArgument(f"flash position change {c!r} is not a PositionChange")
            if c.account != taker:
                raise InvalidArgument(
                    f"flash position change {c!r} is of {c.account!r}, not the taker {taker!r}"
                )
        return postings, changes

    return guarded


def _step_memos(ledger: Ledger) -> Iterator[tuple[int, str, Mapping[str, Any]]]:
    """``(seq, kind, memo)`` of every committed auction step, in log order.

    The ledger has no public reader of its log yet, so this reads its storage's rows
    (``Storage.event_rows``): call it outside a batch, when the log is all in storage."""
    storage = ledger._storage
    for seq, _ts, kind, _txid, body, _prev, _hash in storage.event_rows():
        if kind not in _STEP_KINDS:
            continue
        memo = decode(body).get("memo", {})
        if memo.get("mechanism") == MECHANISM and "auction" in memo:
            yield seq, kind, memo
