"""Pure aggregation of one market's candidate prices: no state, no clock, integers only.

Notation: candidates ``C`` are the fresh reports that passed the per-source checks (jump,
confidence), each a price ``p_i`` with an integer weight ``w_i``; ``W = Σ w_i``;
``S = RATE_SCALE``.

========================  =======================================================================
weighted median           ``wmed(C)`` = the smallest ``p`` with ``2·Σ_{p_j <= p} w_j >= W`` (the
                          lower median: an existing price, never an average one liar can pull)
center                    ``m = wmed(C)``
MAD                       the *upper* weighted median of ``{|p_i - m|}`` (``2·cum > W``), so that
                          of two sources neither is ever a MAD outlier of the other
MAD outlier               ``|p_i - m|·S·S > mad_k·max(MAD·S, mad_floor·m)``
deviation outlier         ``|p_i - m|·S > max_deviation·m``
survivors ``V``           ``C`` minus outliers (both tests use the same ``m``: one pass)
index                     ``clamp(floor((wmed(V) + wmed⁺(V))/2), lo(C), hi(C))``: the midpoint of
                          the survivors' lower and upper weighted medians (equal unless the weight
                          splits evenly), with ``lo`` the smallest ``p`` having
                          ``3·Σ_{p_j <= p} w_j > W`` and ``hi`` the largest with
                          ``3·Σ_{p_j >= p} w_j > W``
========================  =======================================================================

Why the clamp: dropping outliers can leave liars the majority of the survivors (honest 38,
40, 79, 162, 173 and liars 31, 33 give ``m = 40``, ``MAD = 9``, survivors 31, 33, 38, 40 and
a lower median of 33: a liar). If the liars' weight ``L`` satisfies ``3·L < W`` (less than
half the honest weight), ``lo`` and ``hi`` are honest prices (here 38 and 79), so the index
always lies within ``[min honest, max honest]``.

Why the midpoint on an even split: with five venues, dropping one outlier leaves four; the
lower median would be the 2nd of 4, a systematic move to the low side by up to the honest
spread (measured in docs/oracle.md: early liquidations of long accounts). The midpoint of the
2nd and 3rd stays centred; both are bounded by honest prices, so no liar can pull it out of
the honest range either.

``band``: where the median of *every* configured source (weight ``T``) can lie given the
survivors ``V`` when the missing ones (stale, rejected, never reported: weight
``M = T - W(V)``) could have said anything, and up to ``tolerance`` weight of the survivors
is wrong too: ``lo`` = the smallest survivor with ``2·cum >= T - 2·(M + tolerance)``,
``hi`` = the smallest with ``2·cum > T + 2·tolerance``, widened to hold the index. With
every source agreeing and no tolerance it is the index itself; each missing source widens
it. A decision that holds over the whole band holds at the median the full set of honest
sources would have given (the engine's band eligibility).

Per-source helpers, exact (no division): a source *jumped* between rounds when
``(hi - lo)·S > max_jump·hi`` (Liquity's "more than halved or doubled" for 50%); two prices
are *similar* when ``(hi - lo)·S <= tol·lo`` (Liquity's 5% agreement).

``twap`` integrates a step function: sample ``(t_i, p_i)`` holds from ``t_i`` to
``t_{i+1}`` (the last to ``now``); over ``[max(now - window, t_0), now]``,
``twap = floor(Σ p_i·dt_i / Σ dt_i)``, or the last price when that span is empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from liqeng.units import RATE_SCALE

__all__ = [
    "Aggregate",
    "Quote",
    "aggregate",
    "jumped",
    "similar",
    "twap",
    "weighted_median",
    "weighted_third_bounds",
]

S = RATE_SCALE


@dataclass(frozen=True, slots=True)
class Quote:
    source: str
    price: int
    weight: int


@dataclass(frozen=True, slots=True)
class Aggregate:
    """``index`` (``None`` with no candidates), the surviving sources, why the others were
    dropped (``"outlier-mad"`` or ``"outlier-deviation"``), and ``band``: the survivors'
    inner-third bounds widened to hold the index (where honest sources disagree)."""

    index: int | None
    center: int | None
    survivors: tuple[str, ...]
    rejected: Mapping[str, str]
    band: tuple[int, int] | None = None


def weighted_median(pairs: Sequence[tuple[int, int]], *, upper: bool = False) -> int:
    """Lower (or ``upper``) weighted median of ``(value, weight)`` pairs (non-empty, weights
    > 0): the smallest value with ``2·cum >= W`` (upper: ``2·cum > W``)."""
    return _median_sorted(sorted(pairs), upper)


def _median_sorted(ordered: Sequence[tuple[int, int]], upper: bool = False) -> int:
    total = 0
    for _, w in ordered:
        total += w
    acc = 0
    for value, w in ordered:
        acc += w
        if 2 * acc > total or (not upper and 2 * acc == total):
            return value
    raise AssertionError("unreachable: weights are positive")


def weighted_third_bounds(pairs: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """``(lo, hi)``: the inner-third bounds of the module docstring."""
    return _third_bounds_sorted(sorted(pairs))


def _third_bounds_sorted(ordered: Sequence[tuple[int, int]]) -> tuple[int, int]:
    total = sum(w for _, w in ordered)
    acc = 0
    lo = ordered[-1][0]
    for value, w in ordered:
        acc += w
        if 3 * acc > total:
            lo = value
            break
    acc = 0
    hi = ordered[0][0]
    for value, w in reversed(ordered):
        acc += w
        if 3 * acc > total:
            hi = value
            break
    return lo, hi


def _missing_band(
    ordered: Sequence[tuple[int, int]], total: int, tolerance: int
) -> tuple[int, int]:
    """Where the median of *all* ``total`` configured weight can lie, given the survivors
    ``ordered`` and up to ``tolerance`` weight of them wrong: ``lo`` the smallest survivor
    with ``2·cum >= total - 2·(missing + tolerance)``, ``hi`` the smallest with
    ``2·cum > total + 2·tolerance`` (the extremes when out of reach)."""
    missing = total - sum(w for _, w in ordered)
    lo_need, hi_need = total - 2 * (missing + tolerance), total + 2 * tolerance
    lo, hi = ordered[0][0], ordered[-1][0]
    acc = 0
    found_lo = False
    for value, w in ordered:
        acc += w
        if not found_lo and 2 * acc >= lo_need:
            lo, found_lo = value, True
        if 2 * acc > hi_need:
            hi = value
            break
    return lo, hi


def jumped(previous: int, current: int, max_jump: int) -> bool:
    hi, lo = max(previous, current), min(previous, current)
    return (hi - lo) * S > max_jump * hi


def similar(a: int, b: int, tol: int) -> bool:
    hi, lo = max(a, b), min(a, b)
    return (hi - lo) * S <= tol * lo


def aggregate(
    quotes: Sequence[Quote],
    *,
    mad_k: int | None,
    mad_floor: int,
    max_deviation: int | None,
    total_weight: int | None = None,
    band_tolerance: int = 0,
) -> Aggregate:
    """Outlier rejection then the clamped weighted median (module docstring);
    ``total_weight`` (default: the quotes') and ``band_tolerance`` shape the band."""
    if not quotes:
        return Aggregate(None, None, (), {})
    # One sort serves the median, the bounds and the survivors' median (a filtered sorted
    # list is sorted); only values matter to a weighted median, so ties are irrelevant.
    ordered = sorted((q.price, q.weight, q.source) for q in quotes)
    pairs = [(p, w) for p, w, _ in ordered]
    m = _median_sorted(pairs)
    mad = weighted_median([(abs(p - m), w) for p, w in pairs], upper=True)
    scale = max(mad * S, mad_floor * m)
    mad_limit = None if mad_k is None else mad_k * scale
    dev_limit = None if max_deviation is None else max_deviation * m
    rejected: dict[str, str] = {}
    kept: list[tuple[int, int]] = []
    names: list[str] = []
    for p, w, source in ordered:
        dev = abs(p - m)
        if mad_limit is not None and dev * S * S > mad_limit:
            rejected[source] = "outlier-mad"
        elif dev_limit is not None and dev * S > dev_limit:
            rejected[source] = "outlier-deviation"
        else:
            kept.append((p, w))
            names.append(source)
    # m always survives (deviation 0), so kept is never empty.
    if total_weight is None:
        total_weight = sum(w for _, w in pairs)
    lo, hi = _third_bounds_sorted(pairs)
    mid = (_median_sorted(kept) + _median_sorted(kept, upper=True)) // 2
    index = min(max(mid, lo), hi)
    rejected = {q.source: rejected[q.source] for q in quotes if q.source in rejected}
    band_lo, band_hi = _missing_band(kept, total_weight, band_tolerance)
    band = (min(band_lo, index), max(band_hi, index))
    return Aggregate(index, m, tuple(sorted(names)), rejected, band)


def twap(samples: Sequence[tuple[int, int]], now: int, window: int) -> int | None:
    """Time-weighted average of ``(ts, price)`` samples (ascending ts) over ``window``."""
    if not samples:
        return None
    start = max(now - window, samples[0][0])
    area = 0
    span = 0
    for i, (t, p) in enumerate(samples):
        end = samples[i + 1][0] if i + 1 < len(samples) else now
        a, b = max(t, start), min(end, now)
        if b > a:
            area += p * (b - a)
            span += b - a
    if span == 0:
        return samples[-1][1]
    return area // span
