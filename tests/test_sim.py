"""The quickstart simulation: it liquidates something real, replays bit for bit, and its
log can be re-verified from the file alone."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from liqeng.cli import app
from liqeng.clock import SimClock
from liqeng.errors import InvalidArgument
from liqeng.ids import AssetId
from liqeng.ledger.core import Ledger
from liqeng.ledger.sqlite import SqliteStorage
from liqeng.liquidation.base import SystemAccounts
from liqeng.presets import PRESETS
from liqeng.sim.runner import RunSummary, run
from liqeng.sim.scenario import load_scenario

QUICKSTART = Path(__file__).parent.parent / "scenarios" / "quickstart.toml"


def edited_quickstart(folder: Path, name: str, *edits: tuple[str, str]) -> Path:
    """A copy of the quickstart in ``folder`` (its price data linked) with text replaced."""
    data = folder / "data"
    if not data.exists():
        data.symlink_to(QUICKSTART.parent / "data")
    text = QUICKSTART.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunSummary, Path]:
    db = tmp_path_factory.mktemp("sim") / "run1.sqlite"
    return run(load_scenario(QUICKSTART), db), db


def test_quickstart_liquidates_and_accounts_for_every_unit(
    first_run: tuple[RunSummary, Path],
) -> None:
    s, db = first_run
    assert s.accounts == 300 and s.ticks == 384
    # Black Thursday took ETH from ~200 to ~88: many accounts must have been closed out
    assert s.index_min < s.index_first // 2
    assert s.liquidations > 50
    # read the ledger back from the file: each system account moved by what the plans said
    storage = SqliteStorage(db, readonly=True)
    ledger = Ledger(storage, SimClock(0))
    system, usdc = SystemAccounts.of("quickstart"), AssetId("eth/USDC")
    assert ledger.balance_units(system.fee_sink, usdc) == s.protocol_fees > 0
    assert ledger.balance_units(system.insurance_fund, usdc) == s.insurance_fund_after
    assert s.insurance_fund_after - s.insurance_fund_before == (
        s.insurance_fees - s.bad_debt_covered
    )
    assert -ledger.balance_units(system.bad_debt, usdc) == s.bad_debt_uncovered
    storage.close()


def test_same_seed_same_event_log_digest(
    first_run: tuple[RunSummary, Path], tmp_path: Path
) -> None:
    s1, _ = first_run
    s2 = run(load_scenario(QUICKSTART), tmp_path / "run2.sqlite")
    assert (s2.head, s2.state_digest, s2.events) == (s1.head, s1.state_digest, s1.events)


def test_other_seed_other_digest(tmp_path: Path) -> None:
    small = ("count = 300", "count = 40")
    a = edited_quickstart(tmp_path, "a.toml", small, ("seed = 7 ", "seed = 8 "))
    b = edited_quickstart(tmp_path, "b.toml", small, ("seed = 7 ", "seed = 9 "))
    assert (
        run(load_scenario(a), tmp_path / "a.sqlite").head
        != run(load_scenario(b), tmp_path / "b.sqlite").head
    )


def test_the_log_is_a_plain_sqlite_file(first_run: tuple[RunSummary, Path]) -> None:
    s, db = first_run
    con = sqlite3.connect(db)
    n_liq = con.execute("SELECT count(*) FROM events WHERE kind = 'liquidation'").fetchone()[0]
    assert n_liq == s.liquidations
    penalties = sum(
        int(v)
        for (v,) in con.execute(
            "SELECT json_extract(body, '$.memo.penalty') FROM events WHERE kind='liquidation'"
        )
    )
    assert penalties == s.penalties
    con.close()


def test_cli_simulate_and_verify(first_run: tuple[RunSummary, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    db = tmp_path / "cli.sqlite"
    out = runner.invoke(app, ["simulate", str(QUICKSTART), "--db", str(db), "--quiet"])
    assert out.exit_code == 0, out.output
    assert "liquidations" in out.output and "insurance fund after" in out.output
    ok = runner.invoke(app, ["log", "verify", str(db)])
    assert ok.exit_code == 0 and "ok:" in ok.output
    # flip one byte of one event body: verify must fail and say where
    broken = tmp_path / "broken.sqlite"
    shutil.copy(db, broken)
    con = sqlite3.connect(broken)
    con.execute("DROP TRIGGER events_append_only_update")
    con.execute("UPDATE events SET body = CAST(CAST(body AS TEXT) || ' ' AS BLOB) WHERE seq = 40")
    con.commit()
    con.close()
    bad = runner.invoke(app, ["log", "verify", str(broken)])
    assert bad.exit_code == 1 and "seq=40" in bad.output


def test_bad_scenario_is_refused_naming_the_key(tmp_path: Path) -> None:
    bad = edited_quickstart(tmp_path, "bad.toml", ("penalty_rate = 0.05", "penalty_rate = 1.5"))
    with pytest.raises(InvalidArgument, match=r"\[liquidation\]: penalty_rate=1.5"):
        load_scenario(bad)
    out = CliRunner().invoke(app, ["simulate", str(bad), "--db", str(tmp_path / "x.sqlite")])
    assert out.exit_code == 2 and "penalty_rate=1.5" in out.output
    assert not (tmp_path / "x.sqlite").exists()


def test_simulate_never_replaces_a_file_it_did_not_write(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    with pytest.raises(InvalidArgument, match="is not a liqeng database; not replacing it"):
        run(load_scenario(QUICKSTART), notes)
    assert notes.read_text() == "my notes"


def test_candle_times_without_an_offset_are_utc(tmp_path: Path) -> None:
    from liqeng.sim.prices import read_candles

    csv = tmp_path / "eth_usd-x-2020-03-11-1h.csv"
    csv.write_text(
        "ts,open,high,low,close,volume\n"
        "2020-03-11T00:00:00,1,1,1,1,0\n2020-03-11T01:00:00Z,1,1,1,1,0\n"
    )
    # 2020-03-11T00:00:00Z = 1583884800 whatever TZ the machine is in
    assert [c.ts for c in read_candles(csv, 6)] == [1583884800, 1583888400]


def test_scenario_ranges_must_be_ordered(tmp_path: Path) -> None:
    bad = edited_quickstart(tmp_path, "bad.toml", ("leverage_min = 1.0", "leverage_min = 20.0"))
    with pytest.raises(InvalidArgument, match=r"leverage_min=20.0 > leverage_max=12.0"):
        load_scenario(bad)


def test_cli_seed_option_changes_the_population(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["simulate", str(QUICKSTART), "--quiet", "--db"]
    a = runner.invoke(app, [*args, str(tmp_path / "a.sqlite"), "--seed", "11"])
    b = runner.invoke(app, [*args, str(tmp_path / "b.sqlite"), "--seed", "11"])
    c = runner.invoke(app, [*args, str(tmp_path / "c.sqlite"), "--seed", "12"])
    assert a.exit_code == b.exit_code == c.exit_code == 0, a.output
    head = [line for line in a.output.splitlines() if line.startswith("log head")]
    assert head and head[0] in b.output and head[0] not in c.output
    bad = runner.invoke(app, [*args, str(tmp_path / "d.sqlite"), "--seed", "-1"])
    assert bad.exit_code == 2 and "--seed=-1" in bad.output


def test_a_scenario_can_margin_its_market_by_scenario_margin(tmp_path: Path) -> None:
    small = ("count = 300", "count = 30")
    per_position = edited_quickstart(tmp_path, "pp.toml", small)
    lyra = edited_quickstart(
        tmp_path, "lyra.toml", small, ("vol = 0.8 ", 'model = "lyra-pmrm"\nvol = 0.8 ')
    )
    a = run(load_scenario(per_position), tmp_path / "pp.sqlite")
    b = run(load_scenario(lyra), tmp_path / "lyra.sqlite")
    assert a.liquidations > 0 and b.liquidations > 0
    assert a.head != b.head  # the margin model changes who is liquidated, and when
    bad = edited_quickstart(tmp_path, "bad.toml", ("vol = 0.8 ", 'model = "span"\nvol = 0.8 '))
    with pytest.raises(InvalidArgument, match=r"\[margin\]: model='span'; available: per-position"):
        load_scenario(bad)


def test_oracle_guards_are_scenario_settings(tmp_path: Path) -> None:
    guarded = edited_quickstart(
        tmp_path,
        "g.toml",
        ("count = 300", "count = 20"),
        ("# max_move = 0.2 ", "max_move = 0.2 "),
        ("# grace_period_s = 0 ", "grace_period_s = 900 "),
        ("# mad_k = 3.0 ", "mad_k = 2.5 "),
    )
    sc = load_scenario(guarded)
    assert sc.oracle_settings == {
        "max_move": 200_000_000,
        "mad_k": 2_500_000_000,
        "grace_period_s": 900,
    }
    s = run(sc, tmp_path / "g.sqlite")
    assert s.feed_degraded_steps > 0 and s.liquidations > 0
    bad = edited_quickstart(tmp_path, "bad.toml", ("# delay_s = 3600 ", "delay_s = -1 "))
    with pytest.raises(InvalidArgument, match=r"\[oracle\]: delay_s=-1 must be within"):
        load_scenario(bad)


def test_a_misspelt_key_is_refused_not_ignored(tmp_path: Path) -> None:
    typo = edited_quickstart(
        tmp_path, "t.toml", ("# max_deviation = 0.10 ", "max_devation = 0.10 ")
    )
    with pytest.raises(InvalidArgument, match=r"\[oracle\]: unknown key\(s\) \['max_devation'\]"):
        load_scenario(typo)


@pytest.mark.parametrize(
    ("mechanism", "extra"),
    [
        ("dutch-auction", ()),
        (
            "backstop-pool",
            (("market_maker_capital = ", "backstop_pool = 2000000\nmarket_maker_capital = "),),
        ),
        (
            "fixed-fee",
            (("protocol_share", 'sizing = "target-health"\ntarget_health = 1.25\nprotocol_share'),),
        ),
        ("fixed-fee", (("protocol_share", 'sizing = "close-factor"\nprotocol_share'),)),
    ],
)
def test_every_mechanism_runs_in_the_simulator(
    tmp_path: Path, mechanism: str, extra: tuple[tuple[str, str], ...]
) -> None:
    small = ("count = 300", "count = 60")
    path = edited_quickstart(
        tmp_path,
        "m.toml",
        small,
        ('mechanism = "fixed-fee"', f'mechanism = "{mechanism}"'),
        *extra,
    )
    summary = run(load_scenario(path), tmp_path / "m.sqlite")  # checks the ledger invariants
    assert summary.liquidations > 0
    assert summary.penalties > 0


def test_unknown_mechanism_and_sizing_are_refused(tmp_path: Path) -> None:
    bad = edited_quickstart(tmp_path, "b.toml", ('mechanism = "fixed-fee"', 'mechanism = "dutch"'))
    with pytest.raises(InvalidArgument, match=r"mechanism='dutch'; available: backstop-pool, "):
        load_scenario(bad)
    bad = edited_quickstart(
        tmp_path, "s.toml", ("protocol_share", 'sizing = "some"\nprotocol_share')
    )
    with pytest.raises(InvalidArgument, match=r"sizing='some'; available: all, close-factor"):
        load_scenario(bad)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_runs_in_the_simulator_and_is_named(tmp_path: Path, name: str) -> None:
    small = ("count = 300", "count = 60")
    path = edited_quickstart(tmp_path, "p.toml", small)
    db = tmp_path / "p.sqlite"
    result = CliRunner().invoke(
        app, ["simulate", str(path), "--db", str(db), "--preset", name, "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert f"preset {name}: {PRESETS[name].protocol}" in " ".join(result.output.split())


def test_unknown_or_clashing_preset_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", str(QUICKSTART), "--preset", "makerdao"])
    assert result.exit_code == 2
    assert "preset='makerdao' is unknown; known: [" in " ".join(result.output.split())
    bad = edited_quickstart(
        tmp_path, "b.toml", ('mechanism = "fixed-fee"', 'preset = "makerdao"\nmechanism = "x"')
    )
    with pytest.raises(InvalidArgument, match="preset='makerdao' is unknown"):
        load_scenario(bad)
