"""Run a scenario through the engine and sum up what happened.

Setup (one batch at the first tick): register the quote asset, open the system accounts
(``world`` external, ``settlement``, ``bad-debt``, ``insurance-fund``, ``fee-sink``,
``backstop-pool``, and ``auction-escrow`` for an English auction), the market maker,
the keeper and the generated accounts, fund them (quote cash, or the spot collateral
token of ``population.spot_collateral`` for a ``collateral_asset_share`` of them), and
open every generated position against the market maker at the first index price. Then
each tick is one ``Engine.step`` with the built-in keeper liquidating whatever is
liquidatable.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

from liqeng.clock import SimClock
from liqeng.engine import Engine, StepReport
from liqeng.errors import InvalidArgument, Refused
from liqeng.ids import AccountId, InstrumentId, asset_id, instrument_id
from liqeng.ledger.core import Ledger
from liqeng.ledger.model import AccountKind, AccountSpec, Position, Posting, Transaction
from liqeng.ledger.sqlite import SqliteStorage, is_liqeng_db
from liqeng.liquidation.base import LiquidationPlan, Mechanism, SystemAccounts
from liqeng.liquidation.dutch_auction import KICK, DutchAuction
from liqeng.liquidation.english_auction import EnglishAuction
from liqeng.liquidation.fixed_fee import FixedFee
from liqeng.liquidation.keeper import KeeperReward
from liqeng.liquidation.pool import BackstopPool
from liqeng.liquidation.portion import CloseAll, CloseFactor, Sizing, TargetHealth
from liqeng.liquidation.registry import mechanism
from liqeng.liquidation.sizing import AAVE_V3_CLOSE_FACTOR
from liqeng.market.instruments import EuropeanOption, Instrument, Perpetual
from liqeng.market.marks import mark_price
from liqeng.market.trading import fill
from liqeng.oracle.feed import FeedHealth
from liqeng.oracle.presets import median_feed
from liqeng.oracle.reports import SourceReport
from liqeng.presets import preset
from liqeng.risk.margin import AccountRisk, MarginParams
from liqeng.risk.models import MarginModel, MarketData, PerPosition, market_account_risk
from liqeng.risk.models import Scenario as ScenarioMargin
from liqeng.risk.portfolio import LYRA_LIKE, LYRA_PMRM
from liqeng.sim.population import Holding, generate, spot_collateral
from liqeng.sim.prices import source_name, ticks
from liqeng.sim.scenario import Scenario
from liqeng.units import Asset

__all__ = ["RunSummary", "run"]


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Totals of one run, money in quote base units."""

    scenario: str
    mechanism: str
    preset: str | None
    seed: int
    db_path: str
    decimals: int
    accounts: int
    ticks: int
    first_ts: int
    last_ts: int
    index_first: int
    index_min: int
    index_last: int
    rejected_reports: int
    feed_degraded_steps: int
    feed_halted_steps: int
    liquidations: int
    refused_liquidations: int
    notional: int
    seized: int
    penalties: int
    keeper_rewards: int
    insurance_fees: int
    protocol_fees: int
    pool_fees: int
    bad_debt_covered: int
    bad_debt_uncovered: int
    bad_debt_socialised: int
    bad_debt_deleveraged: int
    insurance_fund_before: int
    insurance_fund_after: int
    events: int
    head: str
    state_digest: str

    @property
    def bad_debt(self) -> int:
        """Every shortfall: covered by funded stages, socialised, deleveraged, uncovered."""
        return (
            self.bad_debt_covered
            + self.bad_debt_socialised
            + self.bad_debt_deleveraged
            + self.bad_debt_uncovered
        )


def _fresh_db(path: Path) -> None:
    """Remove a previous run's database, and only that: any other file is refused."""
    if path.is_dir():
        raise InvalidArgument(f"db path={str(path)!r} is a directory")
    if path.exists() and not is_liqeng_db(path):
        raise InvalidArgument(
            f"db path={str(path)!r} exists and is not a liqeng database; not replacing it"
        )
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(path) + suffix)
        if p.exists():
            p.unlink()


@dataclass(slots=True)
class _World:
    """Everything a run drives: the engine over its ledger, the clock and the price path."""

    engine: Engine
    storage: SqliteStorage
    clock: SimClock
    path: list[tuple[int, list[SourceReport]]]
    first: StepReport
    holdings: list[Holding]
    market_maker: AccountId
    keeper: AccountId


def _markets(sc: Scenario) -> dict[str, MarginModel]:
    """``[margin] model``: per-position (no entry) or a scenario-margin preset; a
    liquidation ``preset`` with a margin model of its own replaces it."""
    if sc.preset is not None:
        model = preset(sc.preset).margin
        if model is not None:
            return {sc.underlying: model}
    grids = {"lyra-like": LYRA_LIKE, "lyra-pmrm": LYRA_PMRM}
    if sc.margin_model == "per-position":
        return {}
    return {sc.underlying: ScenarioMargin(grids[sc.margin_model])}


def run(
    sc: Scenario,
    db_path: Path,
    on_tick: Callable[[int, int, StepReport], None] | None = None,
) -> RunSummary:
    """Replay ``sc`` into a new ledger at ``db_path`` (a previous run's file is replaced)."""
    _fresh_db(db_path)
    w = _build(sc, db_path)
    ledger, fund, quote = w.engine.ledger, w.engine.system.insurance_fund, w.engine.quote.id
    if_before = ledger.balance_units(fund, quote)
    plans: list[LiquidationPlan] = []
    prices = [w.first.index_prices[sc.underlying]]
    rejected, refused = len(w.first.rejected_reports), 0
    health = Counter(out.health for out in w.first.feed.values())
    for n, (ts, reports) in enumerate(w.path[1:], start=2):
        w.clock.set(ts)
        step = w.engine.step(reports, keeper=w.keeper)
        done = [liq.plan for liq in step.liquidations]
        if isinstance(w.engine.mechanism, DutchAuction):
            taken, not_taken = _take_auctions(w.engine, w.engine.mechanism, w.keeper, ts)
            done += taken
            refused += not_taken
        if done:
            with ledger.batch():
                _unwind(w.engine, w.keeper, w.market_maker, ts)
        rejected += len(step.rejected_reports)
        refused += len(step.refused)
        health.update(out.health for out in step.feed.values())
        prices.append(step.index_prices.get(sc.underlying, prices[-1]))
        plans += done
        if on_tick is not None:
            on_tick(n, len(w.path), step)
    ledger.check_invariants()
    ledger.snapshot()
    summary = RunSummary(
        scenario=sc.name,
        mechanism=w.engine.mechanism.name,
        preset=sc.preset,
        seed=sc.seed,
        db_path=str(db_path),
        decimals=sc.quote_decimals,
        accounts=len(w.holdings),
        ticks=len(w.path),
        first_ts=w.path[0][0],
        last_ts=w.path[-1][0],
        index_first=prices[0],
        index_min=min(prices),
        index_last=prices[-1],
        rejected_reports=rejected,
        feed_degraded_steps=health[FeedHealth.DEGRADED],
        feed_halted_steps=health[FeedHealth.HALTED],
        liquidations=sum(p.transaction.kind != KICK for p in plans),  # a kick sells nothing
        refused_liquidations=refused,
        notional=sum(p.notional for p in plans if p.transaction.kind != KICK),
        seized=sum(p.seized for p in plans),
        penalties=sum(p.penalty for p in plans),
        keeper_rewards=sum(p.keeper_reward for p in plans),
        insurance_fees=sum(p.insurance_fee for p in plans),
        protocol_fees=sum(p.protocol_fee for p in plans),
        pool_fees=sum(p.pool_fee for p in plans),
        bad_debt_covered=sum(p.bad_debt_covered for p in plans),
        bad_debt_uncovered=sum(p.bad_debt_uncovered for p in plans),
        bad_debt_socialised=sum(p.bad_debt_socialised for p in plans),
        bad_debt_deleveraged=sum(p.bad_debt_deleveraged for p in plans),
        insurance_fund_before=if_before,
        insurance_fund_after=ledger.balance_units(fund, quote),
        events=ledger.seq,
        head=ledger.head.hex(),
        state_digest=ledger.state_digest(),
    )
    w.storage.close()
    return summary


def _mechanism(sc: Scenario) -> Mechanism:
    """The scenario's ``[liquidation]`` mechanism, with its rates, or its preset's."""
    if sc.preset is not None:
        return preset(sc.preset).mechanism()
    shares = {"keeper_share": sc.keeper_share, "protocol_share": sc.protocol_share}
    if sc.mechanism == "fixed-fee":
        sizing: Sizing = CloseAll()
        if sc.sizing == "close-factor":
            sizing = CloseFactor(AAVE_V3_CLOSE_FACTOR)
        elif sc.sizing == "target-health":
            sizing = TargetHealth(Fraction(sc.target_health).limit_denominator(10**6))
        return FixedFee(sc.penalty_rate, sc.keeper_share, sc.protocol_share, sizing=sizing)
    if sc.mechanism == "backstop-pool":
        reward = KeeperReward(tip=0, share=sc.keeper_share)
        return mechanism(sc.mechanism, penalty_rate=sc.penalty_rate, keeper_reward=reward)
    return mechanism(sc.mechanism, penalty_rate=sc.penalty_rate, **shares)


def _take_auctions(
    engine: Engine, auctions: DutchAuction, keeper: AccountId, now: int
) -> tuple[list[LiquidationPlan], int]:
    """The built-in keeper's auction strategy: restart an auction that needs it, and take
    all of a lot as soon as its price is at or below the mark (the concession is >= 0).
    Returns the takes' plans and the number refused."""
    plans: list[LiquidationPlan] = []
    refused = 0
    for aid in sorted(aid for aid, a in auctions.house.auctions.items() if not a.done):
        tag = aid.replace("/", ":")
        try:
            quote = auctions.quote(engine, aid)
            if quote.needs_reset:
                auctions.redo(engine, aid, keeper, f"redo:{now}:{tag}")
            elif quote.concession >= 0:
                price = math.ceil(quote.price)
                taken = auctions.take(engine, aid, keeper, 1, price, f"take:{now}:{tag}")
                if taken.plan is not None:
                    plans.append(taken.plan)
        except Refused:
            refused += 1
    return plans, refused


def _build(sc: Scenario, db_path: Path) -> _World:
    """The ledger, oracle and engine of ``sc``, its first price, instruments, accounts and
    their opening positions, all committed at the first tick."""
    quote = Asset(asset_id(sc.quote_asset), sc.quote_decimals)
    path = list(ticks(sc.price_files, sc.underlying, sc.quote_decimals, sc.ticks_per_candle))
    first_ts = path[0][0]
    clock = SimClock(first_ts)
    storage = SqliteStorage(db_path)
    ledger = Ledger(storage, clock)
    ns = sc.namespace
    system = SystemAccounts.of(ns)
    margin = MarginParams(
        perp_maintenance_rate=sc.perp_maintenance_rate,
        option_maintenance_rate=sc.option_maintenance_rate,
        option_floor_rate=sc.option_floor_rate,
        vol=sc.vol,
    )
    oracle = median_feed(
        [source_name(f) for f in sc.price_files],
        [sc.underlying],
        sc.max_age_s,
        sc.quorum,
        **sc.oracle_settings,
    )
    perp = instrument_id(f"{ns}/{sc.underlying}-PERP")
    spot = spot_collateral(sc)
    engine = Engine(
        ledger,
        oracle,
        clock=clock,
        quote=quote,
        instruments={perp: Perpetual(perp, sc.underlying, quote, sc.perp_size_decimals)},
        margin=margin,
        mechanism=_mechanism(sc),
        system=system,
        markets=_markets(sc),
        collateral=() if spot is None else (spot,),
        limits=None if sc.preset is None else preset(sc.preset).limits,
    )
    first = engine.step(path[0][1])
    index0 = first.index_prices.get(sc.underlying)
    if index0 is None:
        raise InvalidArgument(f"{sc.path.name}: fewer than quorum={sc.quorum} sources at start")
    puts = _list_puts(engine, sc, quote, index0, first_ts)
    opening = MarketData(first_ts, {sc.underlying: index0}, default_vol=sc.vol)

    def risk(cash: int, positions: Mapping[InstrumentId, Position]) -> AccountRisk:
        return market_account_risk(
            cash, positions, engine.instruments, opening, engine.markets, PerPosition(margin)
        )

    holdings = generate(
        sc, perp, puts, engine.instruments, index0, first_ts, sc.vol, risk, spot=spot
    )
    mm, keeper = AccountId(f"{ns}/market-maker"), AccountId(f"{ns}/keeper")
    with ledger.batch():
        _setup(ledger, sc, quote, system, engine.instruments, holdings, mm, keeper)
        if isinstance(engine.mechanism, EnglishAuction):  # bids are escrowed there
            escrow = engine.mechanism.escrow_for(engine)
            ledger.open_account(AccountSpec(escrow, AccountKind.SYSTEM))
        _open_positions(engine, holdings, perp, mm, first_ts)
    if isinstance(engine.mechanism, BackstopPool) and sc.backstop_pool:
        depositor = AccountId(f"{ns}/depositor")
        ledger.open_account(AccountSpec(depositor))
        units = sc.backstop_pool * 10**sc.quote_decimals
        world = AccountId(f"{ns}/world")
        ledger.apply(
            Transaction(
                f"deposit:{depositor}",
                "deposit",
                (Posting(world, quote.units(-units)), Posting(depositor, quote.units(units))),
            )
        )
        engine.mechanism.deposit(engine, depositor, units, "pool-deposit:0")
    return _World(engine, storage, clock, path, first, holdings, mm, keeper)


def _list_puts(
    engine: Engine, sc: Scenario, quote: Asset, index0: int, first_ts: int
) -> list[InstrumentId]:
    """One put per ``option_strikes`` fraction of the first index, whole dollars."""
    expiry = first_ts + sc.option_expiry_days * 86_400
    day = datetime.fromtimestamp(expiry, UTC).strftime("%Y%m%d")
    one = 10**sc.quote_decimals
    puts: list[InstrumentId] = []
    for frac in sc.option_strikes:
        strike = int(index0 * frac) // one * one
        iid = instrument_id(f"{sc.namespace}/{sc.underlying}-{day}-{strike // one}-P")
        engine.instruments[iid] = EuropeanOption(
            iid, sc.underlying, quote, sc.option_size_decimals, strike, expiry, False
        )
        puts.append(iid)
    return puts


def _setup(
    ledger: Ledger,
    sc: Scenario,
    quote: Asset,
    system: SystemAccounts,
    instruments: dict[InstrumentId, Instrument],
    holdings: list[Holding],
    mm: AccountId,
    keeper: AccountId,
) -> None:
    """Register the assets, open the system and user accounts, list ``instruments`` and
    fund everyone from ``<ns>/world``: quote cash, and the spot collateral of ``holdings``
    (``population.spot_collateral(sc)``, registered only when the scenario has one)."""
    ns, one = sc.namespace, 10**sc.quote_decimals
    world = AccountId(f"{ns}/world")
    ledger.register_asset(quote)
    spot = spot_collateral(sc)
    if spot is not None:
        ledger.register_asset(spot.asset)
    for acc, kind in (
        (world, AccountKind.EXTERNAL),
        (system.settlement, AccountKind.SETTLEMENT),
        (system.bad_debt, AccountKind.BAD_DEBT),
        (system.insurance_fund, AccountKind.SYSTEM),
        (system.fee_sink, AccountKind.SYSTEM),
        (system.backstop_pool, AccountKind.SYSTEM),
        (mm, AccountKind.USER),
        (keeper, AccountKind.USER),
    ):
        ledger.open_account(AccountSpec(acc, kind))
    for inst in instruments.values():
        ledger.list_instrument(inst.spec())
    funding = [
        (system.insurance_fund, quote, sc.insurance_fund * one),
        (keeper, quote, sc.keeper_capital * one),
        (mm, quote, sc.market_maker_capital * one),
    ]
    for h in holdings:
        ledger.open_account(AccountSpec(h.account))
        funding.append((h.account, quote, h.collateral))
        if h.spot:
            if spot is None:
                raise InvalidArgument(f"{h.account} holds spot collateral the scenario has not")
            funding.append((h.account, spot.asset, h.spot))
    for acc, asset, units in funding:
        if units:
            ledger.apply(
                Transaction(
                    f"deposit:{acc}" if asset.id == quote.id else f"deposit:{acc}:{asset.id}",
                    "deposit",
                    (Posting(world, asset.units(-units)), Posting(acc, asset.units(units))),
                )
            )


def _trade(
    engine: Engine,
    txid: str,
    account: AccountId,
    mm: AccountId,
    iid: InstrumentId,
    size: int,
    now: int,
) -> None:
    """``account`` buys ``size`` (sells if negative) of ``iid`` from ``mm`` at the mark
    (the index for a perp; Black-76 truncated to price units for an option)."""
    ledger, inst = engine.ledger, engine.instruments[iid]
    index = engine.index_prices[inst.underlying]
    if isinstance(inst, Perpetual):
        price, premium = index, False
    else:
        price, premium = int(mark_price(inst, index, now, engine.margin.vol)), True
    buyer, seller = (account, mm) if size > 0 else (mm, account)
    f = fill(
        buyer=buyer,
        seller=seller,
        instrument=iid,
        size=abs(size),
        price=price,
        size_decimals=inst.size_decimals,
        premium=premium,
        quote=engine.quote,
        buyer_position=ledger.position(buyer, iid),
        seller_position=ledger.position(seller, iid),
        settlement=engine.system.settlement,
    )
    ledger.apply(Transaction(txid, "trade", f.postings, f.position_changes))


def _open_positions(
    engine: Engine, holdings: list[Holding], perp: InstrumentId, mm: AccountId, now: int
) -> None:
    for h in holdings:
        if h.perp_size:
            _trade(engine, f"open:{h.account}:{perp}", h.account, mm, perp, h.perp_size, now)
        if h.put is not None and h.put_size:
            _trade(engine, f"open:{h.account}:{h.put}", h.account, mm, h.put, h.put_size, now)


def _unwind(engine: Engine, keeper: AccountId, mm: AccountId, now: int) -> None:
    """The built-in keeper holds no inventory: it closes what it took with the market
    maker at the mark in the same tick (a later issue gives keepers market impact)."""
    for iid, pos in sorted(engine.ledger.positions_of(keeper).items()):
        _trade(engine, f"unwind:{now}:{iid}", keeper, mm, iid, -pos.size, now)
