"""The last two waterfall stages as ledger postings: socialised loss and auto-deleveraging.

Both cover a liquidation's *uncovered* bad debt inside the liquidation's own transaction.
They are pure: the caller reads balances and positions from the ledger and passes them in;
what comes back are postings and position changes to append to the transaction, and the
figures they imply. All amounts are integer quote base units; prices are quote base units
per whole token; sizes are instrument base units (``size_decimals`` digits, ``U = 10**sd``).

**Socialised loss** (``socialised_loss``; Drift, GMX, Lyra's ``socializeLoss``). ``settle``
books what the funded stages cannot pay by crediting the liquidated account and debiting
``system.bad_debt``. Holders then repay that entry pro rata to their quote balance: holder
``i`` pays ``h_i`` to the bad-debt account. Haircuts come from ``waterfall.socialise``:
``h_i = floor(L·b_i/B)`` and the ``L − Σ floor`` leftover units go one each to the largest
remainders ``L·b_i mod B``, ties to the smaller account id (deterministic). When the holders
hold less than the loss (``B < L``) each pays its whole balance and the rest stays uncovered.

**Auto-deleveraging** (``deleverage``; Hyperliquid's ranked ADL, dYdX's deleveraging at the
bankruptcy price). The liquidated account ``L`` holds ``s`` (signed) at entry ``e``; closing it
all at mark ``m`` leaves ``loss`` uncovered. Instead, slices of ``s`` close directly against
ranked *profitable opposite* positions, each at a price worse than mark for the counterparty
by ``δ_i`` per whole token, so the counterparty gives up ``h_i ≈ q_i·δ_i/U`` of its profit
and ``L`` receives exactly that much more than at mark.

1. Rank: ``"hyperliquid"`` by ``waterfall.adl_ranking`` (``(mark/entry)·(notional/account
   value)`` descending, positive account value only), ``"dydx"`` by
   ``waterfall.adl_ranking_dydx`` (account-id order rotated to ``start``); unprofitable
   positions are skipped in both (they have no profit to give up).
2. Slice: walk the ranking, slice ``q_i = min(|size_i|, |s| − taken)``: at most ``L``'s own
   size is deleveraged and no counterparty closes more than it holds (no sign flips). A
   slice whose whole profit ``floor(q_i·π_i/U)`` is 0 is skipped (it takes none of ``s``).
3. Rate: counterparty ``i``'s unrealised profit per whole token is ``π_i = |m − e_i|``; it
   gives up ``δ_i = min(Δ, π_i)``, with one uniform rate ``Δ`` (the bankruptcy spread: a
   uniform bankruptcy price ``m ± Δ``, clipped to each counterparty's entry so nobody
   realises a loss). ``Δ`` is the smallest integer with ``Σ floor(q_i·δ_i/U) >= loss``; if
   even ``Δ = max π`` falls short, every slice closes at its holder's entry, covering
   ``Σ floor(q_i·π_i/U)`` and leaving the rest ``uncovered`` (not enough profit opposite).
4. As far as needed: slices close in rank order with ``h_i = floor(q_i·δ_i/U)``; the slice
   that reaches ``loss`` shrinks to ``q' = ceil(need·U/δ_i)`` at ``δ' = ceil(need·U/q')``
   (``<= δ_i``) and gives ``h = need``. Slices that would give 0 are not closed. So
   ``Σ h_i == covered``, ``covered == min(loss, Σ floor(q_i·π_i/U))`` and each ``h_i <=
   floor(q_i·π_i/U)``, the profit the slice would realise at mark.

Fills are built by ``market.trading.fill`` at each slice's price (futures-style, realised
PnL through ``settlement``). Trade rounding (``floor`` per fill, and an integer price that
cannot express ``h_i`` exactly) would make the transfer inexact by a unit or two, so each
side gets a *true-up* posting against ``settlement`` that makes it exact:

* counterparty ``i`` realises exactly ``M_i − h_i``, where ``M_i`` is what closing its
  slice at mark realises (``roll_position`` at ``m``);
* ``L`` realises exactly ``R0 + covered`` over the ADL fills *and* the caller's close of
  ``remaining`` to a keeper at mark in one fill, where ``R0`` is what closing all of ``s``
  at mark in one fill realises (the close that left ``loss``).

The settlement account therefore pays exactly what it would pay for those closes at mark:
ADL is the mark close plus exact transfers ``h_i`` from counterparties to ``L``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from liqeng.errors import InvalidArgument
from liqeng.ids import AccountId, check_id
from liqeng.ledger.model import Position, PositionChange, Posting
from liqeng.liquidation.waterfall import (
    AdlCandidate,
    adl_ranking,
    adl_ranking_dydx,
    socialise,
)
from liqeng.market.instruments import DatedFuture, EuropeanOption, Instrument, Perpetual
from liqeng.market.trading import fill, roll_position
from liqeng.units import DECIMALS_MAX, PRICE_MAX, Asset, check_int

__all__ = [
    "RANKINGS",
    "AdlSlice",
    "Deleverage",
    "SocialisedLoss",
    "deleverage",
    "socialised_loss",
]

RANKINGS: Final = ("hyperliquid", "dydx")


# ------------------------------------------------------------------ socialised loss


@dataclass(frozen=True, slots=True)
class SocialisedLoss:
    """``Σ haircuts == covered``, ``covered + uncovered == loss``, ``covered == min(loss,
    Σ balances)``. ``haircuts`` holds every holder (zeros included), sorted by id;
    ``postings`` move each non-zero haircut from its holder to the bad-debt account."""

    loss: int
    haircuts: Mapping[AccountId, int]
    covered: int
    uncovered: int
    postings: tuple[Posting, ...]


def socialised_loss(
    uncovered: int, holders: Mapping[AccountId, int], bad_debt: AccountId, quote: Asset
) -> SocialisedLoss:
    """Haircut ``holders`` (account -> quote balance, ``>= 0``) pro rata to repay
    ``uncovered`` to ``bad_debt`` (module doc). The caller passes user accounts only,
    without the liquidated account and the keeper; ``bad_debt`` may not be a holder."""
    check_int("uncovered", uncovered, 0)
    check_id("bad_debt", bad_debt)
    if not isinstance(quote, Asset):
        raise InvalidArgument(f"quote={quote!r} must be an Asset")
    if not isinstance(holders, Mapping):
        raise InvalidArgument(f"holders={holders!r} must be a mapping of account -> balance")
    if bad_debt in holders:
        raise InvalidArgument(f"bad_debt={bad_debt!r} cannot be one of the holders")
    for a, b in holders.items():
        check_id("holder", a)
        check_int(f"balance[{a}]", b, 0)
    total = sum(holders.values())
    covered = min(uncovered, total)
    if covered == total:  # everyone pays everything (also: nothing to pay, or no holders)
        cuts = {AccountId(a): holders[a] for a in sorted(holders)}
        if covered == 0:
            cuts = dict.fromkeys(cuts, 0)
    else:
        cuts = socialise(covered, holders)
    postings = [Posting(a, quote.units(-h)) for a, h in cuts.items() if h]
    if covered:
        postings.append(Posting(bad_debt, quote.units(covered)))
    return SocialisedLoss(uncovered, cuts, covered, uncovered - covered, tuple(postings))


# ------------------------------------------------------------------ auto-deleveraging


@dataclass(frozen=True, slots=True)
class AdlSlice:
    """One counterparty's close: its position changes by ``size`` (signed, opposite its
    sign, never past zero) at ``price``; it gives up ``haircut`` of the ``profit`` this
    slice would realise at mark (``haircut <= profit``)."""

    account: AccountId
    size: int
    price: int
    haircut: int
    profit: int


@dataclass(frozen=True, slots=True)
class Deleverage:
    """The ADL of one instrument position (module doc).

    ``Σ slice.haircut == covered``, ``covered + uncovered == loss``; ``closed`` is the
    (unsigned) size of the liquidated position closed by ADL and ``remaining`` what is left
    of it (``None``: nothing), for the caller to close to a keeper at mark in one ``fill``.
    ``rate`` is the uniform bankruptcy spread ``Δ`` (0 when nothing closed).
    """

    loss: int
    slices: tuple[AdlSlice, ...]
    postings: tuple[Posting, ...]
    position_changes: tuple[PositionChange, ...]
    closed: int
    remaining: Position | None
    covered: int
    uncovered: int
    rate: int


def _realised(old: Position | None, delta: int, price: int, sd: int) -> int:
    return roll_position(old, delta, price, sd)[2]


def deleverage(
    loss: int,
    instrument: Instrument,
    liquidated: tuple[AccountId, Position],
    candidates: Sequence[tuple[AccountId, Position, int]],
    mark: int,
    size_decimals: int,
    settlement: AccountId,
    quote: Asset,
    ranking: str = "hyperliquid",
    start: int = 0,
) -> Deleverage:
    """Cover ``loss`` by closing ``liquidated``'s position in ``instrument`` against
    ``candidates`` ``(account, position, account_value)`` (module doc).

    ``candidates`` are opposite positions in ``instrument`` (unprofitable ones are fine and
    skipped); ``mark`` is the price at which closing the whole position leaves ``loss``;
    ``start`` is the dYdX rotation (the caller's seeded draw), ignored by Hyperliquid.
    """
    check_int("loss", loss, 0)
    if isinstance(instrument, EuropeanOption):
        raise InvalidArgument(
            f"instrument={instrument.id!r} is an option: ADL closes perpetuals and dated "
            "futures only"
        )
    if not isinstance(instrument, Perpetual | DatedFuture):
        raise InvalidArgument(f"instrument={instrument!r} must be a Perpetual or DatedFuture")
    check_int("size_decimals", size_decimals, 0, DECIMALS_MAX)
    if size_decimals != instrument.size_decimals:
        raise InvalidArgument(
            f"size_decimals={size_decimals} differs from {instrument.id}'s "
            f"{instrument.size_decimals}"
        )
    if not isinstance(quote, Asset) or quote != instrument.quote:
        raise InvalidArgument(f"quote={quote!r} differs from {instrument.id}'s {instrument.quote}")
    check_int("mark", mark, 1, PRICE_MAX)
    check_id("settlement", settlement)
    if ranking not in RANKINGS:
        raise InvalidArgument(f"ranking={ranking!r} is not one of {RANKINGS}")
    check_int("start", start, 0)
    if not (isinstance(liquidated, tuple) and len(liquidated) == 2):
        raise InvalidArgument(f"liquidated={liquidated!r} must be (account, Position)")
    who, pos = liquidated
    check_id("liquidated account", who)
    if not isinstance(pos, Position) or check_int(f"size of {who}", pos.size) == 0:
        raise InvalidArgument(f"liquidated position={pos!r} of {who} must be a non-zero Position")
    check_int(f"entry_price of {who}", pos.entry_price, 0, PRICE_MAX)
    if who == settlement:
        raise InvalidArgument(f"liquidated account={who!r} is the settlement account")
    side = 1 if pos.size > 0 else -1
    sd, unit = size_decimals, 10**size_decimals

    held: dict[AccountId, Position] = {}
    pool: list[AdlCandidate] = []
    for item in candidates:
        if not (isinstance(item, tuple) and len(item) == 3):
            raise InvalidArgument(f"candidate={item!r} must be (account, Position, account_value)")
        acct, cpos, value = item
        check_id("candidate", acct)
        if acct in (who, settlement):
            raise InvalidArgument(f"candidate={acct!r} is the liquidated or the settlement account")
        if acct in held:
            raise InvalidArgument(f"candidate={acct!r} appears twice")
        if not isinstance(cpos, Position) or check_int(f"size of {acct}", cpos.size) == 0:
            raise InvalidArgument(f"position={cpos!r} of candidate {acct} must be non-zero")
        if (cpos.size > 0) == (side > 0):
            raise InvalidArgument(
                f"candidate {acct} holds size={cpos.size} in {instrument.id}, the same side as "
                f"the liquidated {who} (size={pos.size}): ADL needs opposite positions"
            )
        held[acct] = cpos
        pool.append(AdlCandidate(acct, cpos.size, cpos.entry_price, mark, value))

    if ranking == "hyperliquid":
        ranked = adl_ranking(pool, side, sd)
    else:
        ranked = tuple(c for c in adl_ranking_dydx(pool, side, start) if c.is_profitable)

    # slices: (account, q, π) in rank order, at most |s| in all
    cuts: list[tuple[AccountId, int, int]] = []
    taken = 0
    for c in ranked:
        q = min(abs(c.size), abs(pos.size) - taken)
        if q <= 0:
            break
        pi = abs(mark - c.entry_price)
        if q * pi // unit == 0:
            continue  # too small to give up a unit even at its entry: never closed
        cuts.append((c.account, q, pi))
        taken += q

    def coverage(rate: int) -> int:
        return sum(q * min(rate, pi) // unit for _, q, pi in cuts)

    if loss == 0 or not cuts:
        return Deleverage(loss, (), (), (), 0, pos, 0, loss, 0)
    top = max(pi for _, _, pi in cuts)
    target = min(loss, coverage(top))
    lo, hi = 1, top  # smallest rate with coverage >= target
    while lo < hi:
        mid = (lo + hi) // 2
        if coverage(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    rate = lo

    slices: list[AdlSlice] = []
    postings: list[Posting] = []
    changes: list[PositionChange] = []
    mine: Position | None = pos
    mine_pnl = 0
    covered = 0
    for acct, q, pi in cuts:
        need = target - covered
        if need == 0:
            break
        delta = min(rate, pi)
        h = q * delta // unit
        if h == 0:
            continue  # this slice would give nothing: leave it open
        if h >= need:
            q = -(-(need * unit) // delta)
            delta = -(-(need * unit) // q)
            h = need
        price = mark + side * delta  # worse than mark for the counterparty, <= its entry
        theirs = held[acct]
        sign_c = 1 if theirs.size > 0 else -1
        their_delta = -sign_c * q  # toward zero
        profit = _realised(theirs, their_delta, mark, sd)
        buyer, seller = (acct, who) if side > 0 else (who, acct)
        f = fill(
            buyer=buyer,
            seller=seller,
            instrument=instrument.id,
            size=q,
            price=price,
            size_decimals=sd,
            premium=False,
            quote=quote,
            buyer_position=theirs if buyer == acct else mine,
            seller_position=theirs if seller == acct else mine,
            settlement=settlement,
        )
        postings += f.postings
        changes += f.position_changes
        true_up = (profit - h) - _realised(theirs, their_delta, price, sd)
        if true_up:
            postings += [
                Posting(acct, quote.units(true_up)),
                Posting(settlement, quote.units(-true_up)),
            ]
        size, entry, pnl = roll_position(mine, side * -q, price, sd)
        mine_pnl += pnl
        mine = Position(size, entry) if size else None
        slices.append(AdlSlice(AccountId(acct), their_delta, price, h, profit))
        covered += h

    r0 = _realised(pos, -pos.size, mark, sd)
    rest = _realised(mine, -mine.size, mark, sd) if mine is not None else 0
    true_up = r0 + covered - rest - mine_pnl
    if true_up:
        postings += [Posting(who, quote.units(true_up)), Posting(settlement, quote.units(-true_up))]
    closed = abs(pos.size) - (abs(mine.size) if mine is not None else 0)
    return Deleverage(
        loss,
        tuple(slices),
        tuple(postings),
        tuple(changes),
        closed,
        mine,
        covered,
        loss - covered,
        rate if slices else 0,
    )
