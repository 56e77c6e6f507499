"""Backstop pool: Liquity's Stability Pool accounting, and redistribution.

Depositors pre-fund a pool of the debt asset. A liquidation *offsets* debt against the pool
(burns ``debt`` units of the deposits) and hands the pool the account's collateral; each
depositor loses and gains pro rata to their deposit, tracked in O(1) per offset with a
running product ``P`` and sums ``S`` (one per collateral asset), exactly as
``liquity/dev:packages/contracts/contracts/StabilityPool.sol``. With ``PREC = precision``
(Liquity: ``DECIMAL_PRECISION = 1e18``) and ``SF = isqrt(PREC)`` (Liquity: ``SCALE_FACTOR =
1e9``), an offset of ``debt`` and ``coll`` against total deposits ``D``:

* ``gain = (coll·PREC + lastGainError) // D``; ``lastGainError = coll·PREC + err − gain·D``
* ``loss = PREC`` and ``lastLossError = 0`` if ``debt == D`` (the pool empties); otherwise
  ``num = max(debt·PREC − lastLossError, 0)``, ``loss = num // D + 1`` (the ``+1`` makes the
  error favour the pool) and ``lastLossError = loss·D − num``;
* ``S[epoch][scale] += gain·P`` (before ``P`` changes), then with ``f = PREC − loss``:
  ``f == 0`` → ``epoch += 1, scale = 0, P = PREC`` (deployed v1, LQTY-4b);
  ``P·f // PREC < SF`` → ``P = P·f·SF // PREC, scale += 1``, and if that is still below
  ``SF``, ``P = P·f·SF² // PREC, scale += 2`` (HEAD's double scale change, so ``P`` never
  falls below ``SF`` and keeps at least ``log10(SF)`` digits); else ``P = P·f // PREC``.

A depositor with snapshot ``(d0, P0, S0, scale0, epoch0)`` has

* ``compounded = 0`` if ``epoch0 < epoch``; ``d0·P // P0`` if the scale is unchanged;
  ``d0·P // P0 // SF`` after one scale change; ``0`` after two; and ``0`` if below
  ``d0 // SF``;
* ``gain = d0·(S[epoch0][scale0] − S0 + S[epoch0][scale0+1] // SF) // P0 // PREC``.

Every division floors, against the depositor: the sum of compounded deposits never exceeds
the pool's ``total`` and the sum of gains never exceeds the collateral received; what is
left over (dust) stays in the pool, counted, owned by nobody.

Semantics chosen explicitly (anchors §2.3 caveat): ``keep=0`` is the deployed v1 pool
(an offset may empty it, and the epoch increments); ``keep=10**18`` is HEAD (PR #1044:
``getMaxAmountToOffset = total − min(keep, total)``, the pool never empties). Both use
HEAD's double scale change and underflow guards, which only differ from v1 where v1 would
have let ``P`` lose precision. HEAD's refusal of *withdrawals* below ``keep`` is not
modelled: ``max_offset`` simply shrinks.

``Redistribution`` is Liquity's ``L_ETH``/``L_LUSDDebt`` (``TroveManager``): when the pool
cannot absorb a debt, the rest is shared among all stakes pro rata, with error feedback:
``L += (x·PREC + lastError) // totalStakes``; an account's pending reward is
``stake·(L − L_snapshot) // PREC``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from liqeng.errors import InvalidArgument
from liqeng.ids import AccountId, AssetId, check_id
from liqeng.units import check_int

__all__ = [
    "LIQUITY_PRECISION",
    "BackstopPool",
    "DepositSnapshot",
    "OffsetResult",
    "Payout",
    "Redistribution",
    "RedistributionSnapshot",
    "offset_and_redistribution",
]

LIQUITY_PRECISION = 10**18
"""Liquity's ``DECIMAL_PRECISION``; its ``SCALE_FACTOR`` is ``isqrt`` of it, ``1e9``."""

_EMPTY: Mapping[AssetId, int] = MappingProxyType({})


def _frozen(d: Mapping[AssetId, int]) -> Mapping[AssetId, int]:
    return MappingProxyType({k: d[k] for k in sorted(d)})


def _account(who: object) -> AccountId:
    return AccountId(check_id("depositor", who))


def _collateral(collateral: object) -> dict[AssetId, int]:
    if not isinstance(collateral, Mapping):
        raise InvalidArgument(f"collateral={collateral!r} must be a mapping asset -> units")
    out: dict[AssetId, int] = {}
    for a, v in collateral.items():
        aid = AssetId(check_id("collateral asset", a))
        out[aid] = check_int(f"collateral[{aid}]", v, 0)
    return out


def _precision(precision: object) -> int:
    p = check_int("precision", precision, 4)
    sf = math.isqrt(p)
    if sf * sf != p:
        raise InvalidArgument(f"precision={p} must be a perfect square (scale factor = isqrt)")
    return p


@dataclass(frozen=True, slots=True)
class DepositSnapshot:
    """``initial`` = d0, the deposit when last touched, with ``P``, ``S`` (per asset), scale
    and epoch at that moment."""

    initial: int
    p: int
    s: Mapping[AssetId, int]
    scale: int
    epoch: int


@dataclass(frozen=True, slots=True)
class Payout:
    """What leaves the pool to a depositor: debt-asset units and collateral gains."""

    deposit: int
    collateral: Mapping[AssetId, int]


@dataclass(frozen=True, slots=True)
class OffsetResult:
    """The per-unit-staked figures of one offset (Liquity's names in comments)."""

    debt: int
    collateral: Mapping[AssetId, int]
    loss_per_unit_staked: int  # LUSDLossPerUnitStaked
    gain_per_unit_staked: Mapping[AssetId, int]  # ETHGainPerUnitStaked
    p: int
    scale: int
    epoch: int


@dataclass(frozen=True, slots=True)
class BackstopPool:
    """The pool's whole state; every operation returns a new pool and leaves this one.

    Build with ``BackstopPool.new()`` (v1, may empty) or ``BackstopPool.new(keep=10**18)``
    (HEAD, keeps 1 LUSD). ``total`` is the debt-asset units held (``totalLUSDDeposits``);
    ``collateral`` the gains held until depositors touch their deposit.
    """

    precision: int = LIQUITY_PRECISION
    keep: int = 0
    total: int = 0
    p: int = LIQUITY_PRECISION
    scale: int = 0
    epoch: int = 0
    sums: Mapping[tuple[AssetId, int, int], int] = field(
        default_factory=lambda: MappingProxyType({})
    )
    loss_error: int = 0  # lastLUSDLossError_Offset
    gain_errors: Mapping[AssetId, int] = field(default_factory=lambda: _EMPTY)  # lastETHError
    deposits: Mapping[AccountId, DepositSnapshot] = field(
        default_factory=lambda: MappingProxyType({})
    )
    collateral: Mapping[AssetId, int] = field(default_factory=lambda: _EMPTY)

    @staticmethod
    def new(precision: int = LIQUITY_PRECISION, keep: int = 0) -> BackstopPool:
        """An empty pool: ``P = precision``, scale 0, epoch 0."""
        prec = _precision(precision)
        check_int("keep", keep, 0)
        return BackstopPool(precision=prec, keep=keep, p=prec)

    @property
    def scale_factor(self) -> int:
        return math.isqrt(self.precision)

    # --- views -----------------------------------------------------------------------

    def _snapshot(self, who: object) -> DepositSnapshot:
        acct = _account(who)
        snap = self.deposits.get(acct)
        if snap is None:
            raise InvalidArgument(f"depositor={acct!r} has no deposit in the pool")
        return snap

    def compounded_deposit(self, who: AccountId) -> int:
        """``d0·P/P0`` with Liquity's scale and epoch rules (module docstring), floored."""
        snap = self._snapshot(who)
        if snap.epoch < self.epoch:
            return 0
        sf = self.scale_factor
        diff = self.scale - snap.scale
        if diff == 0:
            c = snap.initial * self.p // snap.p
        elif diff == 1:
            c = snap.initial * self.p // snap.p // sf
        else:
            c = 0
        return 0 if c < snap.initial // sf else c

    def collateral_gain(self, who: AccountId) -> Mapping[AssetId, int]:
        """Per asset: ``d0·(S[e0][s0] − S0 + S[e0][s0+1] // SF) // P0 // PREC``."""
        snap = self._snapshot(who)
        sf = self.scale_factor
        out: dict[AssetId, int] = {}
        for a in sorted({a for a, _, _ in self.sums}):
            first = self.sums.get((a, snap.epoch, snap.scale), 0) - snap.s.get(a, 0)
            second = self.sums.get((a, snap.epoch, snap.scale + 1), 0) // sf
            g = snap.initial * (first + second) // snap.p // self.precision
            if g:
                out[a] = g
        return _frozen(out)

    def max_offset(self) -> int:
        """``total − min(keep, total)``, or 0 if that is too small to charge (HEAD guard)."""
        avail = self.total - min(self.keep, self.total)
        return 0 if avail * self.precision <= self.loss_error else avail

    # --- operations ------------------------------------------------------------------

    def _with_deposit(self, who: AccountId, initial: int) -> dict[AccountId, DepositSnapshot]:
        deposits = dict(self.deposits)
        if initial == 0:
            deposits.pop(who, None)
            return deposits
        s = {a: v for (a, e, sc), v in self.sums.items() if e == self.epoch and sc == self.scale}
        deposits[who] = DepositSnapshot(initial, self.p, _frozen(s), self.scale, self.epoch)
        return deposits

    def _pay(self, gains: Mapping[AssetId, int]) -> Mapping[AssetId, int]:
        held = dict(self.collateral)
        for a, g in gains.items():
            held[a] -= g
        return _frozen(held)

    def deposit(self, who: AccountId, amount: int) -> tuple[BackstopPool, Payout]:
        """``provideToSP``: pay out the collateral gain, then ``d0 = compounded + amount``
        with fresh snapshots. ``amount > 0``."""
        acct = _account(who)
        check_int("amount", amount, 1)
        if acct in self.deposits:
            compounded, gains = self.compounded_deposit(acct), self.collateral_gain(acct)
        else:
            compounded, gains = 0, _EMPTY
        pool = replace(
            self,
            total=self.total + amount,
            deposits=MappingProxyType(self._with_deposit(acct, compounded + amount)),
            collateral=self._pay(gains),
        )
        return pool, Payout(0, gains)

    def withdraw(self, who: AccountId, amount: int) -> tuple[BackstopPool, Payout]:
        """``withdrawFromSP``: pay ``amount`` (at most the compounded deposit) and the whole
        collateral gain; the rest stays with fresh snapshots. ``amount = 0`` just claims."""
        acct = _account(who)
        check_int("amount", amount, 0)
        compounded = self.compounded_deposit(acct)
        if amount > compounded:
            raise InvalidArgument(
                f"amount={amount} exceeds the compounded deposit {compounded} of {acct}"
            )
        gains = self.collateral_gain(acct)
        pool = replace(
            self,
            total=self.total - amount,
            deposits=MappingProxyType(self._with_deposit(acct, compounded - amount)),
            collateral=self._pay(gains),
        )
        return pool, Payout(amount, gains)

    def offset(
        self, debt: int, collateral: Mapping[AssetId, int]
    ) -> tuple[BackstopPool, OffsetResult]:
        """Burn ``debt`` of the deposits (``0 <= debt <= max_offset()``) and receive
        ``collateral``; updates ``S`` then ``P`` as in the module docstring."""
        check_int("debt", debt, 0)
        coll = _collateral(collateral)
        if debt == 0:
            if any(coll.values()):
                raise InvalidArgument(f"debt=0 with collateral={coll}: nothing to offset")
            return self, OffsetResult(0, _EMPTY, 0, _EMPTY, self.p, self.scale, self.epoch)
        cap = self.max_offset()
        if debt > cap:
            raise InvalidArgument(
                f"debt={debt} exceeds max_offset={cap} (total={self.total}, keep={self.keep})"
            )
        prec, sf, d = self.precision, self.scale_factor, self.total
        gain_errors = dict(self.gain_errors)
        gains: dict[AssetId, int] = {}
        for a, c in coll.items():
            num = c * prec + gain_errors.get(a, 0)
            gains[a] = num // d
            gain_errors[a] = num - gains[a] * d
        if debt == d:
            loss, loss_error = prec, 0
        else:
            num = max(debt * prec - self.loss_error, 0)
            loss = num // d + 1
            loss_error = loss * d - num
        sums = dict(self.sums)
        for a, g in gains.items():
            key = (a, self.epoch, self.scale)
            sums[key] = sums.get(key, 0) + g * self.p
        factor = prec - loss
        p, scale, epoch = self.p, self.scale, self.epoch
        if factor == 0:
            p, scale, epoch = prec, 0, epoch + 1
        elif p * factor // prec < sf:
            new_p, scale = p * factor * sf // prec, scale + 1
            if new_p < sf:
                new_p, scale = p * factor * sf * sf // prec, scale + 1
            p = new_p
        else:
            p = p * factor // prec
        held = dict(self.collateral)
        for a, c in coll.items():
            held[a] = held.get(a, 0) + c
        pool = replace(
            self,
            total=d - debt,
            p=p,
            scale=scale,
            epoch=epoch,
            sums=MappingProxyType(sums),
            loss_error=loss_error,
            gain_errors=_frozen(gain_errors),
            collateral=_frozen(held),
        )
        return pool, OffsetResult(debt, _frozen(coll), loss, _frozen(gains), p, scale, epoch)


def offset_and_redistribution(debt: int, collateral: int, max_offset: int) -> tuple[int, int]:
    """Liquity's ``_getOffsetAndRedistributionVals``: ``(debt_to_offset, coll_to_pool)``
    with ``debt_to_offset = min(debt, max_offset)`` and ``coll_to_pool =
    collateral·debt_to_offset // debt``; the rest of both is redistributed."""
    check_int("debt", debt, 0)
    check_int("collateral", collateral, 0)
    check_int("max_offset", max_offset, 0)
    off = min(debt, max_offset)
    return off, (collateral * off // debt if debt else 0)


@dataclass(frozen=True, slots=True)
class RedistributionSnapshot:
    """An account's ``(L_coll, L_debt)`` when its rewards were last applied."""

    l_coll: int
    l_debt: int


@dataclass(frozen=True, slots=True)
class Redistribution:
    """Liquity's redistribution state: stakes, ``L_ETH`` / ``L_LUSDDebt`` and their error
    feedback. ``coll_in``/``debt_in`` count everything redistributed (the DefaultPool);
    ``coll_out``/``debt_out`` what has been applied to accounts, so
    ``coll_in − coll_out − Σ pending coll`` is the undistributed rounding remainder, never
    negative and never dropped (same for debt)."""

    precision: int = LIQUITY_PRECISION
    stakes: Mapping[AccountId, int] = field(default_factory=lambda: MappingProxyType({}))
    snapshots: Mapping[AccountId, RedistributionSnapshot] = field(
        default_factory=lambda: MappingProxyType({})
    )
    l_coll: int = 0
    l_debt: int = 0
    coll_error: int = 0  # lastETHError_Redistribution
    debt_error: int = 0  # lastLUSDDebtError_Redistribution
    coll_in: int = 0
    debt_in: int = 0
    coll_out: int = 0
    debt_out: int = 0

    @staticmethod
    def of(stakes: Mapping[AccountId, int], precision: int = LIQUITY_PRECISION) -> Redistribution:
        """Stakes (Liquity: the trove's collateral) per account; zero stakes are dropped."""
        check_int("precision", precision, 1)
        clean: dict[AccountId, int] = {}
        for a in sorted(stakes):
            acct = _account(a)
            v = check_int(f"stake[{acct}]", stakes[a], 0)
            if v:
                clean[acct] = v
        snaps = {a: RedistributionSnapshot(0, 0) for a in clean}
        return Redistribution(precision, MappingProxyType(clean), MappingProxyType(snaps))

    @property
    def total_stakes(self) -> int:
        return sum(self.stakes.values())

    def pending(self, who: AccountId) -> tuple[int, int]:
        """``(stake·(L_coll − L0_coll) // PREC, stake·(L_debt − L0_debt) // PREC)``."""
        acct = _account(who)
        if acct not in self.stakes:
            raise InvalidArgument(f"account={acct!r} has no stake in the redistribution")
        s, snap = self.stakes[acct], self.snapshots[acct]
        return (
            s * (self.l_coll - snap.l_coll) // self.precision,
            s * (self.l_debt - snap.l_debt) // self.precision,
        )

    def undistributed(self) -> tuple[int, int]:
        """``(coll, debt)`` redistributed but not yet attributable to any account."""
        pc = pd = 0
        for a in self.stakes:
            c, d = self.pending(a)
            pc, pd = pc + c, pd + d
        return self.coll_in - self.coll_out - pc, self.debt_in - self.debt_out - pd

    def redistribute(self, debt: int, collateral: int) -> Redistribution:
        """``L += (x·PREC + lastError) // totalStakes`` for collateral and debt; the error
        ``x·PREC + lastError − ΔL·totalStakes`` feeds the next call."""
        check_int("debt", debt, 0)
        check_int("collateral", collateral, 0)
        total = self.total_stakes
        if total == 0:
            if debt or collateral:
                raise InvalidArgument(
                    f"debt={debt}, collateral={collateral}: no stakes to redistribute to"
                )
            return self
        cn = collateral * self.precision + self.coll_error
        dn = debt * self.precision + self.debt_error
        dc, dd = cn // total, dn // total
        return replace(
            self,
            l_coll=self.l_coll + dc,
            l_debt=self.l_debt + dd,
            coll_error=cn - dc * total,
            debt_error=dn - dd * total,
            coll_in=self.coll_in + collateral,
            debt_in=self.debt_in + debt,
        )

    def set_stake(self, who: AccountId, stake: int) -> tuple[Redistribution, tuple[int, int]]:
        """``applyPendingRewards`` then ``updateStake``: returns the new state and the
        ``(coll, debt)`` moved onto the account; ``stake = 0`` removes it."""
        acct = _account(who)
        check_int("stake", stake, 0)
        reward = self.pending(acct) if acct in self.stakes else (0, 0)
        stakes, snaps = dict(self.stakes), dict(self.snapshots)
        if stake:
            stakes[acct] = stake
            snaps[acct] = RedistributionSnapshot(self.l_coll, self.l_debt)
        else:
            stakes.pop(acct, None)
            snaps.pop(acct, None)
        state = replace(
            self,
            stakes=MappingProxyType(stakes),
            snapshots=MappingProxyType(snaps),
            coll_out=self.coll_out + reward[0],
            debt_out=self.debt_out + reward[1],
        )
        return state, reward
