"""The multi-source feed: per-market aggregation, guards, health and circuit breakers.

The feed reads no clock: the driver passes ``now`` (whole seconds, never decreasing) to
``submit`` and ``update``, and every decision is a deterministic function of the reports,
the configuration and ``now``. Prices are integers (quote base units per whole token).

``update(now)``, once per engine step, does for every market, in order:

1. **rounds**: a source whose latest report is new since the last update starts a round;
   its *baseline* (previous round) is the report that was latest at the last update. Only
   the last report of a source within a step counts, so arrival order inside a step is
   irrelevant.
2. **freshness**: ``missing`` (never reported), ``stale`` (``now - ts > max_age_s`` of the
   source), ``confidence`` (``confidence·S > max_confidence·price``).
3. **jump**: a source with ``max_jump`` whose price jumped versus its baseline (or, with
   ``sticky_distrust``, that was left distrusted) is a suspect; it is kept only if another
   fresh source is ``similar`` to it within ``corroboration``, else ``jump``/``distrusted``.
4. **aggregate** (``aggregate.aggregate``): MAD and max-deviation outliers out, the clamped
   weighted median of the survivors; fewer survivors than ``quorum`` gives no index.
5. **move guard** (``max_move``): with ``L`` the last good price, accepted at ``t_L``, the
   bound is ``B = max_move·k`` with ``k = 1`` (per update) or
   ``max(1, ceil((now - t_L)/move_interval_s))``. An index with ``|x - L|·S <= B·L`` is
   accepted. A larger move is *confirmed*, and accepted, when either (a) the index has been
   beyond the bound in the same direction for ``confirm_updates`` consecutive updates with a
   quorum (an update within the bound, the other way, or without quorum restarts the count),
   or (b) the surviving sources whose own prices are beyond the bound in that direction hold
   at least ``confirm_supermajority/S`` of the market's configured weight. Otherwise the price
   stays frozen at ``L`` and the market is degraded.
6. **TWAP** of the current price (accepted or frozen), over ``twap_window_s``, and the
   **TWAP guard** (Drift): halted while ``|price - twap_g|·S >= twap_guard_bound·twap_g`` for
   the TWAP over ``twap_guard_window_s``.
7. **delay** (Maker OSM, hop ``delay_s``): when ``now >= zzz + hop`` (``zzz`` the last poke,
   aligned down to a multiple of ``hop``) and there is a current price: ``cur = nxt``,
   ``nxt = current``. ``price = cur`` is for liquidation, ``next_price = nxt`` is visible one
   hop early. Without a delay both are the current price.
8. **breaker trip** (ClipperMom): ``next_price·S < price·breaker_tolerance`` raises the
   breaker to at least 2.
9. **health**, then the grace period.

Health state machine (evaluated at every update; conditions are checked top down):

==============================================  ===========  ==================================
condition this update                           new state    effect
==============================================  ===========  ==================================
survivors < quorum, or the TWAP guard trips     halted       no new liquidation; ``price`` is
                                                             the last good (or OSM) price
price frozen by the move guard, or any          degraded     liquidations allowed
configured source not used (missing, stale,
low confidence, jump, distrusted, outlier)
otherwise (every source used, not frozen)       healthy      liquidations allowed
halted -> degraded/healthy                      (as above)   ``grace_until = now + grace``:
                                                             until then only accounts with
                                                             ``health < grace_health_floor``
breaker lowered from >= 1 to 0 by governance    unchanged    same grace, from the last update
==============================================  ===========  ==================================

Circuit breaker per market (Maker Clipper ``stopped``): 0 none; 1 no new liquidations;
2 also no resets (auction restarts); 3 also no takes. Set by governance with a reason
(``set_breaker``, which may also lower it) or raised automatically (step 8, never lowered).

``liquidation_allowed(market, health)``: false before the first update, when the breaker is
>= 1 or the market is halted; during the grace period (judged at the last update's ``now``)
true only for ``health < grace_health_floor``; true otherwise.

Implementation. Steps 1 to 4 run for every market at once in a compiled kernel
(``liqeng.oracle.kernel``) over ``[markets x sources]`` int64 arrays, exact; a market whose
configuration or prices could leave the kernel's proven range (``kernel.PRICE_BOUND``,
``kernel.kernel_eligible``) takes the exact Python path for good. Steps 5 to 9 run in
Python per market, in full only where a move guard, TWAP or delay is configured (without a
delay ``price == next_price``, so the breaker cannot trip since ``breaker_tolerance <= S``;
without a TWAP the samples are never read and are not kept). ``ReferenceFeed``
(``liqeng.oracle.feed_reference``) is the pure-Python implementation every output must
equal (``tests/test_oracle_fast.py``). Per-market state is held in columns (one list or
array row per market), so a snapshot is one copy-on-write reference to all of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from enum import Enum
from fractions import Fraction
from itertools import chain
from typing import Any

import numpy as np

from liqeng.errors import InvalidArgument
from liqeng.oracle import kernel
from liqeng.oracle.aggregate import Quote, aggregate, jumped, similar, twap
from liqeng.oracle.config import MarketConfig
from liqeng.oracle.reports import TS_MAX, SourceReport
from liqeng.units import RATE_SCALE, check_int

__all__ = ["BREAKER_LEVELS", "Feed", "FeedHealth", "MarketPrice"]

S = RATE_SCALE
_NONE = kernel.NONE
_BOUND = kernel.PRICE_BOUND
_VERDICTS = kernel.VERDICTS

BREAKER_LEVELS = {
    0: "none",
    1: "no new liquidations",
    2: "no new liquidations, no resets",
    3: "no new liquidations, no resets, no takes",
}


class FeedHealth(Enum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    HALTED = "halted"


@dataclass(frozen=True, slots=True)
class MarketPrice:
    """One market's output of one ``update``.

    ``price`` is the price for liquidation (delayed with an OSM delay; the last good price
    when frozen or halted; ``None`` if there never was one), ``next_price`` the next one,
    ``index`` this update's aggregate (``None`` below quorum), ``sources_agreed`` the
    survivors that formed it, ``verdicts`` one ``(source, verdict)`` per configured source.
    ``band`` is where the agreeing sources put the price (``aggregate.Aggregate.band``) when
    ``price`` is this update's index, else ``(price, price)``.
    """

    market: str
    ts: int
    price: int | None
    next_price: int | None
    index: int | None
    twap: int | None
    sources_agreed: int
    sources_fresh: int
    health: FeedHealth
    frozen: bool
    breaker: int
    grace_until: int | None
    verdicts: tuple[tuple[str, str], ...]
    reasons: tuple[str, ...]
    band: tuple[int, int] | None = None

    def verdict(self, source: str) -> str:
        for name, v in self.verdicts:
            if name == source:
                return v
        raise InvalidArgument(f"source={source!r} does not feed market={self.market!r}")


def _market_price_factory() -> Callable[..., MarketPrice]:
    """``MarketPrice(*fields)`` without the frozen ``__init__``'s per-field
    ``object.__setattr__`` (twice as fast): the slots' descriptors set each field; the
    object is the same (``tests/test_oracle_fast.py`` compares them)."""
    setters = [MarketPrice.__dict__[f.name].__set__ for f in fields(MarketPrice)]
    (s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14) = setters
    new = object.__new__

    def make(
        market: str,
        ts: int,
        price: int | None,
        next_price: int | None,
        index: int | None,
        twap: int | None,
        sources_agreed: int,
        sources_fresh: int,
        health: FeedHealth,
        frozen: bool,
        breaker: int,
        grace_until: int | None,
        verdicts: tuple[tuple[str, str], ...],
        reasons: tuple[str, ...],
        band: tuple[int, int] | None,
    ) -> MarketPrice:
        mp: MarketPrice = new(MarketPrice)
        s0(mp, market)
        s1(mp, ts)
        s2(mp, price)
        s3(mp, next_price)
        s4(mp, index)
        s5(mp, twap)
        s6(mp, sources_agreed)
        s7(mp, sources_fresh)
        s8(mp, health)
        s9(mp, frozen)
        s10(mp, breaker)
        s11(mp, grace_until)
        s12(mp, verdicts)
        s13(mp, reasons)
        s14(mp, band)
        return mp

    return make


_market_price = _market_price_factory()

_HALTED = FeedHealth.HALTED
_DEGRADED = FeedHealth.DEGRADED
_HEALTHY = FeedHealth.HEALTHY


def _health_fraction(health: object) -> Fraction:
    if isinstance(health, bool) or not isinstance(health, (Fraction, int, float)):
        raise InvalidArgument(f"health={health!r} must be a Fraction, int or float")
    if isinstance(health, float) and not math.isfinite(health):
        raise InvalidArgument(f"health={health!r} must be finite")
    return Fraction(health)


# The mutable state of a ``Feed``: these attributes, copied on write after a snapshot.
_STATE = (
    "_now",
    "_lat_p",
    "_lat_t",
    "_lat_c",
    "_big",
    "_rounds",
    "_distrusted",
    "_exact",
    "_xrounds",
    "_last_good",
    "_last_good_ts",
    "_pending_dir",
    "_pending_count",
    "_samples",
    "_osm_cur",
    "_osm_nxt",
    "_osm_zzz",
    "_breaker",
    "_breaker_reason",
    "_health",
    "_grace_until",
    "_last",
)

# An exact-path market's round state: seen prices, seen ts, baselines, distrusted sources.
_XRounds = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], frozenset[int]]


def _copy(value: Any) -> Any:
    if isinstance(value, (list, dict, np.ndarray)):
        return value.copy()
    return value


class _Snapshot:
    """The state of a ``Feed`` (``Feed.snapshot``): shared with the feed, which copies its
    state before its first change after the snapshot; compared by value."""

    __slots__ = ("layout", "values")

    def __init__(self, layout: tuple[object, ...], values: tuple[Any, ...]) -> None:
        self.layout = layout
        self.values = values

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Snapshot):
            return NotImplemented
        if self.layout != other.layout:
            return False
        for a, b in zip(self.values, other.values, strict=True):
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if not (
                    isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
                ):
                    return False
            elif a != b:
                return False
        return True

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"_Snapshot(now={self.values[0]!r}, markets={self.layout[0]!r})"


class Feed:
    """Source reports in, one ``MarketPrice`` per market out (module docstring)."""

    def __init__(self, configs: Iterable[MarketConfig], max_age_s: int | None = None) -> None:
        cfgs = list(configs)
        if not cfgs:
            raise InvalidArgument("a feed needs at least one MarketConfig")
        self._configs: dict[str, MarketConfig] = {}
        for c in cfgs:
            if not isinstance(c, MarketConfig):
                raise InvalidArgument(f"config={c!r} must be a MarketConfig")
            if c.market in self._configs:
                raise InvalidArgument(f"market={c.market!r} is configured twice")
            self._configs[c.market] = c
        self.sources = frozenset(s.name for c in cfgs for s in c.sources)
        self.markets = frozenset(self._configs)
        default_age = min(s.max_age_s for c in cfgs for s in c.sources)
        self.max_age_s = check_int(
            "max_age_s", default_age if max_age_s is None else max_age_s, 1, 2**40
        )
        """How old the last ``update`` may be before the engine refuses its prices."""

        # ---- layout (immutable): markets sorted by name, source j of market i at slot
        # i*N + j of the [M x N] arrays (N the most sources of any market)
        names = tuple(sorted(self._configs))
        self._names = names
        self._cfgs = tuple(self._configs[m] for m in names)
        self._index = {m: i for i, m in enumerate(names)}
        n_m = len(names)
        n_s = max(len(c.sources) for c in cfgs)
        self._n = n_s
        self._slots = {
            c.market: {sc.name: i * n_s + j for j, sc in enumerate(c.sources)}
            for i, c in enumerate(self._cfgs)
        }
        self._nsrc = np.array([len(c.sources) for c in self._cfgs], dtype=np.int64)
        # per source: max age, max jump (NONE: off), weight
        self._scfg = np.zeros((3, n_m, n_s), dtype=np.int64)
        self._scfg[1] = _NONE
        self._mcfg = np.zeros((n_m, kernel.N_MCFG), dtype=np.int64)
        eligible = []
        for i, c in enumerate(self._cfgs):
            ok = kernel.kernel_eligible(len(c.sources), c.mad_k, c.mad_floor)
            eligible.append(ok)
            if not ok:
                continue
            for j, sc in enumerate(c.sources):
                self._scfg[0, i, j] = sc.max_age_s
                self._scfg[1, i, j] = _NONE if sc.max_jump is None else sc.max_jump
                self._scfg[2, i, j] = sc.weight
            row = self._mcfg[i]
            row[kernel.C_MAX_CONF] = _NONE if c.max_confidence is None else c.max_confidence
            row[kernel.C_CORROB] = c.corroboration
            row[kernel.C_STICKY] = int(c.sticky_distrust)
            row[kernel.C_MAD_K] = _NONE if c.mad_k is None else c.mad_k
            row[kernel.C_MAD_FLOOR] = c.mad_floor
            row[kernel.C_MAD_KF] = 0 if c.mad_k is None else c.mad_k * c.mad_floor
            row[kernel.C_MAX_DEV] = _NONE if c.max_deviation is None else c.max_deviation
            row[kernel.C_TOTAL] = c.total_weight
            row[kernel.C_BAND_TOL] = c.band_tolerance
        # Steps 5-9 need the full Python path only with these guards (module docstring).
        self._plain = tuple(
            c.max_move is None
            and c.twap_window_s is None
            and c.twap_guard_window_s is None
            and c.delay_s is None
            for c in self._cfgs
        )
        self._n_sources = tuple(len(c.sources) for c in self._cfgs)
        self._quorum = tuple(c.quorum for c in self._cfgs)
        self._grace_s = tuple(c.grace_period_s for c in self._cfgs)
        self._src_names = tuple(tuple(sc.name for sc in c.sources) for c in self._cfgs)
        self._by_name = tuple(
            tuple(j for _, j in sorted((sc.name, j) for j, sc in enumerate(c.sources)))
            for c in self._cfgs
        )
        self._use_conf = any(c.max_confidence is not None for c in self._cfgs)
        self._all_active = np.ones(n_m, dtype=np.bool_)
        # kernel outputs (scratch, read into lists at once)
        self._codes = np.zeros((n_m, n_s), dtype=np.int8)
        self._out = np.zeros((6, n_m), dtype=np.int64)
        # verdict tuples by packed verdicts, per market (a cache, not state)
        self._vcache: tuple[dict[int, tuple[tuple[str, str], ...]], ...] = tuple({} for _ in names)

        # ---- mutable state (``_STATE``)
        self._now: int | None = None
        # latest report per slot (lists: item access is 3x faster than array.array's):
        # price (0: none), ts, min(confidence, price + 1) (NONE: none); a price >=
        # PRICE_BOUND is in ``_big`` as (price, confidence) instead, its slot holding 0
        # and NONE, so the lists always fit int64.
        self._lat_p: list[int] = [0] * (n_m * n_s)
        self._lat_t: list[int] = [_NONE] * (n_m * n_s)
        self._lat_c: list[int] = [_NONE] * (n_m * n_s)
        self._big: dict[int, tuple[int, int]] = {}
        # at the last update: the latest price (0: none) and ts; the baseline (previous
        # round's) price (0: none)
        self._rounds = np.zeros((3, n_m, n_s), dtype=np.int64)
        self._rounds[1] = _NONE
        self._distrusted = np.zeros((n_m, n_s), dtype=np.bool_)
        self._exact: list[bool] = [not ok for ok in eligible]
        self._xrounds: dict[int, _XRounds] = {
            i: self._fresh_xrounds(i) for i, ok in enumerate(eligible) if not ok
        }
        self._last_good: list[int | None] = [None] * n_m
        self._last_good_ts: list[int] = [0] * n_m
        self._pending_dir: list[int] = [0] * n_m
        self._pending_count: list[int] = [0] * n_m
        self._samples: list[tuple[tuple[int, int], ...]] = [()] * n_m
        self._osm_cur: list[int | None] = [None] * n_m
        self._osm_nxt: list[int | None] = [None] * n_m
        self._osm_zzz: list[int | None] = [None] * n_m
        self._breaker: list[int] = [0] * n_m
        self._breaker_reason: list[str] = [""] * n_m
        self._health: list[FeedHealth | None] = [None] * n_m
        self._grace_until: list[int | None] = [None] * n_m
        self._last: list[MarketPrice | None] = [None] * n_m
        # Copy-on-write: the state above is also held by a snapshot.
        self._shared = False

    def _fresh_xrounds(self, i: int) -> _XRounds:
        n = len(self._cfgs[i].sources)
        return ((0,) * n, (_NONE,) * n, (0,) * n, frozenset())

    def _unshare(self) -> None:
        """Copy the state a snapshot holds before changing it."""
        for name in _STATE:
            setattr(self, name, _copy(getattr(self, name)))
        self._shared = False

    # ---- input -------------------------------------------------------------------------

    def _check_now(self, now: object) -> int:
        n = check_int("now", now, 0, TS_MAX)
        if self._now is not None and n < self._now:
            raise InvalidArgument(f"now={n} is before the last update at {self._now}")
        return n

    def _check(self, report: object, now: object) -> int:
        """The refusals of ``submit`` in order: raise the first, else return the slot."""
        now = self._check_now(now)
        if not isinstance(report, SourceReport):
            raise InvalidArgument(f"report={report!r} must be a SourceReport")
        slots = self._slots.get(report.market)
        if slots is None:
            raise InvalidArgument(f"market={report.market!r} has no feed")
        if report.source not in self.sources:
            raise InvalidArgument(f"source={report.source!r} is not a configured source")
        slot = slots.get(report.source)
        if slot is None:
            raise InvalidArgument(
                f"source={report.source!r} does not feed market={report.market!r}"
            )
        if report.ts > now:
            raise InvalidArgument(f"report ts={report.ts} from {report.source} is after now={now}")
        last = self._lat_t[slot]
        if last != _NONE and report.ts <= last:
            raise InvalidArgument(
                f"report ts={report.ts} from {report.source} for {report.market} is not after "
                f"its last ts={last}"
            )
        return slot

    def _accept(self, slot: int, report: SourceReport) -> None:
        if self._shared:
            self._unshare()
        p = report.price
        c = report.confidence
        cc = _NONE if c is None else (c if c <= p else p + 1)
        self._lat_t[slot] = report.ts
        if p < _BOUND:
            self._lat_p[slot] = p
            self._lat_c[slot] = cc
            if self._big:
                self._big.pop(slot, None)
        else:
            self._accept_big(slot, p, cc)

    def _accept_big(self, slot: int, price: int, conf: int) -> None:
        """A price beyond the kernel's range: kept exact, its market priced in Python."""
        self._lat_p[slot] = 0
        self._lat_c[slot] = _NONE
        self._big[slot] = (price, conf)
        self._exact[slot // self._n] = True

    def _price_conf(self, slot: int) -> tuple[int, int]:
        """The latest ``(price, min(confidence, price + 1))`` of a slot, exact."""
        big = self._big.get(slot)
        return (self._lat_p[slot], self._lat_c[slot]) if big is None else big

    def submit(self, report: SourceReport, now: int) -> None:
        """Accept ``report`` or raise ``InvalidArgument`` naming the value; a refusal
        changes nothing.

        Refused: an unknown market, an unknown source or one that does not feed the market,
        ``ts > now``, ``ts`` not after the source's last accepted ``ts`` for the market (so of
        two prices with one ``ts`` the first is kept), ``now`` before the last update.
        """
        # Fast path for the common case; anything else is decided by ``_check``.
        if (
            now.__class__ is int
            and 0 <= now <= TS_MAX
            and (self._now is None or now >= self._now)
            and report.__class__ is SourceReport
        ):
            slots = self._slots.get(report.market)
            if slots is not None:
                slot = slots.get(report.source)
                if slot is not None:
                    ts = report.ts
                    if ts <= now and ts > self._lat_t[slot]:
                        if self._shared:
                            self._unshare()
                        p = report.price
                        c = report.confidence
                        self._lat_t[slot] = ts
                        if p < _BOUND:
                            self._lat_p[slot] = p
                            self._lat_c[slot] = _NONE if c is None else (c if c <= p else p + 1)
                            if self._big:
                                self._big.pop(slot, None)
                            return
                        self._accept(slot, report)
                        return
        self._accept(self._check(report, now), report)

    def submit_many(
        self, reports: Iterable[SourceReport], now: int
    ) -> list[tuple[int, InvalidArgument]]:
        """``submit`` each report in order; returns ``(position, error)`` for each refused
        one, with the error ``submit`` would have raised (a refusal changes nothing)."""
        refused: list[tuple[int, InvalidArgument]] = []
        try:
            self._check_now(now)
        except InvalidArgument:
            for k, r in enumerate(reports):
                try:
                    self._check(r, now)
                except InvalidArgument as exc:
                    refused.append((k, exc))
            return refused
        if self._shared:
            self._unshare()
        slots_of = self._slots
        lat_p, lat_t, lat_c, big = self._lat_p, self._lat_t, self._lat_c, self._big
        for k, r in enumerate(reports):
            if r.__class__ is SourceReport:
                slots = slots_of.get(r.market)
                if slots is not None:
                    slot = slots.get(r.source)
                    if slot is not None:
                        ts = r.ts
                        if ts <= now and ts > lat_t[slot]:
                            p = r.price
                            c = r.confidence
                            cc = _NONE if c is None else (c if c <= p else p + 1)
                            lat_t[slot] = ts
                            if p < _BOUND:
                                lat_p[slot] = p
                                lat_c[slot] = cc
                                if big:
                                    big.pop(slot, None)
                            else:
                                self._accept_big(slot, p, cc)
                            continue
            try:
                slot = self._check(r, now)
            except InvalidArgument as exc:
                refused.append((k, exc))
            else:
                self._accept(slot, r)
        return refused

    # ---- aggregation -------------------------------------------------------------------

    def update(self, now: int) -> Mapping[str, MarketPrice]:
        """Aggregate every market once at ``now``; the only place state transitions happen."""
        now = self._check_now(now)
        if self._shared:
            self._unshare()
        n_m, n_s = len(self._names), self._n
        exact = [i for i, e in enumerate(self._exact) if e]
        for i in exact:
            if i not in self._xrounds:  # its prices left the kernel's range: move it over
                self._xrounds[i] = self._migrate(i)
        # ---- steps 1-4 in the kernel
        size = n_m * n_s
        if self._use_conf:
            flat = chain(self._lat_p, self._lat_t, self._lat_c)
            lat = np.fromiter(flat, np.int64, 3 * size).reshape(3, n_m, n_s)
        else:  # the confidence plane is never read
            flat = chain(self._lat_p, self._lat_t)
            lat = np.fromiter(flat, np.int64, 2 * size).reshape(2, n_m, n_s)
        if exact:
            active = np.array([not e for e in self._exact], dtype=np.bool_)
        else:
            active = self._all_active
        out = self._out
        kernel.aggregate_markets(
            now,
            active,
            self._nsrc,
            lat,
            self._rounds,
            self._distrusted,
            self._scfg,
            self._mcfg,
            self._codes,
            out,
        )
        sig_l, idx_l, blo_l, bhi_l, ns_l, nf_l = out.tolist()
        for i in exact:
            sig_l[i], idx_l[i], blo_l[i], bhi_l[i], ns_l[i], nf_l[i] = self._exact_rounds(i, now)
        # ---- steps 5-9
        result: dict[str, MarketPrice] = {}
        names, plain, vcache = self._names, self._plain, self._vcache
        last_good, last_good_ts = self._last_good, self._last_good_ts
        health_l, grace_l, breaker_l, last_l = (
            self._health,
            self._grace_until,
            self._breaker,
            self._last,
        )
        nsrc, quorum, grace_s = self._n_sources, self._quorum, self._grace_s
        make = _market_price
        for i in range(n_m):
            sg = sig_l[i]
            verdicts = vcache[i].get(sg)
            if verdicts is None:
                verdicts = self._verdicts(i, sg)
            ns = ns_l[i]
            if not plain[i]:
                mp = self._guarded(i, now, idx_l[i], ns, nf_l[i], blo_l[i], bhi_l[i], verdicts, sg)
            else:
                if ns < quorum[i]:
                    reasons: tuple[str, ...] = (f"quorum lost: {ns} < {quorum[i]} sources agree",)
                    index = None
                    price = last_good[i]
                    health = _HALTED
                    band = None if price is None else (price, price)
                else:
                    index = price = idx_l[i]
                    last_good[i] = index
                    last_good_ts[i] = now
                    reasons = ()
                    health = _DEGRADED if ns < nsrc[i] else _HEALTHY
                    band = (blo_l[i], bhi_l[i])
                if health_l[i] is _HALTED and health is not _HALTED:
                    grace_l[i] = now + grace_s[i]
                health_l[i] = health
                mp = make(
                    names[i],
                    now,
                    price,
                    price,
                    index,
                    None,
                    ns,
                    nf_l[i],
                    health,
                    False,
                    breaker_l[i],
                    grace_l[i],
                    verdicts,
                    reasons,
                    band,
                )
            last_l[i] = mp
            result[names[i]] = mp
        self._now = now
        return result

    def _verdicts(self, i: int, sg: int) -> tuple[tuple[str, str], ...]:
        src = self._src_names[i]
        v = tuple((src[j], _VERDICTS[(sg >> (3 * j)) & 7]) for j in self._by_name[i])
        cache = self._vcache[i]
        if len(cache) >= 4096:
            cache.clear()
        cache[sg] = v
        return v

    def _migrate(self, i: int) -> _XRounds:
        n = len(self._cfgs[i].sources)
        seen_p, seen_t, base_p = self._rounds[:, i, :n].tolist()
        return (
            tuple(seen_p),
            tuple(seen_t),
            tuple(base_p),
            frozenset(int(j) for j in np.flatnonzero(self._distrusted[i, :n])),
        )

    def _exact_rounds(self, i: int, now: int) -> tuple[int, int, int, int, int, int]:
        """Steps 1-4 for market ``i`` in Python integers (the reference's code):
        ``(sig, index, band_lo, band_hi, survivors, fresh)`` as the kernel gives them."""
        cfg = self._cfgs[i]
        at = i * self._n
        lat_t = self._lat_t
        seen_p0, seen_t0, base_p0, dis0 = self._xrounds[i]
        seen_p, seen_t, base_p, dis = list(seen_p0), list(seen_t0), list(base_p0), set(dis0)
        n = len(cfg.sources)
        # 1. rounds
        prices = [self._price_conf(at + j) for j in range(n)]
        for j in range(n):
            t = lat_t[at + j]
            if t != seen_t[j]:
                base_p[j], seen_p[j], seen_t[j] = seen_p[j], prices[j][0], t
        # 2. freshness and confidence
        codes = [0] * n
        fresh: dict[int, int] = {}
        for j, sc in enumerate(cfg.sources):
            t, (p, c) = lat_t[at + j], prices[j]
            if t == _NONE:
                codes[j] = 1
            elif now - t > sc.max_age_s:
                codes[j] = 2
            elif cfg.max_confidence is not None and c != _NONE and c * S > cfg.max_confidence * p:
                codes[j] = 3
            else:
                fresh[j] = p
        # 3. jump and corroboration
        candidates: dict[int, int] = {}
        for j, sc in enumerate(cfg.sources):
            if j not in fresh:
                continue
            p = fresh[j]
            base = base_p[j]
            jump = sc.max_jump is not None and base != 0 and jumped(base, p, sc.max_jump)
            distrusted = cfg.sticky_distrust and j in dis
            if jump or distrusted:
                if any(o != j and similar(p, q, cfg.corroboration) for o, q in fresh.items()):
                    dis.discard(j)
                else:
                    codes[j] = 4 if jump else 5
                    if cfg.sticky_distrust:
                        dis.add(j)
                    continue
            candidates[j] = p
        # 4. aggregate
        names = self._src_names[i]
        agg = aggregate(
            [Quote(names[j], p, cfg.sources[j].weight) for j, p in candidates.items()],
            mad_k=cfg.mad_k,
            mad_floor=cfg.mad_floor,
            max_deviation=cfg.max_deviation,
            total_weight=cfg.total_weight,
            band_tolerance=cfg.band_tolerance,
        )
        for j in range(n):
            v = agg.rejected.get(names[j])
            if v is not None:
                codes[j] = _VERDICTS.index(v)
        self._xrounds[i] = (tuple(seen_p), tuple(seen_t), tuple(base_p), frozenset(dis))
        sg = 0
        for j, code in enumerate(codes):
            sg |= code << (3 * j)
        if agg.index is None or agg.band is None:
            return sg, _NONE, _NONE, _NONE, 0, len(fresh)
        return sg, agg.index, agg.band[0], agg.band[1], len(agg.survivors), len(fresh)

    def _guarded(
        self,
        i: int,
        now: int,
        idx: int,
        n_surv: int,
        n_fresh: int,
        band_lo: int,
        band_hi: int,
        verdicts: tuple[tuple[str, str], ...],
        sg: int,
    ) -> MarketPrice:
        """Steps 5-9 for a market with a move guard, TWAP or delay (the reference's code)."""
        cfg = self._cfgs[i]
        reasons: list[str] = []
        index: int | None = None if idx == _NONE else idx
        if n_surv < cfg.quorum:
            reasons.append(f"quorum lost: {n_surv} < {cfg.quorum} sources agree")
            index = None
        # 5. move guard
        frozen = False
        current: int | None = None
        if index is None:
            self._pending_dir[i], self._pending_count[i] = 0, 0
        else:
            accept = True
            last = self._last_good[i]
            if last is not None and cfg.max_move is not None:
                k = 1
                if cfg.move_interval_s is not None:
                    k = max(1, -(-(now - self._last_good_ts[i]) // cfg.move_interval_s))
                bound = cfg.max_move * k
                if abs(index - last) * S <= bound * last:
                    self._pending_dir[i], self._pending_count[i] = 0, 0
                else:
                    d = 1 if index > last else -1
                    if self._pending_dir[i] == d:
                        self._pending_count[i] += 1
                    else:
                        self._pending_dir[i], self._pending_count[i] = d, 1
                    at = i * self._n
                    beyond = sum(
                        sc.weight
                        for j, sc in enumerate(cfg.sources)
                        if (sg >> (3 * j)) & 7 == 0
                        and (self._price_conf(at + j)[0] - last) * d * S > bound * last
                    )
                    count = self._pending_count[i]
                    persisted = count >= cfg.confirm_updates
                    majority = beyond * S >= cfg.confirm_supermajority * cfg.total_weight
                    if persisted or majority:
                        how = "persisted" if persisted else "supermajority"
                        reasons.append(f"move {last} -> {index} confirmed ({how})")
                        self._pending_dir[i], self._pending_count[i] = 0, 0
                    else:
                        accept = False
                        frozen = True
                        reasons.append(
                            f"move {last} -> {index} beyond max_move={bound}: frozen at {last} "
                            f"({count}/{cfg.confirm_updates} updates)"
                        )
            if accept:
                self._last_good[i], self._last_good_ts[i] = index, now
            current = self._last_good[i]
        # 6. TWAP and its guard (samples kept only where a TWAP reads them)
        avg: int | None = None
        twap_tripped = False
        if cfg.twap_window_s is not None or cfg.twap_guard_window_s is not None:
            samples = list(self._samples[i])
            if current is not None:
                if samples and samples[-1][0] == now:
                    samples[-1] = (now, current)
                else:
                    samples.append((now, current))
            window = max(cfg.twap_window_s or 0, cfg.twap_guard_window_s or 0)
            cut = 0
            while cut + 1 < len(samples) and samples[cut + 1][0] <= now - window:
                cut += 1
            del samples[:cut]
            self._samples[i] = tuple(samples)
            avg = twap(samples, now, cfg.twap_window_s) if cfg.twap_window_s else None
            if cfg.twap_guard_window_s is not None and current is not None:
                guard = twap(samples, now, cfg.twap_guard_window_s)
                assert guard is not None
                if abs(current - guard) * S >= cfg.twap_guard_bound * guard:
                    twap_tripped = True
                    reasons.append(f"price {current} is too far from its TWAP {guard}")
        # 7. delay (OSM)
        if cfg.delay_s is not None:
            hop = cfg.delay_s
            if current is not None:
                zzz = self._osm_zzz[i]
                if zzz is None:
                    self._osm_cur[i] = self._osm_nxt[i] = current
                    self._osm_zzz[i] = now - now % hop
                elif now >= zzz + hop:
                    self._osm_cur[i], self._osm_nxt[i] = self._osm_nxt[i], current
                    self._osm_zzz[i] = now - now % hop
            price, next_price = self._osm_cur[i], self._osm_nxt[i]
        else:
            price = next_price = self._last_good[i]
        # 8. ClipperMom-style trip
        if (
            cfg.breaker_tolerance is not None
            and price is not None
            and next_price is not None
            and next_price * S < price * cfg.breaker_tolerance
            and self._breaker[i] < 2
        ):
            self._breaker[i] = 2
            self._breaker_reason[i] = f"next price {next_price} below tolerance of price {price}"
            reasons.append(self._breaker_reason[i])
        # 9. health and grace
        if index is None or twap_tripped:
            health = _HALTED
        elif frozen or n_surv < len(cfg.sources):
            health = _DEGRADED
        else:
            health = _HEALTHY
        if self._health[i] is _HALTED and health is not _HALTED:
            self._grace_until[i] = now + cfg.grace_period_s
        self._health[i] = health
        band: tuple[int, int] | None
        if price is not None and price == index and idx != _NONE:
            band = (band_lo, band_hi)
        else:
            band = None if price is None else (price, price)
        return _market_price(
            cfg.market,
            now,
            price,
            next_price,
            index,
            avg,
            n_surv,
            n_fresh,
            health,
            frozen,
            self._breaker[i],
            self._grace_until[i],
            verdicts,
            tuple(reasons),
            band,
        )

    # ---- queries and governance --------------------------------------------------------

    def _market(self, market: object) -> int:
        if not isinstance(market, str) or market not in self._index:
            raise InvalidArgument(f"market={market!r} has no feed")
        return self._index[market]

    def latest(self, market: str) -> MarketPrice | None:
        """The market's output of the last ``update`` (``None`` before the first)."""
        return self._last[self._market(market)]

    def health(self, market: str) -> FeedHealth | None:
        return self._health[self._market(market)]

    def breaker(self, market: str) -> tuple[int, str]:
        """``(level, reason)`` of the market's circuit breaker."""
        i = self._market(market)
        return self._breaker[i], self._breaker_reason[i]

    def new_liquidations_allowed(self, market: str) -> bool:
        """Breaker below 1 (Clipper ``kick``)."""
        return self._breaker[self._market(market)] < 1

    def resets_allowed(self, market: str) -> bool:
        """Breaker below 2 (Clipper ``redo``)."""
        return self._breaker[self._market(market)] < 2

    def takes_allowed(self, market: str) -> bool:
        """Breaker below 3 (Clipper ``take``)."""
        return self._breaker[self._market(market)] < 3

    def liquidation_allowed(self, market: str, health: Fraction | float) -> bool:
        """May a new liquidation of an account with this ``health`` start in ``market``?
        (module docstring: breaker, halted, grace period and its hard floor)."""
        i = self._market(market)
        h = _health_fraction(health)
        if self._last[i] is None or self._breaker[i] >= 1 or self._health[i] is _HALTED:
            return False
        grace = self._grace_until[i]
        if grace is not None and self._now is not None and self._now < grace:
            return h < self._cfgs[i].grace_health_floor
        return True

    def set_breaker(self, market: str, level: int, reason: str) -> None:
        """Governance: set the breaker to ``level`` (0..3) for ``reason``. Lowering it from
        >= 1 to 0 starts the grace period at the last update's ``now``."""
        i = self._market(market)
        check_int("breaker level", level, 0, 3)
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidArgument(f"reason={reason!r} must be a non-empty str")
        if self._shared:
            self._unshare()
        if level == 0 and self._breaker[i] >= 1 and self._now is not None:
            self._grace_until[i] = self._now + self._cfgs[i].grace_period_s
        self._breaker[i], self._breaker_reason[i] = level, reason

    def snapshot(self) -> object:
        """A comparable copy of all mutable state (for tests, audits and ``restore``) that
        later changes to the feed never alter.

        Copy-on-write: it shares the state with the feed, which copies it (a few lists and
        arrays) before its first change after the snapshot, so a snapshot costs a tuple of
        references and a step one copy.
        """
        self._shared = True
        return _Snapshot((self._names, self._n), tuple(getattr(self, name) for name in _STATE))

    def restore(self, snapshot: object) -> None:
        """Put back the state ``snapshot()`` returned (the engine does, when a step fails);
        the snapshot stays valid for another ``restore``."""
        if not isinstance(snapshot, _Snapshot):
            raise InvalidArgument("snapshot is not a Feed snapshot")
        if snapshot.layout != (self._names, self._n):
            raise InvalidArgument("snapshot is not of this feed's markets")
        for name, value in zip(_STATE, snapshot.values, strict=True):
            setattr(self, name, value)
        self._shared = True
