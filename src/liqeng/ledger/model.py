"""The ledger's value objects: accounts, postings, position changes, transactions.

A ``Transaction`` is a frozen list of ``Posting`` (signed asset movements; positive credits
the account) and ``PositionChange`` (signed change of an instrument position), plus a
``kind`` and a ``memo`` of JSON-able facts that travel into the event log. Only
``Ledger.apply`` turns a transaction into state; mechanisms build transactions as plans.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from liqeng.errors import InvalidArgument
from liqeng.ids import (
    AccountId,
    AssetId,
    InstrumentId,
    account_id,
    check_id,
    instrument_id,
    tx_id,
)
from liqeng.units import AMOUNT_MAX, DECIMALS_MAX, PRICE_MAX, Amount, check_int

__all__ = [
    "AccountKind",
    "AccountSpec",
    "InstrumentSpec",
    "Position",
    "PositionChange",
    "Posting",
    "Transaction",
]


class AccountKind(StrEnum):
    """``user`` accounts may never go negative; ``system`` accounts (insurance fund, fee
    sink, backstop pool) neither; ``external`` accounts are the world outside the ledger
    (deposits come from them, withdrawals go to them), ``settlement`` is the clearing
    account of futures-style PnL (it pays realised gains before open losers realise their
    losses) and ``bad_debt`` records uncovered losses: those three may go negative, so
    conservation holds with them included."""

    USER = "user"
    SYSTEM = "system"
    EXTERNAL = "external"
    SETTLEMENT = "settlement"
    BAD_DEBT = "bad_debt"

    @property
    def may_go_negative(self) -> bool:
        return self in (AccountKind.EXTERNAL, AccountKind.SETTLEMENT, AccountKind.BAD_DEBT)


@dataclass(frozen=True, slots=True)
class AccountSpec:
    id: AccountId
    kind: AccountKind = AccountKind.USER

    def __post_init__(self) -> None:
        account_id(self.id)
        if not isinstance(self.kind, AccountKind):
            raise InvalidArgument(f"account kind={self.kind!r} must be an AccountKind")


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """What the ledger must know of an instrument: its id, the digits of one contract
    (``size_decimals``) and whether positions must net to zero across holders
    (``net_zero``: true for every derivative traded between accounts)."""

    id: InstrumentId
    size_decimals: int
    net_zero: bool = True

    def __post_init__(self) -> None:
        instrument_id(self.id)
        check_int("size_decimals", self.size_decimals, 0, DECIMALS_MAX)


@dataclass(frozen=True, slots=True)
class Posting:
    """``amount`` moves into ``account`` (negative: out of it)."""

    account: AccountId
    amount: Amount

    def __post_init__(self) -> None:
        check_id("account", self.account)
        amount = self.amount
        if type(amount) is not Amount and not isinstance(amount, Amount):
            raise InvalidArgument(f"posting amount={amount!r} must be an Amount")

    @property
    def asset(self) -> AssetId:
        return self.amount.asset.id


@dataclass(frozen=True, slots=True)
class PositionChange:
    """Position of ``account`` in ``instrument`` changes by ``size_delta`` base units and
    its entry price becomes ``entry_price`` (price units; ignored when the position closes).

    The ledger records entry prices as given: the trade arithmetic that computes them and
    the cash they realise lives in ``liqeng.market.trading`` and arrives as postings.
    """

    account: AccountId
    instrument: InstrumentId
    size_delta: int
    entry_price: int

    def __post_init__(self) -> None:
        check_id("account", self.account)
        check_id("instrument", self.instrument)
        delta, entry = self.size_delta, self.entry_price
        # the common case decided inline; ``check_int`` names what is wrong otherwise
        if type(delta) is not int or not -AMOUNT_MAX <= delta <= AMOUNT_MAX:
            check_int("size_delta", delta)
        if delta == 0:
            raise InvalidArgument(f"size_delta=0 for {self.account} {self.instrument}: no change")
        if type(entry) is not int or not 0 <= entry <= PRICE_MAX:
            check_int("entry_price", entry, 0, PRICE_MAX)


@dataclass(frozen=True, slots=True)
class Position:
    size: int
    entry_price: int


@dataclass(frozen=True, slots=True)
class Transaction:
    """A frozen, all-or-nothing set of postings and position changes.

    ``id`` makes retries idempotent: the same id with the same content returns the first
    result; with other content it is refused (``ledger/exists-with-different-content``).
    """

    id: str
    kind: str
    postings: tuple[Posting, ...] = ()
    position_changes: tuple[PositionChange, ...] = ()
    memo: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        tx_id(self.id)
        if not isinstance(self.kind, str) or not self.kind or len(self.kind) > 64:
            raise InvalidArgument(f"transaction kind={self.kind!r} must be a short str")
        postings, changes = self.postings, self.position_changes
        if not isinstance(postings, tuple):
            raise InvalidArgument(f"postings of {self.id} must be a tuple, not {postings!r}")
        for p in postings:
            if type(p) is not Posting and not isinstance(p, Posting):
                raise InvalidArgument(f"postings of {self.id} holds {p!r}, not a Posting")
        if not isinstance(changes, tuple):
            raise InvalidArgument(f"position_changes of {self.id} must be a tuple, not {changes!r}")
        for c in changes:
            if type(c) is not PositionChange and not isinstance(c, PositionChange):
                raise InvalidArgument(
                    f"position_changes of {self.id} holds {c!r}, not a PositionChange"
                )
        if not isinstance(self.memo, Mapping):
            raise InvalidArgument(f"memo={self.memo!r} of {self.id} must be a mapping")
