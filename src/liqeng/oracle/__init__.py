"""Price feeds: source reports in, one robust price per market out, with guards, health
and circuit breakers (``liqeng.oracle.feed``); ready-made configurations in ``presets``."""

from liqeng.oracle.config import MarketConfig, SourceConfig
from liqeng.oracle.feed import BREAKER_LEVELS, Feed, FeedHealth, MarketPrice
from liqeng.oracle.presets import median_feed
from liqeng.oracle.reports import SourceReport

__all__ = [
    "BREAKER_LEVELS",
    "Feed",
    "FeedHealth",
    "MarketConfig",
    "MarketPrice",
    "SourceConfig",
    "SourceReport",
    "median_feed",
]
