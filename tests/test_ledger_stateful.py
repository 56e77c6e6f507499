"""A Hypothesis state machine over the ledger on a real SQLite file.

Random deposits, transfers, perp trades, fixed-fee liquidations, idempotent retries,
reopenings and deliberately failing transactions; a dict model predicts every balance.
After every step: conservation and the other named invariants hold, the ledger equals the
model, and a failed transaction changed nothing (same state digest, same log head).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from tests.conftest import USDC, WORLD

from liqeng.clock import SimClock
from liqeng.errors import Refused
from liqeng.ids import AccountId, InstrumentId, TxId
from liqeng.ledger.core import Ledger
from liqeng.ledger.model import AccountKind, AccountSpec, Posting, Transaction
from liqeng.ledger.sqlite import SqliteStorage
from liqeng.liquidation.base import LiquidationContext, SystemAccounts
from liqeng.liquidation.fixed_fee import FixedFee
from liqeng.market.instruments import EuropeanOption, Perpetual
from liqeng.market.trading import fill
from liqeng.risk.margin import AccountRisk
from liqeng.risk.models import MarketData

USERS = [AccountId(f"t/u{i}") for i in range(4)]
SYSTEM = SystemAccounts.of("t")
PERP = Perpetual(InstrumentId("t/ETH-PERP"), "ETH", USDC, 6)
PUT = EuropeanOption(InstrumentId("t/ETH-1500-P"), "ETH", USDC, 6, 1_500_000_000, 10**7, False)
INSTRUMENTS = {PERP.id: PERP, PUT.id: PUT}
users = st.sampled_from(USERS)
units = st.integers(1, 10**12)
prices = st.integers(1_000_000, 10_000_000_000)  # $1 .. $10,000


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # a real SQLite file; on tmpfs where there is one, so fsync does not dominate
        shm = Path("/dev/shm")
        self.dir = tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None)
        self.path = Path(self.dir.name) / "l.sqlite"
        self.clock = SimClock(1_000)
        self.model: dict[tuple[str, str], int] = {}
        self.n = 0
        self.committed: list[Transaction] = []

    def teardown(self) -> None:
        self.ledger._storage.close()
        self.dir.cleanup()

    def txid(self) -> TxId:
        self.n += 1
        return TxId(f"tx{self.n}")

    @initialize()
    def setup(self) -> None:
        self.ledger = Ledger(SqliteStorage(self.path), self.clock, snapshot_every=7)
        self.ledger.register_asset(USDC)
        kinds = [
            (WORLD, AccountKind.EXTERNAL),
            (SYSTEM.insurance_fund, AccountKind.SYSTEM),
            (SYSTEM.fee_sink, AccountKind.SYSTEM),
            (SYSTEM.settlement, AccountKind.SETTLEMENT),
            (SYSTEM.bad_debt, AccountKind.BAD_DEBT),
        ]
        for acc, kind in [*kinds, *((u, AccountKind.USER) for u in USERS)]:
            self.ledger.open_account(AccountSpec(acc, kind))
        self.ledger.list_instrument(PERP.spec())
        self.ledger.list_instrument(PUT.spec())

    def commit(self, tx: Transaction) -> bool:
        """Apply; on refusal the state must be untouched, on success the model moves."""
        before = (self.ledger.state_digest(), self.ledger.seq, self.ledger.head)
        expect_ok = self.model_accepts(tx)
        try:
            self.ledger.apply(tx)
        except Refused:
            assert not expect_ok, f"ledger refused {tx} that the model accepts"
            assert (self.ledger.state_digest(), self.ledger.seq, self.ledger.head) == before
            return False
        assert expect_ok, f"ledger accepted {tx} that the model refuses"
        for p in tx.postings:
            key = (p.account, p.asset)
            self.model[key] = self.model.get(key, 0) + p.amount.units
        self.committed.append(tx)
        return True

    def model_accepts(self, tx: Transaction) -> bool:
        after: dict[tuple[str, str], int] = {}
        for p in tx.postings:
            key = (p.account, p.asset)
            after[key] = after.get(key, self.model.get(key, 0)) + p.amount.units
        negative_ok = {WORLD, SYSTEM.settlement, SYSTEM.bad_debt}
        return all(v >= 0 or k[0] in negative_ok for k, v in after.items())

    @rule(account=users, amount=units)
    def deposit(self, account: AccountId, amount: int) -> None:
        self.commit(
            Transaction(
                self.txid(),
                "deposit",
                (Posting(WORLD, USDC.units(-amount)), Posting(account, USDC.units(amount))),
            )
        )

    @rule(
        src=users, dst=st.sampled_from([*USERS, SYSTEM.insurance_fund]), percent=st.integers(1, 110)
    )
    def transfer(self, src: AccountId, dst: AccountId, percent: int) -> None:
        """Up to 110% of the balance: some succeed, some overdraw and must fail whole."""
        amount = max(1, self.model.get((src, USDC.id), 0) * percent // 100)
        if src != dst:
            self.commit(
                Transaction(
                    self.txid(),
                    "transfer",
                    (Posting(src, USDC.units(-amount)), Posting(dst, USDC.units(amount))),
                )
            )

    @rule(
        buyer=users,
        seller=users,
        inst=st.sampled_from([PERP, PUT]),
        size=st.integers(1, 10**8),
        price=prices,
    )
    def trade(
        self,
        buyer: AccountId,
        seller: AccountId,
        inst: Perpetual | EuropeanOption,
        size: int,
        price: int,
    ) -> None:
        """A perp fill (PnL through settlement) or an option fill (premium paid now)."""
        if buyer == seller:
            return
        f = fill(
            buyer=buyer,
            seller=seller,
            instrument=inst.id,
            size=size,
            price=price // 10 if inst is PUT else price,
            size_decimals=6,
            premium=inst is PUT,
            quote=USDC,
            buyer_position=self.ledger.position(buyer, inst.id),
            seller_position=self.ledger.position(seller, inst.id),
            settlement=SYSTEM.settlement,
        )
        self.commit(Transaction(self.txid(), "trade", f.postings, f.position_changes))

    @rule(account=users, keeper=users, price=prices)
    def liquidate(self, account: AccountId, keeper: AccountId, price: int) -> None:
        positions = self.ledger.positions_of(account)
        if account == keeper or not positions:
            return
        ctx = LiquidationContext(
            tx_id=self.txid(),
            account=account,
            keeper=keeper,
            quote=USDC,
            cash=self.ledger.balance_units(account, USDC.id),
            positions=positions,
            keeper_positions=self.ledger.positions_of(keeper),
            instruments=INSTRUMENTS,
            market=MarketData(self.clock.now(), {"ETH": price}),
            risk=AccountRisk(equity=0, maintenance_margin=1),  # forced: tests the money flow
            insurance_fund_balance=self.ledger.balance_units(SYSTEM.insurance_fund, USDC.id),
            backstop_pool_balance=0,
            system=SYSTEM,
            collateral={},
        )
        plan = FixedFee(protocol_share=100_000_000).plan(ctx)  # 50% keeper, 10% fee sink
        if not self.commit(plan.transaction):
            return  # the keeper could not pay for what it took: refused, nothing moved
        assert self.ledger.positions_of(account) == {}
        assert self.ledger.balance_units(account, USDC.id) >= 0
        assert plan.bad_debt_covered + plan.bad_debt_uncovered >= 0
        assert plan.penalty == plan.keeper_reward + plan.insurance_fee + plan.protocol_fee

    @rule(account=users, amount=units)
    def overdraft_fails(self, account: AccountId, amount: int) -> None:
        have = self.model.get((account, USDC.id), 0)
        self.commit(
            Transaction(
                self.txid(),
                "withdraw",
                (
                    Posting(account, USDC.units(-(have + amount))),
                    Posting(WORLD, USDC.units(have + amount)),
                ),
            )
        )

    @rule(account=users, amount=units)
    def unbalanced_fails(self, account: AccountId, amount: int) -> None:
        before = self.ledger.state_digest()
        try:
            self.ledger.apply(
                Transaction(self.txid(), "mint", (Posting(account, USDC.units(amount)),))
            )
        except Refused as exc:
            assert exc.code == "ledger/unbalanced"
        else:
            raise AssertionError("an unbalanced transaction committed")
        assert self.ledger.state_digest() == before

    @precondition(lambda self: bool(self.committed))
    @rule(data=st.data())
    def retry_is_idempotent(self, data: st.DataObject) -> None:
        tx = data.draw(st.sampled_from(self.committed))
        before = self.ledger.state_digest()
        assert not self.ledger.apply(tx).created
        assert self.ledger.state_digest() == before

    @rule(seconds=st.integers(0, 3600))
    def advance_clock(self, seconds: int) -> None:
        self.clock.set(self.clock.now() + seconds)

    @rule()
    def reopen(self) -> None:
        digest, head = self.ledger.state_digest(), self.ledger.head
        self.ledger._storage.close()
        self.ledger = Ledger(SqliteStorage(self.path), self.clock, snapshot_every=7)
        assert (self.ledger.state_digest(), self.ledger.head) == (digest, head)

    @invariant()
    def named_invariants_hold(self) -> None:
        self.ledger.check_invariants()

    @invariant()
    def ledger_equals_model(self) -> None:
        actual = {k: v for k, v in self.ledger.balances().items() if v}
        assert actual == {k: v for k, v in self.model.items() if v}


LedgerMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerMachine = LedgerMachine.TestCase


class LongLedgerMachine(LedgerMachine):
    pass


LongLedgerMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLongLedgerMachine = pytest.mark.slow(LongLedgerMachine.TestCase)
