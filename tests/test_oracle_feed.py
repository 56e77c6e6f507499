"""The multi-source feed: edge validation, every guard and every health transition."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from liqeng.errors import InvalidArgument
from liqeng.oracle import (
    Feed,
    FeedHealth,
    MarketConfig,
    MarketPrice,
    SourceConfig,
    SourceReport,
)
from liqeng.units import RATE_SCALE as S

NAMES = ("a", "b", "c", "d", "e")


def config(n: int = 3, market: str = "ETH", **kw: Any) -> MarketConfig:
    kw.setdefault("sources", tuple(SourceConfig(x) for x in NAMES[:n]))
    return MarketConfig(market, **kw)


def push(feed: Feed, now: int, prices: dict[str, int], market: str = "ETH") -> MarketPrice:
    for src, p in prices.items():
        feed.submit(SourceReport(src, market, p, now), now)
    return feed.update(now)[market]


# ---- edge validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: SourceReport("a", "ETH", 0, 1), "price from a=0"),
        (lambda: SourceReport("a", "ETH", -5, 1), "price from a=-5"),
        (lambda: SourceReport("a", "ETH", float("nan"), 1), "nan"),  # type: ignore[arg-type]
        (lambda: SourceReport("a", "ETH", float("inf"), 1), "inf"),  # type: ignore[arg-type]
        (lambda: SourceReport("a", "ETH", 100, -1), "ts from a=-1"),
        (lambda: SourceReport("a", "ETH", 100, 1, confidence=-1), "confidence from a=-1"),
        (lambda: SourceReport("", "ETH", 100, 1), "source=''"),
        (lambda: SourceReport("a", "", 100, 1), "market=''"),
    ],
)
def test_malformed_reports_cannot_exist(make: Any, needle: str) -> None:
    with pytest.raises(InvalidArgument, match=needle):
        make()


@pytest.mark.parametrize(
    ("report", "now", "needle"),
    [
        (SourceReport("zz", "ETH", 100, 10), 10, "source='zz' is not a configured"),
        (SourceReport("a", "DOGE", 100, 10), 10, "market='DOGE' has no feed"),
        (SourceReport("c", "BTC", 100, 10), 10, "source='c' does not feed market='BTC'"),
        (SourceReport("a", "ETH", 100, 11), 10, "ts=11 from a is after now=10"),
        (SourceReport("a", "ETH", 100, 5), 10, "ts=5 from a for ETH is not after its last ts=5"),
        (SourceReport("a", "ETH", 100, 4), 10, "ts=4 from a for ETH is not after its last ts=5"),
        (SourceReport("a", "ETH", 100, 6), 3, "now=3 is before the last update at 5"),
        (SourceReport("a", "ETH", 100, 6), 6.5, "now=6.5"),
        ("not a report", 10, "must be a SourceReport"),
    ],
)
def test_refused_reports_change_nothing(report: Any, now: Any, needle: str) -> None:
    feed = Feed([config(), config(2, "BTC")])
    push(feed, 5, {"a": 100, "b": 101, "c": 102})
    before = feed.snapshot()
    with pytest.raises(InvalidArgument, match=needle):
        feed.submit(report, now)
    assert feed.snapshot() == before


def test_restore_puts_back_a_snapshot() -> None:
    feed = Feed([config(1)])
    feed.submit(SourceReport("a", "ETH", 100, 1), 1)
    before = feed.snapshot()
    assert feed.update(1)["ETH"].price == 100
    feed.restore(before)
    assert feed.snapshot() == before and feed.latest("ETH") is None
    with pytest.raises(InvalidArgument, match="not of this feed's markets"):
        feed.restore(Feed([MarketConfig("BTC", (SourceConfig("a"),))]).snapshot())


def test_update_refuses_time_going_backwards() -> None:
    feed = Feed([config()])
    feed.update(10)
    before = feed.snapshot()
    with pytest.raises(InvalidArgument, match="now=9 is before the last update at 10"):
        feed.update(9)
    assert feed.snapshot() == before


def test_config_validation_names_the_value() -> None:
    with pytest.raises(InvalidArgument, match="repeat a name"):
        MarketConfig("ETH", (SourceConfig("a"), SourceConfig("a")))
    with pytest.raises(InvalidArgument, match="quorum of ETH=3"):
        config(2, quorum=3)
    with pytest.raises(InvalidArgument, match="weight of a=0"):
        SourceConfig("a", weight=0)
    with pytest.raises(InvalidArgument, match="market='ETH' is configured twice"):
        Feed([config(), config()])


def test_max_age_s_defaults_to_the_shortest_source_age() -> None:
    srcs = (SourceConfig("a", max_age_s=30), SourceConfig("b", max_age_s=90))
    assert Feed([config(sources=srcs)]).max_age_s == 30
    assert Feed([config(sources=srcs)], max_age_s=45).max_age_s == 45


# ---- aggregation and health --------------------------------------------------------------


def test_healthy_when_every_source_is_used() -> None:
    mp = push(Feed([config(quorum=2)]), 10, {"a": 100, "b": 104, "c": 102})
    assert (mp.price, mp.next_price, mp.sources_agreed, mp.health) == (
        102,
        102,
        3,
        FeedHealth.HEALTHY,
    )


def test_degraded_when_a_source_is_stale_or_missing() -> None:
    feed = Feed([config(quorum=2)])
    mp = push(feed, 0, {"a": 100, "b": 101})
    assert (mp.health, mp.verdict("c")) == (FeedHealth.DEGRADED, "missing")
    push(feed, 30, {"b": 102, "c": 103})
    mp = feed.update(61)["ETH"]  # a reported at 0: 61 s > max_age_s 60
    assert (mp.health, mp.verdict("a"), mp.sources_fresh) == (FeedHealth.DEGRADED, "stale", 2)
    assert mp.price == 102


def test_degraded_when_an_outlier_is_rejected() -> None:
    mp = push(Feed([config(5, quorum=3)]), 10, {"a": 100, "b": 101, "c": 99, "d": 102, "e": 9000})
    assert (mp.health, mp.verdict("e"), mp.sources_agreed, mp.price) == (
        FeedHealth.DEGRADED,
        "outlier-mad",
        4,
        100,
    )


def test_degraded_when_confidence_is_too_wide() -> None:
    feed = Feed([config(max_confidence=S // 100)])  # 1%
    for src, conf in (("a", 1), ("b", 2), ("c", 5)):
        feed.submit(SourceReport(src, "ETH", 200, 10, confidence=conf), 10)
    mp = feed.update(10)["ETH"]
    # 5·S > 1%·S·200 = 2·S -> c refused; 2 <= 2 kept
    assert (mp.verdict("b"), mp.verdict("c"), mp.health) == (
        "used",
        "confidence",
        FeedHealth.DEGRADED,
    )


def test_halted_below_quorum_keeps_the_last_good_price_and_stops_liquidations() -> None:
    feed = Feed([config(quorum=2)])
    push(feed, 0, {"a": 100, "b": 100, "c": 100})
    assert feed.liquidation_allowed("ETH", Fraction(1, 2))
    push(feed, 50, {"a": 90})
    mp = feed.update(70)["ETH"]  # b, c stale: 1 < quorum 2
    assert (mp.health, mp.index, mp.price, mp.sources_agreed) == (FeedHealth.HALTED, None, 100, 1)
    assert "quorum lost" in mp.reasons[0]
    assert not feed.liquidation_allowed("ETH", Fraction(0))


def test_grace_period_after_recovery_admits_only_accounts_below_the_floor() -> None:
    feed = Feed([config(quorum=3, grace_period_s=600, grace_health_floor=Fraction(95, 100))])
    push(feed, 0, {"a": 100, "b": 100, "c": 100})
    assert feed.update(100)["ETH"].health is FeedHealth.HALTED
    mp = push(feed, 200, {"a": 100, "b": 100, "c": 100})
    assert (mp.health, mp.grace_until) == (FeedHealth.HEALTHY, 800)
    assert feed.liquidation_allowed("ETH", 0.94)  # below the hard floor
    assert not feed.liquidation_allowed("ETH", Fraction(95, 100))  # at the floor: wait
    assert not feed.liquidation_allowed("ETH", 0.99)
    push(feed, 799, {"a": 100, "b": 100, "c": 100})
    assert not feed.liquidation_allowed("ETH", 0.99)
    push(feed, 800, {"a": 100, "b": 100, "c": 100})
    assert feed.liquidation_allowed("ETH", 0.99)


def test_no_grace_at_the_first_price() -> None:
    feed = Feed([config(grace_period_s=600)])
    assert not feed.liquidation_allowed("ETH", 0.5)  # no update yet
    push(feed, 0, {"a": 100, "b": 100, "c": 100})
    assert feed.liquidation_allowed("ETH", 0.99)


@pytest.mark.parametrize("health", [float("nan"), float("inf"), "0.5", None, True])
def test_liquidation_allowed_refuses_a_malformed_health(health: Any) -> None:
    feed = Feed([config()])
    with pytest.raises(InvalidArgument, match="health="):
        feed.liquidation_allowed("ETH", health)
    with pytest.raises(InvalidArgument, match="market='X' has no feed"):
        feed.liquidation_allowed("X", 0.5)


def test_a_jumping_source_is_kept_only_when_another_source_corroborates_it() -> None:
    srcs = (SourceConfig("a", max_jump=S // 2), SourceConfig("b"), SourceConfig("c"))
    feed = Feed([config(sources=srcs, mad_k=None, max_deviation=None)])
    push(feed, 0, {"a": 100, "b": 100, "c": 100})
    mp = push(feed, 10, {"a": 40})  # -60% vs its last round, nobody near 40
    assert mp.verdict("a") == "jump"
    mp = push(feed, 20, {"b": 41})  # b within 5% of 40 corroborates a
    assert mp.verdict("a") == "used"


# ---- move guard --------------------------------------------------------------------------


def test_move_guard_freezes_a_minority_jump_until_it_persists() -> None:
    feed = Feed([config(5, max_move=S // 10, confirm_updates=3)])
    push(feed, 0, dict.fromkeys(NAMES, 100))
    # 3 of 5 at 150: the median jumps, but 3/5 < 2/3 of the weight confirms it
    jump = {"a": 150, "b": 150, "c": 150}
    for t in (10, 20):
        mp = push(feed, t, jump)
        assert (mp.frozen, mp.price, mp.index, mp.health) == (
            True,
            100,
            150,
            FeedHealth.DEGRADED,
        )
    mp = push(feed, 30, jump)  # third consecutive update beyond the bound
    assert (mp.frozen, mp.price) == (False, 150)
    assert "confirmed (persisted)" in mp.reasons[0]


def test_move_guard_accepts_a_supermajority_move_at_once() -> None:
    feed = Feed([config(5, max_move=S // 10)])
    push(feed, 0, dict.fromkeys(NAMES, 100))
    mp = push(feed, 10, {"a": 150, "b": 150, "c": 150, "d": 150})  # 4/5 >= 2/3
    assert (mp.frozen, mp.price) == (False, 150)
    assert "supermajority" in mp.reasons[0]


def test_move_guard_count_restarts_when_the_index_comes_back() -> None:
    feed = Feed([config(5, max_move=S // 10, confirm_updates=2)])
    push(feed, 0, dict.fromkeys(NAMES, 100))
    assert push(feed, 10, {"a": 150, "b": 150, "c": 150}).frozen
    assert not push(feed, 20, {"a": 101, "b": 101, "c": 101}).frozen  # back within 10%
    assert push(feed, 30, {"a": 150, "b": 150, "c": 150}).frozen  # count starts again at 1
    assert not push(feed, 40, {"a": 150, "b": 150, "c": 150}).frozen


def test_move_bound_widens_per_interval_since_the_last_good_price() -> None:
    feed = Feed([config(max_move=S // 10, move_interval_s=60, mad_k=None)])
    push(feed, 0, {"a": 100, "b": 100, "c": 100})
    assert push(feed, 60, {"a": 115, "b": 115, "c": 100}).frozen  # k = 1: 15% > 10%
    mp = push(feed, 120, {"a": 116, "b": 115, "c": 101})  # k = 2: 15% <= 20%
    assert (mp.frozen, mp.price) == (False, 115)


# ---- delay, TWAP, breakers ---------------------------------------------------------------


def test_delayed_price_lags_one_hop_and_the_next_price_leads() -> None:
    feed = Feed([config(1, delay_s=3600, breaker_tolerance=None)])
    mp = push(feed, 0, {"a": 100})
    assert (mp.price, mp.next_price) == (100, 100)
    mp = push(feed, 1800, {"a": 95})  # same hop: nothing moves
    assert (mp.price, mp.next_price) == (100, 100)
    mp = push(feed, 3600, {"a": 90})
    assert (mp.price, mp.next_price) == (100, 90)
    mp = push(feed, 7300, {"a": 80})
    assert (mp.price, mp.next_price) == (90, 80)


def test_a_large_drop_of_the_next_price_trips_the_breaker() -> None:
    feed = Feed([config(1, delay_s=3600, breaker_tolerance=S // 2)])
    push(feed, 0, {"a": 100})
    mp = push(feed, 3600, {"a": 49})  # 49 < 50% of 100
    assert (mp.breaker, mp.price, mp.next_price) == (2, 100, 49)
    assert feed.breaker("ETH")[0] == 2
    assert not feed.new_liquidations_allowed("ETH")
    assert not feed.resets_allowed("ETH")
    assert feed.takes_allowed("ETH")
    assert not feed.liquidation_allowed("ETH", 0.1)
    feed.set_breaker("ETH", 0, "governance reviewed the drop")
    assert feed.liquidation_allowed("ETH", 0.1)


def test_a_drop_within_tolerance_does_not_trip() -> None:
    feed = Feed([config(1, delay_s=3600, breaker_tolerance=S // 2)])
    push(feed, 0, {"a": 100})
    assert push(feed, 3600, {"a": 50}).breaker == 0  # 50 is not below 50% of 100


@pytest.mark.parametrize(
    ("level", "new", "reset", "take"),
    [
        (0, True, True, True),
        (1, False, True, True),
        (2, False, False, True),
        (3, False, False, False),
    ],
)
def test_governance_breaker_levels(level: int, new: bool, reset: bool, take: bool) -> None:
    feed = Feed([config()])
    push(feed, 0, {"a": 100, "b": 100, "c": 100})
    feed.set_breaker("ETH", level, "incident 42")
    assert feed.breaker("ETH") == (level, "incident 42")
    assert (
        feed.new_liquidations_allowed("ETH"),
        feed.resets_allowed("ETH"),
        feed.takes_allowed("ETH"),
    ) == (new, reset, take)
    assert feed.liquidation_allowed("ETH", 0.5) is new


def test_governance_breaker_refuses_bad_input_and_lowering_starts_grace() -> None:
    feed = Feed([config(grace_period_s=300)])
    push(feed, 0, {"a": 100, "b": 100, "c": 100})
    for args, needle in (
        (("ETH", 4, "x"), "breaker level=4"),
        (("ETH", 1, " "), "reason=' '"),
        (("BTC", 1, "x"), "market='BTC'"),
    ):
        before = feed.snapshot()
        with pytest.raises(InvalidArgument, match=needle):
            feed.set_breaker(*args)
        assert feed.snapshot() == before
    feed.set_breaker("ETH", 1, "halt")
    feed.set_breaker("ETH", 0, "resume")
    assert not feed.liquidation_allowed("ETH", 0.99)
    assert feed.liquidation_allowed("ETH", 0.5)
    push(feed, 300, {"a": 100, "b": 100, "c": 100})
    assert feed.liquidation_allowed("ETH", 0.99)


def test_twap_over_the_window() -> None:
    feed = Feed([config(1, twap_window_s=60)])
    push(feed, 0, {"a": 100})
    push(feed, 30, {"a": 200})
    assert push(feed, 60, {"a": 200}).twap == 150  # (100·30 + 200·30) / 60
    assert push(feed, 90, {"a": 200}).twap == 200  # window [30, 90] is all 200


def test_twap_guard_halts_while_the_price_is_far_from_its_own_twap() -> None:
    feed = Feed([config(1, twap_guard_window_s=300, twap_guard_bound=S // 2, grace_period_s=0)])
    for t in range(0, 301, 50):
        assert push(feed, t, {"a": 100}).health is FeedHealth.HEALTHY
    mp = push(feed, 350, {"a": 160})  # TWAP 100: 60% >= 50%
    assert mp.health is FeedHealth.HALTED
    assert not feed.liquidation_allowed("ETH", 0.1)
    # TWAP over [100, 400] = (100·250 + 160·50)/300 = 110: 45% < 50% -> back
    mp = push(feed, 400, {"a": 160})
    assert mp.health is FeedHealth.HEALTHY
    assert feed.liquidation_allowed("ETH", 0.9)


def test_markets_are_independent_and_outputs_deterministic() -> None:
    def run() -> list[dict[str, MarketPrice]]:
        feed = Feed([config(), config(2, "BTC", quorum=2)])
        out = []
        for t, eth, btc in ((0, 100, 50), (10, 101, 51), (100, 102, 52)):
            for s in "abc":
                feed.submit(SourceReport(s, "ETH", eth, t), t)
            feed.submit(SourceReport("a", "BTC", btc, t), t)
            if t < 100:
                feed.submit(SourceReport("b", "BTC", btc, t), t)
            out.append(dict(feed.update(t)))
        return out

    first = run()
    assert first == run()
    assert first[-1]["BTC"].health is FeedHealth.HALTED
    assert first[-1]["ETH"].health is FeedHealth.HEALTHY
