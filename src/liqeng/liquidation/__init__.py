"""Liquidation: eligibility, mechanisms that return plans, and the loss waterfall."""

from liqeng.liquidation.base import LiquidationContext, LiquidationPlan, Mechanism
from liqeng.liquidation.fixed_fee import FixedFee

__all__ = ["FixedFee", "LiquidationContext", "LiquidationPlan", "Mechanism"]
