"""Generated accounts that post spot collateral (WETH) instead of quote cash, as Maker
vaults lock ETH: ``[accounts] collateral_asset_share`` and ``[system] collateral_haircut``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tests.test_sim import edited_quickstart

from liqeng.clock import SimClock
from liqeng.errors import InvalidArgument
from liqeng.ids import AccountId, AssetId
from liqeng.ledger.core import Ledger
from liqeng.ledger.model import AccountKind
from liqeng.ledger.sqlite import SqliteStorage
from liqeng.market.instruments import SpotCollateral
from liqeng.risk.margin import collateral_value
from liqeng.sim.population import Holding, spot_collateral, spot_units
from liqeng.sim.runner import _build, run
from liqeng.sim.scenario import load_scenario
from liqeng.units import RATE_SCALE, Asset

WETH, USDC = AssetId("eth/WETH"), AssetId("eth/USDC")
SMALL = ("count = 300", "count = 40")


def _share(share: float) -> tuple[str, str]:
    return ("put_seller_share", f"collateral_asset_share = {share}\nput_seller_share")


def _haircut(haircut: float) -> tuple[str, str]:
    return ("insurance_fund =", f"collateral_haircut = {haircut}\ninsurance_fund =")


def _holdings(tmp_path: Path, name: str, *edits: tuple[str, str]) -> tuple[list[Holding], int]:
    """The generated holdings of a quickstart copy, and its first index price."""
    sc = load_scenario(edited_quickstart(tmp_path, f"{name}.toml", SMALL, *edits))
    w = _build(sc, tmp_path / f"{name}.sqlite")
    index0 = w.first.index_prices[sc.underlying]
    w.storage.close()
    return w.holdings, index0


def test_all_vaults_liquidations_sell_weth_to_the_keeper(tmp_path: Path) -> None:
    path = edited_quickstart(tmp_path, "v.toml", SMALL, _share(1))
    sc = load_scenario(path)
    assert sc.collateral_asset_share == 1.0 and sc.collateral_haircut == 0
    db = tmp_path / "v.sqlite"
    s = run(sc, db)  # checks the ledger invariants (conservation) at the end
    assert s.liquidations > 0 and s.seized > 0
    con = sqlite3.connect(db)
    rows = [  # amounts are text: 18-decimal units overflow SQLite's integers
        (kind, acct, int(units))
        for kind, acct, units in con.execute(
            "SELECT kind, account, amount_units FROM postings WHERE asset = ?", (WETH,)
        )
    ]
    cash = con.execute(
        "SELECT count(*) FROM postings WHERE kind = 'deposit' AND asset = ? "
        "AND account LIKE 'quickstart/acct-%'",
        (USDC,),
    ).fetchone()[0]
    con.close()
    assert cash == 0  # a vault holds no quote cash: its losses are realised against WETH
    keeper = "quickstart/keeper"
    sold = [(acct, units) for kind, acct, units in rows if kind == "liquidation"]
    assert any(acct == keeper and units > 0 for acct, units in sold)
    assert any(acct.startswith("quickstart/acct-") and units < 0 for acct, units in sold)
    storage = SqliteStorage(db, readonly=True)
    ledger = Ledger(storage, SimClock(0))
    try:
        # every WETH unit came from the world and is somewhere: the keeper holds what it bought
        bought = sum(u for a, u in sold if a == keeper)
        assert ledger.balance_units(AccountId(keeper), WETH) == bought > 0
        held = sum(ledger.balance_units(a, WETH) for a in ledger.accounts)
        assert held == 0  # world -total, everyone else +
        # every vault started with WETH and no USDC
        deposits = [u for kind, a, u in rows if kind == "deposit" and a != "quickstart/world"]
        assert len(deposits) == 40 and all(u > 0 for u in deposits)
    finally:
        storage.close()


def test_a_vault_holds_what_its_cash_would_have_been_worth(tmp_path: Path) -> None:
    cash, index0 = _holdings(tmp_path, "cash")
    vaults, index1 = _holdings(tmp_path, "vaults", _share(1))
    haircut, _ = _holdings(tmp_path, "haircut", _share(1), _haircut(0.2))
    assert index0 == index1
    spec = SpotCollateral(Asset(WETH, 18), "ETH")
    spec_h = SpotCollateral(Asset(WETH, 18), "ETH", RATE_SCALE // 5)
    for c, v, h in zip(cash, vaults, haircut, strict=True):
        assert c.spot == 0 and c.collateral > 0
        # same draws: same positions; the collateral is the token, worth the cash exactly
        for x in (v, h):
            assert (x.account, x.perp_size, x.put, x.put_size) == (
                c.account,
                c.perp_size,
                c.put,
                c.put_size,
            )
            assert x.collateral == 0 and x.spot_value == c.collateral
        assert collateral_value(spec, v.spot, index0) == c.collateral
        assert collateral_value(spec, v.spot - 1, index0) < c.collateral
        assert collateral_value(spec_h, h.spot, index0) == c.collateral
        assert abs(4 * h.spot - 5 * v.spot) <= 10  # 1/(1 - 0.2) as many units


def test_a_share_picks_accounts_from_its_own_stream(tmp_path: Path) -> None:
    cash, _ = _holdings(tmp_path, "cash")
    half, _ = _holdings(tmp_path, "half", _share(0.5))
    again, _ = _holdings(tmp_path, "again", _share(0.5))
    more, _ = _holdings(tmp_path, "more", _share(0.8))
    assert half == again  # deterministic from the seed
    vaults = {h.account for h in half if h.spot}
    assert 0 < len(vaults) < len(half)
    assert vaults <= {h.account for h in more if h.spot}  # a larger share adds vaults
    for c, h in zip(cash, half, strict=True):
        if h.spot:
            assert (h.collateral, h.spot_value) == (0, c.collateral)
        else:
            assert h == c  # an account keeping its cash is drawn exactly as before


def test_without_the_keys_the_run_is_the_previous_one(tmp_path: Path) -> None:
    sixty = ("count = 300", "count = 60")
    absent = load_scenario(edited_quickstart(tmp_path, "a.toml", sixty))
    zero = load_scenario(edited_quickstart(tmp_path, "z.toml", sixty, _share(0), _haircut(0.1)))
    assert spot_collateral(absent) is None and spot_collateral(zero) is None
    a, z = run(absent, tmp_path / "a.sqlite"), run(zero, tmp_path / "z.sqlite")
    assert (a.head, a.state_digest, a.events) == (z.head, z.state_digest, z.events)
    con = sqlite3.connect(tmp_path / "a.sqlite")
    n = con.execute("SELECT count(*) FROM postings WHERE asset = ?", (WETH,)).fetchone()[0]
    assets = con.execute("SELECT count(*) FROM events WHERE kind LIKE '%asset%'").fetchone()[0]
    con.close()
    assert n == 0 and assets == 1  # the quote only


def test_english_auction_gets_its_escrow_and_nothing_else_does(tmp_path: Path) -> None:
    eng = ('mechanism = "fixed-fee"', 'mechanism = "english-auction"')
    for name, edits, escrow in (("f", (), False), ("e", (eng,), True)):
        sc = load_scenario(edited_quickstart(tmp_path, f"{name}.toml", SMALL, _share(1), *edits))
        w = _build(sc, tmp_path / f"{name}.sqlite")
        kind = w.engine.ledger.accounts.get(AccountId("quickstart/auction-escrow"))
        assert kind is (AccountKind.SYSTEM if escrow else None)
        assert set(w.engine.collateral) == {WETH}
        w.storage.close()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_share(1.5), r"\[accounts\]: collateral_asset_share=1.5 must be within"),
        (_share(-0.1), r"\[accounts\]: collateral_asset_share=-0.1 must be within"),
        (
            ("put_seller_share", 'collateral_asset_share = "all"\nput_seller_share'),
            r"\[accounts\]: collateral_asset_share='all' must be a float",
        ),
        (_haircut(1), r"\[system\]: collateral_haircut=1.0 must be below 1"),
        (_haircut(-0.5), r"\[system\]: collateral_haircut=-0.5 must be within"),
        (_haircut(0.1234567891), r"collateral_haircut=0.1234567891 has more precision"),
        (
            ("insurance_fund =", "collateral_haircutt = 0.1\ninsurance_fund ="),
            r"\[system\]: unknown key\(s\) \['collateral_haircutt'\]",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_key(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        load_scenario(edited_quickstart(tmp_path, "bad.toml", edit))


def test_spot_units_is_the_fewest_units_worth_the_value() -> None:
    for haircut in (0, RATE_SCALE // 10, RATE_SCALE - 1):
        spec = SpotCollateral(Asset(WETH, 18), "ETH", haircut)
        for value, index in ((1, 1), (10**10, 194_123_456), (7, 10**15)):
            u = spot_units(spec, value, index)
            assert collateral_value(spec, u, index) >= value
            assert collateral_value(spec, u - 1, index) < value
    with pytest.raises(InvalidArgument, match="haircut of eth/WETH must be below"):
        spot_units(SpotCollateral(Asset(WETH, 18), "ETH", RATE_SCALE), 1, 1)
