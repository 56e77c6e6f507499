"""The skeleton oracle: median of fresh sources, quorum, edge validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liqeng.errors import InvalidArgument
from liqeng.oracle import MedianOracle, PriceReport

SOURCES = ["a", "b", "c", "d", "e"]


def oracle(quorum: int = 3) -> MedianOracle:
    return MedianOracle(SOURCES, ["ETH"], max_age_s=60, quorum=quorum)


def test_median_of_fresh_sources() -> None:
    o = oracle()
    for s, p in zip(SOURCES, [100, 101, 99, 102, 5_000], strict=True):
        o.submit(PriceReport(s, "ETH", p, 10), now=10)
    agg = o.aggregate("ETH", now=10)
    # sorted 99, 100, 101, 102, 5000 -> median 101; the liar at 5000 moves nothing
    assert agg is not None and (agg.price, agg.sources) == (101, 5)


def test_even_count_takes_the_lower_middle() -> None:
    o = oracle()
    for s, p in zip(SOURCES[:4], [100, 104, 102, 106], strict=True):
        o.submit(PriceReport(s, "ETH", p, 10), now=10)
    # sorted 100, 102, 104, 106 -> lower middle 102, never an average
    assert o.aggregate("ETH", 10).price == 102  # type: ignore[union-attr]


def test_stale_sources_drop_out_and_quorum_holds() -> None:
    o = oracle(quorum=3)
    o.submit(PriceReport("a", "ETH", 100, 0), now=0)
    o.submit(PriceReport("b", "ETH", 100, 50), now=50)
    o.submit(PriceReport("c", "ETH", 100, 50), now=50)
    assert o.aggregate("ETH", now=60) is not None  # a is 60 s old: still fresh
    assert o.aggregate("ETH", now=61) is None  # a is stale: 2 < quorum 3


@pytest.mark.parametrize(
    ("report", "needle"),
    [
        (lambda: PriceReport("a", "ETH", 0, 1), "price from a=0"),
        (lambda: PriceReport("a", "ETH", -5, 1), "price from a=-5"),
        (lambda: PriceReport("a", "ETH", 1.5, 1), "price from a=1.5"),  # type: ignore[arg-type]
        (lambda: PriceReport("a", "ETH", float("nan"), 1), "nan"),  # type: ignore[arg-type]
    ],
)
def test_malformed_reports_are_refused(report: object, needle: str) -> None:
    with pytest.raises(InvalidArgument, match=needle):
        report()  # type: ignore[operator]


def test_unknown_future_and_old_reports_change_nothing() -> None:
    o = oracle(quorum=1)
    o.submit(PriceReport("a", "ETH", 100, 10), now=10)
    for bad, needle in [
        (PriceReport("zz", "ETH", 1, 10), "source='zz'"),
        (PriceReport("a", "BTC", 1, 10), "underlying='BTC'"),
        (PriceReport("a", "ETH", 1, 11), "ts=11 from a is after now=10"),
        (PriceReport("a", "ETH", 1, 10), "not after its last ts=10"),
    ]:
        with pytest.raises(InvalidArgument, match=needle):
            o.submit(bad, now=10)
    assert o.aggregate("ETH", 10).price == 100  # type: ignore[union-attr]


@given(
    honest=st.lists(st.integers(1000, 1100), min_size=3, max_size=9),
    lies=st.data(),
)
def test_a_minority_of_liars_cannot_leave_the_honest_range(
    honest: list[int], lies: st.DataObject
) -> None:
    n_liars = lies.draw(st.integers(0, (len(honest) - 1) // 2))
    liars = lies.draw(st.lists(st.integers(1, 10**12), min_size=n_liars, max_size=n_liars))
    names = [f"s{i}" for i in range(len(honest) + n_liars)]
    o = MedianOracle(names, ["ETH"], max_age_s=60, quorum=1)
    for name, p in zip(names, honest + liars, strict=True):
        o.submit(PriceReport(name, "ETH", p, 5), now=5)
    agg = o.aggregate("ETH", 5)
    assert agg is not None and min(honest) <= agg.price <= max(honest)
