"""The shipped scenario files: every one loads, and every block-by-block one runs a short
slice (30 accounts, two hours: 600 blocks from its ``start_s``) with the ledger's
invariants holding (``run_blocks`` checks them at the end of the run)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from liqeng.sim.blocks import run_blocks
from liqeng.sim.scenario import load_scenario

SCENARIOS = Path(__file__).parent.parent / "scenarios"
FILES = sorted(SCENARIOS.glob("*.toml"))
BLOCK_FILES = [p for p in FILES if load_scenario(p).chain is not None]
HISTORICAL = ("may2021.toml", "luna2022.toml", "ftx2022.toml")


def test_the_historical_replays_are_shipped() -> None:
    names = {p.name for p in FILES}
    assert {"quickstart.toml", "congested.toml", *HISTORICAL} <= names
    assert {p.name for p in BLOCK_FILES} >= {"congested.toml", *HISTORICAL}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_scenario_loads(path: Path) -> None:
    sc = load_scenario(path)
    assert sc.name and sc.namespace
    assert sc.accounts > 0
    assert len(sc.price_files) >= sc.quorum
    for f in sc.price_files:
        assert Path(f).is_file(), f


@pytest.mark.parametrize("name", HISTORICAL)
def test_historical_replay_is_a_block_scenario(name: str) -> None:
    sc = load_scenario(SCENARIOS / name)
    assert sc.name == Path(name).stem and sc.namespace == Path(name).stem
    assert sc.chain is not None and sc.market is not None and sc.keepers
    assert sc.chain.congestion, "a gas war during the fall"
    assert sc.accounts == 300


@pytest.mark.parametrize("path", BLOCK_FILES, ids=lambda p: p.stem)
def test_block_scenario_short_slice_runs(path: Path, tmp_path: Path) -> None:
    sc = load_scenario(path)
    assert sc.chain is not None
    small = dataclasses.replace(
        sc, accounts=30, chain=dataclasses.replace(sc.chain, duration_s=7200)
    )
    run = run_blocks(small, tmp_path / "x.sqlite")
    assert run.blocks == 7200 // sc.chain.block_s
    assert run.scenario == sc.name
    assert run.liquidations >= 0 and run.bad_debt_uncovered >= 0
