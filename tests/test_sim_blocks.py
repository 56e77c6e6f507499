"""The block-by-block simulator: determinism, congestion, keepers racing, the market."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.test_sim import edited_quickstart

from liqeng.errors import InvalidArgument
from liqeng.sim.blocks import BlockRun, run_blocks
from liqeng.sim.scenario import load_scenario

CHAIN = """
[chain]
block_s = 12
gas_limit = 30000000
base_fee_gwei = 20
duration_s = {duration}
{congestion}

[market]
model = "amm"
depth = 200000000

[[keepers]]
name = "fast"
count = 2
capital = 2000000
latency = 1
tip_gwei = {fast_tip}

[[keepers]]
name = "slow"
count = 3
capital = 500000
latency = 2
tip_gwei = 2
failure_rate = 0.1
"""

# the quickstart's crash: ETH 200 -> 88 in the 36 hours from 2020-03-12
CRASH = (
    "congestion = [{start_s = 0, end_s = 172800, gas = 60000000, tip_gwei = 80,"
    " max_fee_gwei = 20000}]"
)


def scenario(
    tmp_path: Path, name: str, *, congestion: str = "", fast_tip: int = 100, accounts: int = 60
) -> Path:
    block = CHAIN.format(duration=2 * 86400, congestion=congestion, fast_tip=fast_tip)
    path = edited_quickstart(tmp_path, f"{name}.toml", ("count = 300", f"count = {accounts}"))
    path.write_text(path.read_text() + block)
    return path


def run(tmp_path: Path, path: Path, db: str) -> BlockRun:
    return run_blocks(load_scenario(path), tmp_path / db)


@pytest.mark.slow
def test_same_seed_same_log_and_metrics(tmp_path: Path) -> None:
    path = scenario(tmp_path, "a", congestion=CRASH)
    a, b = run(tmp_path, path, "a.sqlite"), run(tmp_path, path, "b.sqlite")
    assert a.liquidations > 0
    assert (a.head, a.state_digest, a.metrics()) == (b.head, b.state_digest, b.metrics())


@pytest.mark.slow
def test_congestion_delays_keepers_that_do_not_outbid_it(tmp_path: Path) -> None:
    # a crowd bids 80 gwei for twice the block's gas all through the crash, up to a base fee
    # of 20,000 gwei: keepers at 2 gwei get in only when the crowd drops out, and by then a
    # liquidation's gas (600k gas at ~20,000 gwei, ~1,800 USDC) is worth more than most
    # accounts pay a keeper: they are left under water, as on Black Thursday
    calm = run(tmp_path, scenario(tmp_path, "calm", fast_tip=2), "calm.sqlite")
    jam = run(tmp_path, scenario(tmp_path, "jam", congestion=CRASH, fast_tip=2), "jam.sqlite")
    assert jam.solvency_gap_account_s > 10 * calm.solvency_gap_account_s
    assert jam.liquidations < calm.liquidations  # the rest were never reached in time
    assert max(jam.base_fee_gwei) > 100 * max(calm.base_fee_gwei)
    # racing keepers: only one wins each liquidation, the others pay gas for nothing
    assert sum(k.won for k in calm.keepers) == calm.liquidations
    assert any(k.refused for k in calm.keepers)


def test_keepers_need_a_chain(tmp_path: Path) -> None:
    path = edited_quickstart(tmp_path, "k.toml")
    path.write_text(path.read_text() + '\n[[keepers]]\nname = "x"\n')
    with pytest.raises(InvalidArgument, match=r"\[\[keepers\]\] need a \[chain\]"):
        load_scenario(path)
    path.write_text(path.read_text().replace('name = "x"', 'name = "x"\ntip_gwei = -1'))
    with pytest.raises(InvalidArgument):
        load_scenario(path)


@pytest.mark.slow
def test_cli_compares_mechanisms_in_a_table_a_report_and_json(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from liqeng.cli import app

    path = scenario(tmp_path, "cmp", accounts=30)
    path.write_text(path.read_text().replace("duration_s = 172800", "duration_s = 100800"))
    report, out = tmp_path / "r.html", tmp_path / "r.json"
    args = ["simulate", str(path), "--db", str(tmp_path / "c.sqlite"), "--quiet"]
    args += ["--compare", "fixed-fee,maker", "--report", str(report), "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert [r["label"] for r in doc["runs"]] == ["fixed-fee", "maker"]
    assert doc["meta"]["seed"] == "7" and report.read_text().count("data:image/png;base64") >= 5
    bad = CliRunner().invoke(app, [*args[:4], "--compare", "fixed-fee,flip"])
    assert bad.exit_code == 2 and "'flip' is neither a mechanism" in bad.output


BLACK_THURSDAY = """
[chain]
block_s = 12
gas_limit = 30000000
base_fee_gwei = 20
start_s = 86400
duration_s = 86400
congestion = [{start_s = 0, end_s = 43200, gas = 60000000, tip_gwei = 80, max_fee_gwei = 5000}]

[market]
model = "amm"
depth = 500000000

[[keepers]]
name = "zero"
count = 1
capital = 5000000
latency = 1
tip_gwei = 300
bid_fraction = 0.001

[[keepers]]
name = "fair"
count = 10
capital = 2000000
latency = 2
tip_gwei = 2
bid_fraction = 0.9
max_fee_gwei = 150
"""


@pytest.mark.slow
def test_black_thursday_english_auction_sells_for_near_zero_a_dutch_auction_does_not(
    tmp_path: Path,
) -> None:
    # 40 vaults (all collateral in WETH) through the crash day; a gas war fills the blocks
    # for 12 hours and drives the base fee to ~5,000 gwei. Ten "fair" keepers bid 90% of a
    # lot's value but their bots cap the fee at 150 gwei (so their transactions wait); one
    # keeper tips 300 gwei and bids 0.1%. Same keepers, same chain, two mechanisms:
    runs = {}
    for mech in ("english-auction", "dutch-auction"):
        path = edited_quickstart(
            tmp_path,
            f"{mech}.toml",
            ("count = 300", "count = 40"),
            ('mechanism = "fixed-fee"', f'mechanism = "{mech}"'),
            ("[accounts]", "[accounts]\ncollateral_asset_share = 1.0"),
        )
        path.write_text(path.read_text() + BLACK_THURSDAY)
        runs[mech] = run(tmp_path, path, f"{mech}.sqlite")
    english, dutch = runs["english-auction"], runs["dutch-auction"]
    zero = english.keepers[0]
    # English: with no competing bid landing before the bid expires, the near-zero bids win
    assert english.liquidations > 10 and zero.won == english.liquidations
    assert english.recovery_pct < 1.0
    assert english.insurance_fund_drawdown > 0 and english.bad_debt > 5 * dutch.bad_debt
    # Dutch: the price falls from above the mark; the one keeper that gets in takes it as
    # soon as the discount pays its gas, near the lot's value
    assert dutch.liquidations > 10 and dutch.recovery_pct > 80.0
    assert dutch.insurance_fund_drawdown < english.insurance_fund_drawdown


def crash_day(tmp_path: Path, name: str, extra: str = "", keepers_offline: bool = False) -> Path:
    """60 accounts, the first 6 hours of the crash day, block by block."""
    block = CHAIN.format(duration=21600, congestion="", fast_tip=100)
    block = block.replace("duration_s = 21600", "start_s = 86400\nduration_s = 21600")
    if keepers_offline:  # every keeper down for the whole window
        block = block.replace("latency = 1", "latency = 1\noffline = [0, 21600]")
        block = block.replace("latency = 2", "latency = 2\noffline = [0, 21600]")
    path = edited_quickstart(tmp_path, f"{name}.toml", ("count = 300", "count = 60"))
    path.write_text(path.read_text() + block + extra)
    return path


def test_one_lying_source_liquidates_nobody_a_majority_does(tmp_path: Path) -> None:
    honest = run(tmp_path, crash_day(tmp_path, "honest"), "h.sqlite")
    one = '\n[[attacks]]\nsource = "coinbase"\nstart_s = 0\nend_s = 21600\nfactor = 0.3\n'
    liar = run(tmp_path, crash_day(tmp_path, "liar", one), "l.sqlite")
    # one source of seven at 30% of the price: the median ignores it, nothing changes
    assert (liar.liquidations, liar.false_liquidations) == (honest.liquidations, 0)
    four = ("coinbase", "kraken", "gemini", "bitstamp")
    majority = "".join(one.replace("coinbase", s).replace("0.3", "0.9") for s in four)
    bad = run(tmp_path, crash_day(tmp_path, "bad", majority), "b.sqlite")
    # four of seven report 10% low: the index follows the majority and accounts healthy at
    # the real price are liquidated (every one of them, here, before the real fall)
    assert honest.liquidations > 0 and honest.false_liquidations == 0
    assert bad.false_liquidations > 0
    halt = "".join(one.replace("coinbase", s) for s in four)
    halted = run(tmp_path, crash_day(tmp_path, "halt", halt), "x.sqlite")
    # four of seven at 30%: a 70% jump trips the feed's guards, nothing is liquidated
    assert halted.liquidations == 0


def test_a_keeper_outage_leaves_accounts_under_water(tmp_path: Path) -> None:
    up = run(tmp_path, crash_day(tmp_path, "up"), "u.sqlite")
    down = run(tmp_path, crash_day(tmp_path, "down", keepers_offline=True), "d.sqlite")
    assert up.liquidations > 0 and down.liquidations == 0
    assert down.solvency_gap_account_s > up.solvency_gap_account_s
    bad = crash_day(tmp_path, "badwin")
    bad.write_text(bad.read_text().replace("latency = 1", "latency = 1\noffline = [10, 5]"))
    with pytest.raises(InvalidArgument, match="offline end_s"):
        load_scenario(bad)


def test_the_protocols_backstop_takes_what_no_keeper_will(tmp_path: Path) -> None:
    path = crash_day(tmp_path, "backstop", keepers_offline=True)
    path.write_text(
        path.read_text().replace("start_s = 86400", "start_s = 86400\nbackstop_s = 300")
    )
    run_ = run(tmp_path, path, "bs.sqlite")
    # every keeper is down: accounts left liquidatable for 5 minutes go to the backstop
    assert run_.liquidations > 0 and run_.backstop_liquidations == run_.liquidations
    assert min(run_.delays_s) >= 300
