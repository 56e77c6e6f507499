"""The Aave presets against anchors.md §3.3 (AAVE-1..5) and §3.4 (AAVE4-1..6), through
``liqeng.presets.aave``'s own vocabulary; bad input; the presets in a real engine."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ALICE
from tests.test_engine import PERP, SYS, USD, make_engine
from tests.test_engine_liquidation import crash_to

from liqeng.errors import InvalidArgument, Refused
from liqeng.liquidation.fixed_fee import FixedFee
from liqeng.liquidation.sizing import WAD, MustNotLeaveDust
from liqeng.presets.aave import (
    PRESET,
    PRESET_V4,
    AaveV4Config,
    AaveVersion,
    Reserve,
    health_factor,
    liquidation_call,
    liquidation_call_v4,
    preset,
)

V30, V33, V37 = AaveVersion.V3_0, AaveVersion.V3_3, AaveVersion.V3_7
RAY = 10**27
E18 = 10**18
USDC_UNIT = 10**6


def weth(price_usd: int) -> Reserve:
    """§3.3 setup: WETH (18 dp), LT 82.5%, bonus 105%, protocol fee 10% of the bonus."""
    return Reserve("WETH", 18, price_usd * 10**8, 8_250, 10_500, 1_000)


def usdc() -> Reserve:
    return Reserve("USDC", 6, 10**8)


# Per version: (debt repaid, collateral to liquidator, protocol fee, health factor,
# residual debt burned into the deficit, debt left on the account, collateral left).
A1 = (8_500 * USDC_UNIT, 4_441_250_000_000_000_000, 21_250_000_000_000_000, 970_588_235_294_117_647)
A1_LEFT = (0, 8_500 * USDC_UNIT, 5_537_500_000_000_000_000)
A2_30 = (17_000 * USDC_UNIT, 9_349_999_999_999_999_999, 44_736_842_105_263_158)
A2_37 = (17_000 * USDC_UNIT, 9_349_999_999_999_999_998, 44_736_842_105_263_158)
A3_30 = (16_190_476_190, 9_952_380_952_380_952_381, 47_619_047_619_047_619, 825 * 10**15)
A3_37 = (16_190_476_191, 9_952_380_952_380_952_380, 47_619_047_619_047_620, 825 * 10**15)

VECTORS = [
    pytest.param(
        "v3",
        {"price": 2000, "expect": {v: (*A1, *A1_LEFT) for v in (V30, V33, V37)}},
        id="AAVE-1",
    ),
    pytest.param(
        "v3",
        {
            "price": 1900,
            "expect": {
                # HF 0.922058823529411765 (half-up wadDiv); 3.5+ computes
                # floor(wadDiv(Σ value·LT, debt) / 1e4) = ...764 (derived)
                V30: (*A2_30, 922_058_823_529_411_765, 0, 0, 605_263_157_894_736_843),
                V33: (*A2_30, 922_058_823_529_411_765, 0, 0, 605_263_157_894_736_843),
                V37: (*A2_37, 922_058_823_529_411_764, 0, 0, 605_263_157_894_736_844),
            },
        },
        id="AAVE-2",
    ),
    pytest.param(
        "v3",
        {
            "price": 1700,
            "expect": {
                # collateral exhausted: v3.0 leaves 809.523810 USDC as debt; 3.3+ burns the
                # residual into reserve.deficit (809.523810 half-up, 809.523809 in 3.7)
                V30: (*A3_30, 0, 809_523_810, 0),
                V33: (*A3_30, 809_523_810, 0, 0),
                V37: (*A3_37, 809_523_809, 0, 0),
            },
        },
        id="AAVE-3",
    ),
    pytest.param("dust", {"price": 1900, "cover": 16_500 * USDC_UNIT}, id="AAVE-4"),
    pytest.param("boundary", {"price": 1900, "debt": 16_500 * USDC_UNIT}, id="AAVE-5"),
    pytest.param(
        "bonus",
        {"config": (8 * 10**17, 5_000, 11_000), "hf": WAD - 1, "bonus": 10_500},
        id="AAVE4-1",
    ),
    pytest.param(
        "bonus",
        {"config": (8 * 10**17, 5_000, 11_000), "hf": 96 * 10**16, "bonus": 10_600},
        id="AAVE4-2",
    ),
    pytest.param(
        "bonus",
        {"config": (9 * 10**17, 4_000, 12_000), "hf": 95 * 10**16, "bonus": 11_400},
        id="AAVE4-3",
    ),
    pytest.param(
        "target", {"price": 10**8, "target": 125 * 10**16, "debt": 9_000 * RAY}, id="AAVE4-4"
    ),
    pytest.param("target", {"price": 2_000 * 10**8, "target": WAD, "debt": 4 * RAY}, id="AAVE4-5"),
    pytest.param(
        "target",
        {"price": 333 * 10**8, "target": WAD, "debt": 24_024_024_024_024_024_024_024_024_025},
        id="AAVE4-6",
    ),
]


@pytest.mark.parametrize(("kind", "case"), VECTORS)
def test_aave_vector(kind: str, case: dict[str, Any]) -> None:
    if kind == "v3":
        for version, expected in case["expect"].items():
            coll, debt = weth(case["price"]), usdc()
            out = liquidation_call((coll, 10 * E18), (debt, 17_000 * USDC_UNIT), version=version)
            got = (
                out.debt_repaid,
                out.collateral_to_liquidator,
                out.protocol_fee,
                out.health_factor,
                out.deficit,
                out.debt_left,
                out.collateral_left,
            )
            assert got == expected, version
            assert debt.deficit == out.deficit  # burned into the reserve's deficit
    elif kind == "dust":
        # repaying 16,500 of 17,000 leaves $500 < $1,000 of debt with collateral left
        for version in (V33, V37):
            with pytest.raises(MustNotLeaveDust, match="debt remnant=50000000000 < min_value"):
                liquidation_call(
                    (weth(1900), 10 * E18),
                    (usdc(), 17_000 * USDC_UNIT),
                    case["cover"],
                    version=version,
                )
        # v3.0 has no dust rule: it goes through
        out = liquidation_call(
            (weth(1900), 10 * E18), (usdc(), 17_000 * USDC_UNIT), case["cover"], version=V30
        )
        assert (out.debt_repaid, out.debt_left) == (case["cover"], 500 * USDC_UNIT)
    elif kind == "boundary":
        # 10 WETH at $1,900 against 16,500 USDC: HF = 15,675 / 16,500 = 0.95 exactly;
        # the 50% close factor needs HF > 0.95, so everything is liquidatable
        for version in (V30, V33, V37):
            at = liquidation_call((weth(1900), 10 * E18), (usdc(), case["debt"]), version=version)
            assert at.health_factor == 95 * 10**16
            assert at.max_liquidatable_debt == at.debt_repaid == case["debt"]
            # one USDC less debt: HF > 0.95 and half of 16,499 USDC
            above = liquidation_call(
                (weth(1900), 10 * E18), (usdc(), case["debt"] - USDC_UNIT), version=version
            )
            assert above.health_factor > 95 * 10**16
            assert above.max_liquidatable_debt == above.debt_repaid == 8_249_500_000
    elif kind == "bonus":
        hf_max, factor, max_bonus = case["config"]
        config = AaveV4Config(WAD, hf_max, factor, 5_000, max_bonus)
        assert config.bonus(case["hf"]) == case["bonus"]
    elif kind == "target":
        # total debt $10,000 (26-decimal value units, ray-scaled), CF 50%, bonus 150%, HF 0.8
        config = AaveV4Config(case["target"], 8 * 10**17, 5_000, 5_000, 15_000)
        needed = config.debt_to_target(10_000 * 10**26 * RAY, case["price"], 15_000, 8 * 10**17)
        assert needed == case["debt"]
    else:  # pragma: no cover
        raise AssertionError(kind)


# --- Aave v3 rules beyond the vectors --------------------------------------------------------


def test_v33_small_position_closes_fully_where_v30_halves() -> None:
    # 0.5 WETH ($1,000) against 850 USDC: HF 0.97 > 0.95, but collateral < $2,000
    coll, debt = (weth(2000), 5 * 10**17), (usdc(), 850 * USDC_UNIT)
    assert health_factor([coll], [debt], V30) == 970_588_235_294_117_647
    assert liquidation_call(coll, debt, version=V30).debt_repaid == 425 * USDC_UNIT
    full = liquidation_call(coll, debt, version=V33)
    assert full.debt_repaid == 850 * USDC_UNIT
    assert full.collateral_seized == 446_250_000_000_000_000  # 850/2000 * 1.05 WETH


def test_v33_half_of_total_debt_across_reserves() -> None:
    # 10 WETH at $2,100 against 17,000 USDC and 1,000 DAI: HF 0.9625 > 0.95, so 3.3+
    # caps the USDC repaid at 50% of the $18,000 *total* debt: 9,000 USDC (v3.0: 8,500)
    dai = Reserve("DAI", 18, 10**8)
    out = liquidation_call(
        (weth(2100), 10 * E18),
        (usdc(), 17_000 * USDC_UNIT),
        other_debt=[(dai, 1_000 * E18)],
        version=V37,
    )
    assert out.health_factor == 962_500_000_000_000_000  # 21,000 * 0.825 / 18,000
    assert out.max_liquidatable_debt == out.debt_repaid == 9_000 * USDC_UNIT
    # floor(floor(9,000 / 2,100 WETH) * 1.05), 3.7 rounding: 1 wei under 4.5 WETH
    assert out.collateral_seized == 4_499_999_999_999_999_999


def test_v33_collateral_exhausted_burns_every_borrowed_reserve() -> None:
    dai = Reserve("DAI", 18, 10**8)
    debt = usdc()
    out = liquidation_call(
        (weth(1700), 10 * E18),
        (debt, 17_000 * USDC_UNIT),
        other_debt=[(dai, 100 * E18)],
        version=V33,
    )
    assert out.debt_repaid == 16_190_476_190  # AAVE-3's amounts
    assert (debt.deficit, dai.deficit) == (809_523_810, 100 * E18)
    assert out.other_deficits == (("DAI", 100 * E18),)
    # other collateral left: no deficit
    link = Reserve("LINK", 18, 10 * 10**8, 7_000, 10_700, 1_000)
    kept = usdc()
    out = liquidation_call(
        (weth(1700), 10 * E18),
        (kept, 17_000 * USDC_UNIT),
        other_collateral=[(link, E18)],
        version=V33,
    )
    assert (out.deficit, kept.deficit, out.debt_left) == (0, 0, 809_523_810)


def test_healthy_account_is_refused() -> None:
    with pytest.raises(Refused, match="aave/health-factor-not-below-threshold"):
        liquidation_call((weth(3000), 10 * E18), (usdc(), 17_000 * USDC_UNIT))
    assert health_factor([(weth(2000), E18)], []) == 2**256 - 1


# --- Aave v4 -------------------------------------------------------------------------------


V4 = AaveV4Config(105 * 10**16, 9 * 10**17, 5_000, 8_000, 11_000, 1_000)


def test_v4_liquidation_restores_the_target_health() -> None:
    # 10 WETH ($20,000, CF 80%) against 17,000 USDC: HF = 16,000 / 17,000 = 0.941176...
    coll, debt = (weth(2000), 10 * E18), (usdc(), 17_000 * USDC_UNIT)
    out = liquidation_call_v4(coll, debt, None, V4)
    assert out.health_factor == 941_176_470_588_235_294
    # bonus = 105% + 5% · (1 - HF) / 0.1, floored to bps: 10794
    assert out.bonus == 10_794
    left_coll = Fraction(10 * E18 - out.collateral_seized, E18) * 2000
    left_debt = Fraction(17_000 * USDC_UNIT - out.debt_repaid, USDC_UNIT)
    after = left_coll * Fraction(8, 10) / left_debt
    assert Fraction(105, 100) <= after < Fraction(105, 100) + Fraction(1, 10**6)
    # the protocol takes 10% of the bonus part of the seized collateral
    bonus_part = Fraction(out.collateral_seized) * Fraction(794, 10_794)
    assert out.protocol_fee == int(bonus_part / 10)
    assert out.deficit == 0


def test_v4_dust_and_deficit() -> None:
    coll, debt = (weth(2000), 10 * E18), (usdc(), 17_000 * USDC_UNIT)
    with pytest.raises(MustNotLeaveDust, match="debt_to_cover=1000000000 < "):
        # 1 WETH at $1,800 (CF 80%) against 1,500 USDC: HF 0.96; covering 1,000 would
        # leave $500 of debt, dust: the whole 1,500 must be covered
        liquidation_call_v4(
            (weth(1800), E18),
            (usdc(), 1_500 * USDC_UNIT),
            1_000 * USDC_UNIT,
            AaveV4Config(4 * WAD, 9 * 10**17, 5_000, 8_000, 11_000),
        )
    # collateral exhausted: 10 WETH at $1,500 ($15,000) cannot cover 17,000 USDC
    out = liquidation_call_v4((weth(1500), 10 * E18), debt, None, V4)
    assert out.collateral_seized == 10 * E18 and out.bonus == 11_000
    assert out.deficit == 17_000 * USDC_UNIT - out.debt_repaid > 0
    assert liquidation_call_v4(coll, debt, 10**6, V4).debt_repaid == 10**6


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"liquidation_bonus": 9_999}, "liquidation_bonus=9999"),
        ({"liquidation_threshold": 10_001}, "liquidation_threshold=10001"),
        ({"liquidation_protocol_fee": 10_001}, "liquidation_protocol_fee=10001"),
        ({"liquidation_threshold": 9_700, "liquidation_bonus": 10_500}, "exceeds 100%"),
        ({"price": 0}, "price=0"),
        ({"price": 1.5}, "price=1.5"),
        ({"decimals": 37}, "decimals=37"),
        ({"deficit": -1}, "deficit=-1"),
    ],
)
def test_bad_reserve(kwargs: dict[str, Any], name: str) -> None:
    args: dict[str, Any] = {"symbol": "WETH", "decimals": 18, "price": 2000 * 10**8}
    with pytest.raises(InvalidArgument, match=name):
        Reserve(**{**args, **kwargs})


def test_bad_liquidation_call_arguments() -> None:
    coll, debt = (weth(1900), 10 * E18), (usdc(), 17_000 * USDC_UNIT)
    with pytest.raises(InvalidArgument, match="WETH amount=-1"):
        liquidation_call((weth(1900), -1), debt)
    with pytest.raises(InvalidArgument, match="USDC amount=-5"):
        liquidation_call(coll, (usdc(), -5))
    with pytest.raises(InvalidArgument, match="debt_to_cover=-1"):
        liquidation_call(coll, debt, -1)
    with pytest.raises(InvalidArgument, match=r"version='3\.7'"):
        liquidation_call(coll, debt, version="3.7")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="collateral"):
        liquidation_call(("WETH", 1), debt)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((WAD - 1, 8 * 10**17, 5_000, 5_000, 11_000), "target_health_factor"),
        ((WAD, WAD, 5_000, 5_000, 11_000), "health_factor_for_max_bonus"),
        ((WAD, 8 * 10**17, 10_001, 5_000, 11_000), "liquidation_bonus_factor"),
        ((WAD, 8 * 10**17, 5_000, 5_000, 9_999), "max_liquidation_bonus=9999"),
        ((WAD, 8 * 10**17, 5_000, 9_500, 10_600), "below 100%"),
        ((WAD, 8 * 10**17, 5_000, 5_000, 11_000, -1), "liquidation_fee=-1"),
    ],
)
def test_bad_v4_config(args: tuple[int, ...], name: str) -> None:
    with pytest.raises(InvalidArgument, match=name):
        AaveV4Config(*args)


def test_bad_preset_parameters() -> None:
    with pytest.raises(InvalidArgument, match="liquidation_bonus=9999"):
        preset(liquidation_bonus=9_999)
    with pytest.raises(InvalidArgument, match="liquidation_protocol_fee=10001"):
        preset(liquidation_protocol_fee=10_001)


# --- the presets in the engine -------------------------------------------------------------


def test_presets_describe_themselves() -> None:
    assert (PRESET.name, PRESET_V4.name) == ("aave", "aave_v4")
    assert PRESET.reproduces == ("AAVE-1", "AAVE-2", "AAVE-3", "AAVE-4", "AAVE-5")
    assert PRESET_V4.reproduces[0] == "AAVE4-1" and len(PRESET_V4.reproduces) == 6
    mech = PRESET.mechanism()
    assert isinstance(mech, FixedFee)
    assert (mech.penalty_rate, mech.keeper_share, mech.protocol_share) == (
        50_000_000,
        900_000_000,
        100_000_000,
    )


def test_aave_preset_liquidates_in_the_engine(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path, mechanism=PRESET.mechanism())
    led = engine.ledger
    fee_sink = led.balance_units(SYS.fee_sink, PERP.quote.id)
    step = crash_to(engine, clock, 1892)
    (liq,) = step.liquidations
    # health 460/473 = 0.9725 > 0.95: half closed; notional 2.5 * 1892 = 4,730;
    # bonus 5% = 236.5: 10% (23.65) to the protocol, 90% (212.85) to the liquidator
    plan = liq.plan
    assert plan.transaction.memo["fraction"] == "1/2"
    assert (plan.notional, plan.penalty) == (4_730 * USD, 236_500_000)
    assert (plan.protocol_fee, plan.keeper_reward, plan.insurance_fee) == (
        23_650_000,
        212_850_000,
        0,
    )
    assert led.balance_units(SYS.fee_sink, PERP.quote.id) - fee_sink == 23_650_000
    assert led.position(ALICE, PERP.id).size == 2_500_000  # type: ignore[union-attr]
    led.check_invariants()


def test_aave_v4_preset_liquidates_in_the_engine(tmp_path: Path) -> None:
    engine, clock = make_engine(tmp_path, mechanism=PRESET_V4.mechanism())
    step = crash_to(engine, clock, 1892)
    (liq,) = step.liquidations
    # H = 460/473 = 0.9725: bonus = 102.5% + 2.5% · (1 - 0.9725)/0.05 -> 10_387 bps
    assert liq.plan.transaction.memo["penalty_rate"] == str(387 * 10**5)
    f = Fraction(liq.plan.transaction.memo["fraction"])
    assert 0 < f < 1  # target-health sizing: a partial close
    assert engine.risk(ALICE).health >= Fraction(105, 100) - Fraction(1, 1000)
    engine.ledger.check_invariants()
