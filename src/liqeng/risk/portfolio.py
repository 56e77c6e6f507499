"""Portfolio (scenario) margin: revalue a whole account on a grid of spot x vol moves.

The grid is data (``ScenarioGrid``): every scenario ``j`` is a spot move ``m_j`` (a fraction,
``-0.16`` is -16 %), a vol move and a weight ``w_j``. A vol move is either a plain
multiplicative factor ``σ' = factor_j·σ`` or a direction ``d_j ∈ {-1, 0, +1}`` (down, none, up)
read through the grid's ``VolShockCurve``, a function of days to expiry ``DTE = 365·T``::

    x = pivot_days / max(DTE, dte_floor_days)
    p = short_term_power if DTE < pivot_days else long_term_power
    f = x**p
    σ_up   = max(σ·(1 + range_up·f), min_vol_up)
    σ_down = max(σ·(1 - range_down·f), 0)

and then times ``factor_j`` (1 unless set). (At ``DTE = pivot_days`` ``f = 1`` whichever power
applies, so ``<`` versus ``<=`` at the pivot does not matter.)

Revaluation (``scenario_pnl``), vectorised over positions ``i`` x scenarios ``j``, each position
on its own forward ``F_i`` moved to ``F_i·(1 + m_j)``, time to expiry unchanged (no
look-ahead), options by Black-76 (``V``, per coin of underlying, in USD):

- linear (USD-settled): future ``q·F·m``; option ``q·(V(F(1+m), σ') - V(F, σ))``;
- inverse (coin-settled, Deribit): future ``q·(1 - 1/(1 + m))``;
  option ``q·(V(F(1+m), σ')/(F(1+m)) - V(F, σ)/F)``;

then ``P_j = w_j·Σ_i pnl_ij`` (positions net within a scenario; the weight scales the whole
scenario). Margin (``PortfolioMarginModel.margin``), in settlement units (coin if inverse)::

    kept_j             = min(P_j, 0) + pnl_offset·max(P_j, 0)
    worst_case         = -min_j kept_j       (gains only offset losses if pnl_offset > 0)
    roll_shock         = Σ_e |δ_e|·max(min_annualised_move, exp(annualised_move_risk·T_e) - 1)
    delta_shock        = |δ|·min(max_delta_shock, m_inc·max(|δ| - delta_threshold_usd/S, 0))
    risk_matrix_margin = worst_case + roll_shock + delta_shock
    maintenance        = mm_factor·risk_matrix_margin
    initial            = risk_matrix_margin + open_orders_margin + mmp_margin

``δ_e`` is the net delta of all positions expiring at ``T_e`` (perpetuals: ``T = 0``, so the
minimum term applies), ``δ = Σ_e δ_e``. Delta per coin: future 1, linear option Black-76
``∂V/∂F``, inverse option ``∂V/∂F - V/F`` (the coin delta). For linear settlement the two
shocks are priced in USD, times the spot ``S``. This is a floating-point screen, not the
exact ledger path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from liqeng.errors import InvalidArgument
from liqeng.market import black76
from liqeng.market.black76 import BoolArray, FloatArray

__all__ = [
    "DERIBIT_BTC_PM",
    "LYRA_LIKE",
    "Kind",
    "PortfolioMargin",
    "PortfolioMarginModel",
    "Scenario",
    "ScenarioGrid",
    "ScenarioPosition",
    "ScenarioPositions",
    "VolShockCurve",
    "deribit_grid",
    "deribit_vol_curve",
    "lyra_like_grid",
    "scenario_pnl",
]

Kind = Literal["future", "call", "put"]
DAYS_PER_YEAR: Final = 365.0


def _finite(name: str, value: object, *, low: float | None = None, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"{name}={value!r} must be a real number")
    v = float(value)
    if not math.isfinite(v):
        raise InvalidArgument(f"{name}={value!r} must be finite")
    if low is not None and (v <= low if strict else v < low):
        raise InvalidArgument(f"{name}={value!r} must be {'>' if strict else '>='} {low}")
    return v


# --- the grid ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VolShockCurve:
    """Vol up/down as a function of days to expiry (formula in the module doc)."""

    range_up: float
    range_down: float
    min_vol_up: float = 0.0
    short_term_power: float = 0.30
    long_term_power: float = 0.13
    pivot_days: float = 30.0
    dte_floor_days: float = 1.0

    def __post_init__(self) -> None:
        for name in ("range_up", "range_down", "min_vol_up", "short_term_power", "long_term_power"):
            _finite(name, getattr(self, name), low=0.0)
        _finite("pivot_days", self.pivot_days, low=0.0, strict=True)
        _finite("dte_floor_days", self.dte_floor_days, low=0.0, strict=True)

    def factor(self, dte_days: FloatArray) -> FloatArray:
        """``f = (pivot/max(DTE, floor))**p``, ``p`` short-term below the pivot, else long-term."""
        dte = np.asarray(dte_days, dtype=np.float64)
        power = np.where(dte < self.pivot_days, self.short_term_power, self.long_term_power)
        return np.asarray((self.pivot_days / np.maximum(dte, self.dte_floor_days)) ** power)

    def shock(self, sigma: FloatArray, dte_days: FloatArray, direction: FloatArray) -> FloatArray:
        """``σ_up`` where ``direction > 0``, ``σ_down`` where ``< 0``, ``σ`` where 0 (broadcast)."""
        f = self.factor(dte_days)
        up = np.maximum(sigma * (1.0 + self.range_up * f), self.min_vol_up)
        down = np.maximum(sigma * (1.0 - self.range_down * f), 0.0)
        return np.asarray(np.where(direction > 0, up, np.where(direction < 0, down, sigma)))


@dataclass(frozen=True, slots=True)
class Scenario:
    """One grid point: spot move ``spot_move`` (fraction, > -1), vol direction
    (``-1``/``0``/``+1``, read through the grid's curve), a vol ``vol_factor`` applied after
    it, and a ``weight`` on the scenario P&L; ``extended`` marks a tail move."""

    spot_move: float
    vol_direction: int = 0
    vol_factor: float = 1.0
    weight: float = 1.0
    extended: bool = False

    def __post_init__(self) -> None:
        _finite("spot_move", self.spot_move, low=-1.0, strict=True)
        if self.vol_direction not in (-1, 0, 1) or isinstance(self.vol_direction, bool):
            raise InvalidArgument(f"vol_direction={self.vol_direction!r} must be -1, 0 or 1")
        _finite("vol_factor", self.vol_factor, low=0.0)
        _finite("weight", self.weight, low=0.0)


@dataclass(frozen=True, slots=True)
class ScenarioGrid:
    """A non-empty tuple of scenarios plus the vol curve their directions use (``None``
    only if every direction is 0)."""

    scenarios: tuple[Scenario, ...]
    vol_curve: VolShockCurve | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.scenarios, tuple) or not self.scenarios:
            raise InvalidArgument(f"scenarios={self.scenarios!r} must be a non-empty tuple")
        for s in self.scenarios:
            if not isinstance(s, Scenario):
                raise InvalidArgument(f"scenario={s!r} must be a Scenario")
        if self.vol_curve is None and any(s.vol_direction for s in self.scenarios):
            raise InvalidArgument(f"grid {self.name!r} has vol directions but vol_curve=None")

    def __len__(self) -> int:
        return len(self.scenarios)

    @property
    def spot_moves(self) -> FloatArray:
        return np.array([s.spot_move for s in self.scenarios], dtype=np.float64)

    @property
    def vol_directions(self) -> FloatArray:
        return np.array([s.vol_direction for s in self.scenarios], dtype=np.float64)

    @property
    def vol_factors(self) -> FloatArray:
        return np.array([s.vol_factor for s in self.scenarios], dtype=np.float64)

    @property
    def weights(self) -> FloatArray:
        return np.array([s.weight for s in self.scenarios], dtype=np.float64)


def deribit_vol_curve(
    range_up: float = 0.50,
    range_down: float = 0.25,
    min_vol_for_shock_up: float = 0.50,
    short_term_vega_power: float = 0.30,
    long_term_vega_power: float = 0.13,
) -> VolShockCurve:
    """Deribit PM vol shock (options_margin.md §3, BTC docs parameters, pivot DTE 30)."""
    return VolShockCurve(
        range_up, range_down, min_vol_for_shock_up, short_term_vega_power, long_term_vega_power
    )


DERIBIT_EXTENDED_MOVES: Final = (-0.66, -0.33, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0)


def deribit_grid(
    price_range: float = 0.16,
    buckets_count: int = 4,
    extended_moves: Sequence[float] = DERIBIT_EXTENDED_MOVES,
    extended_table_factor: float = 1.0,
    settlement: Literal["coin", "usd"] = "coin",
    vol_curve: VolShockCurve | None = None,
) -> ScenarioGrid:
    """Deribit PM: ``m_k = k·price_range/buckets_count``, ``k = -buckets..buckets``, each
    x {vol up, same, down}; then extended moves, vol up only, weighted (coin P&L)
    ``w(m) = ext·(price_range/|m|)·(1+m)/(1 + sign(m)·price_range)`` or (USD P&L)
    ``w(m) = ext·price_range/|m|``. The dampener ([rec] in the reference) is not modelled."""
    pr = _finite("price_range", price_range, low=0.0, strict=True)
    if isinstance(buckets_count, bool) or not isinstance(buckets_count, int) or buckets_count < 1:
        raise InvalidArgument(f"buckets_count={buckets_count!r} must be an int >= 1")
    ext = _finite("extended_table_factor", extended_table_factor, low=0.0)
    rows: list[Scenario] = []
    for k in range(-buckets_count, buckets_count + 1):
        m = k * pr / buckets_count
        rows.extend(Scenario(m, d) for d in (1, 0, -1))
    for raw in extended_moves:
        m = _finite("extended_move", raw, low=-1.0, strict=True)
        if m == 0.0:
            raise InvalidArgument("extended_move=0.0 must be non-zero")
        w = ext * pr / abs(m)
        if settlement == "coin":
            w *= (1.0 + m) / (1.0 + math.copysign(pr, m))
        rows.append(Scenario(m, 1, weight=w, extended=True))
    curve = deribit_vol_curve() if vol_curve is None else vol_curve
    return ScenarioGrid(tuple(rows), curve, f"deribit-pm-{settlement}")


def lyra_like_grid(vol_curve: VolShockCurve | None = None) -> ScenarioGrid:
    """23 scenarios: Lyra PMRM's 21 (spot ``{-15, -10, -5, 0, +5, +10, +15} %`` x
    {vol up, none, down}, lyra_pmrm.md §4.1) plus two tail moves ``±20 %`` at unchanged vol,
    weight 1. Vol curve: Lyra's ``up = 1 + 0.45·f``, ``down = max(0, 1 - 0.30·f)``, powers
    0.30/0.13 around 30 days, floor 1 day, no minimum up-vol."""
    rows = [Scenario(k / 100, d) for k in (15, 10, 5, 0, -5, -10, -15) for d in (1, 0, -1)]
    rows += [Scenario(0.20, 0, extended=True), Scenario(-0.20, 0, extended=True)]
    curve = VolShockCurve(0.45, 0.30) if vol_curve is None else vol_curve
    return ScenarioGrid(tuple(rows), curve, "lyra-like-23")


# --- positions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScenarioPosition:
    """``quantity`` coins (signed; > 0 long) of a future/perpetual or a European option on the
    forward ``forward`` (USD), ``t_years`` to expiry (0 for a perpetual); options need a
    ``strike`` and a ``sigma`` (annualised vol, >= 0)."""

    kind: Kind
    quantity: float
    forward: float
    t_years: float = 0.0
    strike: float = 0.0
    sigma: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("future", "call", "put"):
            raise InvalidArgument(f"kind={self.kind!r} must be 'future', 'call' or 'put'")
        _finite("quantity", self.quantity)
        _finite("forward", self.forward, low=0.0, strict=True)
        _finite("t_years", self.t_years, low=0.0)
        _finite("sigma", self.sigma, low=0.0)
        if self.kind != "future":
            _finite("strike", self.strike, low=0.0, strict=True)


@dataclass(frozen=True, slots=True, eq=False)
class ScenarioPositions:
    """Column arrays of positions (built by ``ScenarioPositions.of``); ``is_option`` and ``is_call``
    are boolean masks; ``strike`` is 1 for futures (unused)."""

    quantity: FloatArray
    forward: FloatArray
    t_years: FloatArray
    strike: FloatArray
    sigma: FloatArray
    is_option: BoolArray
    is_call: BoolArray

    @classmethod
    def of(cls, positions: Sequence[ScenarioPosition]) -> ScenarioPositions:
        """Stack validated ``ScenarioPosition`` records into columns."""
        for p in positions:
            if not isinstance(p, ScenarioPosition):
                raise InvalidArgument(f"position={p!r} must be a ScenarioPosition")

        def col(name: str) -> FloatArray:
            return np.array([float(getattr(p, name)) for p in positions], dtype=np.float64)

        opt = np.array([p.kind != "future" for p in positions], dtype=np.bool_)
        return cls(
            quantity=col("quantity"),
            forward=col("forward"),
            t_years=col("t_years"),
            strike=np.where(opt, col("strike"), 1.0) if positions else col("strike"),
            sigma=col("sigma"),
            is_option=opt,
            is_call=np.array([p.kind == "call" for p in positions], dtype=np.bool_),
        )

    def __len__(self) -> int:
        return int(self.quantity.shape[0])


def _values_and_deltas(pos: ScenarioPositions, inverse: bool) -> tuple[FloatArray, FloatArray]:
    """Per-coin value now (settlement units) and per-coin delta of each position."""
    f, t, s, k, c = pos.forward, pos.t_years, pos.sigma, pos.strike, pos.is_call
    v = np.where(pos.is_option, black76.price(f, k, t, s, c), 0.0)
    d = np.where(pos.is_option, black76.delta(f, k, t, s, c), 1.0)
    if inverse:
        return v / f, np.where(pos.is_option, d - v / f, 1.0)
    return v, d


def scenario_pnl(pos: ScenarioPositions, grid: ScenarioGrid, *, inverse: bool) -> FloatArray:
    """``pnl[i, j]``: P&L of position ``i`` under scenario ``j``, before weights (module doc)."""
    m = grid.spot_moves[None, :]
    q = pos.quantity[:, None]
    f0 = pos.forward[:, None]
    f1 = f0 * (1.0 + m)
    fut = q * (1.0 - 1.0 / (1.0 + m)) if inverse else q * f0 * m
    if not pos.is_option.any():
        return np.asarray(np.broadcast_to(fut, (len(pos), len(grid))).copy())
    sig = pos.sigma[:, None]
    dte = pos.t_years[:, None] * DAYS_PER_YEAR
    if grid.vol_curve is not None:
        sig = grid.vol_curve.shock(sig, dte, grid.vol_directions[None, :])
    sig = sig * grid.vol_factors[None, :]
    t = np.broadcast_to(pos.t_years[:, None], f1.shape)
    k = np.broadcast_to(pos.strike[:, None], f1.shape)
    call = np.broadcast_to(pos.is_call[:, None], f1.shape)
    sig = np.broadcast_to(sig, f1.shape)
    v1 = black76.price(f1, k, t, sig, call)
    v0, _ = _values_and_deltas(pos, inverse)
    opt = q * (v1 / f1 - v0[:, None]) if inverse else q * (v1 - v0[:, None])
    return np.asarray(np.where(pos.is_option[:, None], opt, fut))


# --- the model -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortfolioMargin:
    """The terms of one account's portfolio margin, in settlement units."""

    scenario_pnl: tuple[float, ...]
    worst_scenario: int
    worst_case: float
    roll_shock: float
    delta_shock: float
    risk_matrix_margin: float
    maintenance: float
    initial: float


@dataclass(frozen=True, slots=True)
class PortfolioMarginModel:
    """A per-market portfolio-margin configuration (formulas in the module doc)."""

    grid: ScenarioGrid
    inverse: bool
    annualised_move_risk: float = 0.0
    min_annualised_move: float = 0.0
    max_delta_shock: float = 0.0
    delta_threshold_usd: float = 0.0
    m_inc: float = 0.0
    mm_factor: float = 1.0
    pnl_offset: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.grid, ScenarioGrid):
            raise InvalidArgument(f"grid={self.grid!r} must be a ScenarioGrid")
        for name in (
            "annualised_move_risk",
            "min_annualised_move",
            "max_delta_shock",
            "delta_threshold_usd",
            "m_inc",
        ):
            _finite(name, getattr(self, name), low=0.0)
        if not 0.0 < _finite("mm_factor", self.mm_factor) <= 1.0:
            raise InvalidArgument(f"mm_factor={self.mm_factor!r} must be in (0, 1]")
        if not 0.0 <= _finite("pnl_offset", self.pnl_offset) <= 1.0:
            raise InvalidArgument(f"pnl_offset={self.pnl_offset!r} must be in [0, 1]")

    def margin(
        self,
        positions: ScenarioPositions | Sequence[ScenarioPosition],
        spot: float,
        *,
        open_orders_margin: float = 0.0,
        mmp_margin: float = 0.0,
    ) -> PortfolioMargin:
        """Worst case, shocks, MM and IM of one account at index ``spot`` (USD)."""
        s = _finite("spot", spot, low=0.0, strict=True)
        orders = _finite("open_orders_margin", open_orders_margin, low=0.0)
        mmp = _finite("mmp_margin", mmp_margin, low=0.0)
        pos = (
            positions
            if isinstance(positions, ScenarioPositions)
            else ScenarioPositions.of(positions)
        )
        unit = 1.0 if self.inverse else s
        if len(pos) == 0:
            pnl = np.zeros(len(self.grid))
            roll = shock = 0.0
        else:
            pnl = scenario_pnl(pos, self.grid, inverse=self.inverse).sum(axis=0)
            pnl = pnl * self.grid.weights
            _, d = _values_and_deltas(pos, self.inverse)
            deltas = pos.quantity * d
            expiries, group = np.unique(pos.t_years, return_inverse=True)
            delta_e = np.bincount(group, weights=deltas, minlength=expiries.shape[0])
            term = np.maximum(
                self.min_annualised_move, np.expm1(self.annualised_move_risk * expiries)
            )
            roll = float(np.sum(np.abs(delta_e) * term)) * unit
            net = abs(float(deltas.sum()))
            excess = max(net - self.delta_threshold_usd / s, 0.0)
            shock = net * min(self.max_delta_shock, self.m_inc * excess) * unit
        kept = np.minimum(pnl, 0.0) + self.pnl_offset * np.maximum(pnl, 0.0)
        worst = int(np.argmin(kept))
        worst_case = 0.0 - float(kept[worst])  # no -0.0
        rmm = worst_case + roll + shock
        return PortfolioMargin(
            scenario_pnl=tuple(float(x) for x in pnl),
            worst_scenario=worst,
            worst_case=worst_case,
            roll_shock=roll,
            delta_shock=shock,
            risk_matrix_margin=rmm,
            maintenance=self.mm_factor * rmm,
            initial=rmm + orders + mmp,
        )


DERIBIT_BTC_PM: Final = PortfolioMarginModel(
    grid=deribit_grid(),
    inverse=True,
    annualised_move_risk=0.075,
    min_annualised_move=0.01,
    max_delta_shock=0.10,
    delta_threshold_usd=20_000_000.0,
    m_inc=0.00005,
    mm_factor=0.8,
    pnl_offset=0.0,
)
"""Deribit BTC portfolio margin, docs-example parameters (options_margin.md §3)."""

LYRA_LIKE: Final = PortfolioMarginModel(grid=lyra_like_grid(), inverse=False, mm_factor=1 / 1.3)
"""USD-settled 23-scenario grid; ``initial = risk_matrix_margin``, ``MM = RMM/1.3`` (Lyra's
imFactor 1.3 read as IM = 1.3·MM); no roll or delta shock."""
