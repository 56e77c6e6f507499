"""The mechanism interface: a mechanism reads a context and returns a plan.

Mechanisms never move money: a ``LiquidationPlan`` carries the ``Transaction`` the
engine hands to the ledger, plus the figures it implies, for events and reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from liqeng.ids import AccountId, InstrumentId, TxId, account_id
from liqeng.ledger.model import Position, Transaction
from liqeng.market.instruments import Instrument, SpotCollateral
from liqeng.risk.margin import AccountRisk
from liqeng.risk.models import MarginModel, MarketData
from liqeng.units import Asset, mul_div_up

__all__ = ["PLAN_FIGURES", "LiquidationContext", "LiquidationPlan", "Mechanism", "SystemAccounts"]


@dataclass(frozen=True, slots=True)
class SystemAccounts:
    """The protocol's own accounts in one namespace: the insurance fund (first loss), the
    settlement account (clears futures-style PnL), the bad-debt account (uncovered losses),
    the fee sink (the protocol's revenue) and the backstop pool (funded by depositors; its
    mechanism arrives with the liquidation-mechanisms work)."""

    insurance_fund: AccountId
    settlement: AccountId
    bad_debt: AccountId
    fee_sink: AccountId
    backstop_pool: AccountId

    @staticmethod
    def of(namespace: str) -> SystemAccounts:
        """The conventional ids: ``<ns>/insurance-fund``, ``<ns>/settlement``, …"""
        return SystemAccounts(
            *(
                AccountId(account_id(f"{namespace}/{name}"))
                for name in (
                    "insurance-fund",
                    "settlement",
                    "bad-debt",
                    "fee-sink",
                    "backstop-pool",
                )
            )
        )


@dataclass(frozen=True, slots=True)
class LiquidationContext:
    """Everything a mechanism may read, taken from the ledger and the oracle at execution
    (``market`` holds the clock, index prices, vols and settlement prices; ``collateral``
    the account's spot/LST balances by their ``SpotCollateral``). The driver's gas price
    (wei per gas) and the gas token's price (``quote_per_gas``, quote base units per whole
    token) price keeper rewards; ``realised_vol`` and ``implied_vol`` (annualised, the
    highest over the account's markets) scale adaptive penalties; ``max_notional`` is the
    most the engine's throughput limits let this liquidation close (``None``: no limit).
    ``margin_model`` (with ``margin_models`` per underlying) is the engine's margin model,
    for mechanisms that choose what to close by its effect on the requirement.
    For the terminal loss stages the engine offers, computed only when called,
    ``holders()`` (user accounts other than this one and the keeper, by positive quote
    balance) and ``counterparties(instrument)`` (``(account, position, equity)`` of the
    other users holding it)."""

    tx_id: TxId
    account: AccountId
    keeper: AccountId
    quote: Asset
    cash: int
    positions: Mapping[InstrumentId, Position]
    keeper_positions: Mapping[InstrumentId, Position]
    instruments: Mapping[InstrumentId, Instrument]
    market: MarketData
    risk: AccountRisk
    insurance_fund_balance: int
    backstop_pool_balance: int
    system: SystemAccounts
    collateral: Mapping[SpotCollateral, int]
    gas_price: int = 0
    quote_per_gas: int = 0
    realised_vol: float = 0.0
    implied_vol: float = 0.0
    max_notional: int | None = None
    margin_model: MarginModel | None = None
    margin_models: Mapping[str, MarginModel] = field(default_factory=dict)
    holders: Callable[[], Mapping[AccountId, int]] | None = None
    counterparties: Callable[[InstrumentId], Sequence[tuple[AccountId, Position, int]]] | None = (
        None
    )

    def notional(self, instrument: InstrumentId, size: int) -> int:
        """``ceil(|size|·index / 10**size_decimals)``: what ``size`` of ``instrument`` is
        worth at its underlying's index (penalties and limits are rates of it)."""
        inst = self.instruments[instrument]
        index = self.market.index_prices[inst.underlying]
        return mul_div_up(abs(size), index, 10**inst.size_decimals)


@dataclass(frozen=True, slots=True)
class LiquidationPlan:
    """The transaction and its figures, all in quote base units.

    ``seized`` is what the account lost in the liquidation (realised losses, premium paid
    to buy back options and the penalty); ``penalty = keeper_reward + insurance_fee +
    protocol_fee + pool_fee`` (``pool_fee``: what a backstop pool's depositors gained);
    ``bad_debt = covered + socialised + deleveraged + uncovered``: the funded stages'
    cover, the holders' haircut, the ADL haircut, and what is left booked against the
    bad-debt account.
    """

    transaction: Transaction
    notional: int
    seized: int
    penalty: int
    keeper_reward: int
    insurance_fee: int
    protocol_fee: int
    bad_debt_covered: int
    bad_debt_uncovered: int
    bad_debt_socialised: int = 0
    bad_debt_deleveraged: int = 0
    pool_fee: int = 0

    @staticmethod
    def from_transaction(tx: Transaction) -> LiquidationPlan:
        """The plan a committed liquidation carried, read back from its memo."""
        m = tx.memo
        return LiquidationPlan(
            tx,
            *(int(m[k]) for k in PLAN_FIGURES),
            *(int(m.get(k, 0)) for k in _OPTIONAL_FIGURES),
        )


PLAN_FIGURES: Final = (
    "notional",
    "seized",
    "penalty",
    "keeper_reward",
    "insurance_fee",
    "protocol_fee",
    "bad_debt_covered",
    "bad_debt_uncovered",
)
_OPTIONAL_FIGURES = ("bad_debt_socialised", "bad_debt_deleveraged", "pool_fee")


class Mechanism(Protocol):
    """``plan`` reads a context and returns the plan; it moves nothing. A mechanism that
    keeps state of its own (a pool's deposits) also has ``commit(plan)``, which the engine
    calls once the plan's transaction is applied (never for a retried one), and ``mark()``
    / ``rollback(mark)``, which the engine uses to undo commits whose enclosing ledger
    batch rolled back. One that
    takes an account over for a while (an auction) has ``holds(account) -> str | None``:
    the engine does not liquidate a held account again."""

    @property
    def name(self) -> str: ...

    def plan(self, ctx: LiquidationContext) -> LiquidationPlan: ...
