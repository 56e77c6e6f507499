"""Ready-made configurations.

``median_feed``: N equally weighted sources per market, each fresh for ``max_age_s``, a
quorum, and the default outlier guards (3·MAD, 10% from the median); every other
``MarketConfig`` setting may be passed through.

``liquity``: Liquity v1's ``PriceFeed`` as feed settings.

Liquity (``liquity/dev:packages/contracts/contracts/PriceFeed.sol``) reads Chainlink
(primary) and Tellor (fallback) and scales both to 18 decimals. Its rules map onto generic
``MarketConfig`` settings, with no special case in the aggregator:

==============================================  ================================================
Liquity rule                                    setting
==============================================  ================================================
``TIMEOUT = 14400``: frozen iff age > 4 h       ``max_age_s=14_400`` on both sources
Chainlink preferred while trusted               weights primary 2, fallback 1: the weighted
                                                median (and clamp) of the two is the primary
>50% change between rounds: suspect             ``max_jump=500_000_000`` on the primary
  kept iff Tellor within 5% (of the lower)      ``corroboration=50_000_000``
  else use Tellor, Chainlink untrusted          the fallback alone: ``quorum=1``
untrusted until both agree again                ``sticky_distrust=True``
nothing trustworthy: ``lastGoodPrice``          halted; ``price`` is the last good price
no outlier filter, move guard, delay or TWAP    ``mad_k``, ``max_deviation``, ``max_move``,
                                                ``delay_s``, ``twap_*`` and breaker off
==============================================  ================================================

``liquity_status`` projects a ``MarketPrice`` onto Liquity's status numbers:
0 ``chainlinkWorking`` (primary used, fallback reported at least once), 1
``usingTellorChainlinkUntrusted`` (fallback used, primary refused as a jump or distrusted),
2 ``bothOraclesUntrusted`` (no source used: last good price), 3
``usingTellorChainlinkFrozen`` (fallback used, primary stale or missing), 4
``usingChainlinkTellorUntrusted`` (primary used, fallback never reported: Liquity's "broken"
is refused at our edge, so "never reported" is the nearest state). The projection is
stateless: Liquity keeps status 1 while Tellor is only frozen and answers the last good
price; here that is status 2 with the same price.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from liqeng.errors import InvalidArgument
from liqeng.oracle.config import MarketConfig, SourceConfig
from liqeng.oracle.feed import Feed, MarketPrice
from liqeng.units import check_int

__all__ = ["LIQUITY_TIMEOUT_S", "liquity", "liquity_status", "median_feed", "scale_to_digits"]


def median_feed(
    sources: Iterable[str],
    markets: Iterable[str],
    max_age_s: int,
    quorum: int,
    **settings: Any,
) -> Feed:
    """A ``Feed`` pricing every market from the same equally weighted ``sources``."""
    names = tuple(sources)
    configs = [
        MarketConfig(
            market,
            tuple(SourceConfig(n, max_age_s=max_age_s) for n in names),
            quorum=quorum,
            **settings,
        )
        for market in markets
    ]
    return Feed(configs, max_age_s)


LIQUITY_TIMEOUT_S = 14_400


def scale_to_digits(answer: int, decimals: int, target: int = 18) -> int:
    """Liquity's ``_scaleChainlinkPriceByDigits``: ``answer`` with ``decimals`` digits to
    ``target`` digits, multiplying up or flooring down."""
    check_int("answer", answer, 1)
    check_int("decimals", decimals, 0, 77)
    check_int("target", target, 0, 77)
    scale: int = 10 ** abs(decimals - target)
    return answer // scale if decimals >= target else answer * scale


def liquity(
    market: str = "ETH", primary: str = "chainlink", fallback: str = "tellor"
) -> MarketConfig:
    """Liquity's two-oracle ``PriceFeed`` (module table)."""
    if primary == fallback:
        raise InvalidArgument(f"primary={primary!r} and fallback must differ")
    return MarketConfig(
        market=market,
        sources=(
            SourceConfig(primary, weight=2, max_age_s=LIQUITY_TIMEOUT_S, max_jump=500_000_000),
            SourceConfig(fallback, weight=1, max_age_s=LIQUITY_TIMEOUT_S),
        ),
        quorum=1,
        mad_k=None,
        max_deviation=None,
        corroboration=50_000_000,
        sticky_distrust=True,
        breaker_tolerance=None,
    )


def liquity_status(mp: MarketPrice, primary: str = "chainlink", fallback: str = "tellor") -> int:
    """Liquity's ``status`` number for this output (module docstring)."""
    p, f = mp.verdict(primary), mp.verdict(fallback)
    if p == "used":
        return 4 if f == "missing" else 0
    if f == "used":
        return 3 if p in ("stale", "missing") else 1
    return 2
