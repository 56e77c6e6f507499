"""Liquidation: eligibility, mechanisms that return plans, and the loss waterfall.

Mechanisms (``base.Mechanism``): ``fixed_fee``. Building blocks, pure and exact:
``curves`` (Dutch auction prices), ``sizing`` (close factor, target health, dust),
``penalty`` (by health and volatility), ``keeper`` (reward and its reserve), ``legs``
(which option legs to close), ``backstop`` (pool accounting), ``waterfall`` (who bears a
loss, ADL).
"""

from liqeng.liquidation.base import LiquidationContext, LiquidationPlan, Mechanism
from liqeng.liquidation.fixed_fee import FixedFee

__all__ = ["FixedFee", "LiquidationContext", "LiquidationPlan", "Mechanism"]
