"""Finite liquidity (liqeng.sim.market): exact fills, price moves, recovery, seeded sources."""

from __future__ import annotations

import itertools
import math
import re
from fractions import Fraction

import numpy as np
import pytest

from liqeng.errors import InvalidArgument, Refused
from liqeng.oracle.reports import SourceReport
from liqeng.sim.market import (
    INSUFFICIENT_LIQUIDITY,
    ConstantProductMarket,
    DepthCurveMarket,
    Market,
    SourcePrices,
)

USDC = 10**6  # quote base units per USDC
ETH = 10**18  # token base units per ETH


# --- ConstantProductMarket ------------------------------------------------------------------


def test_cpmm_opening_state_from_depth_and_price() -> None:
    # $10M of USDC(6) against ETH(18) at $2000: y = 10^13, x = 10^13 * 10^18 / (2000 * 10^6)
    # = 5000 ETH = 5 * 10^21 base units; price y * 10^18 / x = 2000 * 10^6 exactly.
    m = ConstantProductMarket(10_000_000 * USDC, 2000 * USDC)
    assert m.quote == 10_000_000 * USDC
    assert m.tokens == 5000 * ETH
    assert m.price == 2000 * USDC
    assert m.decimals == 18
    assert isinstance(m, Market)


def test_cpmm_sell_without_fee_is_exact_and_keeps_k() -> None:
    # decimals=0: x = 10_000 * 1 // 100 = 100 tokens, y = 10_000, k = 1_000_000, price 100.
    m = ConstantProductMarket(10_000, 100, decimals=0, fee_bps=0)
    assert (m.tokens, m.quote, m.k, m.price) == (100, 10_000, 1_000_000, 100)
    # sell 25: out = 25 * 10_000 // (100 + 25) = 2000; x = 125, y = 8000, k = 1_000_000,
    # price 8000 / 125 = 64 (a quarter more tokens: price * (100/125)^2).
    assert m.sell(25) == 2000
    assert (m.tokens, m.quote, m.k, m.price) == (125, 8000, 1_000_000, 64)
    # buy the 25 back: in = ceil(8000 * 25 / (125 - 25)) = 2000: back where it started.
    assert m.buy(25) == 2000
    assert (m.tokens, m.quote, m.k, m.price) == (100, 10_000, 1_000_000, 100)


def test_cpmm_fee_round_trip_loses_and_k_grows() -> None:
    m = ConstantProductMarket(10_000, 100, decimals=0, fee_bps=30)
    # sell 25 at 0.3%: t_net = floor(25 * 9970 / 10_000) = floor(24.925) = 24;
    # out = floor(24 * 10_000 / 124) = floor(1935.48) = 1935; x = 125, y = 8065.
    assert m.sell(25) == 1935
    assert (m.tokens, m.quote) == (125, 8065)
    assert m.k == 1_008_125 > 1_000_000  # the fee stays in the pool
    assert m.price == Fraction(8065, 125)  # 64.52
    # buy 25: net = ceil(8065 * 25 / 100) = ceil(2016.25) = 2017;
    # in = ceil(2017 * 10_000 / 9970) = ceil(2023.07) = 2024; x = 100, y = 10_089.
    assert m.buy(25) == 2024
    assert (m.tokens, m.quote, m.k) == (100, 10_089, 1_008_900)
    # the round trip cost 2024 - 1935 = 89 quote units: two fees plus rounding.
    assert m.price > 100


def test_cpmm_rounding_is_against_the_trader() -> None:
    # x = 100, y = 10_000: selling 3 pays floor(30_000 / 103) = floor(291.26) = 291 (down),
    # buying 3 costs ceil(10_000 * 3 / 97) = ceil(309.28) = 310 (up); k never falls.
    m = ConstantProductMarket(10_000, 100, decimals=0, fee_bps=0)
    assert m.sell(3) == 291
    assert m.k == 103 * 9709 >= 1_000_000
    m2 = ConstantProductMarket(10_000, 100, decimals=0, fee_bps=0)
    assert m2.buy(3) == 310
    assert m2.k == 97 * 10_310 >= 1_000_000


def test_cpmm_large_sale_moves_price_a_lot_and_zero_trades_do_nothing() -> None:
    m = ConstantProductMarket(10_000_000 * USDC, 2000 * USDC, fee_bps=0)
    # selling as many tokens as the pool holds halves y and x doubles: price / 4.
    out = m.sell(5000 * ETH)
    assert out == 5_000_000 * USDC
    assert m.price == 500 * USDC
    assert m.sell(0) == 0 and m.buy(0) == 0
    assert m.price == 500 * USDC


def test_cpmm_buy_of_whole_pool_refused_and_state_kept() -> None:
    m = ConstantProductMarket(10_000, 100, decimals=0)
    with pytest.raises(Refused) as err:
        m.buy(100)
    assert err.value.code == INSUFFICIENT_LIQUIDITY
    assert "tokens=100" in str(err.value)
    assert (m.tokens, m.quote) == (100, 10_000)


def test_cpmm_arbitrage_full_rate_without_fee_lands_on_external_price() -> None:
    m = ConstantProductMarket(10_000_000 * USDC, 2000 * USDC, fee_bps=0)
    traded = m.arbitrage(1500 * USDC, 1.0)
    assert traded > 0  # the pool was dear: arbitrageurs sold tokens into it
    assert abs(float(m.price) / (1500 * USDC) - 1) < 1e-12
    assert m.arbitrage(1500 * USDC, 0.0) == 0


@pytest.mark.parametrize("fee_bps", [0, 30])
@pytest.mark.parametrize("external", [1500, 2600])
def test_cpmm_arbitrage_converges_geometrically(fee_bps: int, external: int) -> None:
    m = ConstantProductMarket(10_000_000 * USDC, 2000 * USDC, fee_bps=fee_bps)
    target = external * USDC
    gaps = []
    for _ in range(40):
        m.step(target)  # arbitrage_rate 0.5 by default
        gaps.append(abs(math.log(float(m.price) / target)))
    # each call closes about half of the log-gap (a little less with a fee)
    assert all(b < a * 0.75 for a, b in itertools.pairwise(gaps[:20]))
    assert gaps[-1] < 1e-9


def test_cpmm_arbitrage_from_below_buys() -> None:
    m = ConstantProductMarket(10_000_000 * USDC, 2000 * USDC)
    before = m.tokens
    traded = m.arbitrage(2600 * USDC, 0.5)
    assert traded < 0 and m.tokens == before + traded
    # half the log-gap: sqrt(2000 * 2600) = 2280.35; the fee makes it overshoot slightly
    assert 2280 < float(m.price) / USDC < 2300


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"depth_quote": 0, "price": 100}, "depth_quote=0"),
        ({"depth_quote": -5, "price": 100}, "depth_quote=-5"),
        ({"depth_quote": 10_000, "price": 0}, "price=0"),
        ({"depth_quote": 10_000, "price": 100.0}, "price=100.0"),
        ({"depth_quote": 10_000, "price": 100, "fee_bps": -1}, "fee_bps=-1"),
        ({"depth_quote": 10_000, "price": 100, "arbitrage_rate": 1.5}, "arbitrage_rate=1.5"),
        ({"depth_quote": 10_000, "price": 100, "decimals": 99}, "decimals=99"),
        ({"depth_quote": 99, "price": 100, "decimals": 0}, "depth_quote=99"),
    ],
)
def test_cpmm_bad_construction(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(named)):
        ConstantProductMarket(**kwargs)  # type: ignore[arg-type]


def test_cpmm_bad_trades_named() -> None:
    m = ConstantProductMarket(10_000, 100, decimals=0)
    with pytest.raises(InvalidArgument, match="tokens=-1"):
        m.sell(-1)
    with pytest.raises(InvalidArgument, match="tokens=-7"):
        m.buy(-7)
    with pytest.raises(InvalidArgument, match=r"tokens=2\.5"):
        m.sell(2.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"rate=-0\.1"):
        m.arbitrage(100, -0.1)
    with pytest.raises(InvalidArgument, match="rate=nan"):
        m.arbitrage(100, math.nan)
    with pytest.raises(InvalidArgument, match="external_price=0"):
        m.step(0)
    assert (m.tokens, m.quote) == (100, 10_000)


# --- DepthCurveMarket -----------------------------------------------------------------------


def test_depth_curve_sell_and_buy_exact() -> None:
    # depth 1000 quote per 1%, price 100, decimals 0. Selling 5 tokens = notional 500 moves
    # the price by 500 / 1000 = 0.5%: 100 -> 99.5; fills half way at 99.75:
    # floor(5 * 99.75) = floor(498.75) = 498.
    d = DepthCurveMarket(1000, 100, 0.5, decimals=0)
    assert isinstance(d, Market)
    assert d.sell(5) == 498
    assert d.price == Fraction(199, 2)
    assert d.impact == Fraction(-1, 200)
    # buying 5 back moves it up by the same 0.5 (notional at the reference price 100):
    # 99.5 -> 100, average 99.75, ceil(498.75) = 499: the round trip loses the rounding.
    assert d.buy(5) == 499
    assert d.price == 100 and d.impact == 0


def test_depth_curve_matches_the_fresh_book_formula() -> None:
    # ETH(18) at $2000 in USDC(6), $1M of depth per 1%: selling 100 ETH = $200k notional
    # moves the price 0.2%: 2000 * (1 - 200_000 / (100 * 1_000_000)) = 1996;
    # average 1998, so 100 * 1998 = $199,800.
    d = DepthCurveMarket(1_000_000 * USDC, 2000 * USDC, 0.25)
    assert d.sell(100 * ETH) == 199_800 * USDC
    assert d.price == 1996 * USDC


def test_depth_curve_fee_and_recovery_make_round_trip_lose() -> None:
    d = DepthCurveMarket(1000, 100, 0.5, decimals=0, fee_bps=100)
    # sell 5 at 99.75 less 1%: floor(498.75 * 0.99) = floor(493.7625) = 493
    assert d.sell(5) == 493
    # half the impact recovers: -0.5% -> -0.25%, price 99.75
    d.recover(100)
    assert d.price == Fraction(399, 4)
    # buy 5: 99.75 -> 100.25, average 100, plus 1%: ceil(500 / 0.99) = ceil(505.05) = 506
    assert d.buy(5) == 506
    assert d.price == Fraction(401, 4)


def test_depth_curve_recovery_decays_toward_external_path() -> None:
    d = DepthCurveMarket(1000, 100, 0.5, decimals=0)
    d.sell(50)  # 5% down
    assert d.price == 95
    d.step(120)  # the path moved to 120; impact -5% halves to -2.5%
    assert d.reference == 120
    assert d.price == Fraction(117)
    for _ in range(80):
        d.step(120)
    assert d.impact == 0 and d.price == 120
    full = DepthCurveMarket(1000, 100, 1.0, decimals=0)
    full.sell(50)
    full.recover(100)
    assert full.price == 100


def test_depth_curve_refuses_selling_through_zero() -> None:
    d = DepthCurveMarket(1000, 100, 0.5, decimals=0)
    with pytest.raises(Refused) as err:
        d.sell(1000)  # notional 100_000 = 100 * depth: price would reach 0
    assert err.value.code == INSUFFICIENT_LIQUIDITY
    assert d.price == 100


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ((0, 100, 0.5), "depth_per_pct=0"),
        ((-1, 100, 0.5), "depth_per_pct=-1"),
        ((1000, -3, 0.5), "price=-3"),
        ((1000, 100, 1.5), "resilience=1.5"),
        ((1000, 100, -0.5), "resilience=-0.5"),
        ((1000, 100, math.inf), "resilience=inf"),
    ],
)
def test_depth_curve_bad_construction(args: tuple[object, ...], named: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(named)):
        DepthCurveMarket(*args)  # type: ignore[arg-type]


def test_depth_curve_bad_trades_named() -> None:
    d = DepthCurveMarket(1000, 100, 0.5, decimals=0)
    with pytest.raises(InvalidArgument, match="tokens=-2"):
        d.sell(-2)
    with pytest.raises(InvalidArgument, match="tokens=-3"):
        d.buy(-3)
    with pytest.raises(InvalidArgument, match="external_price=0"):
        d.recover(0)
    assert d.price == 100


# --- SourcePrices ---------------------------------------------------------------------------


def _sources(seed: int, market: Market | None = None) -> SourcePrices:
    m = market or ConstantProductMarket(10_000_000 * USDC, 2000 * USDC)
    return SourcePrices(m, ["binance", "coinbase", "kraken"], 20, 5, np.random.default_rng(seed))


def test_source_prices_are_deterministic_for_a_seed() -> None:
    a, b = _sources(7), _sources(7)
    seq_a = [a.sample() for _ in range(20)]
    seq_b = [b.sample() for _ in range(20)]
    assert seq_a == seq_b
    assert a.basis_bps == b.basis_bps
    assert [_sources(8).sample() for _ in range(20)] != seq_a


def test_source_prices_follow_the_market() -> None:
    market = ConstantProductMarket(10_000_000 * USDC, 2000 * USDC)
    src = _sources(1, market)
    assert all(abs(b) <= 20 for b in src.basis_bps)
    first = src.sample()
    assert set(first) == {"binance", "coinbase", "kraken"}
    # basis at most 20 bps plus noise of 5 bps (far below 10 sigma): within 0.7% of 2000
    assert all(abs(p / (2000 * USDC) - 1) < 0.007 for p in first.values())
    market.sell(1000 * ETH)  # a liquidation dumps 20% of the pool's tokens
    moved = market.price
    after = src.sample()
    assert all(abs(p / float(moved) - 1) < 0.007 for p in after.values())
    assert all(after[s] < first[s] for s in first)


def test_source_prices_without_noise_or_spread_are_the_market_price() -> None:
    market = DepthCurveMarket(1000, 100, 0.5, decimals=0)
    market.sell(5)  # 99.5
    src = SourcePrices(market, ["a", "b"], 0, 0, np.random.default_rng(0))
    assert src.sample() == {"a": 99, "b": 99}  # floor(99.5)


def test_source_reports() -> None:
    reports = _sources(3).reports("ETH", 1_700_000_000)
    assert [r.source for r in reports] == ["binance", "coinbase", "kraken"]
    assert all(isinstance(r, SourceReport) and r.market == "ETH" for r in reports)
    assert all(r.ts == 1_700_000_000 for r in reports)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"sources": []}, "sources=[]"),
        ({"sources": "abc"}, "sources='abc'"),
        ({"sources": ["a", ""]}, "source=''"),
        ({"sources": ["a", "a"]}, "repeated"),
        ({"spread_bps": -1}, "spread_bps=-1"),
        ({"noise_bps": math.nan}, "noise_bps=nan"),
        ({"rng": 42}, "rng=42"),
        ({"market": "pool"}, "market='pool'"),
    ],
)
def test_source_prices_bad_input(kwargs: dict[str, object], named: str) -> None:
    args: dict[str, object] = {
        "market": DepthCurveMarket(1000, 100, 0.5),
        "sources": ["a", "b"],
        "spread_bps": 10,
        "noise_bps": 5,
        "rng": np.random.default_rng(0),
    }
    args.update(kwargs)
    with pytest.raises(InvalidArgument, match=re.escape(named)):
        SourcePrices(**args)  # type: ignore[arg-type]
