"""Loss waterfall, socialised loss and auto-deleveraging (ADL): what moves, never how.

A liquidation first spends the account's own collateral and its liquidation penalty; what
is still missing is the loss ``L`` (integer quote units). ``Waterfall`` passes ``L`` down a
configurable chain of stages, each paying ``min(remaining, capacity)``:

* ``insurance_fund``: the protocol's first-loss fund (dYdX, Hyperliquid HLP);
* ``backstop_pool``: depositors' pool (Liquity's Stability Pool, ``backstop.py``);
* ``socialised``: a pro-rata haircut over holders (``socialise``), booked as a named
  bad-debt ledger entry;
* ``adl``: closing profitable opposite positions at the bankruptcy price (``adl_plan``).

``Σ covers + uncovered == L`` always; ``uncovered`` is reported, never dropped, so the
mechanism books it to the bad-debt account. Pure functions: no ledger, clock or random.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

from liqeng.errors import InvalidArgument
from liqeng.ids import AccountId, check_id
from liqeng.units import PRICE_MAX, check_int

__all__ = [
    "STAGES",
    "AdlCandidate",
    "AdlClose",
    "AdlPlan",
    "Cover",
    "Waterfall",
    "WaterfallResult",
    "adl_index",
    "adl_plan",
    "adl_ranking",
    "adl_ranking_dydx",
    "socialise",
]

STAGES: Final = ("insurance_fund", "backstop_pool", "socialised", "adl")
_BOUNDED: Final = frozenset({"insurance_fund", "backstop_pool"})


@dataclass(frozen=True, slots=True)
class Cover:
    """How much one stage paid towards the loss."""

    stage: str
    amount: int


@dataclass(frozen=True, slots=True)
class WaterfallResult:
    """``Σ cover.amount + uncovered == loss``; ``uncovered`` is the bad debt to book."""

    loss: int
    covers: tuple[Cover, ...]
    uncovered: int

    def paid_by(self, stage: str) -> int:
        return sum(c.amount for c in self.covers if c.stage == stage)


@dataclass(frozen=True, slots=True)
class Waterfall:
    """An ordered chain of distinct stage names from ``STAGES``.

    ``insurance_fund`` and ``backstop_pool`` need an int capacity; ``socialised`` and
    ``adl`` may take ``None`` (unbounded: a terminal stage that absorbs any remainder).
    """

    stages: tuple[str, ...] = ("insurance_fund", "backstop_pool", "socialised")

    def __post_init__(self) -> None:
        if not isinstance(self.stages, tuple) or not self.stages:
            raise InvalidArgument(f"stages={self.stages!r} must be a non-empty tuple")
        for s in self.stages:
            if s not in STAGES:
                raise InvalidArgument(f"stage={s!r} is not one of {STAGES}")
        if len(set(self.stages)) != len(self.stages):
            raise InvalidArgument(f"stages={self.stages!r} repeat a stage")

    def apply(self, loss: int, capacities: Mapping[str, int | None]) -> WaterfallResult:
        """``cover_i = min(L − Σ_{j<i} cover_j, capacity_i)`` in chain order."""
        check_int("loss", loss, 0)
        for k in capacities:
            if k not in self.stages:
                raise InvalidArgument(f"capacity for stage={k!r} not in the chain {self.stages}")
        caps: list[int | None] = []
        for s in self.stages:
            if s not in capacities:
                raise InvalidArgument(f"capacity for stage={s!r} is missing")
            cap = capacities[s]
            if cap is None:
                if s in _BOUNDED:
                    raise InvalidArgument(f"capacity for stage={s!r} must be an int, not None")
                caps.append(None)
            else:
                caps.append(check_int(f"capacity[{s}]", cap, 0))
        remaining = loss
        covers: list[Cover] = []
        for s, cap in zip(self.stages, caps, strict=True):
            paid = remaining if cap is None else min(remaining, cap)
            covers.append(Cover(s, paid))
            remaining -= paid
        return WaterfallResult(loss, tuple(covers), remaining)


def socialise(loss: int, holders: Mapping[AccountId, int]) -> dict[AccountId, int]:
    """Pro-rata haircut by largest remainder: ``h_i = floor(L·b_i/B)``, then the
    ``L − Σ h_i`` leftover units go one each to the largest remainders ``L·b_i mod B``
    (ties: smaller account id first). ``Σ h_i == L`` and ``h_i <= b_i``; raises if
    ``L > B = Σ b_i``. Returns every holder (zero haircuts included), sorted by id."""
    check_int("loss", loss, 0)
    bal: dict[AccountId, int] = {}
    for a in sorted(holders):
        acct = AccountId(check_id("holder", a))
        bal[acct] = check_int(f"balance[{acct}]", holders[a], 0)
    total = sum(bal.values())
    if loss > total:
        raise InvalidArgument(f"loss={loss} exceeds the holders' total balance {total}")
    if loss == 0:
        return dict.fromkeys(bal, 0)
    cuts = {a: loss * b // total for a, b in bal.items()}
    left = loss - sum(cuts.values())
    order = sorted(bal, key=lambda a: (-(loss * bal[a] % total), a))
    for a in order[:left]:
        cuts[a] += 1
    return cuts


@dataclass(frozen=True, slots=True)
class AdlCandidate:
    """An open position that could be deleveraged: signed ``size`` (instrument base units,
    ``size_decimals`` digits), prices in quote units per whole token, ``account_value`` in
    quote units."""

    account: AccountId
    size: int
    entry_price: int
    mark_price: int
    account_value: int

    def __post_init__(self) -> None:
        check_id("account", self.account)
        check_int("size", self.size)
        check_int("entry_price", self.entry_price, 1, PRICE_MAX)
        check_int("mark_price", self.mark_price, 1, PRICE_MAX)
        check_int("account_value", self.account_value)

    @property
    def is_profitable(self) -> bool:
        return (self.size > 0 and self.mark_price > self.entry_price) or (
            self.size < 0 and self.mark_price < self.entry_price
        )


def adl_index(c: AdlCandidate, size_decimals: int = 0) -> Fraction:
    """Hyperliquid's ADL index, exact: ``(mark/entry)·(notional/account_value)`` with
    ``notional = |size|·mark/10**size_decimals``. The docs write ``mark/entry`` (a long's
    pnl factor); for a short we use ``entry/mark`` so the index grows with unrealised pnl
    on both sides, as the docs' "ranked by unrealized pnl and leverage" says."""
    if c.account_value <= 0:
        raise InvalidArgument(f"account_value={c.account_value} of {c.account} must be > 0")
    check_int("size_decimals", size_decimals, 0, 36)
    notional = Fraction(abs(c.size) * c.mark_price, 10**size_decimals)
    pnl = (
        Fraction(c.mark_price, c.entry_price)
        if c.size > 0
        else Fraction(c.entry_price, c.mark_price)
    )
    return pnl * notional / c.account_value


def _side(losing_side: int) -> int:
    if losing_side not in (1, -1):
        raise InvalidArgument(f"losing_side={losing_side!r} must be 1 (long) or -1 (short)")
    return losing_side


def adl_ranking(
    candidates: Sequence[AdlCandidate], losing_side: int, size_decimals: int = 0
) -> tuple[AdlCandidate, ...]:
    """Hyperliquid: profitable positions opposite the bankrupt one (``losing_side``: 1 long,
    -1 short) with ``account_value > 0``, by ``adl_index`` descending, ties by account id."""
    side = _side(losing_side)
    eligible = [
        c for c in candidates if c.size * side < 0 and c.is_profitable and c.account_value > 0
    ]
    return tuple(sorted(eligible, key=lambda c: (-adl_index(c, size_decimals), c.account)))


def adl_ranking_dydx(
    candidates: Sequence[AdlCandidate], losing_side: int, start: int
) -> tuple[AdlCandidate, ...]:
    """dYdX v4 (``deleveraging.go``): every opposite-side position, iterated from a
    pseudo-random index. anchors.md documents no profit/leverage order for v4 (only the
    random start), so the caller supplies ``start`` from its seeded generator and we rotate
    the account-id order to begin at ``start % n``."""
    side = _side(losing_side)
    check_int("start", start, 0)
    opp = sorted((c for c in candidates if c.size * side < 0), key=lambda c: c.account)
    if not opp:
        return ()
    k = start % len(opp)
    return tuple(opp[k:] + opp[:k])


@dataclass(frozen=True, slots=True)
class AdlClose:
    """Reduce ``account``'s position by ``size`` (signed change, opposite its sign) at the
    bankruptcy ``price``; ``haircut`` is the loss this close covers (quote units)."""

    account: AccountId
    size: int
    price: int
    haircut: int


@dataclass(frozen=True, slots=True)
class AdlPlan:
    """``Σ close.haircut == covered``; ``covered + uncovered == loss``."""

    loss: int
    closes: tuple[AdlClose, ...]
    covered: int
    uncovered: int

    @property
    def closed_size(self) -> int:
        return sum(abs(c.size) for c in self.closes)


def adl_plan(
    loss: int,
    bankruptcy_price: int,
    ranked: Sequence[AdlCandidate],
    size_decimals: int = 0,
) -> AdlPlan:
    """Close ranked positions at the bankruptcy price until ``loss`` is covered.

    Each closed unit costs its holder ``Δ = |mark − bankruptcy_price|`` per whole token
    (they close at the bankruptcy price, not at mark), so the smallest total size is
    ``Q = ceil(loss·10**sd / Δ)``: positions close in ranked order, ``min(|size|, Q −
    closed)`` each, the last one partially. Haircuts use cumulative rounding down (a
    cover is what the pool *receives*), ``H(q) = min(loss, floor(q·Δ/10**sd))`` and
    ``haircut_k = H(q_≤k) − H(q_<k)``, so they sum exactly to ``covered``; ``Q`` units
    cover ``loss`` and ``Q − 1`` units would cover strictly less.
    All candidates must share one side and one mark, with the bankruptcy price on the
    losing side of that mark (long holders: ``bp < mark``; short holders: ``bp > mark``).
    """
    check_int("loss", loss, 0)
    check_int("bankruptcy_price", bankruptcy_price, 1, PRICE_MAX)
    check_int("size_decimals", size_decimals, 0, 36)
    live = [c for c in ranked if c.size != 0]
    if loss == 0 or not live:
        return AdlPlan(loss, (), 0, loss)
    mark = live[0].mark_price
    sign = 1 if live[0].size > 0 else -1
    for c in live:
        if c.mark_price != mark:
            raise InvalidArgument(f"mark_price={c.mark_price} of {c.account} differs from {mark}")
        if (c.size > 0) != (sign > 0):
            raise InvalidArgument(f"size={c.size} of {c.account}: candidates mix sides")
    delta = (mark - bankruptcy_price) * sign
    if delta <= 0:
        raise InvalidArgument(
            f"bankruptcy_price={bankruptcy_price} must be on the losing side of mark={mark} "
            f"for {'long' if sign > 0 else 'short'} holders"
        )
    unit = 10**size_decimals
    need = -(-(loss * unit) // delta)  # Q = ceil(L·10**sd/Δ)
    closes: list[AdlClose] = []
    closed = 0
    covered = 0
    for c in live:
        q = min(abs(c.size), need - closed)
        if q <= 0:
            break
        closed += q
        h = min(loss, closed * delta // unit)
        closes.append(AdlClose(c.account, -sign * q, bankruptcy_price, h - covered))
        covered = h
    return AdlPlan(loss, tuple(closes), covered, loss - covered)
