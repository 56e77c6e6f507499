"""Margin models per market: per-position and scenario, summed over underlyings, exact."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liqeng.errors import InvalidArgument
from liqeng.ids import InstrumentId, asset_id
from liqeng.ledger.model import Position
from liqeng.market import DatedFuture, EuropeanOption, Instrument, Perpetual, year_fraction
from liqeng.risk.margin import MarginParams, account_risk
from liqeng.risk.models import (
    MarketData,
    PerPosition,
    Requirement,
    Scenario,
    market_account_risk,
)
from liqeng.risk.portfolio import DERIBIT_BTC_PM, LYRA_LIKE, LYRA_PMRM, ScenarioPosition
from liqeng.units import Asset

USDC = Asset(asset_id("eth/USDC"), 6)
DAY = 86_400
NOW = 10 * DAY
USD = 10**6
ETH_PERP = Perpetual(InstrumentId("t/ETH-PERP"), "ETH", USDC, 3)
BTC_PERP = Perpetual(InstrumentId("t/BTC-PERP"), "BTC", USDC, 4)
ETH_C = EuropeanOption(
    InstrumentId("t/ETH-C-2200"), "ETH", USDC, 3, 2200 * USD, NOW + 30 * DAY, True
)
ETH_P = EuropeanOption(
    InstrumentId("t/ETH-P-1800"), "ETH", USDC, 3, 1800 * USD, NOW + 30 * DAY, False
)
ETH_OLD = EuropeanOption(InstrumentId("t/ETH-P-OLD"), "ETH", USDC, 3, 1900 * USD, NOW - DAY, False)
BTC_F = DatedFuture(InstrumentId("t/BTC-F"), "BTC", USDC, 4, NOW + 90 * DAY)
INSTRUMENTS: dict[InstrumentId, Instrument] = {
    i.id: i for i in (ETH_PERP, BTC_PERP, ETH_C, ETH_P, ETH_OLD, BTC_F)
}
PRICES = {"ETH": 2000 * USD, "BTC": 60_000 * USD}
MARKET = MarketData(NOW, PRICES, settlements={ETH_OLD.id: 1850 * USD})
SCENARIO = Scenario(LYRA_LIKE)


def sp(inst: Instrument, size: int) -> ScenarioPosition:
    """What ``Scenario`` should build from a position: whole tokens on forward = index."""
    q = size / 10**inst.size_decimals
    f = float(PRICES[inst.underlying])
    if isinstance(inst, EuropeanOption):
        t = year_fraction(NOW, inst.expiry_ts)
        return ScenarioPosition("call" if inst.is_call else "put", q, f, t, float(inst.strike), 0.8)
    return ScenarioPosition("future", q, f)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-(10**6), 10**6), min_size=5, max_size=5),
    st.integers(-(10**10), 10**10),
)
def test_one_per_position_model_sums_its_requirements_per_market(
    sizes: list[int], cash: int
) -> None:
    """The one-model fast path against the sum written out: every market's requirement
    by ``PerPosition.requirement``, equity from ``account_risk`` (non-default rates)."""
    params = MarginParams(60_000_000, 120_000_000, 70_000_000, 0.8, 110_000_000)
    model = PerPosition(params)
    iids = [ETH_PERP.id, BTC_PERP.id, ETH_C.id, ETH_P.id, BTC_F.id]
    positions = {i: Position(s, 1_000 * USD) for i, s in zip(iids, sizes, strict=True)}
    got = market_account_risk(
        cash, positions, INSTRUMENTS, MARKET, {"ETH": model, "BTC": model}, PerPosition()
    )
    equity = account_risk(cash, positions, INSTRUMENTS, PRICES, NOW, MarginParams()).equity
    mm = im = 0
    for u in ("BTC", "ETH"):
        group = {i: p for i, p in positions.items() if INSTRUMENTS[i].underlying == u and p.size}
        req = model.requirement(group, INSTRUMENTS, MARKET)
        mm, im = mm + req.maintenance, im + req.initial
    assert (got.equity, got.maintenance_margin, got.initial_margin) == (equity, mm, im)


def test_scenario_requirement_is_the_model_rounded_up() -> None:
    positions = {ETH_C.id: Position(-3_000, 0), ETH_P.id: Position(-2_000, 0)}
    got = SCENARIO.requirement(positions, INSTRUMENTS, MARKET)
    model = LYRA_LIKE.margin([sp(ETH_C, -3_000), sp(ETH_P, -2_000)], 2000.0 * USD)
    assert got.maintenance == math.ceil(Fraction(model.maintenance)) > 0
    assert got.initial == math.ceil(Fraction(model.initial)) > got.maintenance  # IM = 1.3·MM
    # a strangle's worst scenario is one wing; the two legs are netted in each scenario
    legs = [
        SCENARIO.requirement({i: p}, INSTRUMENTS, MARKET).maintenance for i, p in positions.items()
    ]
    assert got.maintenance <= sum(legs)


def test_requirements_add_up_over_markets() -> None:
    positions = {
        ETH_C.id: Position(-3_000, 0),
        ETH_PERP.id: Position(1_000, 2_000 * USD),
        BTC_PERP.id: Position(-5_000, 60_000 * USD),
    }
    mixed = market_account_risk(
        10**9, positions, INSTRUMENTS, MARKET, {"ETH": SCENARIO}, PerPosition()
    )
    eth = {i: p for i, p in positions.items() if INSTRUMENTS[i].underlying == "ETH"}
    btc = {BTC_PERP.id: positions[BTC_PERP.id]}
    eth_req = SCENARIO.requirement(eth, INSTRUMENTS, MARKET)
    btc_req = PerPosition().requirement(btc, INSTRUMENTS, MARKET)
    assert mixed.maintenance_margin == eth_req.maintenance + btc_req.maintenance
    assert mixed.initial_margin == eth_req.initial + btc_req.initial
    # equity never depends on the model: it is the exact path's
    standard = market_account_risk(10**9, positions, INSTRUMENTS, MARKET, {}, PerPosition())
    assert mixed.equity == standard.equity


def test_a_settled_option_carries_no_scenario_risk() -> None:
    settled = {ETH_OLD.id: Position(-4_000, 0)}
    assert SCENARIO.requirement(settled, INSTRUMENTS, MARKET) == Requirement(0, 0)
    risk = market_account_risk(0, settled, INSTRUMENTS, MARKET, {"ETH": SCENARIO}, PerPosition())
    assert risk.equity == -4 * 50 * USD  # 4 puts settled 50 in the money
    unsettled = MarketData(NOW, PRICES)
    with pytest.raises(InvalidArgument, match="t/ETH-P-OLD expired at ts=777600"):
        market_account_risk(0, settled, INSTRUMENTS, unsettled, {}, PerPosition())


def test_lyra_pmrm_runs_in_the_engine_path() -> None:
    positions = {ETH_C.id: Position(-3_000, 0), ETH_P.id: Position(3_000, 0)}
    pm = Scenario(LYRA_PMRM).requirement(positions, INSTRUMENTS, MARKET)
    bare = Scenario(LYRA_LIKE).requirement(positions, INSTRUMENTS, MARKET)
    assert pm.maintenance > 0 and pm.initial >= pm.maintenance
    assert pm != bare  # contingencies and the static discount change the requirement


def test_bad_models_and_market_data_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="inverse"):
        Scenario(DERIBIT_BTC_PM)
    with pytest.raises(InvalidArgument, match="must be a PortfolioMarginModel"):
        Scenario("lyra")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"vols\['ETH'\]: vol=-0.1"):
        MarketData(NOW, PRICES, vols={"ETH": -0.1})
    with pytest.raises(InvalidArgument, match="initial=1 is outside"):
        Requirement(2, 1)
    positions = {ETH_PERP.id: Position(1, 0)}
    with pytest.raises(InvalidArgument, match="margin model of 'ETH'='x' is not a MarginModel"):
        market_account_risk(0, positions, INSTRUMENTS, MARKET, {"ETH": "x"}, PerPosition())  # type: ignore[dict-item]
    with pytest.raises(
        InvalidArgument, match="instrument='t/SOL' has a position but no Instrument"
    ):
        market_account_risk(
            0, {InstrumentId("t/SOL"): Position(1, 0)}, INSTRUMENTS, MARKET, {}, PerPosition()
        )
