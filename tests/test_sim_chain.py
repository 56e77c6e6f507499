"""Chain physics: EIP-1559's base fee, tip ordering, the gas limit, latency, congestion."""

from __future__ import annotations

import pytest

from liqeng.errors import InvalidArgument
from liqeng.sim.chain import GWEI, Chain, ChainParams, Congestion, Demand, Tx, next_base_fee

QUIET = ChainParams(gas_limit=1_000_000, base_fee=100 * GWEI, demand=Demand(0, 0))


@pytest.mark.parametrize(
    ("used", "expected"),
    [
        # target 15M of 30M; a full block raises the base fee by 1/8: 100 -> 112.5 gwei
        (30_000_000, 112_500_000_000),
        (15_000_000, 100 * GWEI),  # at the target it stays
        (0, 87_500_000_000),  # an empty block lowers it by 1/8
        # 20M used: 100 * 5/15 / 8 = 4.1666.. gwei, floored in wei
        (20_000_000, 100 * GWEI + 4_166_666_666),
    ],
)
def test_base_fee_follows_eip_1559(used: int, expected: int) -> None:
    assert next_base_fee(100 * GWEI, used, 15_000_000) == expected


def test_base_fee_rises_at_least_one_wei_and_respects_its_floor() -> None:
    assert next_base_fee(7, 15_000_001, 15_000_000) == 8  # 7 * 1/15M / 8 rounds to 0: +1
    assert next_base_fee(7, 0, 15_000_000, min_base_fee=7) == 7


def tx(i: str, tip_gwei: int, gas: int = 300_000, ready: int = 0, max_fee: int = 10**12) -> Tx:
    return Tx(i, "k", gas, max_fee, tip_gwei * GWEI, ready)


def test_highest_tip_first_and_the_gas_limit_squeezes_the_rest() -> None:
    chain = Chain(QUIET, t0=1_000)
    for t in (tx("a", 1), tx("b", 5), tx("c", 3), tx("d", 5)):
        chain.submit(t)
    block = chain.produce()
    # 1M gas fits three 300k txs: b and d (5 gwei; ties by id), then c (3 gwei); a waits
    assert [t.id for t, _ in block.included] == ["b", "d", "c"]
    assert [fee for _, fee in block.included] == [105 * GWEI, 105 * GWEI, 103 * GWEI]
    assert (block.number, block.ts, block.gas_used) == (0, 1_000, 900_000)
    assert [t.id for t in chain.pending()] == ["a"]
    # 900k of a 500k target: the base fee rises 100 * 400/500 / 8 = 10 gwei
    assert chain.base_fee == 110 * GWEI
    assert [t.id for t, _ in chain.produce().included] == ["a"]


def test_latency_max_fee_and_ttl() -> None:
    params = ChainParams(gas_limit=1_000_000, base_fee=100 * GWEI, demand=Demand(0, 0), ttl=3)
    chain = Chain(params, t0=0)
    chain.submit(tx("late", 2, ready=2))
    chain.submit(tx("cheap", 2, max_fee=50 * GWEI))  # below the base fee (100, 87.5, ..): waits
    assert chain.produce().included == () and chain.produce().included == ()
    assert [t.id for t, _ in chain.produce().included] == ["late"]  # block 2
    dropped = chain.produce().dropped  # block 3: "cheap" waited ready + ttl blocks
    assert [t.id for t in dropped] == ["cheap"] and chain.pending() == ()


def test_congestion_crowds_out_a_low_tip() -> None:
    # blocks 1-2: a crowd bids 50 gwei for the whole block; a keeper at 20 gwei waits
    crowd = Congestion(1, 3, 1_000_000, 50 * GWEI)
    chain = Chain(QUIET, t0=0, congestion=[crowd])
    chain.produce()
    chain.submit(tx("keeper", 20))
    assert chain.produce().included == ()
    assert chain.produce().included == ()
    assert chain.base_fee > 100 * GWEI  # two full blocks
    assert [t.id for t, _ in chain.produce().included] == ["keeper"]
    # one that outbids the crowd gets in even during the episode
    chain2 = Chain(QUIET, t0=0, congestion=[crowd])
    chain2.produce()
    chain2.submit(tx("rich", 60))
    assert [t.id for t, _ in chain2.produce().included] == ["rich"]


def test_bad_input_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="gas_limit"):
        ChainParams(gas_limit=0)
    with pytest.raises(InvalidArgument, match="end"):
        Congestion(5, 4, 1, 1)
    chain = Chain(QUIET, t0=0)
    chain.submit(tx("a", 1))
    with pytest.raises(InvalidArgument, match="already pending"):
        chain.submit(tx("a", 2))
    with pytest.raises(InvalidArgument, match="exceeds the block gas limit"):
        chain.submit(tx("big", 1, gas=2_000_000))
    with pytest.raises(InvalidArgument, match="gas"):
        tx("zero", 1, gas=0)
