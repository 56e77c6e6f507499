"""Trade arithmetic: the postings and position changes of one fill between two accounts.

A fill moves ``size`` base units of an instrument from ``seller`` to ``buyer`` at
``price`` (price units: quote base units per whole token; ``sd`` = size decimals).

- **Premium style** (options): the buyer pays ``ceil(size * price / 10**sd)``, the
  seller receives ``floor(...)``, and the rounding dust (0 or 1 unit) stays with the
  settlement account; a position's value is then ``size * mark``.
- **Futures style** (perpetuals, futures): no cash moves on opening; each side's entry
  price becomes the size-weighted average (rounded against the holder: up for longs, down
  for shorts). Reducing realises ``pnl = floor(closed * (price - entry) / 10**sd)`` for
  the holder (``closed`` signed like the old position), paid from / to the settlement
  account, which nets realised PnL between holders whose entries differ.

Rounding is always against the account whose position changes, so the protocol never
owes a fraction it did not receive.
"""

from __future__ import annotations

from dataclasses import dataclass

from liqeng.errors import InvalidArgument
from liqeng.ids import AccountId, InstrumentId
from liqeng.ledger.model import Position, PositionChange, Posting
from liqeng.units import PRICE_MAX, Asset, check_int, mul_div_down, mul_div_up

__all__ = ["Fill", "fill", "roll_position"]


@dataclass(frozen=True, slots=True)
class Fill:
    postings: tuple[Posting, ...]
    position_changes: tuple[PositionChange, ...]


def roll_position(old: Position | None, delta: int, price: int, sd: int) -> tuple[int, int, int]:
    """Futures-style update of one holder: returns ``(new_size, new_entry, realised_pnl)``.

    Increase: ``entry' = (s*e + d*p) / (s+d)`` rounded against the holder; reduce: ``pnl =
    floor(-d * (p - e) / 10**sd)``, entry unchanged; flip: close all, open the rest at p.
    """
    s, e = (old.size, old.entry_price) if old else (0, 0)
    new = s + delta
    if s == 0 or (s > 0) == (delta > 0):
        num, den = s * e + delta * price, new
        entry = -((-num) // den) if new > 0 else num // den  # long: up, short: down
        return new, entry, 0
    if (s > 0) == (new > 0) or new == 0:  # reduce or close
        pnl = mul_div_down(-delta, price - e, 10**sd)
        return new, (e if new else 0), pnl
    pnl = mul_div_down(s, price - e, 10**sd)  # flip: close all of s, open the rest at price
    return new, price, pnl


def fill(
    *,
    buyer: AccountId,
    seller: AccountId,
    instrument: InstrumentId,
    size: int,
    price: int,
    size_decimals: int,
    premium: bool,
    quote: Asset,
    buyer_position: Position | None,
    seller_position: Position | None,
    settlement: AccountId,
) -> Fill:
    """Build the postings and position changes of ``buyer`` buying ``size`` from ``seller``."""
    check_int("fill size", size, 1)
    check_int("fill price", price, 0, PRICE_MAX)
    if buyer == seller:
        raise InvalidArgument(f"buyer={buyer!r} and seller are the same account")
    sd = size_decimals
    postings: list[Posting] = []
    changes: list[PositionChange] = []
    for account, delta, old in ((buyer, size, buyer_position), (seller, -size, seller_position)):
        new_size, entry, pnl = roll_position(old, delta, price, sd)
        if premium:
            entry = entry if new_size else 0
            pnl = 0
        changes.append(PositionChange(account, instrument, delta, entry))
        if pnl:
            postings += [Posting(account, quote.units(pnl)), Posting(settlement, quote.units(-pnl))]
    if premium:
        paid = mul_div_up(size, price, 10**sd)
        received = mul_div_down(size, price, 10**sd)
        moves = ((buyer, -paid), (seller, received), (settlement, paid - received))
        postings += [Posting(a, quote.units(u)) for a, u in moves if u]
    return Fill(tuple(postings), tuple(changes))
