"""Calibrate a ``VolSurface`` (one raw-SVI slice per expiry) to an option-chain snapshot.

Chain format (``../shared/data/options``)::

    snapshot_ts,underlying,expiry,strike,kind,mark_price,mark_iv,underlying_price

``mark_price`` is in coin (inverse, coin-settled options: USD price = ``mark_price ·
underlying_price``); ``underlying_price`` is the forward of that expiry; an option expires at
08:00 UTC on ``expiry``. Either price column may be empty.

Per expiry the fit uses, at each strike, the out-of-the-money option (call if ``K >= F``,
put otherwise, ``F`` = that row's ``underlying_price``) and its vol:

* ``mark_iv`` when present, else the Black-76 vol implied from the USD price (``r = 0``,
  forward ``F``, bracketed root find with ``scipy.optimize.brentq`` on ``σ ∈ [1e-4, 10]``);
* dropped: vols at the venue cap (``>= iv_cap = 2.0``), quotes with no time value
  (OTM ``mark_price <= 0``), prices no vol can reproduce, and the venue's flat wing
  extrapolation (a run of 3 or more outermost vols within 0.5 vol points of each other keeps
  only its innermost point: Deribit marks far wings at one constant vol, which no smile with
  linear wings, SVI included, can fit and which carries no market information).

Time to expiry is ``(expiry 08:00 UTC - snapshot) / 365 days`` with ``snapshot`` the latest
``snapshot_ts`` in the chain, never the wall clock. The fit minimises the vol error
``√(w(k)/t) - σ_mkt`` with ``scipy.optimize.least_squares`` over ``(v, b, ρ, m, σ)``, where
``v = a + b·σ·√(1 - ρ²)`` is the minimum variance, so box bounds (``v >= 0``, ``0 <= b <= 2``
(Lee's wing bound ``b·(1 + |ρ|) <= 2`` needs ``b <= 2``), ``|ρ| <= 0.999``, ``σ >= 1e-3``)
keep every candidate a valid ``SviSlice``. Several starts; the best is kept.

Only ``read_chain`` touches a file; everything else is pure.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
from scipy.optimize import brentq, least_squares  # type: ignore[import-untyped]

from liqeng.errors import InvalidArgument
from liqeng.market import black76
from liqeng.market.black76 import YEAR_SECONDS, FloatArray
from liqeng.market.surface import ArbitrageReport, SviSlice, VolSurface, check_static_arbitrage

__all__ = [
    "COLUMNS",
    "Calibration",
    "ChainQuote",
    "SliceFit",
    "calibrate_chain",
    "fit_svi",
    "implied_vol_from_price",
    "parse_chain",
    "read_chain",
]

COLUMNS = (
    "snapshot_ts",
    "underlying",
    "expiry",
    "strike",
    "kind",
    "mark_price",
    "mark_iv",
    "underlying_price",
)
EXPIRY_HOUR_UTC = 8


@dataclass(frozen=True, slots=True)
class ChainQuote:
    """One row of a chain file; ``mark_price`` (coin) and ``mark_iv`` (decimal) may be None."""

    snapshot_ts: datetime
    underlying: str
    expiry: date
    strike: float
    is_call: bool
    mark_price: float | None
    mark_iv: float | None
    underlying_price: float

    def __post_init__(self) -> None:
        if self.snapshot_ts.tzinfo is None:
            raise InvalidArgument(f"snapshot_ts={self.snapshot_ts!r} must be timezone-aware")
        for name in ("strike", "underlying_price"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0.0):
                raise InvalidArgument(f"{name}={v!r} must be finite and positive")
        if self.mark_price is not None and not (
            math.isfinite(self.mark_price) and self.mark_price >= 0.0
        ):
            raise InvalidArgument(f"mark_price={self.mark_price!r} must be finite and >= 0")
        if self.mark_iv is not None and not (math.isfinite(self.mark_iv) and self.mark_iv > 0.0):
            raise InvalidArgument(f"mark_iv={self.mark_iv!r} must be finite and positive")

    @property
    def expiry_ts(self) -> datetime:
        """08:00 UTC on the expiry date."""
        return datetime(
            self.expiry.year, self.expiry.month, self.expiry.day, EXPIRY_HOUR_UTC, tzinfo=UTC
        )


def _opt_float(text: str, name: str, line: int) -> float | None:
    return None if text.strip() == "" else _float(text, name, line)


def _float(text: str, name: str, line: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidArgument(f"line {line}: {name}={text!r} is not a number") from None


def parse_chain(lines: Iterable[str]) -> tuple[ChainQuote, ...]:
    """Rows of a chain in the common CSV format (header first); errors name line and value."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != COLUMNS:
        raise InvalidArgument(f"header={header!r} must be {','.join(COLUMNS)}")
    out = []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(COLUMNS):
            raise InvalidArgument(f"line {line}: {row!r} has {len(row)} fields, not 8")
        ts, und, exp, strike, kind, price, iv, fwd = row
        if kind not in ("call", "put"):
            raise InvalidArgument(f"line {line}: kind={kind!r} must be 'call' or 'put'")
        try:
            snap = datetime.fromisoformat(ts)
            expiry = date.fromisoformat(exp)
        except ValueError:
            raise InvalidArgument(f"line {line}: snapshot_ts={ts!r} or expiry={exp!r}") from None
        out.append(
            ChainQuote(
                snapshot_ts=snap,
                underlying=und,
                expiry=expiry,
                strike=_float(strike, "strike", line),
                is_call=kind == "call",
                mark_price=_opt_float(price, "mark_price", line),
                mark_iv=_opt_float(iv, "mark_iv", line),
                underlying_price=_float(fwd, "underlying_price", line),
            )
        )
    return tuple(out)


def read_chain(path: str | Path) -> tuple[ChainQuote, ...]:
    """``parse_chain`` of a file (the one function here that does I/O)."""
    with Path(path).open(newline="", encoding="utf-8") as fh:
        return parse_chain(fh)


def implied_vol_from_price(
    price: float, forward: float, strike: float, t: float, is_call: bool
) -> float | None:
    """Black-76 vol (``r = 0``) that reproduces ``price`` (same currency as ``forward``),
    found by ``brentq`` on ``[1e-4, 10]``; ``None`` when ``price`` is outside the prices that
    bracket reaches (at or below intrinsic, or above the σ = 10 price)."""
    if not (math.isfinite(price) and t > 0.0):
        raise InvalidArgument(f"price={price!r} and t={t!r} must be finite, t > 0")

    def gap(sigma: float) -> float:
        return black76.price(forward, strike, t, sigma, is_call) - price

    lo, hi = 1e-4, 10.0
    if gap(lo) >= 0.0 or gap(hi) <= 0.0:
        return None
    return float(brentq(gap, lo, hi, xtol=1e-10, rtol=1e-12, maxiter=200))


# --- SVI fit -------------------------------------------------------------------------------


def _slice(p: Sequence[float]) -> SviSlice:
    v, b, rho, m, s = (float(x) for x in p)
    return SviSlice(v - b * s * math.sqrt(1.0 - rho * rho), b, rho, m, s)


def _svi_vol(p: FloatArray, k: FloatArray, t: float) -> FloatArray:
    v, b, rho, m, s = (float(x) for x in p)
    x = k - m
    w = v - b * s * math.sqrt(1.0 - rho * rho) + b * (rho * x + np.sqrt(x * x + s * s))
    out: FloatArray = np.sqrt(np.maximum(w, 1e-12) / t)
    return out


def _starts(
    k: FloatArray, w: FloatArray, iv: FloatArray, lo: FloatArray, hi: FloatArray, n: int = 4
) -> list[FloatArray]:
    """Initial guesses: for ``(m, σ)`` on a grid, ``w = a + c·(k - m) + d·√((k - m)² + σ²)`` is
    linear in ``(a, c, d)`` (Zeliade's quasi-explicit SVI): solve it by weighted least squares
    (weights ``1/(2·iv)`` turn variance errors into vol errors up to ``√t``), map to
    ``(v, b, ρ, m, σ)`` inside the bounds, keep the ``n`` best."""
    span = max(float(k.max() - k.min()), 1e-3)
    wt = 1.0 / (2.0 * iv)
    scored: list[tuple[float, FloatArray]] = []
    for m in np.linspace(float(k.min()), float(k.max()), 9):
        for sig in span * np.array([0.01, 0.03, 0.1, 0.3, 1.0]):
            x = k - m
            root = np.sqrt(x * x + sig * sig)
            basis = np.stack([np.ones_like(k), x, root], axis=1) * wt[:, None]
            coef, *_ = np.linalg.lstsq(basis, w * wt, rcond=None)
            a, c, d = (float(v) for v in coef)
            b = max(d, 1e-4)
            rho = float(np.clip(c / b, -0.99, 0.99))
            v = a + b * sig * math.sqrt(1.0 - rho * rho)
            x0 = np.clip(np.array([max(v, 0.0), b, rho, m, sig]), lo, hi)
            resid = float(np.sum((np.asarray(basis @ coef) - w * wt) ** 2))
            scored.append((resid, x0))
    scored.sort(key=lambda e: e[0])
    return [x0 for _, x0 in scored[:n]]


def fit_svi(k: FloatArray, iv: FloatArray, t: float) -> SviSlice:
    """Least-squares raw-SVI slice through ``(k, iv)`` at expiry ``t`` (vol residuals)."""
    k = np.asarray(k, dtype=np.float64)
    iv = np.asarray(iv, dtype=np.float64)
    if k.shape != iv.shape or k.size < 5:
        raise InvalidArgument(f"need >= 5 points of equal shape; got k {k.shape}, iv {iv.shape}")
    w = iv * iv * t
    span = max(float(k.max() - k.min()), 1e-3)
    lo = np.array([0.0, 0.0, -0.999, float(k.min()) - span, 1e-3])
    hi = np.array([max(float(w.max()), 1e-6) * 2.0, 2.0, 0.999, float(k.max()) + span, 2.0])
    best: tuple[float, FloatArray] | None = None
    for x0 in _starts(k, w, iv, lo, hi):
        res = least_squares(lambda p: _svi_vol(p, k, t) - iv, x0, bounds=(lo, hi), x_scale="jac")
        cost = float(res.cost)
        if best is None or cost < best[0]:
            best = (cost, np.asarray(res.x, dtype=np.float64))
    assert best is not None
    return _slice(best[1].tolist())


@dataclass(frozen=True, slots=True)
class SliceFit:
    """Fit of one expiry; errors in vol points (0.01 of vol = 1 point)."""

    expiry: date
    t: float
    forward: float
    n_points: int
    n_capped: int
    n_no_value: int
    n_flat_wing: int
    rms_vol_pts: float
    max_vol_pts: float
    k_lo: float
    k_hi: float
    svi: SviSlice


@dataclass(frozen=True, slots=True)
class Calibration:
    """A calibrated surface with its per-expiry fit report and static-arbitrage report.

    ``skipped`` lists expiries not fitted, with the reason (too few points, expired).
    """

    underlying: str
    snapshot: datetime
    surface: VolSurface
    fits: tuple[SliceFit, ...]
    skipped: tuple[tuple[date, str], ...]
    arbitrage: ArbitrageReport


def _points(
    rows: Sequence[ChainQuote], t: float, iv_cap: float
) -> tuple[FloatArray, FloatArray, int, int]:
    ks: list[float] = []
    ivs: list[float] = []
    capped = no_value = 0
    for q in rows:
        f, strike = q.underlying_price, q.strike
        if q.is_call != (strike >= f):  # keep the OTM side of each strike
            continue
        if q.mark_price is not None and q.mark_price <= 0.0:
            no_value += 1
            continue
        iv = q.mark_iv
        if iv is None:
            if q.mark_price is None:
                continue
            iv = implied_vol_from_price(q.mark_price * f, f, strike, t, q.is_call)
            if iv is None:
                no_value += 1
                continue
        if iv >= iv_cap:
            capped += 1
            continue
        ks.append(math.log(strike / f))
        ivs.append(iv)
    order = np.argsort(ks)
    return np.asarray(ks)[order], np.asarray(ivs)[order], capped, no_value


def _trim_flat_wings(
    k: FloatArray, iv: FloatArray, tol: float = 0.005, run: int = 3
) -> tuple[FloatArray, FloatArray, int]:
    """Drop the venue's flat wing extrapolation: a run of ``>= run`` outermost vols within
    ``tol`` of the last one keeps only its innermost point. Returns ``(k, iv, n_dropped)``."""
    lo, hi = 0, k.size
    n = 0
    while n < k.size and abs(iv[n] - iv[0]) <= tol:
        n += 1
    if n >= run:
        lo = n - 1
    n = 0
    while n < k.size and abs(iv[k.size - 1 - n] - iv[-1]) <= tol:
        n += 1
    if n >= run:
        hi = k.size - n + 1
    if hi - lo < 2:
        return k, iv, 0
    return k[lo:hi], iv[lo:hi], int(k.size - (hi - lo))


def calibrate_chain(
    quotes: Sequence[ChainQuote], iv_cap: float = 2.0, min_points: int = 5
) -> Calibration:
    """One SVI slice per expiry with at least ``min_points`` usable quotes (>= 5)."""
    if not quotes:
        raise InvalidArgument("quotes=() is empty; need a chain")
    if min_points < 5:
        raise InvalidArgument(f"min_points={min_points!r} must be >= 5 (SVI has 5 parameters)")
    underlyings = sorted({q.underlying for q in quotes})
    if len(underlyings) != 1:
        raise InvalidArgument(f"underlyings={underlyings!r}; a chain must have exactly one")
    snapshot = max(q.snapshot_ts for q in quotes)
    by_expiry: dict[date, list[ChainQuote]] = {}
    for q in quotes:
        by_expiry.setdefault(q.expiry, []).append(q)
    fits: list[SliceFit] = []
    skipped: list[tuple[date, str]] = []
    for expiry in sorted(by_expiry):
        rows = by_expiry[expiry]
        t = (rows[0].expiry_ts - snapshot) / timedelta(seconds=YEAR_SECONDS)
        if t <= 0.0:
            skipped.append((expiry, f"expired: t={t!r}"))
            continue
        k, iv, capped, no_value = _points(rows, t, iv_cap)
        k, iv, flat = _trim_flat_wings(k, iv)
        if k.size < min_points:
            skipped.append((expiry, f"{k.size} usable points < {min_points}"))
            continue
        svi = fit_svi(k, iv, t)
        err = (np.asarray(svi.implied_vol(k, t)) - iv) * 100.0
        fits.append(
            SliceFit(
                expiry=expiry,
                t=t,
                forward=float(np.median([q.underlying_price for q in rows])),
                n_points=int(k.size),
                n_capped=capped,
                n_no_value=no_value,
                n_flat_wing=flat,
                rms_vol_pts=float(np.sqrt(np.mean(err * err))),
                max_vol_pts=float(np.max(np.abs(err))),
                k_lo=float(k[0]),
                k_hi=float(k[-1]),
                svi=svi,
            )
        )
    if not fits:
        raise InvalidArgument(f"no expiry could be fitted: skipped={skipped!r}")
    surface = VolSurface(tuple(f.t for f in fits), tuple(f.svi for f in fits))
    report = check_static_arbitrage(surface, tuple((f.k_lo, f.k_hi) for f in fits))
    return Calibration(underlyings[0], snapshot, surface, tuple(fits), tuple(skipped), report)
