"""Instruments and their marks: perpetuals, European options, Black-76, SVI vol surfaces."""

from __future__ import annotations

from liqeng.market import black76
from liqeng.market.black76 import YEAR_SECONDS, year_fraction
from liqeng.market.instruments import (
    EuropeanOption,
    Instrument,
    Perpetual,
    check_underlying,
    spec,
)
from liqeng.market.marks import check_index_price, check_vol, mark_price, option_marks
from liqeng.market.surface import SviSlice, VolShockTerm, VolSurface, check_static_arbitrage

__all__ = [
    "YEAR_SECONDS",
    "EuropeanOption",
    "Instrument",
    "Perpetual",
    "SviSlice",
    "VolShockTerm",
    "VolSurface",
    "black76",
    "check_index_price",
    "check_static_arbitrage",
    "check_underlying",
    "check_vol",
    "mark_price",
    "option_marks",
    "spec",
    "year_fraction",
]
