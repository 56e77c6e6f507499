"""Sweeps and calibration: one scenario over a grid of parameter values and seeds, fanned
out on Dask, and the parameters that keep bad debt below a target at the least user penalty.

A ``Grid`` names ``Scenario`` fields and the values to try (every combination is a *point*)
and the seeds every point runs with. Values are given in the scenario file's own units:
rates and shares as fractions (``penalty_rate=0.05`` is 5%; the scenario stores parts per
``RATE_SCALE``, converted as ``load_scenario`` does), money in whole quote units, counts as
integers. ``market.depth``, ``market.resilience`` and the ``chain.*`` settings in
``NESTED_FIELDS`` reach into the scenario's ``[market]`` and ``[chain]`` tables (the
scenario must have them). ``seed`` is not a grid parameter: it is the grid's second axis.

``run_point`` is one (point, seed) run, a pure function of its inputs: it loads the
scenario, applies the point's values and the seed, runs it (``runner.run``, or
``blocks.run_blocks`` when the scenario has a ``[chain]``) into its own SQLite file under
``workdir``, and returns a small picklable ``PointResult`` (money in quote base units).

``sweep`` submits every (point, seed) to a Dask cluster (a ``distributed.LocalCluster`` of
``workers`` single-threaded processes by default; a scheduler address uses an existing
cluster, whose workers must import this liqeng and reach the scenario, its price files and
``workdir`` at the same paths) or runs them one after the other (``scheduler="serial"``).
Results come back in grid order, point by point and seed by seed as given, whatever order
the workers finished in: the same grid gives the same ``SweepResult`` serially and on any
cluster, down to every run's log head.

``recommend`` picks, among the points whose bad debt stays within a target on the worst
seed (``criterion="worst"``, the default) or on average over the seeds (``"mean"``), the one
with the least user penalty (all its runs' penalties over all their liquidated notional).
The scenario fixes the asset: its price path and its ``vol`` (the margin's Black-76
volatility) and ``[market] depth``. To calibrate for several volatilities or depths, put
``vol`` or ``market.depth`` in the grid and ask ``recommend_each`` for one recommendation
per value (``conditions=("vol", "market.depth")``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import math
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from liqeng.errors import InvalidArgument
from liqeng.liquidation.registry import MECHANISMS
from liqeng.presets import preset
from liqeng.sim.scenario import MARGIN_MODELS, SIZINGS, Scenario, load_scenario, rate

__all__ = [
    "NESTED_FIELDS",
    "SWEEPABLE",
    "Grid",
    "PointResult",
    "PointSummary",
    "Recommendation",
    "SweepResult",
    "apply_overrides",
    "recommend",
    "recommend_each",
    "run_point",
    "sweep",
]

Value = int | float | str
"""One grid value: a fraction for a rate, a number, or a name (mechanism, preset...)."""
Overrides = tuple[tuple[str, Value], ...]
"""One point: ``(field, value)`` pairs in the grid's parameter order."""
Progress = Callable[[int, int], None]
"""``progress(done, total)``, called once per finished run."""


@dataclass(frozen=True, slots=True)
class _Kind:
    """How a sweepable field takes its values: ``rate`` (a fraction, stored as parts per
    RATE_SCALE), ``int``, ``float`` or ``choice``; bounds as ``load_scenario`` checks them."""

    kind: Literal["rate", "int", "float", "choice"]
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()


_RATE = _Kind("rate", 0, 1)
_MONEY = _Kind("int", 0, 10**15)

SWEEPABLE: dict[str, _Kind] = {
    "perp_maintenance_rate": _RATE,
    "option_maintenance_rate": _RATE,
    "option_floor_rate": _RATE,
    "penalty_rate": _RATE,
    "keeper_share": _RATE,
    "protocol_share": _RATE,
    "vol": _Kind("float", 0.01, 5.0),
    "target_health": _Kind("float", 1, 100),
    "mechanism": _Kind("choice", choices=tuple(sorted(MECHANISMS))),
    "sizing": _Kind("choice", choices=SIZINGS),
    "margin_model": _Kind("choice", choices=MARGIN_MODELS),
    "preset": _Kind("choice"),  # checked by liqeng.presets.preset, which lists the names
    "ticks_per_candle": _Kind("int", 1, 4),
    "quorum": _Kind("int", 1, 10**6),
    "max_age_s": _Kind("int", 1, 10**9),
    "option_expiry_days": _Kind("int", 1, 3650),
    "accounts": _Kind("int", 1, 1_000_000),
    "collateral_median": _Kind("float", 1, 1e12),
    "collateral_sigma": _Kind("float", 0, 5),
    "collateral_min": _Kind("float", 1, 1e12),
    "collateral_max": _Kind("float", 1, 1e12),
    "leverage_min": _Kind("float", 0, 100),
    "leverage_max": _Kind("float", 0, 100),
    "long_share": _Kind("float", 0, 1),
    "put_seller_share": _Kind("float", 0, 1),
    "put_size_min": _Kind("float", 0, 100),
    "put_size_max": _Kind("float", 0, 100),
    "min_initial_health": _Kind("float", 1, 100),
    "insurance_fund": _MONEY,
    "keeper_capital": _MONEY,
    "market_maker_capital": _MONEY,
    "backstop_pool": _MONEY,
}
"""``Scenario`` fields a grid may vary, and how each takes its values."""

NESTED_FIELDS: dict[str, _Kind] = {
    "market.depth": _Kind("float", 1, 1e15),
    "market.resilience": _Kind("float", 0, 1),
    "chain.block_s": _Kind("int", 1, 3600),
    "chain.gas_limit": _Kind("int", 21_000, 10**10),
    "chain.base_fee_gwei": _Kind("float", 0, 1e6),
}
"""Settings of the scenario's ``[market]`` and ``[chain]`` a grid may vary."""

_KINDS = {**SWEEPABLE, **NESTED_FIELDS}
_PRESET_SETS = (
    *("mechanism", "penalty_rate", "keeper_share", "protocol_share"),
    *("sizing", "target_health"),
)
"""Fields a preset brings its own value for: sweeping them beside a preset does nothing."""


def _check_value(name: str, value: object) -> Value:
    """``value`` for field ``name`` as the grid keeps it; ``InvalidArgument`` otherwise."""
    k = _KINDS[name]
    if k.kind == "choice":
        if not isinstance(value, str):
            raise InvalidArgument(f"grid {name}={value!r} must be a name (str)")
        if name == "preset":
            preset(value)  # refuses an unknown preset, listing the known ones
        elif value not in k.choices:
            raise InvalidArgument(f"grid {name}={value!r}; available: {', '.join(k.choices)}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"grid {name}={value!r} must be a number")
    if k.kind == "int" and not isinstance(value, int):
        raise InvalidArgument(f"grid {name}={value!r} must be an integer")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgument(f"grid {name}={value!r} must be finite")
    if (k.lo is not None and value < k.lo) or (k.hi is not None and value > k.hi):
        what = "a fraction within" if k.kind == "rate" else "within"
        raise InvalidArgument(f"grid {name}={value!r} must be {what} [{k.lo}, {k.hi}]")
    if k.kind == "rate":
        rate(float(value), name)  # refuses more precision than 1e-9
    return value


@dataclass(frozen=True, slots=True)
class Grid:
    """Every combination of ``params`` values (in the order given, the last parameter
    varying fastest), each run with every seed in ``seeds``. Names are ``SWEEPABLE`` or
    ``NESTED_FIELDS``; values in the scenario file's units (module doc)."""

    params: Mapping[str, Sequence[Value]]
    seeds: Sequence[int]

    def __post_init__(self) -> None:
        if not isinstance(self.params, Mapping):
            raise InvalidArgument(f"grid params={self.params!r} must map field names to values")
        unknown = sorted(str(n) for n in self.params if n not in _KINDS)
        if unknown:
            hint = " (seeds are the grid's second axis: Grid(params, seeds))"
            raise InvalidArgument(
                f"grid: unknown field(s) {unknown}"
                + (hint if "seed" in unknown else "")
                + f"; sweepable: {', '.join(sorted(_KINDS))}"
            )
        params: dict[str, tuple[Value, ...]] = {}
        for name, values in self.params.items():
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                raise InvalidArgument(f"grid {name}={values!r} must be a list of values")
            if not values:
                raise InvalidArgument(f"grid {name}: no values")
            vs = tuple(_check_value(name, v) for v in values)
            if len(set(vs)) != len(vs):
                raise InvalidArgument(f"grid {name}={list(values)!r} repeats a value")
            params[name] = vs
        if isinstance(self.seeds, (str, bytes)) or not isinstance(self.seeds, Sequence):
            raise InvalidArgument(f"grid seeds={self.seeds!r} must be a list of integers")
        if not self.seeds:
            raise InvalidArgument("grid: no seeds")
        for s in self.seeds:
            if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**63:
                raise InvalidArgument(f"grid seed={s!r} must be an integer in [0, 2**63)")
        if len(set(self.seeds)) != len(self.seeds):
            raise InvalidArgument(f"grid seeds={list(self.seeds)!r} repeat a seed")
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "seeds", tuple(self.seeds))

    def points(self) -> list[Overrides]:
        """Every point, in grid order."""
        names = list(self.params)
        return [tuple(zip(names, c, strict=True)) for c in itertools.product(*self.params.values())]

    def runs(self) -> Iterator[tuple[int, Overrides, int]]:
        """``(point index, point, seed)`` for every run, in grid order."""
        for i, point in enumerate(self.points()):
            for seed in self.seeds:
                yield i, point, seed

    def __len__(self) -> int:
        return math.prod(len(v) for v in self.params.values()) * len(self.seeds)


def apply_overrides(sc: Scenario, overrides: Overrides, seed: int | None = None) -> Scenario:
    """``sc`` with the point's values (and ``seed``), checked as ``load_scenario`` checks a
    file: ``InvalidArgument`` naming the value that does not fit this scenario."""
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for name, value in overrides:
        if name not in _KINDS:
            raise InvalidArgument(f"unknown field {name!r}; sweepable: {sorted(_KINDS)}")
        value = _check_value(name, value)
        k = _KINDS[name]
        stored: Value = rate(float(value), name) if k.kind == "rate" else value
        if k.kind == "float":
            stored = float(value)
        if "." in name:
            table, key = name.split(".", 1)
            nested.setdefault(table, {})[key] = stored
        else:
            top[name] = stored
    if seed is not None:
        top["seed"] = seed
    where = f"{sc.path.name} with {dict(overrides)}"
    preset_name = top.get("preset", sc.preset)
    if preset_name is not None:
        clash = sorted(n for n in _PRESET_SETS if n in top)
        if clash:
            raise InvalidArgument(
                f"{where}: preset={preset_name!r} sets the mechanism and its rates; "
                f"sweeping {clash} would do nothing"
            )
    for table, values in nested.items():
        spec = getattr(sc, table)
        if spec is None:
            raise InvalidArgument(f"{where}: the scenario has no [{table}] to set {values}")
        top[table] = dataclasses.replace(spec, **values)
    out = dataclasses.replace(sc, **top)
    if out.quorum > len(out.price_files):
        raise InvalidArgument(f"{where}: quorum={out.quorum} > {len(out.price_files)} sources")
    for lo, hi in (
        ("collateral_min", "collateral_max"),
        ("leverage_min", "leverage_max"),
        ("put_size_min", "put_size_max"),
    ):
        if getattr(out, lo) > getattr(out, hi):
            raise InvalidArgument(f"{where}: {lo}={getattr(out, lo)} > {hi}={getattr(out, hi)}")
    if out.keeper_share + out.protocol_share > rate(1.0, "one"):
        raise InvalidArgument(f"{where}: keeper_share + protocol_share must not exceed 1")
    if out.sizing != "all" and out.mechanism != "fixed-fee":
        raise InvalidArgument(f"{where}: sizing={out.sizing!r} applies to 'fixed-fee' only")
    return out


@dataclass(frozen=True, slots=True)
class PointResult:
    """One (point, seed) run. Money in quote base units (``decimals``)."""

    overrides: Overrides
    seed: int
    mode: Literal["ticks", "blocks"]
    decimals: int
    liquidations: int
    notional: int
    penalties: int
    bad_debt: int
    bad_debt_uncovered: int
    head: str
    state_digest: str
    db_name: str

    @property
    def mean_penalty_pct(self) -> float:
        """Penalties paid as a share of the notional liquidated, in percent."""
        return 100.0 * self.penalties / self.notional if self.notional else 0.0


def _db_name(overrides: Overrides, seed: int) -> str:
    """A file name for the run, the same wherever it runs."""
    text = json.dumps([[list(p) for p in overrides], seed])
    return f"point-{hashlib.sha256(text.encode()).hexdigest()[:16]}-seed{seed}.sqlite"


def run_point(
    scenario_path: str | Path, overrides: Overrides, seed: int, workdir: str | Path
) -> PointResult:
    """Run one point with one seed into ``workdir`` (module doc). A pure function of its
    arguments and the files they name."""
    from liqeng.sim.blocks import run_blocks
    from liqeng.sim.runner import run

    overrides = tuple((str(n), v) for n, v in overrides)
    sc = apply_overrides(load_scenario(scenario_path), overrides, seed)
    name = _db_name(overrides, seed)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    db = Path(workdir) / name
    if sc.chain is not None:
        b = run_blocks(sc, db)
        return PointResult(
            overrides, seed, "blocks", b.decimals, b.liquidations, b.notional, b.penalties,
            b.bad_debt, b.bad_debt_uncovered, b.head, b.state_digest, name,
        )  # fmt: skip
    r = run(sc, db)
    return PointResult(
        overrides, seed, "ticks", r.decimals, r.liquidations, r.notional, r.penalties,
        r.bad_debt, r.bad_debt_uncovered, r.head, r.state_digest, name,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class PointSummary:
    """A point over all its seeds (quote base units)."""

    overrides: Overrides
    seeds: tuple[int, ...]
    decimals: int
    worst_bad_debt: int
    total_bad_debt: int
    penalties: int
    notional: int
    liquidations: int

    @property
    def mean_bad_debt(self) -> float:
        return self.total_bad_debt / len(self.seeds)

    @property
    def mean_penalty_pct(self) -> float:
        """All the runs' penalties over all their liquidated notional, in percent."""
        return 100.0 * self.penalties / self.notional if self.notional else 0.0

    def label(self) -> str:
        return ", ".join(f"{n}={v}" for n, v in self.overrides) or "(the scenario as is)"


@dataclass(frozen=True, slots=True)
class SweepResult:
    """Every run of a sweep, in grid order (``Grid.runs``)."""

    scenario: str
    scenario_digest: str
    params: tuple[tuple[str, tuple[Value, ...]], ...]
    seeds: tuple[int, ...]
    runs: tuple[PointResult, ...]
    scheduler: str
    workers: int
    seconds: float = dataclasses.field(default=0.0, compare=False)

    def summaries(self) -> list[PointSummary]:
        """One ``PointSummary`` per point, in grid order."""
        out: list[PointSummary] = []
        for overrides, group in itertools.groupby(self.runs, key=lambda r: r.overrides):
            rs = list(group)
            out.append(
                PointSummary(
                    overrides=overrides,
                    seeds=tuple(r.seed for r in rs),
                    decimals=rs[0].decimals,
                    worst_bad_debt=max(r.bad_debt for r in rs),
                    total_bad_debt=sum(r.bad_debt for r in rs),
                    penalties=sum(r.penalties for r in rs),
                    notional=sum(r.notional for r in rs),
                    liquidations=sum(r.liquidations for r in rs),
                )
            )
        return out

    def to_json(self) -> dict[str, Any]:
        """The sweep as plain JSON values (money in quote base units)."""
        return {
            "scenario": self.scenario,
            "scenario_digest": self.scenario_digest,
            "params": {n: list(v) for n, v in self.params},
            "seeds": list(self.seeds),
            "scheduler": self.scheduler,
            "workers": self.workers,
            "seconds": self.seconds,
            "runs": [
                {
                    **{f.name: getattr(r, f.name) for f in dataclasses.fields(r)},
                    "overrides": dict(r.overrides),
                    "mean_penalty_pct": r.mean_penalty_pct,
                }
                for r in self.runs
            ],
        }


def sweep(
    scenario_path: str | Path,
    grid: Grid,
    scheduler: str | None = None,
    workers: int = 2,
    progress: Progress | None = None,
    workdir: str | Path | None = None,
) -> SweepResult:
    """Run every (point, seed) of ``grid`` on ``scenario_path`` (module doc).

    ``scheduler``: ``None`` starts a ``LocalCluster`` of ``workers`` processes (one thread
    each) for this sweep; ``"serial"`` runs here, one run after the other; anything else is
    the address of a running Dask scheduler (``tcp://host:8786``). ``workdir`` keeps each
    run's SQLite file; by default they go to a temporary folder removed afterwards.
    Every point is checked against the scenario before any run starts."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidArgument(f"workers={workers!r} must be a positive integer")
    path = Path(scenario_path).resolve()
    sc = load_scenario(path)
    for point in grid.points():
        apply_overrides(sc, point)  # refuse a bad point before running any
    runs = list(grid.runs())
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="liqeng-sweep-") as tmp:
        out = Path(workdir).resolve() if workdir is not None else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        if scheduler == "serial":
            results = []
            for n, (_, point, seed) in enumerate(runs, start=1):
                results.append(run_point(path, point, seed, out))
                if progress is not None:
                    progress(n, len(runs))
            label, used = "serial", 1
        else:
            results, used = _on_dask(path, runs, out, scheduler, workers, progress)
            label = scheduler or "local"
    return SweepResult(
        scenario=str(path),
        scenario_digest=sc.digest,
        params=tuple((n, tuple(v)) for n, v in grid.params.items()),
        seeds=tuple(grid.seeds),
        runs=tuple(results),
        scheduler=label,
        workers=used,
        seconds=time.perf_counter() - t0,
    )


def _on_dask(
    path: Path,
    runs: list[tuple[int, Overrides, int]],
    workdir: Path,
    scheduler: str | None,
    workers: int,
    progress: Progress | None,
) -> tuple[list[PointResult], int]:
    """The runs on a Dask cluster, in ``runs`` order; and the number of workers."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise InvalidArgument(
            "sweeps on Dask need the 'sweep' extra: pip install 'liqeng[sweep]' "
            "(or scheduler='serial')"
        ) from None
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        used = len(client.scheduler_info()["workers"])
        futures = [client.submit(run_point, path, p, s, workdir, pure=False) for _, p, s in runs]
        order = {f.key: n for n, f in enumerate(futures)}
        results: list[PointResult | None] = [None] * len(futures)
        for done, fut in enumerate(as_completed(futures), start=1):
            results[order[fut.key]] = fut.result()
            if progress is not None:
                progress(done, len(futures))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return [r for r in results if r is not None], used


@dataclass(frozen=True, slots=True)
class Recommendation:
    """The point ``recommend`` chose (``best``), or ``None`` with ``reason`` saying why."""

    best: PointSummary | None
    bad_debt_target: float
    criterion: Literal["worst", "mean"]
    qualifying: tuple[PointSummary, ...]
    reason: str

    def __bool__(self) -> bool:
        return self.best is not None


def recommend(
    result: SweepResult,
    bad_debt_target: float,
    criterion: Literal["worst", "mean"] = "worst",
    given: Mapping[str, Value] | None = None,
) -> Recommendation:
    """Among the points (those matching ``given``, if set) whose bad debt, on the worst
    seed or on average (``criterion``), is at most ``bad_debt_target`` whole quote units,
    the one with the least user penalty; ties go to the lower bad debt, then grid order."""
    if criterion not in ("worst", "mean"):
        raise InvalidArgument(f"criterion={criterion!r}; available: worst, mean")
    if (
        isinstance(bad_debt_target, bool)
        or not isinstance(bad_debt_target, (int, float))
        or not math.isfinite(bad_debt_target)
        or bad_debt_target < 0
    ):
        raise InvalidArgument(f"bad_debt_target={bad_debt_target!r} must be a number >= 0")
    points = result.summaries()
    if given:
        names = {n for n, _ in result.params}
        unknown = sorted(set(given) - names)
        if unknown:
            raise InvalidArgument(f"given: {unknown} not in the grid ({sorted(names)})")
        points = [p for p in points if all(dict(p.overrides)[n] == v for n, v in given.items())]
        if not points:
            raise InvalidArgument(f"given={dict(given)}: no point of the grid matches")

    def debt(p: PointSummary) -> Fraction:
        if criterion == "worst":
            return Fraction(p.worst_bad_debt, 10**p.decimals)
        return Fraction(p.total_bad_debt, len(p.seeds) * 10**p.decimals)

    target = Fraction(str(bad_debt_target))
    what = "worst-seed" if criterion == "worst" else "mean"
    ok = tuple(p for p in points if debt(p) <= target)
    if not ok:
        least = min(points, key=debt)
        return Recommendation(
            None,
            bad_debt_target,
            criterion,
            (),
            f"no point keeps {what} bad debt within {bad_debt_target:,}; the least is "
            f"{float(debt(least)):,.2f} at {least.label()}",
        )
    best = min(ok, key=lambda p: (Fraction(p.penalties, p.notional or 1), debt(p)))
    return Recommendation(
        best,
        bad_debt_target,
        criterion,
        ok,
        f"{best.label()}: user penalty {best.mean_penalty_pct:.3f}% of notional, {what} bad "
        f"debt {float(debt(best)):,.2f} <= {bad_debt_target:,} ({len(ok)} of {len(points)} "
        "points qualify)",
    )


def recommend_each(
    result: SweepResult,
    bad_debt_target: float,
    conditions: Sequence[str],
    criterion: Literal["worst", "mean"] = "worst",
) -> list[tuple[dict[str, Value], Recommendation]]:
    """One ``recommend`` per combination of the ``conditions`` values in the grid (the
    asset's ``vol``, ``market.depth``...), choosing among the other parameters."""
    grid = dict(result.params)
    missing = [c for c in conditions if c not in grid]
    if missing:
        raise InvalidArgument(f"conditions {missing} are not in the grid ({sorted(grid)})")
    out = []
    for combo in itertools.product(*(grid[c] for c in conditions)):
        given = dict(zip(conditions, combo, strict=True))
        out.append((given, recommend(result, bad_debt_target, criterion, given)))
    return out
