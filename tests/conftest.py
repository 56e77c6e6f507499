from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from liqeng.clock import SimClock
from liqeng.ids import AccountId, asset_id
from liqeng.ledger.core import Ledger
from liqeng.ledger.model import AccountKind, AccountSpec, Posting, Transaction
from liqeng.ledger.sqlite import SqliteStorage
from liqeng.units import Asset

USDC = Asset(asset_id("eth/USDC"), 6)
WETH = Asset(asset_id("eth/WETH"), 18)
WORLD = AccountId("t/world")
ALICE = AccountId("t/alice")
BOB = AccountId("t/bob")
FUND = AccountId("t/insurance-fund")


def open_ledger(path: Path, clock: SimClock | None = None, **kw: int) -> Ledger:
    return Ledger(SqliteStorage(path), clock or SimClock(1_000), **kw)


def deposit(ledger: Ledger, txid: str, account: AccountId, units: int, asset: Asset = USDC) -> None:
    ledger.apply(
        Transaction(
            txid,
            "deposit",
            (Posting(WORLD, asset.units(-units)), Posting(account, asset.units(units))),
        )
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A ledger on a real SQLite file with USDC, WETH, the world and three accounts."""
    led = open_ledger(tmp_path / "ledger.sqlite")
    led.register_asset(USDC)
    led.register_asset(WETH)
    led.open_account(AccountSpec(WORLD, AccountKind.EXTERNAL))
    for acc in (ALICE, BOB):
        led.open_account(AccountSpec(acc))
    led.open_account(AccountSpec(FUND, AccountKind.SYSTEM))
    yield led
    led._storage.close()
