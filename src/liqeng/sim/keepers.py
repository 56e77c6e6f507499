"""Keepers as agents: capital, reaction latency, a gas-bidding strategy, failures, and the
profit they keep after gas and inventory.

Each block every keeper looks at the state the engine reports (the liquidatable accounts,
the running auctions) and, unless it fails this block (probability ``failure_rate``, drawn
from the run's seeded generator), sends one transaction per opportunity it has not already
sent, with priority ``tip`` and ``max_fee = base fee · 2 + tip`` (or its fixed cap); the
transaction can be included ``latency`` blocks later (``chain.Tx.ready``) and executes
against the state and price of the block that includes it. A keeper pays gas for every
included transaction, refused or not (a race lost to another keeper costs its gas).
Expected profit decides whether to act: an opportunity worth less than ``gas cost +
min_profit`` is left alone.

What a keeper does per mechanism:

* fixed fee / backstop pool: ``liquidate`` an eligible account (worth its share of the
  penalty, estimated as ``keeper share · min(penalty_rate · notional, equity⁺)``);
* Dutch auction: ``take`` all of a lot when its concession (the discount under the mark)
  covers gas and ``min_profit``, with ``max_price`` the price it saw;
* English (flip) auction: ``tend`` a bid of ``bid_fraction`` of the lot's mark value, if
  that beats the standing bid by the auction's ``beg``.

PnL = rewards and discounts received − gas paid − inventory loss (what it took over,
sold into the market at a price moved by its own size, against the mark).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from liqeng.errors import InvalidArgument
from liqeng.ids import AccountId
from liqeng.units import check_int

__all__ = ["GAS_UNITS", "Keeper", "KeeperSpec"]

GAS_UNITS = {"liquidate": 600_000, "take": 400_000, "tend": 200_000, "deal": 150_000}
"""Gas one keeper transaction burns, by action."""


@dataclass(frozen=True, slots=True)
class KeeperSpec:
    """A kind of keeper; ``count`` of them run (``name-0``, ``name-1``, …). ``capital`` in
    whole quote units; ``latency`` blocks; ``tip_gwei`` priority fee; ``failure_rate`` the
    chance to miss a block; ``min_profit`` in whole quote units; ``bid_fraction`` of the
    mark value an English-auction bid offers; ``max_fee_gwei`` a fixed fee cap (a bot
    configured with a static gas price: its transactions wait in the mempool while the base
    fee is above it; ``None``: it follows the base fee, ``2·base + tip``); ``offline``
    ``[start_s, end_s)`` from the run's start: the keeper sends nothing then (an outage)."""

    name: str
    count: int = 1
    capital: int = 1_000_000
    latency: int = 1
    tip_gwei: float = 2.0
    failure_rate: float = 0.0
    min_profit: float = 0.0
    bid_fraction: float = 0.9
    max_fee_gwei: float | None = None
    offline: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.offline is not None:
            window = tuple(self.offline)
            if len(window) != 2 or not all(isinstance(t, int) for t in window):
                raise InvalidArgument(
                    f"keeper {self.name}: offline={self.offline!r} must be [start_s, end_s]"
                )
            check_int("offline end_s", window[1], window[0])
            object.__setattr__(self, "offline", window)
        if not isinstance(self.name, str) or not self.name.replace("-", "").isalnum():
            raise InvalidArgument(f"keeper name={self.name!r} must be letters, digits and -")
        check_int("count", self.count, 1, 10_000)
        check_int("capital", self.capital, 0)
        check_int("latency", self.latency, 0, 10_000)
        for name, lo, hi in (
            ("tip_gwei", 0.0, 1e6),
            ("failure_rate", 0.0, 1.0),
            ("min_profit", 0.0, 1e12),
            ("bid_fraction", 0.0, 1.0),
            ("max_fee_gwei", 0.0, 1e7),
        ):
            if name == "max_fee_gwei" and getattr(self, name) is None:
                continue
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise InvalidArgument(f"keeper {self.name}: {name}={v!r} must be in [{lo}, {hi}]")

    @property
    def tip(self) -> int:
        """The priority fee in wei per gas."""
        return round(self.tip_gwei * 10**9)


@dataclass(slots=True)
class Keeper:
    """One running keeper: its account, its spec, what it has in flight (by target) and
    its books (quote base units)."""

    account: AccountId
    spec: KeeperSpec
    in_flight: set[str] = field(default_factory=set)
    sent: int = 0
    included: int = 0
    refused: int = 0
    won: int = 0
    gas_paid: int = 0
    received: int = 0
    inventory: int = 0

    @property
    def pnl(self) -> int:
        """``received − gas_paid + inventory`` (inventory: the market's price for what it
        took over, against the mark; negative when its own sale moved the price)."""
        return self.received - self.gas_paid + self.inventory
