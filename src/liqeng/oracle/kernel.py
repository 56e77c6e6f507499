"""Steps 1 to 4 of ``Feed.update`` (rounds, freshness, jump, aggregate) for every market at
once, compiled with numba over ``[markets x sources]`` int64 arrays, exact.

``aggregate_markets`` is the kernel; ``Feed`` (``liqeng.oracle.feed``) calls it with the
markets it may price here and runs the rest of ``update`` (move guard, TWAP, OSM, breaker,
health) in Python. A market whose configuration or prices could leave the proven range
below takes the exact Python path instead (``kernel_eligible``, ``PRICE_BOUND``).

Exactness. Every value the kernel holds is a non-negative int64; every comparison of the
Python reference that multiplies two values is done on exact 128-bit products
(``_gt``: ``a·b > c·d`` for ``0 <= a, b, c, d < 2**63``, from four 32x32-bit partial
products in uint64, so no intermediate wraps). The bounds, with prices ``p < PRICE_BOUND =
2**62``, ``S = RATE_SCALE = 10**9 < 2**30``, rates ``<= S`` unless said:

==========================================  ================================================
reference test                              kernel test (operands all ``< 2**63``)
==========================================  ================================================
confidence ``c·S > mc·p``                   ``_gt(c, S, mc, p)`` with ``c`` stored as
                                            ``min(c, p + 1)``: since ``mc <= S``, any
                                            ``c > p`` already gives ``c·S > mc·p``, and so
                                            does ``p + 1``; so the test is unchanged
jumped ``(hi - lo)·S > mj·hi``              ``_gt(hi - lo, S, mj, hi)``
similar ``(hi - lo)·S <= c·lo``             ``not _gt(hi - lo, S, c, lo)``
MAD ``dev·S·S > k·max(MAD·S, f·m)``         ``dev·S > k·MAD`` and ``dev·S² > (k·f)·m``
                                            (``x > k·max(a, b)`` iff ``x > k·a`` and ``x >
                                            k·b`` for ``k > 0``; divide the first by ``S``);
                                            ``k <= 100·S < 2**37``, ``S² < 2**60`` and
                                            ``k·f < 2**63`` is required (``kernel_eligible``)
deviation ``dev·S > md·m``                  ``_gt(dev, S, md, m)``
midpoint ``(a + b) // 2``                   ``a + b < 2**63``
weights, cumulative weights, ``3·acc``      ``<= 3·21·10**6``
timestamps, ``now - ts``                    ``<= TS_MAX = 2**62``
==========================================  ================================================

Differences ``|p - q|`` and ``hi - lo`` of prices below ``2**62`` are below ``2**62``.

Verdict codes (``VERDICTS``): 0 used, 1 missing, 2 stale, 3 confidence, 4 jump,
5 distrusted, 6 outlier-mad, 7 outlier-deviation; a market's verdicts are also packed into
one int64, 3 bits per source (hence at most ``MAX_SOURCES = 21`` sources).
"""

from __future__ import annotations

from typing import Any, Final

import numba
import numpy as np
import numpy.typing as npt

from liqeng.units import RATE_SCALE

__all__ = [
    "MAX_SOURCES",
    "NONE",
    "PRICE_BOUND",
    "VERDICTS",
    "aggregate_markets",
    "kernel_eligible",
]

PRICE_BOUND: Final = 2**62
"""Prices (and stored confidences) below this are priced by the kernel."""

MAX_SOURCES: Final = 21
"""3 bits per verdict in one int64."""

NONE: Final = -1
"""``None`` in the int64 arrays (prices are >= 1, timestamps and rates >= 0)."""

VERDICTS: Final = (
    "used",
    "missing",
    "stale",
    "confidence",
    "jump",
    "distrusted",
    "outlier-mad",
    "outlier-deviation",
)

# Per-market configuration columns of ``mcfg``.
C_MAX_CONF, C_CORROB, C_STICKY, C_MAD_K, C_MAD_FLOOR, C_MAD_KF, C_MAX_DEV, C_TOTAL, C_BAND_TOL = (
    range(9)
)
N_MCFG: Final = 9

_I64_MAX = 2**63 - 1

I64 = npt.NDArray[np.int64]
B8 = npt.NDArray[np.bool_]


def kernel_eligible(n_sources: int, mad_k: int | None, mad_floor: int) -> bool:
    """May the kernel price a market with this configuration? (module table)"""
    return n_sources <= MAX_SOURCES and (mad_k is None or mad_k * mad_floor <= _I64_MAX)


@numba.njit(inline="always")
def _mul128(a: Any, b: Any) -> tuple[np.uint64, np.uint64]:  # pragma: no cover - compiled by numba
    """``a·b`` as ``(high, low)`` uint64 words, for ``0 <= a, b < 2**64``."""
    mask = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    x = np.uint64(a)
    y = np.uint64(b)
    x0 = x & mask
    x1 = x >> s32
    y0 = y & mask
    y1 = y >> s32
    p00 = x0 * y0
    p01 = x0 * y1
    p10 = x1 * y0
    p11 = x1 * y1
    mid = (p00 >> s32) + (p01 & mask) + (p10 & mask)  # < 3·2**32
    low = (p00 & mask) | (mid << s32)
    high = p11 + (p01 >> s32) + (p10 >> s32) + (mid >> s32)
    return high, low


@numba.njit(inline="always")
def _gt(a: Any, b: Any, c: Any, d: Any) -> bool:  # pragma: no cover - compiled by numba
    """``a·b > c·d`` exactly, for non-negative int64 operands."""
    h1, l1 = _mul128(a, b)
    h2, l2 = _mul128(c, d)
    return bool(h1 > h2 or (h1 == h2 and l1 > l2))


@numba.njit(cache=True, nogil=True, boundscheck=False)
def aggregate_markets(
    now: int,
    active: B8,
    nsrc: I64,
    lat: I64,
    rounds: I64,
    distrusted: B8,
    scfg: I64,
    mcfg: I64,
    codes: npt.NDArray[np.int8],
    out: I64,
) -> None:  # pragma: no cover - compiled by numba (run by the tests, not traced)
    """Steps 1 to 4 of ``update`` for every ``active`` market ``m`` (rows of ``[M, N]``
    planes, its sources in columns ``0..nsrc[m]-1``), bit for bit the reference's.

    ``lat``: the latest price, ts and (a third plane, read only for markets with a
    ``max_confidence``) confidence; ``scfg``: each source's max age, max jump and weight;
    ``mcfg``: the market columns ``C_*``. Updates the round state ``rounds`` (seen price,
    seen ts, baseline price) and ``distrusted``; writes per market the verdict ``codes``
    and into the rows of ``out``: their packed ``sig``, the pre-quorum index (``NONE``
    without candidates), the band's two ends, the survivors and the fresh sources.
    (Few arguments: numba's dispatch costs about a microsecond per array.)
    """
    lat_p = lat[0]
    lat_t = lat[1]
    lat_c = lat[2] if lat.shape[0] > 2 else lat[0]
    seen_p = rounds[0]
    seen_t = rounds[1]
    base_p = rounds[2]
    max_age = scfg[0]
    max_jump = scfg[1]
    weight = scfg[2]
    sig = out[0]
    index = out[1]
    band_lo = out[2]
    band_hi = out[3]
    n_surv = out[4]
    n_fresh = out[5]
    s = np.int64(RATE_SCALE)
    s2 = s * s
    n_max = lat_p.shape[1]
    fresh = np.zeros(n_max, dtype=np.bool_)
    order = np.zeros(n_max, dtype=np.int64)
    dev_v = np.zeros(n_max, dtype=np.int64)
    dev_w = np.zeros(n_max, dtype=np.int64)
    for m in range(lat_p.shape[0]):
        if not active[m]:
            continue
        n = nsrc[m]
        max_conf = mcfg[m, C_MAX_CONF]
        corrob = mcfg[m, C_CORROB]
        sticky = mcfg[m, C_STICKY] != 0
        # 1. rounds: a new latest report starts a round; the previous one is the baseline
        for j in range(n):
            if lat_t[m, j] != seen_t[m, j]:
                base_p[m, j] = seen_p[m, j]
                seen_p[m, j] = lat_p[m, j]
                seen_t[m, j] = lat_t[m, j]
        # 2. freshness and confidence
        nf = 0
        for j in range(n):
            fresh[j] = False
            t = lat_t[m, j]
            if t == NONE:
                codes[m, j] = 1
            elif now - t > max_age[m, j]:
                codes[m, j] = 2
            elif (
                max_conf != NONE
                and lat_c[m, j] != NONE
                and _gt(lat_c[m, j], s, max_conf, lat_p[m, j])
            ):
                codes[m, j] = 3
            else:
                codes[m, j] = 0
                fresh[j] = True
                nf += 1
        n_fresh[m] = nf
        # 3. jump and corroboration; candidates are the fresh sources left with code 0
        nc = 0
        for j in range(n):
            if not fresh[j]:
                continue
            p = lat_p[m, j]
            b = base_p[m, j]
            mj = max_jump[m, j]
            jump = False
            if mj != NONE and b != NONE and b != 0:
                hi = max(b, p)
                jump = _gt(hi - min(b, p), s, mj, hi)
            dis = sticky and distrusted[m, j]
            if jump or dis:
                corroborated = False
                for o in range(n):
                    if o != j and fresh[o]:
                        q = lat_p[m, o]
                        lo = min(p, q)
                        if not _gt(max(p, q) - lo, s, corrob, lo):
                            corroborated = True
                            break
                if corroborated:
                    distrusted[m, j] = False
                else:
                    codes[m, j] = 4 if jump else 5
                    if sticky:
                        distrusted[m, j] = True
                    continue
            # insertion sort of the candidates by price
            k = nc
            while k > 0 and lat_p[m, order[k - 1]] > p:
                order[k] = order[k - 1]
                k -= 1
            order[k] = j
            nc += 1
        # 4. aggregate
        if nc == 0:
            index[m] = NONE
            band_lo[m] = NONE
            band_hi[m] = NONE
            n_surv[m] = 0
        else:
            total = 0
            for k in range(nc):
                total += weight[m, order[k]]
            acc = 0
            center = lat_p[m, order[nc - 1]]
            for k in range(nc):
                acc += weight[m, order[k]]
                if 2 * acc >= total:
                    center = lat_p[m, order[k]]
                    break
            # MAD: upper weighted median of the deviations
            for k in range(nc):
                d = abs(lat_p[m, order[k]] - center)
                w = weight[m, order[k]]
                i = k
                while i > 0 and dev_v[i - 1] > d:
                    dev_v[i] = dev_v[i - 1]
                    dev_w[i] = dev_w[i - 1]
                    i -= 1
                dev_v[i] = d
                dev_w[i] = w
            acc = 0
            mad = dev_v[nc - 1]
            for k in range(nc):
                acc += dev_w[k]
                if 2 * acc > total:
                    mad = dev_v[k]
                    break
            mad_k = mcfg[m, C_MAD_K]
            mad_kf = mcfg[m, C_MAD_KF]
            max_dev = mcfg[m, C_MAX_DEV]
            kept_w = 0
            ns = 0
            for k in range(nc):
                j = order[k]
                d = abs(lat_p[m, j] - center)
                if mad_k != NONE and _gt(d, s, mad_k, mad) and _gt(d, s2, mad_kf, center):
                    codes[m, j] = 6
                elif max_dev != NONE and _gt(d, s, max_dev, center):
                    codes[m, j] = 7
                else:
                    kept_w += weight[m, j]
                    ns += 1
            n_surv[m] = ns
            # inner-third bounds of all candidates
            lo3 = lat_p[m, order[nc - 1]]
            acc = 0
            for k in range(nc):
                acc += weight[m, order[k]]
                if 3 * acc > total:
                    lo3 = lat_p[m, order[k]]
                    break
            hi3 = lat_p[m, order[0]]
            acc = 0
            for k in range(nc - 1, -1, -1):
                acc += weight[m, order[k]]
                if 3 * acc > total:
                    hi3 = lat_p[m, order[k]]
                    break
            # lower and upper weighted medians of the survivors (codes still 0), and band
            total_cfg = mcfg[m, C_TOTAL]
            tol = mcfg[m, C_BAND_TOL]
            missing = total_cfg - kept_w
            lo_need = total_cfg - 2 * (missing + tol)
            hi_need = total_cfg + 2 * tol
            med_lo = NONE
            med_hi = NONE
            b_lo = NONE
            b_hi = NONE
            first = NONE
            last = NONE
            acc = 0
            for k in range(nc):
                j = order[k]
                if codes[m, j] != 0:
                    continue
                p = lat_p[m, j]
                if first == NONE:
                    first = p
                last = p
                acc += weight[m, j]
                if med_lo == NONE and 2 * acc >= kept_w:
                    med_lo = p
                if med_hi == NONE and 2 * acc > kept_w:
                    med_hi = p
                if b_lo == NONE and 2 * acc >= lo_need:
                    b_lo = p
                if b_hi == NONE and 2 * acc > hi_need:
                    b_hi = p
            if b_lo == NONE:
                b_lo = first
            if b_hi == NONE:
                b_hi = last
            mid = (med_lo + med_hi) // 2
            idx = min(max(mid, lo3), hi3)
            index[m] = idx
            band_lo[m] = min(b_lo, idx)
            band_hi[m] = max(b_hi, idx)
        packed = np.int64(0)
        for j in range(n):
            packed |= np.int64(codes[m, j]) << np.int64(3 * j)
        sig[m] = packed
