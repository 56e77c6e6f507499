"""The append-only event log: frozen events stamped ``(ts, seq)`` and chained by hash.

``hash_n = sha256(hash_{n-1} || b"<seq>|<ts>|<kind>|<tx_id>|" || body)`` with
``hash_0 = 32 zero bytes``. ``body`` is canonical JSON (sorted keys, no spaces, ASCII,
amounts as decimal strings), so the bytes hashed are the bytes stored and replayed.
Editing, dropping or reordering any stored event breaks every later hash.

Storage hands events over as ``EventRow`` tuples in ``Event`` field order, so opening a
ledger re-hashes a million events without building an object per row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from liqeng.errors import InvalidArgument

__all__ = ["GENESIS", "Event", "EventRow", "canonical", "chain_hash", "decode"]

GENESIS = bytes(32)


_ENCODER = json.JSONEncoder(
    separators=(",", ":"), sort_keys=True, ensure_ascii=True, allow_nan=False
)
"""What ``json.dumps`` would build for these options on every call (it is stateless)."""


def canonical(obj: Any) -> bytes:
    """Canonical JSON bytes of ``obj``; refuses NaN and non-JSON values, naming them."""
    try:
        return _ENCODER.encode(obj).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"event body {obj!r} is not canonical JSON: {exc}") from None


def decode(body: bytes) -> Any:
    return json.loads(body)


def chain_hash(prev: bytes, seq: int, ts: int, kind: str, tx_id: str, body: bytes) -> bytes:
    h = hashlib.sha256(prev)
    h.update(f"{seq}|{ts}|{kind}|{tx_id}|".encode())
    h.update(body)
    return h.digest()


@dataclass(frozen=True, slots=True)
class Event:
    """One committed fact. ``seq`` is gap-free from 1; ``ts`` never decreases."""

    seq: int
    ts: int
    kind: str
    tx_id: str
    body: bytes
    prev_hash: bytes
    hash: bytes

    def verify(self, prev: bytes) -> bool:
        return self.prev_hash == prev and self.hash == chain_hash(
            prev, self.seq, self.ts, self.kind, self.tx_id, self.body
        )


EventRow = tuple[int, int, str, str, bytes, bytes, bytes]
"""``(seq, ts, kind, tx_id, body, prev_hash, hash)``: an ``Event``'s fields, in order."""
