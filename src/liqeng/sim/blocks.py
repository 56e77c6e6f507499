"""The block-by-block simulator: the same engine driven through a chain, a market and
competing keepers.

A scenario with a ``[chain]`` runs here instead of tick by tick (``runner``). Block ``n``
(time ``t0 + n·block_s``):

1. **prices**: each source's price is its candle path interpolated linearly to the block's
   time, scaled by the market's displacement ``market price / path price`` (the sources
   follow the market the keepers sell into, so large liquidations move the oracle and can
   cascade); without a ``[market]`` the displacement is 1;
2. **engine**: ``Engine.step`` ingests the reports (no keeper: keepers act by transaction,
   on the scan's estimate of who is under water; each liquidation is re-checked exactly);
   for an auction mechanism the protocol's own kicker starts auctions, as a keeper would;
   the driver sets ``Engine.gas_price`` to the base fee and ``quote_per_gas`` to the gas
   token's price;
3. **chain**: the block is built from the mempool (``chain.Chain``); each included keeper
   transaction executes now, against this block's state and price, and pays its gas;
4. **keepers** look at the state and send transactions for later blocks
   (``keepers.KeeperSpec``); what they take over they sell into the market (their own sale
   moves the price) and close with the market maker at the mark;
5. **metrics** for the block.

Metrics (``BlockRun``): bad debt, insurance-fund drawdown, penalties and the mean user
penalty as a share of liquidated notional, the solvency gap (account-seconds spent
liquidatable and not yet liquidated), the liquidation delay distribution (seconds from
first eligible to liquidated), keeper PnL, and false liquidations (liquidated while the
account was healthy at the path price, i.e. caused by a price the market or an attack
moved). Randomness (keeper failures) comes from the scenario's seed.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np

from liqeng.engine import Engine
from liqeng.errors import InvalidArgument, Refused
from liqeng.ids import AccountId
from liqeng.ledger.model import AccountSpec, Posting, Transaction
from liqeng.liquidation.base import LiquidationPlan
from liqeng.liquidation.dutch_auction import DutchAuction
from liqeng.liquidation.english_auction import EnglishAuction
from liqeng.liquidation.fixed_fee import FixedFee
from liqeng.market.instruments import Perpetual
from liqeng.oracle.reports import SourceReport
from liqeng.sim.chain import GWEI, Chain, ChainParams, Congestion, Tx
from liqeng.sim.keepers import GAS_UNITS, Keeper
from liqeng.sim.market import ConstantProductMarket, DepthCurveMarket, Market
from liqeng.sim.report import RunSeries
from liqeng.sim.runner import _build, _fresh_db, _trade
from liqeng.sim.scenario import Scenario
from liqeng.units import RATE_SCALE

__all__ = ["BlockRun", "run_blocks"]

MAX_TX_PER_BLOCK = 8
"""New transactions one keeper sends per block at most (the most at risk first)."""


@dataclass(frozen=True, slots=True)
class KeeperResult:
    """One keeper's books at the end (quote base units)."""

    name: str
    sent: int
    included: int
    refused: int
    won: int
    gas_paid: int
    received: int
    inventory: int
    pnl: int


@dataclass(frozen=True, slots=True)
class BlockRun:
    """What a block-by-block run did, and its series for the report."""

    scenario: str
    label: str
    seed: int
    decimals: int
    blocks: int
    block_s: int
    liquidations: int
    notional: int
    penalties: int
    bad_debt: int
    bad_debt_uncovered: int
    insurance_fund_before: int
    insurance_fund_min: int
    insurance_fund_after: int
    solvency_gap_account_s: int
    delays_s: tuple[int, ...]
    false_liquidations: int
    backstop_liquidations: int
    keepers: tuple[KeeperResult, ...]
    auction_sales: tuple[tuple[int, int], ...]
    head: str
    state_digest: str
    block_ts: tuple[int, ...] = ()
    price: tuple[float, ...] = ()
    liquidations_per_block: tuple[int, ...] = ()
    insurance_fund: tuple[float, ...] = ()
    cumulative_bad_debt: tuple[float, ...] = ()
    health_ts: tuple[int, ...] = ()
    health_quantiles: tuple[tuple[float, float, float], ...] = ()
    base_fee_gwei: tuple[float, ...] = ()

    @property
    def mean_penalty_pct(self) -> float:
        """Penalties paid as a share of the notional liquidated, in percent."""
        return 100.0 * self.penalties / self.notional if self.notional else 0.0

    @property
    def recovery_pct(self) -> float:
        """Auctions: what the winners paid as a share of the lots' value at the sale (an
        English deal: the bid against the collateral at index; a Dutch take of a solvent
        lot: the price against ``equity − reserved``), in percent (100 when none)."""
        value = sum(v for _, v in self.auction_sales)
        return 100.0 * sum(b for b, _ in self.auction_sales) / value if value else 100.0

    @property
    def insurance_fund_drawdown(self) -> int:
        return max(self.insurance_fund_before - self.insurance_fund_min, 0)

    def series(self) -> RunSeries:
        """This run as the report's ``RunSeries``."""
        return RunSeries(
            name=self.label,
            block_ts=self.block_ts,
            price=self.price,
            health_quantiles=self.health_quantiles,
            liquidations_per_block=self.liquidations_per_block,
            insurance_fund=self.insurance_fund,
            bad_debt=self.cumulative_bad_debt,
            metrics=self.metrics(),
            scenario=self.scenario,
            health_ts=self.health_ts,
        )

    def to_json(self) -> dict[str, Any]:
        """The figures for scripts (money in base units; no per-block series)."""
        return {
            "scenario": self.scenario,
            "label": self.label,
            "seed": self.seed,
            "blocks": self.blocks,
            "block_s": self.block_s,
            "liquidations": self.liquidations,
            "notional": self.notional,
            "penalties": self.penalties,
            "bad_debt": self.bad_debt,
            "bad_debt_uncovered": self.bad_debt_uncovered,
            "insurance_fund_before": self.insurance_fund_before,
            "insurance_fund_min": self.insurance_fund_min,
            "insurance_fund_after": self.insurance_fund_after,
            "solvency_gap_account_s": self.solvency_gap_account_s,
            "delays_s": list(self.delays_s),
            "false_liquidations": self.false_liquidations,
            "backstop_liquidations": self.backstop_liquidations,
            "auction_sales": [list(x) for x in self.auction_sales],
            "keepers": [dataclasses.asdict(k) for k in self.keepers],
            "head": self.head,
            "state_digest": self.state_digest,
            "metrics": self.metrics(),
        }

    def metrics(self) -> dict[str, float | int | str]:
        """The comparison table's row for this run (money in whole quote units)."""
        one = 10**self.decimals
        delays = sorted(self.delays_s)

        def pct(q: float) -> int:
            return delays[min(int(q * len(delays)), len(delays) - 1)] if delays else 0

        return {
            "liquidations": self.liquidations,
            "  by the protocol's backstop": self.backstop_liquidations,
            "notional liquidated": round(self.notional / one),
            "user penalty, % of notional": round(self.mean_penalty_pct, 3),
            "bad debt": round(self.bad_debt / one),
            "bad debt uncovered": round(self.bad_debt_uncovered / one),
            "insurance fund drawdown": round(self.insurance_fund_drawdown / one),
            "solvency gap, account-hours": round(self.solvency_gap_account_s / 3600, 1),
            "delay p50 / p90 / max, s": f"{pct(0.5)} / {pct(0.9)} / {delays[-1] if delays else 0}",
            "false liquidations": self.false_liquidations,
            "auction price, % of lot value": round(self.recovery_pct, 2),
            "keeper PnL": round(sum(k.pnl for k in self.keepers) / one),
        }


@dataclass(slots=True)
class _Paths:
    """Each source's (ts, price) points, interpolated to any time."""

    ts: dict[str, list[int]] = field(default_factory=dict)
    px: dict[str, list[int]] = field(default_factory=dict)

    def at(self, source: str, t: int) -> int:
        ts, px = self.ts[source], self.px[source]
        i = bisect.bisect_right(ts, t)
        if i == 0:
            return px[0]
        if i == len(ts):
            return px[-1]
        t0, t1, p0, p1 = ts[i - 1], ts[i], px[i - 1], px[i]
        return p0 + (p1 - p0) * (t - t0) // (t1 - t0)


def _paths(path: Sequence[tuple[int, list[SourceReport]]]) -> _Paths:
    out = _Paths()
    for ts, reports in path:
        for r in reports:
            out.ts.setdefault(r.source, []).append(ts)
            out.px.setdefault(r.source, []).append(r.price)
    return out


def _market(sc: Scenario, price: int, decimals: int) -> Market | None:
    spec = sc.market
    if spec is None:
        return None
    one = 10**sc.quote_decimals
    if spec.model == "amm":
        return ConstantProductMarket(int(spec.depth * one), price, decimals=decimals)
    return DepthCurveMarket(int(spec.depth * one), price, spec.resilience, decimals=decimals)


def run_blocks(
    sc: Scenario,
    db_path: Path,
    on_block: Callable[[int, int], None] | None = None,
    label: str | None = None,
) -> BlockRun:
    """Drive ``sc`` block by block (module doc) into a new ledger at ``db_path``."""
    spec = sc.chain
    if spec is None:
        raise InvalidArgument(f"scenario {sc.name!r} has no [chain]: run it with runner.run")
    _fresh_db(db_path)
    w = _build(sc, db_path)
    engine, ledger, clock = w.engine, w.engine.ledger, w.clock
    q, one = engine.quote, 10**sc.quote_decimals
    fund = engine.system.insurance_fund
    perp = next(i for i, inst in engine.instruments.items() if isinstance(inst, Perpetual))
    decimals = engine.instruments[perp].size_decimals
    paths = _paths(w.path)
    t0, t_end = w.path[0][0] + spec.start_s, w.path[-1][0]
    if spec.duration_s is not None:
        t_end = min(t_end, t0 + spec.duration_s)
    n_blocks = max((t_end - t0) // spec.block_s, 0)
    congestion = [
        Congestion(
            s // spec.block_s,
            max(e // spec.block_s, s // spec.block_s),
            gas,
            round(tip * GWEI),
            round(cap * GWEI),
        )
        for s, e, gas, tip, cap in spec.congestion
    ]
    chain = Chain(
        ChainParams(
            block_s=spec.block_s,
            gas_limit=spec.gas_limit,
            base_fee=max(round(spec.base_fee_gwei * GWEI), 7),
        ),
        t0,
        congestion,
    )
    rng = np.random.default_rng(sc.seed)
    keepers = _open_keepers(engine, sc)
    mech = engine.mechanism
    kicker = w.keeper if isinstance(mech, (DutchAuction, EnglishAuction)) else None
    index0 = engine.index_prices[sc.underlying]
    market = _market(sc, index0, decimals)
    if_before = ledger.balance_units(fund, q.id)
    if_min = if_before
    liquidations = notional = penalties = bad = uncovered = false_liq = gap = 0
    first_seen: dict[AccountId, int] = {}
    delays: list[int] = []
    recoveries: list[tuple[int, int]] = []  # auction sales: (paid, lot value)
    backstops = 0
    series_ts: list[int] = []
    series_px: list[float] = []
    series_liq: list[int] = []
    series_if: list[float] = []
    series_bad: list[float] = []
    series_fee: list[float] = []
    health_ts: list[int] = []
    health_q: list[tuple[float, float, float]] = []
    # account health is sampled every 15 minutes over (at most) 500 accounts
    sample_every = max(1, 900 // spec.block_s)
    sample = sorted(h.account for h in w.holdings)[:500]
    for n in range(1, n_blocks + 1):
        ts = t0 + n * spec.block_s
        clock.set(ts)
        ext = {s: paths.at(s, ts) for s in sorted(paths.ts)}
        ext_mid = int(statistics.median(ext.values()))
        factor = Fraction(1)
        if market is not None:
            market.step(ext_mid)
            factor = market.price / ext_mid
        lies = {
            a.source: Fraction(a.factor).limit_denominator(10**6)
            for a in sc.attacks
            if a.start_s <= ts - t0 < a.end_s
        }
        reports = [
            SourceReport(s, sc.underlying, max(math.floor(p * factor * lies.get(s, 1)), 1), ts)
            for s, p in ext.items()
        ]
        gas_token = (
            engine.index_prices.get(sc.underlying, index0)
            if spec.gas_token_price is None
            else round(spec.gas_token_price * one)
        )
        engine.gas_price, engine.quote_per_gas = chain.base_fee, gas_token
        step = engine.step(reports, keeper=kicker, screen_only=kicker is None)
        index = step.index_prices.get(sc.underlying, ext_mid)
        block = chain.produce()
        for tx in block.dropped:  # waited too long: the keeper may try again
            tx.payload[0].in_flight.discard(tx.payload[2])
        done_here = 0
        for tx, fee in block.included:
            keeper: Keeper = tx.payload[0]
            keeper.included += 1
            keeper.gas_paid += tx.gas * fee * gas_token // 10**18
            keeper.in_flight.discard(tx.payload[2])
            plan = _execute(engine, tx, ts, w.market_maker, market, decimals, ext_mid)
            if plan == "bid":  # a standing bid: the deal settles it
                continue
            if plan is None:
                keeper.refused += 1
                continue
            keeper.won += 1
            keeper.received += plan[0].keeper_reward + plan[2]
            keeper.inventory += plan[1]
            p = plan[0]
            memo = p.transaction.memo
            if "base" in memo and Fraction(memo["base"]) > 0:  # a Dutch take of a solvent lot
                base = Fraction(memo["base"])
                recoveries.append((math.floor(base - plan[2]), math.floor(base)))
            done_here += 1
            liquidations += 1
            notional += p.notional
            penalties += p.penalty
            bad += p.bad_debt_covered + p.bad_debt_uncovered
            bad += p.bad_debt_socialised + p.bad_debt_deleveraged
            uncovered += p.bad_debt_uncovered
            account = AccountId(p.transaction.memo["account"])
            delays.append(ts - first_seen.get(account, ts))
            if plan[3]:
                false_liq += 1
        if isinstance(mech, EnglishAuction):
            for p, winner, gain, inventory in _settle_flips(
                engine, mech, keepers, ts, market, decimals, w.market_maker
            ):
                done_here += 1
                liquidations += 1
                notional += p.notional
                penalties += p.penalty
                bad += p.bad_debt_covered + p.bad_debt_uncovered
                uncovered += p.bad_debt_uncovered
                recoveries.append(gain)
                if winner is not None:
                    winner.won += 1
                    winner.received += gain[1] - gain[0]
                    winner.inventory += inventory
        for liq in step.liquidations:  # the kicker's kicks
            account = liq.account
            delays.append(ts - first_seen.get(account, ts))
        underwater = [a for a in step.underwater if engine.holds(a) is None]
        # the current spell under water of each account (a recovery ends it)
        first_seen = {a: first_seen.get(a, ts) for a in underwater}
        gap += len(underwater) * spec.block_s
        if spec.backstop_s is not None and kicker is None:
            busy = set().union(*(k.in_flight for k in keepers)) if keepers else set()
            for a in underwater:
                if ts - first_seen[a] < spec.backstop_s or str(a) in busy:
                    continue
                try:
                    liq = engine.liquidate(a, w.keeper, f"backstop:{ts}:{a}")
                except Refused:
                    continue
                _unwind(engine, w.keeper, w.market_maker, ts, market, decimals, f"b:{ts}:{a}")
                p = liq.plan
                backstops += 1
                done_here += 1
                liquidations += 1
                notional += p.notional
                penalties += p.penalty
                bad += p.bad_debt_covered + p.bad_debt_uncovered
                bad += p.bad_debt_socialised + p.bad_debt_deleveraged
                uncovered += p.bad_debt_uncovered
                delays.append(ts - first_seen[a])
        _decide(engine, chain, keepers, underwater, n, rng, ext_mid, sc, ts - t0)
        balance = ledger.balance_units(fund, q.id)
        if_min = min(if_min, balance)
        series_ts.append(ts)
        series_px.append(index / one)
        series_liq.append(done_here + len(step.liquidations))
        series_if.append(balance / one)
        series_bad.append(bad / one)
        series_fee.append(block.base_fee / GWEI)
        if n % sample_every == 0:
            hs = sorted(_health(engine, a) for a in sample if ledger.positions_of(a))
            if hs:
                health_ts.append(ts)
                health_q.append(
                    (
                        hs[int(0.05 * (len(hs) - 1))],
                        hs[int(0.25 * (len(hs) - 1))],
                        hs[int(0.5 * (len(hs) - 1))],
                    )
                )
        if on_block is not None:
            on_block(n, n_blocks)
    ledger.check_invariants()
    ledger.snapshot()
    run = BlockRun(
        scenario=sc.name,
        label=label or (sc.preset or sc.mechanism),
        seed=sc.seed,
        decimals=sc.quote_decimals,
        blocks=n_blocks,
        block_s=spec.block_s,
        liquidations=liquidations,
        notional=notional,
        penalties=penalties,
        bad_debt=bad,
        bad_debt_uncovered=uncovered,
        insurance_fund_before=if_before,
        insurance_fund_min=if_min,
        insurance_fund_after=ledger.balance_units(fund, q.id),
        solvency_gap_account_s=gap,
        delays_s=tuple(delays),
        false_liquidations=false_liq,
        backstop_liquidations=backstops,
        auction_sales=tuple(recoveries),
        keepers=tuple(
            KeeperResult(
                str(k.account),
                k.sent,
                k.included,
                k.refused,
                k.won,
                k.gas_paid,
                k.received,
                k.inventory,
                k.pnl,
            )
            for k in keepers
        ),
        head=ledger.head.hex(),
        state_digest=ledger.state_digest(),
        block_ts=tuple(series_ts),
        price=tuple(series_px),
        liquidations_per_block=tuple(series_liq),
        insurance_fund=tuple(series_if),
        cumulative_bad_debt=tuple(series_bad),
        health_ts=tuple(health_ts),
        health_quantiles=tuple(health_q),
        base_fee_gwei=tuple(series_fee),
    )
    w.storage.close()
    return run


def _settle_flips(
    engine: Engine,
    mech: EnglishAuction,
    keepers: Sequence[Keeper],
    ts: int,
    market: Market | None,
    decimals: int,
    mm: AccountId,
) -> list[tuple[LiquidationPlan, Keeper | None, tuple[int, int], int]]:
    """The protocol's housekeeping each block: deal every English auction that is over
    with a bid (``(plan, winner, (bid, lot value), winner's inventory PnL)``) and restart
    (``tick``) those over without one."""
    out = []
    by_account = {str(k.account): k for k in keepers}
    for aid, flip in sorted(mech.flips.items()):
        if flip.done or ts < flip.ends_at:
            continue
        if flip.bid == 0:
            mech.tick(engine, aid, f"tick:{ts}:{aid}".replace("/", ":"))
            continue
        value = mech.lot_value(engine, aid)
        res = mech.deal(engine, aid, f"deal:{ts}:{aid}".replace("/", ":"))
        if res.plan is None:  # pragma: no cover - a deal always carries its plan
            continue
        winner = by_account.get(str(flip.guy))
        inventory = 0
        if winner is not None:
            inventory = _unwind(engine, winner.account, mm, ts, market, decimals, f"deal:{aid}")
        out.append((res.plan, winner, (flip.bid, value), inventory))
    return out


def _health(engine: Engine, account: AccountId) -> float:
    risk = engine.risk(account)
    n, d = risk.health_ratio
    return min(n / d, 10.0)


def _open_keepers(engine: Engine, sc: Scenario) -> list[Keeper]:
    """Open and fund every keeper of ``sc`` (``<ns>/keeper-<name>-<i>``)."""
    ledger, q = engine.ledger, engine.quote
    world = AccountId(f"{sc.namespace}/world")
    out: list[Keeper] = []
    with ledger.batch():
        for spec in sc.keepers:
            for i in range(spec.count):
                account = AccountId(f"{sc.namespace}/keeper-{spec.name}-{i}")
                ledger.open_account(AccountSpec(account))
                units = spec.capital * 10**sc.quote_decimals
                if units:
                    ledger.apply(
                        Transaction(
                            f"deposit:{account}",
                            "deposit",
                            (Posting(world, q.units(-units)), Posting(account, q.units(units))),
                        )
                    )
                out.append(Keeper(account, spec))
    return out


def _decide(
    engine: Engine,
    chain: Chain,
    keepers: Sequence[Keeper],
    underwater: Sequence[AccountId],
    n: int,
    rng: np.random.Generator,
    ext_mid: int,
    sc: Scenario,
    elapsed: int,
) -> None:
    """Every keeper sends a transaction per opportunity worth its gas (module doc), unless
    it is offline ``elapsed`` seconds into the run."""
    mech = engine.mechanism
    gas_token = engine.quote_per_gas
    targets: list[tuple[str, str, dict[str, Any]]] = []
    if isinstance(mech, DutchAuction):
        for aid, auction in sorted(mech.house.auctions.items()):
            if auction.done:
                continue
            try:
                quote = mech.quote(engine, aid)
            except (Refused, InvalidArgument):
                continue
            if quote.needs_reset:
                targets.append(("redo", aid, {"value": 0}))
            else:
                targets.append(
                    ("take", aid, {"value": quote.concession, "price": math.ceil(quote.price)})
                )
    elif isinstance(mech, EnglishAuction):
        now = engine.clock.now()
        for aid, flip in sorted(mech.flips.items()):
            if flip.done or now >= flip.ends_at or flip.phase != "tend":
                continue
            try:
                value = mech.lot_value(engine, aid)
            except (Refused, InvalidArgument):
                continue
            info: dict[str, Any] = {"value": value, "min_bid": mech.min_bid(aid), "tab": flip.tab}
            targets.append(("tend", aid, {**info, "guy": str(flip.guy)}))
    else:
        # the most at risk first; a keeper sends at most MAX_TX_PER_BLOCK new transactions,
        # so only the accounts some keeper may still take are priced
        busy = set.intersection(*(k.in_flight for k in keepers)) if keepers else set()
        for account in underwater:
            if str(account) in busy:
                continue
            reward = _expected_reward(engine, account)
            targets.append(("liquidate", str(account), {"value": reward}))
            if len(targets) >= MAX_TX_PER_BLOCK * 4:
                break
    if not targets:
        return
    for k in keepers:
        spec = k.spec
        if spec.failure_rate and rng.random() < spec.failure_rate:
            continue
        if spec.offline is not None and spec.offline[0] <= elapsed < spec.offline[1]:
            continue
        sent = 0
        for kind, target, info in targets:
            if target in k.in_flight:
                continue
            if sent >= MAX_TX_PER_BLOCK:
                break
            gas = GAS_UNITS["take" if kind in ("take", "redo") else kind]
            fee = chain.base_fee * 2 + spec.tip
            if spec.max_fee_gwei is not None:
                fee = round(spec.max_fee_gwei * GWEI)
            cost = gas * (chain.base_fee + spec.tip) * gas_token // 10**18
            value = info["value"]
            args = dict(info)
            if kind == "tend":  # bid bid_fraction of the lot's value, if that is a valid bid
                if info["guy"] == str(k.account):
                    continue
                bid = min(int(value * Fraction(spec.bid_fraction)), int(info["tab"]))
                if bid < int(info["min_bid"]) or bid <= 0:
                    continue
                args["bid"], value = bid, value - bid
            if kind != "redo" and value < cost + spec.min_profit * 10**sc.quote_decimals:
                continue
            k.sent += 1
            sent += 1
            k.in_flight.add(target)
            chain.submit(
                Tx(
                    f"{k.account}:{n}:{target}",
                    str(k.account),
                    gas,
                    fee,
                    spec.tip,
                    n + max(spec.latency, 1),
                    (k, kind, target, args),
                )
            )


def _expected_reward(engine: Engine, account: AccountId) -> int:
    """What a keeper expects from liquidating ``account``: with a ``FixedFee``, its share
    (or its ``KeeperReward``) of ``min(rate·notional, equity⁺)``; with another mechanism the
    same at a 5% penalty, half to the keeper. An estimate: the ledger decides."""
    mech = engine.mechanism
    risk = engine.risk(account)
    positions = engine.ledger.positions_of(account)
    notional = sum(engine._by_market(positions, engine.index_prices).values())
    rate, share = 50_000_000, 500_000_000
    if isinstance(mech, FixedFee):
        rate, share = mech.max_rate, mech.keeper_share
    fee = min(notional * rate // RATE_SCALE, max(risk.equity, 0))
    if isinstance(mech, FixedFee) and mech.keeper_reward is not None:
        return mech.keeper_reward.reward(fee, engine.gas_price, engine.quote_per_gas)
    return fee * share // RATE_SCALE


def _execute(
    engine: Engine,
    tx: Tx,
    ts: int,
    mm: AccountId,
    market: Market | None,
    decimals: int,
    path_price: int,
) -> tuple[LiquidationPlan, int, int, bool] | Literal["bid"] | None:
    """Run a keeper transaction now; ``(plan, inventory PnL, discount received, false)``,
    ``"bid"`` for a standing English bid, or ``None`` when it was refused (the race was
    lost, the price moved). ``false``: the account was not liquidatable at ``path_price``,
    the scenario's own price."""
    keeper, kind, target, info = tx.payload
    mech = engine.mechanism
    false = False
    discount = 0
    try:
        if kind == "liquidate":
            account = AccountId(target)
            false = _false(engine, account, path_price)
            liq = engine.liquidate(account, keeper.account, f"k:{tx.id}")
            plan = liq.plan
        elif kind == "take":
            assert isinstance(mech, DutchAuction)
            res = mech.take(engine, target, keeper.account, 1, info["price"], f"k:{tx.id}")
            if res.plan is None:
                return None
            plan = res.plan
            discount = int(Fraction(plan.transaction.memo.get("concession", "0")))
        elif kind == "tend":
            assert isinstance(mech, EnglishAuction)
            mech.tend(engine, target, keeper.account, info["bid"], f"k:{tx.id}")
            return "bid"
        elif kind == "redo":
            assert isinstance(mech, DutchAuction)
            mech.redo(engine, target, keeper.account, f"k:{tx.id}")
            return None
        else:  # pragma: no cover - kinds come from _decide
            raise InvalidArgument(f"unknown keeper action {kind!r}")
    except Refused:
        return None
    inventory = _unwind(engine, keeper.account, mm, ts, market, decimals, tx.id)
    return plan, inventory, discount, false


def _false(engine: Engine, account: AccountId, path_price: int) -> bool:
    """Not liquidatable at the path's price (the oracle's index, moved by the market or an
    attack, made it so); every market the account trades is valued at that price."""
    positions = engine.ledger.positions_of(account)
    markets = {engine.instruments[i].underlying for i in positions}
    at_path = {**engine.index_prices, **{m: path_price for m in markets}}
    return not engine.risk(account, positions, at_path).is_liquidatable


def _unwind(
    engine: Engine,
    keeper: AccountId,
    mm: AccountId,
    ts: int,
    market: Market | None,
    decimals: int,
    tag: str,
) -> int:
    """The keeper sells what it took over: perpetuals into the market (its sale moves the
    price; the PnL against the mark is returned), then closes every position with the
    market maker at the mark."""
    pnl = 0
    for iid, pos in sorted(engine.ledger.positions_of(keeper).items()):
        inst = engine.instruments[iid]
        if market is not None and isinstance(inst, Perpetual) and inst.size_decimals == decimals:
            mark = engine.index_prices[inst.underlying]
            value = abs(pos.size) * mark // 10**decimals
            if pos.size > 0:
                pnl += market.sell(pos.size) - value
            else:
                pnl += value - market.buy(-pos.size)
        _trade(engine, f"unwind:{tag}:{iid}", keeper, mm, iid, -pos.size, ts)
    for spec in engine.collateral.values():  # spot collateral taken over: sold the same way
        units = engine.ledger.balance_units(keeper, spec.asset.id)
        if units <= 0:
            continue
        index = engine.index_prices[spec.underlying]
        value = units * index // 10**spec.asset.decimals
        if market is not None and spec.asset.decimals == decimals:
            pnl += market.sell(units) - value
        q = engine.quote
        engine.ledger.apply(
            Transaction(
                f"unwind:{tag}:{spec.asset.id}",
                "trade",
                (
                    Posting(keeper, spec.asset.units(-units)),
                    Posting(mm, spec.asset.units(units)),
                    Posting(mm, q.units(-value)),
                    Posting(keeper, q.units(value)),
                ),
            )
        )
    return pnl
