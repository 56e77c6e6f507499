"""Throughput limits: how much the engine may liquidate per block and per window, so a crash
is worked off without dumping more than the market can absorb.

* Per block (``block = now // block_s``), as dYdX v4: at most ``max_notional_per_block``
  notional closed over all markets, and at most ``max_loss_per_block`` of bad debt covered
  by the funded stages (insurance fund, backstop pool); a liquidation that would cover more
  waits for the next block (the first cover in a block may pass it, else a larger loss
  would never clear). With ``per_account`` both count one account's liquidations only
  (dYdX's subaccount block limits); otherwise all accounts'.
* Per market and rolling window ``(now - window_s, now]``, as Synthetix v3: a capacity of
  ``capacity_share · liquidity[m]`` notional, ``liquidity[m]`` the driver's figure for
  what market ``m`` absorbs per window (its order-book depth or AMM liquidity, quote units).

An account of notional ``N`` with ``N_m`` in market ``m`` may close at most::

    allowed = min(block room, min_m floor(room_m · N / N_m))

of notional, so closing a uniform slice keeps every market within its room. The engine
passes ``allowed`` to the mechanism as ``max_notional`` and records what it closed. The
state is the driver's sequence of liquidations, replayed bit for bit; a restarted engine
starts with empty windows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from liqeng.errors import InvalidArgument
from liqeng.units import RATE_SCALE, check_int

__all__ = ["Limits", "Throttle"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Seconds ``block_s``, ``window_s`` (``>= 1``); notional and loss limits in quote base
    units (``None``: no limit); ``capacity_share`` in parts per ``RATE_SCALE`` of a market's
    liquidity per window (``None``: no capacity limit)."""

    block_s: int = 1
    max_notional_per_block: int | None = None
    max_loss_per_block: int | None = None
    window_s: int = 60
    capacity_share: int | None = None
    per_account: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.per_account, bool):
            raise InvalidArgument(f"per_account={self.per_account!r} must be a bool")
        check_int("block_s", self.block_s, 1)
        check_int("window_s", self.window_s, 1)
        for name in ("max_notional_per_block", "max_loss_per_block"):
            value = getattr(self, name)
            if value is not None:
                check_int(name, value, 0)
        if self.capacity_share is not None:
            check_int("capacity_share", self.capacity_share, 0, RATE_SCALE)


@dataclass(frozen=True, slots=True)
class _Used:
    ts: int
    account: str
    by_market: tuple[tuple[str, int], ...]
    notional: int
    loss: int


class Throttle:
    """The limits' state: what was liquidated recently."""

    def __init__(self, limits: Limits) -> None:
        if not isinstance(limits, Limits):
            raise InvalidArgument(f"limits={limits!r} must be Limits")
        self.limits = limits
        self._used: tuple[_Used, ...] = ()

    def snapshot(self) -> tuple[_Used, ...]:
        return self._used

    def restore(self, snapshot: tuple[_Used, ...]) -> None:
        self._used = snapshot

    def _recent(self, now: int) -> tuple[_Used, ...]:
        lim = self.limits
        horizon = max(lim.window_s, lim.block_s)
        self._used = tuple(u for u in self._used if u.ts > now - horizon)
        return self._used

    def _block(self, now: int, account: str) -> tuple[_Used, ...]:
        b, mine = now // self.limits.block_s, self.limits.per_account
        return tuple(
            u
            for u in self._recent(now)
            if u.ts // self.limits.block_s == b and (not mine or u.account == account)
        )

    def allowed(
        self, now: int, by_market: Mapping[str, int], liquidity: Mapping[str, int], account: str
    ) -> int | None:
        """The most notional ``account``, with notional ``by_market`` (market ->
        notional), may close now (module doc); ``None`` when nothing limits it."""
        lim = self.limits
        total = sum(by_market.values())
        allowed: int | None = None
        if lim.max_notional_per_block is not None:
            used = sum(u.notional for u in self._block(now, account))
            allowed = max(lim.max_notional_per_block - used, 0)
        if lim.capacity_share is not None:
            recent = [u for u in self._recent(now) if u.ts > now - lim.window_s]
            for m, n_m in sorted(by_market.items()):
                if n_m == 0:
                    continue
                depth = liquidity.get(m)
                if depth is None:
                    raise InvalidArgument(
                        f"market {m!r} has no liquidity figure (Engine.liquidity) and "
                        f"capacity_share={lim.capacity_share} is set"
                    )
                cap = check_int(f"liquidity[{m!r}]", depth, 0) * lim.capacity_share
                cap //= RATE_SCALE
                used = sum(n for u in recent for mk, n in u.by_market if mk == m)
                room = max(cap - used, 0) * total // n_m
                allowed = room if allowed is None else min(allowed, room)
        return allowed

    def loss_room(self, now: int, account: str) -> int | None:
        """Bad debt the funded stages may still cover in this block for ``account``
        (``None``: no limit)."""
        cap = self.limits.max_loss_per_block
        if cap is None:
            return None
        return max(cap - sum(u.loss for u in self._block(now, account)), 0)

    def record(
        self, now: int, by_market: Mapping[str, int], notional: int, loss: int, account: str
    ) -> None:
        """Count a committed liquidation that closed ``notional`` (split over markets as the
        account's ``by_market``, rounded up) and covered ``loss`` from funded stages."""
        total = sum(by_market.values())
        split = tuple(
            (m, -(-notional * n_m // total) if total else 0) for m, n_m in sorted(by_market.items())
        )
        self._used = (*self._recent(now), _Used(now, account, split, notional, loss))
