"""liqeng: a liquidation engine for crypto-derivatives protocols, options first."""

__version__ = "0.1.0"
