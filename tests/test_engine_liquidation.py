"""The engine's liquidation policy: partial sizing, adaptive penalty, keeper rewards
reserved in the requirement, closing cost, the self-liquidation window, batches under a
work budget and throughput limits.

The base case (``make_engine``): Alice holds 1,000 USD and goes long 5 ETH at 2,000;
maintenance is 5% of notional. At a price ``p``: ``equity = 1000 + 5·(p - 2000)``,
``MM = 0.25·p``. At 1,892: equity 460, MM 473, health 0.9725.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ALICE, BOB, USDC, deposit
from tests.test_engine import KEEPER, PERP, SYS, USD, alice_goes_long, make_engine, reports, trade

from liqeng.engine import Engine, SelfLiquidation
from liqeng.errors import InvalidArgument, Refused
from liqeng.ids import AccountId
from liqeng.ledger.model import AccountKind, AccountSpec
from liqeng.liquidation import FixedFee
from liqeng.liquidation.keeper import KeeperReward
from liqeng.liquidation.limits import Limits
from liqeng.liquidation.penalty import AdaptivePenalty, HealthTiers, VolatilityScaling
from liqeng.liquidation.portion import CloseFactor, TargetHealth
from liqeng.liquidation.registry import mechanism
from liqeng.liquidation.sizing import AAVE_V3_CLOSE_FACTOR, DustRule
from liqeng.liquidation.waterfall import Waterfall

ETH = 10**6
GWEI = 10**9


def crash_to(engine: Engine, clock: Any, price: int, keeper: AccountId | None = KEEPER) -> Any:
    """Alice opens at 2,000 at t=0; the price is ``price`` at t=60."""
    engine.step(reports(0, *[2000] * 5))
    alice_goes_long(engine, 5, 2000)
    clock.set(60)
    return engine.step(reports(60, *[price] * 5), keeper=keeper)


def test_close_factor_closes_half_above_095(tmp_path: Path) -> None:
    fee = FixedFee(penalty_rate=20_000_000, sizing=CloseFactor(AAVE_V3_CLOSE_FACTOR))
    engine, clock = make_engine(tmp_path, mechanism=fee)
    step = crash_to(engine, clock, 1892)
    (liq,) = step.liquidations
    # health 460/473 = 0.9725 > 0.95: Aave's close factor is 50%: 2.5 ETH closed,
    # notional 2.5 * 1892 = 4730, penalty 2% = 94.6
    assert liq.plan.transaction.memo["fraction"] == "1/2"
    assert (liq.plan.notional, liq.plan.penalty) == (4_730 * USD, 94_600_000)
    led = engine.ledger
    assert led.position(ALICE, PERP.id).size == 2_500_000  # type: ignore[union-attr]
    # cash 1000 - 2.5 * 108 - 94.6 = 635.4; the rest is healthy: equity 365.4 > MM 236.5
    assert led.balance_units(ALICE, USDC.id) == 635_400_000
    assert not engine.risk(ALICE).is_liquidatable
    led.check_invariants()


def test_close_factor_closes_all_at_or_below_095(tmp_path: Path) -> None:
    fee = FixedFee(penalty_rate=20_000_000, sizing=CloseFactor(AAVE_V3_CLOSE_FACTOR))
    engine, clock = make_engine(tmp_path, mechanism=fee)
    step = crash_to(engine, clock, 1880)  # equity 400, MM 470: health 0.851
    assert step.liquidations[0].plan.transaction.memo["fraction"] == "1"
    assert engine.ledger.positions_of(ALICE) == {}


def test_target_health_restores_the_target(tmp_path: Path) -> None:
    fee = FixedFee(penalty_rate=20_000_000, sizing=TargetHealth(Fraction(6, 5)))
    engine, clock = make_engine(tmp_path, mechanism=fee)
    step = crash_to(engine, clock, 1892)
    # H = 460/473, p/m = 0.02/0.05 = 0.4: f = (1.2 - H) / (1.2 - 0.4) = 0.28435
    f = Fraction(step.liquidations[0].plan.transaction.memo["fraction"])
    assert f == (Fraction(6, 5) - Fraction(460, 473)) / (Fraction(6, 5) - Fraction(2, 5))
    health = engine.risk(ALICE).health
    assert Fraction(6, 5) <= health < Fraction(6, 5) + Fraction(1, 10_000)
    # closed: ceil(5 ETH * f), so the target is reached; the rest stays
    left = engine.ledger.position(ALICE, PERP.id).size  # type: ignore[union-attr]
    assert left == 5 * ETH - math.ceil(5 * ETH * f)


def test_dust_remnant_is_taken_whole(tmp_path: Path) -> None:
    fee = FixedFee(
        penalty_rate=20_000_000,
        sizing=CloseFactor(AAVE_V3_CLOSE_FACTOR),
        dust=DustRule(5_000 * USD),  # the 4,730 left would be dust
    )
    engine, clock = make_engine(tmp_path, mechanism=fee)
    step = crash_to(engine, clock, 1892)
    assert step.liquidations[0].plan.transaction.memo["fraction"] == "1"


def _adaptive() -> FixedFee:
    # 2% at any health <= 1, scaled by (σ / 50%) clamped to [1/2, 3]
    return FixedFee(
        penalty=AdaptivePenalty(
            HealthTiers(((Fraction(1), 20_000_000),)),
            VolatilityScaling(0.5, Fraction(1), Fraction(1, 2), Fraction(3)),
            0,
            100_000_000,
        )
    )


@pytest.mark.parametrize(("implied", "rate"), [(0.25, 10_000_000), (1.5, 60_000_000)])
def test_adaptive_penalty_pays_more_in_a_stressed_market(
    tmp_path: Path, implied: float, rate: int
) -> None:
    engine, clock = make_engine(tmp_path, mechanism=_adaptive())
    engine.vols["ETH"] = implied
    engine.step(reports(0, *[2000] * 5))
    alice_goes_long(engine, 5, 2000)
    # a calm fall over 30 days: realised vol sqrt(ln(1880/2000)^2 / 30d * 365d) = 0.2158
    clock.set(30 * 86400)
    step = engine.step(reports(30 * 86400, *[1880] * 5), keeper=KEEPER)
    assert engine.realised_vol("ETH") == pytest.approx(0.2158, abs=1e-4)
    # σ = max(realised, implied): 0.25 -> factor 1/2 -> 1%; 1.5 -> factor 3 -> 6%
    memo = step.liquidations[0].plan.transaction.memo
    assert int(memo["penalty_rate"]) == rate


def test_realised_vol_of_a_crash_raises_the_penalty(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path, mechanism=_adaptive())
    engine.vols["ETH"] = 0.25
    step = crash_to(engine, clock, 1880)  # a 6% fall in a minute: realised vol ~ 45
    assert int(step.liquidations[0].plan.transaction.memo["penalty_rate"]) == 60_000_000


def _rewarded(**kw: Any) -> FixedFee:
    # tip 5 USD + gas 500,000 units; at 10 gwei and ETH at 2,000: 500,000 * 10e9 * 2000 / 1e18
    # = 10 USD; the reserve prices gas at up to 50 gwei: 5 + 50 = 55 USD (+1 unit)
    reward = KeeperReward(tip=5 * USD, share=0, gas_units=500_000)
    return FixedFee(
        keeper_reward=reward,
        dust=DustRule(2_000 * USD),
        max_gas_price=50 * GWEI,
        max_quote_per_gas=2_000 * USD,
        **kw,
    )


@pytest.mark.parametrize("screen", [True, False])
def test_keeper_reward_is_reserved_in_the_requirement(tmp_path: Path, screen: bool) -> None:
    engine, clock = make_engine(tmp_path, mechanism=_rewarded(), screen=screen)
    engine.gas_price, engine.quote_per_gas = 10 * GWEI, 2_000 * USD
    # at 1,900: equity 500 >= MM 475, but 500 < 475 + 55 reserved: liquidatable
    step = crash_to(engine, clock, 1900)
    (liq,) = step.liquidations
    assert engine.surcharges()[0].of(0) == 55 * USD + 1
    # penalty 5% of 9,500 = 475, all payable; the keeper gets tip + gas = 15 USD
    assert (liq.plan.penalty, liq.plan.keeper_reward) == (475 * USD, 15 * USD)
    assert liq.plan.insurance_fee == 460 * USD


def test_keeper_reward_gas_price_is_clamped_to_the_reserved_maximum(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path, mechanism=_rewarded())
    engine.gas_price, engine.quote_per_gas = 500 * GWEI, 2_000 * USD  # 10x the maximum
    step = crash_to(engine, clock, 1900)
    assert step.liquidations[0].plan.keeper_reward == 55 * USD  # 5 + 50 at 50 gwei


def test_keeper_reward_config_that_the_dust_penalty_cannot_pay_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="does not fit in the penalty at the dust size"):
        _rewarded().__class__(
            keeper_reward=KeeperReward(tip=5 * USD, share=0, gas_units=500_000),
            dust=DustRule(1_000 * USD),  # 5% of 1,000 = 50 < 55
            max_gas_price=50 * GWEI,
            max_quote_per_gas=2_000 * USD,
        )
    with pytest.raises(InvalidArgument, match="needs a dust rule"):
        FixedFee(keeper_reward=KeeperReward(tip=5 * USD, share=0))


@pytest.mark.parametrize("screen", [True, False])
def test_closing_cost_counts_in_eligibility(tmp_path: Path, screen: bool) -> None:
    engine, clock = make_engine(tmp_path, closing_cost_rate=10_000_000, screen=screen)
    # at 1,900: equity 500 < MM 475 + 1% of 9,500 = 570
    step = crash_to(engine, clock, 1900)
    assert [liq.account for liq in step.liquidations] == [ALICE]
    risk = step.liquidations[0].plan.transaction.memo["maintenance_margin"]
    assert int(risk) == 570 * USD


def test_self_liquidation_window(tmp_path: Path) -> None:
    window = SelfLiquidation(300, Fraction(1, 2))
    engine, clock = make_engine(tmp_path, self_liquidation=window)
    step = crash_to(engine, clock, 1892)  # health 0.97 >= 1/2: the owner's window
    assert step.liquidations == ()
    assert step.refused == ((ALICE, "liquidation/self-liquidation-window"),)
    with pytest.raises(Refused, match="self-liquidation-window"):
        engine.liquidate(ALICE, KEEPER, "k-1")
    # the owner closes to a counterparty at mark, without penalty
    liq = engine.self_liquidate(ALICE, BOB, "self-1")
    assert (liq.plan.penalty, liq.plan.keeper_reward) == (0, 0)
    # cash 1000 - 5 * 108 = 460: the whole equity is kept
    assert engine.ledger.balance_units(ALICE, USDC.id) == 460 * USD


def test_keepers_act_after_the_window_or_below_the_floor(tmp_path: Path) -> None:
    window = SelfLiquidation(300, Fraction(1, 2))
    engine, clock = make_engine(tmp_path, self_liquidation=window)
    crash_to(engine, clock, 1892)
    clock.set(360)  # became eligible at 60: the window closes at 360
    with pytest.raises(Refused, match="window-closed"):
        engine.self_liquidate(ALICE, BOB, "self-late")
    step = engine.step(reports(360, *[1892] * 5), keeper=KEEPER)
    assert [liq.account for liq in step.liquidations] == [ALICE]

    (tmp_path / "2").mkdir()
    engine2, clock2 = make_engine(tmp_path / "2", self_liquidation=window)
    # at 1,840: equity 200, MM 460: health 0.43 < 1/2, keepers need not wait
    step = crash_to(engine2, clock2, 1840)
    assert [liq.account for liq in step.liquidations] == [ALICE]


def test_self_liquidation_needs_a_window(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path)
    crash_to(engine, clock, 1892, keeper=None)
    with pytest.raises(InvalidArgument, match="self_liquidation"):
        engine.self_liquidate(ALICE, BOB, "s")
    with pytest.raises(InvalidArgument, match="hard_floor"):
        SelfLiquidation(10, Fraction(2))


USERS = [AccountId(f"t/u{i}") for i in range(4)]


def _book(engine: Engine) -> None:
    """Four users long 5 ETH at 2,000 with 1,000 / 900 / 800 / 700 USD."""
    led = engine.ledger
    engine.step(reports(0, *[2000] * 5))
    for i, user in enumerate(USERS):
        led.open_account(AccountSpec(user, AccountKind.USER))
        deposit(led, f"d-{user}", user, (1_000 - 100 * i) * USD)
        trade(engine, f"open-{user}", user, BOB, PERP, 5 * ETH, 2000)


def test_batch_takes_the_most_at_risk_first_under_a_count(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path)
    _book(engine)
    clock.set(60)
    step = engine.step(reports(60, *[1900] * 5))  # no keeper: only prices
    # equity 500 / 400 / 300 / 200 vs MM 475: u1, u2, u3 are eligible, u3 the sickest
    assert list(step.underwater) == [USERS[3], USERS[2], USERS[1]]
    report = engine.liquidate_batch(KEEPER, "b1", max_count=2)
    assert [liq.account for liq in report.liquidations] == [USERS[3], USERS[2]]
    assert report.notional_left is None and report.refused == ()
    assert engine.ledger.positions_of(USERS[1])  # left for the next batch
    again = engine.liquidate_batch(KEEPER, "b2")
    assert [liq.account for liq in again.liquidations] == [USERS[1]]


def test_batch_notional_budget_ends_with_a_partial_close(tmp_path: Path) -> None:
    fee = FixedFee(penalty_rate=10_000_000)
    engine, clock = make_engine(tmp_path, mechanism=fee)
    _book(engine)
    clock.set(60)
    engine.step(reports(60, *[1900] * 5))
    # each book is 9,500 of notional: a budget of 12,000 closes u3 and 2,500 of u2:
    # trunc(5 ETH * 2500/9500) = 1.315789 ETH, 2,499.9991 of notional; the 0.0009 left
    # closes nothing of u1 (throttled)
    report = engine.liquidate_batch(KEEPER, "b1", max_notional=12_000 * USD)
    assert [liq.plan.notional for liq in report.liquidations] == [9_500 * USD, 2_499_999_100]
    assert report.notional_left == 900
    assert report.refused == ((USERS[1], "liquidation/throttled"),)
    assert engine.ledger.position(USERS[2], PERP.id).size == 5 * ETH - 1_315_789  # type: ignore[union-attr]
    engine.ledger.check_invariants()


def test_batch_refused_item_leaves_the_others_applied(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path, limits=Limits(max_loss_per_block=0))
    _book(engine)
    clock.set(60)
    engine.step(reports(60, *[1840] * 5))
    # equity 200 / 100 / 0 / -100: u3 is insolvent; covering its 100 of bad debt passes the
    # block's loss limit of 0, so it waits; the others are liquidated
    seq = engine.ledger.seq
    report = engine.liquidate_batch(KEEPER, "b1")
    assert report.refused == ((USERS[3], "liquidation/block-loss-limit"),)
    assert [liq.account for liq in report.liquidations] == [USERS[2], USERS[1], USERS[0]]
    assert engine.ledger.positions_of(USERS[3])
    assert engine.ledger.seq == seq + 3


def test_batch_bad_input_changes_nothing(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path)
    _book(engine)
    clock.set(60)
    engine.step(reports(60, *[1900] * 5))
    seq = engine.ledger.seq
    for kw in ({"max_count": 0}, {"max_notional": -1}):
        with pytest.raises(InvalidArgument):
            engine.liquidate_batch(KEEPER, "b1", **kw)
    with pytest.raises(InvalidArgument, match="keeper"):
        engine.liquidate_batch(AccountId("t/nobody"), "b1")
    clock.set(60 + 3601)
    with pytest.raises(Refused, match="stale-price"):
        engine.liquidate_batch(KEEPER, "b1")
    assert engine.ledger.seq == seq


def test_per_block_notional_limit_spreads_a_crash_over_blocks(tmp_path: Path) -> None:
    fee = FixedFee(penalty_rate=10_000_000)
    limits = Limits(block_s=12, max_notional_per_block=12_000 * USD)
    engine, clock = make_engine(tmp_path, mechanism=fee, limits=limits)
    _book(engine)
    clock.set(60)
    step = engine.step(reports(60, *[1900] * 5), keeper=KEEPER)
    # block 5 (60 // 12): 9,500 of u3, then 2,499.9991 of u2 (a truncated 2,500); u1 is
    # throttled
    assert [liq.plan.notional for liq in step.liquidations] == [9_500 * USD, 2_499_999_100]
    assert step.refused == ((USERS[1], "liquidation/throttled"),)
    clock.set(72)  # the next block
    step = engine.step(reports(72, *[1900] * 5), keeper=KEEPER)
    assert sum(liq.plan.notional for liq in step.liquidations) <= 12_000 * USD
    assert step.liquidations


def test_capacity_per_window_is_sized_from_liquidity(tmp_path: Path) -> None:
    fee = FixedFee(penalty_rate=10_000_000)
    limits = Limits(window_s=60, capacity_share=100_000_000)  # 10% of depth per minute
    engine, clock = make_engine(tmp_path, mechanism=fee, limits=limits)
    _book(engine)
    clock.set(60)
    with pytest.raises(InvalidArgument, match="no liquidity figure"):
        engine.step(reports(60, *[1900] * 5), keeper=KEEPER)
    engine.liquidity["ETH"] = 100_000 * USD  # capacity 10,000 per minute
    step = engine.step(reports(60, *[1900] * 5), keeper=KEEPER)
    # 9,500 of u3, then trunc(5 ETH * 500/9500) = 0.263157 ETH of u2: 499.9983
    assert [liq.plan.notional for liq in step.liquidations] == [9_500 * USD, 499_998_300]
    clock.set(119)  # same window
    step = engine.step(reports(119, *[1900] * 5), keeper=KEEPER)
    assert step.liquidations == ()
    clock.set(121)  # the first liquidations left the window
    step = engine.step(reports(121, *[1900] * 5), keeper=KEEPER)
    assert 9_999 * USD < sum(liq.plan.notional for liq in step.liquidations) <= 10_000 * USD


def test_registry_names_what_it_knows() -> None:
    assert isinstance(mechanism("fixed-fee", penalty_rate=1), FixedFee)
    with pytest.raises(InvalidArgument, match=r"mechanism='dutch' is unknown; known: \["):
        mechanism("dutch")
    with pytest.raises(InvalidArgument, match=r"has no parameter \['chop'\]"):
        mechanism("fixed-fee", chop=1)
    with pytest.raises(InvalidArgument, match="penalty_rate"):
        mechanism("fixed-fee", penalty_rate=-1)


def test_bad_sizing_and_limits_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="sizing"):
        FixedFee(sizing="half")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="target"):
        TargetHealth(Fraction(1, 2))
    with pytest.raises(InvalidArgument, match="capacity_share"):
        Limits(capacity_share=-1)
    with pytest.raises(InvalidArgument, match="block_s"):
        Limits(block_s=0)


def test_unused_system_account_ids_are_namespaced() -> None:
    assert SYS.backstop_pool == "t/backstop-pool"


def test_adl_covers_what_the_funded_stages_cannot(tmp_path: Path) -> None:
    fee = FixedFee(waterfall=Waterfall(("insurance_fund", "adl")))
    engine, clock = make_engine(tmp_path, fund_usd=100, mechanism=fee)
    step = crash_to(engine, clock, 1700)
    (liq,) = step.liquidations
    # equity 1000 + 5 * (1700 - 2000) = -500; the fund pays 100, ADL the other 400: Bob's
    # short (profit 5 * 300 = 1500) is closed against Alice's long at the bankruptcy price
    # of the slice, 1700 + 400 / 5 = 1780, so Bob gives up 400 of his profit
    assert (liq.plan.bad_debt_covered, liq.plan.bad_debt_deleveraged) == (100 * USD, 400 * USD)
    assert liq.plan.bad_debt_uncovered == 0
    led = engine.ledger
    assert led.positions_of(BOB) == {} and led.positions_of(KEEPER) == {}
    assert led.balance_units(SYS.bad_debt, USDC.id) == 0
    assert led.balance_units(BOB, USDC.id) == 10**7 * USD + 1_100 * USD  # 1500 - 400
    led.check_invariants()


def test_socialised_loss_is_shared_by_holders(tmp_path: Path) -> None:
    fee = FixedFee(waterfall=Waterfall(("insurance_fund", "socialised")))
    engine, clock = make_engine(tmp_path, fund_usd=100, mechanism=fee)
    bob_before = engine.ledger.balance_units(BOB, USDC.id)
    step = crash_to(engine, clock, 1700)
    (liq,) = step.liquidations
    # 500 of bad debt: the fund's 100, then 400 haircut from the one other holder, Bob
    assert (liq.plan.bad_debt_covered, liq.plan.bad_debt_socialised) == (100 * USD, 400 * USD)
    led = engine.ledger
    assert led.balance_units(SYS.bad_debt, USDC.id) == 0
    assert led.balance_units(BOB, USDC.id) == bob_before - 400 * USD
    led.check_invariants()


def _strangle_engine(tmp_path: Path, legs: str) -> tuple[Engine, Any]:
    """docs/legs.md's example through the engine: a short 2200/1800 strangle, 10 ETH a
    wing, hedged by 5 long 1600 puts, plus 2 ETH long perp, 2,900 USDC, Lyra-like scenario
    margin, at day 10 with ETH at 2,000."""
    from tests.test_legs import C2200, NOW, P1600, P1800
    from tests.test_legs import PERP as PERP3

    from liqeng.risk.models import Scenario
    from liqeng.risk.portfolio import LYRA_LIKE

    fee = FixedFee(penalty_rate=20_000_000, sizing=TargetHealth(Fraction(1)), legs=legs)
    engine, clock = make_engine(
        tmp_path,
        alice_usd=2_900,
        instruments=(PERP3, C2200, P1800, P1600),
        mechanism=fee,
        markets={"ETH": Scenario(LYRA_LIKE)},
    )
    engine.step(reports(0, *[2000] * 5))
    for txid, buyer, seller, inst, size, price in (
        ("c", BOB, ALICE, C2200, 10_000, 0),
        ("p", BOB, ALICE, P1800, 10_000, 0),
        ("h", ALICE, BOB, P1600, 5_000, 0),
        ("f", ALICE, BOB, PERP3, 2_000, 2000),
    ):
        trade(engine, txid, buyer, seller, inst, size, price)
    clock.set(NOW)
    return engine, clock


def test_greedy_legs_restore_health_with_a_smaller_penalty(tmp_path: Path) -> None:
    plans = {}
    for legs in ("uniform", "greedy"):
        (tmp_path / legs).mkdir()
        engine, clock = _strangle_engine(tmp_path / legs, legs)
        step = engine.step(reports(clock.now(), *[2000] * 5), keeper=KEEPER)
        (liq,) = step.liquidations
        plans[legs] = liq.plan
        assert engine.risk(ALICE).health >= Fraction(99, 100)
        engine.ledger.check_invariants()
    uniform, greedy = plans["uniform"], plans["greedy"]
    assert greedy.transaction.memo["fraction"] == "greedy"
    closed = {c.instrument for c in greedy.transaction.position_changes if c.account == ALICE}
    assert closed == {"ex/ETH-C-2200", "ex/ETH-P-1800"}  # the short wings only
    # health 0.8006 -> 1.0001: the greedy buys back 2 calls and 1.174 puts for a 6.46 USDC
    # discount; the uniform slice (2% of the underlying notional, f = 0.978 by the linear
    # rule) pays 1,056.44 USDC and closes nearly everything
    assert greedy.penalty == pytest.approx(6_463_456, abs=50)
    assert greedy.penalty * 100 < uniform.penalty


@pytest.mark.parametrize(
    ("implied", "tab_usd", "speed"), [(0.25, 94, Fraction(1, 2)), (1.5, 564, Fraction(3))]
)
def test_adaptive_auction_opens_deeper_and_falls_faster_when_stressed(
    tmp_path: Path, implied: float, tab_usd: int, speed: Fraction
) -> None:
    from liqeng.liquidation.dutch_auction import DutchAuction

    mech = DutchAuction(penalty=_adaptive().penalty)
    engine, clock = make_engine(tmp_path, mechanism=mech)
    engine.vols["ETH"] = implied
    engine.step(reports(0, *[2000] * 5))
    alice_goes_long(engine, 5, 2000)
    t = 30 * 86400
    clock.set(t)
    engine.step(reports(t, *[1880] * 5), keeper=KEEPER)
    (auction,) = mech.house.auctions.values()
    # the tab is the adaptive rate (1% calm, 6% stressed) of the notional 5 * 1880 = 9400;
    # the curve (-1% every 90 s) runs at the vol factor: 1/2 calm, 3 stressed
    assert (auction.tab, auction.speed) == (tab_usd * USD, speed)
    assert mech.house.factor(auction, t + 900) == mech.curve.price(auction.top, int(900 * speed))


# --- regressions found in review ---------------------------------------------------------


def test_after_adl_later_items_use_the_positions_it_left(tmp_path: Path) -> None:
    from tests.test_engine import ETH as ETH_UNITS
    from tests.test_engine import PUT

    carol = AccountId("t/carol")
    fee = FixedFee(waterfall=Waterfall(("insurance_fund", "adl")))
    engine, clock = make_engine(tmp_path, fund_usd=0, mechanism=fee)
    led = engine.ledger
    led.open_account(AccountSpec(carol, AccountKind.USER))
    deposit(led, "d-carol", carol, 300 * USD)
    engine.step(reports(0, *[2000] * 5))
    trade(engine, "open", ALICE, carol, PERP, 5 * ETH_UNITS, 2000)
    trade(engine, "put", BOB, carol, PUT, 20 * ETH_UNITS, 60)
    clock.set(60)
    # at 1,700 Alice is bankrupt (-500); ADL closes Carol's profitable short against her;
    # Carol, short 20 puts, is liquidated next with what ADL left her: the puts only
    step = engine.step(reports(60, *[1700] * 5), keeper=KEEPER)
    assert [liq.account for liq in step.liquidations] == [ALICE, carol]
    assert step.liquidations[0].plan.bad_debt_deleveraged == 500 * USD
    assert led.positions_of(carol) == {} and PERP.id not in led.positions_of(KEEPER)
    led.check_invariants()


def test_a_loss_above_the_block_limit_still_clears(tmp_path: Path) -> None:
    limits = Limits(block_s=12, max_loss_per_block=100 * USD)
    engine, clock = make_engine(tmp_path, limits=limits)
    step = crash_to(engine, clock, 1750)  # equity -250: more than a block may cover
    (liq,) = step.liquidations
    assert liq.plan.bad_debt_covered == 250 * USD  # the first cover in a block passes


def test_the_window_reopens_after_a_liquidation_restores_health(tmp_path: Path) -> None:
    fee = FixedFee(penalty_rate=20_000_000, sizing=CloseFactor(AAVE_V3_CLOSE_FACTOR))
    window = SelfLiquidation(300, Fraction(1, 2))
    engine, clock = make_engine(tmp_path, mechanism=fee, self_liquidation=window)
    crash_to(engine, clock, 1892)
    clock.set(360)
    step = engine.step(reports(360, *[1892] * 5), keeper=KEEPER)  # half closed: healthy
    assert len(step.liquidations) == 1 and not engine.risk(ALICE).is_liquidatable
    clock.set(361)
    step = engine.step(reports(361, *[1800] * 5), keeper=KEEPER)  # falls again: a new window
    assert step.refused == ((ALICE, "liquidation/self-liquidation-window"),)


def test_an_account_id_too_long_for_a_txid_is_still_liquidated(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path)
    long_id = AccountId("t" * 55 + "/" + "a" * 127)
    led = engine.ledger
    led.open_account(AccountSpec(long_id, AccountKind.USER))
    deposit(led, "d-long", long_id, 1_000 * USD)
    engine.step(reports(0, *[2000] * 5))
    trade(engine, "open-long", long_id, BOB, PERP, 5 * ETH, 2000)
    clock.set(100_000)  # "liq:100000:" + 183 characters passes the 191 of a txid
    step = engine.step(reports(100_000, *[1850] * 5), keeper=KEEPER)
    (liq,) = step.liquidations
    assert liq.account == long_id and liq.plan.transaction.id.startswith("liq:100000:h-")


def test_target_health_counts_the_reserved_keeper_reward(tmp_path: Path) -> None:
    fee = FixedFee(
        penalty_rate=20_000_000,
        keeper_reward=KeeperReward(tip=5 * USD, share=0, gas_units=500_000),
        dust=DustRule(4_000 * USD),
        max_gas_price=50 * GWEI,
        max_quote_per_gas=2_000 * USD,
        sizing=TargetHealth(Fraction(6, 5)),
    )
    engine, clock = make_engine(tmp_path, mechanism=fee)
    engine.gas_price, engine.quote_per_gas = 10 * GWEI, 2_000 * USD
    step = crash_to(engine, clock, 1900)
    assert len(step.liquidations) == 1
    # at 1,900: E = 500, MM = 475 + 55.000001 reserved; the reserve does not shrink with
    # the position: f = (1.2*MM - E) / (1.2*475 - 2%*9500) = 136.0000012/380, and the target
    # is reached in one liquidation
    mm = 530 * USD + 1
    f = (Fraction(6, 5) * mm - 500 * USD) / (Fraction(6, 5) * 475 * USD - 190 * USD)
    assert Fraction(step.liquidations[0].plan.transaction.memo["fraction"]) == f
    assert Fraction(6, 5) <= engine.risk(ALICE).health < Fraction(6, 5) + Fraction(1, 10**4)
    clock.set(61)
    assert engine.step(reports(61, *[1900] * 5), keeper=KEEPER).liquidations == ()


def test_screen_only_reports_the_scan_candidates_and_liquidation_stays_exact(
    tmp_path: Path,
) -> None:
    engine, clock = make_engine(tmp_path)
    _book(engine)
    clock.set(60)
    step = engine.step(reports(60, *[1900] * 5), screen_only=True)
    # the scan's candidates, most at risk first: the same three as the exact path finds
    assert list(step.underwater) == [USERS[3], USERS[2], USERS[1]]
    # u0 (equity 500 >= MM 475) is not liquidatable: refused at execution, exactly
    with pytest.raises(Refused, match="not-liquidatable"):
        engine.liquidate(USERS[0], KEEPER, "k-u0")
    assert engine.liquidate(USERS[3], KEEPER, "k-u3").created
