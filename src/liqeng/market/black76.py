"""Black-76: European options on a forward, vectorised with numpy.

With forward ``F``, strike ``K``, time to expiry ``T`` (years), volatility ``σ``, rate ``r``
and discount ``D = exp(-r·T)`` (``r = 0`` by default, i.e. undiscounted)::

    d1 = (ln(F/K) + σ²T/2) / (σ√T)        d2 = d1 - σ√T
    call = D·(F·N(d1) - K·N(d2))           put = D·(K·N(-d2) - F·N(-d1))

Every function takes floats or numpy arrays (broadcast together) and returns a ``float``
when no argument is an ``ndarray``, else a ``float64`` array of the broadcast shape.
``N`` is the standard normal CDF, ``N(x) = erfc(-x/√2)/2``. ``norm_cdf`` and ``erfc`` use
W. J. Cody's rational Chebyshev approximation (Math. Comp. 23, 1969; Netlib SPECFUN
``CALERF``), which matches the C library's ``erfc`` to about 1e-15 relative; numpy itself has
no ``erfc``. ``price`` and ``delta`` use ``scipy.special.erfc`` (a C ufunc, about 7x
faster) on the same argument: ``N`` within 5e-15 relative of ``math.erfc``'s for
``|x| <= 10`` and 6e-14 in the far tail, where ``N`` is below 1e-23; they evaluate one
``N`` per term (the call or the put formula, not both).

When ``T <= 0`` or ``σ == 0`` the option is worth its (discounted) intrinsic value
``D·max(F-K, 0)`` (call) or ``D·max(K-F, 0)`` (put) and the greeks are their limits as
``σ√T → 0``; ``D = 1`` once ``T <= 0``. Prices are floored at that intrinsic value, which
they never fall below in exact arithmetic, so rounding cannot make one negative.

Inputs are checked at the door: ``forward > 0``, ``strike > 0``, ``sigma >= 0``, and
``forward``, ``strike``, ``t_years``, ``sigma``, ``r`` finite; anything else raises
``InvalidArgument`` naming the value (and its index, for arrays).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Final, Protocol, cast, overload

import numpy as np
import numpy.typing as npt
from scipy import special  # type: ignore[import-untyped]

from liqeng.errors import InvalidArgument
from liqeng.units import check_int

__all__ = [
    "YEAR_SECONDS",
    "BoolArray",
    "FloatArray",
    "delta",
    "erfc",
    "gamma",
    "norm_cdf",
    "norm_pdf",
    "price",
    "theta",
    "vega",
    "year_fraction",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

YEAR_SECONDS: Final = 365 * 24 * 3600
"""Seconds in the year ``T`` is measured in (365 days, no leap days)."""


def year_fraction(now_ts: int, expiry_ts: int) -> float:
    """``max(expiry_ts - now_ts, 0) / YEAR_SECONDS``: years left, 0 at and after expiry."""
    check_int("now_ts", now_ts)
    check_int("expiry_ts", expiry_ts)
    return max(expiry_ts - now_ts, 0) / YEAR_SECONDS


# --- erfc: W. J. Cody, CALERF (Netlib SPECFUN), double precision -------------------------

_THRESH: Final = 0.46875
_XSMALL: Final = 1.11e-16
_XBIG: Final = 26.543  # erfc(x) < 2.2e-308 (the smallest normal double) beyond this
_SQRPI: Final = 5.6418958354775628695e-1  # 1/sqrt(pi)
_A: Final = (
    3.16112374387056560e00,
    1.13864154151050156e02,
    3.77485237685302021e02,
    3.20937758913846947e03,
    1.85777706184603153e-1,
)
_B: Final = (
    2.36012909523441209e01,
    2.44024637934444173e02,
    1.28261652607737228e03,
    2.84423683343917062e03,
)
_C: Final = (
    5.64188496988670089e-1,
    8.88314979438837594e00,
    6.61191906371416295e01,
    2.98635138197400131e02,
    8.81952221241769090e02,
    1.71204761263407058e03,
    2.05107837782607147e03,
    1.23033935479799725e03,
    2.15311535474403846e-8,
)
_D: Final = (
    1.57449261107098347e01,
    1.17693950891312499e02,
    5.37181101862009858e02,
    1.62138957456669019e03,
    3.29079923573345963e03,
    4.36261909014324716e03,
    3.43936767414372164e03,
    1.23033935480374942e03,
)
_P: Final = (
    3.05326634961232344e-1,
    3.60344899949804439e-1,
    1.25781726111229246e-1,
    1.60837851487422766e-2,
    6.58749161529837803e-4,
    1.63153871373020978e-2,
)
_Q: Final = (
    2.56852019228982242e00,
    1.87295284992346047e00,
    5.27905102951428412e-1,
    6.05183413124413191e-2,
    2.33520497626869185e-3,
)


def _exp_neg_square(y: FloatArray) -> FloatArray:
    """``exp(-y²)`` without losing the low bits of ``y²``: split ``y`` at 1/16."""
    head = np.trunc(y * 16.0) / 16.0
    return np.exp(-head * head) * np.exp(-(y - head) * (y + head))


def _erfc(x: FloatArray) -> FloatArray:
    y = np.abs(x)
    out = np.full_like(y, np.nan)  # NaN in, NaN out: no region claims it

    small = y <= _THRESH  # erfc = 1 - erf, erf by a rational function of x²
    xs = x[small]
    ys = y[small]
    z = np.where(ys > _XSMALL, ys * ys, 0.0)
    num = _A[4] * z
    den = z
    for i in range(3):
        num = (num + _A[i]) * z
        den = (den + _B[i]) * z
    out[small] = 1.0 - xs * (num + _A[3]) / (den + _B[3])

    mid = (y > _THRESH) & (y <= 4.0)  # erfc = exp(-y²)·R(y)
    ym = y[mid]
    num = _C[8] * ym
    den = ym
    for i in range(7):
        num = (num + _C[i]) * ym
        den = (den + _D[i]) * ym
    out[mid] = _exp_neg_square(ym) * ((num + _C[7]) / (den + _D[7]))

    big = y > 4.0  # erfc = exp(-y²)/y · (1/√π + R(1/y²)/y²), 0 past _XBIG
    yb = y[big]
    live = yb < _XBIG
    yl = np.where(live, yb, 5.0)
    z = 1.0 / (yl * yl)
    num = _P[5] * z
    den = z
    for i in range(4):
        num = (num + _P[i]) * z
        den = (den + _Q[i]) * z
    tail = (_SQRPI - z * (num + _P[4]) / (den + _Q[4])) / yl
    out[big] = np.where(live, _exp_neg_square(yl) * tail, 0.0)

    neg = (x < 0.0) & ~small  # erfc(-y) = 2 - erfc(y)
    out[neg] = 2.0 - out[neg]
    return out


class Unary(Protocol):
    """An elementwise function: a ``float`` for a scalar, an array for an array."""

    @overload
    def __call__(self, x: float) -> float: ...
    @overload
    def __call__(self, x: FloatArray) -> FloatArray: ...


def _unary(kernel: Callable[[FloatArray], FloatArray], name: str, doc: str) -> Unary:
    def wrapped(x: float | FloatArray) -> float | FloatArray:
        out = kernel(np.asarray(x, dtype=np.float64))
        return out if isinstance(x, np.ndarray) else float(out)

    wrapped.__name__ = wrapped.__qualname__ = name
    wrapped.__doc__ = doc
    return cast(Unary, wrapped)


_SQRT2: Final = math.sqrt(2.0)
_INV_SQRT_2PI: Final = 1.0 / math.sqrt(2.0 * math.pi)


def _ncdf(x: FloatArray) -> FloatArray:
    return 0.5 * _erfc(-x / _SQRT2)


def _ncdf_fast(x: FloatArray) -> FloatArray:
    """``N(x) = erfc(-x/√2)/2`` by scipy's C ``erfc`` (module doc), in place on a temporary."""
    y = np.asarray(np.divide(x, -_SQRT2))  # = -x/√2 exactly (IEEE division is sign-symmetric)
    special.erfc(y, out=y)
    y *= 0.5
    return y


def _npdf(x: FloatArray) -> FloatArray:
    with np.errstate(over="ignore", under="ignore"):  # |x| past ~38.6 gives 0, as it should
        return _INV_SQRT_2PI * np.exp(-0.5 * x * x)


erfc = _unary(
    _erfc,
    "erfc",
    """Complementary error function ``erfc(x) = 2/√π ∫_x^∞ exp(-t²) dt`` (Cody, CALERF).

    Relative error about 1e-15 against ``math.erfc``; returns 0 for ``x >= 26.543``.
    """,
)
norm_cdf = _unary(_ncdf, "norm_cdf", """Standard normal CDF ``N(x) = erfc(-x/√2)/2``.""")
norm_pdf = _unary(_npdf, "norm_pdf", """Standard normal density ``n(x) = exp(-x²/2)/√(2π)``.""")


# --- validation and the shared core --------------------------------------------------------


def _floats(name: str, value: object) -> FloatArray:
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError):  # ragged sequences
        raw = np.asarray(None)
    if raw.dtype.kind not in "iuf":  # refuses bool, str, object, complex
        raise InvalidArgument(f"{name}={value!r} must be a number or an array of numbers")
    return raw.astype(np.float64, copy=False)


def _refuse(name: str, arr: FloatArray, bad: BoolArray, rule: str) -> None:
    if not bad.any():
        return
    if arr.ndim == 0:
        raise InvalidArgument(f"{name}={arr.item()!r} must be {rule}")
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    where = idx[0] if len(idx) == 1 else idx
    raise InvalidArgument(f"{name}[{where}]={arr[idx].item()!r} must be {rule}")


def _check(
    forward: object, strike: object, t_years: object, sigma: object, is_call: object, r: object
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, BoolArray, float]:
    f = _floats("forward", forward)
    _refuse("forward", f, ~(np.isfinite(f) & (f > 0.0)), "finite and positive")
    k = _floats("strike", strike)
    _refuse("strike", k, ~(np.isfinite(k) & (k > 0.0)), "finite and positive")
    t = _floats("t_years", t_years)
    _refuse("t_years", t, ~np.isfinite(t), "finite")
    s = _floats("sigma", sigma)
    _refuse("sigma", s, ~(np.isfinite(s) & (s >= 0.0)), "finite and non-negative")
    c = np.asarray(is_call)
    if c.dtype != np.bool_:
        raise InvalidArgument(f"is_call={is_call!r} must be a bool or an array of bools")
    if isinstance(r, bool) or not isinstance(r, (float, int)) or not math.isfinite(r):
        raise InvalidArgument(f"r={r!r} must be a finite number")
    try:
        bf, bk, bt, bs, bc = np.broadcast_arrays(f, k, t, s, c)
    except ValueError:
        shapes = [a.shape for a in (f, k, t, s, c)]
        raise InvalidArgument(
            f"shapes of forward, strike, t_years, sigma, is_call={shapes} do not broadcast"
        ) from None
    return bf, bk, bt, bs, bc, float(r)


class _Core:
    """Shared intermediate values; ``live`` marks entries with ``σ√T > 0`` (after
    underflow): only there do ``d1``, ``d2`` mean anything. They are computed as
    ``ln(F/K)/(σ√T) ± σ√T/2``, the textbook formula rearranged so ``σ²T`` cannot overflow."""

    __slots__ = ("call", "d1", "d2", "disc", "f", "k", "live", "r", "s", "sqrt_t", "t", "vol")

    def __init__(
        self, f: FloatArray, k: FloatArray, t: FloatArray, s: FloatArray, c: BoolArray, r: float
    ) -> None:
        self.f, self.k, self.s, self.call, self.r = f, k, s, c, r
        self.t = np.maximum(t, 0.0)
        # exp(-0·T) = 1 exactly: skip the exponential when r = 0
        self.disc = np.exp(-r * self.t) if r != 0.0 else np.ones_like(self.t)
        with np.errstate(over="ignore", divide="ignore", under="ignore"):
            root = np.sqrt(self.t)
            self.live = s * root > 0.0
            if self.live.all():  # the common case, same values as the masked formulas
                self.sqrt_t = root
                self.vol = s * root  # may be inf: d1 = ±inf
            else:
                self.sqrt_t = np.where(self.live, root, 1.0)  # sqrt(1) = 1
                self.vol = np.where(self.live, s, 1.0) * self.sqrt_t
            moneyness = np.asarray(f / k)  # 0-d for scalars: still written in place
            exact = np.isfinite(moneyness) & (moneyness > 0.0)  # else log F - log K
            if exact.all():
                np.log(moneyness, out=moneyness)
            else:  # never ±inf: ln(F/K) where F/K is a normal positive float
                moneyness = np.where(
                    exact, np.log(np.where(exact, moneyness, 1.0)), np.log(f) - np.log(k)
                )
            moneyness /= self.vol
            half = 0.5 * self.vol
            self.d1 = moneyness + half
            moneyness -= half
            self.d2 = moneyness

    def intrinsic(self) -> FloatArray:
        out = np.where(
            self.call, np.maximum(self.f - self.k, 0.0), np.maximum(self.k - self.f, 0.0)
        )
        return out if self.r == 0.0 else self.disc * out  # D = 1 exactly when r = 0

    def price(self) -> FloatArray:
        # sign·(F·N(sign·d1) - K·N(sign·d2)): the call (sign 1) or put (sign -1) formula,
        # bit for bit (negating a difference is exact), one N per leg
        sign = np.where(self.call, 1.0, -1.0)  # 0-d arrays for scalars, never numpy scalars
        value = _ncdf_fast(sign * self.d1)
        value *= self.f
        leg = _ncdf_fast(sign * self.d2)
        leg *= self.k
        value -= leg
        value *= sign
        if self.r != 0.0:  # D = exp(0) = 1 exactly otherwise
            value *= self.disc
        floor = self.intrinsic()
        np.maximum(value, floor, out=value)
        return np.where(self.live, value, floor)


def _result(out: FloatArray, *args: object) -> float | FloatArray:
    if any(isinstance(a, np.ndarray) for a in args):
        return out
    return float(out)


# --- price and greeks ----------------------------------------------------------------------


class Greek(Protocol):
    """A Black-76 formula over ``(forward, strike, t_years, sigma, is_call, r=0)``: all
    scalars give a ``float``; any array gives the broadcast array."""

    @overload
    def __call__(  # type: ignore[overload-overlap]  # first match wins: scalars give a float
        self,
        forward: float,
        strike: float,
        t_years: float,
        sigma: float,
        is_call: bool,
        r: float = 0.0,
    ) -> float: ...
    @overload
    def __call__(
        self,
        forward: float | FloatArray,
        strike: float | FloatArray,
        t_years: float | FloatArray,
        sigma: float | FloatArray,
        is_call: bool | BoolArray,
        r: float = 0.0,
    ) -> FloatArray: ...


def _greek(formula: Callable[[_Core], FloatArray]) -> Greek:
    """Wrap ``formula(core)`` with input checks, broadcasting and the scalar return."""

    @functools.wraps(formula)
    def wrapped(
        forward: float | FloatArray,
        strike: float | FloatArray,
        t_years: float | FloatArray,
        sigma: float | FloatArray,
        is_call: bool | BoolArray,
        r: float = 0.0,
    ) -> float | FloatArray:
        core = _Core(*_check(forward, strike, t_years, sigma, is_call, r))
        return _result(formula(core), forward, strike, t_years, sigma, is_call)

    return cast(Greek, wrapped)


@_greek
def price(core: _Core) -> FloatArray:
    """Option value ``D·(F·N(d1) - K·N(d2))`` (call), ``D·(K·N(-d2) - F·N(-d1))`` (put).

    Put-call parity: ``call - put = D·(F - K)``. Degenerate (``T <= 0`` or ``σ = 0``):
    ``D·max(F-K, 0)`` or ``D·max(K-F, 0)``.
    """
    return core.price()


@_greek
def delta(core: _Core) -> FloatArray:
    """``∂V/∂F``: ``D·N(d1)`` (call), ``-D·N(-d1)`` (put).

    Degenerate: ``D·1{F>K}`` (call), ``-D·1{F<K}`` (put), and ``±D/2`` at ``F == K``
    (the limit of ``N(±d1)`` as ``σ√T → 0``).
    """
    f, k, call, disc = core.f, core.k, core.call, core.disc
    sign = np.where(call, 1.0, -1.0)  # N(d1) (call) or -N(-d1) (put), one N each
    live = _ncdf_fast(sign * core.d1)
    live *= sign
    live *= disc
    step = np.where(f > k, 1.0, np.where(f < k, 0.0, 0.5))  # limit of N(d1)
    limit = disc * np.where(call, step, step - 1.0)
    return np.where(core.live, live, limit)


@_greek
def gamma(core: _Core) -> FloatArray:
    """``∂²V/∂F²``: ``D·n(d1) / (F·σ√T)``, the same for calls and puts.

    Degenerate: 0. (At ``F == K`` the true limit is a point mass, which a float cannot
    hold; 0 is returned there too.)
    """
    pdf = _npdf(core.d1)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
        live = np.where(pdf > 0.0, core.disc * pdf / (core.f * core.vol), 0.0)
    return np.where(core.live, live, 0.0)


@_greek
def vega(core: _Core) -> FloatArray:
    """``∂V/∂σ`` per unit of σ (1.00 = 100 vol points): ``D·F·n(d1)·√T``, calls and puts.

    Degenerate: 0 when ``T <= 0``; with ``σ = 0`` and ``T > 0``, the limit
    ``D·F·√T/√(2π)`` at ``F == K`` and 0 elsewhere.
    """
    f, disc = core.f, core.disc
    live = disc * f * _npdf(core.d1) * core.sqrt_t
    atm = (core.t > 0.0) & (f == core.k)
    limit = np.where(atm, disc * f * np.sqrt(core.t) * _INV_SQRT_2PI, 0.0)
    return np.where(core.live, live, limit)


@_greek
def theta(core: _Core) -> FloatArray:
    """Change of value per year of calendar time, ``-∂V/∂T``:
    ``-D·F·n(d1)·σ / (2√T) + r·V``, calls and puts alike (divide by 365 for a day).

    Degenerate: ``r·V`` with ``V`` the discounted intrinsic value.
    """
    value = core.price()
    decay = core.disc * core.f * _npdf(core.d1) * core.s / (2.0 * core.sqrt_t)
    out = np.where(core.live, core.r * value - decay, core.r * value)
    return out
