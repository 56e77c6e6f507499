"""The ``liqeng`` command."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from liqeng import __version__
from liqeng.clock import SimClock
from liqeng.errors import InvalidArgument, LiqengError
from liqeng.ledger.core import Ledger
from liqeng.ledger.sqlite import SqliteStorage
from liqeng.liquidation.registry import MECHANISMS
from liqeng.presets import PRESETS, preset
from liqeng.sim.blocks import BlockRun, run_blocks
from liqeng.sim.report import comparison_table, write_report
from liqeng.sim.runner import RunSummary, run
from liqeng.sim.scenario import Scenario, load_scenario
from liqeng.sim.sweep import Grid, recommend, sweep
from liqeng.units import EXACT

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="liqeng: a liquidation engine for crypto-derivatives protocols, options first.",
)
log_app = typer.Typer(no_args_is_help=True, help="Inspect a ledger's event log.")
app.add_typer(log_app, name="log")
console = Console()


def _progress(quiet: bool) -> Progress:
    """The progress bar of a long run (none with ``--quiet``; it vanishes when done)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
        transient=True,
    )


def _money(units: int, decimals: int) -> str:
    return f"{Decimal(units).scaleb(-decimals, context=EXACT):,.2f}"


def _summary_table(s: RunSummary) -> Table:
    d = s.decimals
    label = s.mechanism if s.preset is None else f"preset {s.preset}: {preset(s.preset).protocol}"
    t = Table(title=f"liqeng simulate: {s.scenario} (seed {s.seed}), {label}", show_lines=False)
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = [
        ("accounts", f"{s.accounts:,}"),
        ("price ticks", f"{s.ticks:,}"),
        (
            "index first / min / last",
            " / ".join(_money(p, d) for p in (s.index_first, s.index_min, s.index_last)),
        ),
        ("rejected source reports", f"{s.rejected_reports:,}"),
        ("feed degraded / halted steps", f"{s.feed_degraded_steps:,} / {s.feed_halted_steps:,}"),
        ("liquidations", f"{s.liquidations:,}"),
        ("  refused at execution", f"{s.refused_liquidations:,}"),
        ("notional liquidated", _money(s.notional, d)),
        ("collateral seized", _money(s.seized, d)),
        ("penalties paid", _money(s.penalties, d)),
        ("  to keepers", _money(s.keeper_rewards, d)),
        ("  to insurance fund", _money(s.insurance_fees, d)),
        ("  to fee sink", _money(s.protocol_fees, d)),
        *([("  to backstop pool", _money(s.pool_fees, d))] if s.pool_fees else []),
        ("bad debt", _money(s.bad_debt, d)),
        ("  covered by insurance fund, pool", _money(s.bad_debt_covered, d)),
        *(
            [
                ("  socialised over holders", _money(s.bad_debt_socialised, d)),
                ("  deleveraged (ADL)", _money(s.bad_debt_deleveraged, d)),
            ]
            if s.bad_debt_socialised or s.bad_debt_deleveraged
            else []
        ),
        ("  uncovered", _money(s.bad_debt_uncovered, d)),
        ("insurance fund before", _money(s.insurance_fund_before, d)),
        ("insurance fund after", _money(s.insurance_fund_after, d)),
        ("events in log", f"{s.events:,}"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    return t


@app.command()
def simulate(
    scenario: Annotated[
        Path, typer.Argument(help="Scenario TOML file, e.g. scenarios/quickstart.toml")
    ],
    db: Annotated[
        Path | None,
        typer.Option(help="SQLite file for the event log [default: <scenario name>.sqlite]"),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Root seed of the account population [default: the file's]")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar")] = False,
    preset_name: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help="Liquidate as a named protocol does (maker, aave, liquity, ...), "
            "replacing the file's [liquidation] mechanism",
        ),
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated mechanisms or presets to run on the same seed and "
            "scenario (e.g. maker,aave,dutch-auction), compared in a table and a report",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="HTML report of a block-by-block run [default: <name>-report.html]"),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the run's figures as JSON here")
    ] = None,
) -> None:
    """Replay a scenario through the engine and print what liquidation did."""
    try:
        sc = load_scenario(scenario)
        if seed is not None:
            if not 0 <= seed < 2**63:
                raise InvalidArgument(f"--seed={seed} must be within [0, 2**63)")
            sc = dataclasses.replace(sc, seed=seed)
        if preset_name is not None:
            preset(preset_name)
            sc = dataclasses.replace(sc, preset=preset_name)
        db_path = db or Path(f"{sc.name}.sqlite")
        if sc.chain is not None or compare is not None:
            _simulate_blocks(sc, db_path, compare, report, json_out, quiet)
            return
        with _progress(quiet) as progress:
            task = progress.add_task(f"{sc.name}: ticks", total=None)

            def on_tick(n: int, total: int, _: object) -> None:
                progress.update(task, completed=n, total=total)

            summary = run(sc, db_path, on_tick)
    except LiqengError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(_summary_table(summary))
    if json_out is not None:
        json_out.write_text(json.dumps(dataclasses.asdict(summary), indent=2, sort_keys=True))
    console.print(f"event log: {summary.db_path} (table events; views postings, position_changes)")
    console.print(f"log head:  {summary.head}")
    console.print(f"run:       seed {sc.seed}, scenario {sc.digest[:16]}, liqeng {__version__}")


def _variants(sc: Scenario, compare: str | None) -> list[tuple[str, Scenario]]:
    """``--compare a,b``: the scenario under each mechanism or preset (same seed)."""
    if compare is None:
        return [(sc.preset or sc.mechanism, sc)]
    out = []
    for name in (n.strip() for n in compare.split(",")):
        if name in PRESETS:
            out.append((name, dataclasses.replace(sc, preset=name)))
        elif name in MECHANISMS:
            out.append((name, dataclasses.replace(sc, preset=None, mechanism=name)))
        else:
            raise InvalidArgument(
                f"--compare: {name!r} is neither a mechanism {sorted(MECHANISMS)} nor a "
                f"preset {sorted(PRESETS)}"
            )
    if not out:
        raise InvalidArgument("--compare needs at least one name")
    return out


def _simulate_blocks(
    sc: Scenario,
    db_path: Path,
    compare: str | None,
    report: Path | None,
    json_out: Path | None,
    quiet: bool,
) -> None:
    """Block-by-block runs (a ``[chain]`` scenario), one per ``--compare`` name: a
    comparison table, an HTML report, and JSON."""
    if sc.chain is None:
        raise InvalidArgument(
            f"--compare needs a scenario with a [chain] ({sc.path.name} has none)"
        )
    variants = _variants(sc, compare)
    runs: list[BlockRun] = []
    with _progress(quiet) as progress:
        for label, variant in variants:
            task = progress.add_task(f"{sc.name} / {label}: blocks", total=None)

            def on_block(n: int, total: int, task: TaskID = task) -> None:
                if n % 100 == 0 or n == total:
                    progress.update(task, completed=n, total=total)

            path = (
                db_path
                if len(variants) == 1
                else db_path.with_name(f"{db_path.stem}-{label}.sqlite")
            )
            runs.append(run_blocks(variant, path, on_block, label=label))
    series = [r.series() for r in runs]
    console.print(comparison_table(series))
    config = sc.digest[:16]
    meta = {"scenario": sc.name, "seed": str(sc.seed), "config": config, "liqeng": __version__}
    out = report or Path(f"{sc.name}-report.html")
    write_report(out, series, f"liqeng simulate: {sc.name}", meta)
    console.print(f"report:    {out}")
    if json_out is not None:
        doc = {"meta": meta, "runs": [r.to_json() for r in runs]}
        json_out.write_text(json.dumps(doc, indent=2, sort_keys=True))
        console.print(f"json:      {json_out}")
    for r in runs:
        console.print(f"log head:  {r.head}  ({r.label})")
    console.print(f"run:       seed {sc.seed}, scenario {config}, liqeng {__version__}")


def _parse_param(text: str) -> tuple[str, list[float | int | str]]:
    """``name=v1,v2,…``: numbers as numbers, anything else as text."""
    name, sep, values = text.partition("=")
    if not sep or not name or not values:
        raise InvalidArgument(f"--param {text!r} must be name=value1,value2,...")
    out: list[float | int | str] = []
    for v in values.split(","):
        try:
            out.append(int(v))
        except ValueError:
            try:
                out.append(float(v))
            except ValueError:
                out.append(v)
    return name.strip(), out


@app.command("sweep")
def sweep_command(
    scenario: Annotated[Path, typer.Argument(help="Scenario TOML file")],
    param: Annotated[
        list[str],
        typer.Option(
            help="name=v1,v2,... (repeatable), in the file's units: penalty_rate=0.02,0.05"
        ),
    ],
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds")] = "1,2,3",
    target: Annotated[
        float, typer.Option(help="Bad-debt target in whole quote units (worst seed)")
    ] = 0.0,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Dask scheduler address; 'serial' runs in-process [default: a LocalCluster]"
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="LocalCluster workers")] = 2,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the sweep as JSON")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar")] = False,
) -> None:
    """Run a grid of parameter values x seeds (on Dask) and recommend the point with the
    least user penalty whose worst-seed bad debt stays within the target."""
    try:
        grid = Grid(
            dict(_parse_param(p) for p in param), [int(x) for x in seeds.split(",") if x.strip()]
        )
        with _progress(quiet) as progress:
            task = progress.add_task("sweep: runs", total=len(grid))

            def on_run(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            result = sweep(scenario, grid, scheduler, workers, on_run)
        choice = recommend(result, target)
    except (LiqengError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    t = Table(title=f"liqeng sweep: {result.scenario} ({len(grid)} runs, {result.scheduler})")
    for col in ("point", "worst bad debt", "mean bad debt", "user penalty %", "liquidations"):
        t.add_column(col, justify="left" if col == "point" else "right")
    for p in result.summaries():
        one = 10**p.decimals
        t.add_row(
            p.label(),
            f"{p.worst_bad_debt / one:,.0f}",
            f"{p.mean_bad_debt / one:,.0f}",
            f"{p.mean_penalty_pct:.3f}",
            f"{p.liquidations:,}",
        )
    console.print(t)
    console.print(f"recommendation: {choice.reason}")
    if json_out is not None:
        doc = {**result.to_json(), "recommendation": choice.reason}
        json_out.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str))
    console.print(
        f"run:       seeds {seeds}, scenario {result.scenario_digest[:16]}, liqeng {__version__}"
    )


@log_app.command("verify")
def log_verify(
    db: Annotated[Path, typer.Argument(help="SQLite file written by liqeng")],
) -> None:
    """Re-hash the whole chain, rebuild the state and check every invariant."""
    if not db.is_file():
        console.print(f"[red]error:[/red] db={str(db)!r} is not a file")
        raise typer.Exit(2)
    try:
        storage = SqliteStorage(db, readonly=True)
        ledger = Ledger(storage, SimClock(0))
        ledger.check_invariants()
    except InvalidArgument as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except LiqengError as exc:
        console.print(f"[red]broken:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"ok: {ledger.seq:,} events re-hashed, snapshot and invariants checked")
    console.print(f"log head:     {ledger.head.hex()}")
    console.print(f"state digest: {ledger.state_digest()}")
    storage.close()


@app.command()
def version() -> None:
    """Print the liqeng version."""
    console.print(__version__)
