"""Sweeps: grids are checked before anything runs, the same grid gives the same runs
serially and on Dask, and the recommendation is the cheapest point within the target."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from tests.test_sim import edited_quickstart

from liqeng.errors import InvalidArgument
from liqeng.sim.scenario import load_scenario
from liqeng.sim.sweep import (
    SWEEPABLE,
    Grid,
    PointResult,
    SweepResult,
    apply_overrides,
    recommend,
    recommend_each,
    run_point,
    sweep,
)

SMALL = ("count = 300", "count = 30")
GRID = Grid({"penalty_rate": [0.02, 0.05]}, seeds=[1, 2])


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return edited_quickstart(tmp_path_factory.mktemp("sweep"), "q30.toml", SMALL)


@pytest.fixture(scope="module")
def serial(small: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[SweepResult, Path]:
    work = tmp_path_factory.mktemp("serial-runs")
    seen: list[tuple[int, int]] = []
    res = sweep(
        small, GRID, scheduler="serial", workdir=work, progress=lambda d, n: seen.append((d, n))
    )
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    return res, work


@pytest.mark.parametrize(
    ("params", "seeds", "message"),
    [
        ({"penalty": [0.05]}, [1], "unknown field(s) ['penalty']; sweepable: "),
        ({"seed": [1, 2]}, [1], "seeds are the grid's second axis"),
        ({"penalty_rate": []}, [1], "penalty_rate: no values"),
        ({"penalty_rate": 0.05}, [1], "must be a list of values"),
        ({"penalty_rate": [1.5]}, [1], "penalty_rate=1.5 must be a fraction within [0, 1]"),
        ({"penalty_rate": ["5%"]}, [1], "penalty_rate='5%' must be a number"),
        ({"penalty_rate": [True]}, [1], "penalty_rate=True must be a number"),
        ({"penalty_rate": [1e-12]}, [1], "more precision than 1e-9"),
        ({"penalty_rate": [0.05, 0.05]}, [1], "repeats a value"),
        ({"accounts": [10.5]}, [1], "accounts=10.5 must be an integer"),
        ({"mechanism": ["fire-sale"]}, [1], "mechanism='fire-sale'; available: "),
        ({"preset": ["nope"]}, [1], "preset='nope' is unknown"),
        ({"vol": [float("nan")]}, [1], "must be finite"),
        ({"penalty_rate": [0.05]}, [], "no seeds"),
        ({"penalty_rate": [0.05]}, [1, 1], "repeat a seed"),
        ({"penalty_rate": [0.05]}, [-1], "seed=-1 must be an integer"),
    ],
)
def test_bad_grid_is_refused(
    params: dict[str, list[object]], seeds: list[int], message: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        Grid(params, seeds)  # type: ignore[arg-type]
    assert message in str(err.value)
    if "sweepable" in message:
        assert all(name in str(err.value) for name in ("penalty_rate", "market.depth"))


def test_points_that_do_not_fit_the_scenario_are_refused_before_any_run(
    small: Path, tmp_path: Path
) -> None:
    cases = [
        ({"keeper_share": [0.5], "protocol_share": [0.6]}, "must not exceed 1"),
        ({"market.depth": [1e6]}, "has no [market]"),
        ({"preset": ["aave"], "penalty_rate": [0.01]}, "sweeping ['penalty_rate']"),
        ({"leverage_min": [20.0]}, "leverage_min=20.0 > leverage_max=12.0"),
        ({"quorum": [8]}, "quorum=8 > 7 sources"),
        ({"sizing": ["close-factor"], "mechanism": ["dutch-auction"]}, "applies to 'fixed-fee'"),
    ]
    for params, message in cases:
        with pytest.raises(InvalidArgument, match=None) as err:
            sweep(small, Grid(params, [1]), scheduler="serial", workdir=tmp_path)
        assert message in str(err.value), (params, str(err.value))
    assert not list(tmp_path.iterdir())  # nothing ran
    with pytest.raises(InvalidArgument, match="workers=0"):
        sweep(small, GRID, workers=0)


def test_values_are_in_the_scenario_file_units(small: Path) -> None:
    sc = load_scenario(small)
    out = apply_overrides(
        sc, (("penalty_rate", 0.03), ("perp_maintenance_rate", 0.1), ("vol", 1)), seed=42
    )
    assert out.penalty_rate == 30_000_000 and out.perp_maintenance_rate == 100_000_000
    assert out.vol == 1.0 and isinstance(out.vol, float) and out.seed == 42
    assert dataclasses.replace(out, penalty_rate=sc.penalty_rate, vol=sc.vol, seed=sc.seed,
                               perp_maintenance_rate=sc.perp_maintenance_rate) == sc  # fmt: skip
    assert {"penalty_rate", "perp_maintenance_rate", "keeper_share", "vol"} <= set(SWEEPABLE)
    assert all(name in {f.name for f in dataclasses.fields(sc)} for name in SWEEPABLE)


def test_serial_sweep_runs_in_grid_order(serial: tuple[SweepResult, Path], small: Path) -> None:
    res, work = serial
    assert [(r.overrides, r.seed) for r in res.runs] == [(p, s) for _, p, s in GRID.runs()]
    assert len(GRID) == 4 and res.scheduler == "serial"
    assert {r.db_name for r in res.runs} == {p.name for p in work.glob("*.sqlite")}
    assert len({r.head for r in res.runs}) == 4 and all(r.mode == "ticks" for r in res.runs)
    # a run is a pure function of its inputs: again, elsewhere, the same log
    again = run_point(small, res.runs[1].overrides, res.runs[1].seed, work / "again")
    assert isinstance(again, PointResult) and again == res.runs[1]
    # seeds change the population; the penalty rate changes what users pay
    s1, s2 = res.runs[0], res.runs[1]
    assert s1.head != s2.head
    low, high = res.summaries()
    assert low.mean_penalty_pct < high.mean_penalty_pct
    assert res.to_json()["runs"][0]["overrides"] == {"penalty_rate": 0.02}


def test_dask_gives_the_same_runs_as_serial(
    serial: tuple[SweepResult, Path], small: Path, tmp_path: Path
) -> None:
    done: list[int] = []
    res = sweep(small, GRID, workers=2, workdir=tmp_path, progress=lambda d, n: done.append(d))
    assert res.scheduler == "local" and res.workers == 2
    assert sorted(done) == [1, 2, 3, 4]
    assert res.runs == serial[0].runs  # every run's log head and state digest included
    assert [r.head for r in res.runs] == [r.head for r in serial[0].runs]


def test_recommendation_is_the_cheapest_point_within_the_target(
    serial: tuple[SweepResult, Path],
) -> None:
    res = serial[0]
    points = res.summaries()
    one = 10 ** points[0].decimals
    worst = max(p.worst_bad_debt for p in points) / one
    rec = recommend(res, worst)
    assert rec and rec.best is not None
    assert rec.best.overrides == (("penalty_rate", 0.02),)  # both qualify: the lower penalty
    assert len(rec.qualifying) == 2 and "penalty_rate=0.02" in rec.reason
    least = min(p.worst_bad_debt for p in points) / one
    none = recommend(res, least - 1)
    assert not none and none.best is None and none.qualifying == ()
    assert none.reason.startswith("no point keeps worst-seed bad debt within")
    # the mean over seeds is at most the worst seed: a target between them qualifies on mean
    mean = max(p.mean_bad_debt for p in points) / one
    if mean < least:
        assert not recommend(res, mean)
        assert recommend(res, mean, criterion="mean")
    [(given, each)] = recommend_each(res, worst, ["penalty_rate"])[:1]
    assert given == {"penalty_rate": 0.02} and each.best == rec.best
    with pytest.raises(InvalidArgument, match="not in the grid"):
        recommend_each(res, worst, ["vol"])
    with pytest.raises(InvalidArgument, match="bad_debt_target"):
        recommend(res, -1)


CHAIN = """
[chain]
block_s = 300
gas_limit = 30000000
base_fee_gwei = 20
duration_s = 172800

[market]
model = "depth"
depth = 1000000

[[keepers]]
name = "k"
count = 2
capital = 2000000
latency = 1
tip_gwei = 2
"""


def test_block_scenarios_sweep_their_market_depth(tmp_path: Path) -> None:
    path = edited_quickstart(tmp_path, "chain.toml", SMALL)
    path.write_text(path.read_text() + CHAIN)
    grid = Grid({"market.depth": [1e5, 1e8]}, seeds=[3])
    res = sweep(path, grid, scheduler="serial", workdir=tmp_path / "runs")
    assert [r.mode for r in res.runs] == ["blocks", "blocks"]
    assert res.runs[0].head != res.runs[1].head
    sc = apply_overrides(load_scenario(path), (("market.depth", 1e5),))
    assert sc.market is not None and sc.market.depth == 1e5


def test_cli_sweep_recommends_and_writes_json(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from liqeng.cli import app

    path = edited_quickstart(tmp_path, "s.toml", ("count = 300", "count = 30"))
    out = tmp_path / "s.json"
    args = ["sweep", str(path), "--param", "penalty_rate=0.02,0.05", "--seeds", "1,2"]
    args += ["--target", "1000000000", "--scheduler", "serial", "--json", str(out), "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "recommendation: penalty_rate=0.02" in " ".join(result.output.split())
    assert json.loads(out.read_text())["seeds"] == [1, 2]
    bad = CliRunner().invoke(app, [*args[:3], "chop=1.1", "--scheduler", "serial"])
    assert bad.exit_code == 2 and "unknown field(s) ['chop']" in " ".join(bad.output.split())
