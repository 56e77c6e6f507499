"""The English (flip) auction as an engine mechanism: kick by the engine, tend/dent/deal/tick
by keepers, on a real engine over the SQLite ledger.

Units: USDC has 6 decimals (``U`` = 1 USDC); prices are USDC base units per whole ETH;
ETH-PERP sizes have 6 decimals (``E`` = 1 ETH); WETH has 18 (``W`` = 1 WETH); ``beg`` is
WAD.

The book (``kicked``): ALICE holds 100 USDC and 2 WETH (10% haircut) and is long
20 ETH-PERP at $2,000 against BOB. At $1,900 (t=10) she realises -2,000 if closed at mark:
``close_cash = 100 - 2,000 = -1,900`` -> ``debt = 1,900``; ``penalty = 1% * 38,000 = 380``;
``tab = 2,280``; equity ``100 - 2,000 + 3,420 = 1,520 < maintenance 5% * 38,000 = 1,900``.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ALICE, BOB, USDC, WETH, WORLD, deposit, open_ledger

from liqeng.clock import SimClock
from liqeng.engine import Engine
from liqeng.errors import InvalidArgument, Refused
from liqeng.ids import AccountId, AssetId, InstrumentId
from liqeng.ledger.core import Ledger
from liqeng.ledger.model import AccountKind, AccountSpec, Transaction
from liqeng.liquidation.base import LiquidationPlan, SystemAccounts
from liqeng.liquidation.curves import WAD
from liqeng.liquidation.english_auction import EnglishAuction, Flip
from liqeng.liquidation.registry import MECHANISMS, mechanism
from liqeng.market.instruments import Perpetual, SpotCollateral
from liqeng.market.trading import fill
from liqeng.oracle import SourceReport, median_feed
from liqeng.risk.margin import MarginParams

SYS = SystemAccounts.of("t")
ESCROW = AccountId("t/auction-escrow")
KEEPER = AccountId("t/keeper")  # kicks and bids
TAKER = AccountId("t/taker")  # a second bidder
BROKE = AccountId("t/broke")  # a user without USDC
PERP = Perpetual(InstrumentId("t/ETH-PERP"), "ETH", USDC, 6)
WETH_C = SpotCollateral(WETH, "ETH", haircut=100_000_000)  # 10% haircut
SOURCES = ["s1", "s2", "s3", "s4", "s5"]
MAX_AGE = 3600
U = 10**6  # one USDC
E = 10**6  # one ETH of perp size
W = 10**18  # one WETH
K0 = 10**6 * U  # KEEPER's and TAKER's USDC
PARAMS: dict[str, Any] = dict(beg=103 * WAD // 100, ttl=600, tau=3600, penalty_rate=10_000_000)
AID = "t/liq:10:t:alice"  # the id of the auction the step at t=10 kicks


def make_engine(
    tmp_path: Path, mech: EnglishAuction, fund: int = 10_000 * U
) -> tuple[Engine, SimClock]:
    clock = SimClock(0)
    led = open_ledger(tmp_path / "english.sqlite", clock)
    led.register_asset(USDC)
    led.register_asset(WETH)
    for acc, kind in [
        (WORLD, AccountKind.EXTERNAL),
        (SYS.insurance_fund, AccountKind.SYSTEM),
        (SYS.fee_sink, AccountKind.SYSTEM),
        (SYS.backstop_pool, AccountKind.SYSTEM),
        (ESCROW, AccountKind.SYSTEM),
        (SYS.settlement, AccountKind.SETTLEMENT),
        (SYS.bad_debt, AccountKind.BAD_DEBT),
        (ALICE, AccountKind.USER),
        (BOB, AccountKind.USER),
        (KEEPER, AccountKind.USER),
        (TAKER, AccountKind.USER),
        (BROKE, AccountKind.USER),
    ]:
        led.open_account(AccountSpec(acc, kind))
    led.list_instrument(PERP.spec())
    deposit(led, "d-bob", BOB, 10**7 * U)
    deposit(led, "d-keeper", KEEPER, K0)
    deposit(led, "d-taker", TAKER, K0)
    if fund:
        deposit(led, "d-fund", SYS.insurance_fund, fund)
    return _engine(led, clock, mech), clock


def _engine(led: Ledger, clock: SimClock, mech: EnglishAuction) -> Engine:
    return Engine(
        led,
        median_feed(SOURCES, ["ETH"], MAX_AGE, 3),
        clock=clock,
        quote=USDC,
        instruments={PERP.id: PERP},
        margin=MarginParams(),
        mechanism=mech,
        system=SYS,
        collateral=[WETH_C],
    )


def prices(engine: Engine, clock: SimClock, ts: int, usd: int, **kw: Any) -> Any:
    clock.set(ts)
    return engine.step([SourceReport(s, "ETH", usd * U, ts) for s in SOURCES], **kw)


def usdc(engine: Engine, account: AccountId) -> int:
    return engine.ledger.balance_units(account, USDC.id)


def weth(engine: Engine, account: AccountId) -> int:
    return engine.ledger.balance_units(account, WETH.id)


def size(engine: Engine, account: AccountId) -> int:
    pos = engine.ledger.position(account, PERP.id)
    return 0 if pos is None else pos.size


def totals(led: Ledger) -> tuple[dict[AssetId, int], dict[InstrumentId, int]]:
    money: dict[AssetId, int] = dict.fromkeys(led.assets, 0)
    for (_, asset), units in led.balances().items():
        money[asset] += units
    sizes: dict[InstrumentId, int] = {}
    for (_, iid), pos in led.positions().items():
        sizes[iid] = sizes.get(iid, 0) + pos.size
    return money, sizes


def conserved(engine: Engine, mech: EnglishAuction, action: Callable[[], Any]) -> Any:
    """Run ``action``; every asset sums to 0 over all ledger accounts and every
    instrument's sizes to 0, before and after; the escrow holds the standing bids."""
    money, sizes = totals(engine.ledger)
    assert all(v == 0 for v in money.values()) and all(v == 0 for v in sizes.values())
    out = action()
    money, sizes = totals(engine.ledger)
    assert all(v == 0 for v in money.values()) and all(v == 0 for v in sizes.values())
    engine.ledger.check_invariants()
    assert usdc(engine, ESCROW) == sum(a.bid for a in mech.flips.values() if not a.done)
    return out


def state(engine: Engine, mech: EnglishAuction) -> tuple[int, bytes, str, dict[str, Flip]]:
    led = engine.ledger
    return led.seq, led.head, led.state_digest(), dict(mech.flips)


def kicked(
    tmp_path: Path, fund: int = 10_000 * U, **extra: Any
) -> tuple[Engine, SimClock, EnglishAuction]:
    mech = EnglishAuction(**{**PARAMS, **extra})
    engine, clock = make_engine(tmp_path, mech, fund)
    led = engine.ledger
    deposit(led, "d-alice", ALICE, 100 * U)
    deposit(led, "d-alice-weth", ALICE, 2 * W, WETH)
    prices(engine, clock, 0, 2_000)
    f = fill(
        buyer=ALICE,
        seller=BOB,
        instrument=PERP.id,
        size=20 * E,
        price=2_000 * U,
        size_decimals=PERP.size_decimals,
        premium=False,
        quote=USDC,
        buyer_position=None,
        seller_position=None,
        settlement=SYS.settlement,
    )
    led.apply(Transaction("open", "trade", f.postings, f.position_changes))
    step = conserved(engine, mech, lambda: prices(engine, clock, 10, 1_900, keeper=KEEPER))
    assert [liq.account for liq in step.liquidations] == [ALICE]
    return engine, clock, mech


# --- kick --------------------------------------------------------------------------------


def test_price_drop_kicks_and_holds_the_account(tmp_path: Path) -> None:
    engine, clock, mech = kicked(tmp_path)
    a = mech.get(AID)
    assert (a.account, a.kicker, a.lot, a.collateral) == (
        ALICE,
        KEEPER,
        ((PERP.id, 20 * E),),
        ((WETH.id, 2 * W),),
    )
    assert (a.debt, a.penalty, a.tab) == (1_900 * U, 380 * U, 2_280 * U)
    assert (a.kicked, a.end, a.ends_at, a.bid, a.share, a.guy, a.tic, a.phase) == (
        10,
        3_610,
        3_610,
        0,
        Fraction(1),
        None,
        None,
        "tend",
    )
    assert engine.holds(ALICE) == f"auction {AID} running"
    # nothing moved at the kick; one logged transaction carries the record
    done = engine.ledger.committed("liq:10:t/alice")
    assert done is not None
    _, tx = done
    assert (tx.kind, tx.postings, tx.position_changes) == ("auction-kick", (), ())
    assert Flip.from_memo(tx.memo["auction"]) == a and tx.memo["close_cash"] == str(-1_900 * U)
    assert LiquidationPlan.from_transaction(tx).notional == 38_000 * U
    assert usdc(engine, ALICE) == 100 * U and weth(engine, ALICE) == 2 * W
    assert size(engine, ALICE) == 20 * E
    # held: the next step passes her by, a keeper's liquidate is refused
    before = state(engine, mech)
    step = prices(engine, clock, 20, 1_890, keeper=KEEPER)
    assert ALICE in step.underwater and step.liquidations == () and step.refused == ()
    assert mech.flips == before[3]
    with pytest.raises(Refused) as held:
        engine.liquidate(ALICE, KEEPER, "keeper-liq-1")
    assert held.value.code == "liquidation/held" and AID in str(held.value)


def test_engine_liquidate_kicks_and_a_retried_id_answers_the_kick(tmp_path: Path) -> None:
    mech = EnglishAuction(**PARAMS)
    engine, clock = make_engine(tmp_path, mech)
    deposit(engine.ledger, "d-alice", ALICE, 100 * U)
    deposit(engine.ledger, "d-alice-weth", ALICE, 2 * W, WETH)
    prices(engine, clock, 0, 2_000)
    f = fill(
        buyer=ALICE,
        seller=BOB,
        instrument=PERP.id,
        size=20 * E,
        price=2_000 * U,
        size_decimals=6,
        premium=False,
        quote=USDC,
        buyer_position=None,
        seller_position=None,
        settlement=SYS.settlement,
    )
    engine.ledger.apply(Transaction("open", "trade", f.postings, f.position_changes))
    prices(engine, clock, 10, 1_900)  # no keeper: nothing kicked
    assert engine.holds(ALICE) is None
    liq = conserved(engine, mech, lambda: engine.liquidate(ALICE, KEEPER, "k-1"))
    assert liq.created and liq.plan.transaction.kind == "auction-kick"
    aid = mech.auction_id_for(ALICE, "k-1")
    assert engine.holds(ALICE) == f"auction {aid} running"
    before = state(engine, mech)
    again = engine.liquidate(ALICE, KEEPER, "k-1")
    assert (again.created, again.seq) == (False, liq.seq)
    assert state(engine, mech) == before


def test_registry_builds_it_from_keyword_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MECHANISMS, "english-auction", EnglishAuction)
    mech = mechanism("english-auction", **PARAMS, escrow=ESCROW)
    assert isinstance(mech, EnglishAuction) and mech.name == "english-auction"
    assert (mech.beg, mech.ttl, mech.tau, mech.escrow) == (103 * WAD // 100, 600, 3600, ESCROW)
    # what the simulator passes for a mechanism by name
    assert isinstance(
        mechanism("english-auction", penalty_rate=10**7, keeper_share=0, protocol_share=0),
        EnglishAuction,
    )
    assert isinstance(mechanism("english-auction"), EnglishAuction)  # defaults
    with pytest.raises(InvalidArgument, match="no parameter"):
        mechanism("english-auction", flips={})


# --- tend and dent -----------------------------------------------------------------------


def test_tend_dent_deal_escrow_refunds_and_shares_exactly(tmp_path: Path) -> None:
    engine, clock, mech = kicked(tmp_path)
    fund0 = usdc(engine, SYS.insurance_fund)

    def act(t: int, call: Callable[[], Any]) -> Any:
        clock.set(t)
        return conserved(engine, mech, call)

    # KEEPER opens at 1,000
    r = act(20, lambda: mech.tend(engine, AID, KEEPER, 1_000 * U, "tend-1"))
    assert r.created and (r.auction.bid, r.auction.guy, r.auction.tic) == (1_000 * U, KEEPER, 620)
    assert (usdc(engine, KEEPER), usdc(engine, ESCROW)) == (K0 - 1_000 * U, 1_000 * U)
    assert mech.min_bid(AID) == 1_030 * U
    # TAKER must beat it by beg (3%): 1,020 is refused, 1,030 is enough
    before = state(engine, mech)
    clock.set(30)
    with pytest.raises(Refused) as low:
        mech.tend(engine, AID, TAKER, 1_020 * U, "tend-2")
    assert low.value.code == "auction/bid-too-low" and "1030000000" in str(low.value)
    assert state(engine, mech) == before
    r = act(30, lambda: mech.tend(engine, AID, TAKER, 1_030 * U, "tend-2"))
    # the escrow holds TAKER's 1,030; KEEPER got its 1,000 back in the same transaction
    assert r.transaction is not None and len(r.transaction.postings) == 4
    assert usdc(engine, KEEPER) == K0 and usdc(engine, TAKER) == K0 - 1_030 * U
    assert usdc(engine, ESCROW) == 1_030 * U and r.auction.tic == 630
    # KEEPER goes to the tab (2,280 >= 1,030 * 1.03): phase 2 begins
    r = act(40, lambda: mech.tend(engine, AID, KEEPER, 2_280 * U, "tend-3"))
    assert r.auction.phase == "dent" and usdc(engine, TAKER) == K0
    assert usdc(engine, ESCROW) == 2_280 * U == K0 - usdc(engine, KEEPER)
    with pytest.raises(Refused, match="auction/dent-phase"):
        mech.tend(engine, AID, TAKER, 2_280 * U, "tend-4")
    # TAKER takes 2/3 of the lot for the tab; KEEPER is refunded the tab
    r = act(50, lambda: mech.dent(engine, AID, TAKER, Fraction(2, 3), "dent-1"))
    assert (r.auction.share, r.auction.guy, r.auction.bid) == (Fraction(2, 3), TAKER, 2_280 * U)
    assert usdc(engine, KEEPER) == K0 and usdc(engine, TAKER) == K0 - 2_280 * U
    # KEEPER must offer at most 2/3 / 1.03 = 0.6472...: 0.65 is refused, 0.64 is enough
    assert mech.max_share(AID) == Fraction(2, 3) * 100 / 103
    clock.set(60)
    before = state(engine, mech)
    with pytest.raises(Refused, match="auction/lot-too-high"):
        mech.dent(engine, AID, KEEPER, Fraction(65, 100), "dent-2")
    assert state(engine, mech) == before
    r = act(60, lambda: mech.dent(engine, AID, KEEPER, Fraction(16, 25), "dent-2"))
    assert r.auction.tic == 660 and usdc(engine, TAKER) == K0
    assert usdc(engine, ESCROW) == 2_280 * U == K0 - usdc(engine, KEEPER)
    # over at tic = 660 (no bids then; no deal before)
    clock.set(659)
    with pytest.raises(Refused, match="auction/not-finished"):
        mech.deal(engine, AID, "deal-early")
    clock.set(660)
    with pytest.raises(Refused, match="auction/finished"):
        mech.dent(engine, AID, TAKER, Fraction(1, 2), "dent-late")
    r = act(660, lambda: mech.deal(engine, AID, "deal-1"))
    assert r.auction.done and engine.holds(ALICE) is None and r.plan is not None
    # KEEPER: 64% of the lot, 12.8 ETH-PERP (opened at the mark 1,900) and 1.28 WETH
    assert size(engine, KEEPER) == 12_800_000 and weth(engine, KEEPER) == 128 * W // 100
    assert engine.ledger.position(KEEPER, PERP.id).entry_price == 1_900 * U  # type: ignore[union-attr]
    assert usdc(engine, KEEPER) == K0 - 2_280 * U and usdc(engine, ESCROW) == 0
    # ALICE: 100 - 1,280 realised + 2,280 bid - 380 penalty = 720, and keeps the rest of
    # the lot: 7.2 ETH-PERP at her entry 2,000 and 0.72 WETH
    assert usdc(engine, ALICE) == 720 * U
    assert size(engine, ALICE) == 7_200_000 and weth(engine, ALICE) == 72 * W // 100
    assert engine.ledger.position(ALICE, PERP.id).entry_price == 2_000 * U  # type: ignore[union-attr]
    assert usdc(engine, SYS.insurance_fund) - fund0 == 380 * U == r.plan.penalty
    assert r.plan.insurance_fee == 380 * U and r.plan.notional == 24_320 * U
    assert r.plan.bad_debt_covered == r.plan.bad_debt_uncovered == 0
    # seized: her 100 cash + 1.28 WETH at its haircut value 2,188.8 - the 720 she keeps
    assert r.plan.seized == 1_568_800_000
    assert not engine.risk(ALICE).is_liquidatable  # 720 - 720 + 0.72 * 1,710 >= 684
    # a retried deal answers the committed one and changes nothing
    before = state(engine, mech)
    again = mech.deal(engine, AID, "deal-1")
    assert (again.created, again.seq, again.plan) == (False, r.seq, r.plan)
    assert state(engine, mech) == before
    with pytest.raises(Refused, match="auction/finished"):
        mech.deal(engine, AID, "deal-2")


def test_a_bidder_raising_its_own_bid_pays_the_difference(tmp_path: Path) -> None:
    engine, clock, mech = kicked(tmp_path)
    clock.set(20)
    conserved(engine, mech, lambda: mech.tend(engine, AID, KEEPER, 1_000 * U, "t-1"))
    r = conserved(engine, mech, lambda: mech.tend(engine, AID, KEEPER, 2_000 * U, "t-2"))
    assert r.transaction is not None and [p.amount.units for p in r.transaction.postings] == [
        -1_000 * U,
        1_000 * U,
    ]
    assert usdc(engine, KEEPER) == K0 - 2_000 * U and usdc(engine, ESCROW) == 2_000 * U
    # from 2,250, a bid below 2,250 * 1.03 = 2,317.5 is too low, except the tab itself
    conserved(engine, mech, lambda: mech.tend(engine, AID, TAKER, 2_250 * U, "t-3"))
    with pytest.raises(Refused, match="auction/bid-too-low"):
        mech.tend(engine, AID, KEEPER, 2_270 * U, "t-4")
    conserved(engine, mech, lambda: mech.tend(engine, AID, KEEPER, 2_280 * U, "t-4"))
    # the high bidder lowering its own share moves no money
    r = conserved(engine, mech, lambda: mech.dent(engine, AID, KEEPER, Fraction(1, 2), "d-1"))
    assert r.transaction is not None and r.transaction.postings == ()
    assert r.auction.share == Fraction(1, 2) and usdc(engine, ESCROW) == 2_280 * U


# --- Black Thursday ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fund", "covered", "uncovered"),
    [(10_000 * U, 1_899_999_999, 0), (1_000 * U, 1_000 * U, 899_999_999)],
)
def test_black_thursday_a_lone_near_zero_bid_wins_the_whole_lot(
    tmp_path: Path, fund: int, covered: int, uncovered: int
) -> None:
    engine, clock, mech = kicked(tmp_path, fund)
    # the only keeper that gets through bids one base unit; nobody outbids it in ttl
    clock.set(20)
    r = conserved(engine, mech, lambda: mech.tend(engine, AID, KEEPER, 1, "zero-bid"))
    assert r.auction.tic == 620
    assert mech.lot_value(engine, AID) == 3_800 * U  # 2 WETH at $1,900
    clock.set(620)
    r = conserved(engine, mech, lambda: mech.deal(engine, AID, "deal"))
    assert r.plan is not None and r.auction.done and engine.holds(ALICE) is None
    # KEEPER paid 0.000001 USDC for 2 WETH (3,800) and 20 ETH-PERP at the mark
    assert usdc(engine, KEEPER) == K0 - 1
    assert weth(engine, KEEPER) == 2 * W and size(engine, KEEPER) == 20 * E
    # ALICE: 100 - 2,000 realised + 0.000001 = -1,899.999999: no penalty (the bid is
    # below the debt), the shortfall debt - bid goes down the waterfall
    assert r.plan.penalty == 0
    assert r.plan.bad_debt_covered + r.plan.bad_debt_uncovered == 1_900 * U - 1
    assert (r.plan.bad_debt_covered, r.plan.bad_debt_uncovered) == (covered, uncovered)
    assert usdc(engine, ALICE) == 0 and weth(engine, ALICE) == 0 and size(engine, ALICE) == 0
    assert usdc(engine, SYS.insurance_fund) == fund - covered
    assert usdc(engine, SYS.bad_debt) == -uncovered
    assert r.plan.transaction.memo["cash_before_fee"] == str(-(1_900 * U - 1))


# --- tick --------------------------------------------------------------------------------


def test_no_bid_by_end_needs_a_tick_which_restarts_the_auction(tmp_path: Path) -> None:
    engine, clock, mech = kicked(tmp_path)
    clock.set(3_609)
    before = state(engine, mech)
    with pytest.raises(Refused, match="auction/not-finished"):
        mech.tick(engine, AID, "tick-early")
    with pytest.raises(Refused, match="auction/not-finished"):
        mech.deal(engine, AID, "deal-early")
    clock.set(3_610)  # end: no bids any more, and nothing to deal
    with pytest.raises(Refused, match="auction/finished"):
        mech.tend(engine, AID, KEEPER, 1_000 * U, "tend-late")
    with pytest.raises(Refused, match="auction/no-bid"):
        mech.deal(engine, AID, "deal-nobid")
    assert state(engine, mech) == before and engine.holds(ALICE) is not None
    seq, _, digest, _ = before
    r = mech.tick(engine, AID, "tick-1")
    assert (r.created, r.seq, r.transaction, r.plan) == (True, seq + 1, None, None)
    assert engine.ledger.state_digest() == digest
    assert (r.auction.end, r.auction.version) == (7_210, 1) and mech.get(AID) == r.auction
    done = engine.ledger.committed("tick-1")
    assert done is not None and done[1].kind == "auction.tick"
    assert Flip.from_memo(done[1].memo["auction"]) == r.auction
    # bids again (prices are stale by now: tend reads none)
    clock.set(3_700)
    conserved(engine, mech, lambda: mech.tend(engine, AID, KEEPER, 1_000 * U, "tend-1"))
    with pytest.raises(Refused, match="auction/has-bid"):
        mech.tick(engine, AID, "tick-2")
    # the deal needs fresh prices
    clock.set(4_300)
    before = state(engine, mech)
    with pytest.raises(Refused) as stale:
        mech.deal(engine, AID, "deal-stale")
    assert stale.value.code == "liquidation/stale-price"
    with pytest.raises(Refused, match="liquidation/stale-price"):
        mech.lot_value(engine, AID)
    assert state(engine, mech) == before
    prices(engine, clock, 4_300, 1_900, keeper=KEEPER)  # still held: not kicked again
    assert engine.holds(ALICE) == f"auction {AID} running"
    r = conserved(engine, mech, lambda: mech.deal(engine, AID, "deal-1"))
    assert r.auction.done and weth(engine, KEEPER) == 2 * W


# --- bad input and retries ---------------------------------------------------------------


def test_bad_input_names_the_value_and_changes_nothing(tmp_path: Path) -> None:
    engine, clock, mech = kicked(tmp_path)
    clock.set(20)
    before = state(engine, mech)
    tends: list[tuple[Any, Any, type[Exception], str]] = [
        (AID, 0, InvalidArgument, "bid=0 must be > 0"),
        (AID, -5, InvalidArgument, "bid=-5 must be > 0"),
        (AID, 1.5, InvalidArgument, r"bid=1\.5 must be an int"),
        (AID, True, InvalidArgument, "bid=True"),
        (AID, 2_280 * U + 1, Refused, "auction/bid-above-tab"),
        ("t/nope", 1, Refused, r"auction/not-found.*'t/nope'"),
    ]
    for n, (aid, bid, exc, msg) in enumerate(tends):
        with pytest.raises(exc, match=msg):
            mech.tend(engine, aid, KEEPER, bid, f"bad-tend-{n}")
        assert state(engine, mech) == before
    with pytest.raises(InvalidArgument, match="t/nobody"):
        mech.tend(engine, AID, AccountId("t/nobody"), 1, "bad-x")
    with pytest.raises(InvalidArgument, match="cannot bid in its own"):
        mech.tend(engine, AID, ALICE, 1, "bad-y")
    with pytest.raises(InvalidArgument, match="not an open user"):
        mech.tend(engine, AID, SYS.insurance_fund, 1, "bad-z")
    with pytest.raises(Refused) as poor:
        mech.tend(engine, AID, BROKE, 1, "bad-broke")
    assert poor.value.code == "ledger/negative-balance" and "t/broke" in str(poor.value)
    with pytest.raises(Refused, match="auction/tend-phase"):
        mech.dent(engine, AID, KEEPER, Fraction(1, 2), "bad-dent-early")
    assert state(engine, mech) == before
    conserved(engine, mech, lambda: mech.tend(engine, AID, KEEPER, 2_280 * U, "tab"))
    before = state(engine, mech)
    shares: list[tuple[Any, str]] = [
        (0, "lot_fraction=0 must be in"),
        (Fraction(-1, 2), "lot_fraction=-1/2"),
        (Fraction(3, 2), "lot_fraction=3/2"),
        (0.5, r"lot_fraction=0\.5 must be a Fraction"),
    ]
    for n, (share, msg) in enumerate(shares):
        with pytest.raises(InvalidArgument, match=msg):
            mech.dent(engine, AID, TAKER, share, f"bad-dent-{n}")
        assert state(engine, mech) == before
    with pytest.raises(Refused, match="auction/lot-too-high"):
        mech.dent(engine, AID, TAKER, 1, "bad-dent-all")
    with pytest.raises(InvalidArgument, match="tx_id"):
        mech.tend(engine, AID, TAKER, 1, "no spaces")
    assert state(engine, mech) == before


def test_the_escrow_must_be_an_open_system_account(tmp_path: Path) -> None:
    engine, clock, mech = kicked(tmp_path, escrow=AccountId("t/elsewhere"))
    clock.set(20)
    before = state(engine, mech)
    with pytest.raises(InvalidArgument, match="escrow='t/elsewhere' is not an open system"):
        mech.tend(engine, AID, KEEPER, 1, "tend-1")
    assert state(engine, mech) == before


@pytest.mark.parametrize(
    ("params", "msg"),
    [
        ({"beg": WAD - 1}, "beg="),
        ({"beg": 1.03}, "beg=1.03"),
        ({"ttl": 0}, "ttl=0"),
        ({"tau": 0}, "tau=0"),
        ({"tau": -1}, "tau=-1"),
        ({"penalty_rate": -1}, "penalty_rate=-1"),
        ({"keeper_share": 10**9, "protocol_share": 1}, "protocol_share=1"),
        ({"escrow": "no-namespace"}, "no-namespace"),
        ({"name": "flip"}, "name='flip'"),
    ],
)
def test_bad_parameters_are_refused(params: dict[str, Any], msg: str) -> None:
    with pytest.raises(InvalidArgument, match=msg):
        EnglishAuction(**params)


def test_retries_answer_the_committed_step(tmp_path: Path) -> None:
    engine, clock, mech = kicked(tmp_path)
    clock.set(20)
    r = mech.tend(engine, AID, KEEPER, 1_000 * U, "tend-1")
    before = state(engine, mech)
    again = mech.tend(engine, AID, KEEPER, 1_000 * U, "tend-1")
    assert (again.created, again.seq, again.auction) == (False, r.seq, r.auction)
    assert state(engine, mech) == before
    calls: list[Callable[[], Any]] = [
        lambda: mech.dent(engine, AID, KEEPER, Fraction(1, 2), "tend-1"),
        lambda: mech.deal(engine, AID, "tend-1"),
        lambda: mech.tick(engine, AID, "open"),
    ]
    for call in calls:
        with pytest.raises(Refused) as other:
            call()
        assert other.value.code == "ledger/exists-with-different-content"
        assert state(engine, mech) == before


def test_keeper_and_protocol_shares_of_the_penalty(tmp_path: Path) -> None:
    engine, clock, mech = kicked(tmp_path, keeper_share=100_000_000, protocol_share=200_000_000)
    clock.set(20)
    conserved(engine, mech, lambda: mech.tend(engine, AID, TAKER, 2_280 * U, "tab"))
    clock.set(620)
    fund0 = usdc(engine, SYS.insurance_fund)
    r = conserved(engine, mech, lambda: mech.deal(engine, AID, "deal"))
    assert r.plan is not None
    # the 380 penalty: 10% to the kicker, 20% to the fee sink, the rest to the fund
    assert (r.plan.keeper_reward, r.plan.protocol_fee, r.plan.insurance_fee) == (
        38 * U,
        76 * U,
        266 * U,
    )
    assert usdc(engine, KEEPER) == K0 + 38 * U and usdc(engine, SYS.fee_sink) == 76 * U
    assert usdc(engine, SYS.insurance_fund) - fund0 == 266 * U
    # TAKER won all of it; ALICE: 100 - 2,000 + 2,280 - 380 = 0
    assert usdc(engine, ALICE) == 0 and weth(engine, TAKER) == 2 * W


# --- restore -----------------------------------------------------------------------------


def test_restore_from_the_log_equals_the_live_state(tmp_path: Path) -> None:
    engine, clock, mech = kicked(tmp_path)
    clock.set(3_610)
    mech.tick(engine, AID, "tick-1")
    clock.set(3_620)
    mech.tend(engine, AID, KEEPER, 1_000 * U, "tend-1")
    mech.tend(engine, AID, TAKER, 2_280 * U, "tend-2")
    mech.dent(engine, AID, KEEPER, Fraction(1, 2), "dent-1")
    rebuilt = EnglishAuction(**PARAMS)
    assert rebuilt.restore(engine.ledger) == 1
    assert rebuilt.flips == mech.flips and rebuilt.get(AID).version == 4
    # a restarted engine: reopen the SQLite file, rebuild, deal
    live = dict(mech.flips)
    engine.ledger._storage.close()
    led = open_ledger(tmp_path / "english.sqlite", clock)
    mech2 = EnglishAuction(**PARAMS)
    mech2.restore(led)
    assert mech2.flips == live
    engine2 = _engine(led, clock, mech2)
    assert engine2.holds(ALICE) == f"auction {AID} running"
    prices(engine2, clock, 4_300, 1_900, keeper=KEEPER)  # still held: not kicked again
    assert engine2.holds(ALICE) == f"auction {AID} running"
    r = conserved(engine2, mech2, lambda: mech2.deal(engine2, AID, "deal-1"))
    assert r.auction.done and r.auction.version == 5 and engine2.holds(ALICE) is None
    assert size(engine2, KEEPER) == 10 * E and weth(engine2, KEEPER) == W
    again = EnglishAuction(**PARAMS)
    again.restore(led)
    assert again.flips == mech2.flips


def test_rollback_forgets_a_kick_whose_batch_rolled_back(tmp_path: Path) -> None:
    engine, _, mech = kicked(tmp_path)
    mark = mech.mark()
    mech.flips.clear()
    assert engine.holds(ALICE) is None
    mech.rollback(mark)
    assert engine.holds(ALICE) == f"auction {AID} running"
