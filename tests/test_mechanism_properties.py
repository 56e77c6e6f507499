"""Properties every liquidation mechanism keeps, on the real engine over a real SQLite ledger.

Each Hypothesis example builds a fresh engine (``tests.test_engine.make_engine``) in its own
temporary directory: a few users with random cash open random perp and put positions
against BOB (the market maker) at t=0, ETH 2,000; at t=60 ETH is at a random price that
makes some accounts liquidatable (some insolvent); the insurance fund and the backstop pool
(or its depositors) hold random balances, zero included.

Every liquidation (``Engine.liquidate``), auction kick and auction take is measured on its
own, before and after, with the prices unchanged across it:

* conservation: per asset the sum over every ledger account, per instrument the sum of
  sizes, and ``Ledger.check_invariants``;
* what is seized is at most the account's cash (plus collateral) before; no balance of
  the account goes negative;
* the account's mark-to-market equity changes by exactly ``bad_debt - charged - r`` with
  ``0 <= r <=`` the mark rounding of the legs closed (``charged``: the penalty the account
  paid; for an auction take, plus the taker's concession; ``bad_debt`` what the waterfall
  paid in for it), so it never falls by more than ``charged`` (+ rounding), and an
  insolvent account closed whole never ends below where it started;
* the waterfall covers a loss exactly once: ``bad = covered + socialised + deleveraged +
  uncovered``, the insurance fund moves by ``insurance_fee - its cover``, the bad-debt
  account by ``-uncovered``, and the drops of the fund, the pool and the other users
  (haircuts, ADL) add up to ``bad - uncovered``;
* the vectorised screen and the exact path agree on who is liquidatable and on what each
  liquidation does, with a keeper-reward surcharge and a closing cost.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tests.conftest import ALICE, USDC, deposit
from tests.test_engine import KEEPER, PERP, PUT, SYS, USD, make_engine, reports, trade

from liqeng.clock import SimClock
from liqeng.engine import Engine
from liqeng.errors import Refused
from liqeng.ids import AccountId, AssetId, InstrumentId
from liqeng.ledger.model import AccountKind, AccountSpec, Position
from liqeng.liquidation import FixedFee
from liqeng.liquidation.base import LiquidationPlan, Mechanism
from liqeng.liquidation.dutch_auction import DutchAuction
from liqeng.liquidation.keeper import KeeperReward
from liqeng.liquidation.penalty import AdaptivePenalty, HealthTiers, VolatilityScaling
from liqeng.liquidation.pool import BackstopPool
from liqeng.liquidation.portion import CloseFactor, TargetHealth
from liqeng.liquidation.sizing import AAVE_V3_CLOSE_FACTOR, DustRule
from liqeng.liquidation.waterfall import Waterfall
from liqeng.market import mark_price
from liqeng.market.instruments import EuropeanOption

ETH = 10**6  # one ETH of perp / put size (6 size decimals)
GWEI = 10**9
BOB = AccountId("t/bob")
USERS = tuple(AccountId(f"t/u{i}") for i in range(4))
DEPOSITORS = tuple(AccountId(f"t/d{i}") for i in range(2))
# more with LIQENG_PROPERTY_EXAMPLES=200 (the default keeps the file under ~30 s)
EXAMPLES = int(os.environ.get("LIQENG_PROPERTY_EXAMPLES", "20"))

# ------------------------------------------------------------------ the mechanisms


def _adaptive() -> FixedFee:
    return FixedFee(
        penalty=AdaptivePenalty(
            HealthTiers(((Fraction(1), 20_000_000),)),
            VolatilityScaling(0.5, Fraction(1), Fraction(1, 2), Fraction(3)),
            0,
            100_000_000,
        )
    )


def _rewarded() -> FixedFee:
    return FixedFee(
        keeper_reward=KeeperReward(tip=5 * USD, share=100_000_000, gas_units=500_000),
        dust=DustRule(2_000 * USD),
        max_gas_price=50 * GWEI,
        max_quote_per_gas=2_000 * USD,
    )


MECHANISMS: dict[str, Callable[[], Mechanism]] = {
    "fixed-fee": FixedFee,
    "fixed-fee-close-factor": lambda: FixedFee(sizing=CloseFactor(AAVE_V3_CLOSE_FACTOR)),
    "fixed-fee-target-health": lambda: FixedFee(sizing=TargetHealth(Fraction(6, 5))),
    "fixed-fee-adaptive": _adaptive,
    "fixed-fee-keeper-reward": _rewarded,
    "fixed-fee-backstop": lambda: FixedFee(
        waterfall=Waterfall(("insurance_fund", "backstop_pool"))
    ),
    "fixed-fee-socialised": lambda: FixedFee(waterfall=Waterfall(("insurance_fund", "socialised"))),
    "fixed-fee-adl": lambda: FixedFee(waterfall=Waterfall(("insurance_fund", "adl"))),
    "dutch-auction": DutchAuction,
    "dutch-auction-kick-reward": lambda: DutchAuction(
        keeper_reward=KeeperReward(tip=5 * USD, share=100_000_000), keeper_share=200_000_000
    ),
    "backstop-pool": lambda: BackstopPool(keeper_reward=KeeperReward(tip=10 * USD, share=0)),
}

# ------------------------------------------------------------------ the books


@dataclass(frozen=True)
class Book:
    """Per user ``(cash USD, perp size, put size)`` (sizes signed, long > 0), the crash
    price, the insurance fund and pool (or depositors') balances in USD, and for the
    auction the delay of the takes after the kick and the first take's fraction."""

    users: tuple[tuple[int, int, int], ...]
    price: int
    fund_usd: int
    pool_usd: int
    delay: int
    first: Fraction


SIZES = st.one_of(
    st.sampled_from([5 * ETH, -5 * ETH, 10 * ETH, -3 * ETH, 2 * ETH, 0]),
    st.integers(-8 * ETH, 8 * ETH),
)
PUTS = st.one_of(
    st.just(0), st.sampled_from([-5 * ETH, -2 * ETH, ETH]), st.integers(-3 * ETH, 3 * ETH)
)
# mostly a move that makes leveraged books liquidatable, some insolvent
PRICES = st.one_of(st.integers(1_700, 1_950), st.integers(2_050, 2_300), st.integers(1_400, 2_600))


@st.composite
def books(draw: st.DrawFn) -> Book:
    users = draw(
        st.lists(
            st.tuples(st.integers(50, 2_000), SIZES, PUTS),
            min_size=1,
            max_size=len(USERS),
        )
    )
    price = draw(PRICES)
    cash, perp, _ = users[0]
    if perp and draw(st.booleans()):
        # the price at which the first user's perp alone is at a health just below 1
        # (partial closes): cash + s·(p - 2000) = h·5%·|s|·p
        h = draw(st.sampled_from([Fraction(1, 2), Fraction(4, 5), Fraction(24, 25)]))
        s = Fraction(perp, ETH)
        p = (2000 * s - cash) / (s - h * abs(s) / 20)
        price = min(max(round(p), 1_000), 3_000)
    return Book(
        tuple(users),
        price,
        draw(st.sampled_from([0, 0, 50, 300, 5_000])),
        draw(st.sampled_from([0, 0, 100, 400, 5_000])),
        draw(st.sampled_from([0, 30, 400, 2_000, 6_000])),
        draw(st.sampled_from([Fraction(1), Fraction(1, 2), Fraction(1, 3), Fraction(3, 4)])),
    )


# ------------------------------------------------------------------ the engine


@contextmanager
def crashed(
    mech: Mechanism, book: Book, **engine_kwargs: Any
) -> Iterator[tuple[Engine, SimClock, tuple[AccountId, ...]]]:
    """A fresh engine with ``book`` opened at t=0 (ETH 2,000) and prices at the crash
    price at t=60 (a step without keeper: nothing liquidated yet)."""
    with tempfile.TemporaryDirectory() as tmp:
        engine, clock = make_engine(
            Path(tmp), fund_usd=book.fund_usd, mechanism=mech, **engine_kwargs
        )
        try:
            led = engine.ledger
            led.open_account(AccountSpec(SYS.backstop_pool, AccountKind.SYSTEM))
            if isinstance(mech, BackstopPool):
                for i, d in enumerate(DEPOSITORS):
                    led.open_account(AccountSpec(d, AccountKind.USER))
                    deposit(led, f"d-{d}", d, 10**6 * USD)
                    if book.pool_usd:
                        mech.deposit(engine, d, book.pool_usd * USD * (i + 1), f"pool-{d}")
            elif book.pool_usd:
                deposit(led, "d-pool", SYS.backstop_pool, book.pool_usd * USD)
            engine.step(reports(0, *[2000] * 5))
            premium = max(1, round(mark_price(PUT, 2000 * USD, 0, engine.margin.vol) / USD))
            users = USERS[: len(book.users)]
            for user, (cash, perp, put) in zip(users, book.users, strict=True):
                led.open_account(AccountSpec(user, AccountKind.USER))
                # a long put's premium comes on top of the drawn cash
                cost = -(-max(put, 0) * premium * USD // ETH)
                deposit(led, f"d-{user}", user, cash * USD + cost)
                if perp:
                    buyer, seller = (user, BOB) if perp > 0 else (BOB, user)
                    trade(engine, f"perp-{user}", buyer, seller, PERP, abs(perp), 2000)
                if put:
                    buyer, seller = (user, BOB) if put > 0 else (BOB, user)
                    trade(engine, f"put-{user}", buyer, seller, PUT, abs(put), premium)
            clock.set(60)
            engine.step(reports(60, *[book.price] * 5))
            yield engine, clock, users
        finally:
            engine.ledger._storage.close()


# ------------------------------------------------------------------ measuring


@dataclass(frozen=True)
class Snapshot:
    money: dict[AssetId, int]
    sizes: dict[InstrumentId, int]
    balances: dict[tuple[AccountId, AssetId], int]
    positions: dict[tuple[AccountId, InstrumentId], Position]
    equity: dict[AccountId, int]

    def balance(self, account: AccountId) -> int:
        return self.balances.get((account, USDC.id), 0)


def snapshot(engine: Engine) -> Snapshot:
    led = engine.ledger
    balances = dict(led.balances())
    positions = dict(led.positions())
    money: dict[AssetId, int] = dict.fromkeys(led.assets, 0)
    for (_, asset), units in balances.items():
        money[asset] += units
    sizes: dict[InstrumentId, int] = {}
    for (_, iid), pos in positions.items():
        sizes[iid] = sizes.get(iid, 0) + pos.size
    equity = {
        a: engine.risk(a).equity
        for a, kind in sorted(led.accounts.items())
        if kind is AccountKind.USER
    }
    return Snapshot(money, sizes, balances, positions, equity)


@dataclass(frozen=True)
class Record:
    """One liquidation step (``kind``: liquidation, kick or take) of ``account`` and the
    ledger before and after it. ``charged`` is what the account paid besides its realised
    losses (penalty; an auction take adds the concession; a pool the penalty it keeps);
    ``concession`` the taker's concession (0 but for takes); ``rounding`` the most the
    mark rounding of the legs closed may cost the account; ``final``: nothing of the
    account's book is left to liquidate; ``pool_in`` the quote the pool account received
    as a gain (the backstop pool with depositors); ``fund_cover`` what the insurance fund
    paid towards the loss when the mechanism names it."""

    kind: str
    account: AccountId
    plan: LiquidationPlan
    before: Snapshot
    after: Snapshot
    cash_before: int
    charged: int
    concession: int
    rounding: int
    final: bool
    pool_in: int = 0
    fund_cover: int | None = None
    pool_total: int | None = None

    @property
    def bad(self) -> int:
        p = self.plan
        return (
            p.bad_debt_covered
            + p.bad_debt_socialised
            + p.bad_debt_deleveraged
            + p.bad_debt_uncovered
        )


def _rounding(engine: Engine, closed: Mapping[InstrumentId, int], whole: bool) -> int:
    """The most the marks' rounding may cost an account closing ``closed`` (signed sizes):
    an option leg fills at its mark rounded to a whole quote unit per whole token and the
    premium rounds once more, and its value rounds once more in what is left; a partial
    perp close rounds the realised PnL and the value of the rest apart (1 unit)."""
    total = 0
    for iid, size in closed.items():
        if size == 0:
            continue
        inst = engine.instruments[iid]
        if isinstance(inst, EuropeanOption):
            total += -(-abs(size) // 10**inst.size_decimals) + 2
        elif not whole:
            total += 1
    return total


def _closed(before: Snapshot, after: Snapshot, account: AccountId) -> dict[InstrumentId, int]:
    out: dict[InstrumentId, int] = {}
    for (a, iid), pos in before.positions.items():
        if a == account:
            left = after.positions.get((a, iid))
            out[iid] = pos.size - (left.size if left is not None else 0)
    return out


def _record(
    engine: Engine,
    kind: str,
    account: AccountId,
    plan: LiquidationPlan,
    before: Snapshot,
    after: Snapshot,
    charged: int,
    concession: int = 0,
    pool_in: int = 0,
    fund_cover: int | None = None,
    pool_total: int | None = None,
) -> Record:
    closed = _closed(before, after, account)
    final = not any(a == account for a, _ in after.positions)
    return Record(
        kind,
        account,
        plan,
        before,
        after,
        before.balance(account),
        charged,
        concession,
        _rounding(engine, closed, final),
        final,
        pool_in,
        fund_cover,
        pool_total,
    )


def liquidate_all(mech: Mechanism, book: Book, **engine_kwargs: Any) -> list[Record]:
    """Crash ``book`` and liquidate every liquidatable account one call at a time (for an
    auction: kick each, then take each in one or two takes after ``book.delay``)."""
    records: list[Record] = []
    with crashed(mech, book, **engine_kwargs) as (engine, clock, users):
        underwater = [a for a in engine._liquidatable() if a[1] in users]
        for _, account, *_ in underwater:
            before = snapshot(engine)
            pool_total = mech.state.total if isinstance(mech, BackstopPool) else 0
            try:
                liq = engine.liquidate(account, KEEPER, f"liq-{account}")
            except Refused as exc:
                # ADL or a haircut of an earlier liquidation changed this account
                touched = any(
                    r.plan.bad_debt_deleveraged or r.plan.bad_debt_socialised for r in records
                )
                if exc.code == "liquidation/not-liquidatable" and touched:
                    continue
                raise
            after = snapshot(engine)
            plan = liq.plan
            if isinstance(mech, DutchAuction):
                records.append(_record(engine, "kick", account, plan, before, after, plan.penalty))
            elif isinstance(mech, BackstopPool):
                memo = plan.transaction.memo
                paid = int(memo["penalty_paid_in_cash"])
                charged = plan.keeper_reward + paid
                records.append(
                    _record(
                        engine,
                        "liquidation",
                        account,
                        plan,
                        before,
                        after,
                        charged,
                        pool_in=paid if pool_total > 0 else 0,
                        fund_cover=int(memo["insurance_fund_cover"]),
                        pool_total=pool_total,
                    )
                )
            else:
                records.append(
                    _record(engine, "liquidation", account, plan, before, after, plan.penalty)
                )
        if isinstance(mech, DutchAuction):
            now = 60 + book.delay
            clock.set(now)
            engine.step(reports(now, *[book.price] * 5))  # fresh prices, the same price
            for _, account, *_ in underwater:
                aid = mech.auction_id_for(account, f"liq-{account}")
                for n, fraction in enumerate((book.first, Fraction(1))):
                    if mech.house.get(aid).done:
                        break
                    before = snapshot(engine)
                    quote = mech.quote(engine, aid)
                    r = mech.take(engine, aid, KEEPER, fraction, 10**15, f"take-{n}-{account}")
                    after = snapshot(engine)
                    assert r.plan is not None
                    f = Fraction(r.plan.transaction.memo["fraction"])
                    exact = f * quote.concession
                    conc = math.floor(exact) if exact >= 0 else math.ceil(exact)
                    assert int(r.plan.transaction.memo["concession"]) == conc
                    rec = _record(
                        engine,
                        "take",
                        account,
                        r.plan,
                        before,
                        after,
                        r.plan.penalty + conc,
                        concession=conc,
                    )
                    records.append(rec)
    return records


def run(name: str, book: Book) -> list[Record]:
    """``liquidate_all`` with a fresh ``MECHANISMS[name]``, its records tallied as events."""
    records = liquidate_all(MECHANISMS[name](), book)
    for rec in records:
        p = rec.plan
        event(f"{rec.kind}{'' if rec.final else ' (partial)'}")
        if rec.before.equity[rec.account] < 0:
            event("insolvent")
        for what in ("covered", "uncovered", "socialised", "deleveraged"):
            if getattr(p, f"bad_debt_{what}"):
                event(f"bad debt {what}")
        if rec.pool_in:
            event("pool gain")
    if not records:
        event("nothing liquidated")
    return records


# ------------------------------------------------------------------ the properties

PARAMS = pytest.mark.parametrize("name", sorted(MECHANISMS))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PARAMS
@SETTINGS
@given(book=books())
def test_every_liquidation_step_conserves_money_and_positions(name: str, book: Book) -> None:
    for rec in run(name, book):
        assert rec.after.money == rec.before.money, rec
        assert all(v == 0 for v in rec.after.money.values()), rec
        assert all(v == 0 for v in rec.before.sizes.values()), rec
        assert all(v == 0 for v in rec.after.sizes.values()), rec


@PARAMS
@SETTINGS
@given(book=books())
def test_seized_is_at_most_what_the_account_held(name: str, book: Book) -> None:
    for rec in run(name, book):
        assert rec.cash_before >= 0
        assert 0 <= rec.plan.seized <= rec.cash_before, rec  # no collateral in these books
        for (a, _), units in rec.after.balances.items():
            if a == rec.account:
                assert units >= 0, rec
        # what it lost of its cash: realised losses, premium paid, penalty (and concession)
        lost = rec.cash_before - rec.after.balance(rec.account)
        assert rec.plan.seized == max(lost, 0), rec


@PARAMS
@SETTINGS
@given(book=books())
def test_the_account_loses_at_most_the_penalty(name: str, book: Book) -> None:
    for rec in run(name, book):
        e0, e1 = rec.before.equity[rec.account], rec.after.equity[rec.account]
        # exactly: what the waterfall paid in, less what was charged, less rounding
        r = (rec.bad - rec.charged) - (e1 - e0)
        assert 0 <= r <= rec.rounding, (r, rec)
        assert e1 - e0 >= -rec.charged - rec.rounding, rec
        p = rec.plan
        parts = p.keeper_reward + p.insurance_fee + p.protocol_fee + p.pool_fee
        assert p.penalty >= 0 and parts == p.penalty
        if e0 < 0 and (rec.kind == "liquidation" or (rec.kind == "take" and rec.final)):
            # insolvent and closed out: the waterfall made it whole; it lost nothing more
            assert e1 >= min(e0, 0), rec
            if rec.final:
                assert e1 >= 0, rec


@PARAMS
@SETTINGS
@given(book=books())
def test_the_waterfall_covers_a_loss_exactly_once(name: str, book: Book) -> None:
    for rec in run(name, book):
        p, b, a = rec.plan, rec.before, rec.after
        for figure in (
            p.bad_debt_covered,
            p.bad_debt_uncovered,
            p.bad_debt_socialised,
            p.bad_debt_deleveraged,
        ):
            assert figure >= 0, rec
        fund0, fund1 = b.balance(SYS.insurance_fund), a.balance(SYS.insurance_fund)
        pool0, pool1 = b.balance(SYS.backstop_pool), a.balance(SYS.backstop_pool)
        # the pool drops by what it paid in, net of the gain it received
        pool_paid = rec.pool_in - (pool1 - pool0)
        fund_paid = p.insurance_fee - (fund1 - fund0)
        assert fund_paid >= 0 and pool_paid >= 0, rec
        assert fund_paid + pool_paid == p.bad_debt_covered, rec
        if rec.fund_cover is not None:
            assert fund_paid == rec.fund_cover, rec
        assert a.balance(SYS.bad_debt) - b.balance(SYS.bad_debt) == -p.bad_debt_uncovered, rec
        # in order: FixedFee and the auction spend the fund (with this fee) before the
        # pool; the backstop pool offsets its whole deposits before the fund pays
        if rec.pool_total is None and pool_paid:
            assert fund_paid == fund0 + p.insurance_fee, rec
        if rec.pool_total is not None and fund_paid:
            assert pool_paid == rec.pool_total, rec
        # the other users (not the account, not the keeper) lose exactly the haircuts;
        # an ADL slice may round one more unit against its holder
        others = [u for u in b.equity if u not in (rec.account, KEEPER)]
        dropped = sum(b.equity[u] - a.equity[u] for u in others)
        moved = {u for (u, _), pos in b.positions.items() if u in others} & {
            u for u in others if _positions(b, u) != _positions(a, u)
        }
        haircuts = p.bad_debt_socialised + p.bad_debt_deleveraged
        assert haircuts <= dropped <= haircuts + len(moved), (dropped, haircuts, rec)
        if not p.bad_debt_deleveraged:
            assert dropped == p.bad_debt_socialised, rec
        # every stage together paid the loss once: what was not left uncovered
        assert fund_paid + pool_paid + haircuts == rec.bad - p.bad_debt_uncovered, rec


def _positions(s: Snapshot, account: AccountId) -> dict[InstrumentId, Position]:
    return {iid: pos for (a, iid), pos in s.positions.items() if a == account}


# ------------------------------------------------------------------ screen vs exact


@pytest.mark.parametrize(
    "name",
    ["fixed-fee-keeper-reward", "fixed-fee", "dutch-auction", "backstop-pool"],
)
@SETTINGS
@given(
    book=books(),
    closing_cost=st.sampled_from([0, 1, 3_000_000, 10_000_000]),
    gas=st.sampled_from([(0, 0), (10 * GWEI, 2_000 * USD), (500 * GWEI, 3_000 * USD)]),
)
def test_screen_and_exact_path_agree(
    name: str, book: Book, closing_cost: int, gas: tuple[int, int]
) -> None:
    out = []
    for screen in (True, False):
        mech = MECHANISMS[name]()
        with crashed(mech, book, screen=screen, closing_cost_rate=closing_cost) as (
            engine,
            clock,
            _,
        ):
            engine.gas_price, engine.quote_per_gas = gas
            exact = [a for _, a, *_ in engine._liquidatable()]
            now = 61
            clock.set(now)
            step = engine.step(reports(now, *[book.price] * 5), keeper=KEEPER)
            out.append(
                (
                    step.underwater,
                    [(liq.account, liq.plan) for liq in step.liquidations],
                    step.refused,
                    exact,
                )
            )
            engine.ledger.check_invariants()
    assert out[0] == out[1]


# ------------------------------------------------------------------ found by the properties


def test_adl_with_a_same_side_holder_liquidates(tmp_path: Path) -> None:
    """Found by these properties: ADL was handed every other holder of the perp, same side
    included, and ``loss.deleverage`` refused the candidate with ``InvalidArgument``, which
    rolled the whole ``Engine.step`` back (prices included). ``Engine._counterparties`` now
    passes the opposite side only."""
    fee = FixedFee(waterfall=Waterfall(("insurance_fund", "adl")))
    engine, clock = make_engine(tmp_path, fund_usd=100, mechanism=fee)
    carol = AccountId("t/carol")
    engine.ledger.open_account(AccountSpec(carol, AccountKind.USER))
    deposit(engine.ledger, "d-carol", carol, 10_000 * USD)
    engine.step(reports(0, *[2000] * 5))
    trade(engine, "alice-long", ALICE, BOB, PERP, 5 * ETH, 2000)
    trade(engine, "carol-long", carol, BOB, PERP, ETH, 2000)  # healthy, same side as Alice
    clock.set(60)
    # Alice: equity 1000 + 5 * (1700 - 2000) = -500; the fund pays 100, ADL against Bob's
    # profitable short (6 ETH) the other 400; Carol (long, losing) is no ADL candidate
    step = engine.step(reports(60, *[1700] * 5), keeper=KEEPER)
    (liq,) = step.liquidations
    assert (liq.plan.bad_debt_covered, liq.plan.bad_debt_deleveraged) == (100 * USD, 400 * USD)
    engine.ledger.check_invariants()


def test_an_insolvent_account_pays_no_penalty_in_a_partial_auction_take() -> None:
    # cash 1,000, long 10 ETH at 2,000; at 1,880 equity = 1000 - 1200 = -200; half is taken
    # at t=2060: no penalty (the penalty never takes equity below 0), only the taker's
    # concession (11.82: Lyra's insolvent auction pays the bidder); the last take leaves the
    # account at 0 and the waterfall covers 200 + 2 * 11.82
    book = Book(((1_000, 10 * ETH, 0),), 1_880, 5_000, 0, 2_000, Fraction(1, 2))
    records = liquidate_all(DutchAuction(), book)
    assert [(r.kind, r.final) for r in records] == [
        ("kick", False),
        ("take", False),
        ("take", True),
    ]
    _, half, last = records
    assert [r.plan.penalty for r in records] == [0, 0, 0]
    e0, e1 = half.before.equity[half.account], half.after.equity[half.account]
    assert e0 - e1 == int(half.plan.transaction.memo["concession"]) == 11_820_635
    assert last.after.equity[last.account] == 0
    assert last.plan.bad_debt_covered == 200 * USD + 2 * 11_820_635


def test_backstop_pool_plan_penalty_is_what_the_account_paid() -> None:
    # cash 1,000, long 5 ETH at 2,000; at 1,880 equity 400 < MM 470; penalty 5% of 9,400 =
    # 470: 10 to the keeper, the 390 of cash left to the pool (pool_fee): plan.penalty = 400
    book = Book(((1_000, 5 * ETH, 0),), 1_880, 0, 1_000, 0, Fraction(1))
    (rec,) = liquidate_all(MECHANISMS["backstop-pool"](), book)
    e0, e1 = rec.before.equity[rec.account], rec.after.equity[rec.account]
    assert (e0, e1) == (400 * USD, 0)
    assert e1 - e0 >= -rec.plan.penalty, (e1 - e0, rec.plan.penalty)
