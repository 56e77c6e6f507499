"""Dutch auction of a derivative portfolio: kick, take (partial, flash), redo, on a real ledger.

Units: USDC has 6 decimals (1 USDC = 1_000_000); prices are USDC base units per whole ETH
($1,920 = 1_920_000_000); ETH-PERP sizes have 6 decimals (10 ETH = 10_000_000); curve
factors are RAY (1.0 = 10**27).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from tests.conftest import USDC, WETH, WORLD, deposit, open_ledger

from liqeng.errors import InvalidArgument, Refused
from liqeng.ids import AccountId, InstrumentId, TxId
from liqeng.ledger.core import Ledger
from liqeng.ledger.model import AccountKind, AccountSpec, PositionChange, Posting, Transaction
from liqeng.liquidation.auction import Auction, AuctionHouse, FlashQuote, Step
from liqeng.liquidation.base import LiquidationContext, LiquidationPlan, SystemAccounts
from liqeng.liquidation.curves import (
    RAY,
    LinearDecrease,
    StairstepExponentialDecrease,
    TwoSlope,
)
from liqeng.liquidation.keeper import KeeperReward
from liqeng.liquidation.sizing import DustMode, DustRule, MustNotLeaveDust
from liqeng.market.instruments import EuropeanOption, Perpetual, SpotCollateral
from liqeng.market.trading import fill
from liqeng.risk.margin import AccountRisk, MarginParams, account_risk
from liqeng.risk.models import MarketData

SYSTEM = SystemAccounts.of("t")
ACC = AccountId("t/acc")  # the liquidated account
MM = AccountId("t/mm")  # its counterparty
KPR = AccountId("t/kpr")  # kicker / taker
BUYER = AccountId("t/buyer")  # buys the taker's WETH inside a flash take
PERP = Perpetual(InstrumentId("t/ETH-PERP"), "ETH", USDC, 6)
PUT = EuropeanOption(InstrumentId("t/ETH-1500-P"), "ETH", USDC, 6, 1_500_000_000, 10**7, False)
INSTRUMENTS: dict[InstrumentId, Perpetual | EuropeanOption] = {PERP.id: PERP, PUT.id: PUT}
WETH_C = SpotCollateral(WETH, "ETH", haircut=100_000_000)  # 10% haircut
MARKET_TS = 1_000  # the market's clock stays put: marks do not drift while auctions run
U = 1_000_000  # one USDC
E = 1_000_000  # one ETH of perp size

# Maker clip.t.sol takeSetup (anchors §3.2): buf 1.25, cut 0.99, step 1 s, cusp 0.3,
# tail 3600 s; chop 1.1 is a 10% penalty; we use 1% to keep the examples readable.
MAKER = dict(
    curve=StairstepExponentialDecrease(cut=99 * RAY // 100, step=1),
    buf=125 * RAY // 100,
    cusp=3 * RAY // 10,
    tail=3600,
    penalty_rate=10_000_000,
)
LYRA_TEST = TwoSlope(Fraction(1), Fraction(4, 5), 600, 7200)  # anchors §3.7 unit-test params
# rmul(1.25 RAY, rpow(0.99 RAY, 60)): MKR-A4 gives rmul(5 RAY, .) = 2735783211953807380973706855,
# so rpow = 547156642390761476194741371 and 1.25 * that, floored:
PHI_60 = 683_945_802_988_451_845_243_426_713


@pytest.fixture
def led(tmp_path: Path) -> Iterator[Ledger]:
    ledger = open_ledger(tmp_path / "auction.sqlite")
    _setup(ledger)
    yield ledger
    ledger._storage.close()


def _setup(ledger: Ledger) -> None:
    ledger.register_asset(USDC)
    ledger.register_asset(WETH)
    ledger.open_account(AccountSpec(WORLD, AccountKind.EXTERNAL))
    for acc in (ACC, MM, KPR, BUYER):
        ledger.open_account(AccountSpec(acc))
    kinds = {
        SYSTEM.insurance_fund: AccountKind.SYSTEM,
        SYSTEM.settlement: AccountKind.SETTLEMENT,
        SYSTEM.bad_debt: AccountKind.BAD_DEBT,
        SYSTEM.fee_sink: AccountKind.SYSTEM,
        SYSTEM.backstop_pool: AccountKind.SYSTEM,
    }
    for acc, kind in kinds.items():
        ledger.open_account(AccountSpec(acc, kind))
    for inst in INSTRUMENTS.values():
        ledger.list_instrument(inst.spec())


_n = 0


def _tx() -> TxId:
    global _n
    _n += 1
    return TxId(f"t/tx-{_n}")


def trade(
    ledger: Ledger, buyer: AccountId, seller: AccountId, inst: object, size: int, px: int
) -> None:
    assert isinstance(inst, (Perpetual, EuropeanOption))
    f = fill(
        buyer=buyer,
        seller=seller,
        instrument=inst.id,
        size=size,
        price=px,
        size_decimals=inst.size_decimals,
        premium=isinstance(inst, EuropeanOption),
        quote=USDC,
        buyer_position=ledger.position(buyer, inst.id),
        seller_position=ledger.position(seller, inst.id),
        settlement=SYSTEM.settlement,
    )
    ledger.apply(Transaction(_tx(), "trade", f.postings, f.position_changes))


def risk_of(ledger: Ledger, account: AccountId, price: int) -> AccountRisk:
    coll = {WETH_C: ledger.balance_units(account, WETH.id)}
    return account_risk(
        ledger.balance_units(account, USDC.id),
        ledger.positions_of(account),
        INSTRUMENTS,
        {"ETH": price},
        MARKET_TS,
        MarginParams(),
        collateral={k: v for k, v in coll.items() if v},
    )


def ctx_of(
    ledger: Ledger, keeper: AccountId, price: int, risk: AccountRisk | None = None
) -> LiquidationContext:
    weth = ledger.balance_units(ACC, WETH.id)
    return LiquidationContext(
        tx_id=_tx(),
        account=ACC,
        keeper=keeper,
        quote=USDC,
        cash=ledger.balance_units(ACC, USDC.id),
        positions=ledger.positions_of(ACC),
        keeper_positions=ledger.positions_of(keeper),
        instruments=INSTRUMENTS,
        market=MarketData(MARKET_TS, {"ETH": price}),
        risk=risk or risk_of(ledger, ACC, price),
        insurance_fund_balance=ledger.balance_units(SYSTEM.insurance_fund, USDC.id),
        backstop_pool_balance=ledger.balance_units(SYSTEM.backstop_pool, USDC.id),
        system=SYSTEM,
        collateral={WETH_C: weth} if weth else {},
    )


def run(ledger: Ledger, house: AuctionHouse, step: Step) -> Auction:
    """What the engine does: apply the one transaction, then record the step."""
    if step.plan is not None:
        ledger.apply(step.plan.transaction)
    ledger.check_invariants()
    return house.commit(step)


def long_perp_book(ledger: Ledger, cash: int = 1_000 * U, size: int = 10 * E) -> None:
    """ACC deposits ``cash`` and buys ``size`` ETH-PERP from MM at $2,000."""
    deposit(ledger, _tx(), ACC, cash)
    deposit(ledger, _tx(), MM, 100_000 * U)
    deposit(ledger, _tx(), KPR, 10_000 * U)
    trade(ledger, ACC, MM, PERP, size, 2_000 * U)


def usdc(ledger: Ledger, account: AccountId) -> int:
    return ledger.balance_units(account, USDC.id)


# --- kick --------------------------------------------------------------------------------


def test_kick_records_the_lot_tab_and_curve_start(led: Ledger) -> None:
    # ETH $2,000 -> $1,920: equity = 1,000 + 10*(1,920 - 2,000) = 200 USDC;
    # MM = 5% * 10 * 1,920 = 960 USDC > 200: liquidatable.
    long_perp_book(led)
    house = AuctionHouse(**MAKER)  # type: ignore[arg-type]
    ctx = ctx_of(led, KPR, 1_920 * U)
    assert (ctx.risk.equity, ctx.risk.maintenance_margin) == (200 * U, 960 * U)
    step = house.kick(ctx, "t/a1", now=10_000)
    assert step.plan is None  # no incentive configured: nothing moves
    a = run(led, house, step)
    # tab = ceil(1% * notional 19,200) = 192 USDC; top = buf = 1.25 RAY
    assert a.lot == ((PERP.id, 10 * E),) == a.initial_lot
    assert a.reserved == 0
    assert (a.tab, a.mtm, a.top, a.tic) == (192 * U, 200 * U, 125 * RAY // 100, 10_000)
    # at dur 0 the taker pays 25% above the mark value: price = 200 * 1.25 = 250
    q = house.price(a, 10_000, ctx.risk.equity)
    assert q.factor == 125 * RAY // 100
    assert (q.price, q.concession) == (Fraction(250 * U), Fraction(-50 * U))


def test_kick_incentive_tip_plus_chip_is_one_transaction(led: Ledger) -> None:
    long_perp_book(led)
    # Maker's tip + chip*tab: 5 USDC + 10% of the 192 USDC tab = 24.2 USDC to the kicker,
    # paid by the account out of its penalty (tab 192 -> 167.8)
    house = AuctionHouse(**MAKER, keeper_reward=KeeperReward(tip=5 * U, share=100_000_000))  # type: ignore[arg-type]
    kpr0 = usdc(led, KPR)
    step = house.kick(ctx_of(led, KPR, 1_920 * U), "t/a1", now=0)
    assert step.plan is not None and step.plan.transaction.kind == "auction-kick"
    a = run(led, house, step)
    assert usdc(led, KPR) - kpr0 == 24_200_000 == step.plan.keeper_reward
    assert usdc(led, ACC) == 1_000 * U - 24_200_000
    assert a.tab == 192 * U - 24_200_000 and a.reserved == -24_200_000
    assert LiquidationPlan.from_transaction(step.plan.transaction) == step.plan


def test_kick_refusals_change_nothing(led: Ledger) -> None:
    long_perp_book(led)
    house = AuctionHouse(**MAKER)  # type: ignore[arg-type]
    with pytest.raises(Refused) as healthy:
        house.kick(ctx_of(led, KPR, 2_000 * U), "t/a1", now=0)  # equity 1,000 >= MM 1,000
    assert healthy.value.code == "liquidation/not-liquidatable"
    assert house.auctions == {}
    run(led, house, house.kick(ctx_of(led, KPR, 1_920 * U), "t/a1", now=0))
    with pytest.raises(Refused, match="auction/exists"):
        house.kick(ctx_of(led, KPR, 1_920 * U), "t/a1", now=0)
    with pytest.raises(Refused, match="auction/account-busy"):
        house.kick(ctx_of(led, KPR, 1_920 * U), "t/a2", now=0)
    with pytest.raises(InvalidArgument, match="cannot kick its own"):
        house.kick(ctx_of(led, ACC, 1_920 * U), "t/a3", now=0)


# --- take --------------------------------------------------------------------------------


def test_partial_then_final_take_maker_curve(led: Ledger) -> None:
    long_perp_book(led)
    house = AuctionHouse(**MAKER)  # type: ignore[arg-type]
    run(led, house, house.kick(ctx_of(led, KPR, 1_920 * U), "t/a1", now=0))
    a = house.get("t/a1")
    # dur 60: phi = 1.25 * 0.99**60 = 0.68394580298845...; base B = 200 USDC;
    # concession (all) = 200 * (1 - phi) = 63.2108...; price (all) = 136.789...
    q = house.price(a, 60, risk_of(led, ACC, 1_920 * U).equity)
    assert q.factor == PHI_60 and q.base == 200 * U
    assert q.price == Fraction(200 * U * PHI_60, RAY)
    with pytest.raises(Refused, match="auction/price-above-max"):
        house.take(ctx_of(led, KPR, 1_920 * U), "t/a1", Fraction(1, 2), 136 * U, now=60)
    # take 1/2 at max 140: 5 ETH move to KPR at the mark 1,920 (ACC realises -400 through
    # settlement); concession floor(100 * (1 - phi)) = 31.605419 to KPR; penalty
    # ceil(192 / 2) = 96 to the insurance fund.
    kpr0 = usdc(led, KPR)
    step = house.take(ctx_of(led, KPR, 1_920 * U), "t/a1", Fraction(1, 2), 140 * U, now=60)
    a = run(led, house, step)
    assert step.plan is not None
    assert led.position(KPR, PERP.id) is not None
    assert led.position(KPR, PERP.id).size == 5 * E  # type: ignore[union-attr]
    assert usdc(led, KPR) - kpr0 == 31_605_419
    assert usdc(led, SYSTEM.insurance_fund) == 96 * U == step.plan.penalty
    assert usdc(led, ACC) == 1_000 * U - 400 * U - 31_605_419 - 96 * U == 472_394_581
    # R = 0 + (100 - 31.605419) - 96 = -27.605419; equity now 472.394581 - 400 = 72.394581
    # so B = 72.394581 + 27.605419 = 100 = (1 - 1/2) * 200: Lyra's MtM - R
    assert a.lot == ((PERP.id, 5 * E),) and a.tab == 96 * U and a.reserved == -27_605_419
    assert risk_of(led, ACC, 1_920 * U).equity - a.reserved == 100 * U
    # take the rest: concession 31.605419 again; cash 472.394581 - 400 - 31.605419 =
    # 40.789162 pays what it can of the 96 penalty; the account ends at 0, no bad debt
    step2 = house.take(ctx_of(led, KPR, 1_920 * U), "t/a1", 1, 70 * U, now=60)
    a = run(led, house, step2)
    assert step2.plan is not None and step2.plan.penalty == 40_789_162
    assert a.done and a.lot == () and usdc(led, ACC) == 0 and led.positions_of(ACC) == {}
    assert step2.plan.bad_debt_covered == step2.plan.bad_debt_uncovered == 0
    # the account lost exactly its 200 equity: concessions 63.210838 + penalties 136.789162
    with pytest.raises(Refused, match="auction/finished"):
        house.take(ctx_of(led, KPR, 1_920 * U), "t/a1", 1, 10**12, now=61)


def test_insolvent_take_pays_the_taker_through_the_waterfall(led: Ledger) -> None:
    # $1,880: equity = 1,000 - 1,200 = -200. Lyra test curve, buf 1: at t=300 d = 0.90
    # (LYRA-1). P = B*(2 - d) = -220: the taker *receives* 220 for all of it (200 of
    # negative value at the mark + a 20 concession). Insurance fund holds 150.
    long_perp_book(led)
    deposit(led, _tx(), SYSTEM.insurance_fund, 150 * U)
    house = AuctionHouse(LYRA_TEST, tail=7800, penalty_rate=10_000_000)
    run(led, house, house.kick(ctx_of(led, KPR, 1_880 * U), "t/a1", now=0))
    ctx = ctx_of(led, KPR, 1_880 * U)
    q = house.price(house.get("t/a1"), 300, ctx.risk.equity)
    assert q.factor == 9 * RAY // 10
    assert (q.base, q.price, q.concession) == tuple(map(Fraction, (-200 * U, -220 * U, 20 * U)))
    kpr0 = usdc(led, KPR)
    step = house.take(ctx, "t/a1", 1, -210 * U, now=300)  # wants to receive at least 210
    run(led, house, step)
    assert step.plan is not None
    # cash 1,000 - 1,200 (realised) - 20 (concession) = -220: no penalty; the fund covers
    # 150, 70 is booked as uncovered bad debt; the account ends at exactly 0
    assert (step.plan.penalty, step.plan.bad_debt_covered, step.plan.bad_debt_uncovered) == (
        0,
        150 * U,
        70 * U,
    )
    assert usdc(led, KPR) - kpr0 == 20 * U
    assert usdc(led, ACC) == 0 and usdc(led, SYSTEM.bad_debt) == -70 * U
    assert usdc(led, SYSTEM.insurance_fund) == 0


def test_lyra_discounts_through_the_house(led: Ledger) -> None:
    long_perp_book(led)
    lyra2 = TwoSlope(Fraction(96, 100), Fraction(4, 5), 300, 7200)
    for curve, t, d in ((LYRA_TEST, 960, Fraction(76, 100)), (lyra2, 150, Fraction(88, 100))):
        house = AuctionHouse(curve, tail=7500)
        run(led, house, house.kick(ctx_of(led, KPR, 1_920 * U), "t/a", now=0))
        q = house.price(house.get("t/a"), t, 200 * U)
        # LYRA-1 d(960) = 0.76 -> 152 USDC; LYRA-2 d(150) = 0.88 -> 176 USDC for B = 200
        assert q.factor == d * RAY and q.price == 200 * U * d


def test_reset_by_cusp_and_tail_and_redo(led: Ledger) -> None:
    long_perp_book(led)
    house = AuctionHouse(**MAKER)  # type: ignore[arg-type]
    run(led, house, house.kick(ctx_of(led, KPR, 1_920 * U), "t/a1", now=0))
    a = house.get("t/a1")
    # cusp 0.3: 0.99**n < 0.3 first at n = 120 (0.99**119 = 0.3024, 0.99**120 = 0.2994)
    assert house.status(a, 119)[1] is False and house.status(a, 120)[1] is True
    with pytest.raises(Refused, match="auction/no-reset-needed"):
        house.redo("t/a1", 119)
    with pytest.raises(Refused, match="auction/needs-reset"):
        house.take(ctx_of(led, KPR, 1_920 * U), "t/a1", 1, 10**12, now=120)
    a = run(led, house, house.redo("t/a1", 120))
    assert (a.tic, a.top, a.version) == (120, 125 * RAY // 100, 1)
    assert house.status(a, 120) == (125 * RAY // 100, False)
    # tail: LinearDecrease that never crosses cusp 0 still resets after tail seconds
    tailing = AuctionHouse(LinearDecrease(10**6), tail=3600)
    tailing.auctions["t/x"] = a
    assert tailing.status(a, 120 + 3600)[1] is False and tailing.status(a, 120 + 3601)[1] is True
    # a redo computed before another step is stale
    r = house.redo("t/a1", 500)
    run(led, house, house.redo("t/a1", 400))
    with pytest.raises(Refused, match="auction/stale-step"):
        house.commit(r)


def test_bad_input_names_the_value_and_changes_nothing(led: Ledger) -> None:
    long_perp_book(led)
    house = AuctionHouse(**MAKER)  # type: ignore[arg-type]
    run(led, house, house.kick(ctx_of(led, KPR, 1_920 * U), "t/a1", now=5))
    before, digest = dict(house.auctions), led.state_digest()
    ctx = ctx_of(led, KPR, 1_920 * U)
    for bad, msg in ((0, "fraction=0"), (Fraction(-1, 2), "fraction=-1/2"), (2, "fraction=2")):
        with pytest.raises(InvalidArgument, match=msg):
            house.take(ctx, "t/a1", bad, 10**12, now=6)
    with pytest.raises(InvalidArgument, match=r"fraction=0\.5"):
        house.take(ctx, "t/a1", 0.5, 10**12, now=6)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="slices nothing"):
        house.take(ctx, "t/a1", Fraction(1, 10**8), 10**12, now=6)  # trunc(10e6 * 1e-8) = 0
    with pytest.raises(Refused, match=r"auction/not-found.*'t/zz'"):
        house.take(ctx, "t/zz", 1, 10**12, now=6)
    with pytest.raises(InvalidArgument, match="now=4 precedes the auction's tic=5"):
        house.take(ctx, "t/a1", 1, 10**12, now=4)
    with pytest.raises(InvalidArgument, match="cannot take its own"):
        house.take(ctx_of(led, ACC, 1_920 * U), "t/a1", 1, 10**12, now=6)
    assert house.auctions == before and led.state_digest() == digest


def test_dust_remnant_takes_all_or_refuses(led: Ledger) -> None:
    long_perp_book(led)
    # 19/20 of 10 ETH leaves 0.5 ETH = 960 USDC of notional < 1,000: dust
    house = AuctionHouse(**MAKER, dust=DustRule(1_000 * U))  # type: ignore[arg-type]
    run(led, house, house.kick(ctx_of(led, KPR, 1_920 * U), "t/a1", now=0))
    step = house.take(ctx_of(led, KPR, 1_920 * U), "t/a1", Fraction(19, 20), 10**12, now=60)
    assert step.auction.done and step.auction.lot == ()
    refuse = AuctionHouse(**MAKER, dust=DustRule(1_000 * U, DustMode.REFUSE))  # type: ignore[arg-type]
    refuse.auctions["t/a1"] = house.get("t/a1")
    with pytest.raises(MustNotLeaveDust, match="remnant=960000000 < min_value=1000000000"):
        refuse.take(ctx_of(led, KPR, 1_920 * U), "t/a1", Fraction(19, 20), 10**12, now=60)
    # 1/2 leaves 9,600 of notional: not dust
    assert not refuse.take(
        ctx_of(led, KPR, 1_920 * U), "t/a1", Fraction(1, 2), 10**12, 60
    ).auction.done


# --- flash take --------------------------------------------------------------------------


def _weth_book(led: Ledger) -> AuctionHouse:
    """ACC: 100 USDC + 1 WETH (10% haircut), long 10 ETH-PERP at 2,000. At $1,900:
    equity = 100 + 1,710 - 1,000 = 810 < MM 950. KPR holds no USDC at all."""
    deposit(led, _tx(), ACC, 100 * U)
    deposit(led, _tx(), ACC, 10**18, WETH)
    deposit(led, _tx(), MM, 100_000 * U)
    trade(led, ACC, MM, PERP, 10 * E, 2_000 * U)
    house = AuctionHouse(LinearDecrease(1_000), penalty_rate=10_000_000)
    ctx = ctx_of(led, KPR, 1_900 * U)
    assert (ctx.risk.equity, ctx.risk.maintenance_margin) == (810 * U, 950 * U)
    run(led, house, house.kick(ctx, "t/f1", now=0))
    return house


def test_take_without_funds_is_refused_whole(led: Ledger) -> None:
    house = _weth_book(led)
    # at t=100 the factor is 0.9: KPR pays 1,710 for the WETH and receives the concession
    # 0.1 * 810 = 81: net -1,629 USDC it does not have -> the ledger refuses everything
    step = house.take(ctx_of(led, KPR, 1_900 * U), "t/f1", 1, 10**12, now=100)
    digest, before = led.state_digest(), dict(house.auctions)
    with pytest.raises(Refused) as exc:
        led.apply(step.plan.transaction)  # type: ignore[union-attr]
    assert exc.value.code == "ledger/negative-balance"
    assert led.state_digest() == digest and house.auctions == before  # nothing moved


def _sell_weth(price_units: int) -> object:
    def callback(fq: FlashQuote) -> tuple[tuple[Posting, ...], tuple[PositionChange, ...]]:
        # Maker's clipperCall: sell the WETH just received to BUYER, inside the same tx
        ((asset, amount),) = fq.collateral
        assert asset == WETH.id and amount == 10**18
        legs = (
            Posting(fq.taker, WETH.units(-amount)),
            Posting(BUYER, WETH.units(amount)),
            Posting(BUYER, USDC.units(-price_units)),
            Posting(fq.taker, USDC.units(price_units)),
        )
        return legs, ()

    return callback


def test_flash_take_pays_out_of_what_it_receives(led: Ledger) -> None:
    house = _weth_book(led)
    deposit(led, _tx(), BUYER, 1_900 * U)
    step = house.take(
        ctx_of(led, KPR, 1_900 * U),
        "t/f1",
        1,
        10**12,
        now=100,
        flash=_sell_weth(1_900 * U),  # type: ignore[arg-type]
    )
    assert step.plan is not None
    tx = step.plan.transaction
    first_debit = next(
        i for i, p in enumerate(tx.postings) if p.account == KPR and p.amount.units < 0
    )
    assert all(p.account == KPR and p.amount.units > 0 for p in tx.postings[:2])  # credits first
    assert first_debit >= 2
    a = run(led, house, step)
    # KPR: -1,710 (WETH) + 81 (concession) + 1,900 (sold WETH) = 271 USDC, long 10 ETH-PERP
    assert usdc(led, KPR) == 271 * U and led.balance_units(KPR, WETH.id) == 0
    assert led.balance_units(BUYER, WETH.id) == 10**18
    # ACC: 100 + 1,710 - 1,000 - 81 = 729, penalty ceil(1% * 19,000) = 190 -> 539
    assert usdc(led, ACC) == 539 * U and a.done


def test_flash_callback_whose_counterparty_cannot_pay_moves_nothing(led: Ledger) -> None:
    house = _weth_book(led)  # BUYER has no USDC
    step = house.take(
        ctx_of(led, KPR, 1_900 * U),
        "t/f1",
        1,
        10**12,
        now=100,
        flash=_sell_weth(1_900 * U),  # type: ignore[arg-type]
    )
    digest = led.state_digest()
    with pytest.raises(Refused, match="ledger/negative-balance"):
        led.apply(step.plan.transaction)  # type: ignore[union-attr]
    assert led.state_digest() == digest and not house.get("t/f1").done


def test_auction_record_round_trips_through_the_memo(led: Ledger) -> None:
    long_perp_book(led)
    house = AuctionHouse(**MAKER)  # type: ignore[arg-type]
    run(led, house, house.kick(ctx_of(led, KPR, 1_920 * U), "t/a1", now=0))
    step = house.take(ctx_of(led, KPR, 1_920 * U), "t/a1", Fraction(1, 3), 10**12, now=30)
    a = run(led, house, step)
    committed = led.committed(step.plan.transaction.id)  # type: ignore[union-attr]
    assert committed is not None
    assert Auction.from_memo(committed[1].memo["auction"]) == a
    assert LiquidationPlan.from_transaction(committed[1]) == step.plan


# --- property: random kicks, takes and redos on a real ledger ----------------------------

TAKERS = (KPR, BUYER)


class AuctionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        shm = Path("/dev/shm")
        self.dir = tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None)
        self.ledger = open_ledger(Path(self.dir.name) / "p.sqlite")
        _setup(self.ledger)
        self.price = 2_000 * U
        self.now = 0
        self.house = AuctionHouse(
            StairstepExponentialDecrease(cut=99 * RAY // 100, step=10),
            buf=11 * RAY // 10,
            cusp=RAY // 4,
            tail=2_000,
            penalty_rate=20_000_000,
            keeper_share=300_000_000,
            protocol_share=100_000_000,
            keeper_reward=KeeperReward(tip=2 * U, share=50_000_000),
        )
        self.n = 0
        self.kicked: dict[str, tuple[int, int, dict[InstrumentId, int]]] = {}
        self.sold: dict[str, dict[InstrumentId, int]] = {}

    def teardown(self) -> None:
        self.ledger._storage.close()
        self.dir.cleanup()

    def active(self) -> Auction | None:
        return self.house.active_for(ACC)

    def ctx(self, keeper: AccountId) -> LiquidationContext:
        ctx = ctx_of(self.ledger, keeper, self.price)
        r = ctx.risk  # forced liquidatable: the property is about the money flow
        forced = AccountRisk(r.equity, max(r.equity + 1, r.maintenance_margin, 0))
        return replace(ctx, risk=forced)

    def attempt(self, tx: Transaction) -> bool:
        digest, head = self.ledger.state_digest(), self.ledger.head
        try:
            self.ledger.apply(tx)
        except Refused:
            assert (self.ledger.state_digest(), self.ledger.head) == (digest, head)
            return False
        return True

    @initialize()
    def fund(self) -> None:
        deposit(self.ledger, _tx(), MM, 10**7 * U)
        deposit(self.ledger, _tx(), SYSTEM.insurance_fund, 500 * U)

    @precondition(lambda self: self.active() is None)
    @rule(
        cash=st.integers(0, 3_000),
        perp=st.integers(-20, 20),
        put=st.integers(-20, 20),
        weth=st.integers(0, 2),
        price=st.integers(1_500, 2_500),
    )
    def open_book(self, cash: int, perp: int, put: int, weth: int, price: int) -> None:
        self.price = price * U
        if cash:
            deposit(self.ledger, _tx(), ACC, cash * U)
        if weth:
            deposit(self.ledger, _tx(), ACC, weth * 10**17, WETH)
        for inst, size, px in ((PERP, perp, self.price), (PUT, put, 50 * U)):
            if size:
                buyer, seller = (ACC, MM) if size > 0 else (MM, ACC)
                with contextlib.suppress(Refused):  # ACC may lack the premium
                    trade(self.ledger, buyer, seller, inst, abs(size) * E // 2, px)

    @precondition(lambda self: self.active() is None)
    @rule(price=st.integers(1_000, 3_000))
    def move_price(self, price: int) -> None:
        self.price = price * U

    @precondition(lambda self: self.active() is None)
    @rule(kicker=st.sampled_from(TAKERS))
    def kick(self, kicker: AccountId) -> None:
        ctx = self.ctx(kicker)
        self.n += 1
        aid = f"t/p{self.n}"
        try:
            step = self.house.kick(ctx, aid, self.now)
        except Refused as exc:
            assert exc.code == "auction/empty-lot"
            return
        if step.plan is not None and not self.attempt(step.plan.transaction):
            return
        self.house.commit(step)
        cap = step.auction.tab + (step.plan.penalty if step.plan else 0)
        self.kicked[aid] = (ctx.risk.equity, cap, dict(step.auction.initial_lot))
        self.sold[aid] = {}

    @precondition(lambda self: self.active() is not None)
    @rule(
        taker=st.sampled_from(TAKERS),
        num=st.integers(1, 8),
        dt=st.integers(0, 400),
        fund=st.booleans(),
        max_price=st.one_of(st.none(), st.integers(-5_000, 5_000)),
    )
    def take(self, taker: AccountId, num: int, dt: int, fund: bool, max_price: int | None) -> None:
        a = self.active()
        assert a is not None
        self.now += dt
        if fund:
            deposit(self.ledger, _tx(), taker, 2_000 * U)
        ctx = self.ctx(taker)
        before = dict(self.house.auctions)
        mp = 10**15 if max_price is None else max_price * U
        try:
            step = self.house.take(ctx, a.id, Fraction(num, 8), mp, self.now)
        except (Refused, InvalidArgument) as exc:
            assert self.house.auctions == before
            if isinstance(exc, Refused):
                assert exc.code in ("auction/needs-reset", "auction/price-above-max")
            return
        assert step.plan is not None
        if not self.attempt(step.plan.transaction):
            assert self.house.auctions == before
            return
        self.house.commit(step)
        plan = step.plan
        sold_coll = int(plan.transaction.memo["collateral_sold"])
        assert 0 <= plan.seized <= ctx.cash + sold_coll
        assert plan.penalty == plan.keeper_reward + plan.insurance_fee + plan.protocol_fee
        for c in plan.transaction.position_changes:
            if c.account == ACC:
                s = self.sold[a.id]
                s[c.instrument] = s.get(c.instrument, 0) - c.size_delta

    @precondition(lambda self: self.active() is not None)
    @rule(dt=st.integers(0, 3_000))
    def redo(self, dt: int) -> None:
        a = self.active()
        assert a is not None
        self.now += dt
        try:
            step = self.house.redo(a.id, self.now)
        except Refused as exc:
            assert exc.code == "auction/no-reset-needed"
            return
        self.house.commit(step)

    @invariant()
    def conservation(self) -> None:
        self.ledger.check_invariants()

    @invariant()
    def sold_within_lot(self) -> None:
        for aid, sold in self.sold.items():
            lot = self.kicked[aid][2]
            for iid, s in sold.items():
                assert iid in lot and abs(s) <= abs(lot[iid]) and s * lot[iid] >= 0

    @invariant()
    def account_loses_at_most_penalty_and_its_base(self) -> None:
        a = self.active()
        if a is None:
            return
        e0, cap, _ = self.kicked[a.id]
        e_now = risk_of(self.ledger, ACC, self.price).equity
        takes = a.version + 1
        # prices are fixed while the auction runs: the loss is concessions + penalties
        # (minus what the waterfall covered) <= |B0| + penalty, with a few units of
        # rounding per take and leg
        assert e0 - e_now <= cap + abs(e0) + 10 * takes


AuctionMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAuctionProperties = AuctionMachine.TestCase
