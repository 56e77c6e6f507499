"""Volatility surface with skew: raw SVI per expiry, interpolated in time (pure, no I/O).

Raw SVI (Gatheral 2004) gives the total implied variance ``w = σ_imp²·t`` of one expiry as a
function of log-moneyness ``k = ln(K/F)``::

    w(k) = a + b·(ρ·(k - m) + √((k - m)² + σ²))

with ``b >= 0``, ``|ρ| < 1``, ``σ > 0`` and ``a + b·σ·√(1 - ρ²) >= 0`` (the minimum of ``w``,
so ``w >= 0`` everywhere). Implied vol at ``k`` is ``√(w(k)/t)``.

``VolSurface`` holds slices at strictly increasing expiry times ``t_1 < … < t_n`` (years):

* between two slices, total variance is linear in ``t`` at fixed ``k``:
  ``w(k, t) = (1 - λ)·w_i(k) + λ·w_{i+1}(k)``, ``λ = (t - t_i)/(t_{i+1} - t_i)``;
* before ``t_1`` and after ``t_n`` the *vol* is flat in ``t`` at fixed ``k``:
  ``w(k, t) = w_1(k)·t/t_1`` (resp. ``w_n(k)·t/t_n``).

Shocks: ``spot_shocked`` is sticky-moneyness (the smile is a function of ``K/F`` and moves with
the forward); ``vol_shocked`` multiplies each slice's vols by ``1 + shock·min((t_ref/t)^p, cap)``
so short expiries move more (see ``VolShockTerm``).

Static arbitrage (``check_static_arbitrage``): butterfly via Durrleman's condition
``g(k) >= 0`` on each slice, calendar via ``w_{i+1}(k) >= w_i(k)``. Violations are reported,
never silently fixed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from liqeng.errors import InvalidArgument
from liqeng.market.black76 import FloatArray

__all__ = [
    "ArbitrageReport",
    "ButterflyCheck",
    "CalendarCheck",
    "SviSlice",
    "VolShockTerm",
    "VolSurface",
    "check_static_arbitrage",
]


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidArgument(f"{name}={value!r} must be a finite number")
    return float(value)


def _floats(name: str, value: object) -> FloatArray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        raise InvalidArgument(f"{name}={value!r} must be a number or an array of numbers")
    out = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(out)
    if bad.any():
        first = float(out.flat[int(np.argmax(bad.ravel()))])
        raise InvalidArgument(f"{name} contains {first!r}; every value must be finite")
    return out


def _out(x: FloatArray, *args: object) -> float | FloatArray:
    return x if any(isinstance(a, np.ndarray) for a in args) else float(x)


@dataclass(frozen=True, slots=True)
class SviSlice:
    """Raw SVI smile of one expiry: ``w(k) = a + b·(ρ·(k - m) + √((k - m)² + σ²))``.

    Fields ``a, b, rho, m, sigma``; valid when ``b >= 0``, ``|rho| < 1``, ``sigma > 0`` and
    ``a + b·sigma·√(1 - rho²) >= 0`` (the minimum total variance, ``min_variance``).
    """

    a: float
    b: float
    rho: float
    m: float
    sigma: float

    def __post_init__(self) -> None:
        for name in ("a", "b", "rho", "m", "sigma"):
            _finite(name, getattr(self, name))
        if self.b < 0.0:
            raise InvalidArgument(f"b={self.b!r} must be >= 0")
        if not -1.0 < self.rho < 1.0:
            raise InvalidArgument(f"rho={self.rho!r} must be in (-1, 1)")
        if self.sigma <= 0.0:
            raise InvalidArgument(f"sigma={self.sigma!r} must be > 0")
        if self.min_variance < -1e-12:
            raise InvalidArgument(
                f"a={self.a!r} gives a + b·sigma·√(1 - rho²)={self.min_variance!r}; must be >= 0"
            )

    @property
    def min_variance(self) -> float:
        """``a + b·σ·√(1 - ρ²)``: the smallest total variance, at ``k = m - ρσ/√(1 - ρ²)``."""
        return self.a + self.b * self.sigma * math.sqrt(1.0 - self.rho * self.rho)

    def total_variance(self, k: float | FloatArray) -> float | FloatArray:
        """``w(k)``; ``k = ln(K/F)``, float or array."""
        kk = _floats("k", k)
        x = kk - self.m
        w = self.a + self.b * (self.rho * x + np.sqrt(x * x + self.sigma * self.sigma))
        return _out(np.maximum(w, 0.0), k)

    def implied_vol(self, k: float | FloatArray, t: float) -> float | FloatArray:
        """``√(w(k)/t)`` for expiry time ``t > 0`` years."""
        t = _finite("t", t)
        if t <= 0.0:
            raise InvalidArgument(f"t={t!r} must be > 0 years")
        w = np.asarray(self.total_variance(k), dtype=np.float64)
        return _out(np.sqrt(w / t), k)

    def durrleman_g(self, k: float | FloatArray) -> float | FloatArray:
        """Butterfly density condition (Gatheral-Jacquier 2014, eq. 2.1); ``g >= 0`` is no
        butterfly arbitrage::

            g(k) = (1 - k·w'/(2w))² - (w'²/4)·(1/w + 1/4) + w''/2
            w' = b·(ρ + (k - m)/√((k - m)² + σ²)),   w'' = b·σ² / ((k - m)² + σ²)^(3/2)
        """
        kk = _floats("k", k)
        x = kk - self.m
        root = np.sqrt(x * x + self.sigma * self.sigma)
        w = self.a + self.b * (self.rho * x + root)
        w1 = self.b * (self.rho + x / root)
        w2 = self.b * self.sigma * self.sigma / root**3
        with np.errstate(divide="ignore", invalid="ignore"):
            g = (1.0 - kk * w1 / (2.0 * w)) ** 2 - (w1 * w1 / 4.0) * (1.0 / w + 0.25) + w2 / 2.0
        g = np.where(w > 0.0, g, -np.inf)  # zero variance: no density, count as violation
        return _out(g, k)

    def scaled(self, factor: float) -> SviSlice:
        """The slice with every vol multiplied by ``factor > 0``: ``a, b`` times ``factor²``."""
        factor = _finite("factor", factor)
        if factor <= 0.0:
            raise InvalidArgument(f"vol factor={factor!r} must be > 0")
        f2 = factor * factor
        return SviSlice(self.a * f2, self.b * f2, self.rho, self.m, self.sigma)


@dataclass(frozen=True, slots=True)
class VolShockTerm:
    """Term structure of a vol shock: at expiry ``t`` a shock ``s`` becomes
    ``s_t = s · min((t_ref / t)^power, cap)`` and vols are multiplied by ``1 + s_t``.

    Defaults: reference tenor 30 days, ``power = 0.5`` (a 1-week vol moves ``√(30/7) ≈ 2.07``
    times the 30-day move, a 1-year one ``√(30/365) ≈ 0.29`` times), ``cap = 4`` bounds the
    multiplier for expiries of a few hours. ``power = 0`` gives a flat (parallel relative) shock.
    """

    t_ref: float = 30.0 / 365.0
    power: float = 0.5
    cap: float = 4.0

    def __post_init__(self) -> None:
        if _finite("t_ref", self.t_ref) <= 0.0:
            raise InvalidArgument(f"t_ref={self.t_ref!r} must be > 0 years")
        if _finite("power", self.power) < 0.0:
            raise InvalidArgument(f"power={self.power!r} must be >= 0")
        if _finite("cap", self.cap) < 1.0:
            raise InvalidArgument(f"cap={self.cap!r} must be >= 1")

    def scale(self, t: float) -> float:
        """``min((t_ref / t)^power, cap)`` for ``t > 0``."""
        t = _finite("t", t)
        if t <= 0.0:
            raise InvalidArgument(f"t={t!r} must be > 0 years")
        return float(min((self.t_ref / t) ** self.power, self.cap))


@dataclass(frozen=True, slots=True)
class VolSurface:
    """SVI slices at strictly increasing expiry times ``expiries`` (years, all > 0).

    Total variance is linear in ``t`` between slices at fixed ``k``; vol is flat in ``t``
    before the first and after the last slice (see the module docstring).
    """

    expiries: tuple[float, ...]
    slices: tuple[SviSlice, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.expiries, tuple) or not isinstance(self.slices, tuple):
            raise InvalidArgument("expiries and slices must be tuples")
        if len(self.expiries) != len(self.slices) or not self.expiries:
            raise InvalidArgument(
                f"expiries has {len(self.expiries)} entries and slices {len(self.slices)}; "
                "need the same number, at least one"
            )
        prev = 0.0
        for i, t in enumerate(self.expiries):
            if _finite(f"expiries[{i}]", t) <= prev:
                raise InvalidArgument(
                    f"expiries[{i}]={t!r} must be > 0 and above the previous expiry {prev!r}"
                )
            prev = t
        for i, s in enumerate(self.slices):
            if not isinstance(s, SviSlice):
                raise InvalidArgument(f"slices[{i}]={s!r} must be an SviSlice")

    def total_variance(self, k: float | FloatArray, t: float | FloatArray) -> float | FloatArray:
        """``w(k, t)``, broadcast over ``k = ln(K/F)`` and ``t > 0`` (years)."""
        kk, tt = np.broadcast_arrays(_floats("k", k), _floats("t", t))
        if (tt <= 0.0).any():
            bad = float(tt.flat[int(np.argmax((tt <= 0.0).ravel()))])
            raise InvalidArgument(f"t={bad!r} must be > 0 years")
        ts = np.asarray(self.expiries)
        ws = np.stack([np.asarray(s.total_variance(kk)) for s in self.slices])  # (n, ...)
        n = len(ts)
        hi = np.clip(np.searchsorted(ts, tt, side="left"), 1, max(n - 1, 1))
        lo = hi - 1
        if n == 1:
            w = ws[0] * tt / ts[0]
        else:
            w_lo = np.take_along_axis(ws, lo[None, ...], axis=0)[0]
            w_hi = np.take_along_axis(ws, hi[None, ...], axis=0)[0]
            lam = (tt - ts[lo]) / (ts[hi] - ts[lo])
            w = (1.0 - lam) * w_lo + lam * w_hi
            w = np.where(tt < ts[0], ws[0] * tt / ts[0], w)
            w = np.where(tt > ts[-1], ws[-1] * tt / ts[-1], w)
        return _out(np.asarray(w, dtype=np.float64), k, t)

    def vol(
        self,
        strike: float | FloatArray,
        forward: float | FloatArray,
        t: float | FloatArray,
    ) -> float | FloatArray:
        """Implied vol ``√(w(ln(K/F), t)/t)``, broadcast over strike, forward and ``t``."""
        kk = _floats("strike", strike)
        ff = _floats("forward", forward)
        if (kk <= 0.0).any() or (ff <= 0.0).any():
            raise InvalidArgument(f"strike={strike!r} and forward={forward!r} must be > 0")
        tt = _floats("t", t)
        w = np.asarray(self.total_variance(np.log(kk / ff), tt), dtype=np.float64)
        return _out(np.sqrt(w / tt), strike, forward, t)

    def spot_shocked(self, factor: float) -> VolSurface:
        """Sticky-moneyness spot shock: the underlying (and every forward) moves by ``factor``
        and the smile moves with it, ``σ'(K·factor, F·factor, t) = σ(K, F, t)``.

        The surface is a function of ``k = ln(K/F)`` only, so its parameters are unchanged; the
        caller prices with the shocked forward ``F·factor``. ``factor`` must be > 0.
        """
        if _finite("factor", factor) <= 0.0:
            raise InvalidArgument(f"spot factor={factor!r} must be > 0")
        return VolSurface(self.expiries, self.slices)

    def vol_shocked(self, shock: float, term_structure: VolShockTerm | None = None) -> VolSurface:
        """Every vol of slice ``i`` multiplied by ``1 + shock·term_structure.scale(t_i)``.

        ``shock = 0.3`` is +30% of vol at the reference tenor, more at shorter expiries.
        Between slices the shocked slices are interpolated as usual. Raises if a multiplier
        would be <= 0 (e.g. ``shock = -0.5`` with a scale of 2).
        """
        shock = _finite("shock", shock)
        term = term_structure if term_structure is not None else VolShockTerm()
        out = []
        for t, s in zip(self.expiries, self.slices, strict=True):
            factor = 1.0 + shock * term.scale(t)
            if factor <= 0.0:
                raise InvalidArgument(
                    f"shock={shock!r} at t={t!r} gives vol multiplier {factor!r}; must be > 0"
                )
            out.append(s.scaled(factor))
        return VolSurface(self.expiries, tuple(out))


# --- static arbitrage ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ButterflyCheck:
    """Durrleman ``g`` on a grid of ``n_grid`` points over ``[k_lo, k_hi]`` for one slice."""

    t: float
    k_lo: float
    k_hi: float
    n_grid: int
    min_g: float
    k_at_min: float
    n_violations: int

    @property
    def ok(self) -> bool:
        return self.n_violations == 0


@dataclass(frozen=True, slots=True)
class CalendarCheck:
    """``w_long(k) - w_short(k)`` on the overlap grid of two consecutive slices."""

    t_short: float
    t_long: float
    min_dw: float
    k_at_min: float
    n_violations: int

    @property
    def ok(self) -> bool:
        return self.n_violations == 0


@dataclass(frozen=True, slots=True)
class ArbitrageReport:
    """Static-arbitrage findings; nothing is fixed, only reported."""

    butterfly: tuple[ButterflyCheck, ...]
    calendar: tuple[CalendarCheck, ...]

    @property
    def butterfly_free(self) -> bool:
        return all(c.ok for c in self.butterfly)

    @property
    def calendar_free(self) -> bool:
        return all(c.ok for c in self.calendar)


def check_static_arbitrage(
    surface: VolSurface,
    k_ranges: tuple[tuple[float, float], ...],
    n_grid: int = 201,
    tol: float = 1e-9,
) -> ArbitrageReport:
    """Butterfly and calendar checks on the range each slice was calibrated over.

    ``k_ranges[i] = (k_lo, k_hi)`` for slice ``i``. Butterfly: ``g(k) < -tol`` on ``n_grid``
    points of the slice's range is a violation. Calendar: for slices ``i, i+1``,
    ``w_{i+1}(k) - w_i(k) < -tol`` on ``n_grid`` points of the intersection of their ranges.
    """
    if len(k_ranges) != len(surface.slices):
        raise InvalidArgument(
            f"k_ranges has {len(k_ranges)} entries; the surface has {len(surface.slices)} slices"
        )
    if isinstance(n_grid, bool) or not isinstance(n_grid, int) or n_grid < 2:
        raise InvalidArgument(f"n_grid={n_grid!r} must be an int >= 2")
    fly = []
    for t, s, (lo, hi) in zip(surface.expiries, surface.slices, k_ranges, strict=True):
        grid = np.linspace(lo, hi, n_grid)
        g = np.asarray(s.durrleman_g(grid), dtype=np.float64)
        i = int(np.argmin(g))
        fly.append(
            ButterflyCheck(t, lo, hi, n_grid, float(g[i]), float(grid[i]), int((g < -tol).sum()))
        )
    cal = []
    for i in range(len(surface.slices) - 1):
        lo = max(k_ranges[i][0], k_ranges[i + 1][0])
        hi = min(k_ranges[i][1], k_ranges[i + 1][1])
        if hi < lo:  # disjoint ranges: compare at the nearer ends of both
            lo, hi = hi, lo
        grid = np.linspace(lo, hi, n_grid)
        w0 = np.asarray(surface.slices[i].total_variance(grid), dtype=np.float64)
        w1 = np.asarray(surface.slices[i + 1].total_variance(grid), dtype=np.float64)
        dw = w1 - w0
        j = int(np.argmin(dw))
        cal.append(
            CalendarCheck(
                surface.expiries[i],
                surface.expiries[i + 1],
                float(dw[j]),
                float(grid[j]),
                int((dw < -tol).sum()),
            )
        )
    return ArbitrageReport(tuple(fly), tuple(cal))
