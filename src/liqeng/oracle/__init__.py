"""Price feeds: source reports in, one robust index price per underlying out.

``MedianOracle`` is the walking skeleton the engine uses today; ``Feed`` is the multi-source
feed with guards, health and circuit breakers (``liqeng.oracle.feed``).
"""

from liqeng.oracle.config import MarketConfig, SourceConfig
from liqeng.oracle.feed import BREAKER_LEVELS, Feed, FeedHealth, MarketPrice
from liqeng.oracle.median import AggregatePrice, MedianOracle, PriceReport
from liqeng.oracle.reports import SourceReport

__all__ = [
    "BREAKER_LEVELS",
    "AggregatePrice",
    "Feed",
    "FeedHealth",
    "MarketConfig",
    "MarketPrice",
    "MedianOracle",
    "PriceReport",
    "SourceConfig",
    "SourceReport",
]
