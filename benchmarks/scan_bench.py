"""Screening-scan benchmark: re-margin every account after a price update.

Usage::

    python benchmarks/scan_bench.py [--quick] [--json PATH] [--seed N]

A synthetic book from one seeded ``numpy.random.Generator``: 1,000,000 accounts holding
5,000,000 positions over 5,000 options and 10 perpetuals on 10 underlyings (``--quick``:
a tenth of each). Every account trades one home underlying (uniform); 2% also hold the
perp of another one, so one underlying moving touches about 10% of the accounts. Cash is
placed around each account's requirement, so a few percent are candidates.

Figures (medians over ``repeats`` runs after one warm-up):

- ``full_scan``: ``scan`` of the whole book (Black-76 for every option once, two CSR
  products), and ``candidates`` on its result;
- ``memory``: tracemalloc peak of one scan (numpy/scipy buffers it allocates) and the
  process's peak RSS up to the incremental figures (book, generator arrays, a probe book
  used to place cash, scan results), before the Black-76 and copy buffers;
- ``incremental``: ``rescan`` after one underlying moved;
- ``black76``: options priced per second by ``liqeng.market.black76.price`` alone
  (1,000,000 random options per call);
- ``aggregation``: one accounts × positions sum (one column) by CSR product,
  ``np.bincount`` and ``np.add.reduceat`` (why the scan uses CSR);
- ``copy``: numpy copy of a 1 GiB array (``--quick``: 128 MiB) into a preallocated one,
  GB/s of bytes copied (each byte is read once and written once): the physical reference.

- ``scenario_scan``: the portfolio-margin scan (``liqeng.risk.scenario_scan``) of the same
  book under ``LYRA_LIKE`` (23 scenarios), for the fused numba kernel (the default engine:
  top-level keys) and the numpy reference path (``numpy_reference``) in the same run: full
  scan (2 worker threads, and 1), tracemalloc peaks, an incremental tick (ETH moves, about
  10% of accounts), bitwise equality with a full scan, agreement of the two engines,
  one-thread breakdowns, and numba's compile and cache-load times in a fresh process
  (timings exclude them: every figure is taken after a warm-up call).

Targets (issue 4, 23 scenarios on the 2-core machine): full scan <= 0.10 s and <= 2 GiB,
incremental <= 20 ms: the ``scenario_scan`` figures. ``full_scan``/``incremental`` are the
one-scenario (standard margin) scan.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba  # type: ignore[import-untyped]
import numpy as np
import scipy  # type: ignore[import-untyped]
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from liqeng.market import black76  # noqa: E402
from liqeng.market.black76 import YEAR_SECONDS  # noqa: E402
from liqeng.risk import scenario_scan as ssc  # noqa: E402
from liqeng.risk.margin import MarginParams  # noqa: E402
from liqeng.risk.portfolio import LYRA_LIKE  # noqa: E402
from liqeng.risk.scan import Book, candidates, rescan, scan  # noqa: E402

UNDERLYINGS = ("BTC", "ETH", "SOL", "XRP", "BNB", "DOGE", "ADA", "AVAX", "LINK", "DOT")
SPOTS = np.array([60_000, 3_000, 150, 0.6, 550, 0.15, 0.45, 35, 15, 7.0]) * 1e6  # USDC(6)
NOW = 1_700_000_000
DAY = 86_400
FULL = {"accounts": 1_000_000, "positions": 5_000_000, "options": 5_000, "repeats": 7}
QUICK = {"accounts": 100_000, "positions": 500_000, "options": 500, "repeats": 5}
TARGET_FULL_S = 0.10
TARGET_MEMORY_GIB = 2.0
TARGET_INCREMENTAL_MS = 20.0
PARAMS = MarginParams()


def median_time(fn: Callable[[], object], repeats: int) -> dict[str, Any]:
    fn()  # warm-up
    runs = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return {"median": statistics.median(runs), "min": min(runs), "runs": runs}


def synthetic_book(rng: np.random.Generator, n_acc: int, n_pos: int, n_opt: int) -> Book:
    n_u = len(UNDERLYINGS)
    per_u = n_opt // n_u  # options per underlying; instrument block = per_u options + 1 perp
    block = per_u + 1
    n_i = block * n_u
    und = np.repeat(np.arange(n_u), block)
    is_option = np.ones(n_i, dtype=bool)
    is_option[block - 1 :: block] = False  # the last instrument of each block is the perp
    spot = SPOTS[und]
    strike = np.where(is_option, np.round(spot * rng.uniform(0.5, 1.5, n_i)), 0.0)
    expiry = NOW + rng.integers(-DAY, 180 * DAY, n_i)  # a few already expired
    is_call = rng.random(n_i) < 0.5
    size_decimals = np.full(n_i, 3, dtype=np.int64)

    # positions: 1 + multinomial so the total is exactly n_pos, at most 15 per account
    extra = rng.multinomial(n_pos - n_acc, np.full(n_acc, 1.0 / n_acc))
    counts = np.minimum(1 + extra, 15)
    home = rng.integers(0, n_u, n_acc)
    account = np.repeat(np.arange(n_acc), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    j = np.arange(account.size) - first  # 0..count-1 within the account
    start = np.repeat(rng.integers(0, block, n_acc), counts)
    step = np.repeat(rng.integers(1, block // 15 + 1, n_acc), counts)
    instrument = home[account] * block + (start + j * step) % block  # distinct per account
    cross = np.flatnonzero(rng.random(n_acc) < 0.02)  # last position -> another perp
    last = np.cumsum(counts)[cross] - 1
    other = (home[cross] + rng.integers(1, n_u, cross.size)) % n_u
    instrument[last] = other * block + block - 1
    size = rng.integers(1, 10_000, account.size) * np.where(rng.random(account.size) < 0.5, -1, 1)
    entry = np.round(SPOTS[und[instrument]] * rng.uniform(0.8, 1.2, account.size))

    arrays = {
        "underlyings": UNDERLYINGS,
        "is_option": is_option,
        "strike": strike,
        "expiry_ts": expiry,
        "is_call": is_call,
        "size_decimals": size_decimals,
        "underlying": und,
        "account": account,
        "instrument": instrument,
        "size": size.astype(np.float64),
        "entry_price": entry,
    }
    probe = Book.from_arrays(**arrays, cash=np.zeros(n_acc))
    res = scan(probe, SPOTS, NOW, PARAMS)
    # cash around the requirement: lognormal cushion, 3% of accounts short of it
    cushion = res.maintenance_margin * rng.lognormal(-1.0, 1.0, n_acc)
    cushion[rng.random(n_acc) < 0.03] *= -1.0
    cash = np.round(res.maintenance_margin - res.equity + cushion)
    return Book.from_arrays(**arrays, cash=cash)


def machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": commit,
    }


def run(cfg: dict[str, int], seed: int, copy_bytes: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    repeats = cfg["repeats"]
    t0 = time.perf_counter()
    book = synthetic_book(rng, cfg["accounts"], cfg["positions"], cfg["options"])
    build_s = time.perf_counter() - t0
    prices = SPOTS.copy()

    full = median_time(lambda: scan(book, prices, NOW, PARAMS), repeats)
    result = scan(book, prices, NOW, PARAMS)
    cand = median_time(lambda: candidates(result), repeats)
    n_candidates = int(candidates(result).size)

    gc.collect()
    tracemalloc.start()
    scan(book, prices, NOW, PARAMS)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    moved = {"ETH": float(prices[1] * 0.97)}
    touched = int(book.exposed_accounts("ETH").size)
    inc = median_time(lambda: rescan(book, result, moved), repeats)
    after = rescan(book, result, moved)
    full_after = scan(book, {**dict(zip(UNDERLYINGS, prices, strict=True)), **moved}, NOW, PARAMS)
    equal = bool(
        np.array_equal(after.equity, full_after.equity)
        and np.array_equal(after.maintenance_margin, full_after.maintenance_margin)
    )

    scenario = scenario_figures(book, prices, repeats)

    # peak RSS of the book and the scans, before the Black-76 and copy buffers below
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    n_b76 = 1_000_000
    f = rng.uniform(50.0, 150.0, n_b76)
    k = rng.uniform(50.0, 150.0, n_b76)
    t = rng.uniform(0.0, 1.0, n_b76)
    s = rng.uniform(0.1, 1.5, n_b76)
    c = rng.random(n_b76) < 0.5
    b76 = median_time(lambda: black76.price(f, k, t, s, c), max(3, repeats // 2))

    # aggregation alternatives on the same sparsity pattern (signed q, one column)
    q = book.size / book.scale[book.instrument]
    x = rng.standard_normal(book.n_instruments)
    import scipy.sparse as sp  # type: ignore[import-untyped]

    counts = np.bincount(book.account, minlength=book.n_accounts)
    indptr = np.concatenate(([0], np.cumsum(counts)))
    mat = sp.csr_matrix(
        (q, book.instrument.astype(np.int32), indptr.astype(np.int32)),
        shape=(book.n_accounts, book.n_instruments),
    )
    starts = indptr[:-1][counts > 0]
    agg = {
        "csr_matvec_s": median_time(lambda: mat @ x, repeats)["median"],
        "bincount_s": median_time(
            lambda: np.bincount(book.account, q * x[book.instrument], book.n_accounts), repeats
        )["median"],
        "reduceat_s": median_time(lambda: np.add.reduceat(q * x[book.instrument], starts), repeats)[
            "median"
        ],
    }

    loop = vollib_loop(book, prices, rng, sample=20_000)
    if loop is not None:
        loop["ratio_to_full_scan"] = loop["extrapolated_s"] / full["median"]
    vectorized = pvv_per_position(book, prices)
    if vectorized is not None:
        vectorized["ratio_to_full_scan"] = vectorized["median"] / full["median"]

    src = np.ones(copy_bytes // 8)
    dst = np.empty_like(src)
    cp = median_time(lambda: np.copyto(dst, src), 5)

    return {
        "book": {
            "accounts": book.n_accounts,
            "positions": book.n_positions,
            "instruments": book.n_instruments,
            "options": int(book.is_option.sum()),
            "underlyings": len(book.underlyings),
            "scenarios": 1,
            "build_s": build_s,
        },
        "full_scan": {**full, "target_s": TARGET_FULL_S},
        "candidates": {**cand, "count": n_candidates},
        "memory": {
            "scan_traced_peak_bytes": traced_peak,
            "process_peak_rss_bytes": maxrss,
            "target_bytes": int(TARGET_MEMORY_GIB * 2**30),
        },
        "incremental": {
            **inc,
            "moved": "ETH",
            "accounts_touched": touched,
            "fraction_touched": touched / book.n_accounts,
            "equals_full_scan": equal,
            "target_s": TARGET_INCREMENTAL_MS / 1000,
        },
        "scenario_scan": scenario,
        "black76": {**b76, "options": n_b76, "options_per_s": n_b76 / b76["median"]},
        "aggregation": agg,
        "vollib_loop": loop,
        "py_vollib_vectorized": vectorized,
        "copy": {**cp, "bytes": copy_bytes, "gb_per_s": copy_bytes / cp["median"] / 1e9},
    }


COMPILE_PROBE = """
import json, sys, time
import numpy as np
t0 = time.perf_counter()
from liqeng.risk import scenario_scan as ssc
from liqeng.risk.portfolio import LYRA_LIKE
from liqeng.risk.scan import Book
imported = time.perf_counter() - t0
book = Book.from_arrays(
    underlyings=("ETH",), is_option=np.array([False, True]), strike=np.array([0.0, 3e9]),
    expiry_ts=np.array([0, 2_000_000_000]), is_call=np.array([False, True]),
    size_decimals=np.array([3, 3]), underlying=np.array([0, 0]), account=np.array([0, 0]),
    instrument=np.array([0, 1]), size=np.array([1e3, -2e3]), entry_price=np.array([3e9, 0.0]),
    cash=np.array([1e9]),
)
t0 = time.perf_counter()
ssc.scenario_scan(book, {"ETH": 3e9}, 1_700_000_000, LYRA_LIKE, 0.8, workers=1)
first = time.perf_counter() - t0
t0 = time.perf_counter()
ssc.scenario_scan(book, {"ETH": 3e9}, 1_700_000_000, LYRA_LIKE, 0.8, workers=1)
second = time.perf_counter() - t0
print(json.dumps({"import_s": imported, "first_call_s": first, "second_call_s": second}))
"""


def compile_figures() -> dict[str, Any]:
    """numba's cost on a fresh process: compiling the kernels into an empty cache
    directory (``cold``), then loading them from that cache (``cached``). A tiny book:
    the first call's time minus the second's is the compile or load time."""
    import tempfile

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(REPO / "src"), env.get("PYTHONPATH")])
        )
        for name in ("cold", "cached"):
            proc = subprocess.run(
                [sys.executable, "-c", COMPILE_PROBE],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            fig = json.loads(proc.stdout.strip().splitlines()[-1])
            fig["compile_or_load_s"] = fig["first_call_s"] - fig["second_call_s"]
            out[name] = fig
    return out


def scenario_figures(book: Book, prices: np.ndarray, repeats: int) -> dict[str, Any]:
    """The 23-scenario portfolio-margin scan of ``book`` (LYRA_LIKE, flat vol): the fused
    numba kernel (default engine; the top-level keys) and the numpy reference path
    (``numpy_reference``), full and incremental, 2 and 1 threads, in the same run."""
    model, vol = LYRA_LIKE, float(PARAMS.vol)
    t0 = time.perf_counter()
    sbook = ssc.ScenarioBook.of(book)
    prepare_s = time.perf_counter() - t0
    moved = {"ETH": float(prices[1] * 0.97)}
    touched = int(book.exposed_accounts("ETH").size)
    moved_prices = prices.copy()
    moved_prices[1] = moved["ETH"]

    def full(workers: int, engine: ssc.Engine) -> ssc.ScenarioScanResult:
        return ssc.scenario_scan(sbook, prices, NOW, model, vol, workers=workers, engine=engine)

    first = {}
    for engine in ssc.ENGINES:  # the first call compiles or loads the numba kernels
        t0 = time.perf_counter()
        full(1, engine)
        first[engine] = time.perf_counter() - t0

    def engine_figures(engine: ssc.Engine) -> dict[str, Any]:
        two = median_time(lambda: full(2, engine), repeats)
        one = median_time(lambda: full(1, engine), repeats)
        result = full(2, engine)
        gc.collect()
        tracemalloc.start()
        full(2, engine)
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        inc2 = median_time(lambda: ssc.scenario_rescan(result, moved, workers=2), repeats)
        inc1 = median_time(lambda: ssc.scenario_rescan(result, moved, workers=1), repeats)
        gc.collect()
        tracemalloc.start()
        ssc.scenario_rescan(result, moved, workers=2)
        _, inc_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        after = ssc.scenario_rescan(result, moved)
        ref = ssc.scenario_scan(sbook, moved_prices, NOW, model, vol, workers=1, engine=engine)
        equal = all(
            np.array_equal(getattr(after, f), getattr(ref, f))
            for f in ("equity", "worst_case", "maintenance_margin", "error_bound")
        )
        return {
            "engine": engine,
            "first_call_s": first[engine],
            "full_2_workers": {**two, "target_s": TARGET_FULL_S},
            "full_1_worker": one,
            "candidates": int(ssc.candidates(result).size),
            "scan_traced_peak_bytes": traced_peak,
            "incremental_traced_peak_bytes": inc_peak,
            "target_bytes": int(TARGET_MEMORY_GIB * 2**30),
            "incremental_2_workers": {
                **inc2,
                "moved": "ETH",
                "accounts_touched": touched,
                "fraction_touched": touched / book.n_accounts,
                "equals_full_scan": equal,
                "target_s": TARGET_INCREMENTAL_MS / 1000,
            },
            "incremental_1_worker": inc1,
        }

    fused = engine_figures("numba")
    reference = engine_figures("numpy")
    a = ssc.scenario_scan(sbook, prices, NOW, model, vol, engine="numba")
    b = ssc.scenario_scan(sbook, prices, NOW, model, vol, engine="numpy")
    fields = ("equity", "worst_case", "maintenance_margin", "error_bound")
    agreement = {
        "bitwise_equal": all(np.array_equal(getattr(a, f), getattr(b, f)) for f in fields),
        "max_abs_diff_over_bound": max(
            float(np.max(np.abs(getattr(a, f) - getattr(b, f)) / b.error_bound)) for f in fields[:3]
        ),
    }

    # one-thread breakdowns (private helpers, the same calls as the scans)
    sigma = np.full(book.n_instruments, vol)
    settle = np.full(book.n_instruments, np.nan)
    x = np.zeros_like(a._x)
    mark = np.zeros(book.n_instruments)
    tasks = ssc._reprice_tasks(
        sbook, range(len(book.underlyings)), a.index, NOW, model, sigma, settle, x, mark
    )

    def reprice() -> None:
        for task in tasks:
            task()

    lane = sbook._all
    n_a = book.n_accounts
    out = (np.empty(n_a), np.empty(n_a), np.empty(n_a), np.empty(n_a))
    w, v, g = (np.empty(n_a) for _ in range(3))

    def fused_kernel() -> None:  # into preallocated outputs: no page faults
        ssc._fused(book, [lane], a._x, model, out, 1)

    def fused_kernel_new_outputs() -> None:  # as the scan does: four fresh arrays
        fresh = (np.empty(n_a), np.empty(n_a), np.empty(n_a), np.empty(n_a))
        ssc._fused(book, [lane], a._x, model, fresh, 1)

    def blocks() -> None:
        for blk in lane.blocks:
            ssc._run_block(blk, a._x, model, w, v, g)

    def products() -> None:
        for blk in lane.blocks:
            blk.matrix @ a._x

    rank = sbook.rank

    def unpermute() -> None:
        worst = w[rank]
        _ = worst * model.mm_factor
        _ = book._base + v[rank]
        _ = book._bound_base + book._bound_slope * g[rank]

    t_reprice = median_time(reprice, repeats)["median"]
    fused["breakdown_1_thread_s"] = {
        "reprice": t_reprice,
        "fused_kernel": median_time(fused_kernel, repeats)["median"],
        "fused_kernel_fresh_outputs": median_time(fused_kernel_new_outputs, repeats)["median"],
    }
    reference["breakdown_1_thread_s"] = {
        "reprice": t_reprice,
        "products": median_time(products, repeats)["median"],
        "products_and_reduction": median_time(blocks, repeats)["median"],
        "unpermute_and_terms": median_time(unpermute, repeats)["median"],
    }
    return {
        "model": "LYRA_LIKE",
        "scenarios": len(model.grid),
        "prepare_s": prepare_s,
        **fused,
        "numpy_reference": reference,
        "engines_agree": agreement,
        "numba": {"version": numba.__version__, "compile": compile_figures()},
    }


def vollib_loop(
    book: Book, prices: np.ndarray, rng: np.random.Generator, sample: int
) -> dict[str, Any] | None:
    """The same valuation the way a user would write it without liqeng: a Python loop over
    positions calling ``vollib``'s scalar Black-76, on a random sample, extrapolated to the
    whole book. ``None`` when vollib is not installed (it comes with the test extra)."""
    try:
        from vollib.black import black as vollib_black  # type: ignore[import-untyped]
    except ImportError:
        return None
    picks = rng.choice(book.n_positions, size=min(sample, book.n_positions), replace=False)
    vol = float(PARAMS.vol)
    equity: dict[int, float] = {}
    t0 = time.perf_counter()
    for p in picks.tolist():
        i = int(book.instrument[p])
        spot = float(prices[int(book.underlying[i])])
        units = float(book.size[p]) / float(book.scale[i])
        if book.is_option[i]:
            t = max(int(book.expiry_ts[i]) - NOW, 0) / YEAR_SECONDS
            flag = "c" if book.is_call[i] else "p"
            strike = float(book.strike[i])
            if t > 0:
                value = vollib_black(flag, spot, strike, t, 0.0, vol)
            else:
                value = max(spot - strike, 0.0) if flag == "c" else max(strike - spot, 0.0)
        else:
            value = spot - float(book.entry_price[p])
        a = int(book.account[p])
        equity[a] = equity.get(a, 0.0) + units * value
    elapsed = time.perf_counter() - t0
    per_position = elapsed / picks.size
    return {
        "sample_positions": int(picks.size),
        "seconds": elapsed,
        "per_position_s": per_position,
        "extrapolated_s": per_position * book.n_positions,
    }


def pvv_per_position(book: Book, prices: np.ndarray) -> dict[str, Any] | None:
    """``py_vollib_vectorized`` over every option *position* (not per instrument), then a
    bincount into accounts: the vectorised way without liqeng. ``None`` unless the
    ``bench`` extra is installed."""
    try:
        import py_vollib_vectorized as pvv  # type: ignore[import-untyped]
    except ImportError:
        return None
    opt = book.is_option[book.instrument]
    inst = book.instrument[opt]
    forward = prices[book.underlying[inst]].astype(np.float64)
    years = np.maximum(book.expiry_ts[inst] - NOW, 1) / YEAR_SECONDS
    flags = np.where(book.is_call[inst], "c", "p")
    units = book.size[opt] / book.scale[inst]
    accounts = book.account[opt]
    vol = float(PARAMS.vol)

    def value() -> np.ndarray:
        v = pvv.vectorized_black(
            flags, forward, book.strike[inst], years, 0.0, vol, return_as="numpy"
        )
        return np.bincount(accounts, units * v, book.n_accounts)

    value()  # numba compiles on the first call
    timed = median_time(value, 3)
    return {**timed, "option_positions": int(opt.sum())}


def show(res: dict[str, Any]) -> None:
    b = res["book"]
    table = Table(
        title=f"liqeng scan: {b['accounts']:,} accounts, {b['positions']:,} positions, "
        f"{b['options']:,} options, {b['scenarios']} scenario ({res['mode']})"
    )
    table.add_column("figure")
    table.add_column("measured", justify="right")
    table.add_column("target", justify="right")
    mem = res["memory"]
    inc = res["incremental"]
    table.add_row("book build (once)", f"{b['build_s']:.2f} s", "")
    table.add_row(
        "full scan, median", f"{res['full_scan']['median'] * 1e3:.1f} ms", f"<= {TARGET_FULL_S} s"
    )
    table.add_row(
        "candidates (screen + order)",
        f"{res['candidates']['median'] * 1e3:.1f} ms ({res['candidates']['count']:,})",
        "",
    )
    table.add_row(
        "scan peak memory (tracemalloc)",
        f"{mem['scan_traced_peak_bytes'] / 2**20:.0f} MiB",
        f"<= {TARGET_MEMORY_GIB} GiB",
    )
    table.add_row("process peak RSS", f"{mem['process_peak_rss_bytes'] / 2**20:.0f} MiB", "")
    table.add_row(
        f"incremental tick ({inc['fraction_touched']:.1%} accounts)",
        f"{inc['median'] * 1e3:.1f} ms",
        f"<= {TARGET_INCREMENTAL_MS:.0f} ms",
    )
    table.add_row("incremental == full scan", str(inc["equals_full_scan"]), "True")
    sc = res["scenario_scan"]
    ref = sc["numpy_reference"]

    def ms(fig: dict[str, Any]) -> str:
        return f"{fig['median'] * 1e3:.1f}"

    table.add_row(
        f"scenario scan ({sc['scenarios']} scenarios), fused numba / numpy reference, "
        "2 threads, median",
        f"{ms(sc['full_2_workers'])} / {ms(ref['full_2_workers'])} ms",
        f"<= {TARGET_FULL_S} s",
    )
    table.add_row(
        "scenario scan, fused / numpy, 1 thread, median",
        f"{ms(sc['full_1_worker'])} / {ms(ref['full_1_worker'])} ms",
        "",
    )
    table.add_row(
        "scenario scan peak memory (tracemalloc), fused / numpy",
        f"{sc['scan_traced_peak_bytes'] / 2**20:.0f} / "
        f"{ref['scan_traced_peak_bytes'] / 2**20:.0f} MiB",
        f"<= {TARGET_MEMORY_GIB} GiB",
    )
    si, ri = sc["incremental_2_workers"], ref["incremental_2_workers"]
    table.add_row(
        f"scenario incremental tick ({si['fraction_touched']:.1%} accounts), "
        "fused 2 / 1 threads, numpy 2 / 1 threads",
        f"{ms(si)} / {ms(sc['incremental_1_worker'])}, "
        f"{ms(ri)} / {ms(ref['incremental_1_worker'])} ms",
        f"<= {TARGET_INCREMENTAL_MS:.0f} ms",
    )
    table.add_row(
        "scenario incremental == full scan (fused, numpy)",
        f"{si['equals_full_scan']}, {ri['equals_full_scan']}",
        "True",
    )
    agree = sc["engines_agree"]
    table.add_row(
        "fused == numpy reference (bitwise; max diff / bound)",
        f"{agree['bitwise_equal']}; {agree['max_abs_diff_over_bound']:.1g}",
        "",
    )
    bd, rb = sc["breakdown_1_thread_s"], ref["breakdown_1_thread_s"]
    table.add_row(
        "fused, 1 thread: reprice / kernel (into used / fresh arrays)",
        f"{bd['reprice'] * 1e3:.1f} / {bd['fused_kernel'] * 1e3:.1f} / "
        f"{bd['fused_kernel_fresh_outputs'] * 1e3:.1f} ms",
        "",
    )
    table.add_row(
        "numpy, 1 thread: reprice / products / products+min / unpermute",
        f"{rb['reprice'] * 1e3:.1f} / {rb['products'] * 1e3:.1f} / "
        f"{rb['products_and_reduction'] * 1e3:.1f} / {rb['unpermute_and_terms'] * 1e3:.1f} ms",
        "",
    )
    comp = sc["numba"]["compile"]
    table.add_row(
        "numba kernels: compile (empty cache) / load (cache), fresh process",
        f"{comp['cold']['compile_or_load_s']:.2f} / {comp['cached']['compile_or_load_s']:.2f} s",
        "",
    )
    table.add_row("Black-76 options/s", f"{res['black76']['options_per_s']:,.0f}", "")
    agg = res["aggregation"]
    table.add_row(
        "aggregate: CSR / bincount / reduceat",
        f"{agg['csr_matvec_s'] * 1e3:.1f} / {agg['bincount_s'] * 1e3:.1f} / "
        f"{agg['reduceat_s'] * 1e3:.1f} ms",
        "",
    )
    loop = res.get("vollib_loop")
    if loop:
        table.add_row(
            f"vollib in a Python loop ({loop['sample_positions']:,} sampled, extrapolated)",
            f"{loop['extrapolated_s']:.0f} s = {loop['ratio_to_full_scan']:,.0f}x the scan",
            "",
        )
    vec = res.get("py_vollib_vectorized")
    if vec:
        table.add_row(
            f"py_vollib_vectorized per position ({vec['option_positions']:,})",
            f"{vec['median']:.2f} s = {vec['ratio_to_full_scan']:,.0f}x the scan",
            "",
        )
    cp = res["copy"]
    table.add_row(
        f"numpy copy {cp['bytes'] / 2**30:g} GiB", f"{cp['gb_per_s']:.1f} GB/s", "(reference)"
    )
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the book")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "scan.json")
    parser.add_argument("--seed", type=int, default=20_240_601)
    args = parser.parse_args()
    cfg = QUICK if args.quick else FULL
    copy_bytes = 2**27 if args.quick else 2**30
    res = {
        "mode": "quick" if args.quick else "full",
        "seed": args.seed,
        "config": cfg,
        **run(cfg, args.seed, copy_bytes),
        "machine": machine(),
    }
    show(res)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
