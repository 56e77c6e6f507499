"""Adaptive liquidation penalty: a rate by health, scaled by market volatility.

``rate = clamp(ceil(tier(health) · vol_factor(σ)), floor, cap)`` in parts per
``RATE_SCALE`` (5% = 50_000_000), where

* ``tier(health)`` is a schedule that never falls as health falls: ``HealthTiers`` (step or
  linear over ``(health, rate)`` points, with a dYdX-like preset) or ``AaveV4Bonus`` (Aave
  v4's variable bonus, delegated bit for bit to ``sizing.liquidation_bonus``);
* ``vol_factor(σ) = clamp((σ / σ_ref)^k, lo, hi)`` with ``σ = max(realised, implied)``
  (or a fixed blend), so calm markets pay little and stressed markets pay keepers enough
  to act. None of the anchor protocols prices volatility into the penalty (anchors.md §5.1).

Exactness: vols arrive as floats, but each float is an exact binary number, so the factor is
computed in exact rational arithmetic: ``F = floor((σ/σ_ref)^(p/q) · 10**18)`` via an integer
``q``-th root (``k = p/q`` a ``Fraction``). No ``pow``/``log`` from the platform's libm is used
in the rate, so the same inputs give the same integer on every machine, and the result is
exactly monotone in ``σ`` and in health. The one rounding to an integer rate is ``ceil``: a
penalty rate is a charge, and rounding it up errs toward paying keepers to act.

``realised_vol`` and ``implied_atm_vol`` produce the float inputs (they may differ in the last
ulp across libm versions; feed the same floats to replay a run).
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Final, Protocol, runtime_checkable

from liqeng.errors import InvalidArgument
from liqeng.liquidation.sizing import BPS, WAD, liquidation_bonus
from liqeng.market.black76 import YEAR_SECONDS
from liqeng.market.surface import VolSurface
from liqeng.units import PRICE_MAX, RATE_SCALE, check_int

__all__ = [
    "FACTOR_SCALE",
    "AaveV4Bonus",
    "AdaptivePenalty",
    "AuctionParams",
    "HealthSchedule",
    "HealthTiers",
    "TierMode",
    "VolatilityScaling",
    "implied_atm_vol",
    "realised_vol",
]

FACTOR_SCALE: Final = 10**18
"""The volatility factor is floored to a multiple of ``1 / FACTOR_SCALE`` before use."""

_MAX_EXPONENT_DEN: Final = 16
_MAX_EXPONENT: Final = 8


def _frac(name: str, value: object) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, Fraction)):
        raise InvalidArgument(f"{name}={value!r} must be a Fraction or int, not a float")
    return Fraction(value)


def _vol(name: str, value: object) -> Fraction:
    """A volatility (annualised, 0.3 = 30%) as the exact value of the float given."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise InvalidArgument(f"{name}={value!r} must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgument(f"{name}={value!r} must be finite")
    v = Fraction(value)
    if v < 0:
        raise InvalidArgument(f"{name}={value!r} must be >= 0")
    return v


def _iroot(n: int, q: int) -> int:
    """``floor(n ** (1/q))`` for ``n >= 0``, exact (integer Newton from above)."""
    if n < 2 or q == 1:
        return n
    if q == 2:
        return math.isqrt(n)
    x = 1 << -(-n.bit_length() // q)  # 2**ceil(bits/q) >= the root
    while True:
        y = ((q - 1) * x + n // x ** (q - 1)) // q
        if y >= x:
            return x
        x = y


# --- health schedules --------------------------------------------------------------------


@runtime_checkable
class HealthSchedule(Protocol):
    """A penalty rate by health, non-increasing in health (a sicker account never pays less)."""

    def rate_exact(self, health: Fraction) -> Fraction:
        """The rate at ``health`` in parts per ``RATE_SCALE``, exact (not yet rounded)."""
        ...

    @property
    def lowest_rate(self) -> Fraction:
        """The smallest rate the schedule gives at any health."""
        ...


class TierMode(enum.Enum):
    """How ``HealthTiers`` reads its points."""

    STEP = "step"
    """``rate = r_i`` for the lowest ceiling ``h_i >= health``; above the last, ``r_n``."""
    LINEAR = "linear"
    """Linear between the points, flat beyond the first and the last."""


@dataclass(frozen=True, slots=True)
class HealthTiers:
    """Penalty rate by health ``(h_i, r_i)``: health a ``Fraction`` (``equity / MM``), rate an
    int in ``[0, RATE_SCALE]``. Points are sorted by health; healths are distinct and rates
    never rise as health rises.

    ``STEP``: ``rate(h) = r_i`` for the smallest ``h_i`` with ``h <= h_i``, else ``r_n``.
    ``LINEAR``: ``r_1`` for ``h <= h_1``, ``r_n`` for ``h >= h_n``, otherwise
    ``r_i + (r_{i+1} - r_i)·(h - h_i)/(h_{i+1} - h_i)`` (exact).
    """

    points: tuple[tuple[Fraction, int], ...]
    mode: TierMode = TierMode.STEP

    def __post_init__(self) -> None:
        if not isinstance(self.points, tuple) or not self.points:
            raise InvalidArgument(f"points={self.points!r} must be a non-empty tuple")
        if not isinstance(self.mode, TierMode):
            raise InvalidArgument(f"mode={self.mode!r} must be a TierMode")
        pts: list[tuple[Fraction, int]] = []
        for i, p in enumerate(self.points):
            if not isinstance(p, tuple) or len(p) != 2:
                raise InvalidArgument(f"points[{i}]={p!r} must be a (health, rate) pair")
            pts.append((_frac("health", p[0]), check_int("rate", p[1], 0, RATE_SCALE)))
        pts.sort()
        for (h0, r0), (h1, r1) in itertools.pairwise(pts):
            if h0 == h1:
                raise InvalidArgument(f"points repeat health={h0}")
            if r1 > r0:
                raise InvalidArgument(
                    f"rate={r1} at health={h1} is above rate={r0} at the lower health={h0}: "
                    "a lower health must never pay a lower penalty"
                )
        object.__setattr__(self, "points", tuple(pts))

    def rate_exact(self, health: Fraction) -> Fraction:
        h = _frac("health", health)
        pts = self.points
        if self.mode is TierMode.STEP:
            for ceiling, r in pts:
                if h <= ceiling:
                    return Fraction(r)
            return Fraction(pts[-1][1])
        if h <= pts[0][0]:
            return Fraction(pts[0][1])
        for (h0, r0), (h1, r1) in itertools.pairwise(pts):
            if h <= h1:
                return r0 + (r1 - r0) * (h - h0) / (h1 - h0)
        return Fraction(pts[-1][1])

    def rate(self, health: Fraction) -> int:
        """``ceil(rate_exact(health))``."""
        return math.ceil(self.rate_exact(health))

    @property
    def lowest_rate(self) -> Fraction:
        return Fraction(self.points[-1][1])

    @staticmethod
    def dydx_like(
        mmf: int, smmr: Fraction = Fraction(3, 2), ba: Fraction = Fraction(1)
    ) -> HealthTiers:
        """dYdX v4's liquidation discount by health (anchors.md §2.6, fillable price)::

            discount(H) = SMMR · MMF · clamp(BA · (1 - H), 0, 1),   H = TNC / TMMR

        as ``LINEAR`` points ``(1 - 1/BA, ceil(SMMR·MMF))`` and ``(1, 0)``. ``mmf`` is the
        maintenance margin fraction in parts per ``RATE_SCALE``; genesis ``SMMR = 1.5``,
        ``BA = 1`` (dYdX requires ``BA >= 1``). E.g. ``MMF = 10%``, ``H = 0.8``: 3%.
        """
        m = check_int("mmf", mmf, 1, RATE_SCALE)
        s = _frac("smmr", smmr)
        b = _frac("ba", ba)
        if s <= 0:
            raise InvalidArgument(f"smmr={s} must be > 0")
        if b < 1:
            raise InvalidArgument(f"ba={b} must be >= 1 (dYdX bankruptcy_adjustment_ppm >= 1e6)")
        top = math.ceil(s * m)
        if top > RATE_SCALE:
            raise InvalidArgument(f"smmr={s} × mmf={m} = {top} exceeds RATE_SCALE={RATE_SCALE}")
        return HealthTiers(((1 - 1 / b, top), (Fraction(1), 0)), TierMode.LINEAR)


@dataclass(frozen=True, slots=True)
class AaveV4Bonus:
    """Aave v4's variable bonus as a penalty rate, delegated to ``sizing.liquidation_bonus``
    (bit for bit, in bps)::

        rate(H) = (liquidation_bonus(clamp(floor(H·WAD), 0, WAD), ...) - BPS) · RATE_SCALE/BPS

    ``hf_for_max_bonus`` in WAD (``< WAD``), ``bonus_factor`` and ``max_bonus`` in bps
    (``max_bonus`` 11_000 = 110%). Health is floored to WAD (a sicker reading, the larger
    bonus) and clamped to ``[0, 1]``: Aave never calls the bonus above ``HF = 1``, we return
    the minimum bonus there.
    """

    hf_for_max_bonus: int
    bonus_factor: int
    max_bonus: int

    def __post_init__(self) -> None:
        liquidation_bonus(WAD, self.hf_for_max_bonus, self.bonus_factor, self.max_bonus)

    def bonus_bps(self, health: Fraction) -> int:
        h = _frac("health", health)
        hf = min(max(math.floor(h * WAD), 0), WAD)
        return liquidation_bonus(hf, self.hf_for_max_bonus, self.bonus_factor, self.max_bonus)

    def rate_exact(self, health: Fraction) -> Fraction:
        return Fraction((self.bonus_bps(health) - BPS) * (RATE_SCALE // BPS))

    @property
    def lowest_rate(self) -> Fraction:
        return self.rate_exact(Fraction(1))


# --- volatility ----------------------------------------------------------------------------


def realised_vol(prices: Sequence[int], timestamps: Sequence[int]) -> float:
    """Annualised realised vol of a price path, zero-mean, normalised by elapsed time::

        r_i = ln(p_{i+1} / p_i),   σ = sqrt(Σ r_i² / (t_n - t_0) · YEAR_SECONDS)

    ``prices`` are ints in ``[1, PRICE_MAX]`` (quote units per whole token), ``timestamps``
    strictly increasing int seconds, at least two points. No demeaning: over a liquidation
    window a crash *is* the drift, and removing it would hide the stress. Dividing the summed
    squares by the total time (not averaging ``r²/Δt``) keeps one short gap from dominating.
    """
    if len(prices) != len(timestamps) or len(prices) < 2:
        raise InvalidArgument(
            f"prices ({len(prices)}) and timestamps ({len(timestamps)}) need the same length, >= 2"
        )
    ps = [check_int(f"prices[{i}]", p, 1, PRICE_MAX) for i, p in enumerate(prices)]
    ts = [check_int(f"timestamps[{i}]", t, 0) for i, t in enumerate(timestamps)]
    for i in range(1, len(ts)):
        if ts[i] <= ts[i - 1]:
            raise InvalidArgument(
                f"timestamps[{i}]={ts[i]} must be after timestamps[{i - 1}]={ts[i - 1]}"
            )
    sq = math.fsum(math.log(b / a) ** 2 for a, b in itertools.pairwise(ps))
    return math.sqrt(sq / (ts[-1] - ts[0]) * YEAR_SECONDS)


def implied_atm_vol(surface: VolSurface, forward: float, t: float) -> float:
    """At-the-money implied vol ``σ(K=F, F, t)`` from the risk surface; ``t`` in years (use
    the liquidation horizon, e.g. ``1/365``; before the first slice the vol is flat)."""
    if not isinstance(surface, VolSurface):
        raise InvalidArgument(f"surface={surface!r} must be a VolSurface")
    if isinstance(forward, bool) or not isinstance(forward, (int, float)) or not forward > 0:
        raise InvalidArgument(f"forward={forward!r} must be a positive number")
    f = float(forward)
    if not math.isfinite(f):
        raise InvalidArgument(f"forward={forward!r} must be finite")
    return float(surface.vol(f, f, t))


@dataclass(frozen=True, slots=True)
class VolatilityScaling:
    """``factor(σ) = clamp((σ / sigma_ref)^exponent, lo, hi)``, floored to ``1/FACTOR_SCALE``::

        σ = max(realised, implied)                           (implied_weight None)
        σ = w·implied + (1 - w)·realised                     (implied_weight w in [0, 1])

    ``max`` is the default: stress shows first in implied vol (forward-looking) or in
    realised vol (already moving), and either alone should be able to raise the penalty.
    ``sigma_ref > 0`` is the calm reference vol; ``exponent = p/q`` a ``Fraction`` in
    ``[0, 8]`` with ``q <= 16`` (exact root); ``0 <= lo <= 1 <= hi``, so at ``σ = sigma_ref``
    the factor is exactly 1.
    """

    sigma_ref: float
    exponent: Fraction
    lo: Fraction
    hi: Fraction
    implied_weight: Fraction | None = None

    def __post_init__(self) -> None:
        ref = _vol("sigma_ref", self.sigma_ref)
        if ref <= 0:
            raise InvalidArgument(f"sigma_ref={self.sigma_ref!r} must be > 0")
        k = _frac("exponent", self.exponent)
        if not 0 <= k <= _MAX_EXPONENT or k.denominator > _MAX_EXPONENT_DEN:
            raise InvalidArgument(
                f"exponent={k} must be in [0, {_MAX_EXPONENT}] with denominator "
                f"<= {_MAX_EXPONENT_DEN}"
            )
        lo, hi = _frac("lo", self.lo), _frac("hi", self.hi)
        if not 0 <= lo <= 1:
            raise InvalidArgument(f"lo={lo} must be in [0, 1]")
        if not 1 <= hi <= 1000:
            raise InvalidArgument(f"hi={hi} must be in [1, 1000]")
        if self.implied_weight is not None:
            w = _frac("implied_weight", self.implied_weight)
            if not 0 <= w <= 1:
                raise InvalidArgument(f"implied_weight={w} must be in [0, 1]")
            object.__setattr__(self, "implied_weight", w)
        object.__setattr__(self, "exponent", k)
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)

    def sigma(self, realised_vol: float, implied_vol: float) -> Fraction:
        """The vol the factor reads, exact (see the class doc)."""
        r = _vol("realised_vol", realised_vol)
        i = _vol("implied_vol", implied_vol)
        w = self.implied_weight
        return max(r, i) if w is None else w * i + (1 - w) * r

    def factor(self, realised_vol: float, implied_vol: float) -> Fraction:
        """``clamp(floor((σ/σ_ref)^(p/q) · 10**18) / 10**18, lo, hi)``, exact."""
        ratio = self.sigma(realised_vol, implied_vol) / Fraction(self.sigma_ref)
        p, q = self.exponent.numerator, self.exponent.denominator
        x = ratio**p
        if x >= self.hi**q:
            return self.hi
        if x <= self.lo**q:
            return self.lo
        root = _iroot(x.numerator * FACTOR_SCALE**q // x.denominator, q)
        return max(self.lo, Fraction(root, FACTOR_SCALE))


# --- the adaptive penalty ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuctionParams:
    """A Dutch auction opened at ``start_discount`` below the reference price (parts per
    ``RATE_SCALE``) whose discount then grows by ``decay_per_s`` per second (parts per
    ``RATE_SCALE``), both rounded up. ``speed`` is the exact volatility factor the decay was
    scaled by: any curve ``c`` (``liquidation.curves``) runs ``speed`` times faster as
    ``c.price(top, floor(dur · speed))``."""

    start_discount: int
    decay_per_s: int
    speed: Fraction


@dataclass(frozen=True, slots=True)
class AdaptivePenalty:
    """Penalty rate by health and volatility, in ``[floor, cap]`` (parts per ``RATE_SCALE``)::

        rate = clamp(ceil(tiers.rate_exact(health) · scaling.factor(realised, implied)),
                     floor, cap)

    Non-increasing in health, non-decreasing in both vols. ``0 <= floor <= cap <= RATE_SCALE``.
    """

    tiers: HealthSchedule
    scaling: VolatilityScaling
    floor: int
    cap: int

    def __post_init__(self) -> None:
        if not isinstance(self.tiers, HealthSchedule):
            raise InvalidArgument(f"tiers={self.tiers!r} must be a HealthSchedule")
        if not isinstance(self.scaling, VolatilityScaling):
            raise InvalidArgument(f"scaling={self.scaling!r} must be a VolatilityScaling")
        check_int("cap", self.cap, 0, RATE_SCALE)
        check_int("floor", self.floor, 0, self.cap)

    def _clamp(self, x: Fraction) -> int:
        return min(self.cap, max(self.floor, math.ceil(x)))

    def rate(self, health: Fraction, realised_vol: float, implied_vol: float) -> int:
        base = self.tiers.rate_exact(_frac("health", health))
        return self._clamp(base * self.scaling.factor(realised_vol, implied_vol))

    @property
    def min_rate(self) -> int:
        """The smallest rate this penalty can return, ``clamp(ceil(lowest_tier · lo))``: the
        rate to give ``keeper.check_config`` (the reward must fit even then)."""
        return self._clamp(self.tiers.lowest_rate * self.scaling.lo)

    def auction_params(
        self,
        health: Fraction,
        realised_vol: float,
        implied_vol: float,
        base_decay_per_s: int,
    ) -> AuctionParams:
        """The auction view of the same penalty::

            start_discount = rate(health, realised, implied)
            decay_per_s    = min(RATE_SCALE, ceil(base_decay_per_s · f)),  f = factor(σ)

        so a stressed market opens deeper and falls faster (``f > 1``), a calm one opens
        shallower and falls slower (``f < 1``); at ``σ = sigma_ref`` the base decay is kept.
        """
        base = check_int("base_decay_per_s", base_decay_per_s, 0, RATE_SCALE)
        f = self.scaling.factor(realised_vol, implied_vol)
        start = self._clamp(self.tiers.rate_exact(_frac("health", health)) * f)
        return AuctionParams(start, min(RATE_SCALE, math.ceil(base * f)), f)
