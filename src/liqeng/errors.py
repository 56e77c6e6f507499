"""One error family. Every message names the offending value.

``LiqengError`` is the root; ``InvalidArgument`` is also a ``ValueError`` so callers that
only know the standard library still catch bad input. ``Refused`` carries a closed,
machine-readable ``code`` (``"ledger/negative-balance"``) for a request that was well formed
but cannot be applied to the current state; nothing changed when it is raised.
"""

from __future__ import annotations

__all__ = ["InvalidArgument", "LiqengError", "Refused", "StorageConflict", "StorageCorrupt"]


class LiqengError(Exception):
    """Root of every error liqeng raises on purpose."""


class InvalidArgument(LiqengError, ValueError):
    """A value is malformed or out of range: ``price=nan must be finite and positive``."""


class Refused(LiqengError):
    """A well-formed request the current state refuses. ``code`` is stable, e.g.
    ``"ledger/unbalanced"``; the message says which value broke it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class StorageCorrupt(LiqengError):
    """The durable log does not verify: a broken hash chain, a gap, or an unreadable row."""


class StorageConflict(LiqengError):
    """Another writer appended to the log first; this ledger's view is stale: reopen it."""
