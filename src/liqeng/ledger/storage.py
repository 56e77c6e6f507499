"""The storage interface the ledger writes through (SQLite now, PostgreSQL next).

A backend stores three things, all in one database so one database transaction covers
them: the event log (append-only, ``seq`` unique and gap-free), snapshots of the ledger
state, and refused transaction ids (so a retry cannot turn an old refusal into a success).
``append`` is atomic and durable when it returns; concurrent writers are serialised by the
unique ``seq``: the loser's ``append`` raises ``StorageConflict`` and must reopen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from liqeng.ledger.events import Event, EventRow

__all__ = ["Refusal", "Snapshot", "Storage"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Ledger state after event ``seq`` (whose chain hash is ``hash``), canonical JSON."""

    seq: int
    hash: bytes
    state: bytes


@dataclass(frozen=True, slots=True)
class Refusal:
    tx_id: str
    code: str
    digest: bytes


class Storage(Protocol):
    def event_rows(self, after_seq: int = 0) -> Iterator[EventRow]:
        """Committed events with ``seq > after_seq`` in ascending order, as tuples."""
        ...

    def latest_snapshot(self) -> Snapshot | None: ...

    def find_event(self, tx_id: str) -> Event | None:
        """The event that committed ``tx_id``, if any."""
        ...

    def find_refusal(self, tx_id: str) -> Refusal | None: ...

    def append(
        self,
        events: Sequence[EventRow],
        refusals: Sequence[Refusal] = (),
        snapshot: Snapshot | None = None,
    ) -> None:
        """Write all of it in one durable database transaction, or none of it. Events
        come as ``EventRow`` tuples (an ``Event``'s fields in order), as ``event_rows``
        hands them back."""
        ...

    def close(self) -> None: ...
