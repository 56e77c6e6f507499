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

Spot collateral (``[accounts] collateral_asset_share = s``, default 0): account ``i`` posts
the spot token (``spot``, e.g. ``eth/WETH``, as a Maker vault locks ETH) instead of quote
cash when ``u_i < s``, with ``u_i`` the ``i``-th ``random()`` of a second stream,
``SeedSequence(seed).spawn(1)[0]``, so the draws above (and every account of a
population without spot collateral) stay as they were. Its balance is the fewest base
units whose ``collateral_value`` (haircut included) at the first index price is at least
the quote collateral ``C`` it would have had, which is then exactly ``C`` (one base unit
is worth less than one quote unit); it holds no quote cash, and its losses are realised
in quote against the token (a liquidation sells the token).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from liqeng.errors import InvalidArgument
from liqeng.ids import AccountId, InstrumentId, asset_id
from liqeng.ledger.model import Position
from liqeng.market.instruments import Instrument, SpotCollateral
from liqeng.market.marks import mark_price
from liqeng.risk.margin import AccountRisk, collateral_value
from liqeng.sim.scenario import Scenario
from liqeng.units import RATE_SCALE, Asset

__all__ = ["SPOT_DECIMALS", "Holding", "RiskOf", "generate", "spot_collateral", "spot_units"]

SPOT_DECIMALS = 18
"""Decimals of the spot collateral token (WETH's)."""

RiskOf = Callable[[int, Mapping[InstrumentId, Position]], AccountRisk]
"""``(cash, positions) -> AccountRisk`` at the opening price."""


@dataclass(frozen=True, slots=True)
class Holding:
    """One generated account: its quote cash (``collateral``), its spot collateral
    (``spot`` base units of the spot token, worth ``spot_value`` quote units at the first
    index price) and the positions it opens at the first price."""

    account: AccountId
    collateral: int
    perp_size: int
    put: InstrumentId | None
    put_size: int  # negative: written
    spot: int = 0
    spot_value: int = 0

    def halved(self) -> Holding:
        """Both positions halved, truncating toward zero."""
        return replace(self, perp_size=int(self.perp_size / 2), put_size=int(self.put_size / 2))

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
        cash = self.collateral + self.spot_value  # collateral only adds to equity
        if self.perp_size:
            positions[perp] = Position(self.perp_size, index)
        if self.put is not None and self.put_size:
            opt = instruments[self.put]
            mark = mark_price(opt, index, now, vol)
            cash += int(mark * -self.put_size / 10**opt.size_decimals)
            positions[self.put] = Position(self.put_size, max(int(mark), 1))
        return float(risk(cash, positions).health)


def spot_collateral(sc: Scenario) -> SpotCollateral | None:
    """The spot token accounts post as collateral, ``<quote namespace>/W<underlying>``
    (``eth/WETH`` for an ETH market quoted in ``eth/USDC``) with ``SPOT_DECIMALS`` and the
    scenario's ``collateral_haircut``; ``None`` when no account posts it
    (``collateral_asset_share == 0``: the run's log is the one without spot collateral)."""
    if sc.collateral_asset_share <= 0:
        return None
    ns, sep, _ = sc.quote_asset.rpartition("/")
    token = asset_id(f"{ns}{sep}W{sc.underlying}")
    return SpotCollateral(Asset(token, SPOT_DECIMALS), sc.underlying, sc.collateral_haircut)


def spot_units(spec: SpotCollateral, value: int, index: int) -> int:
    """The fewest base units of ``spec`` whose ``collateral_value`` at ``index`` is at
    least ``value`` (quote base units)."""
    if spec.haircut >= RATE_SCALE:
        raise InvalidArgument(f"haircut of {spec.asset.id} must be below {RATE_SCALE}")
    scale: int = RATE_SCALE * 10**spec.asset.decimals
    units = -(-value * scale // (index * (RATE_SCALE - spec.haircut)))
    while units > 0 and collateral_value(spec, units - 1, index) >= value:
        units -= 1
    while collateral_value(spec, units, index) < value:
        units += 1
    return units


def generate(
    sc: Scenario,
    perp: InstrumentId,
    puts: list[InstrumentId],
    instruments: dict[InstrumentId, Instrument],
    index: int,
    now: int,
    vol: float,
    risk: RiskOf,
    spot: SpotCollateral | None = None,
) -> list[Holding]:
    """``sc.accounts`` holdings from ``sc.seed``, each halved until ``risk`` (the engine's
    exact account risk at the opening price) puts it at ``min_initial_health`` or above.
    ``spot`` is the token a ``collateral_asset_share`` of them posts instead of quote
    (required when that share is above 0)."""
    if sc.collateral_asset_share > 0 and spot is None:
        raise InvalidArgument(
            f"collateral_asset_share={sc.collateral_asset_share} needs a spot collateral token"
        )
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(sc.seed)))
    spot_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(sc.seed).spawn(1)[0]))
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
        if bool(spot_rng.random() < sc.collateral_asset_share) and spot is not None:
            units = spot_units(spot, collateral, index)
            value = collateral_value(spot, units, index)
            holding = replace(holding, collateral=0, spot=units, spot_value=value)
        for _ in range(64):
            if holding.health(perp, instruments, index, now, vol, risk) >= sc.min_initial_health:
                break
            holding = holding.halved()
        out.append(holding)
    return out
