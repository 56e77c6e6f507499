"""Dutch-auction price curves: Maker's three abaci, Lyra's two-slope discount, and resets.

Pure functions of ``(top, dur)``: no clock, the caller passes the seconds elapsed.

Maker curves work in RAY (``10**27``) fixed point with dss's own rounding, so that they
reproduce ``makerdao/dss`` bit for bit:

* ``rmul(x, y) = floor(x * y / RAY)`` and ``rdiv(x, y) = floor(x * RAY / y)``;
* ``rpow(x, n, RAY)`` is the dss assembly exponentiation by squaring that rounds half up
  after each squaring and each multiply (``(a * b + RAY // 2) // RAY``);
* every intermediate must fit in ``uint256``; where dss would revert we raise
  ``InvalidArgument``.

An auction starts at ``top = start_price(oracle_price, buf) = rmul(oracle_price, buf)``
and must be reset (Maker's ``redo``) once ``needs_reset(top, price, dur, tail, cusp)``.

Lyra/Derive's ``TwoSlope`` is a *discount multiplier* ``d(t)`` applied to mark-to-market
(``price = floor(top * d(t))``), given as exact ``Fraction`` and as Lyra's on-chain WAD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Final, Protocol

from liqeng.errors import InvalidArgument
from liqeng.units import check_int

__all__ = [
    "RAY",
    "UINT256_MAX",
    "WAD",
    "Curve",
    "ExponentialDecrease",
    "LinearDecrease",
    "StairstepExponentialDecrease",
    "TwoSlope",
    "needs_reset",
    "rdiv",
    "rmul",
    "rpow",
    "start_price",
]

RAY: Final = 10**27
WAD: Final = 10**18
UINT256_MAX: Final = 2**256 - 1


def _u256(name: str, value: object) -> int:
    return check_int(name, value, 0, UINT256_MAX)


def _fits(op: str, value: int) -> int:
    if value > UINT256_MAX:
        raise InvalidArgument(f"{op}={value} overflows uint256 (dss would revert)")
    return value


def rmul(x: int, y: int) -> int:
    """dss ``rmul``: ``floor(x * y / RAY)``; reverts (raises) if ``x * y`` overflows."""
    return _fits("rmul product", _u256("x", x) * _u256("y", y)) // RAY


def rdiv(x: int, y: int) -> int:
    """dss ``rdiv`` (``clip.sol``): ``floor(x * RAY / y)``, ``y > 0``."""
    _u256("x", x)
    if _u256("y", y) == 0:
        raise InvalidArgument("rdiv divisor y=0 must be positive")
    return _fits("rdiv product", x * RAY) // y


def rpow(x: int, n: int, b: int = RAY) -> int:
    """dss ``rpow(x, n, b)``: ``x**n`` in base ``b`` by squaring, each product rounded half
    up: ``z = (z * x + b // 2) // b``. ``rpow(x, 0) = b``; ``rpow(0, n>0) = 0``."""
    _u256("x", x)
    _u256("n", n)
    if _u256("b", b) == 0:
        raise InvalidArgument("rpow base b=0 must be positive")
    if n == 0:
        return b
    if x == 0:
        return 0
    z = x if n % 2 else b
    half = b // 2
    n //= 2
    while n:
        if x >> 128:
            raise InvalidArgument(f"rpow x={x} >= 2**128 would overflow (dss reverts)")
        x = _fits("rpow square", x * x + half) // b
        if n % 2:
            z = _fits("rpow product", z * x + half) // b
        n //= 2
    return z


class Curve(Protocol):
    """A price curve: the price ``dur`` seconds after an auction started at ``top``."""

    def price(self, top: int, dur: int) -> int: ...


def _check_top_dur(top: int, dur: int) -> None:
    _u256("top", top)
    _u256("dur", dur)


def _check_cut(cut: int) -> None:
    check_int("cut", cut, 1, RAY - 1)


@dataclass(frozen=True, slots=True)
class LinearDecrease:
    """``price = rmul(top, floor((tau - dur) * RAY / tau))`` for ``dur < tau``, else 0.

    ``tau`` (seconds, > 0) is the time to reach zero (dss ``abaci.sol``).
    """

    tau: int

    def __post_init__(self) -> None:
        check_int("tau", self.tau, 1, UINT256_MAX)

    def price(self, top: int, dur: int) -> int:
        _check_top_dur(top, dur)
        if dur >= self.tau:
            return 0
        return rmul(top, (self.tau - dur) * RAY // self.tau)


@dataclass(frozen=True, slots=True)
class StairstepExponentialDecrease:
    """``price = rmul(top, rpow(cut, dur // step))``: multiply by ``cut`` (RAY, in
    ``(0, RAY)``) once every ``step`` seconds (> 0).

    dss accepts ``cut == RAY`` (a flat price); we refuse it, as a curve that never falls
    cannot clear an auction.
    """

    cut: int
    step: int

    def __post_init__(self) -> None:
        _check_cut(self.cut)
        check_int("step", self.step, 1, UINT256_MAX)

    def price(self, top: int, dur: int) -> int:
        _check_top_dur(top, dur)
        return rmul(top, rpow(self.cut, dur // self.step))


@dataclass(frozen=True, slots=True)
class ExponentialDecrease:
    """``price = rmul(top, rpow(cut, dur))``: multiply by ``cut`` (RAY, in ``(0, RAY)``)
    every second; half-life ``ln 2 / -ln(cut / RAY)`` seconds."""

    cut: int

    def __post_init__(self) -> None:
        _check_cut(self.cut)

    def price(self, top: int, dur: int) -> int:
        _check_top_dur(top, dur)
        return rmul(top, rpow(self.cut, dur))


def start_price(oracle_price: int, buf: int) -> int:
    """Maker ``kick``: ``top = rmul(oracle_price, buf)``, both RAY (``buf`` 1.20 = 1.2e27),
    so the auction opens a buffer above the oracle price."""
    check_int("oracle_price", oracle_price, 1, UINT256_MAX)
    check_int("buf", buf, 1, UINT256_MAX)
    return rmul(oracle_price, buf)


def needs_reset(top: int, price: int, dur: int, tail: int, cusp: int) -> bool:
    """Maker ``status``: reset (``redo``) when too old or too far down:
    ``dur > tail or rdiv(price, top) < cusp`` (``cusp`` in RAY, e.g. 0.4e27)."""
    check_int("top", top, 1, UINT256_MAX)
    _u256("price", price)
    _u256("dur", dur)
    _u256("tail", tail)
    check_int("cusp", cusp, 0, RAY)
    return dur > tail or rdiv(price, top) < cusp


def _fraction(name: str, value: object) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, Fraction)):
        raise InvalidArgument(f"{name}={value!r} must be a Fraction or int, not a float")
    return Fraction(value)


@dataclass(frozen=True, slots=True)
class TwoSlope:
    """Lyra/Derive v2 solvent-auction discount ``d(t)`` (``DutchAuction._getDiscountPercentage``).

    With ``e`` seconds elapsed, ``d0 = start``, ``dc = cutoff``, ``Lf = fast``,
    ``Ls = slow``::

        e < Lf:            d = d0 - (d0 - dc) * e / Lf
        Lf <= e < Lf + Ls: d = dc - floor(dc * (e - Lf)) / Ls     (on-chain truncation)
        e >= Lf + Ls:      d = 0

    Quirk: on chain ``dc.multiplyDecimal(e - Lf)`` multiplies a WAD by a plain number of
    seconds, so the product ``dc * (e - Lf)`` is truncated to a *whole number* before it
    is divided by ``Ls``. ``truncate=True`` (default) reproduces it; ``truncate=False``
    gives the ideal line ``dc - dc * (e - Lf) / Ls``. Both agree whenever
    ``dc * (e - Lf)`` is an integer. ``discount_wad`` further reproduces the 1e-18
    flooring of each on-chain division.

    ``0 < start <= 1``, ``0 <= cutoff <= start``, ``fast, slow > 0`` seconds.
    """

    start: Fraction
    cutoff: Fraction
    fast: int
    slow: int
    truncate: bool = True

    def __post_init__(self) -> None:
        start = _fraction("start", self.start)
        cutoff = _fraction("cutoff", self.cutoff)
        if not 0 < start <= 1:
            raise InvalidArgument(f"start={start} must be in (0, 1]")
        if not 0 <= cutoff <= start:
            raise InvalidArgument(f"cutoff={cutoff} must be in [0, start={start}]")
        check_int("fast", self.fast, 1, UINT256_MAX)
        check_int("slow", self.slow, 1, UINT256_MAX)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "cutoff", cutoff)

    def discount(self, t: int) -> Fraction:
        """Exact ``d(t)`` in ``[0, start]`` (with the truncation quirk if ``truncate``)."""
        _u256("t", t)
        if t < self.fast:
            return self.start - (self.start - self.cutoff) * t / self.fast
        e = t - self.fast
        if e >= self.slow:
            return Fraction(0)
        drop = self.cutoff * e
        if self.truncate:
            drop = Fraction(math.floor(drop))
        return self.cutoff - drop / self.slow

    def discount_wad(self, t: int) -> int:
        """``d(t)`` exactly as Lyra computes it in WAD (``start``/``cutoff`` must be
        multiples of 1e-18)::

            fast: d0 - floor((d0 - dc) * e / Lf)
            slow: dc - floor(floor(dc * e / WAD) * WAD / Ls)
        """
        _u256("t", t)
        d0, dc = _to_wad("start", self.start), _to_wad("cutoff", self.cutoff)
        if t < self.fast:
            return d0 - (d0 - dc) * t // self.fast
        e = t - self.fast
        if e >= self.slow:
            return 0
        return dc - (dc * e // WAD) * WAD // self.slow

    def price(self, top: int, dur: int) -> int:
        """``floor(top * d(dur))``: what a bidder pays for 100% of a portfolio worth
        ``top`` (Lyra's ``bidPrice = (MtM - R) * d``, rounded down)."""
        _check_top_dur(top, dur)
        return math.floor(top * self.discount(dur))


def _to_wad(name: str, value: Fraction) -> int:
    scaled = value * WAD
    if scaled.denominator != 1:
        raise InvalidArgument(f"{name}={value} is not a multiple of 1e-18")
    return int(scaled)
