"""Keeper reward: tip + share of the penalty + indexed gas, capped; reserve; dust check."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from liqeng.errors import InvalidArgument
from liqeng.liquidation.keeper import KeeperReward, check_config
from liqeng.liquidation.penalty import AdaptivePenalty, HealthTiers, VolatilityScaling
from liqeng.units import RATE_SCALE, mul_div_down, mul_div_up

USDC = 10**6
DAI = 10**18
GWEI = 10**9
ETH_PRICE = 2_000 * USDC  # quote units (USDC, 6 dp) per whole ETH

# $5 tip, 10% of the penalty, 500k gas at a 50% premium, capped at $40
BOT = KeeperReward(
    tip=5 * USDC, share=RATE_SCALE // 10, gas_units=500_000, gas_premium=RATE_SCALE // 2
)


def test_reward_arithmetic() -> None:
    # gas: 500,000 gas × 20 gwei = 0.01 ETH × $2,000 = $20; × 1.5 = $30
    # share: 10% × $100 penalty = $10;  total 5 + 10 + 30 = $45
    assert BOT.reward(100 * USDC, 20 * GWEI, ETH_PRICE) == 45 * USDC
    capped = KeeperReward(5 * USDC, RATE_SCALE // 10, 500_000, RATE_SCALE // 2, cap=40 * USDC)
    assert capped.reward(100 * USDC, 20 * GWEI, ETH_PRICE) == 40 * USDC
    # no gas price (or a free gas token): tip + share only
    assert BOT.reward(100 * USDC, 0, ETH_PRICE) == 15 * USDC
    assert BOT.reward(0, 0, 0) == 5 * USDC


def test_reward_rounds_down_and_reserve_rounds_up() -> None:
    k = KeeperReward(tip=0, share=RATE_SCALE // 10)
    # 10% of a 15-unit penalty is 1.5 units: the keeper gets 1, the reserve holds 2
    assert k.reward(15, 0, 0) == 1
    assert k.reserved_requirement(15, 0, 0) == 2
    # gas: 1 gas × 1 wei × 1 quote unit per whole (1e18 wei) token = 1e-18 unit:
    # 0 paid, 1 reserved
    g = KeeperReward(tip=0, share=0, gas_units=1)
    assert g.reward(0, 1, 1) == 0
    assert g.reserved_requirement(0, 1, 1) == 1


def test_reserved_requirement_for_several_calls() -> None:
    # three calls at max gas 50 gwei: 3 × (5 + 0.025 ETH·$2,000·1.5 = 75) + 10% × $300 = $270
    assert BOT.reserved_requirement(300 * USDC, 50 * GWEI, ETH_PRICE, calls=3) == 270 * USDC
    # it covers three partial liquidations splitting the $300 penalty 100/150/50
    paid = sum(BOT.reward(p * USDC, 50 * GWEI, ETH_PRICE) for p in (100, 150, 50))
    assert paid == 270 * USDC
    capped = KeeperReward(5 * USDC, 0, cap=4 * USDC)
    assert capped.reserved_requirement(0, 0, 0, calls=3) == 12 * USDC
    with pytest.raises(InvalidArgument, match="calls=0"):
        BOT.reserved_requirement(0, 0, 0, calls=0)


def test_maker_clip_setup() -> None:
    # anchors.md §3.2 (dss src/test/clip.t.sol): chop 1.1, dust 20 DAI, tip 100 DAI, chip 2% of tab.
    # Our penalty is tab - due = 10% of due, so chip·tab = chip·chop/(chop - 1)·penalty:
    # share = 0.02 × 1.1 / 0.1 = 22% of the penalty.
    chop_penalty = RATE_SCALE // 10
    share = Fraction(2, 100) * Fraction(11, 10) / Fraction(1, 10)
    assert share == Fraction(22, 100)
    maker = KeeperReward(tip=100 * DAI, share=220_000_000)
    # kick of the 100-DAI vault: tab 110 DAI, penalty 10 DAI -> coin = 100 + 0.02 × 110 = 102.2 DAI
    # (clip.t.sol: vat.dai(bob) == rad(1000) + rad(100) + tab * 0.02)
    assert maker.reward(10 * DAI, 0, 0) == 102 * DAI + DAI // 5
    # chost = dust·chop = 20 × 1.1 = 22 DAI: the tab of a dust-sized vault
    dust = 20 * DAI
    chost = dust + mul_div_up(dust, chop_penalty, RATE_SCALE)
    assert chost == 22 * DAI
    # at the dust size the penalty is 2 DAI; the reward 100 + 0.22 × 2 = 100.44 DAI: refused
    with pytest.raises(InvalidArgument) as err:
        check_config(maker, chop_penalty, dust, 0, 0)
    msg = str(err.value)
    assert f"penalty_rate={chop_penalty}" in msg
    assert f"dust_notional={dust}" in msg
    assert f"= {2 * DAI} < reward={100 * DAI + 44 * DAI // 100}" in msg
    assert f"tip={100 * DAI}" in msg


def test_maker_like_live_parameters() -> None:
    # illustrative ETH-B-like set (anchors.md §2.1): chop 13%, tip 300 DAI, chip 0.1% of tab
    # share = 0.001 × 1.13 / 0.13 = 0.869…% of the penalty (floored)
    share = mul_div_down(RATE_SCALE // 1000, 113, 13)
    assert share == 8_692_307
    k = KeeperReward(tip=300 * DAI, share=share)
    rate = 130_000_000
    # dust 7,500 DAI: penalty 975 DAI >= 300 + 0.869% × 975 ≈ 308.5 DAI: accepted
    check_config(k, rate, 7_500 * DAI, 0, 0)
    # dust 2,000 DAI: penalty 260 DAI < 300 + ≈2.26 DAI: refused
    with pytest.raises(InvalidArgument, match="penalty_rate=130000000"):
        check_config(k, rate, 2_000 * DAI, 0, 0)


def test_check_config_uses_max_gas() -> None:
    # 2% penalty on a $1,000 dust = $20; tip 5 + 10% × 20 = $7 leaves $13 for gas·1.5
    rate, dust = 20_000_000, 1_000 * USDC
    # 8 gwei: 500k gas = 0.004 ETH = $8 × 1.5 = $12 -> 5 + 2 + 12 = $19 <= $20: accepted
    check_config(BOT, rate, dust, 8 * GWEI, ETH_PRICE)
    # 10 gwei: $10 × 1.5 = $15 -> $22 > $20: refused, naming the gas price
    with pytest.raises(InvalidArgument, match=r"= 20000000 < reward=22000000.*max_gas_price="):
        check_config(BOT, rate, dust, 10 * GWEI, ETH_PRICE)
    # a cap makes any gas price fit
    capped = KeeperReward(5 * USDC, RATE_SCALE // 10, 500_000, RATE_SCALE // 2, cap=20 * USDC)
    check_config(capped, rate, dust, 1_000 * GWEI, ETH_PRICE)


def test_check_config_with_adaptive_min_rate() -> None:
    # an adaptive penalty that can fall to 1% in calm markets must be checked at 1%
    # (tiers 10% at health 1/2 down to 2% at 1; vol factor down to 1/2 -> 1%)
    tiers = HealthTiers(((Fraction(1, 2), 100_000_000), (Fraction(1), 20_000_000)))
    adaptive = AdaptivePenalty(
        tiers, VolatilityScaling(0.6, Fraction(1), Fraction(1, 2), Fraction(3)), 0, RATE_SCALE
    )
    assert adaptive.min_rate == 10_000_000
    tip_11 = KeeperReward(tip=11 * USDC, share=0)
    # $1,000 dust: $20 at the 2% tier passes, but the calm 1% gives $10 < $11: refused
    check_config(tip_11, 20_000_000, 1_000 * USDC, 0, 0)
    with pytest.raises(InvalidArgument, match="= 10000000 < reward=11000000"):
        check_config(tip_11, adaptive.min_rate, 1_000 * USDC, 0, 0)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(tip=-1), "tip=-1"),
        (dict(share=RATE_SCALE + 1), "share=1000000001"),
        (dict(gas_units=-5), "gas_units=-5"),
        (dict(gas_premium=-1), "gas_premium=-1"),
        (dict(cap=-1), "cap=-1"),
        (dict(tip=1.5), "tip=1.5"),
        (dict(gas_decimals=37), "gas_decimals=37"),
    ],
)
def test_bad_parameters_raise_naming_the_value(kwargs: dict[str, object], needle: str) -> None:
    base: dict[str, object] = dict(tip=0, share=0)
    with pytest.raises(InvalidArgument, match=needle):
        KeeperReward(**{**base, **kwargs})  # type: ignore[arg-type]


def test_bad_inputs_raise() -> None:
    with pytest.raises(InvalidArgument, match=r"gas_price=1\.0"):
        BOT.reward(0, 1.0, ETH_PRICE)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="penalty=-1"):
        BOT.reward(-1, 0, 0)
    with pytest.raises(InvalidArgument, match="quote_per_gas=-1"):
        BOT.reward(0, 0, -1)
    with pytest.raises(InvalidArgument, match="reward="):
        check_config("k", 1, 1, 0, 0)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="dust_notional=-1"):
        check_config(BOT, 1, -1, 0, 0)


# --- properties ----------------------------------------------------------------------------

amounts = st.integers(0, 10**24)
gas_prices = st.integers(0, 10**13)


@st.composite
def rewards(draw: st.DrawFn) -> KeeperReward:
    return KeeperReward(
        tip=draw(st.integers(0, 10**21)),
        share=draw(st.integers(0, RATE_SCALE)),
        gas_units=draw(st.integers(0, 10**7)),
        gas_premium=draw(st.integers(0, 3 * RATE_SCALE)),
        cap=draw(st.integers(0, 10**24)),
        gas_decimals=draw(st.sampled_from((6, 9, 18))),
    )


@given(rewards(), amounts, gas_prices, gas_prices, amounts)
def test_reward_bounded_and_monotone_in_gas(
    k: KeeperReward, penalty: int, g1: int, g2: int, q: int
) -> None:
    lo, hi = sorted((g1, g2))
    a, b = k.reward(penalty, lo, q), k.reward(penalty, hi, q)
    assert 0 <= a <= b <= k.cap
    # below the cap the reward is the formula, at or above it the cap
    num = (
        k.tip * RATE_SCALE * 10**k.gas_decimals
        + k.share * penalty * 10**k.gas_decimals
        + k.gas_units * hi * q * (RATE_SCALE + k.gas_premium)
    )
    uncapped = num // (RATE_SCALE * 10**k.gas_decimals)
    assert b == min(k.cap, uncapped)


@given(rewards(), amounts, amounts, gas_prices, amounts)
def test_reward_monotone_in_penalty(k: KeeperReward, p1: int, p2: int, g: int, q: int) -> None:
    lo, hi = sorted((p1, p2))
    assert k.reward(lo, g, q) <= k.reward(hi, g, q)


@given(rewards(), st.lists(amounts, min_size=1, max_size=5), gas_prices, gas_prices, amounts)
def test_reserve_covers_every_call(
    k: KeeperReward, parts: list[int], g: int, g_max: int, q: int
) -> None:
    g, g_max = sorted((g, g_max))
    reserved = k.reserved_requirement(sum(parts), g_max, q, calls=len(parts))
    assert sum(k.reward(p, g, q) for p in parts) <= reserved


@given(
    rewards(),
    st.integers(0, RATE_SCALE),
    st.integers(0, 10**22),
    st.integers(0, 10**22),
    gas_prices,
    gas_prices,
    st.integers(0, 10**10),
)
def test_config_that_passes_at_dust_pays_at_every_larger_size(
    k: KeeperReward, rate: int, dust: int, extra: int, g: int, g_max: int, q: int
) -> None:
    g, g_max = sorted((g, g_max))
    try:
        check_config(k, rate, dust, g_max, q)
    except InvalidArgument:
        return  # a refused config promises nothing
    event("accepted")
    penalty = mul_div_down(dust + extra, rate, RATE_SCALE)
    assert k.reward(penalty, g, q) <= k.reserved_requirement(penalty, g_max, q) <= penalty
