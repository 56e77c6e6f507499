"""The scenario axis of the screening scan: portfolio margin of every account of a ``Book``.

``liqeng.risk.scan`` screens standard margin; this module screens a
``PortfolioMarginModel`` (USD-settled, linear) over the same ``Book``. Each instrument is
repriced once per scenario, not once per position: with ``u[i, j]`` the P&L of one whole
token of instrument ``i`` under scenario ``j`` (``portfolio.scenario_pnl`` with quantity 1,
forward = index ``S`` of its underlying, ``T`` from ``now_ts`` and the expiry, ``σ`` the
instrument's vol; perpetual ``F·m_j``, option ``V(F(1+m_j), σ'_j) - V(F, σ)`` by Black-76,
intrinsic once expired) and ``w_j`` the scenario weights, one sparse product over every
position gives, per account ``a`` with ``q`` its signed whole-token sizes::

    P[a, j]        = Σ_p q_p·w_j·u[i_p, j]                 (scenario P&L, weighted)
    kept[a, j]     = min(P, 0) + pnl_offset·max(P, 0)
    worst_case[a]  = -min_j kept[a, j]
    maintenance[a] = mm_factor·worst_case[a]
    equity[a]      = cash - Σ_perp q·entry + Σ q·mark     (mark = S for a perp, V(F, σ) else)

exactly the terms of ``PortfolioMarginModel.margin`` (no roll or delta shock: a model with
either, coin settlement (``inverse``) or any setting this scan does not know is refused
with ``InvalidArgument`` naming it, rather than under-margined). As in ``scan.py`` the
``Book``'s accounts × (2·instruments) matrix of ``|q|`` (long in column ``i``, short in
``n + i``) multiplies a per-instrument block ``X`` of ``S + 2`` columns: ``±w_j·u[i, j]``
(long +, short -), ``±mark`` and a gross weight for the error bound::

    g_i            = max_j w_j·(|u[i, j]| + 2·mark_i·[option])
    gross[a]       = |cash| + Σ_perp |q|·entry + Σ |q|·(mark + S + strike + g)
    error_bound[a] = n_positions + 1 + 2**-50·(n_positions + 64)·gross

The bound covers the exact equity's per-position floors, the float error of every product
and sum, and the difference between this scan's ``maintenance`` and the scalar
``PortfolioMarginModel.margin`` of the same positions (same Black-76 inputs, products and
sums regrouped), so ``candidates`` (``equity < maintenance + error_bound`` and bands)
misses no account whose exact equity is below the scalar model's maintenance.

Layout and speed (see benchmarks/scan_bench.py): ``ScenarioBook.of(book)`` orders the
accounts in windows of 8192 consecutive accounts, within each by the underlying of their
first position, so consecutive rows read nearby rows of ``X`` and the per-account outputs
they write stay in cache. Two engines compute the per-account figures:

- ``"numba"`` (default): one compiled pass per chunk of rows (``_fused_rows``): a row's
  ``S + 2`` sums accumulate in a small local buffer, the minimum over the scenarios is
  taken there and the four outputs are written at the account's index, so no accounts ×
  ``(S + 2)`` matrix and no intermediate per-account array is ever written. Chunks run on
  ``workers`` threads (the kernel releases the GIL; the calling thread takes chunks too);
  numba caches the compiled code on disk (``cache=True``), so only the first call of a
  fresh install compiles (about 1.3-1.9 s; loading from the cache about 0.3-0.5 s).
- ``"numpy"``: the reference. The rows are cut into blocks of ``block_rows`` accounts;
  each block is one CSR @ dense product (scipy releases the GIL) followed by an in-place
  reduction over the scenario columns.

Both add the same products in the same order (positions in stored order, from 0.0, no
fused multiply-add), so they agree bit for bit where scipy is built without FMA
contraction (x86-64) and within ``error_bound`` anywhere. Repricing is done per
underlying, in the full scan and in ``scenario_rescan`` alike, so an incremental tick
(one underlying moves: its instruments repriced, only its exposed accounts recomputed by
the same engine) is bitwise equal to a full scan. A new ``now_ts`` needs a full scan.
Repricing (Black-76 through ``portfolio.scenario_pnl``) runs on the calling thread (on
arrays this small numpy holds the GIL most of the time); in ``scenario_rescan`` the copies
of the previous result's arrays run beside it on the other workers.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, Literal

import numba
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped]

from liqeng.errors import InvalidArgument
from liqeng.market import black76
from liqeng.market.black76 import YEAR_SECONDS, FloatArray
from liqeng.risk.portfolio import PortfolioMarginModel, ScenarioPositions, scenario_pnl
from liqeng.risk.scan import Book, _check_now, _health, _index_array, _settlements

__all__ = [
    "BLOCK_ROWS",
    "ENGINES",
    "Engine",
    "ScenarioBook",
    "ScenarioScanResult",
    "candidates",
    "check_model",
    "scenario_rescan",
    "scenario_scan",
]

IntArray = npt.NDArray[np.int64]
Engine = Literal["numba", "numpy"]

ENGINES: Final = ("numba", "numpy")
"""``engine=`` values: ``"numba"`` the fused one-pass kernel (default), ``"numpy"`` the
reference CSR-product path. Both compute the same sums in the same order (module doc)."""

BLOCK_ROWS: Final = 4096
"""Accounts per product block by default: ``4096 × (S + 2)`` float64 stay in a 1 MiB L2."""

_EPS_FACTOR: Final = 2.0**-50

_WINDOW: Final = 8192
"""Accounts per window of the scan order: rows grouped by underlying within a window read
nearby rows of ``X``, and the outputs they write (account order) stay in cache."""

# Settings of ``PortfolioMarginModel`` this scan implements (the other ones must be off).
_COVERED: Final = frozenset({"grid", "inverse", "mm_factor", "pnl_offset"})
_ROLL: Final = ("annualised_move_risk", "min_annualised_move")
_DELTA: Final = ("max_delta_shock", "m_inc")
# Inert while the terms above are off: the delta shock's threshold, the IM-only ratio, the
# rate and basis moves (used only by the static discount and basis contingency factors).
_INERT: Final = frozenset({"delta_threshold_usd", "im_ratio", "rate", "basis_moves"})


def check_model(model: object) -> PortfolioMarginModel:
    """``model`` if the scan covers every term it uses, else ``InvalidArgument`` naming the
    setting: coin settlement (``inverse=True``), a roll shock (``annualised_move_risk`` or
    ``min_annualised_move`` > 0), a delta shock (``max_delta_shock`` and ``m_inc`` > 0), or
    any other field (a later addition to the model) not at its default."""
    if not isinstance(model, PortfolioMarginModel):
        raise InvalidArgument(f"model={model!r} must be a PortfolioMarginModel")
    if getattr(model, "inverse", False):
        raise InvalidArgument(
            "inverse=True (coin-settled P&L) is not supported by the scenario scan: "
            "the Book holds USD-settled (linear) positions"
        )
    for name in _ROLL:
        value = getattr(model, name, 0.0)
        if value != 0.0:
            raise InvalidArgument(
                f"{name}={value!r}: the roll shock is not covered by the scenario scan"
            )
    if getattr(model, "max_delta_shock", 0.0) != 0.0 and getattr(model, "m_inc", 0.0) != 0.0:
        raise InvalidArgument(
            f"max_delta_shock={model.max_delta_shock!r} with m_inc={model.m_inc!r}: "
            "the delta shock is not covered by the scenario scan"
        )
    known = _COVERED | set(_ROLL) | set(_DELTA) | _INERT
    for field in dataclasses.fields(model):
        if field.name in known:
            continue
        value = getattr(model, field.name)
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            raise InvalidArgument(
                f"{field.name}={value!r} is a model setting the scenario scan does not cover"
            )
        if value != default:
            raise InvalidArgument(
                f"{field.name}={value!r} is a model setting the scenario scan does not cover "
                f"(only its default {default!r} is)"
            )
    return model


@dataclass(frozen=True, slots=True, eq=False)
class _Block:
    """Consecutive accounts in scan order: ``rows`` of ``Book._matrix`` (account indices),
    stored at ``start:start + len(rows)`` of their lane (the scan-order output arrays)."""

    start: int
    rows: IntArray
    matrix: sp.csr_matrix


@dataclass(frozen=True, slots=True, eq=False)
class _Lane:
    """Accounts ``rows`` (scan order): their CSR rows (``indptr``, ``indices``, ``data``,
    read by the fused kernel) and the same rows cut into blocks (the numpy path)."""

    rows: IntArray
    blocks: tuple[_Block, ...]
    indptr: npt.NDArray[np.integer]
    indices: npt.NDArray[np.integer]
    data: FloatArray


def _lane(book: Book, rows: IntArray, block_rows: int) -> _Lane:
    sub = book._matrix[rows]
    blocks = tuple(
        _Block(start, rows[start : start + block_rows], sub[start : start + block_rows])
        for start in range(0, rows.shape[0], block_rows)
    )
    return _Lane(rows, blocks, sub.indptr, sub.indices, sub.data)


@dataclass(frozen=True, slots=True, eq=False)
class ScenarioBook:
    """A ``Book`` prepared for scenario scans (built once, like the ``Book``).

    ``order`` is the scan order of the accounts: windows of ``8192`` consecutive accounts,
    within each by the underlying of their first position (accounts with none last), then
    by index; ``rank`` its inverse. Blocks hold ``block_rows`` accounts.
    """

    book: Book
    order: IntArray
    rank: IntArray
    block_rows: int
    _all: _Lane
    _subsets: tuple[_Lane, ...]  # per underlying: its exposed accounts, in scan order
    _instruments: tuple[IntArray, ...]  # per underlying

    @classmethod
    def of(cls, book: Book, block_rows: int = BLOCK_ROWS) -> ScenarioBook:
        """Prepare ``book`` (a ``liqeng.risk.scan.Book``); ``block_rows`` >= 1."""
        if not isinstance(book, Book):
            raise InvalidArgument(f"book={book!r} must be a Book")
        if isinstance(block_rows, bool) or not isinstance(block_rows, int) or block_rows < 1:
            raise InvalidArgument(f"block_rows={block_rows!r} must be an int >= 1")
        n_a, n_u = book.n_accounts, len(book.underlyings)
        indptr = book._matrix.indptr
        has = np.diff(indptr) > 0
        home = np.full(n_a, n_u, dtype=np.int64)
        home[has] = book.underlying[book.instrument[indptr[:-1][has]]]
        index = np.arange(n_a)
        order = np.lexsort((index, home, index // _WINDOW)).astype(np.int64)
        rank = np.empty(n_a, dtype=np.int64)
        rank[order] = np.arange(n_a)
        subsets = tuple(
            _lane(book, order[np.sort(rank[book.exposed_accounts(name)])], block_rows)
            for name in book.underlyings
        )
        instruments = tuple(np.flatnonzero(book.underlying == u) for u in range(n_u))
        return cls(
            book, order, rank, block_rows, _lane(book, order, block_rows), subsets, instruments
        )


@dataclass(frozen=True, slots=True, eq=False)
class ScenarioScanResult:
    """Per account (float64, quote base units): ``equity``, ``worst_case``,
    ``maintenance_margin`` (``mm_factor·worst_case``) and ``error_bound``. Per underlying:
    ``index``; per instrument: ``mark``. ``now_ts``, ``model``, ``vols``, ``settlements``
    ``book`` and ``engine`` are those of the scan, reused by ``scenario_rescan``."""

    equity: FloatArray
    worst_case: FloatArray
    maintenance_margin: FloatArray
    error_bound: FloatArray
    index: FloatArray
    mark: FloatArray
    now_ts: int
    model: PortfolioMarginModel
    vols: FloatArray
    settlements: FloatArray  # per instrument, NaN where none
    book: ScenarioBook
    _x: FloatArray  # (2·instruments) × (scenarios + 2), C order
    engine: Engine = "numba"

    @property
    def health(self) -> FloatArray:
        """``equity / maintenance_margin`` clamped to ``±1e18`` (by the sign of equity when
        the requirement is not positive), as in ``liqeng.risk.scan``."""
        return _health(self.equity, self.maintenance_margin)


def _vols(n: int, vols: object) -> FloatArray:
    if isinstance(vols, (int, float)) and not isinstance(vols, bool):
        if not (math.isfinite(vols) and vols >= 0):
            raise InvalidArgument(f"vols={vols!r} must be finite and non-negative")
        return np.full(n, float(vols))
    arr = np.asarray(vols)
    if arr.dtype.kind not in "iuf" or arr.shape != (n,):
        raise InvalidArgument(
            f"vols must be a number or a numeric array of shape ({n},), not {arr.dtype} {arr.shape}"
        )
    arr = arr.astype(np.float64)
    bad = ~(np.isfinite(arr) & (arr >= 0.0))
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidArgument(f"vols[{i}]={arr[i].item()!r} must be finite and non-negative")
    return arr


def _engine(engine: object) -> Engine:
    if engine == "numba":
        return "numba"
    if engine == "numpy":
        return "numpy"
    raise InvalidArgument(f"engine={engine!r} must be one of {ENGINES}")


def _workers(workers: object) -> int:
    if workers is None:
        return os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidArgument(f"workers={workers!r} must be None or an int >= 1")
    return workers


def _reprice(
    sbook: ScenarioBook,
    u: int,
    index: FloatArray,
    now: int,
    model: PortfolioMarginModel,
    vols: FloatArray,
    settlements: FloatArray,
    x: FloatArray,
    mark: FloatArray,
) -> None:
    """Fill the rows of ``x`` (and ``mark``) of underlying ``u``'s instruments in place."""
    book = sbook.book
    ins = sbook._instruments[u]
    n = ins.shape[0]
    if n == 0:
        return
    n_s = len(model.grid)
    n_i = book.n_instruments
    opt = book.is_option[ins]
    f = np.full(n, index[u])
    t = np.where(opt, np.maximum(book.expiry_ts[ins] - now, 0) / YEAR_SECONDS, 0.0)
    k = np.where(opt, book.strike[ins], 1.0)
    sigma = vols[ins]
    call = book.is_call[ins] & opt
    pos = ScenarioPositions(np.ones(n), f, t, k, sigma, opt, call)
    pnl = scenario_pnl(pos, model.grid, inverse=False)
    w = model.grid.weights
    pnl *= w
    settle = settlements[ins]
    settled = ~np.isnan(settle) & (book.expiry_ts[ins] <= now)
    base = np.where(settled, settle, f)
    m = np.where(opt, black76.price(base, k, t, sigma, call), base)
    pnl[settled] = 0.0  # settled: its value no longer moves
    g = np.max(np.abs(pnl), axis=1)
    g += np.where(opt, 2.0 * float(w.max()) * m, 0.0)
    gross = m + f + np.where(opt, k, 0.0) + g
    mark[ins] = m
    x[ins, :n_s] = pnl
    x[ins, n_s] = m
    x[ins, n_s + 1] = gross
    short = ins + n_i
    x[short, :n_s] = -pnl
    x[short, n_s] = -m
    x[short, n_s + 1] = gross


def _run_block(
    blk: _Block,
    x: FloatArray,
    model: PortfolioMarginModel,
    worst: FloatArray,
    value: FloatArray,
    gross: FloatArray,
) -> None:
    """One block: ``Y = A_block @ X``; worst case, value and gross sums into the lane."""
    n_s = len(model.grid)
    y = blk.matrix @ x  # (rows, n_s + 2), C order
    p = y[:, :n_s]
    if model.pnl_offset != 0.0:
        gain = np.maximum(p, 0.0)
        gain *= model.pnl_offset
        np.minimum(p, 0.0, out=p)
        p += gain
        low = p[:, 0].copy()
    else:
        low = np.minimum(p[:, 0], 0.0)  # min_j min(P_j, 0) = min(min_j P_j, 0)
    for j in range(1, n_s):  # column by column: faster than p.min(axis=1) on short rows
        np.minimum(low, p[:, j], out=low)
    lane = slice(blk.start, blk.start + blk.rows.shape[0])
    np.subtract(0.0, low, out=worst[lane])  # 0 - min: never -0.0
    value[lane] = y[:, n_s]
    gross[lane] = y[:, n_s + 1]


def _parallel(tasks: Sequence[Callable[[], None]], workers: int) -> None:
    """Run ``tasks`` on ``workers`` threads, the calling thread one of them: each takes the
    next task when done, so a thread the OS holds back (a busy core) delays at most the
    task it holds, not a share of the work fixed in advance."""
    if workers == 1 or len(tasks) <= 1:
        for task in tasks:
            task()
        return
    pending = iter(tasks)
    lock = threading.Lock()

    def drain() -> None:
        while True:
            with lock:
                task = next(pending, None)
            if task is None:
                return
            task()

    with ThreadPoolExecutor(max_workers=min(workers, len(tasks)) - 1) as pool:
        helpers = [pool.submit(drain) for _ in range(min(workers, len(tasks)) - 1)]
        drain()
        for fut in helpers:
            fut.result()


_CHUNK_ROWS: Final = 4096  # rows per compiled task at least; up to 32 tasks per worker


@numba.njit(inline="always")
def _minimum(a: float, b: float) -> float:  # pragma: no cover - inlined by numba
    """``np.minimum``: NaN if either is (overflowed sums stay visible, as in numpy)."""
    return a if a < b or a != a else b


@numba.njit(inline="always")
def _maximum(a: float, b: float) -> float:  # pragma: no cover - inlined by numba
    """``np.maximum``: NaN if either is."""
    return a if a > b or a != a else b


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _fused_rows(
    lo: int,
    hi: int,
    indptr: npt.NDArray[np.integer],
    indices: npt.NDArray[np.integer],
    data: FloatArray,
    x: FloatArray,
    rows: IntArray,
    n_s: int,
    pnl_offset: float,
    mm_factor: float,
    base: FloatArray,
    bound_base: FloatArray,
    bound_slope: FloatArray,
    equity: FloatArray,
    worst: FloatArray,
    maintenance: FloatArray,
    bound: FloatArray,
) -> None:  # pragma: no cover - compiled by numba (run by the tests, not traced)
    """CSR rows ``lo:hi`` of a lane in one pass: each row's ``S + 2`` sums in a local
    buffer, the minimum over its kept scenario P&Ls, then the four outputs of its account
    ``rows[r]``, bit for bit those of the numpy path (module doc).

    The sums are scipy's ``csr_matvecs`` ones: positions in stored order, from 0.0, one
    rounded product and one rounded sum per term (no FMA contraction without fastmath);
    two positions per pass over the buffer, the same operations in the same order. The
    outputs are the numpy path's expressions, operand for operand."""
    width = x.shape[1]
    acc = np.empty(width)
    for r in range(lo, hi):
        start, stop = indptr[r], indptr[r + 1]
        if start == stop:
            for j in range(width):
                acc[j] = 0.0
        else:
            q = data[start]
            c = indices[start]
            for j in range(width):
                acc[j] = 0.0 + q * x[c, j]
        p = start + 1
        while p + 2 <= stop:
            q, q1 = data[p], data[p + 1]
            c, c1 = indices[p], indices[p + 1]
            for j in range(width):
                acc[j] = (acc[j] + q * x[c, j]) + q1 * x[c1, j]
            p += 2
        if p < stop:
            q = data[p]
            c = indices[p]
            for j in range(width):
                acc[j] += q * x[c, j]
        if acc[n_s + 1] < math.inf:
            # gross finite: every sum is finite (|P_j| <= gross term by term, and rounding
            # is monotonic), so the builtin min and max are numpy's
            if pnl_offset != 0.0:
                v = acc[0]
                low = min(v, 0.0) + max(v, 0.0) * pnl_offset
                for j in range(1, n_s):
                    v = acc[j]
                    low = min(low, min(v, 0.0) + max(v, 0.0) * pnl_offset)
            else:
                low = min(acc[0], 0.0)  # min_j min(P_j, 0) = min(min_j P_j, 0)
                for j in range(1, n_s):
                    low = min(low, acc[j])
        elif pnl_offset != 0.0:  # overflow: NaN propagates as in numpy
            v = acc[0]
            low = _minimum(v, 0.0) + _maximum(v, 0.0) * pnl_offset
            for j in range(1, n_s):
                v = acc[j]
                low = _minimum(low, _minimum(v, 0.0) + _maximum(v, 0.0) * pnl_offset)
        else:
            low = _minimum(acc[0], 0.0)
            for j in range(1, n_s):
                low = _minimum(low, acc[j])
        a = rows[r]
        w = 0.0 - low  # never -0.0
        worst[a] = w
        maintenance[a] = w * mm_factor
        equity[a] = base[a] + acc[n_s]
        bound[a] = bound_slope[a] * acc[n_s + 1] + bound_base[a]


def _fused(
    book: Book,
    lanes: Sequence[_Lane],
    x: FloatArray,
    model: PortfolioMarginModel,
    out: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    workers: int,
) -> None:
    """The fused kernel over ``lanes``: ``out`` (equity, worst case, maintenance, bound)
    of their accounts, in chunks of rows on ``workers`` threads (the kernel releases the
    GIL). Lanes sharing an account write the same values to it."""
    n_s = len(model.grid)
    offset, factor = float(model.pnl_offset), float(model.mm_factor)
    base, bound_base, slope = book._base, book._bound_base, book._bound_slope

    def chunk(lane: _Lane, lo: int, hi: int) -> Callable[[], None]:
        return lambda: _fused_rows(
            lo,
            hi,
            lane.indptr,
            lane.indices,
            lane.data,
            x,
            lane.rows,
            n_s,
            offset,
            factor,
            base,
            bound_base,
            slope,
            *out,
        )

    tasks: list[Callable[[], None]] = []
    for lane in lanes:
        n = lane.rows.shape[0]
        parts = 1 if workers == 1 else max(1, min(-(-n // _CHUNK_ROWS), 32 * workers))
        tasks.extend(chunk(lane, n * c // parts, n * (c + 1) // parts) for c in range(parts))
    _parallel(tasks, workers)


def _reprice_tasks(
    sbook: ScenarioBook,
    underlyings: Sequence[int],
    index: FloatArray,
    now: int,
    model: PortfolioMarginModel,
    vols: FloatArray,
    settlements: FloatArray,
    x: FloatArray,
    mark: FloatArray,
) -> list[Callable[[], None]]:
    """Tasks repricing ``underlyings`` into ``x``/``mark``, one per underlying."""

    def reprice(u: int) -> Callable[[], None]:
        return lambda: _reprice(sbook, u, index, now, model, vols, settlements, x, mark)

    return [reprice(u) for u in underlyings]


def _blocks(
    lanes: Sequence[_Lane], x: FloatArray, model: PortfolioMarginModel, workers: int
) -> list[tuple[FloatArray, FloatArray, FloatArray]]:
    """The numpy path: per lane (scan order), worst case, value and gross sums of its
    accounts, block by block."""

    def block(blk: _Block, out: tuple[FloatArray, FloatArray, FloatArray]) -> Callable[[], None]:
        return lambda: _run_block(blk, x, model, *out)

    outs = []
    tasks: list[Callable[[], None]] = []
    for lane in lanes:
        n = lane.rows.shape[0]
        out = (np.empty(n), np.empty(n), np.empty(n))
        outs.append(out)
        tasks.extend(block(blk, out) for blk in lane.blocks)
    _parallel(tasks, workers)
    return outs


def scenario_scan(
    book: Book | ScenarioBook,
    index_prices: Mapping[str, int | float] | FloatArray,
    now_ts: int,
    model: PortfolioMarginModel,
    vols: float | FloatArray,
    settlements: FloatArray | None = None,
    *,
    workers: int | None = None,
    engine: Engine = "numba",
) -> ScenarioScanResult:
    """Portfolio margin of every account of ``book`` under ``model`` (module doc).

    ``book``: a ``ScenarioBook`` (or a ``Book``, prepared on each call: slower).
    ``index_prices`` as in ``liqeng.risk.scan.scan``; ``vols``: one Black-76 vol for every
    option or a per-instrument array (finite, ``>= 0``), used for marks and scenarios alike.
    ``settlements``: optional per-instrument settlement prices, NaN where none, as in
    ``scan``: an expired instrument with one is marked there (an option at its intrinsic
    value there) and has no scenario P&L; without one an expired option is screened at its
    intrinsic value on the index (and on the moved index in each scenario).
    ``workers``: threads (default: the CPU count); the result does not depend on it.
    ``engine``: ``"numba"`` (the fused kernel, default) or ``"numpy"`` (the reference
    path); ``scenario_rescan`` of the result uses the same one.
    """
    sbook = ScenarioBook.of(book) if isinstance(book, Book) else book
    if not isinstance(sbook, ScenarioBook):
        raise InvalidArgument(f"book={book!r} must be a Book or a ScenarioBook")
    now = _check_now(now_ts)
    model = check_model(model)
    n_workers = _workers(workers)
    kernel = _engine(engine)
    b = sbook.book
    index = _index_array(b, index_prices)
    sigma = _vols(b.n_instruments, vols)
    settle = _settlements(b, settlements)
    x = np.zeros((2 * b.n_instruments, len(model.grid) + 2))
    mark = np.zeros(b.n_instruments)
    underlyings = range(len(b.underlyings))
    # one thread: on arrays of a few thousand entries numpy holds the GIL most of the time,
    # and two threads measured slower than one (benchmarks/scan_bench.py)
    _parallel(_reprice_tasks(sbook, underlyings, index, now, model, sigma, settle, x, mark), 1)
    if kernel == "numba":
        n_a = b.n_accounts
        equity, worst, mm, bound = np.empty(n_a), np.empty(n_a), np.empty(n_a), np.empty(n_a)
        _fused(b, [sbook._all], x, model, (equity, worst, mm, bound), n_workers)
    else:
        [(w, v, g)] = _blocks([sbook._all], x, model, n_workers)
        rank = sbook.rank
        worst = w[rank]
        mm = worst * model.mm_factor
        equity = b._base + v[rank]
        bound = b._bound_slope * g[rank]
        bound += b._bound_base
    return ScenarioScanResult(
        equity, worst, mm, bound, index, mark, now, model, sigma, settle, sbook, x, kernel
    )


def scenario_rescan(
    result: ScenarioScanResult,
    moved_underlyings: Mapping[str, int | float],
    *,
    workers: int | None = None,
) -> ScenarioScanResult:
    """``scenario_scan`` after the underlyings in ``moved_underlyings`` (name -> new index
    price) moved: only their instruments are repriced and only the accounts exposed to
    them recomputed. Bitwise equal to a full scan at the new prices with ``result``'s
    ``now_ts``, ``model`` and ``vols``; ``result`` is not modified."""
    if not isinstance(result, ScenarioScanResult):
        raise InvalidArgument(f"result={result!r} must be a ScenarioScanResult")
    n_workers = _workers(workers)
    sbook = result.book
    b = sbook.book
    moved = _index_array(b, moved_underlyings, partial=True)
    which = [int(u) for u in np.flatnonzero(~np.isnan(moved))]
    index = result.index.copy()
    index[which] = moved[which]
    x = result._x.copy()
    mark = result.mark.copy()
    model = result.model
    lanes = [sbook._subsets[u] for u in which]
    now, vols, settle = result.now_ts, result.vols, result.settlements
    old = (result.equity, result.worst_case, result.maintenance_margin, result.error_bound)
    equity, worst, mm, bound = new = (
        np.empty_like(old[0]),
        np.empty_like(old[1]),
        np.empty_like(old[2]),
        np.empty_like(old[3]),
    )

    def copy(src: FloatArray, dst: FloatArray) -> Callable[[], None]:
        return lambda: np.copyto(dst, src)  # releases the GIL: runs beside the repricing

    tasks = _reprice_tasks(sbook, which, index, now, model, vols, settle, x, mark)
    _parallel(tasks + [copy(*pair) for pair in zip(old, new, strict=True)], n_workers)
    if result.engine == "numba":
        _fused(b, lanes, x, model, new, n_workers)
    else:
        outs = _blocks(lanes, x, model, n_workers)
        for lane, (w, v, g) in zip(lanes, outs, strict=True):
            rows = lane.rows
            worst[rows] = w
            mm[rows] = w * model.mm_factor
            equity[rows] = b._base[rows] + v
            g *= b._bound_slope[rows]
            g += b._bound_base[rows]
            bound[rows] = g
    return ScenarioScanResult(
        equity,
        worst,
        mm,
        bound,
        index,
        mark,
        result.now_ts,
        model,
        result.vols,
        result.settlements,
        sbook,
        x,
        result.engine,
    )


def candidates(
    result: ScenarioScanResult, rel_band: float = 0.0, abs_band: float = 0.0
) -> IntArray:
    """Accounts that may be liquidatable, ordered by (health, index):
    ``equity < maintenance_margin + rel_band·|maintenance_margin| + abs_band + error_bound``.

    With zero bands it contains every account whose exact equity is below the scalar
    ``PortfolioMarginModel.margin`` maintenance of its positions (no false negatives);
    each candidate must be confirmed before anything is done to it.
    """
    if not isinstance(result, ScenarioScanResult):
        raise InvalidArgument(f"result={result!r} must be a ScenarioScanResult")
    for name, band in (("rel_band", rel_band), ("abs_band", abs_band)):
        if isinstance(band, bool) or not isinstance(band, (int, float)):
            raise InvalidArgument(f"{name}={band!r} must be a number")
        if not (math.isfinite(band) and band >= 0):
            raise InvalidArgument(f"{name}={band!r} must be finite and non-negative")
    mm = result.maintenance_margin
    threshold = np.abs(mm)
    threshold *= rel_band
    threshold += mm
    threshold += abs_band
    threshold += result.error_bound
    idx = np.flatnonzero(result.equity < threshold)
    health = _health(result.equity[idx], mm[idx])
    return idx[np.lexsort((idx, health))]
