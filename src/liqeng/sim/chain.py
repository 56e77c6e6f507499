"""Chain physics: blocks, a gas limit, an EIP-1559 fee market and a mempool ordered by tip.

Block ``n`` is produced at ``ts = t0 + n·block_s`` with room for ``gas_limit`` gas; the
fee market targets ``target = gas_limit // elasticity``. After a block that used ``g`` gas
(keepers' and everyone else's), the base fee moves as EIP-1559 says::

    base' = base + max(base·(g − target) // target // 8, 1)      g > target
    base' = base − base·(target − g) // target // 8              g < target
    base' = base                                                 g = target

so at most 12.5% a block, and never below ``min_base_fee``. A transaction offers
``max_fee`` and a priority ``tip`` (wei per gas); it can be included once its ``ready``
block has come (the latency between a keeper seeing a state and its transaction reaching a
builder) and while ``max_fee >= base``; it then pays ``base + min(tip, max_fee − base)``
per gas. The builder takes transactions by effective tip (highest first; then the earlier
``ready``, then the id), other users' demand included, while they fit the block. Other
users' demand is a ``Demand(gas, tip, max_fee)`` per block, raised by ``Congestion``
episodes (a crowd bidding ``tip`` for ``gas`` per block between two blocks, while the base
fee is at most its ``max_fee``): a keeper outbids them or waits. A transaction still
pending ``ttl`` blocks after it became ready is dropped.

Nothing here reads a clock or a random generator: the driver owns both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from liqeng.errors import InvalidArgument
from liqeng.units import check_int

__all__ = ["Block", "Chain", "ChainParams", "Congestion", "Demand", "Tx", "next_base_fee"]

GWEI = 10**9


@dataclass(frozen=True, slots=True)
class ChainParams:
    """``block_s`` seconds a block; ``gas_limit`` per block; ``elasticity`` (2: target half
    full); ``base_fee`` at block 0 and ``min_base_fee`` (wei per gas); ``ttl`` blocks a
    ready transaction may wait; ``demand`` the other users' gas and tip in a calm block."""

    block_s: int = 12
    gas_limit: int = 30_000_000
    elasticity: int = 2
    base_fee: int = 10 * GWEI
    min_base_fee: int = 7
    ttl: int = 50
    demand: Demand = field(default_factory=lambda: Demand(15_000_000, 1 * GWEI))

    def __post_init__(self) -> None:
        check_int("block_s", self.block_s, 1)
        check_int("gas_limit", self.gas_limit, 1)
        check_int("elasticity", self.elasticity, 1, self.gas_limit)
        check_int("min_base_fee", self.min_base_fee, 0)
        check_int("base_fee", self.base_fee, self.min_base_fee)
        check_int("ttl", self.ttl, 1)
        if not isinstance(self.demand, Demand):
            raise InvalidArgument(f"demand={self.demand!r} must be a Demand")

    @property
    def target(self) -> int:
        return self.gas_limit // self.elasticity


@dataclass(frozen=True, slots=True)
class Demand:
    """Other users' demand in a block: ``gas`` at priority ``tip`` (wei per gas), from
    users who stop sending once the base fee passes ``max_fee``."""

    gas: int
    tip: int
    max_fee: int = 1_000 * GWEI

    def __post_init__(self) -> None:
        check_int("gas", self.gas, 0)
        check_int("tip", self.tip, 0)
        check_int("max_fee", self.max_fee, 0)


@dataclass(frozen=True, slots=True)
class Congestion:
    """From block ``start`` to block ``end`` (exclusive) a crowd bids ``tip`` for ``gas``
    more gas per block (a mint, a market-wide panic, a gas spike), up to a base fee of
    ``max_fee``."""

    start: int
    end: int
    gas: int
    tip: int
    max_fee: int = 1_000 * GWEI

    def __post_init__(self) -> None:
        check_int("start", self.start, 0)
        check_int("end", self.end, self.start)
        check_int("gas", self.gas, 0)
        check_int("tip", self.tip, 0)
        check_int("max_fee", self.max_fee, 0)


@dataclass(frozen=True, slots=True)
class Tx:
    """A keeper's transaction: ``gas`` it burns, ``max_fee`` and ``tip`` (wei per gas),
    the first block it can be included in (``ready``), and the action it carries."""

    id: str
    sender: str
    gas: int
    max_fee: int
    tip: int
    ready: int
    payload: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise InvalidArgument(f"tx id={self.id!r} must be a non-empty string")
        check_int("gas", self.gas, 1)
        check_int("max_fee", self.max_fee, 0)
        check_int("tip", self.tip, 0)
        check_int("ready", self.ready, 0)


@dataclass(frozen=True, slots=True)
class Block:
    """A produced block: its number and time, the base fee its transactions paid, the
    keepers' transactions included (in order) with the fee per gas each paid, the gas used
    (everyone's), and the transactions dropped for waiting too long."""

    number: int
    ts: int
    base_fee: int
    included: tuple[tuple[Tx, int], ...]
    gas_used: int
    dropped: tuple[Tx, ...] = ()


def next_base_fee(base: int, gas_used: int, target: int, min_base_fee: int = 0) -> int:
    """EIP-1559's update (module doc)."""
    check_int("base", base, 0)
    check_int("gas_used", gas_used, 0)
    check_int("target", target, 1)
    if gas_used > target:
        new = base + max(base * (gas_used - target) // target // 8, 1)
    else:
        new = base - base * (target - gas_used) // target // 8
    return max(new, min_base_fee)


class Chain:
    """The mempool and the blocks (module doc). ``submit`` then ``produce`` once a block."""

    def __init__(self, params: ChainParams, t0: int, congestion: Sequence[Congestion] = ()):
        if not isinstance(params, ChainParams):
            raise InvalidArgument(f"params={params!r} must be ChainParams")
        self.params = params
        self.t0 = check_int("t0", t0, 0)
        for c in congestion:
            if not isinstance(c, Congestion):
                raise InvalidArgument(f"congestion={c!r} must be a Congestion")
        self.congestion = tuple(congestion)
        self.number = 0
        self.base_fee = params.base_fee
        self._pending: dict[str, Tx] = {}

    @property
    def ts(self) -> int:
        """The time of the next block."""
        return self.t0 + self.number * self.params.block_s

    def pending(self) -> tuple[Tx, ...]:
        return tuple(self._pending[k] for k in sorted(self._pending))

    def submit(self, tx: Tx) -> None:
        """Add ``tx`` to the mempool; a used id is refused (replace with ``drop`` first)."""
        if not isinstance(tx, Tx):
            raise InvalidArgument(f"tx={tx!r} must be a Tx")
        if tx.id in self._pending:
            raise InvalidArgument(f"tx id={tx.id!r} is already pending")
        if tx.gas > self.params.gas_limit:
            raise InvalidArgument(f"tx {tx.id!r} gas={tx.gas} exceeds the block gas limit")
        self._pending[tx.id] = tx

    def drop(self, tx_id: str) -> Tx | None:
        return self._pending.pop(tx_id, None)

    def demand(self, number: int) -> list[Demand]:
        """Other users' demand in block ``number``: the calm demand plus every congestion
        episode covering it."""
        out = [self.params.demand]
        out += [
            Demand(c.gas, c.tip, c.max_fee) for c in self.congestion if c.start <= number < c.end
        ]
        return out

    def produce(self) -> Block:
        """Build the next block (module doc) and update the base fee."""
        n, base, limit = self.number, self.base_fee, self.params.gas_limit
        ready = [tx for tx in self._pending.values() if tx.ready <= n and tx.max_fee >= base]
        # (effective tip, is a keeper tx, ready, id): the crowd's lots sort among the keepers'
        bids: list[tuple[int, int, int, str, int, Tx | None]] = [
            (-min(tx.tip, tx.max_fee - base), 1, tx.ready, tx.id, tx.gas, tx) for tx in ready
        ]
        bids += [
            (-min(d.tip, d.max_fee - base), 0, 0, "", d.gas, None)
            for d in self.demand(n)
            if d.gas and d.max_fee >= base
        ]
        bids.sort(key=lambda b: b[:4])
        used = 0
        included: list[tuple[Tx, int]] = []
        for neg_tip, _, _, _, gas, tx in bids:
            room = limit - used
            if tx is None:
                used += min(gas, room)  # the crowd fills what is left at its tip
                continue
            if gas <= room:
                used += gas
                included.append((tx, base - neg_tip))
                del self._pending[tx.id]
        expired = [tx for tx in self._pending.values() if tx.ready + self.params.ttl <= n]
        for tx in expired:
            del self._pending[tx.id]
        block = Block(n, self.ts, base, tuple(included), used, tuple(expired))
        self.base_fee = next_base_fee(base, used, self.params.target, self.params.min_base_fee)
        self.number += 1
        return block
