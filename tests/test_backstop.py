"""Backstop pool: Liquity Stability Pool vectors (anchors §3.5), redistribution, properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liqeng.errors import InvalidArgument
from liqeng.ids import AccountId, AssetId
from liqeng.liquidation.backstop import (
    BackstopPool,
    Redistribution,
    offset_and_redistribution,
)

E = 10**18  # 1 LUSD / 1 ETH in base units, and Liquity's DECIMAL_PRECISION
ETH = AssetId("eth/ETH")
WBTC = AssetId("eth/WBTC")
A, B, C = AccountId("t/a"), AccountId("t/b"), AccountId("t/c")


def _liquity_trove(pool: BackstopPool) -> tuple[int, int, int, int]:
    """Trove 10 ETH / 16,000 LUSD at 1,700 (ICR 1.0625), normal mode: gas comp coll/200."""
    coll, debt = 10 * E, 16_000 * E
    gas_comp = coll // 200  # 0.05 ETH to the liquidator
    assert gas_comp == 5 * 10**16
    to_liquidate = coll - gas_comp  # 9.95 ETH
    off, coll_sp = offset_and_redistribution(debt, to_liquidate, pool.max_offset())
    return off, coll_sp, debt - off, to_liquidate - coll_sp


def test_lqty_4_head_keeps_one_lusd() -> None:
    pool, _ = BackstopPool.new(keep=E).deposit(A, 10_000 * E)
    # maxOffset = 10,000 − min(1, 10,000) = 9,999 LUSD
    assert pool.max_offset() == 9_999 * E
    off, coll_sp, debt_rd, coll_rd = _liquity_trove(pool)
    # collToSP = 9.95 · 9,999/16,000 = 6.218128125 ETH; the rest is redistributed
    assert (off, coll_sp) == (9_999 * E, 6_218_128_125 * 10**9)
    assert (debt_rd, coll_rd) == (6_001 * E, 3_731_871_875 * 10**9)
    pool2, r = pool.offset(off, {ETH: coll_sp})
    # LUSDLossPerUnitStaked = 9,999e18·1e18 // 10,000e18 + 1 = 0.9999e18 + 1
    assert r.loss_per_unit_staked == 999_900_000_000_000_001
    # P = 1e18 · (1e18 − 999900000000000001) // 1e18 = 99999999999999
    assert r.p == 99_999_999_999_999 and r.scale == 0 and r.epoch == 0
    # ETHGainPerUnitStaked = 6.218128125e18·1e18 // 10,000e18
    assert r.gain_per_unit_staked[ETH] == 621_812_812_500_000
    # the depositor keeps just under 1 LUSD (error favours the pool) and gets all the ETH
    assert pool2.total == E
    assert pool2.compounded_deposit(A) == 10_000 * E * 99_999_999_999_999 // E
    assert pool2.compounded_deposit(A) == 999_999_999_999_990_000 <= pool2.total
    assert pool2.collateral_gain(A) == {ETH: coll_sp}


def test_lqty_4b_v1_empties_pool_and_increments_epoch() -> None:
    pool, _ = BackstopPool.new().deposit(A, 10_000 * E)
    assert pool.max_offset() == 10_000 * E
    off, coll_sp, debt_rd, coll_rd = _liquity_trove(pool)
    # collToSP = 9.95 · 10,000/16,000 = 6.21875 ETH; redistribute 6,000 LUSD + 3.73125 ETH
    assert (off, coll_sp) == (10_000 * E, 6_218_750 * 10**12)
    assert (debt_rd, coll_rd) == (6_000 * E, 3_731_250 * 10**12)
    pool2, r = pool.offset(off, {ETH: coll_sp})
    assert r.loss_per_unit_staked == E  # debt == total: the whole pool
    assert (r.p, r.scale, r.epoch) == (E, 0, 1)
    assert pool2.total == 0 and pool2.loss_error == 0
    assert pool2.compounded_deposit(A) == 0  # epoch0 < epoch
    assert pool2.collateral_gain(A) == {ETH: coll_sp}
    # a new depositor starts fresh in epoch 1 and the old one can still claim its ETH
    pool3, _ = pool2.deposit(B, 5 * E)
    assert pool3.compounded_deposit(B) == 5 * E
    pool4, pay = pool3.withdraw(A, 0)
    assert pay.deposit == 0 and pay.collateral == {ETH: coll_sp}
    assert A not in pool4.deposits and pool4.collateral == {ETH: 0}


def test_scale_change_keeps_p_above_scale_factor() -> None:
    pool, _ = BackstopPool.new().deposit(A, 100 * E)
    # offset all but 1e12 units: loss = (1e20 − 1e12)·1e18 // 1e20 + 1 = 1e18 − 1e10 + 1
    pool, r = pool.offset(100 * E - 10**12, {ETH: E})
    assert r.loss_per_unit_staked == E - 10**10 + 1
    assert (r.p, r.scale) == (9_999_999_999, 0)  # 1e18·(1e10 − 1)//1e18
    assert pool.loss_error == 10**20  # loss·D − num: the overcharge, refunded next time
    pool, _ = pool.deposit(B, 10**12)  # B enters at P0 = 9,999,999,999
    # offset 99% of 2e12: num = 1.98e30 − 1e20, loss = num // 2e12 + 1
    pool, r = pool.offset(198 * 10**10, {ETH: E})
    assert r.loss_per_unit_staked == 989_999_999_950_000_001
    # P·f//1e18 = 9,999,999,999 · 10,000,000,049,999,999 // 1e18 ≈ 1e8 < 1e9: scale change
    assert r.scale == 1 and r.p == 9_999_999_999 * 10_000_000_049_999_999 * 10**9 // E
    assert r.p >= pool.scale_factor
    # B: d0·P//P0//1e9 ≈ 1e10 (1%), plus ~49 units of A's earlier overcharge refunded
    assert pool.compounded_deposit(B) == 10_000_000_049
    # A fell below a billionth of its 1e20: zeroed, as Liquity (dust stays in the pool)
    assert pool.compounded_deposit(A) == 0
    assert pool.compounded_deposit(B) <= pool.total == 2 * 10**10
    gains = pool.collateral_gain(A)[ETH] + pool.collateral_gain(B)[ETH]
    assert gains <= pool.collateral[ETH] == 2 * E


def test_double_scale_change() -> None:
    pool, _ = BackstopPool.new().deposit(A, 10**30)
    # loss = (1e18 − 1e9 − 2) + 1: f = 1e9 + 1, P = 1e18·f // 1e18 = 1,000,000,001 (no change)
    pool, r = pool.offset((E - 10**9 - 2) * 10**12, {})
    assert (r.p, r.scale) == (1_000_000_001, 0)
    pool, _ = pool.deposit(B, 10**30)  # spreads A's overcharge refund thin
    # leave a 1e-10 fraction: f = 1e8; P·f//1e18 = 0 and P·f·1e9//1e18 = 0 < 1e9 as well,
    # so HEAD scales twice: P = P·f·1e18//1e18 = 1,000,000,001e8
    pool, r = pool.offset(pool.total - pool.total // 10**10, {})
    assert 10**18 - r.loss_per_unit_staked == 10**8
    assert (r.p, r.scale) == (100_000_000_100_000_000, 2)
    assert r.p >= pool.scale_factor
    # B kept 1e-10 of its deposit, below a billionth: zero (Liquity), the dust stays counted
    assert pool.compounded_deposit(B) == 0 and pool.total == 100_000_000_100_000_000_200


def test_multi_collateral_sums_are_separate() -> None:
    pool, _ = BackstopPool.new().deposit(A, 30 * E)
    pool, _ = pool.deposit(B, 10 * E)
    pool, r = pool.offset(4 * E, {ETH: 2 * E, WBTC: 100})
    # per unit staked: ETH 2e18·1e18 // 40e18 = 5e16; WBTC 100·1e18 // 40e18 = 2 (err 20e18)
    assert r.gain_per_unit_staked == {ETH: 5 * 10**16, WBTC: 2}
    assert pool.gain_errors[WBTC] == 20 * E
    # A holds 3/4: 1.5 ETH, 75 WBTC units; B 0.5 ETH, 25
    assert pool.collateral_gain(A) == {ETH: 15 * 10**17, WBTC: 60}
    assert pool.collateral_gain(B) == {ETH: 5 * 10**17, WBTC: 20}
    # WBTC: S = 2·1e18 per unit; A = 30e18·2e18//1e18//1e18 = 60, B 20: 20 units undistributed
    # carried in the error (20e18 / 40e18 = 0.5 per unit) to the next offset


@pytest.mark.parametrize(
    ("op", "match"),
    [
        (lambda p: p.deposit(A, -1), "amount=-1"),
        (lambda p: p.deposit(A, 0), "amount=0"),
        (lambda p: p.deposit("nonamespace", 5), "depositor='nonamespace'"),
        (lambda p: p.withdraw(C, 1), r"depositor='t/c' has no deposit"),
        (lambda p: p.withdraw(A, 10 * E + 1), rf"amount={10 * E + 1} exceeds the compounded"),
        (lambda p: p.offset(-1, {}), "debt=-1"),
        (lambda p: p.offset(10 * E + 1, {ETH: 1}), rf"debt={10 * E + 1} exceeds max_offset"),
        (lambda p: p.offset(1, {ETH: -5}), r"collateral\[eth/ETH\]=-5"),
        (lambda p: p.offset(0, {ETH: 5}), "debt=0 with collateral"),
        (lambda p: p.compounded_deposit(C), "t/c"),
        (lambda p: p.offset(E, {ETH: 1.5}), "must be an int"),
    ],
)
def test_bad_input_raises_and_changes_nothing(op: object, match: str) -> None:
    pool, _ = BackstopPool.new().deposit(A, 10 * E)
    before = (pool.total, dict(pool.deposits), pool.p, dict(pool.collateral))
    with pytest.raises(InvalidArgument, match=match):
        op(pool)  # type: ignore[operator]
    assert (pool.total, dict(pool.deposits), pool.p, dict(pool.collateral)) == before


def test_precision_must_be_a_square() -> None:
    with pytest.raises(InvalidArgument, match="precision=1000"):
        BackstopPool.new(precision=1000)


def test_redistribution_by_hand() -> None:
    r = Redistribution.of({A: 1, B: 2})  # stakes 1 : 2, total 3
    r = r.redistribute(debt=10, collateral=5)
    # L_debt = 10e18 // 3 = 3333333333333333333, error 10e18 − 3·that = 1
    assert (r.l_debt, r.debt_error) == (3_333_333_333_333_333_333, 1)
    # L_coll = 5e18 // 3 = 1666666666666666666, error 2
    assert (r.l_coll, r.coll_error) == (1_666_666_666_666_666_666, 2)
    # pending = stake·L // 1e18: A (1, 3), B (3, 6); 1 coll and 1 debt not yet attributable
    assert r.pending(A) == (1, 3) and r.pending(B) == (3, 6)
    assert r.undistributed() == (1, 1)
    # next: debt 2, coll 1 with the errors fed back: (2e18 + 1)//3 = 666666666666666667 (err 0)
    r = r.redistribute(debt=2, collateral=1)
    assert (r.l_debt, r.debt_error) == (4 * E, 0) and (r.l_coll, r.coll_error) == (2 * E, 0)
    # A: 1·4 = 4 debt, 2 coll; B: 8, 4: Σ = 12 debt, 6 coll, exactly what came in
    assert r.pending(A) == (2, 4) and r.pending(B) == (4, 8)
    assert r.undistributed() == (0, 0)
    r2, moved = r.set_stake(A, 0)  # apply A's rewards and remove its stake
    assert moved == (2, 4) and A not in r2.stakes and r2.undistributed() == (0, 0)
    assert (r2.coll_out, r2.debt_out) == (2, 4)


def test_redistribution_rejects_empty_and_unknown() -> None:
    with pytest.raises(InvalidArgument, match="no stakes"):
        Redistribution.of({}).redistribute(debt=1, collateral=0)
    with pytest.raises(InvalidArgument, match="t/c"):
        Redistribution.of({A: 1}).pending(C)


# --- properties ----------------------------------------------------------------------

WHO = (A, B, C, AccountId("t/d"))
_ops = st.lists(
    st.tuples(
        st.sampled_from(["deposit", "withdraw", "offset"]),
        st.integers(0, len(WHO) - 1),
        st.integers(1, 10**15),
        st.integers(0, 10**15),
    ),
    max_size=25,
)


def _run(pool: BackstopPool, ops: list[tuple[str, int, int, int]], tight: bool) -> None:
    deposited = withdrawn = burned = coll_in = coll_paid = touches = 0
    for kind, i, x, y in ops:
        who = WHO[i]
        if kind == "deposit":
            touches += who in pool.deposits
            pool, pay = pool.deposit(who, x)
            deposited += x
        elif kind == "withdraw":
            if who not in pool.deposits:
                continue
            touches += 1
            pool, pay = pool.withdraw(who, min(x, pool.compounded_deposit(who)))
            withdrawn += pay.deposit
        else:
            debt = min(x, pool.max_offset())
            if debt == 0:
                continue
            pool, _ = pool.offset(debt, {ETH: y})
            burned += debt
            coll_in += y
            continue
        coll_paid += pay.collateral.get(ETH, 0)
        # conservation: every unit is in the pool or was paid out
        assert pool.total == deposited - withdrawn - burned
        assert pool.collateral.get(ETH, 0) == coll_in - coll_paid
        compounded = sum(pool.compounded_deposit(w) for w in pool.deposits)
        gains = sum(pool.collateral_gain(w).get(ETH, 0) for w in pool.deposits)
        # rounding never creates money
        assert compounded <= pool.total
        assert gains <= pool.collateral.get(ETH, 0)
        if tight:
            # each floor loses < 1 unit: one per current depositor, one per crystallised
            # deposit (touch); plus < 1 unit of outstanding +1 overcharge in the loss error
            assert pool.total - compounded <= len(pool.deposits) + touches + 1


@settings(max_examples=150, deadline=None)
@given(_ops, st.sampled_from([0, E]))
def test_liquity_precision_never_creates_money(
    ops: list[tuple[str, int, int, int]], keep: int
) -> None:
    _run(BackstopPool.new(keep=keep), ops, tight=False)


@settings(max_examples=150, deadline=None)
@given(_ops)
def test_high_precision_loses_at_most_a_unit_per_rounding(
    ops: list[tuple[str, int, int, int]],
) -> None:
    # precision 1e36 (scale factor 1e18) with deposits <= 1e15 units: P's relative error
    # per offset <= 1e-18, so all the shortfall is the documented per-floor unit
    _run(BackstopPool.new(precision=10**36), ops, tight=True)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(st.sampled_from(WHO), st.integers(1, 10**20), min_size=1),
    st.lists(st.tuples(st.integers(0, 10**22), st.integers(0, 10**22)), max_size=10),
)
def test_redistribution_never_overassigns(
    stakes: dict[AccountId, int], shocks: list[tuple[int, int]]
) -> None:
    r = Redistribution.of(stakes)
    for debt, coll in shocks:
        r = r.redistribute(debt, coll)
        uc, ud = r.undistributed()
        assert uc >= 0 and ud >= 0
        # left over: < 1 unit per stake (floors) plus the carried error, which is
        # < totalStakes in 1e18-scaled units, i.e. < totalStakes/1e18 + 1 units
        bound = len(stakes) + sum(stakes.values()) // E + 1
        assert uc <= bound and ud <= bound
