"""Price feeds: source reports in, one robust index price per underlying out."""

from liqeng.oracle.median import AggregatePrice, MedianOracle, PriceReport

__all__ = ["AggregatePrice", "MedianOracle", "PriceReport"]
