"""Run a scenario through the engine and sum up what happened.

Setup (one batch at the first tick): register the quote asset, open the system accounts
(``world`` external, ``settlement``, ``bad-debt``, ``insurance-fund``), the market maker,
the keeper and the generated accounts, fund them, and open every generated position
against the market maker at the first index price. Then each tick is one
``Engine.step`` with the built-in keeper liquidating whatever is liquidatable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from liqeng.clock import SimClock
from liqeng.engine import Engine, StepReport
from liqeng.errors import InvalidArgument
from liqeng.ids import AccountId, InstrumentId, asset_id, instrument_id
from liqeng.ledger.core import Ledger
from liqeng.ledger.model import AccountKind, AccountSpec, Posting, Transaction
from liqeng.ledger.sqlite import SqliteStorage, is_liqeng_db
from liqeng.liquidation.base import SystemAccounts
from liqeng.liquidation.fixed_fee import FixedFee
from liqeng.market.instruments import EuropeanOption, Instrument, Perpetual
from liqeng.market.marks import mark_price
from liqeng.market.trading import fill
from liqeng.oracle.median import MedianOracle
from liqeng.risk.margin import MarginParams
from liqeng.sim.population import Holding, generate
from liqeng.sim.prices import source_name, ticks
from liqeng.sim.scenario import Scenario
from liqeng.units import Asset

__all__ = ["RunSummary", "run"]


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Totals of one run, money in quote base units."""

    scenario: str
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
    liquidations: int
    notional: int
    seized: int
    penalties: int
    keeper_rewards: int
    insurance_fees: int
    bad_debt_covered: int
    bad_debt_uncovered: int
    insurance_fund_before: int
    insurance_fund_after: int
    events: int
    head: str
    state_digest: str


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


def run(
    sc: Scenario,
    db_path: Path,
    on_tick: Callable[[int, int, StepReport], None] | None = None,
) -> RunSummary:
    """Replay ``sc`` into a new ledger at ``db_path`` (replaced if it exists)."""
    _fresh_db(db_path)
    quote = Asset(asset_id(sc.quote_asset), sc.quote_decimals)
    path = list(ticks(sc.price_files, sc.underlying, sc.quote_decimals, sc.ticks_per_candle))
    first_ts = path[0][0]
    clock = SimClock(first_ts)
    storage = SqliteStorage(db_path)
    ledger = Ledger(storage, clock)
    ns = sc.namespace
    system = SystemAccounts(
        insurance_fund=AccountId(f"{ns}/insurance-fund"),
        settlement=AccountId(f"{ns}/settlement"),
        bad_debt=AccountId(f"{ns}/bad-debt"),
    )
    margin = MarginParams(
        perp_maintenance_rate=sc.perp_maintenance_rate,
        option_maintenance_rate=sc.option_maintenance_rate,
        option_floor_rate=sc.option_floor_rate,
        vol=sc.vol,
    )
    oracle = MedianOracle(
        [source_name(f) for f in sc.price_files], [sc.underlying], sc.max_age_s, sc.quorum
    )
    perp = instrument_id(f"{ns}/{sc.underlying}-PERP")
    instruments: dict[InstrumentId, Instrument] = {
        perp: Perpetual(perp, sc.underlying, quote, sc.perp_size_decimals)
    }
    engine = Engine(
        ledger,
        oracle,
        clock=clock,
        quote=quote,
        instruments=instruments,
        margin=margin,
        mechanism=FixedFee(sc.penalty_rate, sc.keeper_share),
        system=system,
    )
    first = engine.step(path[0][1])
    index0 = first.index_prices.get(sc.underlying)
    if index0 is None:
        raise InvalidArgument(f"{sc.path.name}: fewer than quorum={sc.quorum} sources at start")
    expiry = first_ts + sc.option_expiry_days * 86_400
    day = datetime.fromtimestamp(expiry, UTC).strftime("%Y%m%d")
    puts: list[InstrumentId] = []
    one = 10**sc.quote_decimals
    for frac in sc.option_strikes:
        strike = int(index0 * frac) // one * one
        iid = instrument_id(f"{ns}/{sc.underlying}-{day}-{strike // one}-P")
        instruments[iid] = EuropeanOption(
            iid, sc.underlying, quote, sc.option_size_decimals, strike, expiry, False
        )
        puts.append(iid)
    engine.instruments = dict(instruments)
    holdings = generate(sc, perp, puts, instruments, index0, first_ts, margin)
    mm, keeper = AccountId(f"{ns}/market-maker"), AccountId(f"{ns}/keeper")
    with ledger.batch():
        _setup(ledger, sc, quote, system, instruments, holdings, mm, keeper)
        _open_positions(engine, holdings, perp, mm, first_ts)
    if_before = ledger.balance_units(system.insurance_fund, quote.id)
    totals = dict.fromkeys(
        ("notional", "seized", "penalty", "keeper_reward", "insurance_fee", "covered", "uncovered"),
        0,
    )
    rejected, count, index_min, index_last = len(first.rejected_reports), 0, index0, index0
    for n, (ts, reports) in enumerate(path[1:], start=2):
        clock.set(ts)
        step = engine.step(reports, keeper=keeper)
        if step.liquidations:
            with ledger.batch():
                _unwind(engine, keeper, mm, ts)
        rejected += len(step.rejected_reports)
        price = step.index_prices.get(sc.underlying, index_last)
        index_min, index_last = min(index_min, price), price
        for liq in step.liquidations:
            p = liq.plan
            count += 1
            totals["notional"] += p.notional
            totals["seized"] += p.seized
            totals["penalty"] += p.penalty
            totals["keeper_reward"] += p.keeper_reward
            totals["insurance_fee"] += p.insurance_fee
            totals["covered"] += p.bad_debt_covered
            totals["uncovered"] += p.bad_debt_uncovered
        if on_tick is not None:
            on_tick(n, len(path), step)
    ledger.check_invariants()
    ledger.snapshot()
    summary = RunSummary(
        scenario=sc.name,
        seed=sc.seed,
        db_path=str(db_path),
        decimals=sc.quote_decimals,
        accounts=len(holdings),
        ticks=len(path),
        first_ts=first_ts,
        last_ts=path[-1][0],
        index_first=index0,
        index_min=index_min,
        index_last=index_last,
        rejected_reports=rejected,
        liquidations=count,
        notional=totals["notional"],
        seized=totals["seized"],
        penalties=totals["penalty"],
        keeper_rewards=totals["keeper_reward"],
        insurance_fees=totals["insurance_fee"],
        bad_debt_covered=totals["covered"],
        bad_debt_uncovered=totals["uncovered"],
        insurance_fund_before=if_before,
        insurance_fund_after=ledger.balance_units(system.insurance_fund, quote.id),
        events=ledger.seq,
        head=ledger.head.hex(),
        state_digest=ledger.state_digest(),
    )
    storage.close()
    return summary


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
    ns, one = sc.namespace, 10**sc.quote_decimals
    world = AccountId(f"{ns}/world")
    ledger.register_asset(quote)
    for acc, kind in (
        (world, AccountKind.EXTERNAL),
        (system.settlement, AccountKind.SETTLEMENT),
        (system.bad_debt, AccountKind.BAD_DEBT),
        (system.insurance_fund, AccountKind.SYSTEM),
        (mm, AccountKind.USER),
        (keeper, AccountKind.USER),
    ):
        ledger.open_account(AccountSpec(acc, kind))
    for inst in instruments.values():
        ledger.list_instrument(inst.spec())
    funding = [
        (system.insurance_fund, sc.insurance_fund * one),
        (keeper, sc.keeper_capital * one),
        (mm, sc.market_maker_capital * one),
    ]
    for h in holdings:
        ledger.open_account(AccountSpec(h.account))
        funding.append((h.account, h.collateral))
    for acc, units in funding:
        if units:
            ledger.apply(
                Transaction(
                    f"deposit:{acc}",
                    "deposit",
                    (Posting(world, quote.units(-units)), Posting(acc, quote.units(units))),
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

