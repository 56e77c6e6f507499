"""One engine step: oracle -> risk -> liquidation -> ledger -> events.

``Engine.step(now, reports)`` accepts source reports, aggregates the index prices,
records them in the log, re-margins every account holding positions with the exact
integer path, and liquidates the liquidatable ones in ``(health, account_id)`` order,
all inside one ledger batch (one durable database transaction). ``Engine.liquidate`` is
the same path a keeper's request takes: eligibility is re-checked against the oracle
price current at execution, never the price the keeper saw. The engine reads no clock
and no random generator: ``now`` and the reports come from the driver.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from liqeng.errors import InvalidArgument, LiqengError, Refused
from liqeng.ids import AccountId, InstrumentId, TxId, tx_id
from liqeng.ledger.core import Ledger
from liqeng.ledger.model import AccountKind, Position
from liqeng.liquidation.base import LiquidationContext, LiquidationPlan, Mechanism, SystemAccounts
from liqeng.market.instruments import Instrument
from liqeng.oracle.median import MedianOracle, PriceReport
from liqeng.risk.margin import AccountRisk, MarginParams, account_risk
from liqeng.units import Asset

__all__ = ["Engine", "Liquidation", "StepReport"]


@dataclass(frozen=True, slots=True)
class Liquidation:
    account: AccountId
    seq: int
    health: str
    plan: LiquidationPlan


@dataclass(frozen=True, slots=True)
class StepReport:
    now: int
    index_prices: Mapping[str, int]
    rejected_reports: tuple[str, ...] = ()
    liquidations: tuple[Liquidation, ...] = ()
    underwater: tuple[AccountId, ...] = field(default=())


class Engine:
    """Sequences one protocol's step over a ledger, an oracle and a mechanism."""

    def __init__(
        self,
        ledger: Ledger,
        oracle: MedianOracle,
        *,
        quote: Asset,
        instruments: Mapping[InstrumentId, Instrument],
        margin: MarginParams,
        mechanism: Mechanism,
        system: SystemAccounts,
    ) -> None:
        self.ledger = ledger
        self.oracle = oracle
        self.quote = quote
        self.instruments = dict(instruments)
        self.margin = margin
        self.mechanism = mechanism
        self.system = system
        self.index_prices: dict[str, int] = {}

    def risk(
        self,
        account: AccountId,
        now: int,
        positions: Mapping[InstrumentId, Position] | None = None,
    ) -> AccountRisk:
        """The exact risk of ``account`` at the current index prices."""
        return account_risk(
            self.ledger.balance_units(account, self.quote.id),
            self.ledger.positions_of(account) if positions is None else positions,
            self.instruments,
            self.index_prices,
            now,
            self.margin,
        )

    def _positions_by_account(self) -> dict[AccountId, dict[InstrumentId, Position]]:
        out: dict[AccountId, dict[InstrumentId, Position]] = {}
        for (account, iid), pos in self.ledger.positions().items():
            out.setdefault(account, {})[iid] = pos
        return out

    def liquidate(self, account: AccountId, keeper: AccountId, now: int, txid: str) -> Liquidation:
        """Re-check ``account`` at the current price and liquidate it, or raise ``Refused``."""
        if self.ledger.accounts.get(account) is not AccountKind.USER:
            raise InvalidArgument(f"account={account!r} is not an open user account")
        if self.ledger.accounts.get(keeper) is not AccountKind.USER:
            raise InvalidArgument(f"keeper={keeper!r} is not an open user account")
        positions = self.ledger.positions_of(account)
        if not positions:
            raise Refused("liquidation/not-liquidatable", f"{account} holds no positions")
        missing = {self.instruments[i].underlying for i in positions} - set(self.index_prices)
        if missing:
            raise Refused("liquidation/stale-price", f"no index price for {sorted(missing)}")
        risk = self.risk(account, now, positions)
        ctx = LiquidationContext(
            tx_id=TxId(tx_id(txid)),
            now=now,
            account=account,
            keeper=keeper,
            quote=self.quote,
            cash=self.ledger.balance_units(account, self.quote.id),
            positions=positions,
            keeper_positions=self.ledger.positions_of(keeper),
            instruments=self.instruments,
            index_prices=self.index_prices,
            margin=self.margin,
            risk=risk,
            insurance_fund_balance=self.ledger.balance_units(
                self.system.insurance_fund, self.quote.id
            ),
            system=self.system,
        )
        plan = self.mechanism.plan(ctx)
        receipt = self.ledger.apply(plan.transaction)
        return Liquidation(account, receipt.seq, f"{float(risk.health):.6f}", plan)

    def step(
        self, now: int, reports: Iterable[PriceReport], keeper: AccountId | None = None
    ) -> StepReport:
        """Ingest, aggregate, re-margin and (with a ``keeper``) liquidate, atomically."""
        rejected: list[str] = []
        for report in reports:
            try:
                self.oracle.submit(report, now)
            except LiqengError as exc:
                rejected.append(str(exc))
        prices = {u: a.price for u, a in self.oracle.index_prices(now).items()}
        liquidations: list[Liquidation] = []
        with self.ledger.batch():
            self.index_prices = prices
            self.ledger.record(
                f"index:{now}:{self.ledger.seq + 1}",
                "oracle.index",
                {"prices": {u: str(p) for u, p in sorted(prices.items())}},
            )
            candidates: list[tuple[object, AccountId]] = []
            for account, positions in self._positions_by_account().items():
                if self.ledger.accounts[account] is not AccountKind.USER:
                    continue
                if any(self.instruments[i].underlying not in prices for i in positions):
                    continue  # no liquidation without a fresh price
                risk = self.risk(account, now, positions)
                if risk.is_liquidatable:
                    candidates.append((risk.health, account))
            candidates.sort()
            if keeper is not None:
                for _, account in candidates:
                    if account == keeper:
                        continue  # a keeper cannot liquidate itself; another one must
                    liquidations.append(
                        self.liquidate(account, keeper, now, f"liq:{now}:{account}")
                    )
        return StepReport(
            now, prices, tuple(rejected), tuple(liquidations), tuple(a for _, a in candidates)
        )
