"""Loss waterfall, socialised loss and ADL (anchors §2.6, §2.7, §3.9 HL-4)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liqeng.errors import InvalidArgument
from liqeng.ids import AccountId
from liqeng.liquidation.waterfall import (
    STAGES,
    AdlCandidate,
    Waterfall,
    adl_index,
    adl_plan,
    adl_ranking,
    adl_ranking_dydx,
    socialise,
)

A, B, C, D = (AccountId(f"t/{x}") for x in "abcd")


def test_waterfall_default_chain() -> None:
    w = Waterfall()
    r = w.apply(1_000, {"insurance_fund": 300, "backstop_pool": 500, "socialised": None})
    # IF 300, pool min(700, 500) = 500, socialised the last 200
    assert [(c.stage, c.amount) for c in r.covers] == [
        ("insurance_fund", 300),
        ("backstop_pool", 500),
        ("socialised", 200),
    ]
    assert r.uncovered == 0 and r.paid_by("socialised") == 200


def test_waterfall_without_terminal_stage_reports_uncovered() -> None:
    w = Waterfall(("backstop_pool", "insurance_fund"))
    r = w.apply(1_000, {"insurance_fund": 100, "backstop_pool": 200})
    # pool first 200, IF 100, 700 uncovered: bad debt to book, never dropped
    assert [c.amount for c in r.covers] == [200, 100] and r.uncovered == 700


def test_waterfall_bounded_adl_then_socialised() -> None:
    w = Waterfall(("insurance_fund", "adl", "socialised"))
    r = w.apply(50, {"insurance_fund": 10, "adl": 15, "socialised": None})
    assert [c.amount for c in r.covers] == [10, 15, 25] and r.uncovered == 0


@pytest.mark.parametrize(
    ("stages", "caps", "match"),
    [
        (("insurance_fund", "bogus"), {}, "stage='bogus'"),
        (("adl", "adl"), {}, "repeat"),
        ((), {}, "non-empty"),
        (("insurance_fund",), {}, "stage='insurance_fund' is missing"),
        (("insurance_fund",), {"insurance_fund": None}, "must be an int"),
        (("insurance_fund",), {"insurance_fund": -1}, r"capacity\[insurance_fund\]=-1"),
        (("insurance_fund",), {"insurance_fund": 1, "adl": None}, "stage='adl' not in"),
    ],
)
def test_waterfall_validation(
    stages: tuple[str, ...], caps: dict[str, int | None], match: str
) -> None:
    with pytest.raises(InvalidArgument, match=match):
        Waterfall(stages).apply(10, caps)


def test_socialise_largest_remainder() -> None:
    # 7 over 5:3:2 (B = 10): 3.5, 2.1, 1.4 → floors 3, 2, 1 (=6); 1 left to the largest
    # remainder 35 mod 10 = 5 (A)
    assert socialise(7, {A: 5, B: 3, C: 2}) == {A: 4, B: 2, C: 1}
    # 10 over 10:10:10 → 3, 3, 3 and equal remainders (100 mod 30 = 10): the tie goes to
    # the smallest id
    assert socialise(10, {C: 10, B: 10, A: 10}) == {A: 4, B: 3, C: 3}
    # zero balances are listed and never haircut
    assert socialise(3, {A: 3, B: 0}) == {A: 3, B: 0}


def test_socialise_refuses_more_than_held() -> None:
    with pytest.raises(InvalidArgument, match="loss=11 exceeds the holders' total balance 10"):
        socialise(11, {A: 4, B: 6})
    with pytest.raises(InvalidArgument, match=r"balance\[t/a\]=-1"):
        socialise(0, {A: -1})


def _long(acct: AccountId, size: int, av: int, entry: int = 100, mark: int = 110) -> AdlCandidate:
    return AdlCandidate(acct, size, entry, mark, av)


def test_hl_4_adl_index() -> None:
    a = _long(A, 100, 2_000)  # notional 100·110 = 11,000
    b = _long(B, 50, 5_000)  # notional 5,500
    # A: (110/100)·(11,000/2,000) = 1.1·5.5 = 6.05; B: 1.1·1.1 = 1.21
    assert adl_index(a) == Fraction(605, 100)
    assert adl_index(b) == Fraction(121, 100)
    # the bankrupt position is short (losing_side -1): longs are deleveraged, A first
    assert adl_ranking([b, a], losing_side=-1) == (a, b)


def test_adl_ranking_filters_and_ties() -> None:
    a = _long(A, 100, 2_000)
    tie = _long(C, 100, 2_000)
    losing = _long(D, 100, 2_000, entry=120)  # underwater long: not profitable
    broke = _long(B, 100, 0)  # account value 0: excluded
    short = AdlCandidate(AccountId("t/e"), -100, 100, 90, 1_000)
    assert adl_ranking([tie, losing, broke, a, short], losing_side=-1) == (a, tie)
    # a short: (entry/mark)·(notional/AV) = (100/90)·(9,000/1,000) = 10
    assert adl_index(short) == 10
    assert adl_ranking([a, short], losing_side=1) == (short,)


def test_adl_ranking_dydx_rotates_from_start() -> None:
    cs = [_long(x, 10, 100, mark=90) for x in (C, A, B)]  # unprofitable ones count too
    assert [c.account for c in adl_ranking_dydx(cs, -1, start=0)] == [A, B, C]
    assert [c.account for c in adl_ranking_dydx(cs, -1, start=4)] == [B, C, A]
    assert adl_ranking_dydx(cs, 1, start=0) == ()


def test_adl_plan_partial_last_close() -> None:
    ranked = [_long(A, 60, 1), _long(B, 80, 1)]
    # longs close at bp 100 instead of mark 110: Δ = 10 per unit; Q = ceil(1,001/10) = 101
    plan = adl_plan(1_001, 100, ranked)
    assert [(c.account, c.size, c.price) for c in plan.closes] == [(A, -60, 100), (B, -41, 100)]
    # H(60) = floor(600) = 600; H(101) = min(1,001, 1,010) = 1,001 → B's haircut 401
    assert [c.haircut for c in plan.closes] == [600, 401]
    assert (plan.covered, plan.uncovered, plan.closed_size) == (1_001, 0, 101)
    # one unit less (100 units) covers only 1,000 < 1,001


def test_adl_plan_runs_out_and_reports_uncovered() -> None:
    plan = adl_plan(2_000, 100, [_long(A, 60, 1), _long(B, 80, 1)])
    assert plan.closed_size == 140 and plan.covered == 1_400 and plan.uncovered == 600


def test_adl_plan_shorts_and_decimals() -> None:
    # short holders close at bp 2,010 > mark 2,000 (Δ = 10 per whole token), sd = 3
    ranked = [AdlCandidate(A, -5_000, 2_100, 2_000, 10_000)]
    plan = adl_plan(7, 2_010, ranked, size_decimals=3)
    # Q = ceil(7·1,000/10) = 700 units (0.7 token); the short grows back by +700
    assert [(c.size, c.haircut) for c in plan.closes] == [(700, 7)]
    # 0.05 token short of Q: 650 units cover floor(6.5) = 6 only
    plan = adl_plan(7, 2_010, [AdlCandidate(A, -650, 2_100, 2_000, 10_000)], size_decimals=3)
    assert (plan.covered, plan.uncovered) == (6, 1)


@pytest.mark.parametrize(
    ("bp", "ranked", "match"),
    [
        (120, [_long(A, 10, 1)], "losing side of mark=110"),
        (100, [_long(A, 10, 1), _long(B, 10, 1, mark=111)], "differs"),
        (100, [_long(A, 10, 1), AdlCandidate(B, -10, 100, 110, 1)], "mix sides"),
    ],
)
def test_adl_plan_validation(bp: int, ranked: list[AdlCandidate], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        adl_plan(10, bp, ranked)


# --- properties ----------------------------------------------------------------------

_cap = st.one_of(st.none(), st.integers(0, 10**12))


@settings(max_examples=300, deadline=None)
@given(
    st.permutations(STAGES).flatmap(lambda p: st.integers(1, 4).map(lambda n: tuple(p[:n]))),
    st.integers(0, 10**12),
    st.lists(st.integers(0, 10**12), min_size=4, max_size=4),
    st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_waterfall_covers_exactly_once(
    stages: tuple[str, ...], loss: int, caps: list[int], unbounded: list[bool]
) -> None:
    capacities: dict[str, int | None] = {
        s: (None if u and s in ("socialised", "adl") else c)
        for s, c, u in zip(stages, caps, unbounded, strict=False)
    }
    r = Waterfall(stages).apply(loss, capacities)
    assert sum(c.amount for c in r.covers) + r.uncovered == loss
    assert r.uncovered >= 0
    for c in r.covers:
        cap = capacities[c.stage]
        assert c.amount >= 0 and (cap is None or c.amount <= cap)
    if any(capacities[s] is None for s in stages):
        assert r.uncovered == 0


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from([A, B, C, D]), st.integers(0, 10**15), min_size=1),
    st.data(),
)
def test_socialise_sums_exactly(holders: dict[AccountId, int], data: st.DataObject) -> None:
    loss = data.draw(st.integers(0, sum(holders.values())))
    cuts = socialise(loss, holders)
    assert sum(cuts.values()) == loss
    total = max(sum(holders.values()), 1)
    for a, h in cuts.items():
        assert 0 <= h <= holders[a]
        # within one unit of the exact pro-rata share
        assert abs(Fraction(h) - Fraction(loss * holders[a], total)) < 1
    # deterministic whatever the input order
    assert socialise(loss, dict(reversed(list(holders.items())))) == cuts


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 10**9),
    st.integers(1, 10**4),
    st.integers(0, 4),
    st.lists(st.integers(1, 10**6), min_size=1, max_size=5),
)
def test_adl_plan_closes_no_more_than_needed(
    loss: int, delta: int, sd: int, sizes: list[int]
) -> None:
    mark = 10**5
    ranked = [AdlCandidate(AccountId(f"t/x{i}"), s, 1, mark, 1) for i, s in enumerate(sizes)]
    plan = adl_plan(loss, mark - delta, ranked, size_decimals=sd)
    q = plan.closed_size
    assert sum(c.haircut for c in plan.closes) == plan.covered
    assert plan.covered + plan.uncovered == loss
    assert all(c.haircut >= 0 and -c.size > 0 for c in plan.closes)
    # closes follow the ranking; only the last may be partial
    for c, r in zip(plan.closes[:-1], ranked, strict=False):
        assert -c.size == r.size
    if plan.uncovered == 0:
        # q units cover the loss; q − 1 units do not
        assert q * delta >= loss * 10**sd > (q - 1) * delta
    else:
        assert q == sum(sizes)
