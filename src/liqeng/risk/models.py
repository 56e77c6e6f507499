"""Margin models chosen per market, and the exact account risk they decide with.

A *market* here is everything on one underlying (SPAN's combined commodity): each picks a
``MarginModel``, and an account's requirement is the sum over the markets it trades::

    equity              = cash + Σ collateral value + Σ position value     (liqeng.risk.margin)
    maintenance_margin  = Σ_markets model.requirement(positions on it).maintenance
    initial_margin      = Σ_markets model.requirement(positions on it).initial
    health              = equity / maintenance_margin;  liquidatable iff equity < MM

Two models:

* ``PerPosition(params)``: per-position (standard) margin, ``liqeng.risk.margin``'s exact
  integer formulas.
* ``Scenario(model)``: portfolio (scenario) margin, a ``PortfolioMarginModel`` (grid of spot
  x vol shocks, contingencies, MM/IM relation: SPAN, Deribit PM, Lyra PMRM are
  configurations). The revaluation is floating point, as a mark is; the requirement is
  then turned into quote base units exactly (``Fraction`` of the float) and rounded *up*,
  so the same inputs give the same integer on every run. Positions are taken in whole
  tokens ``q = size/10**sd`` on forward = index, ``σ`` from the market's vol (flat or
  surface), time to expiry from the driver's clock; settled (expired) instruments carry
  no risk and are left out. Settlement is linear (quote asset): ``inverse`` models are
  refused.

Equity is always the exact path's: money is integers, never the float revaluation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol, runtime_checkable

from liqeng.errors import InvalidArgument
from liqeng.ids import AssetId, InstrumentId
from liqeng.ledger.model import Position
from liqeng.market.black76 import year_fraction
from liqeng.market.instruments import (
    DatedFuture,
    EuropeanOption,
    Instrument,
    SpotCollateral,
    check_instrument,
)
from liqeng.market.marks import Vol, check_vol_source, option_vol
from liqeng.risk.margin import (
    AccountRisk,
    MarginParams,
    account_risk,
    initial_margin,
    maintenance_margin,
)
from liqeng.risk.portfolio import PortfolioMarginModel, ScenarioPosition
from liqeng.units import check_int

__all__ = [
    "MarginModel",
    "MarketData",
    "PerPosition",
    "Requirement",
    "Scenario",
    "market_account_risk",
]


@dataclass(frozen=True, slots=True)
class MarketData:
    """What valuing an account needs from the driver at one instant: the clock, index
    prices by underlying, option vols by underlying (flat or a surface; ``default_vol``
    where none is set), settlement prices of expired instruments and LST exchange rates
    (parts per ``RATE_SCALE``)."""

    now_ts: int
    index_prices: Mapping[str, int]
    vols: Mapping[str, Vol] = field(default_factory=dict)
    default_vol: float = 0.8
    settlements: Mapping[InstrumentId, int] = field(default_factory=dict)
    exchange_rates: Mapping[AssetId, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_int("now_ts", self.now_ts)
        check_vol_source(self.default_vol)
        for underlying, vol in self.vols.items():
            try:
                check_vol_source(vol)
            except InvalidArgument as exc:
                raise InvalidArgument(f"vols[{underlying!r}]: {exc}") from None

    def vol(self, underlying: str) -> Vol:
        """The vol source of ``underlying``: ``vols[underlying]`` or ``default_vol``."""
        return self.vols.get(underlying, self.default_vol)

    def is_settled(self, instrument: Instrument) -> bool:
        """Expired (``now >= expiry``); valuing it needs its settlement price."""
        return isinstance(instrument, (DatedFuture, EuropeanOption)) and (
            self.now_ts >= instrument.expiry_ts
        )


@dataclass(frozen=True, slots=True)
class Requirement:
    """Maintenance and initial margin of one market's positions, quote base units."""

    maintenance: int
    initial: int

    def __post_init__(self) -> None:
        check_int("maintenance", self.maintenance, 0)
        check_int("initial", self.initial, self.maintenance)


@runtime_checkable
class MarginModel(Protocol):
    """A market's margin model: the requirement of positions on one underlying."""

    def requirement(
        self,
        positions: Mapping[InstrumentId, Position],
        instruments: Mapping[InstrumentId, Instrument],
        market: MarketData,
    ) -> Requirement: ...


@dataclass(frozen=True, slots=True)
class PerPosition:
    """Per-position (standard) margin: Σ ``maintenance_margin`` and Σ ``initial_margin``."""

    params: MarginParams = field(default_factory=MarginParams)

    def requirement(
        self,
        positions: Mapping[InstrumentId, Position],
        instruments: Mapping[InstrumentId, Instrument],
        market: MarketData,
    ) -> Requirement:
        mm = im = 0
        for iid, pos in positions.items():
            inst = instruments[iid]
            index = market.index_prices[inst.underlying]
            mm += maintenance_margin(inst, pos, index, market.now_ts, self.params)
            im += initial_margin(inst, pos, index, market.now_ts, self.params)
        return Requirement(mm, im)


def _ceil_units(value: float, what: str) -> int:
    if not math.isfinite(value):
        raise InvalidArgument(f"{what}={value!r} is not finite")
    return max(math.ceil(Fraction(value)), 0)


@dataclass(frozen=True, slots=True)
class Scenario:
    """Portfolio (scenario) margin by ``model``: ``MM = ceil(model MM)``,
    ``IM = max(ceil(model IM), MM)`` in quote base units."""

    model: PortfolioMarginModel

    def __post_init__(self) -> None:
        if not isinstance(self.model, PortfolioMarginModel):
            raise InvalidArgument(f"model={self.model!r} must be a PortfolioMarginModel")
        if self.model.inverse:
            raise InvalidArgument(
                "an inverse (coin-settled) model cannot margin a ledger that settles in "
                "its quote asset; use inverse=False"
            )

    def positions(
        self,
        positions: Mapping[InstrumentId, Position],
        instruments: Mapping[InstrumentId, Instrument],
        market: MarketData,
    ) -> tuple[list[ScenarioPosition], int]:
        """The live positions as ``ScenarioPosition``s (whole tokens) and the index."""
        out: list[ScenarioPosition] = []
        spot = 0
        for iid in sorted(positions):
            inst, pos = instruments[iid], positions[iid]
            spot = market.index_prices[inst.underlying]
            if pos.size == 0 or market.is_settled(inst):
                continue
            q = pos.size / 10**inst.size_decimals
            if isinstance(inst, EuropeanOption):
                vol = market.vol(inst.underlying)
                out.append(
                    ScenarioPosition(
                        "call" if inst.is_call else "put",
                        q,
                        float(spot),
                        year_fraction(market.now_ts, inst.expiry_ts),
                        float(inst.strike),
                        option_vol(inst, spot, market.now_ts, vol),
                    )
                )
            else:
                out.append(ScenarioPosition("future", q, float(spot)))
        return out, spot

    def requirement(
        self,
        positions: Mapping[InstrumentId, Position],
        instruments: Mapping[InstrumentId, Instrument],
        market: MarketData,
    ) -> Requirement:
        live, spot = self.positions(positions, instruments, market)
        if not live:
            return Requirement(0, 0)
        pm = self.model.margin(live, float(spot))
        mm = _ceil_units(pm.maintenance, "maintenance")
        return Requirement(mm, max(_ceil_units(pm.initial, "initial"), mm))


def market_account_risk(
    cash: int,
    positions: Mapping[InstrumentId, Position],
    instruments: Mapping[InstrumentId, Instrument],
    market: MarketData,
    models: Mapping[str, MarginModel],
    default: MarginModel,
    collateral: Mapping[SpotCollateral, int] | None = None,
) -> AccountRisk:
    """Exact ``AccountRisk``: equity from ``account_risk``, requirements summed over the
    underlyings, each by ``models.get(underlying, default)`` (module doc)."""
    groups: dict[str, dict[InstrumentId, Position]] = {}
    for iid, pos in positions.items():
        inst = instruments.get(iid)
        if inst is None:
            raise InvalidArgument(f"instrument={iid!r} has a position but no Instrument")
        if isinstance(pos, Position) and pos.size != 0:
            groups.setdefault(check_instrument(inst).underlying, {})[iid] = pos
    chosen = {u: models.get(u, default) for u in groups}
    for underlying, model in chosen.items():
        if not callable(getattr(model, "requirement", None)):
            raise InvalidArgument(f"margin model of {underlying!r}={model!r} is not a MarginModel")
    # the one MarginParams every market's PerPosition model shares, if they all share one
    only_params: MarginParams | None = None
    all_per_position = True
    for m in chosen.values():
        if not isinstance(m, PerPosition):
            all_per_position = False
        elif only_params is None:
            only_params = m.params
        elif m.params is not only_params and m.params != only_params:
            only_params, all_per_position = None, False
            break
    if only_params is None or not all_per_position:
        only_params = MarginParams(vol=market.default_vol)
    risk = account_risk(
        cash,
        positions,
        instruments,
        market.index_prices,
        market.now_ts,
        only_params,
        vols={u: market.vol(u) for u in groups},
        settlements=market.settlements,
        collateral=collateral,
        exchange_rates=market.exchange_rates,
    )  # validates every position, instrument and price
    if all(
        isinstance(m, PerPosition) and (m.params is only_params or m.params == only_params)
        for m in chosen.values()
    ):
        return risk  # one per-position model everywhere: its requirement is already summed
    mm = im = 0
    for underlying in sorted(groups):
        req = chosen[underlying].requirement(groups[underlying], instruments, market)
        mm += req.maintenance
        im += req.initial
    return AccountRisk(risk.equity, mm, im)
