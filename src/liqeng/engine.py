"""One engine step: oracle -> risk -> liquidation -> ledger -> events.

``Engine.step(reports, keeper)`` accepts source reports, aggregates the index prices,
records them in the log, settles every instrument that has expired at the first index
price at or after its expiry (a ``market.settlement`` event), screens every account
holding positions with the vectorised scan (``liqeng.risk.scan``; its book is rebuilt only
when the ledger's state changed) and re-checks the candidates with the exact integer path
(each underlying by its market's margin model, ``liqeng.risk.models``), and liquidates the
liquidatable ones in ``(health, account_id)`` order, all inside one ledger batch (one
durable database transaction). With every market on per-position margin the screen is
``liqeng.risk.scan``; with every market on one scenario model it covers,
``liqeng.risk.scenario_scan``; otherwise every account is re-checked exactly.
``Engine.liquidate`` is the same path a keeper's request takes: eligibility is re-checked
against the index price current at execution (refused when older than the oracle's
``max_age_s``), never the price the keeper saw, at the time of the driver's clock, never a
time the caller names. The engine reads no wall clock and no random generator: the clock it
shares with the ledger and the reports come from the driver.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from liqeng.clock import Clock
from liqeng.errors import InvalidArgument, Refused
from liqeng.ids import AccountId, AssetId, InstrumentId, TxId, tx_id
from liqeng.ledger.core import Ledger
from liqeng.ledger.model import AccountKind, Position
from liqeng.liquidation.base import LiquidationContext, LiquidationPlan, Mechanism, SystemAccounts
from liqeng.liquidation.fixed_fee import FixedFee
from liqeng.liquidation.limits import Limits, Throttle
from liqeng.liquidation.penalty import implied_atm_vol, realised_vol
from liqeng.liquidation.sizing import self_liquidation_window
from liqeng.liquidation.surcharge import Surcharge
from liqeng.market.instruments import DatedFuture, EuropeanOption, Instrument, SpotCollateral
from liqeng.market.marks import Unsettled, Vol, option_vol
from liqeng.market.surface import VolSurface
from liqeng.oracle.feed import Feed, MarketPrice
from liqeng.oracle.reports import SourceReport
from liqeng.risk.margin import AccountRisk, MarginParams
from liqeng.risk.models import (
    MarginModel,
    MarketData,
    PerPosition,
    Scenario,
    market_account_risk,
)
from liqeng.risk.scan import Book, candidates, scan
from liqeng.risk.scenario_scan import ScenarioBook, check_model, scenario_scan
from liqeng.risk.scenario_scan import candidates as scenario_candidates
from liqeng.units import RATE_SCALE, Asset, check_int, mul_div_up

__all__ = ["BatchReport", "Engine", "Liquidation", "SelfLiquidation", "StepReport"]


def _txid(prefix: str, account: AccountId) -> str:
    """``"{prefix}:{account}"``, or ``"{prefix}:h-{sha256(account)[:40]}"`` when that would
    pass the 191 characters a transaction id may have."""
    txid = f"{prefix}:{account}"
    if len(txid) <= 191:
        return txid
    return f"{prefix}:h-{hashlib.sha256(account.encode()).hexdigest()[:40]}"


@dataclass(frozen=True, slots=True)
class Liquidation:
    """A committed liquidation: ``created`` is False when it answers a retried id."""

    account: AccountId
    seq: int
    created: bool
    plan: LiquidationPlan


@dataclass(frozen=True, slots=True)
class SelfLiquidation:
    """An account that just became liquidatable may close itself without penalty for
    ``window_s`` seconds (``Engine.self_liquidate``); keepers wait, unless its health is
    below ``hard_floor`` (``sizing.self_liquidation_window``)."""

    window_s: int
    hard_floor: Fraction

    def __post_init__(self) -> None:
        check_int("window_s", self.window_s, 0)
        f = self.hard_floor
        if isinstance(f, bool) or not isinstance(f, (int, Fraction)) or not 0 <= f <= 1:
            raise InvalidArgument(f"hard_floor={f!r} must be a Fraction in [0, 1]")


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What one ``liquidate_batch`` did: the liquidations committed (most at risk first),
    the accounts refused with their codes, and the notional budget left (``None``: none
    was set)."""

    liquidations: tuple[Liquidation, ...]
    refused: tuple[tuple[AccountId, str], ...]
    notional_left: int | None


@dataclass(frozen=True, slots=True)
class StepReport:
    """What one step did. ``refused`` pairs an account with the refusal code of its
    liquidation (e.g. the keeper could not pay for what it would take, or its market's feed
    is halted: ``liquidation/market-paused``); the step goes on. ``feed`` is the oracle's
    output per market (price, sources agreed, health, breaker)."""

    now: int
    index_prices: Mapping[str, int]
    rejected_reports: tuple[str, ...] = ()
    liquidations: tuple[Liquidation, ...] = ()
    underwater: tuple[AccountId, ...] = ()
    refused: tuple[tuple[AccountId, str], ...] = ()
    feed: Mapping[str, MarketPrice] = field(default_factory=dict)


class Engine:
    """Sequences one protocol's step over a ledger, an oracle and a mechanism.

    ``margin`` is the per-position model and flat option vol of every underlying not in
    ``markets`` (underlying -> ``MarginModel``). ``collateral`` lists the tokens counted
    toward equity. The driver sets market data the oracle does not carry: ``vols``
    (underlying -> flat vol or ``VolSurface``), ``exchange_rates`` (LST asset -> parts
    per ``RATE_SCALE``), ``gas_price`` and ``quote_per_gas`` (keeper rewards);
    ``settlements`` is kept by ``step``, and so are the last ``vol_window`` index prices
    per market (realised vol). ``liquidity`` (market -> quote notional it absorbs per
    window) sizes the ``limits``' capacity. Eligibility counts, besides the margin model,
    the mechanism's ``surcharge`` (a keeper reward reserved in the requirement) and the
    closing cost ``closing_cost_rate`` (parts per ``RATE_SCALE`` of notional), both added
    to the maintenance margin (``liquidation.surcharge``). ``held`` maps an account a
    mechanism has taken over (an auction runs on it) to why: ``step`` passes it by and
    ``liquidate`` refuses it.
    """

    def __init__(
        self,
        ledger: Ledger,
        oracle: Feed,
        *,
        clock: Clock,
        quote: Asset,
        instruments: Mapping[InstrumentId, Instrument],
        margin: MarginParams,
        mechanism: Mechanism,
        system: SystemAccounts,
        markets: Mapping[str, MarginModel] | None = None,
        collateral: Iterable[SpotCollateral] = (),
        screen: bool = True,
        band_eligibility: bool = True,
        vol_window: int = 60,
        closing_cost_rate: int = 0,
        limits: Limits | None = None,
        self_liquidation: SelfLiquidation | None = None,
    ) -> None:
        self.ledger = ledger
        self.oracle = oracle
        self.clock = clock
        self.quote = quote
        self.instruments = dict(instruments)
        if not isinstance(margin, MarginParams):
            raise InvalidArgument(f"margin={margin!r} must be MarginParams")
        self.margin = margin
        self.markets: dict[str, MarginModel] = dict(markets or {})
        for underlying, model in self.markets.items():
            if not isinstance(model, MarginModel):
                raise InvalidArgument(f"markets[{underlying!r}]={model!r} is not a MarginModel")
        self.collateral: dict[AssetId, SpotCollateral] = {}
        for spec in collateral:
            if not isinstance(spec, SpotCollateral):
                raise InvalidArgument(f"collateral={spec!r} must be a SpotCollateral")
            self.collateral[spec.asset.id] = spec
        self.mechanism = mechanism
        self.system = system
        self.index_prices: dict[str, int] = {}
        self.prices_ts: int | None = None
        self.vols: dict[str, Vol] = {}
        self.exchange_rates: dict[AssetId, int] = {}
        self.settlements: dict[InstrumentId, int] = {}
        self.screen = screen
        self.band_eligibility = band_eligibility
        self.bands: dict[str, tuple[int, int]] = {}
        self.gas_price = 0
        self.held: dict[AccountId, str] = {}
        self.liquidity: dict[str, int] = {}
        self.closing_cost_rate = check_int("closing_cost_rate", closing_cost_rate, 0, RATE_SCALE)
        self.throttle = None if limits is None else Throttle(limits)
        if self_liquidation is not None and not isinstance(self_liquidation, SelfLiquidation):
            raise InvalidArgument(f"self_liquidation={self_liquidation!r} must be SelfLiquidation")
        self.self_liquidation = self_liquidation
        self._eligible_since: dict[AccountId, int] = {}
        self._surcharges: tuple[Mechanism, int, tuple[Surcharge, ...]] | None = None
        self._self_close = FixedFee(0, 0, 0, name="self-liquidation")
        self.quote_per_gas = 0
        self.vol_window = vol_window
        self._history: dict[str, tuple[tuple[int, int], ...]] = {}
        self._realised: dict[str, float] = {}
        # (ledger.state_version, every account's positions) and (…, book, its scenario form)
        self._positions: tuple[int, Mapping[AccountId, Mapping[InstrumentId, Position]]] | None = (
            None
        )
        self._book: tuple[int, Book, ScenarioBook | None] | None = None
        self._default_model = PerPosition(self.margin)
        # the market data of the step running now (None between steps): built and checked
        # once per step instead of once per account
        self._step_market: MarketData | None = None
        # the highest realised and implied vol per set of markets, during a step
        self._step_vols: dict[frozenset[str], tuple[float, float]] = {}

    def market(self) -> MarketData:
        """The market data the engine values with now (prices, clock, vols, settlements)."""
        now = self.clock.now()
        step_market = self._step_market
        if step_market is not None and step_market.now_ts == now:
            return step_market
        return MarketData(
            now,
            self.index_prices,
            self.vols,
            self.margin.vol,
            self.settlements,
            self.exchange_rates,
        )

    def risk(
        self,
        account: AccountId,
        positions: Mapping[InstrumentId, Position] | None = None,
        index_prices: Mapping[str, int] | None = None,
    ) -> AccountRisk:
        """The exact risk of ``account`` at the current market data and clock (or at
        ``index_prices`` instead of the current ones)."""
        held = self._collateral_of(account)
        market = self.market()
        if index_prices is not None:
            market = replace(market, index_prices=index_prices)
        pos = self.ledger.positions_of(account) if positions is None else positions
        risk = market_account_risk(
            self.ledger.balance_units(account, self.quote.id),
            pos,
            self.instruments,
            market,
            self.markets,
            self._per_position(),
            held,
        )
        surcharges = self.surcharges()
        if surcharges and pos:
            n = sum(self._by_market(pos, market.index_prices).values())
            extra = sum(s.of(n) for s in surcharges)
            mm = risk.maintenance_margin + extra
            risk = AccountRisk(risk.equity, mm, risk.initial_margin + extra)
        return risk

    def surcharges(self) -> tuple[Surcharge, ...]:
        """What eligibility adds to the maintenance margin: the mechanism's ``surcharge``
        (if it has one) and the closing cost; built once per mechanism and rate (it is read
        for every account the engine values)."""
        cached = self._surcharges
        if (
            cached is not None
            and cached[0] is self.mechanism
            and cached[1] == self.closing_cost_rate
        ):
            return cached[2]
        out = []
        mech = getattr(self.mechanism, "surcharge", None)
        if isinstance(mech, Surcharge):
            out.append(mech)
        if self.closing_cost_rate:
            out.append(Surcharge(rate=self.closing_cost_rate))
        self._surcharges = (self.mechanism, self.closing_cost_rate, tuple(out))
        return self._surcharges[2]

    def _by_market(
        self, positions: Mapping[InstrumentId, Position], index_prices: Mapping[str, int]
    ) -> dict[str, int]:
        """Notional per underlying: ``Σ ceil(|size|·index / 10**size_decimals)``."""
        out: dict[str, int] = {}
        for iid, pos in positions.items():
            inst = self._instrument(iid)
            u = inst.underlying
            n = mul_div_up(abs(pos.size), index_prices[u], 10**inst.size_decimals)
            out[u] = out.get(u, 0) + n
        return out

    def _per_position(self) -> PerPosition:
        """``PerPosition(self.margin)``, kept while ``self.margin`` is the same object."""
        if self._default_model.params is not self.margin:
            self._default_model = PerPosition(self.margin)
        return self._default_model

    def _collateral_of(self, account: AccountId) -> dict[SpotCollateral, int]:
        """The collateral ``account`` holds: ``{spec: balance}`` for non-zero balances."""
        return {
            spec: units
            for asset, spec in self.collateral.items()
            if (units := self.ledger.balance_units(account, asset)) != 0
        }

    def eligible(
        self,
        account: AccountId,
        positions: Mapping[InstrumentId, Position] | None = None,
    ) -> tuple[AccountRisk, str | None]:
        """The exact risk of ``account`` and why it may *not* be liquidated (``None``: it
        may). Liquidatable means ``equity < maintenance_margin`` at the index and, with
        ``band_eligibility``, also at the healthiest corner of the feed bands: each
        underlying the account trades or holds as collateral at whichever of its band's
        low end, index or high end leaves the account the most ``equity - maintenance``
        (risk is a sum over underlyings, so that corner is the healthiest one). A value
        that is not monotone in the price (options) can be healthier inside the band;
        that is not covered."""
        pos = self.ledger.positions_of(account) if positions is None else positions
        risk = self.risk(account, pos)
        if not risk.is_liquidatable:
            return risk, "not-liquidatable"
        if not self.band_eligibility:
            return risk, None
        bands = self.bands
        if not any(band[0] != band[1] for band in bands.values()):
            return risk, None  # every band is one price: the corner is the index itself
        markets = {self._instrument(i).underlying for i in pos} | {
            spec.underlying for spec in self._collateral_of(account)
        }
        corner = dict(self.index_prices)
        for m in sorted(markets):
            band = self.bands.get(m)
            index = self.index_prices.get(m)
            if band is None or index is None or band[0] == band[1]:
                continue
            best = risk.equity - risk.maintenance_margin
            for end in band:
                if end != index:
                    r = self.risk(account, pos, {**self.index_prices, m: end})
                    if r.equity - r.maintenance_margin > best:
                        best, corner[m] = r.equity - r.maintenance_margin, end
        if corner != self.index_prices and not self.risk(account, pos, corner).is_liquidatable:
            moved = {m: p for m, p in sorted(corner.items()) if p != self.index_prices[m]}
            return risk, f"not-liquidatable at the healthiest corner of the feed bands {moved}"
        return risk, None

    def _instrument(self, iid: InstrumentId) -> Instrument:
        inst = self.instruments.get(iid)
        if inst is None:
            raise InvalidArgument(f"instrument={iid!r} is in the ledger but not in the engine")
        return inst

    def liquidate(self, account: AccountId, keeper: AccountId, txid: str) -> Liquidation:
        """Re-check ``account`` now and liquidate it, or raise ``Refused`` changing nothing.

        ``txid`` is the keeper's idempotency key: retrying a committed liquidation returns
        it again (``created=False``) instead of trying a second one.
        """
        done, positions, risk, markets = self._prepare(account, keeper, txid)
        if done is not None:
            return done
        return self._execute(account, keeper, txid, positions, risk, markets)

    def self_liquidate(self, account: AccountId, counterparty: AccountId, txid: str) -> Liquidation:
        """The owner of ``account`` closes its whole book to ``counterparty`` at mark,
        without penalty (``FixedFee`` at rate 0), while its self-liquidation window is open
        (``SelfLiquidation``); else ``Refused("liquidation/window-closed")``."""
        sl = self.self_liquidation
        if sl is None:
            raise InvalidArgument("self_liquidate needs Engine(self_liquidation=...)")
        done, positions, risk, markets = self._prepare(account, counterparty, txid)
        if done is not None:
            return done
        now = self.clock.now()
        since = self._eligible_since.get(account, now)
        if not self_liquidation_window(since, now, sl.window_s, risk.health, sl.hard_floor):
            raise Refused(
                "liquidation/window-closed",
                f"{account} became liquidatable at ts={since}; the window of {sl.window_s}s "
                f"(hard floor {sl.hard_floor}) is closed at ts={now}, health {risk.health}",
            )
        return self._execute(
            account, counterparty, txid, positions, risk, markets, mechanism=self._self_close
        )

    def liquidate_batch(
        self,
        keeper: AccountId,
        batch_id: str,
        *,
        max_count: int | None = None,
        max_notional: int | None = None,
    ) -> BatchReport:
        """Liquidate the liquidatable accounts at the current prices, most at risk first
        (by ``(health, account id)``, across markets), until ``max_count`` liquidations or
        ``max_notional`` notional closed (the last one partial if the mechanism sizes by
        ``max_notional``). Each item is its own ledger transaction (id
        ``"{batch_id}:{account}"``, or a hash of the account when that is too long)
        re-checked at execution; a refused item is reported and
        leaves the others applied and itself untouched."""
        if self.ledger.accounts.get(keeper) is not AccountKind.USER:
            raise InvalidArgument(f"keeper={keeper!r} is not an open user account")
        tx_id(f"{batch_id}:h-{'0' * 40}")
        if max_count is not None:
            check_int("max_count", max_count, 1)
        if max_notional is not None:
            check_int("max_notional", max_notional, 1)
        self._check_fresh(self.clock.now())
        done: list[Liquidation] = []
        refused: list[tuple[AccountId, str]] = []
        throttled = None if self.throttle is None else self.throttle.snapshot()
        mark = self._mark()
        try:
            with self.ledger.batch():
                self._step_market = self.market()
                left = self._work(
                    self._liquidatable(),
                    keeper,
                    lambda a: _txid(batch_id, a),
                    done,
                    refused,
                    max_count,
                    max_notional,
                    savepoints=True,
                )
        except BaseException:
            if self.throttle is not None and throttled is not None:
                self.throttle.restore(throttled)
            self._rollback(mark)
            raise
        finally:
            self._step_market = None
            self._step_vols = {}
        return BatchReport(tuple(done), tuple(refused), left)

    def _work(
        self,
        eligible: list[
            tuple[float, AccountId, Mapping[InstrumentId, Position], AccountRisk, int, int]
        ],
        keeper: AccountId,
        txid_of: Callable[[AccountId], str],
        done: list[Liquidation],
        refused: list[tuple[AccountId, str]],
        max_count: int | None = None,
        budget: int | None = None,
        savepoints: bool = False,
    ) -> int | None:
        """Liquidate ``eligible`` in order with ``keeper`` under the budget; returns the
        notional budget left. With ``savepoints`` each item runs in a nested batch."""
        touched = False  # an earlier item changed other accounts (ADL, a haircut)
        for _, account, positions, risk, _, _ in eligible:
            if (max_count is not None and len(done) >= max_count) or budget == 0:
                break
            if account == keeper or self.holds(account) is not None:
                continue  # a keeper cannot liquidate itself; a held account is taken over
            try:
                # a plain liquidation leaves other accounts and the prices untouched: the
                # risk found eligible is still current (a replayed step gets the ledger's
                # answer for a used txid); after ADL or a socialised haircut it is read again
                if touched:
                    positions = self.ledger.positions_of(account)
                    if not positions:
                        continue
                    risk, why = self.eligible(account, positions)
                    if why is not None:
                        continue
                markets = {self._instrument(i).underlying for i in positions}
                args = (account, keeper, txid_of(account), positions, risk, markets, budget)
                if savepoints:
                    item = self._mark()
                    try:
                        with self.ledger.batch():
                            liq = self._execute(*args)
                    except BaseException:
                        self._rollback(item)
                        raise
                else:
                    liq = self._execute(*args)
            except Refused as exc:
                refused.append((account, exc.code))
                continue
            except Unsettled:
                refused.append((account, "liquidation/unsettled"))
                continue
            done.append(liq)
            touched |= bool(liq.plan.bad_debt_deleveraged or liq.plan.bad_debt_socialised)
            if budget is not None:
                budget = max(budget - liq.plan.notional, 0)
        return budget

    def _mark(self) -> object:
        """The mechanism's own state now, if it keeps any (``mark()``), to roll back to
        when the enclosing ledger batch rolls back."""
        mark = getattr(self.mechanism, "mark", None)
        return None if mark is None else mark()

    def _rollback(self, mark: object) -> None:
        rollback = getattr(self.mechanism, "rollback", None)
        if rollback is not None and mark is not None:
            rollback(mark)

    def _check_fresh(self, now: int) -> None:
        if self.prices_ts is None or now - self.prices_ts > self.oracle.max_age_s:
            raise Refused(
                "liquidation/stale-price",
                f"index prices from ts={self.prices_ts} are too old at now={now}",
            )

    def _prepare(
        self, account: AccountId, keeper: AccountId, txid: str
    ) -> tuple[Liquidation | None, Mapping[InstrumentId, Position], AccountRisk, set[str]]:
        """The answer to a retried ``txid``, or the checks before a liquidation of
        ``account`` by ``keeper`` and its positions, exact risk and markets."""
        tx_id(txid)
        done = self.ledger.committed(txid)
        if done is not None:
            receipt, tx = done
            mine = tx.kind == "liquidation" or tx.memo.get("mechanism") == self.mechanism.name
            if not mine or tx.memo.get("account") != account:
                raise Refused(
                    "ledger/exists-with-different-content",
                    f"tx_id={txid!r} committed {tx.kind} at seq {receipt.seq}",
                )
            plan = LiquidationPlan.from_transaction(tx)
            return Liquidation(account, receipt.seq, False, plan), {}, AccountRisk(0, 0), set()
        if self.ledger.accounts.get(account) is not AccountKind.USER:
            raise InvalidArgument(f"account={account!r} is not an open user account")
        if self.ledger.accounts.get(keeper) is not AccountKind.USER:
            raise InvalidArgument(f"keeper={keeper!r} is not an open user account")
        why_held = self.holds(account)
        if why_held is not None:
            raise Refused("liquidation/held", f"{account} is held: {why_held}")
        positions = self.ledger.positions_of(account)
        if not positions:
            raise Refused("liquidation/not-liquidatable", f"{account} holds no positions")
        self._check_fresh(self.clock.now())
        markets = {self._instrument(i).underlying for i in positions}
        missing = markets - set(self.index_prices)
        if missing:
            raise Refused("liquidation/stale-price", f"no index price for {sorted(missing)}")
        try:
            risk, why = self.eligible(account, positions)
        except Unsettled as exc:  # expired since the last step, which settles it
            raise Refused("liquidation/unsettled", str(exc)) from None
        if why is not None:
            raise Refused(
                "liquidation/not-liquidatable",
                f"{account}: {why} (equity={risk.equity}, "
                f"maintenance_margin={risk.maintenance_margin})",
            )
        return None, positions, risk, markets

    def _execute(
        self,
        account: AccountId,
        keeper: AccountId,
        txid: str,
        positions: Mapping[InstrumentId, Position],
        risk: AccountRisk,
        markets: set[str],
        budget: int | None = None,
        mechanism: Mechanism | None = None,
    ) -> Liquidation:
        """Plan and apply the liquidation of an eligible ``account`` (``risk`` at the
        current prices and clock) with ``mechanism`` (default: the engine's), closing at
        most ``budget`` notional and what the throughput limits allow, unless a market's
        feed pauses it, the account's self-liquidation window is open, or the block's
        bad-debt limit would be passed."""
        health = risk.health
        paused = sorted(m for m in markets if not self.oracle.liquidation_allowed(m, health))
        if paused:
            raise Refused(
                "liquidation/market-paused",
                f"the feed of {paused} allows no liquidation at health {float(health):.4f}",
            )
        now = self.clock.now()
        sl = self.self_liquidation
        if mechanism is None and sl is not None:
            since = self._eligible_since.get(account, now)
            if self_liquidation_window(since, now, sl.window_s, health, sl.hard_floor):
                raise Refused(
                    "liquidation/self-liquidation-window",
                    f"{account} became liquidatable at ts={since}: its owner may close it "
                    f"without penalty until ts={since + sl.window_s} (health "
                    f"{float(health):.4f} >= hard floor {float(sl.hard_floor):.4f})",
                )
        cap = budget
        throttle = self.throttle
        by_market: dict[str, int] = {}
        if throttle is not None:
            by_market = self._by_market(positions, self.index_prices)
            allowed = throttle.allowed(now, by_market, self.liquidity, account)
            if allowed is not None:
                cap = allowed if cap is None else min(cap, allowed)
        if cap == 0:
            raise Refused("liquidation/throttled", f"{account}: no liquidation capacity left")
        ctx = self.context(account, keeper, txid, positions, risk, markets, cap)
        mech = self.mechanism if mechanism is None else mechanism
        plan = mech.plan(ctx)
        room = None if throttle is None else throttle.loss_room(now, account)
        # the first cover in a block may pass the limit: else a loss above it never clears
        first = room is not None and room > 0 and room == throttle.limits.max_loss_per_block  # type: ignore[union-attr]
        if room is not None and plan.bad_debt_covered > room and not first:
            raise Refused(
                "liquidation/block-loss-limit",
                f"{account}: covering bad debt {plan.bad_debt_covered} passes what this "
                f"block may still cover, {room}",
            )
        receipt = self.ledger.apply(plan.transaction)
        if receipt.created:
            commit = getattr(mech, "commit", None)
            if commit is not None:
                commit(plan)
            if throttle is not None:
                throttle.record(now, by_market, plan.notional, plan.bad_debt_covered, account)
            if sl is not None and not self.risk(account).is_liquidatable:
                self._eligible_since.pop(account, None)  # healthy: a later fall reopens
        return Liquidation(account, receipt.seq, receipt.created, plan)

    def context(
        self,
        account: AccountId,
        keeper: AccountId,
        txid: str,
        positions: Mapping[InstrumentId, Position],
        risk: AccountRisk,
        markets: set[str],
        max_notional: int | None = None,
    ) -> LiquidationContext:
        """What a mechanism sees of ``account`` now (``risk`` at the current prices, over
        ``markets``, the underlyings it trades): balances, positions, market data, the
        system accounts' balances, gas, and the highest realised and implied vol over
        ``markets``."""
        market = self.market()
        key = frozenset(markets)
        vols = self._step_vols.get(key) if self._step_market is not None else None
        if vols is None:
            vols = (
                max((self.realised_vol(m) for m in markets), default=0.0),
                max((self.implied_vol(m, market) for m in markets), default=0.0),
            )
            if self._step_market is not None:
                self._step_vols[key] = vols
        realised, implied = vols
        return LiquidationContext(
            tx_id=TxId(txid),
            account=account,
            keeper=keeper,
            quote=self.quote,
            cash=self.ledger.balance_units(account, self.quote.id),
            positions=positions,
            keeper_positions=self.ledger.positions_of(keeper),
            instruments=self.instruments,
            market=market,
            risk=risk,
            insurance_fund_balance=self.ledger.balance_units(
                self.system.insurance_fund, self.quote.id
            ),
            backstop_pool_balance=self.ledger.balance_units(
                self.system.backstop_pool, self.quote.id
            ),
            system=self.system,
            collateral=self._collateral_of(account),
            gas_price=self.gas_price,
            quote_per_gas=self.quote_per_gas,
            realised_vol=realised,
            implied_vol=implied,
            max_notional=max_notional,
            margin_model=self._per_position(),
            margin_models=self.markets,
            holders=lambda: self._holders(account, keeper),
            counterparties=lambda iid: self._counterparties(iid, account, keeper),
        )

    def _holders(self, account: AccountId, keeper: AccountId) -> dict[AccountId, int]:
        """User accounts other than ``account`` and ``keeper`` with a positive quote
        balance: who a socialised loss is shared over."""
        q = self.quote.id
        return {
            a: b
            for a, kind in sorted(self.ledger.accounts.items())
            if kind is AccountKind.USER
            and a not in (account, keeper)
            and (b := self.ledger.balance_units(a, q)) > 0
        }

    def _counterparties(
        self, iid: InstrumentId, account: AccountId, keeper: AccountId
    ) -> list[tuple[AccountId, Position, int]]:
        """``(account, position, equity)`` of the user accounts other than ``account`` and
        ``keeper`` holding ``iid`` on the side opposite ``account``'s: who ADL may close
        against."""
        held = self.ledger.position(account, iid)
        side = 0 if held is None else (held.size > 0) - (held.size < 0)
        out = []
        for a, positions in sorted(self.ledger.positions_by_account().items()):
            pos = positions.get(iid)
            if (
                pos is not None
                and pos.size * side < 0
                and a not in (account, keeper)
                and self.ledger.accounts[a] is AccountKind.USER
            ):
                out.append((a, pos, self.risk(a).equity))
        return out

    def holds(self, account: AccountId) -> str | None:
        """Why ``account`` is held (``held``, or the mechanism's ``holds(account)``, e.g. a
        running auction), or ``None``."""
        why = self.held.get(account)
        if why is None:
            holds = getattr(self.mechanism, "holds", None)
            why = None if holds is None else holds(account)
        return why

    def realised_vol(self, underlying: str) -> float:
        """Annualised realised vol of ``underlying``'s last ``vol_window`` index prices
        (``penalty.realised_vol``; 0 with fewer than two). Cached per step."""
        cached = self._realised.get(underlying)
        if cached is not None:
            return cached
        history = self._history.get(underlying, ())
        vol = 0.0
        if len(history) >= 2:
            ts, prices = zip(*history, strict=True)
            vol = realised_vol(prices, ts)
        self._realised[underlying] = vol
        return vol

    def implied_vol(self, underlying: str, market: MarketData) -> float:
        """At-the-money vol of ``underlying`` one day out: the surface's when it has one
        (``penalty.implied_atm_vol``), else its flat vol."""
        vol = market.vol(underlying)
        if isinstance(vol, VolSurface):
            index = self.index_prices.get(underlying)
            return 0.0 if index is None else implied_atm_vol(vol, float(index), 1 / 365)
        return float(vol)

    def step(
        self,
        reports: Iterable[SourceReport],
        keeper: AccountId | None = None,
        *,
        screen_only: bool = False,
    ) -> StepReport:
        """Ingest, aggregate, re-margin and (with a ``keeper``) liquidate, in one batch.

        With ``screen_only`` and no keeper, ``underwater`` is the scan's candidates (a
        superset of the exact set, by its error bound, ignoring the band corner) without
        the exact re-check: for drivers whose keepers act on estimates. Each liquidation is
        still re-checked exactly when it executes. Where no scan applies it is exact.

        A refused liquidation is reported and skipped; any other failure rolls the whole
        step back, index prices included.
        """
        if keeper is not None and self.ledger.accounts.get(keeper) is not AccountKind.USER:
            raise InvalidArgument(f"keeper={keeper!r} is not an open user account")
        now = self.clock.now()
        saved_feed = self.oracle.snapshot()
        rejected = [str(exc) for _, exc in self.oracle.submit_many(reports, now)]
        feed = self.oracle.update(now)
        prices = {m: out.price for m, out in feed.items() if out.price is not None}
        bands = {m: out.band for m, out in feed.items() if out.band is not None}
        liquidations: list[Liquidation] = []
        refused: list[tuple[AccountId, str]] = []
        previous = (self.index_prices, self.prices_ts, self.settlements, self.bands, self._history)
        since = self._eligible_since
        throttled = None if self.throttle is None else self.throttle.snapshot()
        self.index_prices, self.prices_ts, self.bands = prices, now, bands
        self.settlements = dict(self.settlements)
        self._record_history(now, prices)
        mark = self._mark()
        try:
            with self.ledger.batch():
                self.ledger.record(
                    f"index:{now}:{self.ledger.seq + 1}",
                    "oracle.index",
                    {
                        "prices": {u: str(p) for u, p in sorted(prices.items())},
                        "health": {m: out.health.value for m, out in sorted(feed.items())},
                    },
                )
                self._settle(now)
                self._step_market = self.market()
                screened = self._screened() if screen_only and keeper is None else None
                if screened is not None:
                    eligible, candidates = [], screened
                else:
                    eligible = self._liquidatable()
                    candidates = [account for _, account, _, _, _, _ in eligible]
                self._eligible_since = {a: since.get(a, now) for a in candidates}
                if keeper is not None:
                    prefix = f"liq:{now}"
                    self.ledger.prefetch(_txid(prefix, a) for a in candidates if a != keeper)
                    self._work(eligible, keeper, lambda a: _txid(prefix, a), liquidations, refused)
        except BaseException:
            self.index_prices, self.prices_ts, self.settlements, self.bands, self._history = (
                previous
            )
            self._realised, self._eligible_since = {}, since
            if self.throttle is not None and throttled is not None:
                self.throttle.restore(throttled)
            self.oracle.restore(saved_feed)
            self._rollback(mark)
            raise
        finally:
            self._step_market = None
            self._step_vols = {}
        return StepReport(
            now,
            prices,
            tuple(rejected),
            tuple(liquidations),
            tuple(candidates),
            tuple(refused),
            feed,
        )

    def _record_history(self, now: int, prices: Mapping[str, int]) -> None:
        """Append this step's index prices to the last ``vol_window`` kept per market (a
        second step at the same ``now`` replaces the first's price)."""
        history = dict(self._history)
        keep = max(self.vol_window - 1, 1)
        for m, price in prices.items():
            old = history.get(m, ())
            if old and old[-1][0] == now:
                old = old[:-1]
            history[m] = (*old[-keep:], (now, price))
        self._history = history
        self._realised = {}

    def _settle(self, now: int) -> None:
        """Fix the settlement price of every expired instrument not yet settled whose
        underlying has an index now: that index (the first at or after expiry)."""
        for iid in sorted(self.instruments):
            inst = self.instruments[iid]
            if (
                isinstance(inst, (DatedFuture, EuropeanOption))
                and inst.expiry_ts <= now
                and iid not in self.settlements
                and inst.underlying in self.index_prices
            ):
                price = self.index_prices[inst.underlying]
                self.settlements[iid] = price
                self.ledger.record(
                    f"settle:{iid}",
                    "market.settlement",
                    {"instrument": iid, "price": str(price), "expiry_ts": inst.expiry_ts},
                )

    def _liquidatable(
        self,
    ) -> list[tuple[float, AccountId, Mapping[InstrumentId, Position], AccountRisk, int, int]]:
        """Eligible user accounts (``eligible``) as ``(health as a float, account,
        positions, risk, health numerator, health denominator)``, most unhealthy first
        (exactly, by ``risk.health``); ties by account id. Accounts missing a fresh price
        for any underlying are skipped.

        With ``screen`` (and per-position margin in every market) the vectorised scan
        picks the candidates and only they are re-checked exactly; the scan's error bound
        makes the result the same as re-checking every account."""
        by_account = self._by_account()
        screened = self._screen(by_account)
        found: list[
            tuple[float, AccountId, Mapping[InstrumentId, Position], AccountRisk, int, int]
        ] = []
        for account in sorted(by_account) if screened is None else screened:
            positions = by_account[account]
            if self.ledger.accounts[account] is not AccountKind.USER:
                continue
            if any(self._instrument(i).underlying not in self.index_prices for i in positions):
                continue
            try:
                risk, why = self.eligible(account, positions)
            except Unsettled:  # expired since the last step, which settles it
                continue
            if why is None:
                n, d = risk.health_ratio
                found.append((n / d, account, positions, risk, n, d))
        # n / d is correctly rounded, so the float order never contradicts the exact one;
        # only runs of equal floats need the exact check (cross-multiplied, d > 0)
        found.sort(key=lambda f: (f[0], f[1]))
        if any(a[0] == b[0] and a[4] * b[5] > b[4] * a[5] for a, b in pairwise(found)):
            found.sort(key=lambda f: (Fraction(f[4], f[5]), f[1]))
        return found

    def _by_account(self) -> Mapping[AccountId, Mapping[InstrumentId, Position]]:
        """Every account's positions, kept while the ledger's state does not move."""
        version = self.ledger.state_version
        if self._positions is None or self._positions[0] != version:
            self._positions = (version, self.ledger.positions_by_account())
        return self._positions[1]

    def _screened(self) -> list[AccountId] | None:
        """The scan's candidates that are user accounts with a price for every market
        they trade, most at risk first (``None`` where no scan applies)."""
        by_account = self._by_account()
        screened = self._screen(by_account)
        if screened is None:
            return None
        return [
            a
            for a in screened
            if self.ledger.accounts[a] is AccountKind.USER
            and all(self._instrument(i).underlying in self.index_prices for i in by_account[a])
        ]

    def _screen(
        self, by_account: Mapping[AccountId, Mapping[InstrumentId, Position]]
    ) -> list[AccountId] | None:
        """The scan's candidates, or ``None`` where no scan applies (screen off, markets
        on different models, a scenario model the scan does not cover, an underlying
        without a price): then every account is re-checked exactly."""
        if not self.screen:
            return None
        version = self.ledger.state_version
        if self._book is None or self._book[0] != version:
            users = {
                a: (self.ledger.balance_units(a, self.quote.id), p)
                for a, p in by_account.items()
                if self.ledger.accounts[a] is AccountKind.USER
            }
            self._book = (version, Book.from_accounts(users, self.instruments), None)
        book = self._book[1]
        ids = book.account_ids
        if ids is None or book.instrument_ids is None:
            return None
        if any(u not in self.index_prices for u in book.underlyings):
            return None
        default = self._per_position()
        models = {self.markets.get(u, default) for u in book.underlyings}
        if len(models) > 1:
            return None
        (model,) = models or {default}
        if isinstance(model, PerPosition) and model.params != self.margin:
            return None
        if isinstance(model, Scenario):
            try:
                check_model(model.model)
            except InvalidArgument:
                return None  # a term the scan does not cover: re-check every account
            # the scan shocks all of an account's positions together, the exact path each
            # market apart: they agree only for accounts on one underlying
            und = book.underlying[book.instrument]
            same = book.account[1:] == book.account[:-1]
            if bool(np.any(same & (und[1:] != und[:-1]))):
                return None
        elif not isinstance(model, PerPosition):
            return None
        market = self.market()
        vols = np.empty(book.n_instruments)
        settle = np.full(book.n_instruments, np.nan)
        for i, iid in enumerate(book.instrument_ids):
            inst = self.instruments[iid]
            vols[i] = self.margin.vol
            if isinstance(inst, EuropeanOption) and not market.is_settled(inst):
                index = self.index_prices[inst.underlying]
                vols[i] = option_vol(inst, index, market.now_ts, market.vol(inst.underlying))
            if iid in self.settlements:
                settle[i] = float(self.settlements[iid])
        if isinstance(model, Scenario):
            sbook = self._book[2]
            if sbook is None:
                sbook = ScenarioBook.of(book)
                self._book = (self._book[0], book, sbook)
            res = scenario_scan(sbook, self.index_prices, market.now_ts, model.model, vols, settle)
            extra = self._surcharge_bound(book)
            if extra is not None:
                res = replace(res, maintenance_margin=res.maintenance_margin + extra)
            return [ids[int(a)] for a in scenario_candidates(res)]
        result = scan(book, self.index_prices, market.now_ts, self.margin, vols, settle)
        extra = self._surcharge_bound(book)
        if extra is not None:
            result = replace(result, maintenance_margin=result.maintenance_margin + extra)
        return [ids[int(a)] for a in candidates(result)]

    def _surcharge_bound(self, book: Book) -> npt.NDArray[np.float64] | None:
        """Per account of ``book``, an upper bound of its surcharges (``Surcharge.bound``
        of its float notional), or ``None`` without surcharges."""
        surcharges = self.surcharges()
        if not surcharges or book.account_ids is None:
            return None
        index = np.array([float(self.index_prices[u]) for u in book.underlyings])
        ins = book.instrument
        per = np.abs(book.size) / book.scale[ins] * index[book.underlying[ins]]
        notional = np.bincount(book.account, per, minlength=len(book.account_ids)).astype(
            np.float64
        )
        n_positions = np.bincount(book.account, minlength=len(book.account_ids)).astype(np.float64)
        extra: npt.NDArray[np.float64] = np.zeros(len(book.account_ids))
        for s in surcharges:
            extra += s.bound(notional, n_positions)
        return extra
