"""Instruments and their marks: perpetuals, European options, Black-76 (pure, no I/O)."""

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

__all__ = [
    "YEAR_SECONDS",
    "EuropeanOption",
    "Instrument",
    "Perpetual",
    "black76",
    "check_index_price",
    "check_underlying",
    "check_vol",
    "mark_price",
    "option_marks",
    "spec",
    "year_fraction",
]
