"""SQLite storage: the event log, snapshots and refused ids in one database file.

Every connection sets and then *verifies* ``journal_mode=WAL`` and ``synchronous=FULL``
(WAL synced at every commit: a commit that returned survives a process crash and a power
loss), ``foreign_keys=ON`` and a busy timeout; Python's implicit transactions are off and
each ``append`` is one explicit ``BEGIN IMMEDIATE ... COMMIT``. Tables are ``STRICT`` with
``CHECK`` constraints, so nothing silently becomes a float. Amounts live inside the
canonical JSON bodies as decimal strings: no 64-bit column can overflow. The ``postings``
and ``position_changes`` views expose them to anyone who opens the file with ``sqlite3``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from liqeng.errors import InvalidArgument, StorageConflict, StorageCorrupt
from liqeng.ledger.events import Event, EventRow
from liqeng.ledger.storage import Refusal, Snapshot

__all__ = ["SqliteStorage", "is_liqeng_db"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq       INTEGER PRIMARY KEY CHECK (seq > 0),
    ts        INTEGER NOT NULL CHECK (ts >= 0),
    kind      TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
    tx_id     TEXT NOT NULL UNIQUE,
    body      BLOB NOT NULL,
    prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
    hash      BLOB NOT NULL CHECK (length(hash) = 32)
) STRICT;
CREATE TABLE IF NOT EXISTS snapshots (
    seq   INTEGER PRIMARY KEY CHECK (seq > 0),
    hash  BLOB NOT NULL CHECK (length(hash) = 32),
    state BLOB NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS refusals (
    tx_id  TEXT PRIMARY KEY,
    code   TEXT NOT NULL,
    digest BLOB NOT NULL CHECK (length(digest) = 32)
) STRICT;
CREATE TRIGGER IF NOT EXISTS snapshots_append_only BEFORE UPDATE ON snapshots
BEGIN SELECT RAISE(ABORT, 'snapshots are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE VIEW IF NOT EXISTS postings AS
    SELECT e.seq, e.ts, e.kind, e.tx_id,
           json_extract(p.value, '$[0]') AS account,
           json_extract(p.value, '$[1]') AS asset,
           json_extract(p.value, '$[2]') AS amount_units
    FROM events e, json_each(e.body, '$.p') p
    WHERE e.kind NOT LIKE 'ledger.%';
CREATE VIEW IF NOT EXISTS position_changes AS
    SELECT e.seq, e.ts, e.kind, e.tx_id,
           json_extract(q.value, '$[0]') AS account,
           json_extract(q.value, '$[1]') AS instrument,
           json_extract(q.value, '$[2]') AS size_delta,
           json_extract(q.value, '$[3]') AS entry_price
    FROM events e, json_each(e.body, '$.q') q
    WHERE e.kind NOT LIKE 'ledger.%';
"""

_COLUMNS = "seq, ts, kind, tx_id, body, prev_hash, hash"


def is_liqeng_db(path: str | Path) -> bool:
    """True if ``path`` is a SQLite file holding liqeng's ``events`` table (read-only check)."""
    try:
        con = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
        try:
            cols = [r[1] for r in con.execute("PRAGMA table_info(events)")]
        finally:
            con.close()
    except sqlite3.Error:
        return False
    return cols == _COLUMNS.split(", ")


class SqliteStorage:
    """Durable storage in one SQLite file (``":memory:"`` for throwaway tests).

    ``readonly=True`` opens an existing liqeng database without writing to it (what
    ``liqeng log verify`` does); ``append`` then raises.
    """

    def __init__(
        self, path: str | Path, busy_timeout_ms: int = 5000, readonly: bool = False
    ) -> None:
        self.path = str(path)
        if self.path != ":memory:" and not Path(self.path).parent.exists():
            raise InvalidArgument(f"database path={self.path!r}: its directory does not exist")
        if readonly and not is_liqeng_db(self.path):
            raise InvalidArgument(f"database path={self.path!r} is not a liqeng database")
        try:
            self._db = self._connect(busy_timeout_ms, readonly)
        except sqlite3.DatabaseError as exc:
            raise StorageCorrupt(f"{self.path}: cannot open as SQLite: {exc}") from None

    def _connect(self, busy_timeout_ms: int, readonly: bool) -> sqlite3.Connection:
        if readonly:
            uri = f"file:{Path(self.path)}?mode=ro"
            return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if self.path != ":memory:" and mode != "wal":
            raise StorageCorrupt(f"{self.path}: journal_mode is {mode!r}, WAL was required")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        sync = db.execute("PRAGMA synchronous").fetchone()[0]
        if sync != 2:
            raise StorageCorrupt(f"{self.path}: PRAGMA synchronous={sync}, FULL (2) required")
        db.executescript(SCHEMA)
        return db

    def event_rows(self, after_seq: int = 0) -> Iterator[EventRow]:
        cur = self._db.execute(
            f"SELECT {_COLUMNS} FROM events WHERE seq > ? ORDER BY seq", (after_seq,)
        )
        while rows := cur.fetchmany(4096):
            yield from rows

    def latest_snapshot(self) -> Snapshot | None:
        row = self._db.execute(
            "SELECT seq, hash, state FROM snapshots ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return Snapshot(*row) if row else None

    def find_event(self, tx_id: str) -> Event | None:
        sql = f"SELECT {_COLUMNS} FROM events WHERE tx_id = ?"
        row = self._db.execute(sql, (tx_id,)).fetchone()
        return Event(*row) if row else None

    def find_refusal(self, tx_id: str) -> Refusal | None:
        row = self._db.execute(
            "SELECT tx_id, code, digest FROM refusals WHERE tx_id = ?", (tx_id,)
        ).fetchone()
        return Refusal(*row) if row else None

    def find_tx_ids(self, tx_ids: Sequence[str]) -> tuple[set[str], set[str]]:
        """Which of ``tx_ids`` the log holds and which the refusals hold, in a few queries
        (``Ledger.prefetch``) instead of one per id and table."""
        committed: set[str] = set()
        refused: set[str] = set()
        ids = list(tx_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for found, table in ((committed, "events"), (refused, "refusals")):
                sql = f"SELECT tx_id FROM {table} WHERE tx_id IN ({marks})"
                found.update(row[0] for row in self._db.execute(sql, chunk))
        return committed, refused

    def append(
        self,
        events: Sequence[EventRow],
        refusals: Sequence[Refusal] = (),
        snapshot: Snapshot | None = None,
    ) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", events)
            db.executemany(
                "INSERT INTO refusals (tx_id, code, digest) VALUES (?, ?, ?)",
                [(r.tx_id, r.code, r.digest) for r in refusals],
            )
            if snapshot is not None:
                db.execute(
                    "INSERT INTO snapshots (seq, hash, state) VALUES (?, ?, ?)",
                    (snapshot.seq, snapshot.hash, snapshot.state),
                )
            db.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            db.execute("ROLLBACK")
            raise StorageConflict(
                f"{self.path}: another writer committed first ({exc}); reopen the ledger"
            ) from None
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()
