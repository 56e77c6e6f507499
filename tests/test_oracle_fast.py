"""The compiled ``Feed`` against ``ReferenceFeed`` (the pure-Python feed it replaced): the
same random configurations and report streams give equal outputs, states, refusals and
governance answers, step after step, with snapshots and restores in between."""

from __future__ import annotations

import contextlib
import random
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liqeng.errors import InvalidArgument
from liqeng.oracle import kernel
from liqeng.oracle.config import MarketConfig, SourceConfig
from liqeng.oracle.feed import Feed, FeedHealth, MarketPrice, _market_price
from liqeng.oracle.feed_reference import ReferenceFeed
from liqeng.oracle.reports import SourceReport
from liqeng.units import PRICE_MAX, RATE_SCALE

S = RATE_SCALE
NAMES = ["a", "b", "c", "d", "e", "f"]
MARKETS = ["ETH", "BTC", "SOL"]
SCALES = [1, 7, 1000, 10**9, 10**15, 2**61, 2**62 - 10**6, 2**62, 2**70, PRICE_MAX // 4]
SMALL = [1, 7, 1000, 10**9, 10**15, 2**60]  # the kernel's range (x3 stays below 2**62)
HEALTHS = [Fraction(1, 2), Fraction(96, 100), Fraction(3, 2)]

rate = st.integers(1, S)
opt_rate = st.none() | rate


@st.composite
def market_config(draw: st.DrawFn, market: str) -> MarketConfig:
    n = draw(st.integers(1, 6))
    names = draw(st.permutations(NAMES))[:n]
    sources = tuple(
        SourceConfig(
            name,
            weight=draw(st.sampled_from([1, 1, 2, 3, 10**6])),
            max_age_s=draw(st.sampled_from([5, 30, 60, 2**40])),
            max_jump=draw(st.none() | st.sampled_from([S // 10, S // 2, S]) | rate),
        )
        for name in names
    )
    return MarketConfig(
        market,
        sources,
        quorum=draw(st.integers(1, max(1, n // 2)) | st.integers(1, n)),
        mad_k=draw(st.none() | st.sampled_from([3 * S, S, 100 * S]) | st.integers(1, 10 * S)),
        mad_floor=draw(st.sampled_from([0, 1, 1_000_000, 1_000_000, 10**8, S])),
        max_deviation=draw(st.none() | st.sampled_from([S // 10, S]) | rate),
        max_confidence=draw(st.none() | st.sampled_from([S // 100, S]) | rate),
        corroboration=draw(st.sampled_from([0, 50_000_000, S])),
        sticky_distrust=draw(st.booleans()),
        max_move=draw(st.none() | st.sampled_from([S // 10, S // 2, 3 * S])),
        move_interval_s=draw(st.none() | st.sampled_from([1, 10, 60])),
        confirm_updates=draw(st.integers(1, 4)),
        confirm_supermajority=draw(st.sampled_from([1, 500_000_000, 666_666_667, S])),
        delay_s=draw(st.none() | st.sampled_from([1, 10, 60])),
        twap_window_s=draw(st.none() | st.sampled_from([1, 20, 120])),
        twap_guard_window_s=draw(st.none() | st.sampled_from([5, 60])),
        twap_guard_bound=draw(st.sampled_from([S // 100, S // 2, 100 * S])),
        breaker_tolerance=draw(st.none() | st.sampled_from([S // 2, 900_000_000, S])),
        grace_period_s=draw(st.sampled_from([0, 10, 100])),
        grace_health_floor=Fraction(95, 100),
        band_tolerance=draw(st.sampled_from([0, 1, 2, 10**6])),
    )


@st.composite
def configs(draw: st.DrawFn) -> list[MarketConfig]:
    n = draw(st.integers(1, 3))
    return [draw(market_config(m)) for m in MARKETS[:n]]


def _same_types(mp: MarketPrice) -> None:
    """Outputs are Python ints (never numpy scalars), as the reference's."""
    for v in (mp.ts, mp.price, mp.next_price, mp.index, mp.twap, mp.grace_until):
        assert v is None or type(v) is int
    for v in (mp.sources_agreed, mp.sources_fresh, mp.breaker):
        assert type(v) is int
    if mp.band is not None:
        assert all(type(x) is int for x in mp.band)


def _refusal(feed: Any, report: Any, now: Any) -> str | None:
    try:
        feed.submit(report, now)
    except InvalidArgument as exc:
        return str(exc)
    return None


def _compare_queries(ref: ReferenceFeed, fast: Feed, cfgs: list[MarketConfig]) -> None:
    for c in cfgs:
        m = c.market
        assert ref.latest(m) == fast.latest(m)
        assert ref.health(m) is fast.health(m)
        assert ref.breaker(m) == fast.breaker(m)
        assert ref.new_liquidations_allowed(m) == fast.new_liquidations_allowed(m)
        assert ref.resets_allowed(m) == fast.resets_allowed(m)
        assert ref.takes_allowed(m) == fast.takes_allowed(m)
        for h in HEALTHS:
            assert ref.liquidation_allowed(m, h) == fast.liquidation_allowed(m, h)


def _junk(rnd: random.Random, now: int) -> Any:
    if rnd.random() < 0.2:
        return "not a report"
    return SourceReport(rnd.choice([*NAMES, "zz"]), rnd.choice([*MARKETS, "DOGE"]), 5, now)


def _report(
    rnd: random.Random, c: MarketConfig, src: str, mid: dict[str, int], now: int, wild: bool
) -> Any:
    price = mid[c.market]
    r = rnd.random()
    if r < 0.1:
        price = price * rnd.choice([2, 3]) + rnd.randrange(3)  # liar up
    elif r < 0.2:
        price = max(1, price // rnd.choice([2, 3, 10]))  # liar down
    elif r < 0.22:
        big = wild and rnd.random() < 0.1
        price = rnd.choice(SCALES if big else SMALL) + rnd.randrange(1000)  # another scale
    elif wild and r < 0.23:
        price = rnd.randrange(1, 2**63)
    else:
        noise = max(1, price // rnd.choice([20, 100, 10**4, 10**9]))
        price = price + rnd.randrange(-noise, noise + 1)
    price = min(max(price, 1), PRICE_MAX)
    conf = None
    if rnd.random() < 0.3:
        conf = rnd.choice([0, price // 1000, price // 10, price, price + 1, 2 * price, PRICE_MAX])
        conf = min(conf, PRICE_MAX)
    ts = now - rnd.choice([0, 0, 0, 1, 3, 10, 40, 100]) + (1 if rnd.random() < 0.03 else 0)
    return SourceReport(src, c.market, price, max(ts, 0), conf)


def _run(cfgs: list[MarketConfig], seed: int, steps: int) -> None:
    rnd = random.Random(seed)
    ref, fast = ReferenceFeed(cfgs), Feed(cfgs)
    assert ref.max_age_s == fast.max_age_s
    mid = {c.market: rnd.choice(SMALL) + rnd.randrange(10**6) for c in cfgs}
    wild = rnd.random() < 0.25  # prices beyond the kernel's range too
    now = rnd.randrange(0, 200)
    saved: list[tuple[object, object]] = []
    for _ in range(steps):
        now += rnd.choice([0, 1, 1, 2, 5, 10, 30, 200])
        for m in mid:
            if rnd.random() < 0.1:
                scales = SCALES if wild else SMALL
                mid[m] = rnd.choice(scales) + rnd.randrange(10**6)
            else:
                mid[m] = max(1, mid[m] + mid[m] // rnd.choice([-3, -10, 100, 10**6, 3, 10]))
            mid[m] = min(mid[m], PRICE_MAX)
        if rnd.random() < 0.3:
            saved.append((ref.snapshot(), fast.snapshot()))
        reports = [
            _report(rnd, c, sc.name, mid, now, wild)
            for c in cfgs
            for sc in c.sources
            if rnd.random() < 0.75
        ]
        reports += [_junk(rnd, now) for _ in range(rnd.choice([0, 0, 1, 3]))]
        reports += [
            _report(rnd, c, rnd.choice(c.sources).name, mid, now, wild)
            for c in cfgs
            if rnd.random() < 0.3
        ]
        rnd.shuffle(reports)
        step_now: Any = now if rnd.random() > 0.02 else rnd.choice([now - 1000, 2.5, -1])
        if rnd.random() < 0.5:
            expected = [_refusal(ref, r, step_now) for r in reports]
            got = [_refusal(fast, r, step_now) for r in reports]
            assert got == expected
        else:
            expected_many = [
                (k, msg)
                for k, r in enumerate(reports)
                if (msg := _refusal(ref, r, step_now)) is not None
            ]
            refused = fast.submit_many(reports, step_now)
            assert [(k, str(e)) for k, e in refused] == expected_many
        if rnd.random() < 0.1:
            c = rnd.choice(cfgs)
            level = rnd.choice([0, 0, 1, 2, 3])
            ref.set_breaker(c.market, level, "governance")
            fast.set_breaker(c.market, level, "governance")
        upd_now = now if rnd.random() > 0.02 else now - 1000
        try:
            expected_out = ref.update(upd_now)
        except InvalidArgument as exc:
            with pytest.raises(InvalidArgument) as info:
                fast.update(upd_now)
            assert str(info.value) == str(exc)
        else:
            out = fast.update(upd_now)
            assert out == expected_out
            assert list(out) == list(expected_out)
            for mp in out.values():
                _same_types(mp)
        _compare_queries(ref, fast, cfgs)
        if saved and rnd.random() < 0.15:
            r_snap, f_snap = rnd.choice(saved)
            ref.restore(r_snap)
            fast.restore(f_snap)
            _compare_queries(ref, fast, cfgs)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfgs=configs(), seed=st.integers(0, 2**32 - 1))
def test_fast_feed_equals_the_reference(cfgs: list[MarketConfig], seed: int) -> None:
    _run(cfgs, seed, 40)


@pytest.mark.parametrize("seed", range(6))
def test_fast_feed_equals_the_reference_on_long_streams(seed: int) -> None:
    rnd = random.Random(seed)
    # a few fixed configurations: the presets' common case and every guard on
    plain = [MarketConfig(m, tuple(SourceConfig(n) for n in NAMES[:5]), quorum=3) for m in MARKETS]
    guarded = [
        MarketConfig(
            m,
            tuple(SourceConfig(n, max_jump=S // 2, max_age_s=30) for n in NAMES[: 2 + i]),
            quorum=1,
            max_confidence=S // 50,
            sticky_distrust=True,
            max_move=S // 10,
            move_interval_s=10,
            delay_s=10,
            twap_window_s=60,
            twap_guard_window_s=20,
            grace_period_s=30,
        )
        for i, m in enumerate(MARKETS)
    ]
    _run(plain if seed % 2 else guarded, rnd.randrange(2**32), 400)


@settings(max_examples=500, deadline=None)
@given(
    a=st.integers(0, 2**63 - 1),
    b=st.integers(0, 2**63 - 1),
    c=st.integers(0, 2**63 - 1),
    d=st.integers(0, 2**63 - 1),
)
def test_exact_128_bit_comparison(a: int, b: int, c: int, d: int) -> None:
    assert kernel._gt(a, b, c, d) == (a * b > c * d)
    assert kernel._gt(a, b, a, b) is False
    assert kernel._gt(c, d, a, b) == (c * d > a * b)


def test_market_price_factory_builds_the_same_object() -> None:
    args: tuple[Any, ...] = (
        "ETH",
        1,
        100,
        101,
        100,
        None,
        3,
        4,
        FeedHealth.DEGRADED,
        False,
        0,
        None,
        (("a", "used"),),
        ("why",),
        (99, 101),
    )
    made, built = _market_price(*args), MarketPrice(*args)
    assert made == built and hash(made) == hash(built) and repr(made) == repr(built)
    with pytest.raises(AttributeError):
        made.price = 5  # type: ignore[misc]


def test_huge_prices_move_a_market_to_the_exact_path_for_good() -> None:
    cfg = MarketConfig("ETH", tuple(SourceConfig(n) for n in "abc"), quorum=2)
    ref, fast = ReferenceFeed([cfg]), Feed([cfg])
    for t, base in enumerate([10**9, 2**70, 10**9, 2**63 - 5, 2**62 - 1]):
        for k, n in enumerate("abc"):
            for f in (ref, fast):
                f.submit(SourceReport(n, "ETH", base + k, t), t)
        assert fast.update(t) == ref.update(t)
    assert fast._exact == [True]


def test_a_refused_batch_changes_nothing() -> None:
    cfg = MarketConfig("ETH", tuple(SourceConfig(n) for n in "abc"), quorum=2)
    fast = Feed([cfg])
    fast.submit_many([SourceReport(n, "ETH", 100, 5) for n in "abc"], 5)
    fast.update(5)
    before = fast.snapshot()
    bad = [SourceReport("a", "ETH", 100, 5), SourceReport("x", "ETH", 1, 5), None]
    refused = fast.submit_many(bad, 6)  # type: ignore[arg-type]
    assert [k for k, _ in refused] == [0, 1, 2]
    assert fast.snapshot() == before
    refused = fast.submit_many([SourceReport("a", "ETH", 100, 6)], 4)
    assert [str(e) for _, e in refused] == ["now=4 is before the last update at 5"]
    assert fast.snapshot() == before
    with contextlib.suppress(InvalidArgument):
        fast.update(4)
    assert fast.snapshot() == before
