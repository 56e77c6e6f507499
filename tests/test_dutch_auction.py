"""The Dutch auction as an engine mechanism: kick by the engine, takes/redo/terminate by
keepers, on a real engine over the SQLite ledger.

Units: USDC has 6 decimals (``U`` = 1 USDC); prices are USDC base units per whole ETH;
ETH-PERP sizes have 6 decimals (``E`` = 1 ETH); curve factors are RAY (1.0 = 10**27).
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
from liqeng.ledger.model import AccountKind, AccountSpec, PositionChange, Posting, Transaction
from liqeng.liquidation.auction import Auction, FlashQuote
from liqeng.liquidation.base import LiquidationPlan, SystemAccounts
from liqeng.liquidation.curves import RAY, LinearDecrease, StairstepExponentialDecrease
from liqeng.liquidation.dutch_auction import DutchAuction
from liqeng.liquidation.keeper import KeeperReward
from liqeng.liquidation.registry import MECHANISMS, mechanism
from liqeng.market.instruments import Perpetual, SpotCollateral
from liqeng.market.trading import fill
from liqeng.oracle import SourceReport, median_feed
from liqeng.risk.margin import MarginParams

SYS = SystemAccounts.of("t")
KEEPER = AccountId("t/keeper")  # kicks and takes, well funded
TAKER = AccountId("t/taker")  # holds no USDC: a flash taker
PERP = Perpetual(InstrumentId("t/ETH-PERP"), "ETH", USDC, 6)
WETH_C = SpotCollateral(WETH, "ETH", haircut=100_000_000)  # 10% haircut
SOURCES = ["s1", "s2", "s3", "s4", "s5"]
MAX_AGE = 3600
U = 10**6  # one USDC
E = 10**6  # one ETH of perp size

# Maker clip.t.sol take setup (docs/auction.md worked example): buf 1.25, cut 0.99 every
# second, cusp 0.3, tail 3600 s; a 1% penalty.
MAKER: dict[str, Any] = dict(
    curve=StairstepExponentialDecrease(cut=99 * RAY // 100, step=1),
    buf=125 * RAY // 100,
    cusp=3 * RAY // 10,
    tail=3600,
    penalty_rate=10_000_000,
)
# rmul(1.25 RAY, rpow(0.99 RAY, 60)) (tests/test_auction.py)
PHI_60 = 683_945_802_988_451_845_243_426_713


def make_engine(tmp_path: Path, mech: DutchAuction) -> tuple[Engine, SimClock]:
    clock = SimClock(0)
    led = open_ledger(tmp_path / "dutch.sqlite", clock)
    led.register_asset(USDC)
    led.register_asset(WETH)
    for acc, kind in [
        (WORLD, AccountKind.EXTERNAL),
        (SYS.insurance_fund, AccountKind.SYSTEM),
        (SYS.fee_sink, AccountKind.SYSTEM),
        (SYS.backstop_pool, AccountKind.SYSTEM),
        (SYS.settlement, AccountKind.SETTLEMENT),
        (SYS.bad_debt, AccountKind.BAD_DEBT),
        (ALICE, AccountKind.USER),
        (BOB, AccountKind.USER),
        (KEEPER, AccountKind.USER),
        (TAKER, AccountKind.USER),
    ]:
        led.open_account(AccountSpec(acc, kind))
    led.list_instrument(PERP.spec())
    deposit(led, "d-bob", BOB, 10**7 * U)
    deposit(led, "d-keeper", KEEPER, 10**6 * U)
    deposit(led, "d-fund", SYS.insurance_fund, 10_000 * U)
    engine = Engine(
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
    return engine, clock


def reports(ts: int, price_usd: int) -> list[SourceReport]:
    return [SourceReport(s, "ETH", price_usd * U, ts) for s in SOURCES]


def prices(engine: Engine, clock: SimClock, ts: int, price_usd: int, **kw: Any) -> Any:
    clock.set(ts)
    return engine.step(reports(ts, price_usd), **kw)


def alice_goes_long(engine: Engine, size: int, at_usd: int) -> None:
    led = engine.ledger
    f = fill(
        buyer=ALICE,
        seller=BOB,
        instrument=PERP.id,
        size=size,
        price=at_usd * U,
        size_decimals=PERP.size_decimals,
        premium=False,
        quote=USDC,
        buyer_position=led.position(ALICE, PERP.id),
        seller_position=led.position(BOB, PERP.id),
        settlement=SYS.settlement,
    )
    led.apply(Transaction("open", "trade", f.postings, f.position_changes))


def usdc(engine: Engine, account: AccountId) -> int:
    return engine.ledger.balance_units(account, USDC.id)


def totals(led: Ledger) -> tuple[dict[AssetId, int], dict[InstrumentId, int]]:
    """Per asset, the sum of every account's balance (external, settlement and bad-debt
    accounts included); per instrument, the sum of every size."""
    money: dict[AssetId, int] = dict.fromkeys(led.assets, 0)
    for (_, asset), units in led.balances().items():
        money[asset] += units
    sizes: dict[InstrumentId, int] = {}
    for (_, iid), pos in led.positions().items():
        sizes[iid] = sizes.get(iid, 0) + pos.size
    return money, sizes


def conserved(engine: Engine, action: Callable[[], Any]) -> Any:
    """Run ``action`` and check it left every asset's total (0) and every size's total
    unchanged."""
    before = totals(engine.ledger)
    assert all(v == 0 for v in before[0].values())
    out = action()
    assert totals(engine.ledger) == before
    engine.ledger.check_invariants()
    return out


def state(engine: Engine, mech: DutchAuction) -> tuple[int, bytes, str, dict[str, Auction]]:
    led = engine.ledger
    return led.seq, led.head, led.state_digest(), dict(mech.house.auctions)


def kicked_maker(tmp_path: Path, **extra: Any) -> tuple[Engine, SimClock, DutchAuction, str]:
    """The worked example: ALICE deposits 1,000 USDC, buys 10 ETH-PERP at $2,000; ETH falls
    to $1,920 at t=10 and the step kicks her auction (tic = 10)."""
    mech = DutchAuction(**MAKER, **extra)
    engine, clock = make_engine(tmp_path, mech)
    deposit(engine.ledger, "d-alice", ALICE, 1_000 * U)
    prices(engine, clock, 0, 2_000)
    alice_goes_long(engine, 10 * E, 2_000)
    step = conserved(engine, lambda: prices(engine, clock, 10, 1_920, keeper=KEEPER))
    assert [liq.account for liq in step.liquidations] == [ALICE]
    aid = mech.auction_id_for(ALICE, "liq:10:t/alice")
    return engine, clock, mech, aid


# --- kick --------------------------------------------------------------------------------


def test_price_drop_kicks_once_and_holds_the_account(tmp_path: Path) -> None:
    engine, clock, mech, aid = kicked_maker(tmp_path)
    # equity = 1,000 + 10 * (1,920 - 2,000) = 200; maintenance = 5% * 19,200 = 960
    assert aid == "t/liq:10:t:alice"
    assert engine.holds(ALICE) == f"auction {aid} running"
    a = mech.house.get(aid)
    # tab = ceil(1% * 19,200) = 192 USDC; top = buf 1.25; tic = the clock at the step
    assert (a.lot, a.tab, a.mtm, a.top, a.tic) == (
        ((PERP.id, 10 * E),),
        192 * U,
        200 * U,
        125 * RAY // 100,
        10,
    )
    # no kick incentive: nothing moved, but the kick is one logged transaction
    done = engine.ledger.committed("liq:10:t/alice")
    assert done is not None
    _, tx = done
    assert (tx.kind, tx.postings, tx.position_changes) == ("auction-kick", (), ())
    assert Auction.from_memo(tx.memo["auction"]) == a
    assert LiquidationPlan.from_transaction(tx).notional == 19_200 * U
    assert usdc(engine, ALICE) == 1_000 * U and engine.ledger.positions_of(ALICE)
    # the next step passes the held account by: no second kick, no refusal
    before = state(engine, mech)[3]
    step = prices(engine, clock, 20, 1_900, keeper=KEEPER)
    assert ALICE in step.underwater and step.liquidations == () and step.refused == ()
    assert mech.house.auctions == before
    with pytest.raises(Refused) as held:
        engine.liquidate(ALICE, KEEPER, "keeper-liq-1")
    assert held.value.code == "liquidation/held" and aid in str(held.value)


def test_kick_incentive_moves_money_in_the_kick(tmp_path: Path) -> None:
    # Maker's tip + chip * tab = 5 + 10% * 192 = 24.2 USDC, paid by ALICE out of the tab
    k0 = 10**6 * U
    engine, _, mech, aid = kicked_maker(
        tmp_path, keeper_reward=KeeperReward(tip=5 * U, share=100_000_000)
    )
    assert usdc(engine, KEEPER) - k0 == 24_200_000
    assert usdc(engine, ALICE) == 1_000 * U - 24_200_000
    assert mech.house.get(aid).tab == 192 * U - 24_200_000


def test_engine_liquidate_kicks_and_a_retried_id_kicks_nothing(tmp_path: Path) -> None:
    mech = DutchAuction(**MAKER)
    engine, clock = make_engine(tmp_path, mech)
    deposit(engine.ledger, "d-alice", ALICE, 1_000 * U)
    prices(engine, clock, 0, 2_000)
    alice_goes_long(engine, 10 * E, 2_000)
    prices(engine, clock, 10, 1_920)  # no keeper: nothing kicked
    assert engine.holds(ALICE) is None
    liq = conserved(engine, lambda: engine.liquidate(ALICE, KEEPER, "k-1"))
    assert liq.created and liq.plan.transaction.kind == "auction-kick"
    assert engine.holds(ALICE) == f"auction {mech.auction_id_for(ALICE, 'k-1')} running"
    before = state(engine, mech)
    # a retry of the same id never kicks twice: today Engine.liquidate refuses it (its
    # retry path recognises kind "liquidation" only); an engine that answers the
    # committed kick instead returns it with created=False
    try:
        again = engine.liquidate(ALICE, KEEPER, "k-1")
        assert not again.created
    except Refused as exc:
        assert exc.code == "ledger/exists-with-different-content"
    assert state(engine, mech) == before


def test_registry_builds_it_from_keyword_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MECHANISMS, "dutch-auction", DutchAuction)
    mech = mechanism("dutch-auction", **MAKER)
    assert isinstance(mech, DutchAuction) and mech.name == "dutch-auction"
    assert mech.house.buf == MAKER["buf"] and mech.house.tail == 3600
    assert isinstance(mechanism("dutch-auction"), DutchAuction)  # defaults
    with pytest.raises(InvalidArgument, match="no parameter"):
        mechanism("dutch-auction", house=None)
    with pytest.raises(InvalidArgument, match="cusp"):
        DutchAuction(cusp=2 * RAY)


# --- take --------------------------------------------------------------------------------


def test_partial_then_full_take(tmp_path: Path) -> None:
    engine, clock, mech, aid = kicked_maker(tmp_path)
    clock.set(70)  # dur 60; the step at t=10 is still fresh (max age 3600 s)
    # phi = 1.25 * 0.99**60 = 0.68394...; B = equity 200; price (all) = 200 * phi = 136.789...
    q = mech.quote(engine, aid)
    assert (q.factor, q.base, q.needs_reset) == (PHI_60, Fraction(200 * U), False)
    assert q.price == Fraction(200 * U * PHI_60, RAY)
    # a taker whose max_price is below the price is refused; nothing changes
    before = state(engine, mech)
    with pytest.raises(Refused) as above:
        mech.take(engine, aid, KEEPER, Fraction(1, 2), 136 * U, "take-0")
    assert above.value.code == "auction/price-above-max" and "max_price=136000000" in str(
        above.value
    )
    assert state(engine, mech) == before
    fund0, k0 = usdc(engine, SYS.insurance_fund), usdc(engine, KEEPER)
    # take 1/2 at max 140: 5 ETH move to KEEPER at the mark 1,920 (ALICE realises
    # 5 * (1,920 - 2,000) = -400 through settlement); concession
    # floor(100 * (1 - phi)) = 31.605419 to KEEPER; penalty ceil(192 / 2) = 96 to the fund
    r = conserved(engine, lambda: mech.take(engine, aid, KEEPER, Fraction(1, 2), 140 * U, "take-1"))
    assert r.created and r.plan is not None and r.auction == mech.house.get(aid)
    assert engine.ledger.position(KEEPER, PERP.id).size == 5 * E  # type: ignore[union-attr]
    assert usdc(engine, KEEPER) - k0 == 31_605_419
    assert usdc(engine, SYS.insurance_fund) - fund0 == 96 * U == r.plan.penalty
    # ALICE: 1,000 - 400 - 31.605419 - 96 = 472.394581
    assert usdc(engine, ALICE) == 472_394_581
    # R = (100 - 31.605419) - 96 = -27.605419; B = E - R = 72.394581 + 27.605419 = 100
    assert r.auction.lot == ((PERP.id, 5 * E),) and r.auction.tab == 96 * U
    assert mech.quote(engine, aid).base == 100 * U == Fraction(1, 2) * 200 * U
    assert engine.holds(ALICE) is not None
    # take the rest (max 70): concession 31.605419 again; cash 472.394581 - 400 -
    # 31.605419 = 40.789162 pays what it can of the 96 left of the penalty; ALICE ends at 0
    r2 = conserved(engine, lambda: mech.take(engine, aid, KEEPER, 1, 70 * U, "take-2"))
    assert r2.plan is not None and r2.plan.penalty == 40_789_162
    assert r2.auction.done and r2.auction.lot == ()
    assert usdc(engine, ALICE) == 0 and engine.ledger.positions_of(ALICE) == {}
    assert r2.plan.bad_debt_covered == r2.plan.bad_debt_uncovered == 0
    # she lost her 200 of equity: concessions 63.210838 + penalties 136.789162
    assert usdc(engine, KEEPER) - k0 == 2 * 31_605_419
    assert usdc(engine, SYS.insurance_fund) - fund0 == 136_789_162
    assert engine.holds(ALICE) is None
    # a retried take answers the committed one and changes nothing
    before = state(engine, mech)
    again = mech.take(engine, aid, KEEPER, 1, 70 * U, "take-2")
    assert (again.created, again.seq, again.plan) == (False, r2.seq, r2.plan)
    assert state(engine, mech) == before


def test_bad_input_names_the_value_and_changes_nothing(tmp_path: Path) -> None:
    engine, clock, mech, aid = kicked_maker(tmp_path)
    clock.set(70)
    before = state(engine, mech)
    bad: list[tuple[Any, type[Exception], str]] = [
        (("t/nope", Fraction(1, 2), 10**12), Refused, r"auction/not-found.*'t/nope'"),
        ((aid, 0, 10**12), InvalidArgument, "fraction=0 must be in"),
        ((aid, Fraction(-1, 2), 10**12), InvalidArgument, "fraction=-1/2"),
        ((aid, Fraction(3, 2), 10**12), InvalidArgument, "fraction=3/2"),
        ((aid, 0.5, 10**12), InvalidArgument, r"fraction=0\.5"),
        ((aid, Fraction(1, 2), 100 * U), Refused, "price=136789161 > max_price=100000000"),
    ]
    for n, ((auction_id, fraction, max_price), exc, msg) in enumerate(bad):
        with pytest.raises(exc, match=msg):
            mech.take(engine, auction_id, KEEPER, fraction, max_price, f"bad-{n}")
        assert state(engine, mech) == before
    with pytest.raises(InvalidArgument, match="t/nobody"):
        mech.take(engine, aid, AccountId("t/nobody"), 1, 10**12, "bad-x")
    with pytest.raises(InvalidArgument, match="cannot take its own"):
        mech.take(engine, aid, ALICE, 1, 10**12, "bad-y")
    with pytest.raises(Refused, match="auction/not-found"):
        mech.quote(engine, "t/nope")
    assert state(engine, mech) == before
    # a finished auction
    mech.take(engine, aid, KEEPER, 1, 10**12, "all")
    before = state(engine, mech)
    with pytest.raises(Refused, match=f"auction/finished.*{aid}"):
        mech.take(engine, aid, KEEPER, 1, 10**12, "after")
    with pytest.raises(Refused, match="auction/finished"):
        mech.redo(engine, aid, KEEPER, "after-redo")
    assert state(engine, mech) == before


def test_stale_prices_refuse_take_redo_and_quote(tmp_path: Path) -> None:
    engine, clock, mech, aid = kicked_maker(tmp_path)
    clock.set(10 + MAX_AGE + 1)  # the last index is from t=10
    before = state(engine, mech)
    for call in (
        lambda: mech.take(engine, aid, KEEPER, 1, 10**12, "stale-take"),
        lambda: mech.redo(engine, aid, KEEPER, "stale-redo"),
        lambda: mech.quote(engine, aid),
        lambda: mech.terminate(engine, aid, "stale-end"),
    ):
        with pytest.raises(Refused) as exc:
            call()
        assert exc.value.code == "liquidation/stale-price"
        assert state(engine, mech) == before


# --- redo --------------------------------------------------------------------------------


def test_redo_after_tail_is_logged_and_restarts_the_curve(tmp_path: Path) -> None:
    # a slow line (zero after 10**6 s), no cusp: only the tail (600 s) forces a reset
    mech = DutchAuction(LinearDecrease(10**6), buf=RAY, tail=600, cusp=0, penalty_rate=10**7)
    engine, clock = make_engine(tmp_path, mech)
    deposit(engine.ledger, "d-alice", ALICE, 1_000 * U)
    prices(engine, clock, 0, 2_000)
    alice_goes_long(engine, 10 * E, 2_000)
    prices(engine, clock, 10, 1_920, keeper=KEEPER)
    aid = mech.auction_id_for(ALICE, "liq:10:t/alice")
    clock.set(610)  # dur 600 = tail: not yet
    before = state(engine, mech)
    with pytest.raises(Refused, match="auction/no-reset-needed"):
        mech.redo(engine, aid, KEEPER, "redo-early")
    assert state(engine, mech) == before
    clock.set(611)  # dur 601 > tail
    assert mech.quote(engine, aid).needs_reset
    with pytest.raises(Refused, match="auction/needs-reset"):
        mech.take(engine, aid, KEEPER, 1, 10**12, "take-late")
    assert state(engine, mech) == before
    seq, _, digest, _ = before
    r = mech.redo(engine, aid, KEEPER, "redo-1")
    # nothing moves; one logged event carries the record after the reset
    assert (r.created, r.seq, r.plan) == (True, seq + 1, None)
    assert engine.ledger.state_digest() == digest
    done = engine.ledger.committed("redo-1")
    assert done is not None and done[1].kind == "auction.redo"
    assert done[1].memo["keeper"] == KEEPER
    assert Auction.from_memo(done[1].memo["auction"]) == r.auction == mech.house.get(aid)
    assert (r.auction.tic, r.auction.top, r.auction.version) == (611, RAY, 1)
    q = mech.quote(engine, aid)
    assert (q.factor, q.needs_reset) == (RAY, False)
    r2 = mech.take(engine, aid, KEEPER, 1, 10**12, "take-after-redo")
    assert r2.auction.done and engine.holds(ALICE) is None


# --- flash take --------------------------------------------------------------------------

FlashOut = tuple[tuple[Posting, ...], tuple[PositionChange, ...]]


def _withdraw_weth(fq: FlashQuote) -> FlashOut:
    """The taker sends the WETH it just received out to its own wallet (the world)."""
    ((asset, amount),) = fq.collateral
    assert asset == WETH.id and amount == 10**18
    return (Posting(fq.taker, WETH.units(-amount)), Posting(WORLD, WETH.units(amount))), ()


def flash_book(tmp_path: Path) -> tuple[Engine, SimClock, DutchAuction, str]:
    """ALICE: 5,000 USDC + 1 WETH, long 40 ETH-PERP at $2,000. At $1,900 (t=10):
    equity = 5,000 + 1,710 (WETH at a 10% haircut) - 4,000 = 2,710 < maintenance
    5% * 76,000 = 3,800: kicked. The curve falls linearly to 0 over 1,000 s from 1.0."""
    mech = DutchAuction(LinearDecrease(1_000), buf=RAY, tail=10**6, cusp=0, penalty_rate=10**7)
    engine, clock = make_engine(tmp_path, mech)
    deposit(engine.ledger, "d-alice", ALICE, 5_000 * U)
    deposit(engine.ledger, "d-alice-weth", ALICE, 10**18, WETH)
    prices(engine, clock, 0, 2_000)
    alice_goes_long(engine, 40 * E, 2_000)
    step = prices(engine, clock, 10, 1_900, keeper=KEEPER)
    risk = engine.risk(ALICE)
    assert (risk.equity, risk.maintenance_margin) == (2_710 * U, 3_800 * U)
    assert [liq.account for liq in step.liquidations] == [ALICE]
    return engine, clock, mech, mech.auction_id_for(ALICE, "liq:10:t/alice")


def test_flash_take_pays_with_what_it_receives(tmp_path: Path) -> None:
    engine, clock, mech, aid = flash_book(tmp_path)
    assert usdc(engine, TAKER) == 0
    # t=510, phi = 0.5: the concession 2,710 * 0.5 = 1,355 does not cover the 1,710 the
    # taker pays for the WETH: short 355 -> the ledger refuses the whole transaction
    clock.set(510)
    before = state(engine, mech)
    with pytest.raises(Refused) as poor:
        mech.take(engine, aid, TAKER, 1, 10**12, "flash-1", flash=_withdraw_weth)
    assert poor.value.code == "ledger/negative-balance" and "t/taker" in str(poor.value)
    assert state(engine, mech) == before
    # t=810, phi = 0.2: price = 2,710 * 0.2 = 542; concession 2,710 * 0.8 = 2,168
    clock.set(810)
    fund0 = usdc(engine, SYS.insurance_fund)
    r = conserved(
        engine,
        lambda: mech.take(engine, aid, TAKER, 1, 542 * U, "flash-2", flash=_withdraw_weth),
    )
    assert r.plan is not None and r.plan.transaction.memo["flash"] is True
    # TAKER: +2,168 concession - 1,710 for the WETH = 458 USDC; the WETH went out; 40 long
    led = engine.ledger
    assert usdc(engine, TAKER) == 458 * U and led.balance_units(TAKER, WETH.id) == 0
    assert led.position(TAKER, PERP.id).size == 40 * E  # type: ignore[union-attr]
    assert led.balance_units(WORLD, WETH.id) == 0  # -1 deposited, +1 withdrawn
    # ALICE: 5,000 + 1,710 - 4,000 (realised) - 2,168 = 542 pays 542 of the 760 tab
    assert r.plan.penalty == 542 * U == usdc(engine, SYS.insurance_fund) - fund0
    assert usdc(engine, ALICE) == 0 and led.balance_units(ALICE, WETH.id) == 0
    assert r.auction.done and engine.holds(ALICE) is None


def test_flash_callback_may_only_move_the_takers_own_assets(tmp_path: Path) -> None:
    engine, clock, mech, aid = flash_book(tmp_path)
    clock.set(810)
    buyer = BOB

    def sell_to_buyer(fq: FlashQuote) -> FlashOut:  # BOB's consent is not the engine's
        return (
            Posting(fq.taker, WETH.units(-(10**18))),
            Posting(buyer, WETH.units(10**18)),
            Posting(buyer, USDC.units(-1_900 * U)),
            Posting(fq.taker, USDC.units(1_900 * U)),
        ), ()

    def pay_alice(fq: FlashQuote) -> FlashOut:
        return (Posting(fq.taker, USDC.units(-U)), Posting(ALICE, USDC.units(U))), ()

    def move_bobs_position(fq: FlashQuote) -> FlashOut:
        return (), (
            PositionChange(buyer, PERP.id, E, 1_900 * U),
            PositionChange(fq.taker, PERP.id, -E, 1_900 * U),
        )

    before = state(engine, mech)
    for n, (flash, msg) in enumerate(
        [
            (sell_to_buyer, "debits 't/bob', not the taker 't/taker'"),
            (pay_alice, "changes the liquidated account 't/alice'"),
            (move_bobs_position, "is of 't/bob', not the taker"),
        ]
    ):
        with pytest.raises(InvalidArgument, match=msg):
            mech.take(engine, aid, TAKER, 1, 10**12, f"flash-bad-{n}", flash=flash)
        assert state(engine, mech) == before


# --- terminate ---------------------------------------------------------------------------


def test_terminate_once_the_account_is_healthy_again(tmp_path: Path) -> None:
    engine, clock, mech, aid = kicked_maker(tmp_path)
    before = state(engine, mech)
    with pytest.raises(Refused) as still:
        mech.terminate(engine, aid, "end-1")
    assert still.value.code == "auction/still-liquidatable" and "equity=200000000" in str(
        still.value
    )
    assert state(engine, mech) == before
    # ETH back to $2,000: equity 1,000 >= maintenance 1,000
    prices(engine, clock, 20, 2_000, keeper=KEEPER)
    digest = engine.ledger.state_digest()
    r = mech.terminate(engine, aid, "end-2")
    assert r.auction.done and r.auction.lot == ((PERP.id, 10 * E),) and r.plan is None
    assert engine.holds(ALICE) is None and engine.ledger.state_digest() == digest
    done = engine.ledger.committed("end-2")
    assert done is not None and done[1].kind == "auction.terminate"
    assert done[1].memo["tab_forgiven"] == str(192 * U)
    with pytest.raises(Refused, match="auction/finished"):
        mech.take(engine, aid, KEEPER, 1, 10**12, "late")
    # she keeps her book and may be kicked again if it falls again
    assert engine.ledger.positions_of(ALICE)[PERP.id].size == 10 * E
    step = prices(engine, clock, 30, 1_920, keeper=KEEPER)
    assert [liq.account for liq in step.liquidations] == [ALICE]
    assert engine.holds(ALICE) == f"auction {mech.auction_id_for(ALICE, 'liq:30:t/alice')} running"


# --- restore -----------------------------------------------------------------------------


def test_restore_from_the_log_continues_the_auctions(tmp_path: Path) -> None:
    engine, clock, mech, aid = kicked_maker(tmp_path)
    clock.set(40)
    mech.take(engine, aid, KEEPER, Fraction(1, 3), 10**12, "take-1")
    clock.set(130)  # dur 120: 0.99**120 < cusp 0.3
    mech.redo(engine, aid, KEEPER, "redo-1")
    rebuilt = DutchAuction(**MAKER)
    assert rebuilt.restore(engine.ledger) == 1
    assert rebuilt.house.auctions == mech.house.auctions
    # a restarted engine: reopen the SQLite file, rebuild the house, take the rest
    live = dict(mech.house.auctions)
    engine.ledger._storage.close()
    led = open_ledger(tmp_path / "dutch.sqlite", clock)
    mech2 = DutchAuction(**MAKER)
    mech2.restore(led)
    assert mech2.house.auctions == live
    engine2 = Engine(
        led,
        median_feed(SOURCES, ["ETH"], MAX_AGE, 3),
        clock=clock,
        quote=USDC,
        instruments={PERP.id: PERP},
        margin=MarginParams(),
        mechanism=mech2,
        system=SYS,
        collateral=[WETH_C],
    )
    assert engine2.holds(ALICE) == f"auction {aid} running"
    prices(engine2, clock, 140, 1_920, keeper=KEEPER)  # still held: not kicked again
    assert engine2.holds(ALICE) == f"auction {aid} running"
    r = conserved(engine2, lambda: mech2.take(engine2, aid, KEEPER, 1, 10**12, "take-2"))
    assert r.auction.done and r.auction.version == 3 and engine2.holds(ALICE) is None
    assert led.positions_of(ALICE) == {}
    again = DutchAuction(**MAKER)
    again.restore(led)
    assert again.house.auctions == mech2.house.auctions
