"""What every mechanism does once the account has paid what it can: split the fee and
cover the shortfall.

With ``fee`` taken from the account and ``bad`` the shortfall left after it:

* ``keeper_reward = floor(fee·keeper_share)``, ``protocol_fee = floor(fee·protocol_share)``
  to the fee sink, ``insurance_fee`` = the rest, to the insurance fund;
* ``bad`` goes down the ``waterfall``'s funded stages (``FUNDED``): the insurance fund up
  to its balance plus this ``insurance_fee``, then the backstop pool up to its balance;
  what remains is booked against the bad-debt account (``uncovered``), for the terminal
  stages (``TERMINAL``, ``liquidation.loss``) to repay where the mechanism runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from liqeng.errors import InvalidArgument
from liqeng.ids import AccountId
from liqeng.ledger.model import Posting
from liqeng.liquidation.base import LiquidationContext
from liqeng.liquidation.waterfall import Waterfall
from liqeng.units import AMOUNT_MAX, RATE_SCALE, Amount, check_int, mul_div_down

__all__ = ["FUNDED", "TERMINAL", "Settlement", "check_terms", "funded", "settle"]

FUNDED: Final = ("insurance_fund", "backstop_pool")
"""The waterfall stages a mechanism can pay from: funded system accounts."""

TERMINAL: Final = ("socialised", "adl")
"""The stages after the funded ones: a haircut of holders, auto-deleveraging."""


def check_terms(
    penalty_rate: int, keeper_share: int, protocol_share: int, waterfall: object, who: str
) -> None:
    """Rates in ``0..RATE_SCALE``, ``keeper_share + protocol_share <= RATE_SCALE``, and a
    ``Waterfall`` whose funded stages come before its terminal ones (``TERMINAL``: the
    ``socialised`` haircut and ``adl``); ``who`` names the mechanism in the error."""
    check_int("penalty_rate", penalty_rate, 0, RATE_SCALE)
    check_int("keeper_share", keeper_share, 0, RATE_SCALE)
    check_int("protocol_share", protocol_share, 0, RATE_SCALE - keeper_share)
    if not isinstance(waterfall, Waterfall):
        raise InvalidArgument(f"waterfall={waterfall!r} must be a Waterfall")
    stages = waterfall.stages
    first_terminal = next((i for i, s in enumerate(stages) if s in TERMINAL), len(stages))
    late = [s for s in stages[first_terminal:] if s in FUNDED]
    if late:
        raise InvalidArgument(
            f"waterfall stages {late} come after a terminal stage in {stages}; the {who} "
            f"pays from {sorted(FUNDED)} first, then {list(TERMINAL)}"
        )


def funded(waterfall: Waterfall) -> tuple[str, ...]:
    """The funded stages of ``waterfall``, in order."""
    return tuple(s for s in waterfall.stages if s in FUNDED)


@dataclass(frozen=True, slots=True)
class Settlement:
    """The fee's split and the shortfall's cover, and the postings that move them."""

    keeper_reward: int
    protocol_fee: int
    insurance_fee: int
    covered: int
    uncovered: int
    postings: tuple[Posting, ...]


def settle(
    ctx: LiquidationContext,
    fee: int,
    bad: int,
    keeper_share: int,
    protocol_share: int,
    waterfall: Waterfall,
    keeper: AccountId | None = None,
    reward: int | None = None,
) -> Settlement:
    """Split ``fee`` (paid by ``ctx.account``) and cover ``bad`` (module doc); the keeper
    is ``ctx.keeper`` unless ``keeper`` names another account (an auction's taker). With a
    ``reward`` (``KeeperReward``'s figure) the keeper takes ``min(reward, fee)`` first and
    ``protocol_share`` applies to the rest of the fee."""
    q = ctx.quote
    if reward is None:
        keeper_reward = mul_div_down(fee, keeper_share, RATE_SCALE)
        protocol_fee = mul_div_down(fee, protocol_share, RATE_SCALE)
    else:
        keeper_reward = min(reward, fee)
        protocol_fee = mul_div_down(fee - keeper_reward, protocol_share, RATE_SCALE)
    insurance_fee = fee - keeper_reward - protocol_fee
    funds = {
        "insurance_fund": ctx.insurance_fund_balance + insurance_fee,
        "backstop_pool": ctx.backstop_pool_balance,
    }
    stages = funded(waterfall)
    capacities = {s: funds[s] for s in stages}
    if bad == 0 and all(type(c) is int and 0 <= c <= AMOUNT_MAX for c in capacities.values()):
        from_fund = from_pool = uncovered = 0  # what the waterfall gives for no loss
    elif not stages:
        from_fund = from_pool = 0
        uncovered = check_int("bad", bad, 0)
    else:
        cover = Waterfall(stages).apply(bad, capacities)
        from_fund = cover.paid_by("insurance_fund")
        from_pool = cover.paid_by("backstop_pool")
        uncovered = cover.uncovered
    covered = from_fund + from_pool
    moves = (
        (ctx.account, -fee),
        (ctx.keeper if keeper is None else keeper, keeper_reward),
        (ctx.system.fee_sink, protocol_fee),
        (ctx.system.insurance_fund, insurance_fee - from_fund),
        (ctx.system.backstop_pool, -from_pool),
        (ctx.account, covered + uncovered),
        (ctx.system.bad_debt, -uncovered),
    )
    postings = tuple(Posting(a, Amount(u, q)) for a, u in moves if u)
    return Settlement(keeper_reward, protocol_fee, insurance_fee, covered, uncovered, postings)
