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
on its own forward ``F_i`` moved to ``F_i·(1 + m_j)``, vol ``σ' = max(σ_curve·factor_j +
shift_j, 0)`` (``vol_shift``: additive vol points, SPAN's VSR; 0 unless set), time to expiry
``T' = max(T - lookahead_days/365, 0)`` (the grid's look-ahead, 0 unless set), options by
Black-76 (``V``, per coin of underlying, in USD):

- linear (USD-settled): future ``q·F·m``; option ``q·(V(F(1+m), σ', T') - V(F, σ, T))``;
- inverse (coin-settled, Deribit): future ``q·(1 - 1/(1 + m))``;
  option ``q·(V(F(1+m), σ', T')/(F(1+m)) - V(F, σ, T)/F)``;

``risk_arrays`` gives SPAN's ``RA[i, j] = -w_j·pnl[i, j]`` (losses positive). Margin
(``PortfolioMarginModel.margin``), in settlement units: ``u = 1`` if inverse (coin), else
``u = S`` (USD). ``E`` runs over expiries (same ``t_years`` = same expiry); ``V_E(j)`` is the
net value of the option legs of ``E`` in scenario ``j``, ``mtm_E`` the same now (futures and
perpetuals are P&L only, never in ``V_E``)::

    δ_E                = base_static_discount·exp(-T_E·(rate_mult_scale·max(r, 0) + rate_add_scale))
    P_j                = w_j·(Σ_i pnl_ij - Σ_E (1 - δ_E)·max(V_E(j), 0) + base·S·m_j)
    d_j                = (max(|m_j|/pr, 1) - 1)·extended_dampener_usd / (S·(1 + sign(m_j)·pr))
                         on extended scenarios (USD-settled: without the division), else 0
    P_j                = P_j + min(d_j, max(-P_j, 0))      (a loss moved toward 0, never past)
    kept_j             = min(P_j, 0) + pnl_offset·max(P_j, 0)
    worst_case         = -min_j kept_j       (gains only offset losses if pnl_offset > 0)
    BC                 = Σ_E min(V_E(1+up) - mtm_E, V_E(1+down) - mtm_E, 0)
                         ·(basis_add_factor + basis_mult_factor·T_E)
    SC                 = u·[perp_percent·Σ_e |Σ futures_e| + base_percent·base
                            + option_percent·Σ_E naked_E]
    naked_E            = Σ_K max(0, -(a_call,K + a_put,K))   (call and put at one strike pooled)
    SOM                = som_rate·u·max(short calls, short puts)
    roll_shock         = Σ_e |δ_e|·max(min_annualised_move, exp(annualised_move_risk·T_e) - 1)·u
    delta_shock        = |δ|·min(max_delta_shock, m_inc·max(|δ| - delta_threshold_usd/S, 0))·u
    risk_matrix_margin = max(max(worst_case, -BC) + roll_shock + delta_shock + SC, SOM)
    maintenance        = mm_factor·risk_matrix_margin
    initial            = im_ratio·risk_matrix_margin + open_orders_margin + mmp_margin

``pr`` is the grid's ``price_range`` (largest standard ``|m|``); ``(up, down)`` =
``basis_moves``; ``base`` is a spot holding in coins (a ``margin`` argument; its P&L is 0 when
coin-settled). SOM counts net short option coins per series (expiry, strike, kind), summed over
the account (one underlying): ``som_rate`` is a fraction of spot per short coin, i.e. a
per-contract charge in settlement units for 1-coin contracts. Each term is off (0, or
``δ_E = 1``) by default, which leaves the Deribit and Lyra-like results bit for bit as before.

``δ_e`` is the net delta of all positions expiring at ``T_e`` (perpetuals: ``T = 0``, so the
minimum term applies), ``δ = Σ_e δ_e``. Delta per coin: future 1, linear option Black-76
``∂V/∂F``, inverse option ``∂V/∂F - V/F`` (the coin delta), at the current ``T``.

Configurations: ``DERIBIT_BTC_PM`` (Deribit PM, ``mm_factor`` 0.8, dampener off by default),
``LYRA_PMRM`` (Lyra v2: ``MM = -min(BC, min_j Δ_j) + SC``, ``IM = 1.3·MM``; with ``r = 0`` and
weights 1, ``P_j`` is Lyra's ``Δ_j``), ``span_model(PSR, VSR)`` (CME SPAN's 16 scenarios,
``risk = max(scan, SOM)``, ``IM = 1.10·risk``), ``LYRA_LIKE`` (a bare 23-scenario grid).
This is a floating-point screen, not the exact ledger path.
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
    "LYRA_PMRM",
    "SPAN_STANDARD",
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
    "lyra_pmrm_grid",
    "risk_arrays",
    "scenario_pnl",
    "span_grid",
    "span_model",
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
    it, then an additive ``vol_shift`` (vol points as a fraction, ``0.05`` = +5 points; the
    result floored at 0), and a ``weight`` on the scenario P&L; ``extended`` marks a tail
    move."""

    spot_move: float
    vol_direction: int = 0
    vol_factor: float = 1.0
    weight: float = 1.0
    extended: bool = False
    vol_shift: float = 0.0

    def __post_init__(self) -> None:
        _finite("spot_move", self.spot_move, low=-1.0, strict=True)
        if self.vol_direction not in (-1, 0, 1) or isinstance(self.vol_direction, bool):
            raise InvalidArgument(f"vol_direction={self.vol_direction!r} must be -1, 0 or 1")
        _finite("vol_factor", self.vol_factor, low=0.0)
        _finite("weight", self.weight, low=0.0)
        if not isinstance(self.extended, bool):
            raise InvalidArgument(f"extended={self.extended!r} must be a bool")
        _finite("vol_shift", self.vol_shift)


@dataclass(frozen=True, slots=True)
class ScenarioGrid:
    """A non-empty tuple of scenarios plus the vol curve their directions use (``None``
    only if every direction is 0) and a look-ahead: every scenario revalues options at
    ``max(T - lookahead_days/365, 0)`` (time decay; 0 = none)."""

    scenarios: tuple[Scenario, ...]
    vol_curve: VolShockCurve | None = None
    name: str = ""
    lookahead_days: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.scenarios, tuple) or not self.scenarios:
            raise InvalidArgument(f"scenarios={self.scenarios!r} must be a non-empty tuple")
        for s in self.scenarios:
            if not isinstance(s, Scenario):
                raise InvalidArgument(f"scenario={s!r} must be a Scenario")
        if self.vol_curve is None and any(s.vol_direction for s in self.scenarios):
            raise InvalidArgument(f"grid {self.name!r} has vol directions but vol_curve=None")
        _finite("lookahead_days", self.lookahead_days, low=0.0)

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

    @property
    def vol_shifts(self) -> FloatArray:
        return np.array([s.vol_shift for s in self.scenarios], dtype=np.float64)

    @property
    def extended_mask(self) -> BoolArray:
        return np.array([s.extended for s in self.scenarios], dtype=np.bool_)

    @property
    def price_range(self) -> float:
        """Largest ``|spot_move|`` among the standard (not extended) scenarios, 0 if none."""
        return max((abs(s.spot_move) for s in self.scenarios if not s.extended), default=0.0)


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


def lyra_pmrm_grid(vol_curve: VolShockCurve | None = None) -> ScenarioGrid:
    """Lyra PMRM's 21 scenarios in its index order (lyra_pmrm.md §4.1): spot shock
    ``s ∈ {1.15, 1.10, 1.05, 1.00, 0.95, 0.90, 0.85}`` (move ``s - 1``) x {Up, None, Down}; vol
    curve as ``lyra_like_grid`` (§4.3, §6: 0.45/0.30, powers 0.30/0.13, floor 1 day)."""
    rows = [Scenario(k / 100, d) for k in (15, 10, 5, 0, -5, -10, -15) for d in (1, 0, -1)]
    curve = VolShockCurve(0.45, 0.30) if vol_curve is None else vol_curve
    return ScenarioGrid(tuple(rows), curve, "lyra-pmrm-21")


SPAN_STANDARD: Final = (
    (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1), (2, 1), (2, -1),
    (-2, 1), (-2, -1), (3, 1), (3, -1), (-3, 1), (-3, -1),
)  # fmt: skip
"""SPAN scenarios 1-14 as (spot move in thirds of the PSR, vol direction): options_margin.md §1."""


def span_grid(
    price_scan_range: float,
    vol_scan_range: float,
    extreme_multiple: float = 2.0,
    extreme_weight: float = 0.35,
    lookahead_days: float = 1.0,
) -> ScenarioGrid:
    """CME SPAN's 16 scenarios in the published order (options_margin.md §1). ``PSR`` =
    ``price_scan_range`` as a fraction of the forward, ``VSR`` = ``vol_scan_range`` in vol
    points (additive, ``0.05`` = 5 points)::

        1-14: m = (k/3)·PSR, σ' = max(σ ± VSR, 0) for k = 0, +1, -1, +2, -2, +3, -3,
              each vol up then down
        15, 16: m = ±X·PSR at unchanged vol, weight c       (X = extreme_multiple, c = weight)

    and every scenario looks ``lookahead_days`` ahead (time decay)."""
    psr = _finite("price_scan_range", price_scan_range, low=0.0, strict=True)
    vsr = _finite("vol_scan_range", vol_scan_range, low=0.0)
    x = _finite("extreme_multiple", extreme_multiple, low=0.0, strict=True)
    c = _finite("extreme_weight", extreme_weight, low=0.0)
    if x * psr >= 1.0:
        raise InvalidArgument(
            f"extreme_multiple={extreme_multiple!r} times price_scan_range={price_scan_range!r}"
            " must be < 1 (the down move would take the forward to 0)"
        )
    rows = [Scenario((k / 3) * psr, vol_shift=d * vsr) for k, d in SPAN_STANDARD]
    rows += [
        Scenario(x * psr, weight=c, extended=True),
        Scenario(-x * psr, weight=c, extended=True),
    ]
    return ScenarioGrid(tuple(rows), None, "span-16", lookahead_days)


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
    shifts = grid.vol_shifts
    if shifts.any():
        sig = np.maximum(sig + shifts[None, :], 0.0)
    t1 = pos.t_years[:, None]
    if grid.lookahead_days > 0.0:
        t1 = np.maximum(t1 - grid.lookahead_days / DAYS_PER_YEAR, 0.0)
    t = np.broadcast_to(t1, f1.shape)
    k = np.broadcast_to(pos.strike[:, None], f1.shape)
    call = np.broadcast_to(pos.is_call[:, None], f1.shape)
    sig = np.broadcast_to(sig, f1.shape)
    v1 = black76.price(f1, k, t, sig, call)
    v0, _ = _values_and_deltas(pos, inverse)
    opt = q * (v1 / f1 - v0[:, None]) if inverse else q * (v1 - v0[:, None])
    return np.asarray(np.where(pos.is_option[:, None], opt, fut))


def risk_arrays(pos: ScenarioPositions, grid: ScenarioGrid, *, inverse: bool) -> FloatArray:
    """SPAN-style risk arrays ``RA[i, j] = -w_j·pnl[i, j]``: weighted loss of position ``i``
    (its signed quantity, not one long contract) under scenario ``j``, losses positive."""
    return np.asarray(-(scenario_pnl(pos, grid, inverse=inverse) * grid.weights[None, :]))


# --- the model -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortfolioMargin:
    """The terms of one account's portfolio margin, in settlement units. The added terms are
    requirements (>= 0): ``basis_contingency`` is ``-BC``, ``static_contingency`` is ``SC``,
    ``short_option_minimum`` is ``SOM`` (module doc); each is 0 when its setting is off."""

    scenario_pnl: tuple[float, ...]
    worst_scenario: int
    worst_case: float
    roll_shock: float
    delta_shock: float
    risk_matrix_margin: float
    maintenance: float
    initial: float
    basis_contingency: float = 0.0
    static_contingency: float = 0.0
    short_option_minimum: float = 0.0


def _group_sum(keys: FloatArray, weights: FloatArray) -> FloatArray:
    """Sum ``weights`` over rows of ``keys`` (``n x k``) that are equal (one sum per group)."""
    if keys.shape[0] == 0:
        return np.zeros(0)
    _, inv = np.unique(keys, axis=0, return_inverse=True)
    return np.asarray(np.bincount(inv.reshape(-1), weights=weights), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class PortfolioMarginModel:
    """A per-market portfolio-margin configuration (formulas in the module doc). Every
    setting defaults to "off" (``im_ratio`` 1, ``base_static_discount`` 1, the rest 0), which
    gives the plain Deribit-shaped model.

    Not modelled: Deribit X:PM's correlation contingency (the reference gives no formula);
    Lyra's confidence contingency and stable-coin peg term (they need confidence and stable
    price feeds we lack: read as confidence 1, ``P_stable = 1``); Lyra's fixed/variable split
    of the forward (the whole forward is shocked); SPAN's intra/inter-commodity spreads and
    delivery charge; SPAN's NOV credit (option marks are in equity here, as on Deribit and
    Lyra, so the requirement is the risk before NOV)."""

    grid: ScenarioGrid
    inverse: bool
    annualised_move_risk: float = 0.0
    min_annualised_move: float = 0.0
    max_delta_shock: float = 0.0
    delta_threshold_usd: float = 0.0
    m_inc: float = 0.0
    mm_factor: float = 1.0
    pnl_offset: float = 0.0
    im_ratio: float = 1.0
    som_rate: float = 0.0
    extended_dampener_usd: float = 0.0
    base_static_discount: float = 1.0
    rate_mult_scale: float = 0.0
    rate_add_scale: float = 0.0
    rate: float = 0.0
    basis_moves: tuple[float, float] = (0.05, -0.05)
    basis_add_factor: float = 0.0
    basis_mult_factor: float = 0.0
    perp_percent: float = 0.0
    base_percent: float = 0.0
    option_percent: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.grid, ScenarioGrid):
            raise InvalidArgument(f"grid={self.grid!r} must be a ScenarioGrid")
        if not isinstance(self.inverse, bool):
            raise InvalidArgument(f"inverse={self.inverse!r} must be a bool")
        for name in (
            "annualised_move_risk",
            "min_annualised_move",
            "max_delta_shock",
            "delta_threshold_usd",
            "m_inc",
            "som_rate",
            "extended_dampener_usd",
            "rate_mult_scale",
            "rate_add_scale",
            "basis_add_factor",
            "basis_mult_factor",
            "perp_percent",
            "base_percent",
            "option_percent",
        ):
            _finite(name, getattr(self, name), low=0.0)
        if not 0.0 < _finite("mm_factor", self.mm_factor) <= 1.0:
            raise InvalidArgument(f"mm_factor={self.mm_factor!r} must be in (0, 1]")
        if not 0.0 <= _finite("pnl_offset", self.pnl_offset) <= 1.0:
            raise InvalidArgument(f"pnl_offset={self.pnl_offset!r} must be in [0, 1]")
        if _finite("im_ratio", self.im_ratio) < self.mm_factor:
            raise InvalidArgument(
                f"im_ratio={self.im_ratio!r} must be >= mm_factor={self.mm_factor!r}"
            )
        if not 0.0 < _finite("base_static_discount", self.base_static_discount) <= 1.0:
            raise InvalidArgument(
                f"base_static_discount={self.base_static_discount!r} must be in (0, 1]"
            )
        _finite("rate", self.rate)
        bm = self.basis_moves
        if not isinstance(bm, tuple) or len(bm) != 2:
            raise InvalidArgument(f"basis_moves={bm!r} must be a pair (up, down)")
        up = _finite("basis_moves[0]", bm[0], low=0.0, strict=True)
        down = _finite("basis_moves[1]", bm[1], low=-1.0, strict=True)
        if down >= 0.0:
            raise InvalidArgument(f"basis_moves[1]={down!r} must be < 0 (up={up!r})")
        if self.extended_dampener_usd > 0.0 and (
            not self.grid.extended_mask.any() or self.grid.price_range == 0.0
        ):
            raise InvalidArgument(
                f"extended_dampener_usd={self.extended_dampener_usd!r} needs a grid with"
                f" extended moves and standard moves (grid {self.grid.name!r})"
            )

    def static_discount(self, t_years: FloatArray) -> FloatArray:
        """``δ_E = base_static_discount·exp(-T_E·(rate_mult_scale·r + rate_add_scale))``,
        ``r = max(rate, 0)``."""
        t = np.asarray(t_years, dtype=np.float64)
        k = self.rate_mult_scale * max(self.rate, 0.0) + self.rate_add_scale
        return np.asarray(self.base_static_discount * np.exp(-t * k))

    def extended_dampener(self, spot: float) -> FloatArray:
        """Per scenario, the most ``d(m)`` an extended loss is moved toward 0 (0 on standard
        scenarios): ``(max(|m|/pr, 1) - 1)·dampener_USD``, divided by ``S·(1 + sign(m)·pr)``
        if coin-settled; ``pr = grid.price_range``."""
        m = self.grid.spot_moves
        if self.extended_dampener_usd == 0.0:
            return np.zeros_like(m)
        pr = self.grid.price_range
        d = (np.maximum(np.abs(m) / pr, 1.0) - 1.0) * self.extended_dampener_usd
        if self.inverse:
            d = d / (spot * (1.0 + np.sign(m) * pr))
        return np.asarray(np.where(self.grid.extended_mask, d, 0.0))

    def margin(
        self,
        positions: ScenarioPositions | Sequence[ScenarioPosition],
        spot: float,
        *,
        open_orders_margin: float = 0.0,
        mmp_margin: float = 0.0,
        base: float = 0.0,
    ) -> PortfolioMargin:
        """Worst case, shocks, contingencies, MM and IM of one account at index ``spot`` (USD);
        ``base`` coins of the underlying held as spot (Lyra's base; P&L ``base·S·m`` if
        USD-settled, 0 if coin-settled)."""
        s = _finite("spot", spot, low=0.0, strict=True)
        orders = _finite("open_orders_margin", open_orders_margin, low=0.0)
        mmp = _finite("mmp_margin", mmp_margin, low=0.0)
        base_q = _finite("base", base, low=0.0)
        pos = (
            positions
            if isinstance(positions, ScenarioPositions)
            else ScenarioPositions.of(positions)
        )
        unit = 1.0 if self.inverse else s
        bc = sc = som = 0.0
        if len(pos) == 0:
            pnl = np.zeros(len(self.grid))
            roll = shock = 0.0
        else:
            raw = scenario_pnl(pos, self.grid, inverse=self.inverse)
            pnl = raw.sum(axis=0)
            v0, d = _values_and_deltas(pos, self.inverse)
            expiries, group = np.unique(pos.t_years, return_inverse=True)
            opt = pos.is_option
            disc = self.static_discount(expiries)
            basis = self.basis_add_factor > 0.0 or self.basis_mult_factor > 0.0
            if basis or np.any(disc != 1.0):
                # per-expiry sums of option legs: member[e, i] = 1 if leg i is an option in e
                idx = np.arange(expiries.shape[0])[:, None]
                member = ((group[None, :] == idx) & opt).astype(np.float64)
            if np.any(disc != 1.0):
                mtm_e = member @ np.where(opt, pos.quantity * v0, 0.0)
                v_e = mtm_e[:, None] + member @ raw  # V_E(s_j, v_j)
                pnl = pnl - ((1.0 - disc)[:, None] * np.maximum(v_e, 0.0)).sum(axis=0)
            if basis:
                up, down = self.basis_moves
                moves = ScenarioGrid((Scenario(up), Scenario(down)), name="basis")
                dv = member @ scenario_pnl(pos, moves, inverse=self.inverse)  # V_E - mtm_E
                per_e = np.minimum(dv.min(axis=1), 0.0)
                factor = self.basis_add_factor + self.basis_mult_factor * expiries
                bc = 0.0 - float(np.sum(per_e * factor))
            if self.perp_percent > 0.0 or self.option_percent > 0.0:
                fut = np.where(opt, 0.0, pos.quantity)
                futures_net = float(np.sum(np.abs(np.bincount(group, weights=fut))))
                k = np.stack([pos.t_years, pos.strike], axis=1)[opt]
                naked = float(np.sum(np.maximum(-_group_sum(k, pos.quantity[opt]), 0.0)))
                sc = self.perp_percent * futures_net + self.option_percent * naked
            if self.som_rate > 0.0 and opt.any():
                k = np.stack([pos.t_years, pos.strike, pos.is_call], axis=1)[opt]
                series_net = _group_sum(k, pos.quantity[opt])
                series_call = _group_sum(k, pos.is_call[opt].astype(np.float64)) > 0.0
                short = np.maximum(-series_net, 0.0)
                counts = (float(short[series_call].sum()), float(short[~series_call].sum()))
                som = self.som_rate * max(counts) * unit
            deltas = pos.quantity * d
            delta_e = np.bincount(group, weights=deltas, minlength=expiries.shape[0])
            term = np.maximum(
                self.min_annualised_move, np.expm1(self.annualised_move_risk * expiries)
            )
            roll = float(np.sum(np.abs(delta_e) * term)) * unit
            net = abs(float(deltas.sum()))
            excess = max(net - self.delta_threshold_usd / s, 0.0)
            shock = net * min(self.max_delta_shock, self.m_inc * excess) * unit
        if base_q > 0.0 and not self.inverse:
            pnl = pnl + base_q * s * self.grid.spot_moves
        if len(pos) or base_q > 0.0:
            pnl = pnl * self.grid.weights
        sc = (sc + self.base_percent * base_q) * unit
        if self.extended_dampener_usd > 0.0:
            pnl = pnl + np.minimum(self.extended_dampener(s), np.maximum(-pnl, 0.0))
        kept = np.minimum(pnl, 0.0) + self.pnl_offset * np.maximum(pnl, 0.0)
        worst = int(np.argmin(kept))
        worst_case = 0.0 - float(kept[worst])  # no -0.0
        core = worst_case + roll + shock
        if bc > 0.0:
            core = max(worst_case, bc) + roll + shock
        if sc > 0.0:
            core = core + sc
        rmm = max(core, som) if self.som_rate > 0.0 else core
        return PortfolioMargin(
            scenario_pnl=tuple(float(x) for x in pnl),
            worst_scenario=worst,
            worst_case=worst_case,
            roll_shock=roll,
            delta_shock=shock,
            risk_matrix_margin=rmm,
            maintenance=self.mm_factor * rmm,
            initial=self.im_ratio * rmm + orders + mmp,
            basis_contingency=bc,
            static_contingency=sc,
            short_option_minimum=som,
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
"""Deribit BTC portfolio margin, docs-example parameters (options_margin.md §3). The BTC
extended dampener (100,000 USD) is off so the docs' golden vector holds; set
``extended_dampener_usd=100_000.0`` (``dataclasses.replace``) to switch it on."""

LYRA_LIKE: Final = PortfolioMarginModel(grid=lyra_like_grid(), inverse=False, mm_factor=1 / 1.3)
"""USD-settled 23-scenario grid; ``initial = risk_matrix_margin``, ``MM = RMM/1.3`` (Lyra's
imFactor 1.3 read as IM = 1.3·MM); no roll or delta shock."""

LYRA_PMRM: Final = PortfolioMarginModel(
    grid=lyra_pmrm_grid(),
    inverse=False,
    mm_factor=1.0,
    im_ratio=1.3,
    base_static_discount=0.95,
    rate_mult_scale=4.0,
    rate_add_scale=0.05,
    rate=0.0,
    basis_moves=(0.05, -0.05),
    basis_add_factor=0.25,
    basis_mult_factor=0.01,
    perp_percent=0.02,
    base_percent=0.02,
    option_percent=0.01,
)
"""Lyra v2 PMRM (lyra_pmrm.md §4, §6 parameters), USD-settled: ``MM = -min(BC, min_i Δ_i) + SC``,
``IM = 1.3·MM`` (as requirements); no confidence or peg term (module doc)."""


def span_model(
    price_scan_range: float,
    vol_scan_range: float,
    *,
    som_rate: float = 0.0,
    im_ratio: float = 1.10,
    extreme_multiple: float = 2.0,
    extreme_weight: float = 0.35,
    lookahead_days: float = 1.0,
    inverse: bool = False,
) -> PortfolioMarginModel:
    """A CME SPAN-style configuration: ``span_grid(...)``, ``requirement = max(scan, SOM)``,
    ``MM = requirement``, ``IM = im_ratio·requirement`` (CME speculators 1.10 since 2013)."""
    grid = span_grid(
        price_scan_range, vol_scan_range, extreme_multiple, extreme_weight, lookahead_days
    )
    return PortfolioMarginModel(grid, inverse, som_rate=som_rate, im_ratio=im_ratio)
