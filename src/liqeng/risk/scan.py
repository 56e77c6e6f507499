"""The vectorised screening scan: equity and maintenance margin of every account, in float.

numpy screens, exact math decides: the scan finds *candidates* fast; an account is only
liquidated after ``liqeng.risk.margin.account_risk`` (exact integers) confirms it.

The formulas are those of ``liqeng.risk.margin`` (standard, per-position margin), taken
in float64 and regrouped so that every price-dependent factor is *per instrument*. With
``q = size / 10**size_decimals`` (whole tokens, signed), index ``S`` of the instrument's
underlying, Black-76 ``mark`` and ``RS = RATE_SCALE``::

    perp value     q·(S - entry)   = q·S - q·entry     (q·entry is fixed: folded into cash)
    option value   q·mark
    perp MM        |q| · perp_rate·S/RS
    short option   |q| · max(opt_rate·S - otm·RS, floor_rate·S)/RS, otm as in margin.py
    long option    0

so ``equity = base + A @ x`` and the same for the requirement, where ``A`` is one
accounts × (2·instruments) CSR matrix built once in the ``Book`` with data ``|q|``: a long
position sits in column ``i``, a short one in column ``n_instruments + i``, and ``x``
stacks the per-instrument columns for longs (``mark``, long MM rate) over those for
shorts (``-mark``, short MM rate), repriced once per scan (one vectorised Black-76 call
for all options). One product over all positions measured faster than separate long and
short matrices, ``np.bincount`` or ``np.add.reduceat`` (see benchmarks/scan_bench.py).
A third column carries a *gross* exposure ``Σ |q|·(mark + S + strike)`` (plus
``|cash| + Σ_perp |q|·entry``), from which each account's float error bound is derived::

    error_bound = 2·n_positions + 1 + 2**-50 · (n_positions + 64) · gross

It covers the per-position floor of each value and ceil of each requirement on the exact
path (< 1 unit each, so < 2 units per position between equity and requirement) and the float
rounding of every product and sum (each term has a relative error of a few ``2**-53``;
summation adds at most ``n·2**-53`` of the gross). ``candidates`` screens in every account
with ``equity < maintenance_margin·(1 + rel_band) + abs_band + error_bound``, so with zero
bands no account the exact path finds liquidatable escapes the screen.

Scenario axis (portfolio margin, later): the per-instrument columns become
``instruments × (3·scenarios)`` blocks and the same two sparse products give
``accounts × scenarios``; today's standard margin is the one-scenario case.

Incremental mode (``rescan``): when some underlyings move, only their instruments are
repriced and only the accounts exposed to them (row subsets of ``L`` and ``N``
precomputed per underlying) are recomputed; each row is summed in the same order as in a
full scan, so the result is bitwise the full scan's. Time must not move between the two
(options decay on every underlying): a new ``now_ts`` needs a full ``scan``.

Expiry: where ``settlements`` gives an instrument's settlement price and it has expired, it
is marked at that price (a future) or its intrinsic value there (an option) with no
margin, as in ``liqeng.risk.margin``. Without one, an expired option is screened at its
intrinsic value on the current index with its live margin (the exact path refuses to
value it: ``Unsettled``). A perpetual has no expiry; a ``DatedFuture`` is a perpetual
with one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped]

from liqeng.errors import InvalidArgument
from liqeng.ids import AccountId, InstrumentId
from liqeng.ledger.model import Position
from liqeng.market import black76
from liqeng.market.black76 import YEAR_SECONDS, BoolArray, FloatArray
from liqeng.market.instruments import (
    DatedFuture,
    EuropeanOption,
    Instrument,
    check_instrument,
    check_underlying,
)
from liqeng.market.marks import check_vol
from liqeng.risk.margin import HEALTH_MAX, MarginParams
from liqeng.units import DECIMALS_MAX, PRICE_MAX, RATE_SCALE, Asset, check_int

__all__ = [
    "TS_MAX",
    "Book",
    "ScanResult",
    "candidates",
    "rescan",
    "scan",
]

IntArray = npt.NDArray[np.int64]

TS_MAX: Final = 2**62
"""Timestamps (``now_ts``, ``expiry_ts``) the scan accepts: ``|ts| <= 2**62`` (int64)."""

_HEALTH_MAX_F: Final = float(HEALTH_MAX)
_EPS_FACTOR: Final = 2.0**-50
_COLS: Final = 3  # value, maintenance margin, gross


def _length(name: str, value: object) -> int:
    shape = np.shape(value)  # type: ignore[call-overload]
    if len(shape) != 1:
        raise InvalidArgument(f"{name} must be a 1-d array, not of shape {shape}")
    return int(shape[0])


def _f64(name: str, value: object, n: int) -> FloatArray:
    arr = np.ascontiguousarray(value, dtype=np.float64)
    if arr.shape != (n,):
        raise InvalidArgument(f"{name} has shape {arr.shape}, expected ({n},)")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidArgument(f"{name}[{i}]={arr[i].item()!r} must be finite")
    return arr


def _ints(name: str, value: object, n: int, lo: int, hi: int) -> IntArray:
    raw = np.asarray(value)
    if raw.dtype.kind not in "iu":
        raise InvalidArgument(f"{name} must be an integer array, not {raw.dtype}")
    arr = np.ascontiguousarray(raw, dtype=np.int64)
    if arr.shape != (n,):
        raise InvalidArgument(f"{name} has shape {arr.shape}, expected ({n},)")
    bad = (arr < lo) | (arr > hi)
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidArgument(f"{name}[{i}]={int(arr[i])} is outside [{lo}, {hi}]")
    return arr


def _bools(name: str, value: object, n: int) -> BoolArray:
    arr = np.ascontiguousarray(value)
    if arr.dtype != np.bool_ or arr.shape != (n,):
        raise InvalidArgument(f"{name} must be a bool array of shape ({n},)")
    return arr


@dataclass(frozen=True, slots=True, eq=False)
class _Subset:
    """The accounts exposed to one underlying, with their rows of ``L`` and ``N``."""

    rows: IntArray
    matrix: sp.csr_matrix
    instruments: IntArray  # the underlying's instruments


@dataclass(frozen=True, slots=True, eq=False)
class Book:
    """Every open position as a struct of arrays, built once and scanned many times.

    Accounts, instruments and underlyings are numbered ``0..n-1`` (``account_ids``,
    ``instrument_ids``, ``underlyings`` give the names back when built from mappings).
    Per instrument: ``is_option``, ``strike`` (price units, 0 for perps), ``expiry_ts``,
    ``is_call``, ``scale = 10**size_decimals`` and ``underlying`` (an index). Per
    position: ``account``, ``instrument``, ``size`` (base units, as float64) and
    ``entry_price``. ``cash`` is per account, in quote base units. Positions are sorted
    by (account, instrument), one per pair. Build with ``from_accounts`` or
    ``from_arrays``; the derived matrices are private and read-only by convention.
    """

    underlyings: tuple[str, ...]
    account_ids: tuple[AccountId, ...] | None
    instrument_ids: tuple[InstrumentId, ...] | None
    # per instrument
    is_option: BoolArray
    strike: FloatArray
    expiry_ts: IntArray
    is_call: BoolArray
    scale: FloatArray
    underlying: IntArray
    # per position
    account: IntArray
    instrument: IntArray
    size: FloatArray
    entry_price: FloatArray
    # per account
    cash: FloatArray
    # derived
    _matrix: sp.csr_matrix  # accounts × (2·instruments), data |q|
    _base: FloatArray  # cash - Σ_perp q·entry
    _bound_base: FloatArray  # n + 1 + slope·(|cash| + Σ_perp |q|·entry)
    _bound_slope: FloatArray  # (n + 64)·2**-50, n = positions of the account
    _subsets: tuple[_Subset, ...]
    _options: IntArray  # indices of option instruments
    _perps: IntArray

    @property
    def n_accounts(self) -> int:
        return int(self.cash.shape[0])

    @property
    def n_instruments(self) -> int:
        return int(self.scale.shape[0])

    @property
    def n_positions(self) -> int:
        return int(self.size.shape[0])

    def exposed_accounts(self, underlying: str) -> IntArray:
        """Indices of the accounts holding any position on ``underlying`` (sorted)."""
        return self._subsets[self._underlying_index(underlying)].rows

    def _underlying_index(self, underlying: object) -> int:
        if isinstance(underlying, str) and underlying in self.underlyings:
            return self.underlyings.index(underlying)
        raise InvalidArgument(
            f"underlying={underlying!r} is not in the book (it has {list(self.underlyings)})"
        )

    @classmethod
    def from_arrays(
        cls,
        *,
        underlyings: Sequence[str],
        is_option: object,
        strike: object,
        expiry_ts: object,
        is_call: object,
        size_decimals: object,
        underlying: object,
        account: object,
        instrument: object,
        size: object,
        entry_price: object,
        cash: object,
        account_ids: Sequence[AccountId] | None = None,
        instrument_ids: Sequence[InstrumentId] | None = None,
    ) -> Book:
        """Build from numpy arrays (the fast path). Every array is checked: shapes,
        finite values, indices in range, ``strike > 0`` for options, one position per
        (account, instrument). Zero sizes are dropped."""
        names = tuple(check_underlying(u) for u in underlyings)
        if len(set(names)) != len(names):
            raise InvalidArgument(f"underlyings={list(names)} has duplicates")
        n_u = len(names)
        n_i = _length("is_option", is_option)
        opt = _bools("is_option", is_option, n_i)
        k = _f64("strike", strike, n_i)
        bad_k = opt & ~((k > 0.0) & (k <= float(PRICE_MAX)))
        if bad_k.any():
            i = int(np.argmax(bad_k))
            raise InvalidArgument(
                f"strike[{i}]={k[i].item()!r} of an option must be in 1..PRICE_MAX"
            )
        k = np.where(opt, k, 0.0)
        exp = _ints("expiry_ts", expiry_ts, n_i, -TS_MAX, TS_MAX)
        call = _bools("is_call", is_call, n_i)
        sd = _ints("size_decimals", size_decimals, n_i, 0, DECIMALS_MAX)
        und = _ints("underlying", underlying, n_i, 0, n_u - 1)
        scale = np.power(10.0, sd.astype(np.float64))

        n_p = _length("account", account)
        n_a = _length("cash", cash)
        cash_f = _f64("cash", cash, n_a)
        acc = _ints("account", account, n_p, 0, n_a - 1)
        ins = _ints("instrument", instrument, n_p, 0, n_i - 1)
        siz = _f64("size", size, n_p)
        entry = _f64("entry_price", entry_price, n_p)
        bad_e = (entry < 0.0) | (entry > float(PRICE_MAX))
        if bad_e.any():
            i = int(np.argmax(bad_e))
            raise InvalidArgument(f"entry_price[{i}]={entry[i].item()!r} is outside [0, PRICE_MAX]")
        if account_ids is not None and len(account_ids) != n_a:
            raise InvalidArgument(f"account_ids has {len(account_ids)} names for {n_a} accounts")
        if instrument_ids is not None and len(instrument_ids) != n_i:
            raise InvalidArgument(
                f"instrument_ids has {len(instrument_ids)} names for {n_i} instruments"
            )

        live = siz != 0.0
        order = np.lexsort((ins, acc))
        order = order[live[order]]
        acc, ins, siz, entry = acc[order], ins[order], siz[order], entry[order]
        dup = (acc[1:] == acc[:-1]) & (ins[1:] == ins[:-1])
        if dup.any():
            i = int(np.argmax(dup))
            raise InvalidArgument(
                f"account {int(acc[i])} has two positions in instrument {int(ins[i])}"
            )
        return cls._assemble(
            names,
            account_ids,
            instrument_ids,
            opt,
            k,
            exp,
            call,
            scale,
            und,
            acc,
            ins,
            siz,
            entry,
            cash_f,
        )

    @classmethod
    def from_accounts(
        cls,
        accounts: Mapping[AccountId, tuple[int, Mapping[InstrumentId, Position]]],
        instruments: Mapping[InstrumentId, Instrument],
        underlyings: Iterable[str] = (),
    ) -> Book:
        """Build from ``{account_id: (cash, {instrument_id: Position})}`` and the
        instruments (all quoted in one asset). Accounts and instruments are numbered in
        sorted id order; underlyings are those of the instruments plus ``underlyings``,
        sorted. Positions of size 0 are skipped; an unknown instrument raises."""
        iids = sorted(instruments)
        quote: Asset | None = None
        for iid in iids:
            inst = instruments[iid]
            check_instrument(inst)
            if inst.id != iid:
                raise InvalidArgument(f"instruments[{iid!r}] has id={inst.id!r}")
            if quote is None:
                quote = inst.quote
            elif inst.quote != quote:
                raise InvalidArgument(
                    f"instrument={iid!r} is quoted in {inst.quote.id}, others in {quote.id}: "
                    "one book holds one quote asset"
                )
        names = sorted({instruments[i].underlying for i in iids} | set(underlyings))
        u_index = {u: j for j, u in enumerate(names)}
        i_index = {iid: j for j, iid in enumerate(iids)}
        opts = [instruments[i] for i in iids]
        is_option = np.array([isinstance(o, EuropeanOption) for o in opts], dtype=np.bool_)
        strike = np.array([o.strike if isinstance(o, EuropeanOption) else 0 for o in opts], float)
        expiry = [o.expiry_ts if isinstance(o, (EuropeanOption, DatedFuture)) else 0 for o in opts]
        for iid, e in zip(iids, expiry, strict=True):
            check_int(f"expiry_ts of {iid}", e, -TS_MAX, TS_MAX)
        is_call = np.array([isinstance(o, EuropeanOption) and o.is_call for o in opts], np.bool_)
        sd = np.array([o.size_decimals for o in opts], dtype=np.int64)
        und = np.array([u_index[o.underlying] for o in opts], dtype=np.int64)

        aids = sorted(accounts)
        cash = np.empty(len(aids), dtype=np.float64)
        acc: list[int] = []
        ins: list[int] = []
        size: list[float] = []
        entry: list[float] = []
        for a, aid in enumerate(aids):
            item = accounts[aid]
            if not isinstance(item, tuple) or len(item) != 2:
                raise InvalidArgument(f"accounts[{aid!r}]={item!r} must be (cash, positions)")
            cash_units, positions = item
            cash[a] = float(check_int(f"cash of {aid}", cash_units))
            for iid, pos in positions.items():
                if not isinstance(pos, Position):
                    raise InvalidArgument(f"position={pos!r} in {iid} must be a Position")
                check_int(f"size in {iid}", pos.size)
                check_int(f"entry_price in {iid}", pos.entry_price, 0, PRICE_MAX)
                if pos.size == 0:
                    continue
                j = i_index.get(iid)
                if j is None:
                    raise InvalidArgument(f"instrument={iid!r} has a position but no Instrument")
                acc.append(a)
                ins.append(j)
                size.append(float(pos.size))
                entry.append(float(pos.entry_price))
        return cls.from_arrays(
            underlyings=names,
            is_option=is_option,
            strike=strike,
            expiry_ts=np.array(expiry, dtype=np.int64),
            is_call=is_call,
            size_decimals=sd,
            underlying=und,
            account=np.array(acc, dtype=np.int64),
            instrument=np.array(ins, dtype=np.int64),
            size=np.array(size, dtype=np.float64),
            entry_price=np.array(entry, dtype=np.float64),
            cash=cash,
            account_ids=tuple(aids),
            instrument_ids=tuple(iids),
        )

    @classmethod
    def _assemble(
        cls,
        names: tuple[str, ...],
        account_ids: Sequence[AccountId] | None,
        instrument_ids: Sequence[InstrumentId] | None,
        opt: BoolArray,
        strike: FloatArray,
        expiry: IntArray,
        call: BoolArray,
        scale: FloatArray,
        und: IntArray,
        acc: IntArray,
        ins: IntArray,
        size: FloatArray,
        entry: FloatArray,
        cash: FloatArray,
    ) -> Book:
        n_a, n_i = cash.shape[0], scale.shape[0]
        q = size / scale[ins]
        if not np.isfinite(q).all():  # pragma: no cover - sizes are finite, scales >= 1
            raise InvalidArgument("size / 10**size_decimals overflowed")
        perp = ~opt[ins]
        base = cash.copy()
        base -= np.bincount(acc[perp], weights=q[perp] * entry[perp], minlength=n_a)
        gross = np.abs(cash)
        gross += np.bincount(acc[perp], weights=np.abs(q[perp]) * entry[perp], minlength=n_a)
        n_pos = np.bincount(acc, minlength=n_a).astype(np.float64)

        slope = (n_pos + 64.0) * _EPS_FACTOR
        bound_base = 2.0 * n_pos + 1.0 + slope * gross
        indptr = np.zeros(n_a + 1, dtype=np.int64)
        np.cumsum(np.bincount(acc, minlength=n_a), out=indptr[1:])
        idx = np.int32 if max(2 * n_i, int(indptr[-1])) < 2**31 else np.int64
        columns = ins + np.where(q > 0.0, 0, n_i)  # positions are sorted by account
        matrix = sp.csr_matrix(
            (np.abs(q), columns.astype(idx), indptr.astype(idx)), shape=(n_a, 2 * n_i)
        )
        pos_und = und[ins]
        subsets = []
        for u in range(len(names)):
            rows = np.unique(acc[pos_und == u])
            subsets.append(_Subset(rows, matrix[rows], np.flatnonzero(und == u)))
        return cls(
            names,
            tuple(account_ids) if account_ids is not None else None,
            tuple(instrument_ids) if instrument_ids is not None else None,
            opt,
            strike,
            expiry,
            call,
            scale,
            und,
            acc,
            ins,
            size,
            entry,
            cash,
            matrix,
            base,
            bound_base,
            slope,
            tuple(subsets),
            np.flatnonzero(opt),
            np.flatnonzero(~opt),
        )


@dataclass(frozen=True, slots=True, eq=False)
class ScanResult:
    """Per account: ``equity``, ``maintenance_margin`` and ``error_bound`` (float64, quote
    base units): the exact values lie within ``error_bound`` of the floats. Per
    underlying: the ``index`` used; per instrument: ``mark``. ``now_ts``, ``params``,
    ``vols`` and ``settlements`` are those of the scan, reused by ``rescan``."""

    equity: FloatArray
    maintenance_margin: FloatArray
    error_bound: FloatArray
    index: FloatArray
    mark: FloatArray
    now_ts: int
    params: MarginParams
    vols: FloatArray
    settlements: FloatArray  # per instrument, NaN where none
    _x: FloatArray  # (2·instruments) × 3: longs (mark, MM rate, gross weight), then shorts

    @property
    def health(self) -> FloatArray:
        """``equity / maintenance_margin`` clamped to ``±HEALTH_MAX`` (``±1e18`` with no
        requirement, by the sign of equity), as ``AccountRisk.health`` in float."""
        return _health(self.equity, self.maintenance_margin)


def _health(equity: FloatArray, mm: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mm > 0.0, equity / mm, np.where(equity >= 0.0, np.inf, -np.inf))
    return np.clip(ratio, -_HEALTH_MAX_F, _HEALTH_MAX_F)


def _index_array(book: Book, index_prices: object, partial: bool = False) -> FloatArray:
    """Index prices by underlying, as float64 (NaN for absent ones when ``partial``)."""
    n_u = len(book.underlyings)
    out = np.full(n_u, np.nan)
    if isinstance(index_prices, Mapping):
        for u, price in index_prices.items():
            out[book._underlying_index(u)] = _check_price(f"index_prices[{u!r}]", price)
        if not partial:
            missing = [u for u, p in zip(book.underlyings, out, strict=True) if math.isnan(p)]
            if missing:
                raise InvalidArgument(f"no index price for underlying={missing[0]!r}")
        return out
    if partial:
        raise InvalidArgument(f"moved_underlyings={index_prices!r} must be a mapping")
    arr = np.asarray(index_prices)
    if arr.shape != (n_u,) or arr.dtype.kind not in "iuf":
        raise InvalidArgument(
            f"index_prices must be a mapping or a numeric array of shape ({n_u},), "
            f"not {arr.dtype} {arr.shape}"
        )
    for j, u in enumerate(book.underlyings):
        out[j] = _check_price(f"index_prices[{u!r}]", arr[j].item())
    return out


def _check_price(name: str, price: object) -> float:
    if isinstance(price, int) and not isinstance(price, bool):
        return float(check_int(name, price, 1, PRICE_MAX))
    if isinstance(price, float) and math.isfinite(price) and 0.0 < price <= PRICE_MAX:
        return price
    raise InvalidArgument(f"{name}={price!r} must be a finite, positive price <= PRICE_MAX")


def _vols(book: Book, vols: object, params: MarginParams) -> FloatArray:
    if vols is None:
        return np.full(book.n_instruments, params.vol)
    arr = np.asarray(vols)
    if arr.dtype.kind not in "iuf" or arr.shape != (book.n_instruments,):
        raise InvalidArgument(
            f"vols must be a numeric array of shape ({book.n_instruments},), "
            f"not {arr.dtype} {arr.shape}"
        )
    arr = arr.astype(np.float64)
    bad = ~(np.isfinite(arr) & (arr >= 0.0))
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidArgument(f"vols[{i}]={arr[i].item()!r} must be finite and non-negative")
    return arr


def _reprice(
    book: Book,
    instruments: IntArray,
    index: FloatArray,
    now_ts: int,
    params: MarginParams,
    vols: FloatArray,
    settlements: FloatArray,
    x_long: FloatArray,
    x_short: FloatArray,
    mark: FloatArray,
) -> None:
    """Fill rows ``instruments`` of ``mark``, ``x_long`` and ``x_short`` in place."""
    s = index[book.underlying[instruments]]
    opt = book.is_option[instruments]
    k = book.strike[instruments]
    settle = settlements[instruments]
    settled = ~np.isnan(settle) & (book.expiry_ts[instruments] <= now_ts)
    m = np.where(settled, settle, s)
    o = instruments[opt]
    if o.size:
        t = np.maximum(book.expiry_ts[o] - now_ts, 0) / YEAR_SECONDS
        m[opt] = black76.price(m[opt], k[opt], t, vols[o], book.is_call[o])
    rs = float(RATE_SCALE)
    perp_mm = params.perp_maintenance_rate * s / rs
    otm = np.where(book.is_call[instruments], np.maximum(k - s, 0.0), np.maximum(s - k, 0.0))
    short_opt_mm = (
        np.maximum(params.option_maintenance_rate * s - otm * rs, params.option_floor_rate * s) / rs
    )
    gross_w = m + s + k
    mark[instruments] = m
    x_long[instruments, 0] = m
    x_long[instruments, 1] = np.where(opt | settled, 0.0, perp_mm)
    x_long[instruments, 2] = gross_w
    x_short[instruments, 0] = -m
    x_short[instruments, 1] = np.where(settled, 0.0, np.where(opt, short_opt_mm, perp_mm))
    x_short[instruments, 2] = gross_w


def _aggregate(matrix: sp.csr_matrix, x: FloatArray) -> FloatArray:
    y: FloatArray = matrix @ x
    return y


def _check_now(now_ts: object) -> int:
    return check_int("now_ts", now_ts, -TS_MAX, TS_MAX)


def scan(
    book: Book,
    index_prices: Mapping[str, int | float] | FloatArray,
    now_ts: int,
    params: MarginParams,
    vols: FloatArray | None = None,
    settlements: FloatArray | None = None,
) -> ScanResult:
    """Equity and maintenance margin of every account of ``book`` (see the module doc).

    ``index_prices``: a mapping by underlying name (every underlying of the book, no
    other) or an array in ``book.underlyings`` order; each price finite, positive and at
    most ``PRICE_MAX``. ``vols``: optional per-instrument Black-76 volatility (defaults
    to ``params.vol``; finite, ``>= 0``). ``settlements``: optional per-instrument
    settlement prices, NaN where none (used only once expired). Bad input raises
    ``InvalidArgument`` naming it.
    """
    if not isinstance(book, Book):
        raise InvalidArgument(f"book={book!r} must be a Book")
    if not isinstance(params, MarginParams):
        raise InvalidArgument(f"params={params!r} must be MarginParams")
    now = _check_now(now_ts)
    check_vol(params.vol)
    index = _index_array(book, index_prices)
    sigma = _vols(book, vols, params)
    settle = _settlements(book, settlements)
    n_i = book.n_instruments
    mark = np.empty(n_i)
    x = np.empty((2 * n_i, _COLS))
    _reprice(book, np.arange(n_i), index, now, params, sigma, settle, x[:n_i], x[n_i:], mark)
    y = _aggregate(book._matrix, x)
    equity = book._base + y[:, 0]
    mm = np.ascontiguousarray(y[:, 1])
    bound = book._bound_base + book._bound_slope * y[:, 2]
    return ScanResult(equity, mm, bound, index, mark, now, params, sigma, settle, x)


def _settlements(book: Book, settlements: object) -> FloatArray:
    n = book.n_instruments
    if settlements is None:
        return np.full(n, np.nan)
    arr = np.asarray(settlements)
    if arr.dtype.kind != "f" or arr.shape != (n,):
        raise InvalidArgument(
            f"settlements must be a float array of shape ({n},), not {arr.dtype} {arr.shape}"
        )
    arr = arr.astype(np.float64)
    bad = ~(np.isnan(arr) | ((arr > 0.0) & (arr <= float(PRICE_MAX))))
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidArgument(f"settlements[{i}]={arr[i].item()!r} must be NaN or in 1..PRICE_MAX")
    return arr


def rescan(
    book: Book,
    result: ScanResult,
    moved_underlyings: Mapping[str, int | float],
) -> ScanResult:
    """``scan`` after the underlyings in ``moved_underlyings`` (name -> new index price)
    moved, recomputing only their instruments and the accounts exposed to them.

    Equal (bitwise) to ``scan`` at the updated prices with ``result``'s ``now_ts``,
    ``params`` and ``vols``. ``result`` is not modified.
    """
    if not isinstance(book, Book):
        raise InvalidArgument(f"book={book!r} must be a Book")
    if not isinstance(result, ScanResult) or result.equity.shape != (book.n_accounts,):
        raise InvalidArgument(f"result={result!r} is not a ScanResult of this book")
    moved = _index_array(book, moved_underlyings, partial=True)
    which = np.flatnonzero(~np.isnan(moved))
    index = result.index.copy()
    index[which] = moved[which]
    mark = result.mark.copy()
    x = result._x.copy()
    n_i = book.n_instruments
    equity = result.equity.copy()
    mm = result.maintenance_margin.copy()
    bound = result.error_bound.copy()
    subsets = [book._subsets[int(u)] for u in which]
    if subsets:
        instruments = np.concatenate([s.instruments for s in subsets])
        _reprice(
            book,
            instruments,
            index,
            result.now_ts,
            result.params,
            result.vols,
            result.settlements,
            x[:n_i],
            x[n_i:],
            mark,
        )
    for sub in subsets:
        rows = sub.rows
        y = _aggregate(sub.matrix, x)
        equity[rows] = book._base[rows] + y[:, 0]
        mm[rows] = y[:, 1]
        bound[rows] = book._bound_base[rows] + book._bound_slope[rows] * y[:, 2]
    return ScanResult(
        equity,
        mm,
        bound,
        index,
        mark,
        result.now_ts,
        result.params,
        result.vols,
        result.settlements,
        x,
    )


def candidates(result: ScanResult, rel_band: float = 0.0, abs_band: float = 0.0) -> IntArray:
    """Indices of the accounts that may be liquidatable, ordered by (health, index):
    ``equity < maintenance_margin·(1 + rel_band) + abs_band + error_bound``.

    With zero bands the screen already contains every account the exact path finds
    liquidatable (``error_bound`` covers the float error); the bands widen it (e.g. to
    catch accounts about to fall). Each candidate must be re-checked with
    ``liqeng.risk.margin.account_risk`` before anything is done to it.
    """
    for name, band in (("rel_band", rel_band), ("abs_band", abs_band)):
        if isinstance(band, bool) or not isinstance(band, (int, float)):
            raise InvalidArgument(f"{name}={band!r} must be a number")
        if not (math.isfinite(band) and band >= 0):
            raise InvalidArgument(f"{name}={band!r} must be finite and non-negative")
    mm = result.maintenance_margin
    threshold = mm * (1.0 + rel_band)
    threshold += abs_band
    threshold += result.error_bound
    idx = np.flatnonzero(result.equity < threshold)
    health = _health(result.equity[idx], mm[idx])
    return idx[np.lexsort((idx, health))]
