"""Backstop-pool liquidation: Liquity's Stability Pool behind the mechanism interface.

Depositors pre-fund the backstop pool (the ledger account ``ctx.system.backstop_pool``) with
quote. A liquidation closes the account's positions to the keeper and lets the pool *bid
internally*: it pays the account's debt out of the deposits and takes the account's spot
collateral in exchange, depositors sharing the loss and the gain pro rata through
``backstop.BackstopPool`` (Liquity's ``P``/``S``/scale/epoch accounting, exact).

For a liquidatable account with quote cash ``c``, spot collateral balances ``X_a``
(``ctx.collateral``) and positions (all integers, quote base units unless said):

1. **Close-out.** Every position moves to ``ctx.keeper`` at its mark exactly as ``FixedFee``
   (perps at the index; options at Black-76, rounded against the account), giving cash
   ``c1 = c + Σ fill cash``. ``notional = Σ ceil(|size|·index / 10**size_decimals)``,
   ``penalty = ceil(penalty_rate · notional / RATE_SCALE)``.
2. **Keeper.** ``R = min(keeper_reward.reward(penalty, gas_price, quote_per_gas), penalty)``
   (``keeper.KeeperReward``: tip + share of the penalty + gas, capped; Liquity's gas
   compensation), paid from the penalty, always in quote, by the account:
   ``c2 = c1 − R``. When ``c2 < 0`` the pool (then the waterfall) funds it as part of the
   debt, as Liquity's 200 LUSD gas compensation is part of the trove's debt;
   ``KeeperReward.reserved_requirement`` in the margin keeps that from happening.
3. **Cash.** The rest of the penalty is paid in cash as far as it goes:
   ``paid = min(penalty − R, max(c2, 0))``, ``c3 = c2 − paid``; the debt is
   ``D = max(−c3, 0)`` and the penalty still owed ``owed = penalty − R − paid``
   (``paid > 0`` implies ``D = 0``).
4. **Collateral seized** (Liquity's Recovery-Mode cap): with ``T = D + owed`` and each
   asset's value at the index, *without* haircut, ``v_a = X_a·index·rate /
   (RATE_SCALE·10**decimals)`` (``rate`` the LST exchange rate, else ``RATE_SCALE``) and
   ``V = Σ v_a`` (exact rationals): the account gives ``u_a = X_a`` if ``V <= T``, else
   ``u_a = floor(X_a · T / V)`` (pro rata, so ``Σ value(u_a) <= T``); ``X_a − u_a`` stays
   with the account (surplus).
5. **Offset.** ``off = min(D, pool.max_offset())`` (``backstop``: ``total − min(keep,
   total)``; ``keep = 0`` is deployed Liquity v1, which may empty the pool and start a new
   epoch, ``keep = 10**18``-like is HEAD). The pool pays ``off`` to the account and burns it
   from the deposits (``P`` falls); the rest ``D − off`` goes to the redistribution (5b,
   ``red = 0`` without it), then down the waterfall (``settle.settle`` over the insurance
   fund only: ``from_fund = min(D − off − red, fund)``), and what is left, ``uncovered``,
   is booked against ``ctx.system.bad_debt`` (the account ends at cash 0, never negative).
   Whoever pays the debt gets the seized collateral pro rata, with cumulative floors:
   ``pool_a = floor(u_a·off/D)``, ``red_a = floor(u_a·(off + red)/D) − pool_a``, ``fund_a
   = floor(u_a·(off + red + from_fund)/D) − pool_a − red_a``, ``bad_a = u_a − pool_a −
   red_a − fund_a`` (Liquity's ``collToSP = coll·debtToOffset/debt``; the uncovered part's
   collateral is a recovery held by the bad-debt entry). Depositors gain ``pool_a`` through
   ``S[a]``.

   5b. **Redistribution** (``redistribute=True``; Liquity's redistribution when the pool
   cannot absorb the debt). With ``d = D − off > 0`` and ``ctx.holders`` given, the stakes
   are ``b_i`` = the quote balances ``ctx.holders()`` reports (user accounts other than the
   account and the keeper, ``b_i > 0``; system accounts are left out), ``B = Σ b_i``.
   Holder ``i`` pays ``h_i`` quote to the account, ``loss.socialised_loss(d, b, …)``:
   ``red = min(d, B)``, ``h_i = floor(red·b_i/B)`` and the ``red − Σ floor`` leftover units
   one each to the largest remainders ``red·b_i mod B`` (ties: smaller account id), so
   ``Σ h_i = red`` and ``h_i <= b_i`` (when ``B <= d`` each pays its whole balance). It
   receives ``r_{i,a} = floor(red_a·h_i/red)`` of each asset, the ``red_a − Σ floor``
   leftover units one each to the largest remainders ``red_a·h_i mod red`` (ties: smaller
   account id), so ``Σ_i r_{i,a} = red_a`` exactly. ``d − red`` continues to the insurance
   fund, then ``uncovered``. Unlike Liquity, whose ``L_ETH``/``L_LUSDDebt`` accumulators
   leave the debt and the collateral *pending* on every active trove by its collateral
   *stake* (``backstop.Redistribution``), this is *eager* (paid in the liquidation's own
   transaction: the ledger has no pending debt to carry, and an account's debt is its
   negative quote cash) and the stakes are *quote balances*, not collateral stakes: a
   holder pays in quote from what it holds, so a holder is never charged more than its
   balance and never pushed below zero. The collateral it gets, worth about
   ``h_i·value(u)/D`` at the index (more than ``h_i`` when the seized collateral is worth
   more than the debt, less when the account's collateral did not cover its debt), is its
   compensation, as a trove's pending collateral is in Liquity.
6. **No debt** (``D = 0``): the pool receives the quote ``paid`` and all of ``u_a`` as
   *gains*: ``S[a] += floor((x·PREC + err)/total)·P`` with ``P`` unchanged (the gain half
   of Liquity's offset; the quote is one more gain asset, paid out by ``claim``). With no
   deposits (``total = 0``) those go to the insurance fund instead.

Plan figures: ``keeper_reward = R``; ``insurance_fee`` = the quote penalty that went to the
insurance fund (no depositors); ``pool_fee`` = the quote penalty the depositors gained;
``protocol_fee = 0``; ``penalty = R + insurance_fee + pool_fee`` (the identity of
``LiquidationPlan``; the whole charge, ``penalty_charged``, and the collateral the pool
received are in the memo); ``bad_debt_covered = off + from_fund``, ``bad_debt_socialised
= red``, ``bad_debt_uncovered``, so ``D = covered + socialised + uncovered``; ``seized =
max(c − final cash + floor(Σ value(u_a)), 0)``. With ``redistribute`` the memo also carries
``bad_debt_socialised``, ``redistribution_haircuts`` (holder -> ``h_i``, non-zero only),
``collateral_redistributed`` (asset -> ``red_a``) and ``collateral_to_holders`` (holder ->
asset -> ``r_{i,a}``); without it the memo is as before.

State and its life cycle
------------------------

The mechanism holds the pool's accounting (``state``: deposits, ``P``, ``S``, scale,
epoch, errors; ``version`` counts the operations applied). ``plan`` reads it and moves
nothing; the transaction's memo carries the pool operation (``memo["pool"]``: ``op``,
``version``, amounts), and ``commit(plan)`` replays that operation on the state once the
ledger has committed the transaction (the engine calls it; a tx id already applied is a
no-op, a plan computed at another version is refused). ``deposit`` / ``withdraw`` /
``claim`` move money between a depositor and the pool account in one ledger transaction
each (with the gains paid out, as Liquity's ``provideToSP``/``withdrawFromSP``) and apply
it. ``restore(ledger)`` rebuilds the state from the committed transactions' memos in log
order, so a restarted engine continues; ``mark()``/``rollback(mark)`` undo the commits of a
ledger batch that rolled back. Invariants: the pool account's quote balance is
``total + gains held in quote`` (plus anything paid in from outside); ``Σ compounded
deposits <= total``; per asset ``Σ gains <= held`` (every division floors against the
depositor; the dust stays in the pool).

Liquity's *redistribution* is offered eagerly over quote balances (step 5b,
``redistribute=True``; off by default: the remainder then goes to the insurance fund and
the bad-debt entry). The redistribution moves no pool state: ``commit``/``restore`` are
unchanged by it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from liqeng.errors import InvalidArgument, Refused, StorageCorrupt
from liqeng.ids import AccountId, AssetId, check_id, tx_id
from liqeng.ledger.core import Ledger, Receipt
from liqeng.ledger.events import decode
from liqeng.ledger.model import AccountKind, PositionChange, Posting, Transaction
from liqeng.liquidation import backstop as bs
from liqeng.liquidation.base import LiquidationContext, LiquidationPlan
from liqeng.liquidation.keeper import KeeperReward
from liqeng.liquidation.loss import socialised_loss
from liqeng.liquidation.settle import settle
from liqeng.liquidation.waterfall import Waterfall
from liqeng.market.instruments import EuropeanOption, SpotCollateral
from liqeng.market.marks import exact_mark, mark_price
from liqeng.market.trading import fill
from liqeng.units import RATE_SCALE, Asset, check_int, mul_div_up

if TYPE_CHECKING:
    from liqeng.engine import Engine

__all__ = ["DEPOSIT_KIND", "WITHDRAW_KIND", "BackstopPool", "PoolMark"]

DEPOSIT_KIND: Final = "backstop-pool.deposit"
WITHDRAW_KIND: Final = "backstop-pool.withdraw"
_FUND_ONLY: Final = Waterfall(("insurance_fund",))


@dataclass(frozen=True, slots=True)
class PoolMark:
    """What ``rollback`` returns to: the state, its version and how many tx ids were applied."""

    state: bs.BackstopPool
    version: int
    applied: int


def _units(name: str, items: object) -> dict[AssetId, int]:
    """A memo's ``{asset: "units"}`` back to ints (non-negative)."""
    if not isinstance(items, Mapping):
        raise StorageCorrupt(f"{name}={items!r} is not a mapping asset -> units")
    return {
        AssetId(check_id(name, a)): check_int(f"{name}[{a}]", int(u), 0) for a, u in items.items()
    }


def _frozen(d: Mapping[AssetId, int]) -> Mapping[AssetId, int]:
    return MappingProxyType({k: d[k] for k in sorted(d)})


def _text(d: Mapping[AssetId, int]) -> dict[str, str]:
    return {a: str(d[a]) for a in sorted(d) if d[a]}


def _reward(state: bs.BackstopPool, gains: Mapping[AssetId, int]) -> bs.BackstopPool:
    """The gain half of ``backstop.BackstopPool.offset`` without a loss: per asset
    ``g = (x·PREC + err) // total``, ``err' = x·PREC + err − g·total``, ``S[a][epoch][scale]
    += g·P``; ``P``, scale and epoch unchanged; the pool holds ``x`` more of ``a``."""
    d = state.total
    if d <= 0:
        raise InvalidArgument(f"gains={dict(gains)} with no deposits (total={d})")
    prec = state.precision
    errors = dict(state.gain_errors)
    sums = dict(state.sums)
    held = dict(state.collateral)
    for a in sorted(gains):
        x = check_int(f"gain[{a}]", gains[a], 0)
        if x == 0:
            continue
        num = x * prec + errors.get(a, 0)
        g = num // d
        errors[a] = num - g * d
        key = (a, state.epoch, state.scale)
        sums[key] = sums.get(key, 0) + g * state.p
        held[a] = held.get(a, 0) + x
    return replace(
        state,
        sums=MappingProxyType(sums),
        gain_errors=_frozen(errors),
        collateral=_frozen(held),
    )


def _haircuts(
    ctx: LiquidationContext, holders: Mapping[AccountId, int], d: int
) -> dict[AccountId, int]:
    """What each holder pays of ``d`` (module doc, step 5b): ``socialised_loss`` over the
    positive balances of ``holders`` (the account, the keeper and the system accounts left
    out, should a custom ``ctx.holders`` name them); zero haircuts dropped."""
    s = ctx.system
    excluded = {ctx.account, ctx.keeper, s.insurance_fund, s.settlement, s.bad_debt}
    excluded |= {s.fee_sink, s.backstop_pool}
    stakes = {a: b for a, b in holders.items() if a not in excluded and b > 0}
    sl = socialised_loss(d, stakes, s.bad_debt, ctx.quote)
    return {a: h for a, h in sl.haircuts.items() if h}


def _pro_rata(x: int, weights: Mapping[AccountId, int]) -> dict[AccountId, int]:
    """``x`` split pro rata to positive ``weights``: ``floor(x·w_i/W)`` each, then the
    ``x − Σ floor`` leftover units one each to the largest remainders ``x·w_i mod W``, ties
    to the smaller account id. ``Σ == x``; every holder is returned, sorted by id."""
    total = sum(weights.values())
    out = {a: x * weights[a] // total for a in sorted(weights)}
    left = x - sum(out.values())
    for a in sorted(out, key=lambda a: (-(x * weights[a] % total), a))[:left]:
        out[a] += 1
    return out


def _keeper_reward(value: object) -> KeeperReward:
    if value is None:
        return KeeperReward(tip=0, share=RATE_SCALE // 2)
    if isinstance(value, KeeperReward):
        return value
    if isinstance(value, Mapping):
        try:
            return KeeperReward(**dict(value))
        except TypeError as exc:
            raise InvalidArgument(f"keeper_reward={dict(value)!r}: {exc}") from None
    raise InvalidArgument(f"keeper_reward={value!r} must be a KeeperReward or a mapping")


class BackstopPool:
    """The ``backstop-pool`` mechanism (module doc). Keyword parameters:

    ``penalty_rate`` (parts per ``RATE_SCALE`` of the closed notional, ``0..RATE_SCALE``);
    ``keeper_reward`` (a ``KeeperReward`` or a mapping of its fields; default: half the
    penalty); ``keep`` (quote units the pool never offsets: 0 is Liquity v1, ``>0`` HEAD's
    ``MIN_LUSD_IN_SP``); ``precision`` (Liquity's ``DECIMAL_PRECISION``, a perfect square);
    ``account`` and ``quote`` (the pool's ledger account and quote asset id, learnt from the
    engine or the first liquidation when not given); ``name`` (the mechanism name the
    memos carry; ``restore`` reads only its own); ``redistribute`` (share the debt the pool
    cannot offset among the other users before the insurance fund, module doc, step 5b)."""

    def __init__(
        self,
        *,
        penalty_rate: int = 50_000_000,
        keeper_reward: KeeperReward | Mapping[str, int] | None = None,
        keep: int = 0,
        precision: int = bs.LIQUITY_PRECISION,
        account: str | None = None,
        quote: str | None = None,
        name: str = "backstop-pool",
        redistribute: bool = False,
    ) -> None:
        self.penalty_rate = check_int("penalty_rate", penalty_rate, 0, RATE_SCALE)
        self.keeper_reward = _keeper_reward(keeper_reward)
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"name={name!r} must be a non-empty str")
        self.name = name
        if not isinstance(redistribute, bool):
            raise InvalidArgument(f"redistribute={redistribute!r} must be a bool")
        self.redistribute = redistribute
        self.account = None if account is None else AccountId(check_id("account", account))
        self.quote = None if quote is None else AssetId(check_id("quote", quote))
        self._empty = bs.BackstopPool.new(precision, keep)
        self._state = self._empty
        self._version = 0
        self._applied: dict[str, int] = {}

    # ------------------------------------------------------------------ views

    @property
    def state(self) -> bs.BackstopPool:
        """The pool's accounting (frozen; see ``backstop.BackstopPool``)."""
        return self._state

    @property
    def version(self) -> int:
        """How many pool operations have been applied."""
        return self._version

    def applied(self, txid: str) -> bool:
        """Whether the pool operation of ``txid`` is in the state."""
        return txid in self._applied

    def compounded_deposit(self, depositor: AccountId) -> int:
        """The depositor's deposit after losses (0 without a deposit)."""
        if depositor not in self._state.deposits:
            return 0
        return self._state.compounded_deposit(depositor)

    def gains(self, depositor: AccountId) -> Mapping[AssetId, int]:
        """Gains ``claim`` would pay the depositor, per asset (the quote included)."""
        if depositor not in self._state.deposits:
            return {}
        return self._state.collateral_gain(depositor)

    def depositors(self) -> tuple[AccountId, ...]:
        return tuple(sorted(self._state.deposits))

    def mark(self) -> PoolMark:
        """A point to ``rollback`` to (e.g. taken when a ledger batch starts)."""
        return PoolMark(self._state, self._version, len(self._applied))

    def rollback(self, mark: PoolMark) -> None:
        """Undo every operation applied since ``mark`` (its ledger batch rolled back)."""
        if not isinstance(mark, PoolMark) or mark.applied > len(self._applied):
            raise InvalidArgument(f"mark={mark!r} is not a mark of this pool's past")
        while len(self._applied) > mark.applied:
            self._applied.popitem()
        self._state, self._version = mark.state, mark.version

    # ------------------------------------------------------------------ plan

    def plan(self, ctx: LiquidationContext) -> LiquidationPlan:
        if not ctx.risk.is_liquidatable:
            raise Refused(
                "liquidation/not-liquidatable",
                f"{ctx.account}: equity={ctx.risk.equity} >= "
                f"maintenance_margin={ctx.risk.maintenance_margin}",
            )
        if ctx.keeper == ctx.account:
            raise InvalidArgument(f"keeper={ctx.keeper!r} cannot liquidate itself")
        pool_acct = self._bound_account(ctx.system.backstop_pool)
        quote_id = self._bound_quote(ctx.quote.id)
        q = ctx.quote
        postings, changes, notional = _close_out(ctx)
        c1 = ctx.cash + sum(
            p.amount.units for p in postings if p.account == ctx.account and p.asset == q.id
        )
        penalty = mul_div_up(notional, self.penalty_rate, RATE_SCALE)
        reward = min(self.keeper_reward.reward(penalty, ctx.gas_price, ctx.quote_per_gas), penalty)
        c2 = c1 - reward
        paid = min(penalty - reward, max(c2, 0))
        c3 = c2 - paid
        debt = max(-c3, 0)
        owed = penalty - reward - paid
        seized, seized_value = _seize(ctx, debt + owed)
        state = self._state
        off = min(debt, state.max_offset())
        cuts: dict[AccountId, int] = {}
        if self.redistribute and debt > off and ctx.holders is not None:
            cuts = _haircuts(ctx, ctx.holders(), debt - off)
        red = sum(cuts.values())
        st = settle(replace(ctx, backstop_pool_balance=0), 0, debt - off - red, 0, 0, _FUND_ONLY)
        from_fund, uncovered = st.covered, st.uncovered
        depositors = state.total > 0
        to_pool: dict[AssetId, int] = {}
        to_holders: dict[AssetId, int] = {}
        to_fund: dict[AssetId, int] = {}
        to_bad: dict[AssetId, int] = {}
        received: dict[AccountId, dict[AssetId, int]] = {}
        for spec in sorted(seized, key=lambda s: s.asset.id):
            u, a = seized[spec], spec.asset.id
            if debt:
                p = u * off // debt
                r = u * (off + red) // debt - p
                f = u * (off + red + from_fund) // debt - p - r
                b = u - p - r - f
            else:
                p, r, f, b = (u, 0, 0, 0) if depositors else (0, 0, u, 0)
            to_pool[a], to_fund[a], to_bad[a] = p, f, b
            moves = [(ctx.account, -u), (pool_acct, p)]
            if cuts:
                to_holders[a] = r
                for holder, units in _pro_rata(r, cuts).items():
                    moves.append((holder, units))
                    if units:
                        received.setdefault(holder, {})[a] = units
            moves += [(ctx.system.insurance_fund, f), (ctx.system.bad_debt, b)]
            for acct, units in moves:
                if units:
                    postings.append(Posting(acct, spec.asset.units(units)))
        insurance_fee = 0 if depositors else paid
        pool_fee = paid if depositors else 0
        quote_moves = (
            (ctx.account, -reward - paid + off),
            (ctx.keeper, reward),
            (pool_acct, (paid if depositors else 0) - off),
            (ctx.system.insurance_fund, insurance_fee),
        )
        postings += [Posting(a, q.units(u)) for a, u in quote_moves if u]
        for holder, h in cuts.items():  # the holders pay their haircuts to the account
            if h:
                postings += [Posting(holder, q.units(-h)), Posting(ctx.account, q.units(h))]
        postings += st.postings
        op: dict[str, Any] = {
            "account": pool_acct,
            "quote": quote_id,
            "version": str(self._version),
        }
        if off:
            op |= {"op": "offset", "debt": str(off), "collateral": _text(to_pool)}
        elif depositors and (paid or any(to_pool.values())):
            gains = {**to_pool, q.id: paid}
            op |= {"op": "reward", "gains": _text(gains)}
        else:
            op |= {"op": "none"}
        covered = off + from_fund
        final_cash = max(c3, 0)
        seized_total = max(ctx.cash - final_cash + seized_value, 0)
        memo = {
            "account": ctx.account,
            "keeper": ctx.keeper,
            "mechanism": self.name,
            "equity": str(ctx.risk.equity),
            "maintenance_margin": str(ctx.risk.maintenance_margin),
            "notional": str(notional),
            "seized": str(seized_total),
            "penalty": str(reward + insurance_fee + pool_fee),
            "keeper_reward": str(reward),
            "insurance_fee": str(insurance_fee),
            "protocol_fee": "0",
            "pool_fee": str(pool_fee),
            "bad_debt_covered": str(covered),
            "bad_debt_uncovered": str(uncovered),
            "penalty_charged": str(penalty),
            "penalty_paid_in_cash": str(paid),
            "debt": str(debt),
            "pool_offset": str(off),
            "insurance_fund_cover": str(from_fund),
            "collateral_seized": _text({s.asset.id: u for s, u in seized.items()}),
            "collateral_seized_value": str(seized_value),
            "collateral_to_pool": _text(to_pool),
            "collateral_to_insurance_fund": _text(to_fund),
            "collateral_to_bad_debt": _text(to_bad),
            "pool": op,
        }
        if self.redistribute:
            memo |= {
                "bad_debt_socialised": str(red),
                "redistribution_haircuts": {h: str(cuts[h]) for h in sorted(cuts) if cuts[h]},
                "collateral_redistributed": _text(to_holders),
                "collateral_to_holders": {h: _text(received[h]) for h in sorted(received)},
            }
        tx = Transaction(ctx.tx_id, "liquidation", tuple(postings), tuple(changes), memo)
        return LiquidationPlan(
            tx,
            notional,
            seized_total,
            reward + insurance_fee + pool_fee,
            reward,
            insurance_fee,
            0,
            covered,
            uncovered,
            red,
            pool_fee=pool_fee,
        )

    def commit(self, plan: LiquidationPlan) -> None:
        """Apply ``plan``'s pool operation once its transaction committed (the engine calls
        it for a created receipt). A tx id already applied is a no-op; a plan computed at
        another version of the pool raises ``InvalidArgument`` (plan it again)."""
        tx = plan.transaction
        if tx.memo.get("mechanism") != self.name or not isinstance(tx.memo.get("pool"), Mapping):
            raise InvalidArgument(f"plan {tx.id!r} is not a {self.name!r} liquidation")
        self._commit(tx.id, tx.memo["pool"], live=True)

    # ------------------------------------------------------------- deposits

    def deposit(
        self, target: Ledger | Engine, depositor: AccountId, amount: int, txid: str
    ) -> Receipt:
        """Move ``amount`` quote from ``depositor`` into the pool and pay out its gains
        (Liquity's ``provideToSP``), in one ledger transaction; apply it to the state. A
        retried ``txid`` returns its receipt and changes nothing."""
        check_int("amount", amount, 1)
        return self._move(target, DEPOSIT_KIND, "deposit", depositor, amount, txid)

    def withdraw(
        self, target: Ledger | Engine, depositor: AccountId, amount: int, txid: str
    ) -> Receipt:
        """Pay ``amount`` (at most the compounded deposit) and every gain out of the pool
        to ``depositor`` (Liquity's ``withdrawFromSP``)."""
        check_int("amount", amount, 0)
        return self._move(target, WITHDRAW_KIND, "withdraw", depositor, amount, txid)

    def claim(self, target: Ledger | Engine, depositor: AccountId, txid: str) -> Receipt:
        """Pay ``depositor``'s gains (collateral and quote) out; its deposit stays."""
        return self.withdraw(target, depositor, 0, txid)

    def _move(
        self,
        target: Ledger | Engine,
        kind: str,
        op_name: str,
        depositor: AccountId,
        amount: int,
        txid: str,
    ) -> Receipt:
        ledger, pool_acct, quote = self._target(target)
        tx_id(txid)
        who = AccountId(check_id("depositor", depositor))
        done = ledger.committed(txid)
        if done is not None:
            receipt, tx = done
            op = tx.memo.get("pool")
            if (
                tx.kind != kind
                or tx.memo.get("mechanism") != self.name
                or not isinstance(op, Mapping)
                or op.get("depositor") != who
                or op.get("amount") != str(amount)
            ):
                raise Refused(
                    "ledger/exists-with-different-content",
                    f"tx_id={txid!r} committed {tx.kind} at seq {receipt.seq}",
                )
            return receipt
        if ledger.accounts.get(who) is not AccountKind.USER:
            raise InvalidArgument(f"depositor={who!r} is not an open user account")
        if pool_acct not in ledger.accounts:
            raise InvalidArgument(f"backstop pool account={pool_acct!r} is not open")
        if op_name == "deposit":
            _, payout = self._state.deposit(who, amount)
        elif who not in self._state.deposits:
            raise InvalidArgument(f"depositor={who!r} has no deposit in the pool")
        else:
            _, payout = self._state.withdraw(who, amount)
        sign = 1 if op_name == "withdraw" else -1
        postings: list[Posting] = []
        if amount:
            postings += [
                Posting(who, quote.units(sign * amount)),
                Posting(pool_acct, quote.units(-sign * amount)),
            ]
        for a in sorted(payout.collateral):
            g = payout.collateral[a]
            if g:
                asset = ledger.assets[a]
                postings += [Posting(pool_acct, asset.units(-g)), Posting(who, asset.units(g))]
        op = {
            "op": op_name,
            "account": pool_acct,
            "quote": quote.id,
            "version": str(self._version),
            "depositor": who,
            "amount": str(amount),
            "payout": _text(payout.collateral),
        }
        memo = {"mechanism": self.name, "pool": op}
        receipt = ledger.apply(Transaction(txid, kind, tuple(postings), (), memo))
        if receipt.created:
            self._commit(txid, op, live=True)
        return receipt

    # -------------------------------------------------------------- restore

    def restore(self, ledger: Ledger) -> None:
        """Rebuild the state from ``ledger``'s committed log: every transaction whose memo
        names this mechanism and carries a pool operation (for this pool's account), in log
        order. Call it outside a batch (events of an open batch are not yet in storage). The
        state is replaced only if the whole log replays (``StorageCorrupt`` otherwise)."""
        if not isinstance(ledger, Ledger):
            raise InvalidArgument(f"ledger={ledger!r} must be a Ledger")
        saved = (self._state, self._version, self._applied, self.account, self.quote)
        self._state, self._version, self._applied = self._empty, 0, {}
        try:
            for txid, memo in _memos(ledger):
                op = memo.get("pool")
                if memo.get("mechanism") != self.name or not isinstance(op, Mapping):
                    continue
                if self.account is not None and op.get("account") != self.account:
                    continue
                self._commit(txid, op, live=False)
        except BaseException:
            self._state, self._version, self._applied, self.account, self.quote = saved
            raise

    # ------------------------------------------------------------- internals

    def _bound_account(self, account: AccountId) -> AccountId:
        if self.account is not None and account != self.account:
            raise InvalidArgument(
                f"backstop pool account={account!r} differs from this pool's {self.account!r}"
            )
        return account

    def _bound_quote(self, quote: AssetId) -> AssetId:
        if self.quote is not None and quote != self.quote:
            raise InvalidArgument(f"quote={quote!r} differs from this pool's {self.quote!r}")
        return quote

    def _target(self, target: Ledger | Engine) -> tuple[Ledger, AccountId, Asset]:
        if isinstance(target, Ledger):
            ledger = target
            if self.account is None or self.quote is None:
                raise InvalidArgument(
                    f"pool account={self.account!r} / quote={self.quote!r} unknown: pass the "
                    "engine, or build the mechanism with account= and quote="
                )
            acct, quote_id = self.account, self.quote
        else:
            ledger = target.ledger
            acct = self._bound_account(target.system.backstop_pool)
            quote_id = self._bound_quote(target.quote.id)
        quote = ledger.assets.get(quote_id)
        if quote is None:
            raise InvalidArgument(f"quote={quote_id!r} is not registered in the ledger")
        return ledger, acct, quote

    def _commit(self, txid: str, op: Mapping[str, Any], *, live: bool) -> None:
        if txid in self._applied:
            return
        kind = op.get("op")
        acct = AccountId(check_id("pool account", op.get("account")))
        quote = AssetId(check_id("quote", op.get("quote")))
        if kind == "none":
            self._applied[txid] = self._version
            return
        version = int(op.get("version", -1))
        if version != self._version:
            msg = f"{txid!r} was computed at pool version {version}, the pool is at {self._version}"
            if live:
                raise InvalidArgument(msg + ": plan it again")
            raise StorageCorrupt(msg)
        state = self._state
        try:
            if kind == "offset":
                state, _ = state.offset(int(op["debt"]), _units("collateral", op["collateral"]))
            elif kind == "reward":
                state = _reward(state, _units("gains", op["gains"]))
            elif kind in ("deposit", "withdraw"):
                who = AccountId(op["depositor"])
                amount = int(op["amount"])
                if kind == "deposit":
                    state, payout = state.deposit(who, amount)
                else:
                    state, payout = state.withdraw(who, amount)
                if _text(payout.collateral) != dict(op["payout"]):
                    raise StorageCorrupt(
                        f"{txid!r}: payout {_text(payout.collateral)} differs from the "
                        f"logged {dict(op['payout'])}"
                    )
            else:
                raise StorageCorrupt(f"{txid!r}: unknown pool operation {kind!r}")
        except (KeyError, TypeError, ValueError) as exc:
            if live and isinstance(exc, InvalidArgument):
                raise
            raise StorageCorrupt(f"{txid!r}: pool operation {dict(op)!r}: {exc}") from None
        self.account, self.quote = self._bound_account(acct), self._bound_quote(quote)
        self._state, self._version = state, self._version + 1
        self._applied[txid] = self._version


def _memos(ledger: Ledger) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(tx_id, memo)`` of every committed transaction, in log order (``Ledger`` has no
    public log reader yet: this reads its storage's ``event_rows``)."""
    events = getattr(ledger, "events", None)
    rows = events() if callable(events) else ledger._storage.event_rows()
    for row in rows:
        if isinstance(row, tuple):  # an ``EventRow``
            kind, txid, body = row[2], row[3], row[4]
        else:  # an ``Event``
            kind, txid, body = row.kind, row.tx_id, row.body
        if kind.startswith("ledger."):
            continue
        memo = decode(body).get("memo")
        if isinstance(memo, Mapping):
            yield txid, memo


def _close_out(ctx: LiquidationContext) -> tuple[list[Posting], list[PositionChange], int]:
    """Every position to the keeper at its mark, as ``FixedFee`` (its step 1): postings,
    position changes and the notional ``Σ ceil(|size|·index / 10**sd)``."""
    q = ctx.quote
    postings: list[Posting] = []
    changes: list[PositionChange] = []
    notional = 0
    for iid in sorted(ctx.positions):
        pos = ctx.positions[iid]
        inst = ctx.instruments[iid]
        index = ctx.market.index_prices[inst.underlying]
        sd = inst.size_decimals
        notional += mul_div_up(abs(pos.size), index, 10**sd)
        now, settlement = ctx.market.now_ts, ctx.market.settlements.get(iid)
        exact = exact_mark(inst, index, now, settlement)
        if exact is not None:
            price = exact
        else:
            mark = Fraction(mark_price(inst, index, now, ctx.market.vol(inst.underlying)))
            price = math.ceil(mark) if pos.size < 0 else math.floor(mark)
        buyer, seller = (ctx.keeper, ctx.account) if pos.size > 0 else (ctx.account, ctx.keeper)
        f = fill(
            buyer=buyer,
            seller=seller,
            instrument=iid,
            size=abs(pos.size),
            price=price,
            size_decimals=sd,
            premium=isinstance(inst, EuropeanOption),
            quote=q,
            buyer_position=ctx.keeper_positions.get(iid) if buyer == ctx.keeper else pos,
            seller_position=ctx.keeper_positions.get(iid) if seller == ctx.keeper else pos,
            settlement=ctx.system.settlement,
        )
        postings += f.postings
        changes += f.position_changes
    return postings, changes, notional


def _value(ctx: LiquidationContext, spec: SpotCollateral, units: int) -> Fraction:
    """``units·index·rate / (RATE_SCALE·10**decimals)`` exactly: the value at the index
    price, no haircut (an LST at its exchange rate)."""
    index = ctx.market.index_prices.get(spec.underlying)
    if index is None:
        raise Refused("liquidation/stale-price", f"no index price for {spec.underlying}")
    rate = RATE_SCALE
    if spec.exchange_rate:
        r = ctx.market.exchange_rates.get(spec.asset.id)
        if r is None:
            raise InvalidArgument(f"collateral {spec.asset.id} needs an exchange rate")
        rate = check_int(f"exchange_rate of {spec.asset.id}", r, 1)
    return Fraction(units * index * rate, RATE_SCALE * 10**spec.asset.decimals)


def _seize(ctx: LiquidationContext, target: int) -> tuple[dict[SpotCollateral, int], int]:
    """The collateral taken (module doc, step 4) and ``floor`` of its value at the index."""
    held = {s: b for s, b in (ctx.collateral or {}).items() if b > 0}
    if target <= 0 or not held:
        return {}, 0
    values = {s: _value(ctx, s, b) for s, b in held.items()}
    total = sum(values.values(), Fraction(0))
    if total <= target:
        return held, math.floor(total)
    taken = {s: math.floor(b * Fraction(target) / total) for s, b in held.items()}
    taken = {s: u for s, u in taken.items() if u}
    value = sum((_value(ctx, s, u) for s, u in taken.items()), Fraction(0))
    return taken, math.floor(value)
