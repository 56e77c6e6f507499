"""The reference implementation of ``Feed``: pure Python, one market at a time.

``ReferenceFeed`` is the feed as it was before the compiled kernel (``liqeng.oracle.kernel``)
and stays the specification: ``tests/test_oracle_fast.py`` drives it and ``Feed`` with the
same random report streams and asserts equal outputs, states and refusals. The semantics
(the nine steps of ``update``, the health state machine, the breaker) are documented in
``liqeng.oracle.feed``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from liqeng.errors import InvalidArgument
from liqeng.oracle.aggregate import Quote, aggregate, jumped, similar, twap
from liqeng.oracle.config import MarketConfig
from liqeng.oracle.feed import FeedHealth, MarketPrice, _health_fraction
from liqeng.oracle.reports import TS_MAX, SourceReport
from liqeng.units import RATE_SCALE, check_int

__all__ = ["ReferenceFeed"]

S = RATE_SCALE


@dataclass(slots=True)
class _SourceState:
    latest: SourceReport | None = None
    seen: SourceReport | None = None
    baseline: SourceReport | None = None


@dataclass
class _MarketState:
    sources: dict[str, _SourceState]
    distrusted: set[str] = field(default_factory=set)
    last_good: int | None = None
    last_good_ts: int = 0
    pending_dir: int = 0
    pending_count: int = 0
    samples: list[tuple[int, int]] = field(default_factory=list)
    osm_cur: int | None = None
    osm_nxt: int | None = None
    osm_zzz: int | None = None
    breaker: int = 0
    breaker_reason: str = ""
    health: FeedHealth | None = None
    grace_until: int | None = None
    last: MarketPrice | None = None

    def copy(self) -> _MarketState:
        """A copy sharing only immutable values (reports, prices, ``MarketPrice``)."""
        return _MarketState(
            {n: _SourceState(s.latest, s.seen, s.baseline) for n, s in self.sources.items()},
            set(self.distrusted),
            self.last_good,
            self.last_good_ts,
            self.pending_dir,
            self.pending_count,
            list(self.samples),
            self.osm_cur,
            self.osm_nxt,
            self.osm_zzz,
            self.breaker,
            self.breaker_reason,
            self.health,
            self.grace_until,
            self.last,
        )


class ReferenceFeed:
    """The reference ``Feed``: the pure-Python implementation every output of ``Feed`` must
    equal (``liqeng.oracle.feed`` module docstring)."""

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
        self._states = {
            m: _MarketState({s.name: _SourceState() for s in c.sources})
            for m, c in self._configs.items()
        }
        # Copy-on-write: the states of these markets are also held by a snapshot, so they
        # are copied (``_own``) before their first change after it.
        self._shared: set[str] = set()
        self._weights = {m: {s.name: s.weight for s in c.sources} for m, c in self._configs.items()}
        self._now: int | None = None

    def _own(self, market: str) -> _MarketState:
        """The market's state, copied first if a snapshot holds it."""
        if market in self._shared:
            self._shared.discard(market)
            self._states[market] = self._states[market].copy()
        return self._states[market]

    # ---- input -------------------------------------------------------------------------

    def _check_now(self, now: object) -> int:
        n = check_int("now", now, 0, TS_MAX)
        if self._now is not None and n < self._now:
            raise InvalidArgument(f"now={n} is before the last update at {self._now}")
        return n

    def submit(self, report: SourceReport, now: int) -> None:
        """Accept ``report`` or raise ``InvalidArgument`` naming the value; a refusal
        changes nothing.

        Refused: an unknown market, an unknown source or one that does not feed the market,
        ``ts > now``, ``ts`` not after the source's last accepted ``ts`` for the market (so of
        two prices with one ``ts`` the first is kept), ``now`` before the last update.
        """
        now = self._check_now(now)
        if not isinstance(report, SourceReport):
            raise InvalidArgument(f"report={report!r} must be a SourceReport")
        cfg = self._configs.get(report.market)
        if cfg is None:
            raise InvalidArgument(f"market={report.market!r} has no feed")
        if report.source not in self.sources:
            raise InvalidArgument(f"source={report.source!r} is not a configured source")
        latest = self._states[report.market].sources.get(report.source)
        if latest is None:
            raise InvalidArgument(
                f"source={report.source!r} does not feed market={report.market!r}"
            )
        if report.ts > now:
            raise InvalidArgument(f"report ts={report.ts} from {report.source} is after now={now}")
        if latest.latest is not None and report.ts <= latest.latest.ts:
            raise InvalidArgument(
                f"report ts={report.ts} from {report.source} for {report.market} is not after "
                f"its last ts={latest.latest.ts}"
            )
        self._own(report.market).sources[report.source].latest = report

    # ---- aggregation -------------------------------------------------------------------

    def update(self, now: int) -> Mapping[str, MarketPrice]:
        """Aggregate every market once at ``now``; the only place state transitions happen."""
        now = self._check_now(now)
        out = {}
        for market in sorted(self._configs):
            out[market] = self._update_market(self._configs[market], self._own(market), now)
        self._now = now
        return out

    def _update_market(self, cfg: MarketConfig, st: _MarketState, now: int) -> MarketPrice:
        verdicts: dict[str, str] = {}
        reasons: list[str] = []
        weights = self._weights[cfg.market]
        # 1. rounds
        for ss in st.sources.values():
            if ss.latest is not ss.seen:
                ss.baseline, ss.seen = ss.seen, ss.latest
        # 2. freshness and confidence
        fresh: dict[str, int] = {}
        for sc in cfg.sources:
            r = st.sources[sc.name].latest
            if r is None:
                verdicts[sc.name] = "missing"
            elif now - r.ts > sc.max_age_s:
                verdicts[sc.name] = "stale"
            elif (
                cfg.max_confidence is not None
                and r.confidence is not None
                and r.confidence * S > cfg.max_confidence * r.price
            ):
                verdicts[sc.name] = "confidence"
            else:
                fresh[sc.name] = r.price
        # 3. jump and corroboration
        candidates: dict[str, int] = {}
        for sc in cfg.sources:
            if sc.name not in fresh:
                continue
            p = fresh[sc.name]
            base = st.sources[sc.name].baseline
            jump = (
                sc.max_jump is not None and base is not None and jumped(base.price, p, sc.max_jump)
            )
            distrusted = cfg.sticky_distrust and sc.name in st.distrusted
            if jump or distrusted:
                if any(o != sc.name and similar(p, q, cfg.corroboration) for o, q in fresh.items()):
                    st.distrusted.discard(sc.name)
                else:
                    verdicts[sc.name] = "jump" if jump else "distrusted"
                    if cfg.sticky_distrust:
                        st.distrusted.add(sc.name)
                    continue
            candidates[sc.name] = p
        # 4. aggregate and quorum
        agg = aggregate(
            [Quote(n, p, weights[n]) for n, p in sorted(candidates.items())],
            mad_k=cfg.mad_k,
            mad_floor=cfg.mad_floor,
            max_deviation=cfg.max_deviation,
            total_weight=cfg.total_weight,
            band_tolerance=cfg.band_tolerance,
        )
        verdicts.update(agg.rejected)
        for n in agg.survivors:
            verdicts[n] = "used"
        index = agg.index
        if len(agg.survivors) < cfg.quorum:
            reasons.append(f"quorum lost: {len(agg.survivors)} < {cfg.quorum} sources agree")
            index = None
        # 5. move guard
        frozen = False
        current: int | None = None
        if index is None:
            st.pending_dir, st.pending_count = 0, 0
        else:
            accept = True
            last = st.last_good
            if last is not None and cfg.max_move is not None:
                k = 1
                if cfg.move_interval_s is not None:
                    k = max(1, -(-(now - st.last_good_ts) // cfg.move_interval_s))
                bound = cfg.max_move * k
                if abs(index - last) * S <= bound * last:
                    st.pending_dir, st.pending_count = 0, 0
                else:
                    d = 1 if index > last else -1
                    if st.pending_dir == d:
                        st.pending_count += 1
                    else:
                        st.pending_dir, st.pending_count = d, 1
                    beyond = sum(
                        weights[n]
                        for n in agg.survivors
                        if (candidates[n] - last) * d * S > bound * last
                    )
                    persisted = st.pending_count >= cfg.confirm_updates
                    majority = beyond * S >= cfg.confirm_supermajority * cfg.total_weight
                    if persisted or majority:
                        how = "persisted" if persisted else "supermajority"
                        reasons.append(f"move {last} -> {index} confirmed ({how})")
                        st.pending_dir, st.pending_count = 0, 0
                    else:
                        accept = False
                        frozen = True
                        reasons.append(
                            f"move {last} -> {index} beyond max_move={bound}: frozen at {last} "
                            f"({st.pending_count}/{cfg.confirm_updates} updates)"
                        )
            if accept:
                st.last_good, st.last_good_ts = index, now
            current = st.last_good
        # 6. TWAP and its guard
        if current is not None:
            if st.samples and st.samples[-1][0] == now:
                st.samples[-1] = (now, current)
            else:
                st.samples.append((now, current))
        window = max(cfg.twap_window_s or 0, cfg.twap_guard_window_s or 0)
        cut = 0
        while cut + 1 < len(st.samples) and st.samples[cut + 1][0] <= now - window:
            cut += 1
        del st.samples[:cut]
        avg = twap(st.samples, now, cfg.twap_window_s) if cfg.twap_window_s else None
        twap_tripped = False
        if cfg.twap_guard_window_s is not None and current is not None:
            guard = twap(st.samples, now, cfg.twap_guard_window_s)
            assert guard is not None
            if abs(current - guard) * S >= cfg.twap_guard_bound * guard:
                twap_tripped = True
                reasons.append(f"price {current} is too far from its TWAP {guard}")
        # 7. delay (OSM)
        if cfg.delay_s is not None:
            hop = cfg.delay_s
            if current is not None:
                if st.osm_zzz is None:
                    st.osm_cur = st.osm_nxt = current
                    st.osm_zzz = now - now % hop
                elif now >= st.osm_zzz + hop:
                    st.osm_cur, st.osm_nxt = st.osm_nxt, current
                    st.osm_zzz = now - now % hop
            price, next_price = st.osm_cur, st.osm_nxt
        else:
            price = next_price = st.last_good
        # 8. ClipperMom-style trip
        if (
            cfg.breaker_tolerance is not None
            and price is not None
            and next_price is not None
            and next_price * S < price * cfg.breaker_tolerance
            and st.breaker < 2
        ):
            st.breaker = 2
            st.breaker_reason = f"next price {next_price} below tolerance of price {price}"
            reasons.append(st.breaker_reason)
        # 9. health and grace
        if index is None or twap_tripped:
            health = FeedHealth.HALTED
        elif frozen or len(agg.survivors) < len(cfg.sources):
            health = FeedHealth.DEGRADED
        else:
            health = FeedHealth.HEALTHY
        if st.health is FeedHealth.HALTED and health is not FeedHealth.HALTED:
            st.grace_until = now + cfg.grace_period_s
        st.health = health
        if price is not None and price == index and agg.band is not None:
            band: tuple[int, int] | None = agg.band
        else:
            band = None if price is None else (price, price)
        st.last = MarketPrice(
            market=cfg.market,
            ts=now,
            price=price,
            next_price=next_price,
            index=index,
            twap=avg,
            sources_agreed=len(agg.survivors),
            sources_fresh=len(fresh),
            health=health,
            frozen=frozen,
            breaker=st.breaker,
            grace_until=st.grace_until,
            verdicts=tuple(sorted(verdicts.items())),
            reasons=tuple(reasons),
            band=band,
        )
        return st.last

    # ---- queries and governance --------------------------------------------------------

    def _state(self, market: object) -> _MarketState:
        if not isinstance(market, str) or market not in self._states:
            raise InvalidArgument(f"market={market!r} has no feed")
        return self._states[market]

    def latest(self, market: str) -> MarketPrice | None:
        """The market's output of the last ``update`` (``None`` before the first)."""
        return self._state(market).last

    def health(self, market: str) -> FeedHealth | None:
        return self._state(market).health

    def breaker(self, market: str) -> tuple[int, str]:
        """``(level, reason)`` of the market's circuit breaker."""
        st = self._state(market)
        return st.breaker, st.breaker_reason

    def new_liquidations_allowed(self, market: str) -> bool:
        """Breaker below 1 (Clipper ``kick``)."""
        return self._state(market).breaker < 1

    def resets_allowed(self, market: str) -> bool:
        """Breaker below 2 (Clipper ``redo``)."""
        return self._state(market).breaker < 2

    def takes_allowed(self, market: str) -> bool:
        """Breaker below 3 (Clipper ``take``)."""
        return self._state(market).breaker < 3

    def liquidation_allowed(self, market: str, health: Fraction | float) -> bool:
        """May a new liquidation of an account with this ``health`` start in ``market``?
        (module docstring: breaker, halted, grace period and its hard floor)."""
        st = self._state(market)
        h = _health_fraction(health)
        if st.last is None or st.breaker >= 1 or st.health is FeedHealth.HALTED:
            return False
        if st.grace_until is not None and self._now is not None and self._now < st.grace_until:
            return h < self._configs[market].grace_health_floor
        return True

    def set_breaker(self, market: str, level: int, reason: str) -> None:
        """Governance: set the breaker to ``level`` (0..3) for ``reason``. Lowering it from
        >= 1 to 0 starts the grace period at the last update's ``now``."""
        self._state(market)
        check_int("breaker level", level, 0, 3)
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidArgument(f"reason={reason!r} must be a non-empty str")
        st = self._own(market)
        if level == 0 and st.breaker >= 1 and self._now is not None:
            st.grace_until = self._now + self._configs[market].grace_period_s
        st.breaker, st.breaker_reason = level, reason

    def snapshot(self) -> object:
        """A comparable copy of all mutable state (for tests, audits and ``restore``) that
        later changes to the feed never alter.

        Copy-on-write: it shares every market's state with the feed, which copies a
        market's state before its first change after the snapshot, so a snapshot costs
        one dict of references and each step copies only the markets it changes.
        """
        self._shared = set(self._states)
        return (self._now, dict(self._states))

    def restore(self, snapshot: object) -> None:
        """Put back the state ``snapshot()`` returned (the engine does, when a step fails);
        the snapshot stays valid for another ``restore``."""
        if (
            not isinstance(snapshot, tuple)
            or len(snapshot) != 2
            or not isinstance(snapshot[1], dict)
            or not all(isinstance(v, _MarketState) for v in snapshot[1].values())
        ):
            raise InvalidArgument("snapshot is not a Feed snapshot")
        now, states = snapshot
        if set(states) != set(self._states):
            raise InvalidArgument("snapshot is not of this feed's markets")
        self._now, self._states = now, dict(states)
        self._shared = set(self._states)
