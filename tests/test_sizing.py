"""Eligibility and sizing against Aave v3 (AAVE-*) and v4 (AAVE4-*) vectors, plus the
generic target-health close, dust and the self-liquidation window."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from liqeng.errors import InvalidArgument
from liqeng.liquidation.sizing import (
    AAVE_V3_CLOSE_FACTOR,
    AAVE_V3_MIN_LEFTOVER_BASE,
    WAD,
    AaveAmounts,
    AaveRounding,
    CloseFactorBands,
    DustMode,
    DustRule,
    MustNotLeaveDust,
    aave_v3_liquidation_amounts,
    close_factor_by_health,
    debt_to_target_health,
    liquidation_bonus,
    self_liquidation_window,
    target_health_close,
)
from liqeng.units import RATE_SCALE

RAY = 10**27
V30, V37 = AaveRounding.V3_0, AaveRounding.V3_7
REFUSE_DUST = DustRule(AAVE_V3_MIN_LEFTOVER_BASE, DustMode.REFUSE)

# anchors.md §3.3 setup: 10 WETH (18 dp) collateral, bonus 105%, fee 10% of the bonus;
# 17,000 USDC (6 dp) debt at $1 (1e8).
SETUP: dict[str, Any] = dict(
    collateral_amount=10 * 10**18,
    collateral_decimals=18,
    debt_amount=17_000 * 10**6,
    debt_price=10**8,
    debt_decimals=6,
    liquidation_bonus_bps=10_500,
    protocol_fee_bps=1_000,
)


def _aave(price: int, cf_bps: int, rounding: AaveRounding, **kw: Any) -> AaveAmounts:
    return aave_v3_liquidation_amounts(
        collateral_price=price * 10**8, close_factor_bps=cf_bps, rounding=rounding, **SETUP, **kw
    )


# --- close factor -------------------------------------------------------------------------


def test_aave_1_health_band_gives_50_percent() -> None:
    # HF = 20,000 * 0.825 / 17,000 = 0.970588... > 0.95
    assert close_factor_by_health(Fraction(20_000 * 825, 17_000_000), AAVE_V3_CLOSE_FACTOR) == (
        Fraction(1, 2)
    )


def test_aave_5_boundary_095_is_100_percent() -> None:
    # the 50% band needs HF > 0.95 strictly
    assert close_factor_by_health(Fraction(95, 100), AAVE_V3_CLOSE_FACTOR) == 1
    assert close_factor_by_health(Fraction(95, 100) + Fraction(1, WAD), AAVE_V3_CLOSE_FACTOR) == (
        Fraction(1, 2)
    )


def test_fixed_close_factor_and_several_bands() -> None:
    assert close_factor_by_health(Fraction(1, 10), CloseFactorBands(Fraction(1, 4))) == (
        Fraction(1, 4)
    )
    bands = CloseFactorBands(
        Fraction(1, 4), ((Fraction(9, 10), Fraction(1)), (Fraction(1), Fraction(1, 2)))
    )
    got = [close_factor_by_health(Fraction(h, 100), bands) for h in (50, 90, 95, 100, 101)]
    assert got == [1, 1, Fraction(1, 2), Fraction(1, 2), Fraction(1, 4)]


@pytest.mark.parametrize(
    ("default", "bands", "name"),
    [
        (Fraction(0), (), "default"),
        (Fraction(3, 2), (), "default"),
        (Fraction(1, 2), ((Fraction(1), Fraction(1, 4)),), "close_factor=1/4"),
        (Fraction(1, 2), ((Fraction(1), Fraction(2)),), "close_factor=2"),
        (Fraction(1, 2), ((1, Fraction(1)), (1, Fraction(1))), "repeat"),
        (0.5, (), "default"),
    ],
)
def test_bad_close_factor_bands(default: Any, bands: Any, name: str) -> None:
    with pytest.raises(InvalidArgument, match=name):
        CloseFactorBands(default, bands)


BANDS = st.lists(
    st.tuples(st.fractions(0, 2), st.fractions(Fraction(1, 100), 1)),
    max_size=4,
    unique_by=lambda b: b[0],
)


@given(bands=BANDS, h1=st.fractions(-1, 3), h2=st.fractions(-1, 3))
def test_close_factor_monotone_in_health(
    bands: list[tuple[Fraction, Fraction]], h1: Fraction, h2: Fraction
) -> None:
    # sort ceilings ascending and make close factors non-increasing with the ceiling
    ceilings = sorted(h for h, _ in bands)
    factors = sorted((cf for _, cf in bands), reverse=True)
    cfg = CloseFactorBands(Fraction(1, 100), tuple(zip(ceilings, factors, strict=True)))
    lo, hi = sorted((h1, h2))
    assert close_factor_by_health(hi, cfg) <= close_factor_by_health(lo, cfg)


# --- Aave v3 amounts ----------------------------------------------------------------------


@pytest.mark.parametrize("rounding", [V30, V37])
def test_aave_1_half_close(rounding: AaveRounding) -> None:
    # repay 8,500 USDC -> base 8500/2000 = 4.25 WETH; *1.05 = 4.4625 seized;
    # bonus 0.2125, fee 10% = 0.02125; liquidator 4.44125 (exact in both versions)
    out = _aave(2000, 5_000, rounding)
    assert out == AaveAmounts(8_500 * 10**6, 4_441_250_000_000_000_000, 21_250_000_000_000_000)


@pytest.mark.parametrize(
    ("rounding", "to_liquidator"),
    [(V30, 9_349_999_999_999_999_999), (V37, 9_349_999_999_999_999_998)],
)
def test_aave_2_full_close(rounding: AaveRounding, to_liquidator: int) -> None:
    # base = floor(17000/1900 WETH) = 8947368421052631578; *1.05 = ...631569000/1e4:
    # v3.0 half-up 9394736842105263157, v3.7 floor ...156; bonus 0.447368421052631579,
    # fee = 0.0447368421052631579 -> 44736842105263158 (half-up and ceil agree)
    out = _aave(1900, 10_000, rounding)
    assert out == AaveAmounts(17_000 * 10**6, to_liquidator, 44_736_842_105_263_158)
    if rounding is V30:  # collateral left 0.605263157894736843 WETH
        assert 10 * 10**18 - out.collateral_seized == 605_263_157_894_736_843


@pytest.mark.parametrize(
    ("rounding", "debt", "to_liquidator", "fee"),
    [
        (V30, 16_190_476_190, 9_952_380_952_380_952_381, 47_619_047_619_047_619),
        (V37, 16_190_476_191, 9_952_380_952_380_952_380, 47_619_047_619_047_620),
    ],
)
def test_aave_3_collateral_exhausted(
    rounding: AaveRounding, debt: int, to_liquidator: int, fee: int
) -> None:
    # 10 WETH * 1700 = 17,000 USDC of collateral; / 1.05 = 16,190.476190476... USDC repaid
    # (v3.0 half-up, v3.7 ceil); bonus 10 - 10/1.05 = 0.476190476190476190(4..5), fee 10%
    out = _aave(1700, 10_000, rounding)
    assert out == AaveAmounts(debt, to_liquidator, fee)
    assert out.collateral_seized == 10 * 10**18
    # residual debt (v3.3+ deficit): 809.523810 / 809.523809 USDC
    assert 17_000 * 10**6 - out.debt_repaid == {V30: 809_523_810, V37: 809_523_809}[rounding]


@pytest.mark.parametrize("rounding", [V30, V37])
def test_aave_4_dust_revert(rounding: AaveRounding) -> None:
    # cover 16,500 of 17,000: leftover debt $500 < $1,000 and collateral is left -> revert
    with pytest.raises(MustNotLeaveDust, match="debt remnant=50000000000 < min_value"):
        _aave(1900, 10_000, rounding, debt_to_cover=16_500 * 10**6, dust=REFUSE_DUST)
    # without the rule (v3.0 semantics) it goes through
    assert _aave(1900, 10_000, rounding, debt_to_cover=16_500 * 10**6).debt_repaid == 16_500 * 10**6


def test_aave_4_dust_take_all_rounds_up_to_everything() -> None:
    # TAKE_ALL: the take becomes all 17,000 USDC, i.e. AAVE-2
    take_all = DustRule(AAVE_V3_MIN_LEFTOVER_BASE)
    out = _aave(1900, 10_000, V37, debt_to_cover=16_500 * 10**6, dust=take_all)
    assert out == _aave(1900, 10_000, V37)


def test_aave_dust_rule_passes_large_leftovers_and_checks_collateral() -> None:
    # AAVE-1 leaves $8,500 debt and 5.5375 WETH: no dust
    assert _aave(2000, 5_000, V37, dust=REFUSE_DUST) == _aave(2000, 5_000, V37)
    # collateral dust: 0.5 WETH at $2000 covering 950 USDC of a 17,000 debt leaves
    # 0.5 - 950/2000*1.05 = 0.00125 WETH = $2.5 of collateral
    with pytest.raises(MustNotLeaveDust, match="collateral remnant"):
        aave_v3_liquidation_amounts(
            **{**SETUP, "collateral_amount": 5 * 10**17},
            collateral_price=2000 * 10**8,
            close_factor_bps=10_000,
            debt_to_cover=950 * 10**6,
            dust=REFUSE_DUST,
        )


def test_aave_without_protocol_fee() -> None:
    out = aave_v3_liquidation_amounts(
        **{**SETUP, "protocol_fee_bps": 0}, collateral_price=2000 * 10**8, close_factor_bps=5_000
    )
    assert out == AaveAmounts(8_500 * 10**6, 4_462_500_000_000_000_000, 0)


@pytest.mark.parametrize(
    ("override", "name"),
    [
        ({"liquidation_bonus_bps": 9_999}, "liquidation_bonus_bps"),
        ({"protocol_fee_bps": 10_001}, "protocol_fee_bps"),
        ({"close_factor_bps": 0}, "close_factor_bps"),
        ({"collateral_price": 0}, "collateral_price"),
        ({"debt_amount": -1}, "debt_amount"),
        ({"debt_decimals": 37}, "debt_decimals"),
        ({"rounding": "v3.7"}, "rounding"),
    ],
)
def test_aave_bad_arguments(override: dict[str, Any], name: str) -> None:
    args: dict[str, Any] = {**SETUP, "collateral_price": 2000 * 10**8, "close_factor_bps": 5_000}
    with pytest.raises(InvalidArgument, match=name):
        aave_v3_liquidation_amounts(**{**args, **override})


@given(
    price=st.integers(100, 5_000),
    cover=st.integers(1, 17_000 * 10**6),
    rounding=st.sampled_from([V30, V37]),
)
def test_aave_seized_within_collateral_and_v37_never_favours_liquidator(
    price: int, cover: int, rounding: AaveRounding
) -> None:
    out = _aave(price, 10_000, rounding, debt_to_cover=cover)
    assert 0 <= out.protocol_fee <= out.collateral_seized <= 10 * 10**18
    assert out.debt_repaid <= cover
    v30, v37 = (
        _aave(price, 10_000, V30, debt_to_cover=cover),
        _aave(price, 10_000, V37, debt_to_cover=cover),
    )
    assert v37.collateral_to_liquidator <= v30.collateral_to_liquidator
    assert v37.debt_repaid >= v30.debt_repaid


# --- Aave v4 ------------------------------------------------------------------------------


def test_aave4_1_min_bonus_due_to_rounding() -> None:
    # min = 100% + 10% * 50% = 105%; (110-105)% * 1e-18 / 0.2 floors to 0
    assert liquidation_bonus(WAD - 1, 8 * 10**17, 5_000, 11_000) == 10_500


def test_aave4_2_partial_bonus() -> None:
    # 105% + 5% * (1 - 0.96) / (1 - 0.8) = 105% + 1% = 106%
    assert liquidation_bonus(96 * 10**16, 8 * 10**17, 5_000, 11_000) == 10_600


def test_aave4_3_intermediate_bonus() -> None:
    # min = 100% + 20% * 40% = 108%; 108% + 12% * 0.05/0.1 = 114%
    assert liquidation_bonus(95 * 10**16, 9 * 10**17, 4_000, 12_000) == 11_400


def test_aave4_bonus_is_max_at_or_below_threshold() -> None:
    assert liquidation_bonus(8 * 10**17, 8 * 10**17, 5_000, 11_000) == 11_000
    assert liquidation_bonus(0, 8 * 10**17, 5_000, 11_000) == 11_000
    with pytest.raises(InvalidArgument, match="hf_for_max_bonus"):
        liquidation_bonus(WAD, WAD, 5_000, 11_000)


@given(h1=st.integers(0, WAD), h2=st.integers(0, WAD))
def test_aave4_bonus_non_increasing_in_health(h1: int, h2: int) -> None:
    lo, hi = sorted((h1, h2))
    b = [liquidation_bonus(h, 85 * 10**16, 3_000, 11_500) for h in (lo, hi)]
    assert 10_000 + 450 <= b[1] <= b[0] <= 11_500  # min bonus 100% + 15% * 30%


TOTAL_DEBT_RAY = 10_000 * 10**26 * RAY  # $10,000 in 26-decimal value units, ray-scaled


@pytest.mark.parametrize("decimals", [0, 6, 18])
def test_aave4_4_debt_to_target_unit_price(decimals: int) -> None:
    # penalty = 1.5 * 0.5 = 0.75; $10,000 * (1.25 - 0.8) / (1.25 - 0.75) / $1 = 9,000
    got = debt_to_target_health(
        TOTAL_DEBT_RAY, 10**8, 5_000, 15_000, 8 * 10**17, 125 * 10**16, decimals
    )
    assert got == 9_000 * 10**decimals * RAY


@pytest.mark.parametrize("decimals", [0, 6, 18])
def test_aave4_5_debt_to_target_no_precision_loss(decimals: int) -> None:
    # $10,000 * (1 - 0.8) / (1 - 0.75) / $2,000 = 4
    got = debt_to_target_health(
        TOTAL_DEBT_RAY, 2_000 * 10**8, 5_000, 15_000, 8 * 10**17, WAD, decimals
    )
    assert got == 4 * 10**decimals * RAY


@pytest.mark.parametrize(
    ("decimals", "expected"),
    [
        (0, 24_024_024_024_024_024_024_024_024_025),
        (6, 24_024_024_024_024_024_024_024_024_024_024_025),
        (18, 24_024_024_024_024_024_024_024_024_024_024_024_024_024_024_025),
    ],
)
def test_aave4_6_debt_to_target_rounds_up(decimals: int, expected: int) -> None:
    # $8,000 / $333 = 24.024024... units, ray-scaled and rounded up
    got = debt_to_target_health(
        TOTAL_DEBT_RAY, 333 * 10**8, 5_000, 15_000, 8 * 10**17, WAD, decimals
    )
    assert got == expected


def test_debt_to_target_refuses_impossible_targets() -> None:
    with pytest.raises(InvalidArgument, match=r"target_health=.*below health"):
        debt_to_target_health(TOTAL_DEBT_RAY, 10**8, 5_000, 15_000, WAD, WAD - 1)
    with pytest.raises(InvalidArgument, match="must exceed bonus"):
        debt_to_target_health(TOTAL_DEBT_RAY, 10**8, 8_000, 12_500, 8 * 10**17, WAD)
    assert debt_to_target_health(TOTAL_DEBT_RAY, 10**8, 5_000, 15_000, WAD, WAD) == 0


# --- generic target-health close ----------------------------------------------------------


def test_target_health_close_formula() -> None:
    # E 900, MM 1000 (H 0.9), T 1.2, penalty 1%, MM 10% of notional (N = 10,000):
    # f = (1.2 - 0.9) / (1.2 - 0.01/0.1) = 0.3 / 1.1 = 3/11; notional ceil(30000/11) = 2728
    out = target_health_close(900, 1_000, Fraction(6, 5), RATE_SCALE // 100, RATE_SCALE // 10)
    assert (out.fraction, out.notional, out.dust) == (Fraction(3, 11), 2_728, False)
    # check: (900 - 3/11 * 100) / (1000 * 8/11) = 1.2
    assert (900 - Fraction(3, 11) * 100) / (1_000 * Fraction(8, 11)) == Fraction(6, 5)


def test_target_health_close_clamps() -> None:
    five, ten = RATE_SCALE // 20, RATE_SCALE // 10
    # healthy: nothing to close
    assert target_health_close(1_000, 1_000, Fraction(1), five, ten).fraction == 0
    assert target_health_close(5, 0, Fraction(1), five, ten).fraction == 0
    # H = 0.4 <= p/m = 0.5: each close costs more equity than it frees -> close all
    assert target_health_close(400, 1_000, Fraction(1), five, ten).fraction == 1
    # T = 0.45 <= p/m = 0.5 with H < T -> close all (not a negative fraction)
    assert target_health_close(400, 1_000, Fraction(9, 20), five, ten).fraction == 1
    # negative equity -> close all
    assert target_health_close(-1, 1_000, Fraction(1), five, ten).notional == 10_000


def test_target_health_close_dust_closes_all() -> None:
    # f = (1.2 - 1.19) / (1.2 - 0.1) = 1/110 of N = 10,000 -> 91 closed, 9,909 left: not dust.
    # Near-total close: E 110, MM 1000, T 1.2: f = 1.09/1.1 -> 9,910 closed, 90 left < 100
    args = (1_000, Fraction(6, 5), RATE_SCALE // 100, RATE_SCALE // 10)
    rule = DustRule(100)
    assert target_health_close(1_190, *args, dust=rule).dust is False
    out = target_health_close(110, *args, dust=rule)
    assert (out.fraction, out.notional, out.dust) == (Fraction(1), 10_000, True)
    assert target_health_close(110, *args).notional == 9_910
    with pytest.raises(MustNotLeaveDust, match="notional remnant=90"):
        target_health_close(110, *args, dust=DustRule(100, DustMode.REFUSE))


@given(
    mm=st.integers(1, 10**12),
    h=st.fractions(Fraction(-1), Fraction(2)),
    target=st.fractions(Fraction(1), Fraction(3)),
    penalty=st.integers(0, RATE_SCALE // 10),
    mm_rate=st.integers(RATE_SCALE // 100, RATE_SCALE),
)
def test_target_health_close_restores_target(
    mm: int, h: Fraction, target: Fraction, penalty: int, mm_rate: int
) -> None:
    equity = int(h * mm)
    out = target_health_close(equity, mm, target, penalty, mm_rate)
    assert 0 <= out.fraction <= 1
    p, m = Fraction(penalty, RATE_SCALE), Fraction(mm_rate, RATE_SCALE)
    notional = mm / m

    def health_after(closed: Fraction) -> Fraction:
        return (equity - closed * p) / (mm - closed * m)

    assume(0 < out.fraction < 1)
    # exact: the fraction restores the target exactly
    assert health_after(out.fraction * notional) == target
    # integer notional (rounded up) restores at least the target, one unit less does not
    assert out.notional - 1 < out.fraction * notional <= out.notional
    if out.notional < notional:
        assert health_after(Fraction(out.notional)) >= target
    assert health_after(Fraction(out.notional - 1)) < target


def test_target_health_close_bad_arguments() -> None:
    with pytest.raises(InvalidArgument, match="target"):
        target_health_close(1, 1, Fraction(0), 0, 1)
    with pytest.raises(InvalidArgument, match="mm_rate_of_closed"):
        target_health_close(1, 1, Fraction(1), 0, 0)
    with pytest.raises(InvalidArgument, match="maintenance_margin"):
        target_health_close(1, -1, Fraction(1), 0, 1)


# --- self-liquidation window --------------------------------------------------------------


def test_self_liquidation_window() -> None:
    floor = Fraction(1, 2)
    # eligible at t=100 with a 300 s window: open on [100, 400)
    assert self_liquidation_window(100, 100, 300, Fraction(9, 10), floor)
    assert self_liquidation_window(100, 399, 300, Fraction(9, 10), floor)
    assert not self_liquidation_window(100, 400, 300, Fraction(9, 10), floor)
    # below the hard floor the window is shut; at the floor it is open
    assert not self_liquidation_window(100, 150, 300, Fraction(49, 100), floor)
    assert self_liquidation_window(100, 150, 300, floor, floor)
    with pytest.raises(InvalidArgument, match="now=99 precedes"):
        self_liquidation_window(100, 99, 300, Fraction(1), floor)


def test_aave_dust_values_leftover_debt_rounding_up() -> None:
    # v3.7 values leftover debt with mulDivCeil: at a price of $1.00000001 the
    # 500.000001 USDC left is worth 500.000006000001 -> ceil 50000000601 base units; a
    # minimum of exactly that passes, while flooring (50000000600) would refuse it.
    price = 10**8 + 1
    left = 500 * 10**6 + 1
    minimum = -(-left * price // 10**6)
    assert minimum == 50_000_000_601
    out = aave_v3_liquidation_amounts(
        **{**SETUP, "debt_price": price},
        collateral_price=1900 * 10**8,
        close_factor_bps=10_000,
        debt_to_cover=17_000 * 10**6 - left,
        dust=DustRule(minimum, DustMode.REFUSE),
    )
    assert out.debt_repaid == 17_000 * 10**6 - left
