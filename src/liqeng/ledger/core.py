"""The ledger: the only place balances and positions change.

``apply(tx)`` checks the transaction against the current state (every refusal is decided
before anything is written), stages the new values aside, appends one hash-chained event
through the storage, and only then swaps the staged values in. A refused or failed
transaction leaves no trace. ``batch()`` groups many transactions into one durable
database transaction, all or nothing.

Named invariants (``check_invariants``), true after every commit:

- ``ledger/conservation``: per asset, the balances of all accounts sum to zero (external
  and bad-debt accounts included), because every transaction is balanced per asset;
- ``ledger/negative-balance``: no user or system account is below zero;
- ``ledger/positions-not-net-zero``: per net-zero instrument, sizes sum to zero;
- ``ledger/range``: every balance and size is within ``±AMOUNT_MAX``.

Refusal codes, in precedence order: ``ledger/reserved-kind``,
``ledger/exists-with-different-content``, ``ledger/id-already-failed``,
``ledger/unbalanced``, ``ledger/positions-not-net-zero``, ``ledger/account-not-found``,
``ledger/asset-not-found``, ``ledger/asset-mismatch``, ``ledger/instrument-not-found``,
``ledger/overflow``, ``ledger/negative-balance``.
Refusals from ``account-not-found`` on are state-dependent: the id is burned and a retry
with the same id is refused with ``ledger/id-already-failed``.

Garbage collection during a batch: the outermost ``batch()`` turns Python's cyclic garbage
collector off and back on when the batch ends (committed, rolled back or failed), unless
it was already off. A batch allocates many small objects that stay alive (the engine's
step keeps every liquidation's plan until it returns); left on, the collector traverses
the whole heap over and over as they pile up (a 10,000-liquidation step spent about a
sixth of its time there: ``benchmarks/liquidation_bench.py``). Reference counting still
frees everything as usual; only objects in reference cycles wait for the collector's next
run after the batch. The switch is process-wide: a program whose other threads depend on
the collector running during a batch should not run long batches.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, NoReturn

from liqeng.clock import Clock
from liqeng.errors import InvalidArgument, Refused, StorageCorrupt
from liqeng.ids import AccountId, AssetId, InstrumentId, TxId, tx_id
from liqeng.ledger.events import (
    GENESIS,
    Event,
    EventRow,
    canonical,
    chain_hash,
    decode,
)
from liqeng.ledger.model import (
    AccountKind,
    AccountSpec,
    InstrumentSpec,
    Position,
    PositionChange,
    Posting,
    Transaction,
)
from liqeng.ledger.storage import Refusal, Snapshot, Storage
from liqeng.units import AMOUNT_MAX, Amount, Asset, check_int

__all__ = ["Ledger", "Receipt"]

_ASSET, _ACCOUNT, _INSTRUMENT = "ledger.asset", "ledger.account", "ledger.instrument"
_SNAPSHOT = "ledger.snapshot"
_MISSING = object()
_NO_KEY = object()

BalanceKey = tuple[AccountId, AssetId]
PositionKey = tuple[AccountId, InstrumentId]


@dataclass(frozen=True, slots=True)
class Receipt:
    """What ``apply`` returns once the transaction is durable: ``created`` is False when
    the same transaction had already committed (an idempotent retry)."""

    tx_id: TxId
    seq: int
    ts: int
    hash: bytes
    created: bool


class Ledger:
    """Exact balances and positions over a hash-chained, durable event log."""

    def __init__(self, storage: Storage, clock: Clock, snapshot_every: int = 100_000) -> None:
        if snapshot_every < 1:
            raise InvalidArgument(f"snapshot_every={snapshot_every} must be >= 1")
        self._storage = storage
        self._clock = clock
        self._snapshot_every = snapshot_every
        self.assets: dict[AssetId, Asset] = {}
        self.accounts: dict[AccountId, AccountKind] = {}
        self.instruments: dict[InstrumentId, InstrumentSpec] = {}
        self._balances: dict[BalanceKey, int] = {}
        self._positions: dict[PositionKey, Position] = {}
        self._by_account: dict[AccountId, dict[InstrumentId, Position]] = {}
        self.state_version = 0
        """Bumped by every applied transaction that moves a balance or a position (never
        lowered): caches of balances and positions compare it to know they are current."""
        self._snapshot_due = False
        self._seq = 0
        self._ts = 0
        self._hash = GENESIS
        self._snapshot_seq = 0
        self._undo: list[Any] | None = None
        """Inside a batch: ``table, key[0], key[1], old value`` for a pair key and ``table,
        key, _NO_KEY, old value`` for another, flat (four entries a change: no tuple per
        change, nor the key tuple, kept alive until the batch ends), replayed backwards by
        ``_rollback``."""
        # the batch's events as plain ``EventRow`` tuples (what storage writes), by tx id
        self._pending: list[EventRow] = []
        self._pending_refusals: dict[str, Refusal] = {}
        self._pending_ids: dict[str, EventRow] = {}
        # asset id -> (an ``Asset`` given in a posting, the registered one) found equal:
        # the same pair of (frozen) objects is not compared field by field again
        self._asset_seen: dict[AssetId, tuple[Asset, Asset]] = {}
        # ids ``prefetch`` found neither committed nor refused in storage, known for the
        # rest of the outermost batch only (module doc, "Prefetched ids")
        self._no_event: set[str] = set()
        self._no_refusal: set[str] = set()
        self._load()

    # ------------------------------------------------------------------ reads

    @property
    def seq(self) -> int:
        """Sequence number of the last committed event (0 for an empty ledger)."""
        return self._seq

    @property
    def head(self) -> bytes:
        """Chain hash of the last committed event."""
        return self._hash

    def balance(self, account: AccountId, asset: AssetId) -> Amount:
        if asset not in self.assets:
            raise InvalidArgument(f"asset={asset!r} is not registered")
        return Amount(self._balances.get((account, asset), 0), self.assets[asset])

    def balance_units(self, account: AccountId, asset: AssetId) -> int:
        return self._balances.get((account, asset), 0)

    def position(self, account: AccountId, instrument: InstrumentId) -> Position | None:
        return self._positions.get((account, instrument))

    def positions_of(self, account: AccountId) -> dict[InstrumentId, Position]:
        return dict(self._by_account.get(account, {}))

    def committed(self, txid: str) -> tuple[Receipt, Transaction] | None:
        """The receipt and the transaction that committed ``txid``, read back from the log;
        ``None`` if no transaction (registrations excluded) committed under that id."""
        ev = self._find(tx_id(txid))
        if ev is None or ev.kind.startswith("ledger."):
            return None
        body = decode(ev.body)
        postings = tuple(
            Posting(AccountId(a), Amount(int(u), self.assets[AssetId(s)])) for a, s, u in body["p"]
        )
        changes = tuple(
            PositionChange(AccountId(a), InstrumentId(i), int(d), int(e))
            for a, i, d, e in body["q"]
        )
        tx = Transaction(ev.tx_id, ev.kind, postings, changes, body["memo"])
        return Receipt(TxId(ev.tx_id), ev.seq, ev.ts, ev.hash, False), tx

    def balances(self) -> dict[BalanceKey, int]:
        return dict(self._balances)

    def positions(self) -> dict[PositionKey, Position]:
        return dict(self._positions)

    def positions_by_account(self) -> dict[AccountId, dict[InstrumentId, Position]]:
        """Open positions grouped by account (copies of the ledger's own index)."""
        return {a: dict(p) for a, p in self._by_account.items() if p}

    # ---------------------------------------------------------------- registry

    def register_asset(self, asset: Asset, txid: str | None = None) -> Receipt:
        if not isinstance(asset, Asset):
            raise InvalidArgument(f"asset={asset!r} must be an Asset")
        return self._commit(
            txid or f"asset:{asset.id}", _ASSET, {"id": asset.id, "decimals": asset.decimals}
        )

    def open_account(self, spec: AccountSpec, txid: str | None = None) -> Receipt:
        if not isinstance(spec, AccountSpec):
            raise InvalidArgument(f"spec={spec!r} must be an AccountSpec")
        return self._commit(
            txid or f"account:{spec.id}", _ACCOUNT, {"id": spec.id, "kind": spec.kind.value}
        )

    def list_instrument(self, spec: InstrumentSpec, txid: str | None = None) -> Receipt:
        if not isinstance(spec, InstrumentSpec):
            raise InvalidArgument(f"spec={spec!r} must be an InstrumentSpec")
        body = {"id": spec.id, "size_decimals": spec.size_decimals, "net_zero": spec.net_zero}
        return self._commit(txid or f"instrument:{spec.id}", _INSTRUMENT, body)

    # ------------------------------------------------------------------ writes

    def apply(self, tx: Transaction) -> Receipt:
        """Commit ``tx`` whole, or raise ``Refused``/``InvalidArgument`` and change nothing."""
        if not isinstance(tx, Transaction):
            raise InvalidArgument(f"tx={tx!r} must be a Transaction")
        kind = tx.kind
        if kind.startswith("ledger."):
            raise Refused("ledger/reserved-kind", f"kind={kind!r} is reserved")
        body = {
            "p": [[p.account, p.amount.asset.id, str(p.amount.units)] for p in tx.postings],
            "q": [
                [c.account, c.instrument, str(c.size_delta), str(c.entry_price)]
                for c in tx.position_changes
            ],
            "memo": dict(tx.memo),
        }
        return self._commit(tx.id, kind, body, tx)

    def prefetch(self, txids: Iterable[str]) -> None:
        """Look many transaction ids up in storage at once, inside a batch: a later
        ``apply`` in the same outermost batch of an id storage holds neither as committed
        nor as refused then skips its two storage reads (one query per id each). What is
        learnt is forgotten when the outermost batch ends. A no-op for a storage without a
        bulk lookup (``find_tx_ids``). Sound because the ledger is its storage's only
        writer: nothing this batch does reaches storage before the batch's commit, and an
        id this ledger commits or refuses in the meantime is dropped from what was learnt;
        a second writer's commit would make this batch's ``append`` fail on the unique
        ``seq``, as it does without prefetching."""
        if self._undo is None:
            raise InvalidArgument("prefetch() outside a batch: what it learns lasts one batch")
        lookup = getattr(self._storage, "find_tx_ids", None)
        if lookup is None:
            return
        pending, refusals = self._pending_ids, self._pending_refusals
        ids = [t for t in txids if type(t) is str and t not in pending and t not in refusals]
        committed, refused = lookup(ids)
        self._no_event.update(t for t in ids if t not in committed)
        self._no_refusal.update(t for t in ids if t not in refused)

    def record(self, txid: str, kind: str, memo: dict[str, Any]) -> Receipt:
        """Commit a fact that moves nothing (a price, a parameter change) into the log."""
        return self.apply(Transaction(tx_id(txid), kind, memo=memo))

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group transactions into one durable database transaction, all or nothing.

        An exception escaping the block (or from the storage) rolls every transaction of
        the block back; a ``Refused`` caught inside the block only drops that one. A nested
        batch is a savepoint: its exception undoes the nested block only, and the outermost
        batch alone writes to storage. Ids refused inside a batch that rolls back stay
        refused (they are written on their own, best effort).

        The outermost batch pauses Python's cyclic garbage collector (``gc.disable()``)
        and turns it back on when it ends, however it ends, if it was on when the batch
        began (module doc, "Garbage collection during a batch").
        """
        undo = self._undo
        outer = undo is None
        gc_was_on = False
        if undo is None:
            undo = self._undo = []
            gc_was_on = gc.isenabled()
            if gc_was_on:
                gc.disable()
        mark = (len(undo), len(self._pending), self._seq, self._ts, self._hash)
        try:
            yield
            if outer:
                self._flush()
        except BaseException:
            self._rollback(mark)
            if outer and self._pending_refusals:
                with suppress(Exception):  # the original error is what the caller must see
                    self._storage.append((), list(self._pending_refusals.values()), None)
            raise
        finally:
            if outer:
                self._undo = None
                self._pending = []
                self._pending_refusals = {}
                self._pending_ids = {}
                self._no_event = set()
                self._no_refusal = set()
                if gc_was_on:
                    gc.enable()

    def _flush(self) -> None:
        snapshot = None
        if self._snapshot_due or self._seq - self._snapshot_seq >= self._snapshot_every:
            snapshot = self._snapshot_event()
        if self._pending or self._pending_refusals:
            self._storage.append(self._pending, list(self._pending_refusals.values()), snapshot)
        if snapshot is not None:
            self._snapshot_seq = snapshot.seq
        self._snapshot_due = False

    def _rollback(self, mark: tuple[int, int, int, int, bytes]) -> None:
        undo_len, pending_len, self._seq, self._ts, self._hash = mark
        assert self._undo is not None
        undo = self._undo
        while len(undo) > undo_len:
            old, k2, k1, table = undo.pop(), undo.pop(), undo.pop(), undo.pop()
            key = k1 if k2 is _NO_KEY else (k1, k2)
            if old is _MISSING:
                table.pop(key, None)
            else:
                table[key] = old
        for row in self._pending[pending_len:]:
            del self._pending_ids[row[3]]
        del self._pending[pending_len:]

    # --------------------------------------------------------------- internals

    def _set(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        assert self._undo is not None
        if type(key) is tuple and len(key) == 2:
            self._undo += (table, key[0], key[1], table.get(key, _MISSING))
        else:
            self._undo += (table, key, _NO_KEY, table.get(key, _MISSING))
        if value is _MISSING:
            del table[key]
        else:
            table[key] = value

    def _find(self, txid: str) -> Event | None:
        row = self._pending_ids.get(txid)
        if row is not None:
            return Event(*row)
        if txid in self._no_event:
            return None
        return self._storage.find_event(txid)

    def _commit(
        self, txid: str, kind: str, body: dict[str, Any], tx: Transaction | None = None
    ) -> Receipt:
        if tx is None:
            tx_id(txid)  # a Transaction checked its id when it was built
        raw = canonical(body)
        existing = self._find(txid)
        if existing is not None:
            if existing.kind == kind and existing.body == raw:
                return Receipt(TxId(txid), existing.seq, existing.ts, existing.hash, False)
            raise Refused(
                "ledger/exists-with-different-content",
                f"tx_id={txid!r} already committed at seq {existing.seq} with other content",
            )
        refused = self._find_refusal(txid)
        if refused is not None:
            raise Refused(
                "ledger/id-already-failed", f"tx_id={txid!r} was refused with {refused.code}"
            )
        now = check_int("clock now", self._clock.now(), 0, 2**62)
        if now < self._ts:
            raise InvalidArgument(f"clock now={now} is before the last event ts={self._ts}")
        mutate = self._plan(kind, body, tx, txid, raw)
        seq = self._seq + 1
        h = chain_hash(self._hash, seq, now, kind, txid, raw)
        event: EventRow = (seq, now, kind, txid, raw, self._hash, h)
        if self._undo is None:
            with self.batch():
                self._stage(mutate, event)
        else:  # already inside a batch: the savepoint a nested batch() would be
            mark = (len(self._undo), len(self._pending), self._seq, self._ts, self._hash)
            try:
                self._stage(mutate, event)
            except BaseException:
                self._rollback(mark)
                raise
        return Receipt(TxId(txid), seq, now, h, True)

    def _stage(self, mutate: Callable[[], None], event: EventRow) -> None:
        """Run the planned mutation and queue ``event`` (inside a batch)."""
        mutate()
        txid = event[3]
        self._pending.append(event)
        self._pending_ids[txid] = event
        self._no_event.discard(txid)
        self._seq, self._ts, self._hash = event[0], event[1], event[6]

    def _find_refusal(self, txid: str) -> Refusal | None:
        refusal = self._pending_refusals.get(txid)
        if refusal is not None or txid in self._no_refusal:
            return refusal
        return self._storage.find_refusal(txid)

    def _refuse(self, txid: str, kind: str, raw: bytes, code: str, message: str) -> Refused:
        """A state-dependent refusal burns the id (written with the batch, or at once).
        The refusal keeps ``sha256(kind | body)`` of what was refused."""
        digest = hashlib.sha256(kind.encode() + b"|" + raw).digest()
        refusal = Refusal(txid, code, digest)
        self._no_refusal.discard(txid)
        if self._undo is not None:
            self._pending_refusals[txid] = refusal
        else:
            self._storage.append((), (refusal,), None)
        return Refused(code, message)

    def _plan(
        self,
        kind: str,
        body: dict[str, Any],
        tx: Transaction | None,
        txid: str,
        raw: bytes,
    ) -> Callable[[], None]:
        """Check everything against the current state; return the mutation to run."""
        if tx is not None:  # never a ``ledger.*`` kind: ``apply`` refuses those
            return self._plan_tx(tx, txid, raw)
        if kind == _ASSET:
            return self._plan_asset(body)
        if kind == _ACCOUNT:
            return self._plan_account(body)
        if kind == _INSTRUMENT:
            return self._plan_instrument(body)
        assert kind == _SNAPSHOT
        return lambda: None

    def _plan_asset(self, body: dict[str, Any]) -> Callable[[], None]:
        asset = Asset(body["id"], body["decimals"])
        if asset.id in self.assets:
            raise InvalidArgument(f"asset={asset.id!r} is already registered")
        return lambda: self._set(self.assets, asset.id, asset)

    def _plan_account(self, body: dict[str, Any]) -> Callable[[], None]:
        spec = AccountSpec(body["id"], AccountKind(body["kind"]))
        if spec.id in self.accounts:
            raise InvalidArgument(f"account={spec.id!r} is already open")
        return lambda: self._set(self.accounts, spec.id, spec.kind)

    def _plan_instrument(self, body: dict[str, Any]) -> Callable[[], None]:
        spec = InstrumentSpec(body["id"], body["size_decimals"], body["net_zero"])
        if spec.id in self.instruments:
            raise InvalidArgument(f"instrument={spec.id!r} is already listed")
        return lambda: self._set(self.instruments, spec.id, spec)

    def _plan_tx(self, tx: Transaction, txid: str, raw: bytes) -> Callable[[], None]:
        deltas: dict[BalanceKey, int] = {}
        per_asset: dict[AssetId, int] = {}
        for p in tx.postings:
            amount = p.amount
            asset, units = amount.asset.id, amount.units
            key = (p.account, asset)
            deltas[key] = deltas.get(key, 0) + units
            per_asset[asset] = per_asset.get(asset, 0) + units
        for asset, total in per_asset.items():
            if total != 0:
                raise Refused("ledger/unbalanced", f"{txid}: postings of {asset} sum to {total}")
        sizes: dict[PositionKey, tuple[int, int]] = {}
        per_instrument: dict[InstrumentId, int] = {}
        for c in tx.position_changes:
            key2 = (c.account, c.instrument)
            sizes[key2] = (sizes.get(key2, (0, 0))[0] + c.size_delta, c.entry_price)
            per_instrument[c.instrument] = per_instrument.get(c.instrument, 0) + c.size_delta

        def refuse(code: str, message: str) -> Refused:
            return self._refuse(txid, tx.kind, raw, code, message)

        instruments, accounts = self.instruments, self.accounts
        for instrument, total in per_instrument.items():
            spec = instruments.get(instrument)
            if spec is not None and spec.net_zero and total != 0:
                raise Refused(
                    "ledger/positions-not-net-zero", f"{txid}: {instrument} sizes sum to {total}"
                )
        for account, _ in (*deltas, *sizes):
            if account not in accounts:
                raise refuse("ledger/account-not-found", f"{txid}: account={account!r}")
        assets, seen = self.assets, self._asset_seen
        for p in tx.postings:
            given = p.amount.asset
            registered = assets.get(given.id)
            if registered is None:
                raise refuse("ledger/asset-not-found", f"{txid}: asset={given.id!r}")
            if registered is not given:
                pair = seen.get(given.id)
                if pair is None or pair[0] is not given or pair[1] is not registered:
                    if registered != given:
                        raise refuse(
                            "ledger/asset-mismatch",
                            f"{txid}: {given} differs from registered {registered}",
                        )
                    seen[given.id] = (given, registered)
        for _, instrument in sizes:
            if instrument not in instruments:
                raise refuse("ledger/instrument-not-found", f"{txid}: instrument={instrument!r}")
        new_positions: dict[PositionKey, Position | None] = {}  # None: the position closes
        positions = self._positions
        for key2, (delta, entry) in sizes.items():
            old = positions.get(key2)
            size = (old.size if old else 0) + delta
            if abs(size) > AMOUNT_MAX:
                raise refuse("ledger/overflow", f"{txid}: size of {key2} would be {size}")
            new_positions[key2] = Position(size, entry) if size else None
        new_balances: dict[BalanceKey, int] = {}
        balances = self._balances
        for key, delta in deltas.items():
            value = balances.get(key, 0) + delta
            if abs(value) > AMOUNT_MAX:
                raise refuse("ledger/overflow", f"{txid}: balance of {key} would be {value}")
            if value < 0 and not accounts[key[0]].may_go_negative:
                raise refuse(
                    "ledger/negative-balance",
                    f"{txid}: {key[0]} would hold {value} units of {key[1]}",
                )
            new_balances[key] = value

        def mutate() -> None:
            if new_balances or new_positions:  # a fact that moves nothing changes no state
                self.state_version += 1  # never undone: a rollback costs a spurious rebuild
            undo = self._undo
            assert undo is not None
            for k, v in new_balances.items():  # _set, inlined: a balance is never removed
                undo += (balances, k[0], k[1], balances.get(k, _MISSING))
                balances[k] = v
            by_account = self._by_account
            for k2, pos in new_positions.items():  # _put_position, inlined
                old = positions.get(k2, _MISSING)
                if pos is None and old is _MISSING:
                    continue
                account, instrument = k2
                held = by_account.get(account)
                if held is None:
                    held = by_account[account] = {}
                undo += (positions, account, instrument, old)
                undo += (held, instrument, _NO_KEY, held.get(instrument, _MISSING))
                if pos is None:
                    del positions[k2]
                    del held[instrument]
                else:
                    positions[k2] = pos
                    held[instrument] = pos

        return mutate

    def _put_position(self, key: PositionKey, pos: Position | object) -> None:
        """Set (or with ``_MISSING`` remove) a position in both maps, undoably."""
        if pos is _MISSING and key not in self._positions:
            return
        self._set(self._positions, key, pos)
        self._set(self._by_account.setdefault(key[0], {}), key[1], pos)

    # ------------------------------------------------------- snapshot & replay

    def _state(self) -> dict[str, Any]:
        return {
            "assets": sorted([a.id, a.decimals] for a in self.assets.values()),
            "accounts": sorted([k, v.value] for k, v in self.accounts.items()),
            "instruments": sorted(
                [s.id, s.size_decimals, s.net_zero] for s in self.instruments.values()
            ),
            "balances": sorted([a, s, str(v)] for (a, s), v in self._balances.items() if v),
            "positions": sorted(
                [a, i, str(p.size), str(p.entry_price)] for (a, i), p in self._positions.items()
            ),
        }

    def state_digest(self) -> str:
        """sha256 of the canonical ledger state: equal digests, equal ledgers."""
        return hashlib.sha256(canonical(self._state())).hexdigest()

    def _snapshot_event(self) -> Snapshot:
        """Chain a ``ledger.snapshot`` event carrying the sha256 of the state, so a
        snapshot row cannot be edited without breaking what the chain says of it."""
        state = canonical(self._state())
        body = {"after_seq": self._seq, "state_sha256": hashlib.sha256(state).hexdigest()}
        receipt = self._commit(f"snapshot:{self._seq + 1}", _SNAPSHOT, body)
        return Snapshot(receipt.seq, receipt.hash, state)

    def snapshot(self) -> None:
        """Write a snapshot now (e.g. on a clean shutdown), so the next open is fast."""
        if self._undo is not None:
            raise InvalidArgument("snapshot() inside a batch: call it after the batch commits")
        if self._seq > self._snapshot_seq:
            self._snapshot_due = True
            with self.batch():
                pass

    def _restore(self, state: dict[str, Any]) -> None:
        for aid, dec in state["assets"]:
            self.assets[aid] = Asset(aid, dec)
        for acc, kind in state["accounts"]:
            self.accounts[acc] = AccountKind(kind)
        for iid, sd, nz in state["instruments"]:
            self.instruments[iid] = InstrumentSpec(iid, sd, nz)
        for acc, aid, units in state["balances"]:
            self._balances[(acc, aid)] = int(units)
        for acc, iid, size, entry in state["positions"]:
            self._put_position((acc, iid), Position(int(size), int(entry)))

    def _load(self) -> None:
        """Verify the whole hash chain, restore the latest snapshot, replay the tail.

        Every stored event is re-hashed from genesis as a plain row (one sha256 each, no
        object, no JSON); the snapshot must match the ``ledger.snapshot`` event chained at
        its seq (the sha256 of its state); only the tail after it is decoded and replayed.
        The named invariants are checked on the result.
        """
        snap = self._storage.latest_snapshot()
        snap_seq = snap.seq if snap else 0
        sha256 = hashlib.sha256
        prev, expected, ts = GENESIS, 1, 0
        tail: list[EventRow] = []
        for row in self._storage.event_rows():
            seq, row_ts, kind, txid, body, prev_hash, h = row
            if (
                seq != expected
                or prev_hash != prev
                or sha256(prev + f"{seq}|{row_ts}|{kind}|{txid}|".encode() + body).digest() != h
                or row_ts < ts
            ):
                _corrupt(Event(*row), prev, expected)
            if seq > snap_seq:
                tail.append(row)
            elif seq == snap_seq:
                _check_snapshot(snap, kind, body)
            prev, expected, ts = h, expected + 1, row_ts
        self._undo = []
        try:
            if snap is not None:
                if snap_seq >= expected:
                    raise StorageCorrupt(f"snapshot at seq={snap_seq} is past the log end")
                self._restore(decode(snap.state))
                self._snapshot_seq = snap_seq
            for row in tail:
                self._replay(row[2], row[4])
        finally:
            self._undo = None
        self._seq, self._ts, self._hash = expected - 1, ts, prev
        self.check_invariants()

    def _replay(self, kind: str, raw: bytes) -> None:
        """Apply one verified event (its ``kind`` and canonical ``body``) to the state."""
        body = decode(raw)
        if kind == _ASSET:
            self._plan_asset(body)()
        elif kind == _ACCOUNT:
            self._plan_account(body)()
        elif kind == _INSTRUMENT:
            self._plan_instrument(body)()
        elif kind != _SNAPSHOT:
            for acc, aid, units in body["p"]:
                key = (acc, aid)
                self._balances[key] = self._balances.get(key, 0) + int(units)
            for acc, iid, delta, entry in body["q"]:
                k2 = (acc, iid)
                old = self._positions.get(k2)
                size = (old.size if old else 0) + int(delta)
                self._put_position(k2, Position(size, int(entry)) if size else _MISSING)

    # -------------------------------------------------------------- invariants

    def check_invariants(self) -> None:
        """Raise ``StorageCorrupt`` naming the first broken invariant (see module doc)."""
        totals: dict[AssetId, int] = {}
        for (account, asset), units in self._balances.items():
            totals[asset] = totals.get(asset, 0) + units
            if abs(units) > AMOUNT_MAX:
                raise StorageCorrupt(f"ledger/range: {account} holds {units} of {asset}")
            if units < 0 and not self.accounts[account].may_go_negative:
                raise StorageCorrupt(f"ledger/negative-balance: {account} {units} {asset}")
        for asset, total in totals.items():
            if total != 0:
                raise StorageCorrupt(f"ledger/conservation: {asset} sums to {total}")
        net: dict[InstrumentId, int] = {}
        for (_, instrument), pos in self._positions.items():
            net[instrument] = net.get(instrument, 0) + pos.size
        for instrument, total in net.items():
            if self.instruments[instrument].net_zero and total != 0:
                raise StorageCorrupt(f"ledger/positions-not-net-zero: {instrument} {total}")


def _corrupt(ev: Event, prev: bytes, expected: int) -> NoReturn:
    """Name the first rule a stored event breaks (the slow path of ``_load``)."""
    if ev.seq != expected:
        raise StorageCorrupt(f"event seq={ev.seq} where {expected} was expected (gap)")
    if not ev.verify(prev):
        raise StorageCorrupt(f"event seq={ev.seq} breaks the hash chain")
    raise StorageCorrupt(f"event seq={ev.seq} ts={ev.ts} goes back in time")


def _check_snapshot(snap: Snapshot | None, kind: str, body: bytes) -> None:
    assert snap is not None
    digest = hashlib.sha256(snap.state).hexdigest()
    if kind != _SNAPSHOT or decode(body).get("state_sha256") != digest:
        raise StorageCorrupt(
            f"snapshot at seq={snap.seq} does not match the digest chained at that seq"
        )
