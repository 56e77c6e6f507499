"""Generated account populations, documented and seeded.

For account ``i`` (numpy ``Generator`` from ``SeedSequence(seed)``, drawn in this order):

- collateral ``C ~ LogNormal(ln(collateral_median), collateral_sigma)``, clipped to
  ``[collateral_min, collateral_max]``, whole USDC;
- a perpetual of notional ``L * C`` with ``L ~ U(leverage_min, leverage_max)``, long with
  probability ``long_share``;
- with probability ``put_seller_share``, short puts of notional ``U(put_size_min,
  put_size_max) * C`` at a strike drawn uniformly from ``option_strikes`` (fractions of
  the first index price);
- all sizes halve until the account starts with ``health >= min_initial_health``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from liqeng.ids import AccountId, InstrumentId
from liqeng.ledger.model import Position
from liqeng.market.instruments import Instrument
from liqeng.market.marks import mark_price
from liqeng.risk.margin import AccountRisk
from liqeng.sim.scenario import Scenario

__all__ = ["Holding", "RiskOf", "generate"]

RiskOf = Callable[[int, Mapping[InstrumentId, Position]], AccountRisk]
"""``(cash, positions) -> AccountRisk`` at the opening price."""


@dataclass(frozen=True, slots=True)
class Holding:
    """One generated account: its cash and the positions it opens at the first price."""

    account: AccountId
    collateral: int
    perp_size: int
    put: InstrumentId | None
    put_size: int  # negative: written

    def halved(self) -> Holding:
        """Both positions halved, truncating toward zero."""
        return Holding(
            self.account, self.collateral, int(self.perp_size / 2), self.put, int(self.put_size / 2)
        )

    def health(
        self,
        perp: InstrumentId,
        instruments: dict[InstrumentId, Instrument],
        index: int,
        now: int,
        vol: float,
        risk: RiskOf,
    ) -> float:
        """Screening health at the opening price (the premium estimate is approximate)."""
        positions: dict[InstrumentId, Position] = {}
        cash = self.collateral
        if self.perp_size:
            positions[perp] = Position(self.perp_size, index)
        if self.put is not None and self.put_size:
            opt = instruments[self.put]
            mark = mark_price(opt, index, now, vol)
            cash += int(mark * -self.put_size / 10**opt.size_decimals)
            positions[self.put] = Position(self.put_size, max(int(mark), 1))
        return float(risk(cash, positions).health)


def generate(
    sc: Scenario,
    perp: InstrumentId,
    puts: list[InstrumentId],
    instruments: dict[InstrumentId, Instrument],
    index: int,
    now: int,
    vol: float,
    risk: RiskOf,
) -> list[Holding]:
    """``sc.accounts`` holdings from ``sc.seed``, each halved until ``risk`` (the engine's
    exact account risk at the opening price) puts it at ``min_initial_health`` or above."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(sc.seed)))
    s0 = index / 10**sc.quote_decimals
    out: list[Holding] = []
    for i in range(sc.accounts):
        c = float(rng.lognormal(math.log(sc.collateral_median), sc.collateral_sigma))
        c = min(max(c, sc.collateral_min), sc.collateral_max)
        lev = float(rng.uniform(sc.leverage_min, sc.leverage_max))
        long = bool(rng.random() < sc.long_share)
        sells = bool(rng.random() < sc.put_seller_share)
        put_frac = float(rng.uniform(sc.put_size_min, sc.put_size_max))
        put = puts[int(rng.integers(len(puts)))] if sells else None
        collateral = int(c) * 10**sc.quote_decimals
        perp_size = int(lev * int(c) / s0 * 10**sc.perp_size_decimals) * (1 if long else -1)
        put_size = -int(put_frac * int(c) / s0 * 10**sc.option_size_decimals) if put else 0
        holding = Holding(
            AccountId(f"{sc.namespace}/acct-{i:04d}"), collateral, perp_size, put, put_size
        )
        for _ in range(64):
            if holding.health(perp, instruments, index, now, vol, risk) >= sc.min_initial_health:
                break
            holding = holding.halved()
        out.append(holding)
    return out
