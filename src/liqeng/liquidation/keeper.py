"""Keeper economics: a reward that covers gas, reserved in the margin, checked against dust.

One liquidation call pays the keeper (all integers, quote base units)::

    gas_cost = gas_units · gas_price · quote_per_gas / 10**gas_decimals
    exact    = tip + share · penalty / RATE_SCALE
                   + gas_cost · (RATE_SCALE + gas_premium) / RATE_SCALE
    reward   = min(cap, floor(exact))                  (the keeper receives: rounds down)

``gas_price`` is in base units of the gas token per gas unit (wei/gas), ``quote_per_gas`` the
gas token's price in quote base units per *whole* gas token (ETH at $2,000 in USDC(6):
2_000_000_000), as every price in liqeng. This is Maker's ``tip + chip·tab`` with the
gas-indexed term of Synthetix v3 (``cost·(1 + minKeeperProfitRatio)``); Synthetix's
``max(cost + min, cost·(1+ratio))`` floor is here the sum ``tip + cost·(1 + premium)``.

Two guarantees make the reward always payable (anchors.md §5.5, anchors_more.md §1):

* ``KeeperReward.reserved_requirement`` is added to the account's maintenance margin, so the
  account becomes liquidatable while it can still pay the keeper (Synthetix reserves
  ``keeperReward`` in ``getRequiredMargins``); it rounds up.
* ``check_config`` refuses a configuration whose penalty at the dust size cannot cover the
  reward at the maximum gas price (Maker's ``dust·(chop - 1) > tip + chip·dust`` holds only in
  a spell test, sky-ecosystem/spells-mainnet#443).
"""

from __future__ import annotations

from dataclasses import dataclass

from liqeng.errors import InvalidArgument
from liqeng.units import AMOUNT_MAX, DECIMALS_MAX, RATE_SCALE, check_int, mul_div_down

__all__ = ["KeeperReward", "check_config"]


@dataclass(frozen=True, slots=True)
class KeeperReward:
    """Reward for one liquidation call (see the module doc for the formula).

    ``tip`` and ``cap`` in quote base units (``>= 0``); ``share`` of the penalty in
    ``[0, RATE_SCALE]``; ``gas_units`` a call burns (``>= 0``); ``gas_premium`` over the gas
    cost in parts per ``RATE_SCALE`` (``>= 0``; 0.5 = 500_000_000 pays cost × 1.5);
    ``gas_decimals`` of the gas token (18 for ETH).
    """

    tip: int
    share: int
    gas_units: int = 0
    gas_premium: int = 0
    cap: int = AMOUNT_MAX
    gas_decimals: int = 18

    def __post_init__(self) -> None:
        check_int("tip", self.tip, 0)
        check_int("share", self.share, 0, RATE_SCALE)
        check_int("gas_units", self.gas_units, 0)
        check_int("gas_premium", self.gas_premium, 0)
        check_int("cap", self.cap, 0)
        check_int("gas_decimals", self.gas_decimals, 0, DECIMALS_MAX)

    def _terms(
        self, penalty: int, gas_price: int, quote_per_gas: int, calls: int = 1
    ) -> tuple[int, int]:
        """``(numerator, denominator)`` of ``calls·(tip + gas term) + share·penalty``."""
        p = check_int("penalty", penalty, 0)
        g = check_int("gas_price", gas_price, 0)
        q = check_int("quote_per_gas", quote_per_gas, 0)
        den = RATE_SCALE * 10**self.gas_decimals
        fixed = self.tip * den + self.gas_units * g * q * (RATE_SCALE + self.gas_premium)
        return calls * fixed + self.share * p * 10**self.gas_decimals, den

    def reward(self, penalty: int, gas_price: int, quote_per_gas: int) -> int:
        """``min(cap, floor(tip + share·penalty + gas_cost·(1 + gas_premium)))``; ``penalty``
        is what the liquidated account pays (``>= 0``), e.g. ``LiquidationPlan.penalty``."""
        num, den = self._terms(penalty, gas_price, quote_per_gas)
        return min(self.cap, num // den)

    def reserved_requirement(
        self, penalty: int, max_gas_price: int, quote_per_gas: int, calls: int = 1
    ) -> int:
        """What to add to an account's maintenance margin so its keeper rewards are always
        collectable, rounded up::

            reserved = min(calls · cap,
                           ceil(calls · (tip + gas_cost(max_gas_price)·(1 + premium))
                                + share · penalty))

        Per account (as Synthetix): ``MM' = MM + reserved`` with ``penalty`` the penalty the
        account would pay if liquidated now (``ceil(penalty_rate · notional)``) and ``calls``
        the liquidation calls its close-out takes (1 for a whole-account mechanism such as
        ``FixedFee``; more for partial close-outs, each paying a tip and gas while the share
        splits the one penalty). It bounds the sum of the rewards of those calls for any gas
        price ``<= max_gas_price`` at this ``quote_per_gas``; recompute it when the gas token's
        price moves, and clamp the gas price the reward reads to ``max_gas_price``.
        """
        n = check_int("calls", calls, 1, 10**6)
        num, den = self._terms(penalty, max_gas_price, quote_per_gas, n)
        return min(n * self.cap, -(-num // den))


def check_config(
    reward: KeeperReward,
    penalty_rate: int,
    dust_notional: int,
    max_gas_price: int,
    quote_per_gas: int,
) -> None:
    """Refuse a configuration where the penalty at the dust size cannot pay the keeper::

        floor(penalty_rate · dust_notional / RATE_SCALE)
            >= reward.reserved_requirement(that penalty, max_gas_price, quote_per_gas)

    else ``InvalidArgument`` naming every value. Both sides are taken against the config
    (penalty rounded down, reward up). Passing at the dust size implies passing at every larger
    notional: ``penalty - share·penalty`` grows with the notional while ``tip`` and gas are
    fixed. For an ``AdaptivePenalty`` pass its ``min_rate``.
    """
    if not isinstance(reward, KeeperReward):
        raise InvalidArgument(f"reward={reward!r} must be a KeeperReward")
    rate = check_int("penalty_rate", penalty_rate, 0, RATE_SCALE)
    dust = check_int("dust_notional", dust_notional, 0)
    penalty = mul_div_down(dust, rate, RATE_SCALE)
    needed = reward.reserved_requirement(penalty, max_gas_price, quote_per_gas)
    if penalty < needed:
        raise InvalidArgument(
            f"keeper reward does not fit in the penalty at the dust size: penalty_rate="
            f"{rate} × dust_notional={dust} = {penalty} < reward={needed} (tip={reward.tip}, "
            f"share={reward.share}, gas_units={reward.gas_units}, max_gas_price={max_gas_price}, "
            f"quote_per_gas={quote_per_gas}, gas_premium={reward.gas_premium}, "
            f"cap={reward.cap}); raise penalty_rate or dust_notional, or lower the reward"
        )
