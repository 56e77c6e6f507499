"""VaR and expected shortfall: exact small samples, a normal benchmark, real crash data."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import USDC

from liqeng.errors import InvalidArgument
from liqeng.ids import InstrumentId
from liqeng.ledger.model import Position
from liqeng.market import black76
from liqeng.market.instruments import EuropeanOption, Perpetual
from liqeng.risk.var import (
    account_pnl,
    historical_returns,
    monte_carlo_returns,
    protocol_shortfall,
    var_es,
)

PERP = Perpetual(InstrumentId("t/ETH-PERP"), "ETH", USDC, 6)
PUT = EuropeanOption(InstrumentId("t/ETH-1800-P"), "ETH", USDC, 6, 1800 * 10**6, 30 * 86400, False)
USD = 10**6
DATA = Path(__file__).parent.parent / "scenarios" / "data"


def test_small_sample_by_hand() -> None:
    pnl = [2.0, -1.0, 0.0, -5.0, -3.0]  # sorted: -5, -3, -1, 0, 2
    # confidence 0.8: k = ceil(5 * 0.2) = 1 -> VaR 5, ES 5
    assert (var_es(pnl, 0.8).var, var_es(pnl, 0.8).es) == (5.0, 5.0)
    # confidence 0.6: k = ceil(5 * 0.4) = 2 -> VaR 3 (2nd worst), ES (5 + 3) / 2 = 4
    m = var_es(pnl, 0.6)
    assert (m.var, m.es, m.scenarios) == (3.0, 4.0, 5)


def test_normal_losses_match_the_closed_form() -> None:
    # N(0, 1) P&L: VaR_99% = 2.3263, ES_97.5% = phi(1.96) / 0.025 = 2.3378
    rng = np.random.default_rng(7)
    pnl = rng.standard_normal(2_000_000)
    assert var_es(pnl, 0.99).var == pytest.approx(2.3263, abs=0.01)
    assert var_es(pnl, 0.975).es == pytest.approx(2.3378, abs=0.01)
    m = var_es(pnl, 0.99)
    assert m.es >= m.var


def test_long_perp_loses_its_share_of_the_move() -> None:
    # 2 ETH long, index 2000, ETH -10% -> -400 USDC; +5% -> +200 USDC
    returns = np.array([[-0.10], [0.05]])
    pnl = account_pnl(
        {PERP.id: Position(2 * 10**6, 1900 * USD)},
        {PERP.id: PERP},
        {"ETH": 2000 * USD},
        ["ETH"],
        returns,
        0,
        86400,
        0.8,
    )
    assert pnl == pytest.approx([-400 * USD, 200 * USD])


def test_short_put_pnl_is_black76_revaluation_after_the_horizon() -> None:
    returns = np.array([[-0.2]])
    pnl = account_pnl(
        {PUT.id: Position(-3 * 10**6, 1)},
        {PUT.id: PUT},
        {"ETH": 2000 * USD},
        ["ETH"],
        returns,
        0,
        86400,
        0.8,
    )
    v0 = black76.price(2000e6, 1800e6, 30 / 365, 0.8, False)
    v1 = black76.price(1600e6, 1800e6, 29 / 365, 0.8, False)
    assert pnl[0] == pytest.approx(-3 * (v1 - v0))
    assert pnl[0] < 0


def test_monte_carlo_replays_from_the_seed() -> None:
    a = monte_carlo_returns(np.random.default_rng(1), [0.8, 0.6], 1 / 365, 1000)
    b = monte_carlo_returns(np.random.default_rng(1), [0.8, 0.6], 1 / 365, 1000)
    assert np.array_equal(a, b) and a.shape == (1000, 2)
    # mean of exp(sZ - s^2/2) - 1 is 0: zero drift
    big = monte_carlo_returns(np.random.default_rng(2), [0.8], 1 / 365, 400_000)
    assert abs(big.mean()) < 5e-4


def test_historical_one_day_var_of_a_long_eth_account_on_black_thursday() -> None:
    with (DATA / "eth_usd-coinbase-2020-03-11-1h.csv").open() as fh:
        closes = [float(row["close"]) for row in csv.DictReader(fh)]
    returns = historical_returns(closes, 24)[:, None]  # overlapping 1-day windows
    pnl = account_pnl(
        {PERP.id: Position(10 * 10**6, 200 * USD)},
        {PERP.id: PERP},
        {"ETH": 200 * USD},
        ["ETH"],
        returns,
        0,
        86400,
        0.8,
    )
    m = var_es(pnl / USD, 0.95)
    # ETH lost about half in a day: 10 ETH at 200 risk several hundred dollars
    worst = min(b / a - 1 for a, b in zip(closes, closes[24:], strict=False))
    assert m.var <= -worst * 2000 + 1e-6
    assert 500 < m.var <= m.es <= -worst * 2000 + 1e-6


def test_protocol_shortfall_counts_only_what_accounts_cannot_pay() -> None:
    # two accounts, three scenarios: equities (100, -30, -5) and (-20, 50, -7)
    e = np.array([[100.0, -30.0, -5.0], [-20.0, 50.0, -7.0]])
    assert protocol_shortfall(e).tolist() == [20.0, 30.0, 12.0]


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: var_es([1.0], 0.3), "confidence=0.3"),
        (lambda: var_es([], 0.99), "pnl is empty"),
        (lambda: var_es([1.0, math.nan], 0.99), "non-finite"),
        (lambda: historical_returns([1.0, -2.0, 3.0], 1), "finite and positive"),
        (lambda: monte_carlo_returns(np.random.default_rng(0), [-0.1], 1.0, 5), "vols="),
        (lambda: monte_carlo_returns(None, [0.1], 1.0, 5), "rng=None"),  # type: ignore[arg-type]
    ],
)
def test_bad_input_names_the_value(call: object, needle: str) -> None:
    with pytest.raises(InvalidArgument, match=needle):
        call()  # type: ignore[operator]
