"""The Compound III preset against anchors.md §3.6 (COMET-1..4), through
``liqeng.presets.compound``'s own vocabulary; absorb and the storefront; bad input; the
preset in a real engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ALICE
from tests.test_engine import PERP, SYS, USD, make_engine
from tests.test_engine_liquidation import crash_to

from liqeng.errors import InvalidArgument, Refused
from liqeng.liquidation.fixed_fee import FixedFee
from liqeng.presets.compound import (
    FACTOR_SCALE,
    PRESET,
    CollateralAsset,
    Comet,
    CometAccount,
    preset,
)

E16, E18 = 10**16, 10**18
USDC_UNIT = 10**6


def comp(price_usd: int, lf: int) -> CollateralAsset:
    """COMP (18 dp), mainnet's 0.65 / 0.70 collateral factors, liquidation factor ``lf``."""
    return CollateralAsset("COMP", 18, price_usd * 10**8, 65 * E16, 70 * E16, lf)


def comet(sfpf: int, *assets: CollateralAsset, **kw: Any) -> Comet:
    """A USDC (6 dp, $1) market."""
    return Comet(
        10**8, 6, sfpf, kw.pop("target", 5_000_000 * USDC_UNIT), {a.symbol: a for a in assets}, **kw
    )


VECTORS = [
    # SFPF, LF, COMP $, base USDC (units), expected COMP (units), discount factor
    pytest.param(50 * E16, 60 * E16, 200, 200 * USDC_UNIT, 125 * E16, 20 * E16, id="COMET-1"),
    pytest.param(0, 60 * E16, 200, 200 * USDC_UNIT, E18, 0, id="COMET-2"),
    pytest.param(50 * E16, 80 * E16, 9, 810 * USDC_UNIT, 100 * E18, 10 * E16, id="COMET-3"),
    pytest.param(
        80 * E16, 75 * E16, 200, 10**15 * USDC_UNIT, 625 * 10**10 * E18, 20 * E16, id="COMET-4"
    ),
]


@pytest.mark.parametrize(("sfpf", "lf", "price", "base", "expected", "discount"), VECTORS)
def test_comet_vector(
    sfpf: int, lf: int, price: int, base: int, expected: int, discount: int
) -> None:
    market = comet(sfpf, comp(price, lf))
    # discount = SFPF · (1 - LF); the quote is base value / discounted price
    assert market.discount_factor("COMP") == discount
    assert market.quote_collateral("COMP", base) == expected
    # and buy_collateral sells exactly the quote while reserves are below target
    market.collateral_reserves["COMP"] = expected
    assert market.buy_collateral("COMP", expected, base) == expected
    assert (market.reserves, market.collateral_reserves["COMP"]) == (base, 0)


# --- absorb --------------------------------------------------------------------------------


def weth(price_usd: int) -> CollateralAsset:
    """Mainnet cUSDCv3 WETH: borrow CF 0.825, liquidate CF 0.895, liquidation factor 0.95."""
    return CollateralAsset("WETH", 18, price_usd * 10**8, 825 * 10**15, 895 * 10**15, 95 * E16)


@pytest.mark.parametrize(
    ("price", "debt", "new_balance", "repaid", "supplied", "paid", "shortfall"),
    [
        # 1 WETH at $2,000 credited 1,900 against 1,900 owed: exactly repaid
        (2000, 1_900, 0, 1_900, 0, 1_900, 0),
        # at $1,200 credited 1,140 against 1,100: the 40 excess becomes supply
        (1200, 1_100, 40, 1_100, 40, 1_140, 0),
        # at $1,000 credited 950 against 1,100: reserves pay the 150 shortfall too
        (1000, 1_100, 0, 1_100, 0, 1_100, 150),
    ],
)
def test_absorb(
    price: int, debt: int, new_balance: int, repaid: int, supplied: int, paid: int, shortfall: int
) -> None:
    market = comet(50 * E16, weth(price), reserves=2_000 * USDC_UNIT)
    account = CometAccount(-debt * USDC_UNIT, {"WETH": E18})
    assert market.is_liquidatable(account)
    out = market.absorb(account)
    assert out.seized == (("WETH", E18, price * 10**8),)
    assert out.delta_value == price * 95 * 10**6  # price · 0.95 in 8-decimal USD
    assert (out.new_balance, out.debt_repaid, out.supply_created) == (
        new_balance * USDC_UNIT,
        repaid * USDC_UNIT,
        supplied * USDC_UNIT,
    )
    assert (out.base_paid_out, out.shortfall) == (paid * USDC_UNIT, shortfall * USDC_UNIT)
    assert out.value_of_base_paid_out == paid * 10**8
    # the reserves pay; the collateral is the protocol's now
    assert market.reserves == (2_000 - paid) * USDC_UNIT
    assert market.collateral_reserves == {"WETH": E18}
    assert (account.base_balance, account.collateral) == (new_balance * USDC_UNIT, {"WETH": 0})


def test_absorb_then_storefront_sale() -> None:
    # after the $1,200 absorb the reserves (2,000 - 1,140 = 860) are below target: WETH is
    # for sale at 1,200 · (1 - 0.5 · 0.05) = 1,170
    market = comet(50 * E16, weth(1200), reserves=2_000 * USDC_UNIT, target=1_000 * USDC_UNIT)
    market.absorb(CometAccount(-1_100 * USDC_UNIT, {"WETH": E18}))
    assert market.quote_collateral("WETH", 1_170 * USDC_UNIT) == E18
    with pytest.raises(Refused, match="comet/too-much-slippage"):
        market.buy_collateral("WETH", E18 + 1, 1_170 * USDC_UNIT)
    with pytest.raises(Refused, match="comet/insufficient-reserves"):
        market.buy_collateral("WETH", 0, 1_171 * USDC_UNIT)
    assert market.buy_collateral("WETH", E18, 1_170 * USDC_UNIT) == E18
    # reserves 860 + 1,170 = 2,030 >= target 1,000: no more sales
    assert market.reserves == 2_030 * USDC_UNIT
    market.collateral_reserves["WETH"] = E18
    with pytest.raises(Refused, match="comet/not-for-sale: reserves=2030000000 >= target"):
        market.buy_collateral("WETH", 0, USDC_UNIT)


def test_not_liquidatable_is_refused() -> None:
    market = comet(50 * E16, weth(2000))
    # 1 WETH at $2,000 · 0.895 = 1,790 of liquidity against 1,000 owed
    healthy = CometAccount(-1_000 * USDC_UNIT, {"WETH": E18})
    assert market.liquidity(healthy) == 790 * 10**8
    with pytest.raises(Refused, match="comet/not-liquidatable"):
        market.absorb(healthy)
    assert healthy.collateral == {"WETH": E18}
    assert not market.is_liquidatable(CometAccount(5, {"WETH": 0}))


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"liquidation_factor": FACTOR_SCALE + 1}, "liquidation_factor=1000000000000000001"),
        ({"liquidation_factor": -1}, "liquidation_factor=-1"),
        ({"liquidate_collateral_factor": FACTOR_SCALE}, "LiquidateCFTooLarge"),
        ({"borrow_collateral_factor": 70 * E16}, "BorrowCFTooLarge"),
        ({"price": 0}, "price=0"),
        ({"decimals": 37}, "decimals=37"),
    ],
)
def test_bad_collateral_asset(kwargs: dict[str, Any], name: str) -> None:
    args: dict[str, Any] = {
        "symbol": "COMP",
        "decimals": 18,
        "price": 200 * 10**8,
        "borrow_collateral_factor": 65 * E16,
        "liquidate_collateral_factor": 70 * E16,
        "liquidation_factor": 93 * E16,
    }
    with pytest.raises(InvalidArgument, match=name):
        CollateralAsset(**{**args, **kwargs})


def test_bad_comet_input() -> None:
    with pytest.raises(InvalidArgument, match="store_front_price_factor=1000000000000000001"):
        comet(FACTOR_SCALE + 1, weth(2000))
    with pytest.raises(InvalidArgument, match="target_reserves=-1"):
        comet(0, weth(2000), target=-1)
    market = comet(50 * E16, weth(2000))
    with pytest.raises(InvalidArgument, match="base_amount=-1"):
        market.quote_collateral("WETH", -1)
    with pytest.raises(InvalidArgument, match="min_amount=-1"):
        market.buy_collateral("WETH", -1, 1)
    with pytest.raises(InvalidArgument, match="asset='WBTC'"):
        market.quote_collateral("WBTC", 1)
    with pytest.raises(InvalidArgument, match=r"collateral\['WETH'\]=-1"):
        CometAccount(-1, {"WETH": -1})
    with pytest.raises(InvalidArgument, match="liquidation_factor=2000000000000000000"):
        preset(liquidation_factor=2 * FACTOR_SCALE)


# --- the preset in the engine --------------------------------------------------------------


def test_preset_describes_itself() -> None:
    assert PRESET.name == "compound"
    assert PRESET.reproduces == ("COMET-1", "COMET-2", "COMET-3", "COMET-4")
    mech = PRESET.mechanism()
    assert isinstance(mech, FixedFee)
    # 1 - LF = 5%, all of it to the insurance fund (Comet's reserves), none to the keeper
    assert (mech.penalty_rate, mech.keeper_share, mech.protocol_share) == (50_000_000, 0, 0)
    assert preset(93 * E16).mechanism().penalty_rate == 70_000_000  # type: ignore[attr-defined]


def test_compound_preset_liquidates_in_the_engine(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path, mechanism=PRESET.mechanism())
    led = engine.ledger
    fund = led.balance_units(SYS.insurance_fund, PERP.quote.id)
    step = crash_to(engine, clock, 1892)
    (liq,) = step.liquidations
    # absorb closes everything: notional 5 * 1892 = 9,460; 5% = 473 but only 460 is left
    plan = liq.plan
    assert plan.transaction.memo["fraction"] == "1"
    assert (plan.notional, plan.penalty, plan.keeper_reward) == (9_460 * USD, 460 * USD, 0)
    assert plan.insurance_fee == 460 * USD
    assert led.balance_units(SYS.insurance_fund, PERP.quote.id) - fund == 460 * USD
    assert led.positions_of(ALICE) == {}
    led.check_invariants()


def test_compound_preset_reserves_pay_bad_debt(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path, mechanism=PRESET.mechanism())
    led = engine.ledger
    fund = led.balance_units(SYS.insurance_fund, PERP.quote.id)
    # at 1,750 equity is 1000 + 5·(-250) = -250: the reserves (insurance fund) pay it
    (liq,) = crash_to(engine, clock, 1750).liquidations
    assert (liq.plan.penalty, liq.plan.bad_debt_covered) == (0, 250 * USD)
    assert fund - led.balance_units(SYS.insurance_fund, PERP.quote.id) == 250 * USD
    led.check_invariants()
