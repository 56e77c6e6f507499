"""Liquity's PriceFeed as a Feed preset: vectors LQTY-PF1..PF8 (anchors.md §3.5).

Prices are 18-decimal integers as Liquity stores them. Each vector starts in status 0
(``chainlinkWorking``): a previous Chainlink round is submitted and aggregated, then the
current round, then ``update`` gives the status and price Liquity's tests assert.
"""

from __future__ import annotations

from liqeng.oracle import Feed, FeedHealth, MarketPrice, SourceReport
from liqeng.oracle.presets import liquity, liquity_status, scale_to_digits

E18 = 10**18
T0 = 1_000_000


def cl(answer: int) -> int:
    """A Chainlink answer with 8 decimals, scaled to 18."""
    return scale_to_digits(answer, 8)


def tellor(value: int) -> int:
    """A Tellor value with 6 decimals, scaled to 18."""
    return scale_to_digits(value, 6)


def run(
    prev: int, cur: int, fallback: int | None, *, cur_age: int = 0, gap: int = 60
) -> tuple[int, MarketPrice]:
    """prev round at T0 (with the fallback agreeing), current round ``gap`` s later."""
    feed = Feed([liquity()])
    feed.submit(SourceReport("chainlink", "ETH", prev, T0), T0)
    feed.submit(SourceReport("tellor", "ETH", prev, T0), T0)
    first = feed.update(T0)["ETH"]
    assert (liquity_status(first), first.price) == (0, prev)
    now = T0 + gap + cur_age
    feed.submit(SourceReport("chainlink", "ETH", cur, T0 + gap), now)  # age cur_age
    if fallback is not None:
        feed.submit(SourceReport("tellor", "ETH", fallback, now), now)
    mp = feed.update(now)["ETH"]
    return liquity_status(mp), mp


def test_pf1_chainlink_working_and_decimal_scaling() -> None:
    status, mp = run(cl(10_0000_0000), cl(10_0000_0000), tellor(10_000_000))
    assert (status, mp.price) == (0, 10 * E18)
    # decimals 5, answer 123456789 -> 1234.56789 * 1e18
    assert scale_to_digits(123456789, 5) == 1234567890000000000000
    status, mp = run(cl(10_0000_0000), scale_to_digits(123456789, 5), tellor(1_234_567_890))
    assert (status, mp.price) == (0, 1234567890000000000000)


def test_pf2_chainlink_drop_above_half_uses_tellor() -> None:
    # 2.00000000 -> 0.99999999: (2 - 0.99999999)/2 > 50%; Tellor 2.03 is not within 5%
    status, mp = run(cl(2_0000_0000), cl(99999999), tellor(2_030_000))
    assert (status, mp.price) == (1, 203 * 10**16)
    assert mp.verdict("chainlink") == "jump"


def test_pf3_drop_of_exactly_half_keeps_chainlink() -> None:
    status, mp = run(cl(2_0000_0000), cl(1_0000_0000), tellor(2_030_000))
    assert (status, mp.price) == (0, E18)


def test_pf4_drop_above_half_confirmed_by_tellor_keeps_chainlink() -> None:
    # Tellor 0.999999 is within 5% of 0.99999999
    status, mp = run(cl(2_0000_0000), cl(99999999), tellor(999_999))
    assert (status, mp.price) == (0, 99999999 * 10**10)


def test_pf5_tellor_within_five_percent_keeps_chainlink() -> None:
    # (104.999999 - 100)/100 = 4.999999% <= 5%
    status, mp = run(cl(1000_0000_0000), cl(100_0000_0000), tellor(104_999_999))
    assert (status, mp.price) == (0, 100 * E18)


def test_pf6_tellor_beyond_five_percent_is_used() -> None:
    # (105.000001 - 100)/100 = 5.000001% > 5%
    status, mp = run(cl(1000_0000_0000), cl(100_0000_0000), tellor(105_000_001))
    assert (status, mp.price) == (1, 105000001 * 10**12)


def test_pf7_chainlink_frozen_over_four_hours_uses_tellor() -> None:
    # Liquity's test fast-forwards 14,400 s and mines a block: the age exceeds TIMEOUT
    status, mp = run(cl(999_0000_0000), cl(999_0000_0000), tellor(123_000_000), cur_age=14_401)
    assert (status, mp.price) == (3, 123 * E18)
    assert mp.verdict("chainlink") == "stale"


def test_timeout_boundary_is_strict() -> None:
    # frozen iff now - updatedAt > TIMEOUT: an age of exactly 14,400 s is still live
    status, mp = run(cl(999_0000_0000), cl(999_0000_0000), tellor(123_000_000), cur_age=14_400)
    assert (status, mp.price) == (0, 999 * E18)


def test_pf8_chainlink_under_three_hours_old_is_used() -> None:
    status, mp = run(cl(1234_0000_0000), cl(1234_0000_0000), tellor(1_234_000_000), cur_age=10_740)
    assert (status, mp.price) == (0, 1234 * E18)


def test_untrusted_chainlink_returns_only_when_tellor_agrees() -> None:
    """Liquity case 2: from status 1, back to 0 when both are live and within 5%."""
    status, _ = run(cl(1000_0000_0000), cl(100_0000_0000), tellor(105_000_001))
    assert status == 1
    feed = Feed([liquity()])
    feed.submit(SourceReport("chainlink", "ETH", 1000 * E18, T0), T0)
    feed.submit(SourceReport("tellor", "ETH", 1000 * E18, T0), T0)
    feed.update(T0)
    feed.submit(SourceReport("chainlink", "ETH", 100 * E18, T0 + 60), T0 + 60)
    feed.submit(SourceReport("tellor", "ETH", 110 * E18, T0 + 60), T0 + 60)
    assert liquity_status(feed.update(T0 + 60)["ETH"]) == 1
    # a new Chainlink round that no longer jumps, still 10% off Tellor: still untrusted
    feed.submit(SourceReport("chainlink", "ETH", 99 * E18, T0 + 120), T0 + 120)
    mp = feed.update(T0 + 120)["ETH"]
    assert (liquity_status(mp), mp.price, mp.verdict("chainlink")) == (1, 110 * E18, "distrusted")
    # Tellor comes within 5% of Chainlink: back to Chainlink
    feed.submit(SourceReport("tellor", "ETH", 103 * E18, T0 + 180), T0 + 180)
    mp = feed.update(T0 + 180)["ETH"]
    assert (liquity_status(mp), mp.price) == (0, 99 * E18)


def test_both_untrusted_returns_last_good_price_and_halts() -> None:
    feed = Feed([liquity()])
    feed.submit(SourceReport("chainlink", "ETH", 1000 * E18, T0), T0)
    feed.submit(SourceReport("tellor", "ETH", 1000 * E18, T0), T0)
    feed.update(T0)
    mp = feed.update(T0 + 14_401)["ETH"]
    assert (liquity_status(mp), mp.price, mp.health) == (2, 1000 * E18, FeedHealth.HALTED)
    assert not feed.liquidation_allowed("ETH", 0.5)
