"""The pure aggregation formulas of ``liqeng.oracle.aggregate``, each with its arithmetic."""

from __future__ import annotations

from liqeng.oracle.aggregate import (
    Quote,
    aggregate,
    jumped,
    similar,
    twap,
    weighted_median,
    weighted_third_bounds,
)
from liqeng.units import RATE_SCALE as S


def quotes(*prices: int) -> list[Quote]:
    return [Quote(f"s{i}", p, 1) for i, p in enumerate(prices)]


def test_weighted_median_is_the_lower_median_and_honours_weights() -> None:
    # 100, 102, 104, 106: 2·cum >= 4 first at 102 (never the average 103)
    assert weighted_median([(100, 1), (104, 1), (102, 1), (106, 1)]) == 102
    # weights 1 and 3: 2·1 < 4, 2·4 >= 4 -> 200
    assert weighted_median([(100, 1), (200, 3)]) == 200
    assert weighted_median([(100, 3), (200, 1)]) == 100
    # upper: 2·cum > 4 first at 104
    assert weighted_median([(100, 1), (104, 1), (102, 1), (106, 1)], upper=True) == 104


def test_two_sources_are_never_mad_outliers_of_each_other() -> None:
    # m = 100, deviations 0 and 50: upper MAD 50, 50 <= 3·50 (a lower MAD of 0 would drop one);
    # the weight splits evenly, so the index is the midpoint of 100 and 150
    agg = aggregate(quotes(100, 150), mad_k=3 * S, mad_floor=0, max_deviation=None)
    assert (agg.rejected, agg.index) == ({}, 125)


def test_an_even_split_takes_the_midpoint_not_the_low_side() -> None:
    # five venues, one flash-crashed and dropped: the 4 survivors' lower median would be
    # 1_990 (2nd of 4); the midpoint of 1_990 and 2_010 is 2_000, where the 5 honest stood
    honest = aggregate(
        quotes(1_980, 1_990, 2_000, 2_010, 2_020), mad_k=3 * S, mad_floor=0, max_deviation=None
    )
    attacked = aggregate(
        quotes(1_000, 1_980, 1_990, 2_010, 2_020), mad_k=3 * S, mad_floor=0, max_deviation=None
    )
    assert honest.index == 2_000 and attacked.rejected == {"s0": "outlier-mad"}
    assert attacked.index == 2_000


def test_mad_rejects_a_far_outlier() -> None:
    # m = 101; deviations 1, 0, 2, 1, 49 -> MAD 1; 49·S·S > 3S·1S -> out
    agg = aggregate(quotes(100, 101, 99, 102, 150), mad_k=3 * S, mad_floor=0, max_deviation=None)
    assert agg.rejected == {"s4": "outlier-mad"}
    assert agg.index == 100  # lower median of 99, 100, 101, 102


def test_mad_floor_keeps_ticks_when_most_sources_agree_exactly() -> None:
    # MAD = 0; floor 0.1% of 100_000 = 100: 50 <= 3·100 keeps the tick
    kept = aggregate(
        quotes(100_000, 100_000, 100_000, 100_050), mad_k=3 * S, mad_floor=10**6, max_deviation=None
    )
    assert kept.rejected == {}
    dropped = aggregate(
        quotes(100_000, 100_000, 100_000, 100_050), mad_k=3 * S, mad_floor=0, max_deviation=None
    )
    assert dropped.rejected == {"s3": "outlier-mad"}


def test_max_deviation_rejects_relative_to_the_median() -> None:
    # m = 101: 19·S > 10%·S·101 = 10.1·S -> out; 110 - 101 = 9 <= 10.1 -> kept
    agg = aggregate(quotes(100, 101, 120, 110), mad_k=None, mad_floor=0, max_deviation=S // 10)
    assert agg.rejected == {"s2": "outlier-deviation"}


def test_clamp_keeps_the_index_inside_the_honest_range() -> None:
    # honest 38, 40, 79, 162, 173, liars 31, 33 (2 < 5/2). Sorted: 31 33 38 40 79 162 173,
    # m = 40; deviations 0 2 7 9 39 122 133 -> upper MAD 9, bound 27: survivors 31 33 38 40,
    # lower median 33 (a liar). Inner third of all seven: lo = 38 (3·3 > 7), hi = 79 -> 38.
    agg = aggregate(
        quotes(38, 79, 173, 162, 40, 31, 33), mad_k=3 * S, mad_floor=0, max_deviation=None
    )
    assert agg.survivors == ("s0", "s4", "s5", "s6")
    assert agg.index == 38
    pairs = [(p, 1) for p in (38, 79, 173, 162, 40, 31, 33)]
    assert weighted_third_bounds(pairs) == (38, 79)


def test_jump_and_similarity_boundaries_are_exact() -> None:
    assert not jumped(2 * 10**8, 10**8, S // 2)  # exactly 50%
    assert jumped(2 * 10**8, 10**8 - 1, S // 2)
    assert jumped(10**8 - 1, 2 * 10**8, S // 2)  # doubling and a bit, relative to the higher
    assert similar(100_000_000, 104_999_999, S // 20)  # 4.999999%
    assert similar(100, 105, S // 20)  # exactly 5%
    assert not similar(100_000_000, 105_000_001, S // 20)


def test_twap_is_time_weighted_and_floored() -> None:
    samples = [(0, 100), (10, 200)]
    assert twap(samples, 20, 20) == 150  # (100·10 + 200·10) / 20
    assert twap(samples, 20, 15) == 166  # (100·5 + 200·10) / 15 = 166.67
    assert twap(samples, 10, 60) == 100  # only [0, 10) is covered
    assert twap([(5, 7)], 5, 60) == 7  # empty span: the last price
    assert twap([], 5, 60) is None
