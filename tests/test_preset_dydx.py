"""The dYdX v4 preset: anchors.md §3.8 vectors through ``liqeng.presets.dydx``, bad input,
and ``PRESET`` liquidating in a real engine."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest
from tests.conftest import ALICE, BOB
from tests.test_engine import KEEPER, SYS, alice_goes_long, make_engine, reports, trade
from tests.test_engine import PERP as ETH_PERP

from liqeng.errors import InvalidArgument
from liqeng.ids import AccountId
from liqeng.liquidation import FixedFee
from liqeng.liquidation.waterfall import AdlCandidate
from liqeng.presets import dydx
from liqeng.units import RATE_SCALE

USD = 10**6  # USDC quote quantums per dollar
ETH = 10**6  # ETH-PERP base units per ETH (size_decimals 6)

# anchors.md §3.8 setup: 0.1 BTC long at oracle $50,000, maintenance fraction 10% (PMMR $500),
# genesis liquidations config (SMMR 1.5, BA 1, fee 1.5%).
BTC = Fraction(1, 10)
ORACLE = 50_000 * USD
MMF = Fraction(1, 10)


def _btc_subaccount(usdc: int) -> tuple[int, Fraction, Fraction, int, int, int]:
    """(TNC, ABR, fillable $/BTC, bankruptcy quote, IF delta, IF payout) in dollars, for the
    0.1 BTC subaccount holding ``usdc`` dollars, closed whole at its fillable price."""
    r = dydx.liquidate_position(usdc * USD, BTC, ORACLE, MMF)
    # the same figures from the protocol's own formulas, one by one
    pnnv, pmmr = 5_000 * USD, 500 * USD
    assert (r.tnc, r.tmmr) == (usdc * USD + pnnv, pmmr)
    assert r.fillable_price == dydx.fillable_price(pnnv, pmmr, BTC, r.tnc, r.tmmr)
    assert r.bankruptcy_quote == dydx.bankruptcy_quote(-pnnv, -pmmr, r.tnc, r.tmmr)
    assert r.insurance_fund_delta == dydx.insurance_fund_delta(r.quote, r.bankruptcy_quote)
    return (
        r.tnc // USD,
        r.abr,
        r.fillable_price / USD,
        r.bankruptcy_quote // USD,
        r.insurance_fund_delta,
        r.insurance_fund_payment,
    )


VECTORS = [
    # TNC = -4,501 + 5,000 = 499; ABR = 1 - 499/500 = 0.002; fillable = (5,000 - 0.002·1.5·500)
    # / 0.1 = 49,985; bankruptcy quote = 5,000 - 499·500/500 = 4,501; filled at 49,985 the
    # subaccount receives 4,998.5: Δ = 497.5, fee = min(1.5%·4,998.5, 497.5) = 74.9775
    pytest.param(
        lambda: _btc_subaccount(-4_501),
        (499, Fraction(1, 500), 49_985, 4_501, 74_977_500, 0),
        id="DYDX-10",
    ),
    # TNC 400, ABR 0.2: fillable (5,000 - 150)/0.1 = 48,500; Δ = 4,850 - 4,600 = 250;
    # fee = min(1.5%·4,850, 250) = 72.75
    pytest.param(
        lambda: _btc_subaccount(-4_600),
        (400, Fraction(1, 5), 48_500, 4_600, 72_750_000, 0),
        id="DYDX-11",
    ),
    # TNC -100, ABR clamps to 1: fillable (5,000 - 750)/0.1 = 42,500; bankruptcy quote
    # 5,000 + 100 = 5,100; filled at 42,500: Δ = 4,250 - 5,100 = -850, paid by the fund
    pytest.param(
        lambda: _btc_subaccount(-5_100),
        (-100, Fraction(1), 42_500, 5_100, -850 * USD, 850 * USD),
        id="DYDX-12",
    ),
    # p' = (e - s·p) / (|s|·MMF - s) = (1,000 + 9,000) / (0.15 + 3) = 3,174.603...
    pytest.param(
        lambda: dydx.isolated_liquidation_price(1_000, -3, 3_000, Fraction(5, 100)),
        Fraction(200_000, 63),
        id="DYDX-13",
    ),
]


@pytest.mark.parametrize(("compute", "expected"), VECTORS)
def test_dydx_vectors(compute: Callable[[], object], expected: object) -> None:
    assert compute() == expected


def test_dydx_13_reads_as_the_docs_print_it() -> None:
    p = dydx.isolated_liquidation_price(1_000, -3, 3_000, Fraction(5, 100))
    assert f"{float(p):.3f}" == "3174.603"
    # at p' the short's equity is exactly its maintenance margin
    assert 1_000 - 3 * (p - 3_000) == 3 * p * Fraction(5, 100)


def test_block_limits_and_deleveraging_vocabulary() -> None:
    # genesis: min $1,000, 10% of a position per block, $100,000 per subaccount per block
    assert dydx.position_block_limits(500 * USD) == (500 * USD, 500 * USD)
    assert dydx.position_block_limits(5_000 * USD) == (1_000 * USD, 1_000 * USD)
    assert dydx.position_block_limits(2_000_000 * USD) == (1_000 * USD, 200_000 * USD)
    assert dydx.liquidatable_notional(2_000_000 * USD) == 100_000 * USD
    assert dydx.liquidatable_notional(2_000_000 * USD, 70_000 * USD) == 30_000 * USD
    assert dydx.insurance_lost_room(400_000 * USD) == 600_000 * USD
    assert dydx.is_valid_insurance_fund_delta(-850 * USD, 850 * USD)
    assert not dydx.is_valid_insurance_fund_delta(-850 * USD, 849 * USD)
    assert dydx.is_liquidatable(499, 500) and not dydx.is_liquidatable(0, 0)
    assert dydx.must_deleverage(-1) and not dydx.must_deleverage(0)
    shorts = [AdlCandidate(AccountId(f"t/u{i}"), -10, 100, 90, 1_000) for i in range(3)]
    order = dydx.deleveraging_order(shorts, 1, start=4)
    assert [c.account for c in order] == ["t/u1", "t/u2", "t/u0"]


def test_preset_is_fixed_fee_with_genesis_limits() -> None:
    fee = dydx.PRESET.mechanism()
    assert isinstance(fee, FixedFee)
    assert (fee.penalty_rate, fee.keeper_share, fee.protocol_share) == (15_000_000, 0, 0)
    assert fee.waterfall.stages == ("insurance_fund", "adl") and fee.adl_ranking == "dydx"
    assert dydx.PRESET.limits is not None
    assert dydx.PRESET.limits.max_notional_per_block == 100_000 * USD
    assert dydx.PRESET.limits.max_loss_per_block == 1_000_000 * USD
    assert dydx.PRESET.reproduces == ("DYDX-10", "DYDX-11", "DYDX-12", "DYDX-13")
    lower = dydx.mechanism(fee_ppm=5_000)
    assert isinstance(lower, FixedFee) and lower.penalty_rate == 5 * RATE_SCALE // 1_000


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda: dydx.mechanism(fee_ppm=15_001), "fee_ppm=15001"),
        (lambda: dydx.mechanism(fee_ppm=-1), "fee_ppm=-1"),
        (lambda: dydx.LiquidationsConfig(max_liquidation_fee_ppm=1_000_001), "1000001"),
        (lambda: dydx.LiquidationsConfig(max_liquidation_fee_ppm=0), "max_liquidation_fee_ppm=0"),
        (lambda: dydx.LiquidationsConfig(bankruptcy_adjustment_ppm=999_999), "999999"),
        (lambda: dydx.LiquidationsConfig(spread_to_maintenance_margin_ratio_ppm=0), "ratio_ppm=0"),
        (lambda: dydx.LiquidationsConfig(min_position_notional_liquidated=-1), "liquidated=-1"),
        (lambda: dydx.LiquidationsConfig(max_notional_liquidated=0), "max_notional_liquidated=0"),
        (lambda: dydx.isolated_liquidation_price(1_000, -3, 3_000, 0), "mmf=0"),
        (lambda: dydx.isolated_liquidation_price(1_000, -3, 3_000, 1), "mmf=1"),
        (lambda: dydx.isolated_liquidation_price(1_000, -3, 3_000, 0.05), "mmf=0.05"),  # type: ignore[arg-type]
        (lambda: dydx.isolated_liquidation_price(1_000, 0, 3_000, Fraction(1, 20)), "size=0"),
        (lambda: dydx.liquidate_position(-4_501 * USD, BTC, ORACLE, Fraction(3, 2)), "mmf=3/2"),
        (lambda: dydx.liquidate_position(0, BTC, ORACLE, MMF), "not liquidatable"),
        (lambda: dydx.position_block_limits(-1), "position_notional=-1"),
        (lambda: dydx.liquidatable_notional(10, -5), "notional_liquidated=-5"),
        (lambda: dydx.bankruptcy_quote(-5, 1, 0, 5), "dmmr=1"),
        (lambda: dydx.adjusted_bankruptcy_rating(1, 0), "tmmr=0"),
    ],
)
def test_bad_input_is_refused_naming_the_value(call: Callable[[], object], named: str) -> None:
    with pytest.raises(InvalidArgument, match=named):
        call()


def test_preset_liquidates_in_the_engine(tmp_path: Path) -> None:
    engine, clock = make_engine(
        tmp_path, mechanism=dydx.PRESET.mechanism(), limits=dydx.PRESET.limits
    )
    engine.step(reports(0, *[2000] * 5))
    alice_goes_long(engine, 5, 2000)
    clock.set(60)
    step = engine.step(reports(60, *[1850] * 5), keeper=KEEPER)
    # TNC = 1,000 - 750 = 250 < TMMR = 5%·9,250 = 462.5: closed whole at the oracle price.
    # dYdX's rule for that fill: Δ = 9,250 - (9,250 - 250) = 250; fee = min(1.5%·9,250, 250)
    bankrupt = dydx.bankruptcy_quote(-9_250 * USD, -462_500_000, 250 * USD, 462_500_000)
    fee = dydx.insurance_fund_delta(9_250 * USD, bankrupt)
    assert fee == 138_750_000
    plan = step.liquidations[0].plan
    assert (plan.notional, plan.penalty, plan.insurance_fee, plan.keeper_reward) == (
        9_250 * USD,
        fee,
        fee,
        0,
    )
    led = engine.ledger
    assert led.positions_of(ALICE) == {}
    assert led.balance_units(ALICE, engine.quote.id) == 250 * USD - fee  # the user keeps Δ - fee
    assert led.balance_units(SYS.insurance_fund, engine.quote.id) == 10_000 * USD + fee
    led.check_invariants()


def test_preset_block_limit_throttles_a_large_account(tmp_path: Path) -> None:
    engine, clock = make_engine(
        tmp_path,
        alice_usd=10_000,
        mechanism=dydx.PRESET.mechanism(),
        limits=dydx.PRESET.limits,
    )
    engine.step(reports(0, *[2000] * 5))
    trade(engine, "open", ALICE, BOB, ETH_PERP, 60 * ETH, 2000)
    clock.set(60)
    step = engine.step(reports(60, *[1910] * 5), keeper=KEEPER)
    # equity 10,000 - 60·90 = 4,600 < 5%·114,600: liquidatable, but at most $100,000 of
    # notional per block; the rest waits for the next block
    plan = step.liquidations[0].plan
    assert 99_000 * USD < plan.notional <= 100_000 * USD
    assert engine.ledger.positions_of(ALICE)
    engine.ledger.check_invariants()


def test_preset_bad_debt_goes_to_the_fund_then_deleveraging(tmp_path: Path) -> None:
    engine, clock = make_engine(
        tmp_path, fund_usd=100, mechanism=dydx.PRESET.mechanism(), limits=dydx.PRESET.limits
    )
    engine.step(reports(0, *[2000] * 5))
    alice_goes_long(engine, 5, 2000)
    clock.set(60)
    step = engine.step(reports(60, *[1700] * 5), keeper=KEEPER)
    # TNC = -500: the fund pays its 100, bob (the profitable short) is deleveraged for 400
    plan = step.liquidations[0].plan
    assert (plan.penalty, plan.bad_debt_covered, plan.bad_debt_deleveraged) == (
        0,
        100 * USD,
        400 * USD,
    )
    assert plan.bad_debt_uncovered == 0
    engine.ledger.check_invariants()
