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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from itertools import pairwise

import numpy as np

from liqeng.clock import Clock
from liqeng.errors import InvalidArgument, Refused
from liqeng.ids import AccountId, AssetId, InstrumentId, TxId, tx_id
from liqeng.ledger.core import Ledger
from liqeng.ledger.model import AccountKind, Position
from liqeng.liquidation.base import LiquidationContext, LiquidationPlan, Mechanism, SystemAccounts
from liqeng.liquidation.penalty import implied_atm_vol, realised_vol
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
from liqeng.units import Asset

__all__ = ["Engine", "Liquidation", "StepReport"]


@dataclass(frozen=True, slots=True)
class Liquidation:
    """A committed liquidation: ``created`` is False when it answers a retried id."""

    account: AccountId
    seq: int
    created: bool
    plan: LiquidationPlan


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
    per market (realised vol). ``held`` maps an account a mechanism has taken over (an
    auction runs on it) to why: ``step`` passes it by and ``liquidate`` refuses it.
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
        self.quote_per_gas = 0
        self.vol_window = vol_window
        self._history: dict[str, tuple[tuple[int, int], ...]] = {}
        self._realised: dict[str, float] = {}
        # (ledger.state_version, book, its scenario-scan form once needed)
        self._book: tuple[int, Book, ScenarioBook | None] | None = None
        self._default_model = PerPosition(self.margin)
        # the market data of the step running now (None between steps): built and checked
        # once per step instead of once per account
        self._step_market: MarketData | None = None

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
        return market_account_risk(
            self.ledger.balance_units(account, self.quote.id),
            self.ledger.positions_of(account) if positions is None else positions,
            self.instruments,
            market,
            self.markets,
            self._per_position(),
            held,
        )

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
        tx_id(txid)
        done = self.ledger.committed(txid)
        if done is not None:
            receipt, tx = done
            if tx.kind != "liquidation" or tx.memo.get("account") != account:
                raise Refused(
                    "ledger/exists-with-different-content",
                    f"tx_id={txid!r} committed {tx.kind} at seq {receipt.seq}",
                )
            return Liquidation(account, receipt.seq, False, LiquidationPlan.from_transaction(tx))
        if self.ledger.accounts.get(account) is not AccountKind.USER:
            raise InvalidArgument(f"account={account!r} is not an open user account")
        if self.ledger.accounts.get(keeper) is not AccountKind.USER:
            raise InvalidArgument(f"keeper={keeper!r} is not an open user account")
        why_held = self.holds(account)
        if why_held is not None:
            raise Refused("liquidation/held", f"{account} is held: {why_held}")
        now = self.clock.now()
        positions = self.ledger.positions_of(account)
        if not positions:
            raise Refused("liquidation/not-liquidatable", f"{account} holds no positions")
        if self.prices_ts is None or now - self.prices_ts > self.oracle.max_age_s:
            raise Refused(
                "liquidation/stale-price",
                f"index prices from ts={self.prices_ts} are too old at now={now}",
            )
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
        return self._execute(account, keeper, txid, positions, risk, markets)

    def _execute(
        self,
        account: AccountId,
        keeper: AccountId,
        txid: str,
        positions: Mapping[InstrumentId, Position],
        risk: AccountRisk,
        markets: set[str],
        health: Fraction | None = None,
    ) -> Liquidation:
        """Plan and apply the liquidation of an eligible ``account`` (``risk`` at the
        current prices and clock, ``health`` its ``risk.health`` if already known), unless
        a market's feed pauses it."""
        if health is None:
            health = risk.health
        paused = sorted(m for m in markets if not self.oracle.liquidation_allowed(m, health))
        if paused:
            raise Refused(
                "liquidation/market-paused",
                f"the feed of {paused} allows no liquidation at health {float(health):.4f}",
            )
        ctx = self.context(account, keeper, txid, positions, risk, markets)
        plan = self.mechanism.plan(ctx)
        receipt = self.ledger.apply(plan.transaction)
        if receipt.created:
            commit = getattr(self.mechanism, "commit", None)
            if commit is not None:
                commit(plan)
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
            realised_vol=max((self.realised_vol(m) for m in markets), default=0.0),
            implied_vol=max((self.implied_vol(m, market) for m in markets), default=0.0),
            max_notional=max_notional,
        )

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

    def step(self, reports: Iterable[SourceReport], keeper: AccountId | None = None) -> StepReport:
        """Ingest, aggregate, re-margin and (with a ``keeper``) liquidate, in one batch.

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
        self.index_prices, self.prices_ts, self.bands = prices, now, bands
        self.settlements = dict(self.settlements)
        self._record_history(now, prices)
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
                eligible = self._liquidatable()
                candidates = [account for _, account, _, _, _, _ in eligible]
                if keeper is not None:
                    self.ledger.prefetch(f"liq:{now}:{a}" for a in candidates if a != keeper)
                for _, account, positions, risk, _, _ in eligible:
                    if keeper is None or account == keeper or self.holds(account) is not None:
                        continue  # no keeper; a keeper cannot liquidate itself; held
                    txid = f"liq:{now}:{account}"
                    try:
                        # other accounts' liquidations leave this one's state and the
                        # prices untouched: the risk found eligible is still current (a
                        # replayed step gets the ledger's answer for a used txid)
                        markets = {self._instrument(i).underlying for i in positions}
                        liquidations.append(
                            self._execute(account, keeper, txid, positions, risk, markets)
                        )
                    except Refused as exc:
                        refused.append((account, exc.code))
        except BaseException:
            self.index_prices, self.prices_ts, self.settlements, self.bands, self._history = (
                previous
            )
            self._realised = {}
            self.oracle.restore(saved_feed)
            raise
        finally:
            self._step_market = None
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
        by_account = self.ledger.positions_by_account()
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
            risk, why = self.eligible(account, positions)
            if why is None:
                n, d = risk.health_ratio
                found.append((n / d, account, positions, risk, n, d))
        # n / d is correctly rounded, so the float order never contradicts the exact one;
        # only runs of equal floats need the exact check (cross-multiplied, d > 0)
        found.sort(key=lambda f: (f[0], f[1]))
        if any(a[0] == b[0] and a[4] * b[5] > b[4] * a[5] for a, b in pairwise(found)):
            found.sort(key=lambda f: (Fraction(f[4], f[5]), f[1]))
        return found

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
            return [ids[int(a)] for a in scenario_candidates(res)]
        result = scan(book, self.index_prices, market.now_ts, self.margin, vols, settle)
        return [ids[int(a)] for a in candidates(result)]
