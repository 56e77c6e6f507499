"""Which legs of an options portfolio to close: a uniform slice (Lyra) or a greeks-aware
greedy choice.

A keeper takes over the closed part of each leg at its mark and is paid a *discount*
(the liquidation penalty) by the account. With ``c`` the signed size closed on a leg
(same sign as the position, ``|c| <= |size|``), ``sd`` its ``size_decimals`` and rates in
parts per ``RATE_SCALE``::

    value(c)      = position_value(leg, c)                     (rounded down; option:
                    floor(mark·c/10**sd), perp/future: floor(c·(index - entry)/10**sd))
    base(c)       = |value(c)|                          option (its mark value)
                  = ceil(|c|·index / 10**sd)            perp, future (its notional)
    discount(c)   = ceil(rate·base(c) / RATE_SCALE),    rate = discount_rate (option)
                                                        or linear_discount_rate (linear)
    cash_after    = cash + Σ_legs value(c) - Σ_legs discount(c)
    risk_after    = market_account_risk(cash_after, positions - closed, ...)
    health_after  = risk_after.health = equity_after / MM_after

so the account pays the discount out of its equity (``equity_after <= equity - discount``;
the split of one floor into two may lose one more unit per leg). Discounts are per leg on
the *cumulative* closed size, so a plan's discount does not depend on how it was chunked.

* ``uniform_slice(positions, f)``: Lyra's auction (lyra_pmrm.md §5.4) buys the same fraction
  ``f`` of every leg: ``c = trunc(size·f)``, rounded toward zero (the account keeps the
  remainder, never a flipped sign). ``uniform_to_target`` finds the least ``f = k/resolution``
  that reaches a target health by bisection (health of a slice rises with ``f`` when the
  model is homogeneous and ``equity > discount(whole book)``; the answer is always checked).
* ``greedy_legs``: repeatedly closes the chunk (the next ``lot`` of a leg, or the rest of the
  leg if that lot alone gives no relief) with the largest
  ``relief / discount``, ``relief = MM(now) - MM(after the chunk)`` on the exact path,
  ``discount`` the chunk's marginal ``Σ rate·base/RATE_SCALE`` before the ceil (so 1-unit
  rounding does not rank chunks; 0 ranks first); ties go to the smaller instrument ids. Only
  chunks with ``relief > 0`` are candidates. When no single leg releases margin (two worst
  scenarios tie, e.g. both wings of a strangle) sets of 2 legs, a lot each, are tried, up to
  ``max_legs``. After each pick everything is recomputed. The chunk that reaches the target
  is trimmed to the least size (base units, bisection) that still reaches it. It stops at
  the target or when no chunk helps.
* ``compare``: both to the same target on the same account.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import combinations
from typing import TypeAlias

from liqeng.errors import InvalidArgument
from liqeng.ids import InstrumentId
from liqeng.ledger.model import Position
from liqeng.market.instruments import EuropeanOption, Instrument, SpotCollateral, check_instrument
from liqeng.risk.margin import AccountRisk, position_value
from liqeng.risk.models import MarginModel, MarketData, market_account_risk
from liqeng.units import RATE_SCALE, check_int, mul_div_down, mul_div_up

__all__ = [
    "Chunk",
    "ClosePlan",
    "Comparison",
    "compare",
    "greedy_legs",
    "uniform_slice",
    "uniform_to_target",
]


def _fraction(name: str, value: object, lo: Fraction | None = None) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, Fraction)):
        raise InvalidArgument(f"{name}={value!r} must be a Fraction or int, not a float")
    v = Fraction(value)
    if lo is not None and v <= lo:
        raise InvalidArgument(f"{name}={value} must be > {lo}")
    return v


def _check_positions(positions: Mapping[InstrumentId, Position]) -> None:
    if not isinstance(positions, Mapping):
        raise InvalidArgument(f"positions={positions!r} must be a mapping")
    for iid, pos in positions.items():
        if not isinstance(pos, Position):
            raise InvalidArgument(f"position={pos!r} in {iid} must be a Position")
        check_int(f"size in {iid}", pos.size)


def _trunc_mul(size: int, f: Fraction) -> int:
    """``trunc(size·f)``: toward zero."""
    q = abs(size) * f.numerator // f.denominator
    return q if size >= 0 else -q


def uniform_slice(
    positions: Mapping[InstrumentId, Position], fraction: Fraction | int
) -> dict[InstrumentId, int]:
    """Lyra's uniform slice: close ``trunc(size·fraction)`` of every leg (toward zero, so
    ``|closed| <= |size|`` and the sign is kept), ``0 <= fraction <= 1``. Legs closing 0
    are left out; keys in instrument-id order."""
    _check_positions(positions)
    f = _fraction("fraction", fraction)
    if not 0 <= f <= 1:
        raise InvalidArgument(f"fraction={fraction} must lie in [0, 1]")
    out: dict[InstrumentId, int] = {}
    for iid in sorted(positions):
        c = _trunc_mul(positions[iid].size, f)
        if c:
            out[iid] = c
    return out


Legs: TypeAlias = tuple[tuple[InstrumentId, int], ...]
"""``(instrument, signed size closed)`` pairs, in instrument-id order."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One greedy pick: ``legs``, ``(instrument, size)`` pairs closed at once (signed like
    the positions; one leg unless no single leg released margin), the maintenance margin
    it released and the discount it cost."""

    legs: Legs
    relief: int
    discount: int


@dataclass(frozen=True, slots=True)
class ClosePlan:
    """What a strategy closes and what follows: ``closed`` (signed sizes per leg, id
    order), ``chunks`` (greedy picks in order; empty for a uniform slice), ``discount`` paid
    to keepers, ``notional = Σ floor(|c|·index/10**sd)`` and ``closed_value = Σ base(c)``
    (module doc), the ``cash_delta = Σ value(c) - discount`` the account books, and its risk
    before and after. ``fraction`` is the uniform slice's (``None`` for greedy)."""

    closed: Mapping[InstrumentId, int]
    chunks: tuple[Chunk, ...]
    discount: int
    notional: int
    closed_value: int
    cash_delta: int
    risk_before: AccountRisk
    risk_after: AccountRisk
    target_health: Fraction
    fraction: Fraction | None = None

    @property
    def health(self) -> Fraction:
        """Health after the plan: ``risk_after.health``."""
        return self.risk_after.health

    @property
    def reached(self) -> bool:
        """``health >= target_health``."""
        return self.health >= self.target_health


@dataclass(frozen=True, slots=True)
class Comparison:
    """Both strategies on one account to one target health."""

    uniform: ClosePlan
    greedy: ClosePlan


@dataclass(frozen=True, slots=True)
class _Eval:
    risk: AccountRisk
    discount: int
    cash_delta: int
    exact_discount: Fraction  # Σ rate·base(c)/RATE_SCALE, before the ceil


@dataclass(frozen=True, slots=True)
class _Book:
    """An account's legs and what pricing them needs: ``cash`` (quote base units),
    ``positions``, ``instruments``, ``market``, margin ``model`` (``models`` per underlying
    override it), optional spot ``collateral``, ``discount_rate`` on an option's mark value
    and ``linear_discount_rate`` on a perp's or future's notional (``None``: the same as
    ``discount_rate``), parts per ``RATE_SCALE``, each in ``0..RATE_SCALE``."""

    cash: int
    positions: Mapping[InstrumentId, Position]
    instruments: Mapping[InstrumentId, Instrument]
    market: MarketData
    model: MarginModel
    discount_rate: int
    linear_discount_rate: int | None = None
    models: Mapping[str, MarginModel] = field(default_factory=dict)
    collateral: Mapping[SpotCollateral, int] | None = None

    def __post_init__(self) -> None:
        check_int("cash", self.cash)
        check_int("discount_rate", self.discount_rate, 0, RATE_SCALE)
        if self.linear_discount_rate is not None:
            check_int("linear_discount_rate", self.linear_discount_rate, 0, RATE_SCALE)
        _check_positions(self.positions)
        for iid, pos in self.positions.items():
            inst = self.instruments.get(iid)
            if inst is None:
                raise InvalidArgument(f"instrument={iid!r} has a position but no Instrument")
            check_instrument(inst)
            if pos.size and inst.underlying not in self.market.index_prices:
                raise InvalidArgument(f"no index price for underlying={inst.underlying!r}")
        if not isinstance(self.model, MarginModel):
            raise InvalidArgument(f"model={self.model!r} is not a MarginModel")
        if not isinstance(self.market, MarketData):
            raise InvalidArgument(f"market={self.market!r} must be MarketData")

    def legs(self) -> list[InstrumentId]:
        """Instrument ids of the non-zero positions, sorted."""
        return sorted(i for i, p in self.positions.items() if p.size)

    def _rate(self, inst: Instrument) -> int:
        if isinstance(inst, EuropeanOption) or self.linear_discount_rate is None:
            return self.discount_rate
        return self.linear_discount_rate

    def value(self, iid: InstrumentId, c: int) -> int:
        """``value(c)``: the closed part's position value, rounded down."""
        inst, pos = self.instruments[iid], self.positions[iid]
        m = self.market
        return position_value(
            inst,
            Position(c, pos.entry_price),
            m.index_prices[inst.underlying],
            m.now_ts,
            m.vol(inst.underlying),
            m.settlements.get(iid),
        )

    def notional(self, iid: InstrumentId, c: int) -> int:
        """``floor(|c|·index / 10**sd)``."""
        inst = self.instruments[iid]
        return mul_div_down(
            abs(c), self.market.index_prices[inst.underlying], 10**inst.size_decimals
        )

    def base(self, iid: InstrumentId, c: int) -> int:
        """``base(c)``: ``|value(c)|`` for an option, ``ceil(|c|·index/10**sd)`` else."""
        inst = self.instruments[iid]
        if isinstance(inst, EuropeanOption):
            return abs(self.value(iid, c))
        return mul_div_up(abs(c), self.market.index_prices[inst.underlying], 10**inst.size_decimals)

    def discount(self, iid: InstrumentId, c: int) -> int:
        """``discount(c) = ceil(rate·base(c) / RATE_SCALE)``."""
        if c == 0:
            return 0
        return mul_div_up(self._rate(self.instruments[iid]), self.base(iid, c), RATE_SCALE)

    def risk(self, closed: Mapping[InstrumentId, int]) -> _Eval:
        """Exact risk after closing ``closed``, the account paying the discounts."""
        disc = cash_delta = 0
        exact = Fraction(0)
        after: dict[InstrumentId, Position] = {}
        for iid, pos in self.positions.items():
            c = closed.get(iid, 0)
            if c:
                rate, base = self._rate(self.instruments[iid]), self.base(iid, c)
                d = mul_div_up(rate, base, RATE_SCALE)
                disc += d
                exact += Fraction(rate * base, RATE_SCALE)
                cash_delta += self.value(iid, c) - d
            after[iid] = Position(pos.size - c, pos.entry_price)
        risk = market_account_risk(
            self.cash + cash_delta,
            after,
            self.instruments,
            self.market,
            self.models,
            self.model,
            self.collateral,
        )
        return _Eval(risk, disc, cash_delta, exact)

    def plan(
        self,
        closed: Mapping[InstrumentId, int],
        chunks: tuple[Chunk, ...],
        target: Fraction,
        fraction: Fraction | None = None,
    ) -> ClosePlan:
        """The ``ClosePlan`` of ``closed``."""
        kept = {i: closed[i] for i in sorted(closed) if closed[i]}
        ev = self.risk(kept)
        return ClosePlan(
            closed=kept,
            chunks=chunks,
            discount=ev.discount,
            notional=sum(self.notional(i, c) for i, c in kept.items()),
            closed_value=sum(self.base(i, c) for i, c in kept.items()),
            cash_delta=ev.cash_delta,
            risk_before=self.risk({}).risk,
            risk_after=ev.risk,
            target_health=target,
            fraction=fraction,
        )


def _check_closed(book: _Book, closed: Mapping[InstrumentId, int]) -> None:
    for iid, c in closed.items():
        pos = book.positions.get(iid)
        if pos is None:
            raise InvalidArgument(f"instrument={iid!r} is closed but has no position")
        check_int(f"closed size in {iid}", c)
        if c * pos.size < 0 or abs(c) > abs(pos.size):
            raise InvalidArgument(f"closed size={c} in {iid} exceeds or flips size={pos.size}")


def _least(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
    """Least ``k`` in ``(lo, hi]`` with ``ok(k)``, given ``ok(hi)``; bisection (assumes
    monotone, always returns a ``k`` with ``ok(k)``)."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _uniform(book: _Book, target_health: Fraction | int, resolution: int) -> ClosePlan:
    target = _fraction("target_health", target_health, Fraction(0))
    check_int("resolution", resolution, 1)

    def closed_at(k: int) -> dict[InstrumentId, int]:
        return uniform_slice(book.positions, Fraction(k, resolution))

    def ok(k: int) -> bool:
        return book.risk(closed_at(k)).risk.health >= target

    if ok(0):
        k = 0
    elif not ok(resolution):
        k = resolution
    else:
        k = _least(0, resolution, ok)
    return book.plan(closed_at(k), (), target, Fraction(k, resolution))


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


def _add(closed: Mapping[InstrumentId, int], legs: Legs) -> dict[InstrumentId, int]:
    out = dict(closed)
    for iid, c in legs:
        out[iid] = out.get(iid, 0) + c
    return out


def _greedy(
    book: _Book,
    target_health: Fraction | int,
    lots: Mapping[InstrumentId, int] | None,
    trim: bool,
    max_legs: int,
) -> ClosePlan:
    target = _fraction("target_health", target_health, Fraction(0))
    check_int("max_legs", max_legs, 1)
    lot_of: dict[InstrumentId, int] = {}
    for iid, lot in (lots or {}).items():
        if iid not in book.instruments:
            raise InvalidArgument(f"lots names instrument={iid!r}, which is unknown")
        lot_of[iid] = check_int(f"lot of {iid}", lot, 1)
    closed: dict[InstrumentId, int] = {}
    chunks: list[Chunk] = []
    now = book.risk(closed)

    def candidates(k: int) -> list[Legs]:
        rem = {i: book.positions[i].size - closed.get(i, 0) for i in book.legs()}
        step = {
            i: _sign(r) * min(lot_of.get(i, 10 ** book.instruments[i].size_decimals), abs(r))
            for i, r in rem.items()
            if r
        }
        return [tuple((i, step[i]) for i in combo) for combo in combinations(sorted(step), k)]

    while now.risk.health < target:
        best: tuple[tuple[int, Fraction, tuple[str, ...]], Chunk, _Eval] | None = None
        for k in range(1, max_legs + 1):
            for legs in candidates(k):
                tries = [legs]
                if k == 1:  # the lot alone gives no relief: try the rest of the leg
                    (iid, c), rest = (
                        legs[0],
                        book.positions[legs[0][0]].size - closed.get(legs[0][0], 0),
                    )
                    if c != rest:
                        tries.append(((iid, rest),))
                for legs_ in tries:
                    ev = book.risk(_add(closed, legs_))
                    relief = now.risk.maintenance_margin - ev.risk.maintenance_margin
                    if relief <= 0:
                        continue
                    cost = ev.exact_discount - now.exact_discount
                    ids = tuple(i for i, _ in legs_)
                    key = (0, Fraction(-relief), ids) if cost <= 0 else (1, -relief / cost, ids)
                    if best is None or key < best[0]:
                        best = (key, Chunk(legs_, relief, ev.discount - now.discount), ev)
                    break
            if best is not None:
                break  # more legs at once only when no smaller set releases margin
        if best is None:
            break  # no chunk releases margin: the target is out of reach
        _, chunk, ev = best
        big = max(abs(c) for _, c in chunk.legs)
        if trim and ev.risk.health >= target and big > 1:

            def part(m: int, legs: Legs = chunk.legs, big: int = big) -> Legs:
                return tuple((i, _trunc_mul(c, Fraction(m, big))) for i, c in legs)

            def reaches(m: int, closed: Mapping[InstrumentId, int] = closed) -> bool:
                return book.risk(_add(closed, part(m))).risk.health >= target

            m = _least(0, big, reaches)
            if m != big:
                legs_ = tuple((i, c) for i, c in part(m) if c)
                ev = book.risk(_add(closed, legs_))
                chunk = Chunk(
                    legs_,
                    now.risk.maintenance_margin - ev.risk.maintenance_margin,
                    ev.discount - now.discount,
                )
        closed = _add(closed, chunk.legs)
        chunks.append(chunk)
        now = ev
    _check_closed(book, closed)
    return book.plan(closed, tuple(chunks), target)


def uniform_to_target(
    positions: Mapping[InstrumentId, Position],
    instruments: Mapping[InstrumentId, Instrument],
    market: MarketData,
    model: MarginModel,
    discount_rate: int,
    target_health: Fraction | int,
    *,
    cash: int,
    linear_discount_rate: int | None = None,
    models: Mapping[str, MarginModel] | None = None,
    collateral: Mapping[SpotCollateral, int] | None = None,
    resolution: int = RATE_SCALE,
) -> ClosePlan:
    """The least uniform slice ``f = k/resolution`` (``k`` by bisection over
    ``0..resolution``) whose health after (discount paid) is ``>= target_health``; ``f = 0``
    if already there, ``f = 1`` (``reached`` false) if even closing everything falls short.
    Arguments as ``greedy_legs``."""
    book = _Book(
        cash,
        positions,
        instruments,
        market,
        model,
        discount_rate,
        linear_discount_rate,
        models or {},
        collateral,
    )
    return _uniform(book, target_health, resolution)


def greedy_legs(
    positions: Mapping[InstrumentId, Position],
    instruments: Mapping[InstrumentId, Instrument],
    market: MarketData,
    model: MarginModel,
    discount_rate: int,
    target_health: Fraction | int,
    *,
    cash: int,
    linear_discount_rate: int | None = None,
    models: Mapping[str, MarginModel] | None = None,
    collateral: Mapping[SpotCollateral, int] | None = None,
    lots: Mapping[InstrumentId, int] | None = None,
    trim: bool = True,
    max_legs: int = 2,
) -> ClosePlan:
    """Greeks-aware choice (module doc): close the chunk of largest ``relief/discount``
    until ``health >= target_health``. ``lots[iid]`` is a leg's chunk in base units
    (default ``10**size_decimals``, one whole token); ``trim`` shrinks the final chunk to the
    least size that reaches the target; ``max_legs`` bounds the legs closed together when
    no single leg releases margin. Deterministic: ties go to the smaller id.

    ``positions``, ``instruments``, ``market`` and the margin ``model`` (``models`` per
    underlying override it; optional spot ``collateral``) describe the account with
    ``cash`` (quote base units); ``discount_rate`` applies to an option's mark value and
    ``linear_discount_rate`` to a perp's or future's notional (``None``: ``discount_rate``),
    parts per ``RATE_SCALE`` in ``0..RATE_SCALE``. ``target_health > 0`` (int or Fraction).
    """
    book = _Book(
        cash,
        positions,
        instruments,
        market,
        model,
        discount_rate,
        linear_discount_rate,
        models or {},
        collateral,
    )
    return _greedy(book, target_health, lots, trim, max_legs)


def compare(
    positions: Mapping[InstrumentId, Position],
    instruments: Mapping[InstrumentId, Instrument],
    market: MarketData,
    model: MarginModel,
    discount_rate: int,
    target_health: Fraction | int,
    *,
    cash: int,
    linear_discount_rate: int | None = None,
    models: Mapping[str, MarginModel] | None = None,
    collateral: Mapping[SpotCollateral, int] | None = None,
    lots: Mapping[InstrumentId, int] | None = None,
    resolution: int = RATE_SCALE,
    max_legs: int = 2,
) -> Comparison:
    """``uniform_to_target`` and ``greedy_legs`` on one account to ``target_health``
    (arguments as ``greedy_legs``)."""
    book = _Book(
        cash,
        positions,
        instruments,
        market,
        model,
        discount_rate,
        linear_discount_rate,
        models or {},
        collateral,
    )
    return Comparison(
        uniform=_uniform(book, target_health, resolution),
        greedy=_greedy(book, target_health, lots, True, max_legs),
    )
