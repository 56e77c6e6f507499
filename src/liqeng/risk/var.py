"""Value at risk and expected shortfall, for an account and for the whole protocol.

A risk measure is read off a sample of P&L outcomes (one per scenario). With ``n``
outcomes sorted ascending and ``k = ceil(n·(1 − confidence))`` (at least 1):

- ``VaR = −pnl_(k)``, the loss exceeded in at most ``1 − confidence`` of the scenarios
  (the k-th worst outcome, no interpolation);
- ``ES = −mean(pnl_(1..k))``, the mean loss over those k worst outcomes; ``ES >= VaR``.

Scenarios are simple returns of each underlying over the horizon, either **historical**
(overlapping windows of a price path) or **Monte Carlo** (lognormal with a given vol, from
a ``numpy.random.Generator`` the driver passes in, so runs replay). An account is revalued
under each scenario: perpetuals at the shocked index, options by Black-76 at the shocked
index with the horizon taken off their time to expiry. The protocol's risk is the loss
beyond what accounts can pay: ``shortfall_s = Σ_accounts max(−equity_s, 0)``, the bad
debt the insurance fund would face in scenario ``s``. Floats throughout: these figures
inform risk teams; they never decide a liquidation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from liqeng.errors import InvalidArgument
from liqeng.ids import InstrumentId
from liqeng.ledger.model import Position
from liqeng.market import black76
from liqeng.market.black76 import YEAR_SECONDS, FloatArray
from liqeng.market.instruments import EuropeanOption, Instrument, Perpetual

__all__ = [
    "RiskMeasure",
    "account_pnl",
    "historical_returns",
    "monte_carlo_returns",
    "protocol_shortfall",
    "var_es",
]


@dataclass(frozen=True, slots=True)
class RiskMeasure:
    """VaR and ES as positive losses, at ``confidence`` over ``scenarios`` outcomes."""

    var: float
    es: float
    confidence: float
    scenarios: int


def _confidence(confidence: float) -> float:
    if not isinstance(confidence, float) or not 0.5 <= confidence < 1.0:
        raise InvalidArgument(f"confidence={confidence!r} must be a float in [0.5, 1)")
    return confidence


def var_es(pnl: npt.ArrayLike, confidence: float) -> RiskMeasure:
    """VaR and ES of a P&L sample (see the module doc)."""
    c = _confidence(confidence)
    x = np.asarray(pnl, dtype=np.float64).ravel()
    if x.size == 0:
        raise InvalidArgument("pnl is empty: no scenario to measure")
    if not np.isfinite(x).all():
        raise InvalidArgument(f"pnl holds a non-finite value: {x[~np.isfinite(x)][0]!r}")
    k = max(1, math.ceil(x.size * (1.0 - c) - 1e-12))
    worst = np.partition(x, k - 1)[:k]
    return RiskMeasure(-float(worst.max()), -float(worst.mean()), c, int(x.size))


def historical_returns(prices: npt.ArrayLike, horizon_steps: int) -> FloatArray:
    """Overlapping simple returns ``p[t+h]/p[t] − 1`` of a price path (1-D) or of several
    aligned paths (2-D: steps × underlyings)."""
    p = np.asarray(prices, dtype=np.float64)
    if p.ndim not in (1, 2) or p.shape[0] <= horizon_steps:
        raise InvalidArgument(
            f"prices of shape {p.shape} need more than horizon_steps={horizon_steps} rows"
        )
    if horizon_steps < 1:
        raise InvalidArgument(f"horizon_steps={horizon_steps} must be >= 1")
    if not (np.isfinite(p) & (p > 0)).all():
        raise InvalidArgument("prices must be finite and positive")
    r: FloatArray = p[horizon_steps:] / p[:-horizon_steps] - 1.0
    return r


def monte_carlo_returns(
    rng: np.random.Generator, vols: Sequence[float], horizon_years: float, n: int
) -> FloatArray:
    """``n × len(vols)`` lognormal returns ``exp(σ√h·Z − σ²h/2) − 1`` (zero drift,
    independent underlyings), drawn from the driver's generator."""
    if not isinstance(rng, np.random.Generator):
        raise InvalidArgument(f"rng={rng!r} must be a numpy Generator from the driver")
    v = np.asarray(vols, dtype=np.float64)
    if v.ndim != 1 or v.size == 0 or not (np.isfinite(v) & (v >= 0)).all():
        raise InvalidArgument(f"vols={vols!r} must be finite and non-negative")
    if not math.isfinite(horizon_years) or horizon_years <= 0 or n < 1:
        raise InvalidArgument(f"horizon_years={horizon_years} and n={n} must be positive")
    z = rng.standard_normal((n, v.size))
    s = v * math.sqrt(horizon_years)
    r: FloatArray = np.exp(s * z - 0.5 * s * s) - 1.0
    return r


def account_pnl(
    positions: Mapping[InstrumentId, Position],
    instruments: Mapping[InstrumentId, Instrument],
    index_prices: Mapping[str, int],
    underlyings: Sequence[str],
    returns: npt.ArrayLike,
    now_ts: int,
    horizon_s: int,
    vol: float,
) -> FloatArray:
    """P&L per scenario (quote base units) of an account's positions when underlying
    ``underlyings[j]`` moves by ``returns[:, j]`` over ``horizon_s`` seconds."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] != len(underlyings):
        raise InvalidArgument(f"returns of shape {r.shape} must be scenarios × {len(underlyings)}")
    if not (np.isfinite(r) & (r > -1.0)).all():
        raise InvalidArgument("returns must be finite and above -100%")
    column = {u: j for j, u in enumerate(underlyings)}
    pnl = np.zeros(r.shape[0])
    for iid in sorted(positions):
        inst = instruments.get(iid)
        if inst is None:
            raise InvalidArgument(f"instrument={iid!r} has a position but no Instrument")
        if inst.underlying not in column or inst.underlying not in index_prices:
            raise InvalidArgument(f"underlying={inst.underlying!r} of {iid} has no scenario")
        s0 = float(index_prices[inst.underlying])
        s1 = s0 * (1.0 + r[:, column[inst.underlying]])
        units = positions[iid].size / 10**inst.size_decimals
        if isinstance(inst, Perpetual):
            pnl += units * (s1 - s0)
            continue
        assert isinstance(inst, EuropeanOption)
        t0 = max(inst.expiry_ts - now_ts, 0) / YEAR_SECONDS
        t1 = max(inst.expiry_ts - now_ts - horizon_s, 0) / YEAR_SECONDS
        k, call = float(inst.strike), inst.is_call
        v0 = black76.price(s0, k, t0, vol, call)
        v1 = black76.price(s1, k, t1, vol, call)
        pnl += units * (v1 - v0)
    return pnl


def protocol_shortfall(equity_by_scenario: npt.ArrayLike) -> FloatArray:
    """``Σ_accounts max(−equity, 0)`` per scenario, from an accounts × scenarios matrix of
    equities: the bad debt each scenario would leave to the insurance fund."""
    e = np.asarray(equity_by_scenario, dtype=np.float64)
    if e.ndim != 2 or not np.isfinite(e).all():
        raise InvalidArgument(f"equity_by_scenario of shape {e.shape} must be finite, 2-D")
    out: FloatArray = np.maximum(-e, 0.0).sum(axis=0)
    return out
