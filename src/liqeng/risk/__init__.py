"""Risk: per-position margin and account health, decided in exact integers."""

from __future__ import annotations

from liqeng.risk.margin import (
    HEALTH_MAX,
    AccountRisk,
    MarginParams,
    account_risk,
    maintenance_margin,
    position_value,
)

__all__ = [
    "HEALTH_MAX",
    "AccountRisk",
    "MarginParams",
    "account_risk",
    "maintenance_margin",
    "position_value",
]
