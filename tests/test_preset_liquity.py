"""The Liquity v1 preset: every anchors.md §3.5 vector through ``liqeng.presets.liquity``,
bad input, and ``PRESET.mechanism()`` liquidating an account in a real engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ALICE, BOB, USDC
from tests.test_engine import KEEPER, PERP, SYS, alice_goes_long, make_engine, reports

from liqeng.errors import InvalidArgument
from liqeng.ids import AccountId, AssetId
from liqeng.ledger.model import AccountKind, AccountSpec
from liqeng.liquidation import backstop as bs
from liqeng.liquidation.pool import BackstopPool
from liqeng.presets import liquity as lq
from liqeng.units import RATE_SCALE

E = 10**18  # 1 ETH / 1 LUSD / price 1.0, Liquity's 18 decimals
ETH = AssetId("eth/ETH")
T0 = 1_000_000


def _feed(prev: tuple[int, int], cur: tuple[int, int], tellor: int | None, cur_age: int) -> Any:
    """Start in ``chainlinkWorking`` (prev round at T0, Tellor agreeing), then the current
    Chainlink round ``(answer, decimals)`` 60 s later, ``cur_age`` seconds old, and a fresh
    Tellor value (6 decimals), as liquity/dev ``test/PriceFeedTest.js``."""
    pf = lq.PriceFeed()
    pf.chainlink(*prev, updated_at=T0, now=T0)
    pf.tellor(prev[0] * 10**6 // 10 ** prev[1], updated_at=T0, now=T0)
    first = pf.fetch_price(T0)
    assert first.status == 0
    now = T0 + 60 + cur_age
    pf.chainlink(*cur, updated_at=T0 + 60, now=now)
    if tellor is not None:
        pf.tellor(tellor, updated_at=now, now=now)
    got = pf.fetch_price(now)
    return got.status, got.price


def _cl(usd: str) -> tuple[int, int]:
    """A Chainlink answer with 8 decimals from a decimal string."""
    whole, _, frac = usd.partition(".")
    return int(whole + frac.ljust(8, "0")), 8


LQTY4_EXPECTED = {
    "coll_gas_compensation": 5 * 10**16,  # 0.05 ETH
    "lusd_gas_compensation": 200 * E,
    "max_offset": 9_999 * E,
    "debt_to_offset": 9_999 * E,
    "coll_to_send_to_sp": 6_218_128_125 * 10**9,  # 6.218128125 ETH
    "debt_to_redistribute": 6_001 * E,
    "coll_to_redistribute": 3_731_871_875 * 10**9,  # 3.731871875 ETH
    "coll_surplus": 0,
    "loss_per_unit_staked": 999_900_000_000_000_001,
    "p": 99_999_999_999_999,
    "scale": 0,
    "epoch": 0,
    "gain_per_unit_staked": 621_812_812_500_000,
}
LQTY4B_EXPECTED = {
    "coll_gas_compensation": 5 * 10**16,
    "lusd_gas_compensation": 200 * E,
    "max_offset": 10_000 * E,
    "debt_to_offset": 10_000 * E,
    "coll_to_send_to_sp": 6_218_750 * 10**12,  # 6.21875 ETH
    "debt_to_redistribute": 6_000 * E,
    "coll_to_redistribute": 3_731_250 * 10**12,  # 3.73125 ETH
    "coll_surplus": 0,
    "loss_per_unit_staked": E,  # the whole pool
    "p": E,  # reset to 1e18 ...
    "scale": 0,
    "epoch": 1,  # ... in a new epoch: the SP emptied
    "gain_per_unit_staked": 6_218_750 * 10**12 * E // (10_000 * E),
    "pool_total": 0,
}
LQTY5_EXPECTED = {
    "coll_gas_compensation": 32_352_941_176_470_588,
    "lusd_gas_compensation": 200 * E,
    "debt_to_offset": 10_000 * E,
    "coll_to_send_to_sp": 6_438_235_294_117_647_059,
    "debt_to_redistribute": 0,
    "coll_to_redistribute": 0,
    "coll_surplus": 529_411_764_705_882_353,
    "capped_coll": 6_470_588_235_294_117_647,
}


VECTORS = [
    pytest.param(
        "liquidate",
        dict(trove=lq.Trove(10 * E, 16_000 * E), price=1_700 * E, sp_total=10_000 * E),
        LQTY4_EXPECTED,
        id="LQTY-4",
    ),
    pytest.param(
        "liquidate",
        dict(
            trove=lq.Trove(10 * E, 16_000 * E), price=1_700 * E, sp_total=10_000 * E, semantics="v1"
        ),
        LQTY4B_EXPECTED,
        id="LQTY-4b",
    ),
    pytest.param(
        "liquidate",
        # TCR 1.4 < CCR 1.5: recovery mode; ICR = 7·1,700/10,000 = 1.19 in [MCR, TCR);
        # HEAD keeps 1 LUSD, so "SP >= 10,000" means 10,001 here
        dict(
            trove=lq.Trove(7 * E, 10_000 * E),
            price=1_700 * E,
            sp_total=10_001 * E,
            mode="recovery",
            tcr=14 * 10**17,
        ),
        LQTY5_EXPECTED,
        id="LQTY-5",
    ),
    pytest.param(
        "liquidate",
        dict(
            trove=lq.Trove(7 * E, 10_000 * E),
            price=1_700 * E,
            sp_total=10_000 * E,
            mode="recovery",
            tcr=14 * 10**17,
            semantics="v1",
        ),
        LQTY5_EXPECTED,
        id="LQTY-5-v1",
    ),
    pytest.param("feed", (_cl("10"), _cl("10"), 10_000_000, 0), (0, 10 * E), id="LQTY-PF1"),
    pytest.param(
        "feed",
        ((123456789, 5), (123456789, 5), 1_234_567_890, 0),
        (0, 1234567890000000000000),
        id="LQTY-PF1-decimals",
    ),
    pytest.param(
        "feed", (_cl("2"), _cl("0.99999999"), 2_030_000, 0), (1, 203 * 10**16), id="LQTY-PF2"
    ),
    pytest.param("feed", (_cl("2"), _cl("1"), 2_030_000, 0), (0, E), id="LQTY-PF3"),
    pytest.param(
        "feed", (_cl("2"), _cl("0.99999999"), 999_999, 0), (0, 99999999 * 10**10), id="LQTY-PF4"
    ),
    pytest.param("feed", (_cl("1000"), _cl("100"), 104_999_999, 0), (0, 100 * E), id="LQTY-PF5"),
    pytest.param(
        "feed",
        (_cl("1000"), _cl("100"), 105_000_001, 0),
        (1, 105000001 * 10**12),
        id="LQTY-PF6",
    ),
    # Liquity fast-forwards 14,400 s and mines a block: the round is older than TIMEOUT
    pytest.param(
        "feed", (_cl("999"), _cl("999"), 123_000_000, 14_401), (3, 123 * E), id="LQTY-PF7"
    ),
    pytest.param(
        "feed", (_cl("1234"), _cl("1234"), 1_234_000_000, 10_740), (0, 1234 * E), id="LQTY-PF8"
    ),
]


@pytest.mark.parametrize(("kind", "inputs", "expected"), VECTORS)
def test_liquity_vectors(kind: str, inputs: Any, expected: Any) -> None:
    if kind == "feed":
        assert _feed(*inputs) == expected
        return
    liq = lq.liquidate(**inputs)
    v, off = liq.values, liq.offset
    assert v.liquidated
    for name in (
        "coll_gas_compensation",
        "lusd_gas_compensation",
        "debt_to_offset",
        "coll_to_send_to_sp",
        "debt_to_redistribute",
        "coll_to_redistribute",
        "coll_surplus",
    ):
        assert getattr(v, name) == expected[name], name
    trove = inputs["trove"]
    # conservation: every wei of collateral and LUSD of debt is accounted for once
    assert (
        v.coll_gas_compensation + v.coll_to_send_to_sp + v.coll_to_redistribute + v.coll_surplus
        == trove.coll
    )
    assert v.debt_to_offset + v.debt_to_redistribute == trove.debt
    if "max_offset" in expected:
        assert liq.max_offset == expected["max_offset"]
        assert (off.loss_per_unit_staked, off.p) == (
            expected["loss_per_unit_staked"],
            expected["p"],
        )
        assert (off.scale, off.epoch) == (expected["scale"], expected["epoch"])
        assert off.gain_per_unit_staked[ETH] == expected["gain_per_unit_staked"]
    if "pool_total" in expected:
        assert liq.pool.total == expected["pool_total"]
    if "capped_coll" in expected:
        capped = lq.capped_offset_values(trove, inputs["price"])
        assert capped.coll_to_send_to_sp + capped.coll_gas_compensation == expected["capped_coll"]


def test_recovery_mode_branches() -> None:
    price, sp = 1_700 * E, 100_000 * E
    # ICR <= 100%: pure redistribution, gas compensation still paid
    r = lq.liquidate(lq.Trove(5 * E, 9_000 * E), price, sp, "recovery", tcr=14 * 10**17)
    assert (r.values.debt_to_offset, r.values.debt_to_redistribute) == (0, 9_000 * E)
    assert r.values.coll_to_redistribute == 5 * E - 5 * E // 200
    # 100% < ICR < MCR: as normal mode
    t = lq.Trove(10 * E, 16_000 * E)
    rec = lq.liquidate(t, price, sp, "recovery", tcr=14 * 10**17).values
    assert rec == lq.liquidate(t, price, sp).values
    # ICR >= TCR, or debt above what the SP can offset: skipped
    hi = lq.Trove(10 * E, 10_000 * E)  # ICR 1.7
    assert not lq.liquidate(hi, price, sp, "recovery", tcr=14 * 10**17).values.liquidated
    mid = lq.Trove(7 * E, 10_000 * E)  # ICR 1.19
    assert not lq.liquidate(mid, price, 10_000 * E, "recovery", tcr=14 * 10**17).values.liquidated
    # normal mode never touches a trove at or above MCR
    assert not lq.liquidate(mid, price, sp).values.liquidated
    assert lq.is_recovery_mode(14 * 10**17) and not lq.is_recovery_mode(15 * 10**17)


def test_redistribution_and_existing_pool() -> None:
    a, b = AccountId("t/a"), AccountId("t/b")
    red = bs.Redistribution.of({a: 30 * E, b: 10 * E})
    pool, _ = bs.BackstopPool.new(keep=E).deposit(AccountId("t/d"), 10_000 * E)
    liq = lq.liquidate(lq.Trove(10 * E, 16_000 * E), 1_700 * E, 10_000 * E, pool=pool,
                       redistribution=red)  # fmt: skip
    assert liq.redistribution is not None
    # 6,001 LUSD and 3.731871875 ETH shared 3:1 by stake
    assert liq.redistribution.pending(a) == (2_798_903_906_250_000_000, 4_500_750 * 10**15)
    assert liq.redistribution.pending(b) == (932_967_968_750_000_000, 1_500_250 * 10**15)
    assert liq.pool.total == E


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: lq.Trove(-1, 10 * E), "coll=-1"),
        (lambda: lq.Trove(E, -5), "debt=-5"),
        (lambda: lq.liquidate(lq.Trove(E, E), 1_700 * E, -1), "sp_total=-1"),
        (lambda: lq.liquidate(lq.Trove(E, E), -7, E), "price=-7"),
        (lambda: lq.liquidate(lq.Trove(E, E), E, E, mcr=99 * 10**16), "mcr=990000000000000000"),
        (lambda: lq.liquity_mechanism(mcr=E), "mcr=1000000000000000000"),
        (lambda: lq.liquidate(lq.Trove(E, E), E, E, "panic"), "mode='panic'"),  # type: ignore[arg-type]
        (lambda: lq.liquidate(lq.Trove(E, E), E, E, "recovery"), "tcr="),
        (lambda: lq.liquidate(lq.Trove(E, E), E, E, semantics="v2"), "semantics='v2'"),  # type: ignore[arg-type]
        (lambda: lq.max_amount_to_offset(-3), "sp_total=-3"),
    ],
)
def test_bad_input_names_the_value(call: Any, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment.replace("(", r"\(")):
        call()


def test_preset_configuration() -> None:
    assert lq.PRESET.name == "liquity"
    mech = lq.PRESET.mechanism()
    assert isinstance(mech, BackstopPool)
    assert mech.penalty_rate == RATE_SCALE // 10  # MCR 110%: up to 10%
    assert (mech.keeper_reward.tip, mech.keeper_reward.share) == (200 * 10**6, RATE_SCALE // 20)
    assert mech.state.keep == 10**6 and mech.redistribute
    assert lq.liquity_mechanism(semantics="v1").state.keep == 0


def test_preset_mechanism_liquidates_in_an_engine(tmp_path: Path) -> None:
    mech = lq.PRESET.mechanism()
    engine, clock = make_engine(tmp_path, mechanism=mech, instruments=(PERP,))
    led = engine.ledger
    led.open_account(AccountSpec(SYS.backstop_pool, AccountKind.SYSTEM))
    assert isinstance(mech, BackstopPool)
    mech.deposit(engine, BOB, 5_000 * 10**6, "sp-bob")
    engine.step(reports(0, 2000, 2000, 2000, 2000, 2000))
    alice_goes_long(engine, 5, 2000)
    clock.set(60)
    # equity 1,000 − 5·200 = 0 < maintenance: liquidated; the pool offsets the debt
    step = engine.step(reports(60, 1800, 1800, 1800, 1800, 1800), keeper=KEEPER)
    assert [liq.account for liq in step.liquidations] == [ALICE]
    plan = step.liquidations[0].plan
    # keeper: 200 USDC tip + 5% of the 10% penalty on 9,000 notional = 245, capped at it
    assert plan.keeper_reward == 245 * 10**6
    assert plan.bad_debt_covered == 245 * 10**6  # the pool paid the gas compensation
    assert led.positions_of(ALICE) == {} and led.balance_units(ALICE, USDC.id) == 0
    assert mech.state.total == 5_000 * 10**6 - 245 * 10**6
    led.check_invariants()
