"""Instruments and their marks: perpetuals, dated futures, European options, spot collateral,
Black-76, SVI vol surfaces."""

from __future__ import annotations

from liqeng.market import black76
from liqeng.market.black76 import YEAR_SECONDS, year_fraction
from liqeng.market.instruments import (
    DatedFuture,
    EuropeanOption,
    Instrument,
    Perpetual,
    SpotCollateral,
    check_instrument,
    check_underlying,
    spec,
)
from liqeng.market.marks import (
    Unsettled,
    Vol,
    check_index_price,
    check_vol,
    mark_price,
    option_marks,
)
from liqeng.market.surface import SviSlice, VolShockTerm, VolSurface, check_static_arbitrage

__all__ = [
    "YEAR_SECONDS",
    "DatedFuture",
    "EuropeanOption",
    "Instrument",
    "Perpetual",
    "SpotCollateral",
    "SviSlice",
    "Unsettled",
    "Vol",
    "VolShockTerm",
    "VolSurface",
    "black76",
    "check_index_price",
    "check_instrument",
    "check_static_arbitrage",
    "check_underlying",
    "check_vol",
    "mark_price",
    "option_marks",
    "spec",
    "year_fraction",
]
