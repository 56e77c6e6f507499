"""The scenario (portfolio-margin) scan against the scalar ``PortfolioMarginModel.margin``.

Equity is the exact integer of ``account_risk``; maintenance is the scalar model's float of
the same positions. Units: USDC has 6 decimals (1800 USDC per ETH is ``1_800_000_000``).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping

import numpy as np
import pytest
import scipy.sparse as sp  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from liqeng.errors import InvalidArgument
from liqeng.ids import AccountId, InstrumentId, account_id, asset_id, instrument_id
from liqeng.ledger.model import Position
from liqeng.market import EuropeanOption, Instrument, Perpetual
from liqeng.market.black76 import YEAR_SECONDS
from liqeng.risk import scenario_scan as ssc
from liqeng.risk.margin import MarginParams, account_risk
from liqeng.risk.portfolio import (
    DERIBIT_BTC_PM,
    LYRA_LIKE,
    PortfolioMarginModel,
    ScenarioGrid,
    ScenarioPosition,
    deribit_grid,
)
from liqeng.risk.scan import Book
from liqeng.risk.scenario_scan import (
    ENGINES,
    Engine,
    ScenarioBook,
    ScenarioScanResult,
    candidates,
    check_model,
    scenario_rescan,
    scenario_scan,
)
from liqeng.units import Asset

USDC = Asset(asset_id("eth/USDC"), 6)
DAY = 24 * 3600
NOW = 1_000 * DAY
VOL = 0.7
INDEX = {"BTC": 60_000_000_000, "ETH": 3_000_000_000, "SOL": 150_000_000}
# USD grid with weighted tail moves, gains offsetting a quarter of the losses
WEIGHTED = PortfolioMarginModel(
    grid=deribit_grid(settlement="usd"), inverse=False, mm_factor=0.8, pnl_offset=0.25
)
MODELS = {"lyra": LYRA_LIKE, "weighted": WEIGHTED}

Accounts = dict[AccountId, tuple[int, dict[InstrumentId, Position]]]


def _instruments() -> dict[InstrumentId, Instrument]:
    out: list[Instrument] = []
    for u, s in INDEX.items():
        out.append(Perpetual(instrument_id(f"t/{u}-PERP"), u, USDC, 3 if u != "SOL" else 0))
        for j, m in enumerate((0.5, 0.9, 1.0, 1.1, 2.0)):
            for call in (True, False):
                expiry = NOW + (j - 1) * 7 * DAY  # one expired, one expiring now
                kind = "C" if call else "P"
                out.append(
                    EuropeanOption(
                        instrument_id(f"t/{u}-{kind}-{j}"), u, USDC, 2 + j % 3,
                        int(s * m), expiry, call,
                    )
                )  # fmt: skip
    return {i.id: i for i in out}


INSTRUMENTS = _instruments()
IIDS = sorted(INSTRUMENTS)
SETTLEMENTS = {
    i.id: INDEX[i.underlying] * 97 // 100
    for i in INSTRUMENTS.values()
    if isinstance(i, EuropeanOption) and i.expiry_ts <= NOW
}  # expired options settled at 97% of the unshocked index
SETTLE = np.array([float(SETTLEMENTS.get(i, math.nan)) for i in IIDS])


def scalar_positions(
    positions: Mapping[InstrumentId, Position], prices: Mapping[str, int]
) -> list[ScenarioPosition]:
    """The account's positions as the scalar model's records (whole tokens, float); settled
    options carry no scenario risk and are left out."""
    out = []
    for iid, p in sorted(positions.items()):
        if p.size == 0 or iid in SETTLEMENTS:
            continue
        inst = INSTRUMENTS[iid]
        q = p.size / 10**inst.size_decimals
        f = float(prices[inst.underlying])
        if isinstance(inst, EuropeanOption):
            t = max(inst.expiry_ts - NOW, 0) / YEAR_SECONDS
            kind = "call" if inst.is_call else "put"
            out.append(ScenarioPosition(kind, q, f, t, float(inst.strike), VOL))
        else:
            out.append(ScenarioPosition("future", q, f))
    return out


def scalar_mm(
    model: PortfolioMarginModel,
    positions: Mapping[InstrumentId, Position],
    prices: Mapping[str, int],
) -> float:
    return model.margin(scalar_positions(positions, prices), 1.0).maintenance


def exact_equity(cash: int, positions: dict[InstrumentId, Position], prices: dict[str, int]) -> int:
    params = MarginParams(vol=VOL)
    return account_risk(
        cash, positions, INSTRUMENTS, prices, NOW, params, settlements=SETTLEMENTS
    ).equity


def gross_notional(iid: InstrumentId, position: Position, prices: Mapping[str, int]) -> float:
    """``|q|·(3·index + strike + entry)``: what the float error is proportional to."""
    inst = INSTRUMENTS[iid]
    strike = inst.strike if isinstance(inst, EuropeanOption) else 0
    q = abs(position.size) / 10**inst.size_decimals
    return float(q) * (3 * prices[inst.underlying] + 2 * strike + position.entry_price)


@st.composite
def portfolios(draw: st.DrawFn) -> tuple[str, Accounts, dict[str, int]]:
    """Up to 8 accounts of up to 5 positions, longs and shorts; cash placed so that equity
    lands within a few units of the scalar maintenance (the hard cases for floats)."""
    name = draw(st.sampled_from(sorted(MODELS)))
    shocks = {u: draw(st.floats(0.3, 3.0)) for u in INDEX}
    prices = {u: max(1, int(s * shocks[u])) for u, s in INDEX.items()}
    n = draw(st.integers(1, 8))
    accounts: Accounts = {}
    for a in range(n):
        chosen = draw(st.lists(st.sampled_from(IIDS), max_size=5, unique=True))
        pos = {
            iid: Position(
                draw(st.integers(-(10**9), 10**9)),
                draw(st.integers(0, 2 * INDEX[INSTRUMENTS[iid].underlying])),
            )
            for iid in chosen
        }
        mm = scalar_mm(MODELS[name], pos, prices)
        offset = draw(st.one_of(st.integers(-3, 3), st.integers(-(10**12), 10**12)))
        cash = round(mm) - exact_equity(0, pos, prices) + offset
        accounts[account_id(f"t/a{a}")] = (cash, pos)
    return name, accounts, prices


@settings(max_examples=200, deadline=None)
@given(portfolios(), st.sampled_from([1, 2]), st.sampled_from(ENGINES))
def test_scan_screens_in_every_account_below_the_scalar_maintenance(
    case: tuple[str, Accounts, dict[str, int]], workers: int, engine: Engine
) -> None:
    name, accounts, prices = case
    model = MODELS[name]
    book = Book.from_accounts(accounts, INSTRUMENTS)
    sbook = ScenarioBook.of(book, block_rows=3)
    res = scenario_scan(sbook, prices, NOW, model, VOL, SETTLE, workers=workers, engine=engine)
    assert res.engine == engine
    assert book.account_ids is not None
    ids = book.account_ids
    liquidatable = set()
    for a, aid in enumerate(ids):
        cash, pos = accounts[aid]
        equity = exact_equity(cash, pos, prices)
        mm = scalar_mm(model, pos, prices)
        bound = res.error_bound[a]
        assert abs(res.equity[a] - equity) <= bound
        assert abs(res.maintenance_margin[a] - mm) <= bound
        assert res.maintenance_margin[a] == model.mm_factor * res.worst_case[a]
        gross = abs(cash) + sum(gross_notional(iid, p, prices) for iid, p in pos.items())
        assert bound <= 2 * len(pos) + 1 + 1e-12 * gross  # and the bound stays tiny
        if equity < mm:
            liquidatable.add(aid)

    screened = {ids[a] for a in candidates(res)}
    assert liquidatable <= screened  # no false negative
    keys = [(float(res.health[a]), int(a)) for a in candidates(res)]
    assert keys == sorted(keys)


@settings(max_examples=100, deadline=None)
@given(
    portfolios(),
    st.sets(st.sampled_from(sorted(INDEX)), min_size=1),
    st.floats(0.5, 2.0),
    st.sampled_from(ENGINES),
    st.sampled_from([1, 2]),
)
def test_incremental_rescan_equals_a_full_scan_bitwise(
    case: tuple[str, Accounts, dict[str, int]],
    moved: set[str],
    shock: float,
    engine: Engine,
    workers: int,
) -> None:
    # bitwise for the same kernel (engine); the two kernels agree within the bound (below)
    name, accounts, prices = case
    model = MODELS[name]
    sbook = ScenarioBook.of(Book.from_accounts(accounts, INSTRUMENTS), block_rows=2)
    before = scenario_scan(sbook, prices, NOW, model, VOL, SETTLE, workers=2, engine=engine)
    new = {u: max(1, int(prices[u] * shock)) for u in moved}
    after = scenario_rescan(before, new, workers=workers)
    assert after.engine == engine
    full = scenario_scan(
        sbook, {**prices, **new}, NOW, model, VOL, SETTLE, workers=1, engine=engine
    )
    fields = ("equity", "worst_case", "maintenance_margin", "error_bound", "index", "mark", "_x")
    for f in fields:
        assert np.array_equal(getattr(after, f), getattr(full, f)), f
    again = scenario_scan(sbook, prices, NOW, model, VOL, SETTLE, engine=engine)
    for f in fields:  # the first result was not modified
        assert np.array_equal(getattr(before, f), getattr(again, f)), f


def test_a_long_perp_loses_the_down_20_percent_move() -> None:
    perp = InstrumentId("t/ETH-PERP")  # sd=3
    accounts: Accounts = {
        AccountId("t/long"): (1_000_000_000, {perp: Position(2_000, 3_000_000_000)}),  # 2 ETH
        AccountId("t/flat"): (5, {}),
    }
    book = Book.from_accounts(accounts, INSTRUMENTS)  # sorted ids: t/flat=0, t/long=1
    res = scenario_scan(book, INDEX, NOW, LYRA_LIKE, VOL)
    # worst scenario: -20 %, 2 ETH x 3000 USDC x 0.2 = 1200 USDC; MM = 1200 / 1.3
    assert res.worst_case[1] == pytest.approx(1_200_000_000, rel=1e-15)
    assert res.maintenance_margin[1] == pytest.approx(1_200_000_000 / 1.3, rel=1e-15)
    assert res.equity[1] == 1_000_000_000  # entry at the index: value 0
    assert res.worst_case[0] == 0.0 and res.equity[0] == 5
    assert list(candidates(res)) == []
    moved = scenario_rescan(res, {"ETH": 2_900_000_000})  # -100 USDC per ETH
    assert moved.equity[1] == 1_000_000_000 - 200_000_000
    assert list(candidates(moved)) == [1]
    assert moved.equity[0] == res.equity[0]
    assert list(candidates(res, rel_band=0.1)) == [1]
    assert list(candidates(res, abs_band=80_000_000.0)) == [1, 0]  # by health


def test_hedged_accounts_need_less_than_their_parts() -> None:
    perp, put = InstrumentId("t/ETH-PERP"), InstrumentId("t/ETH-P-2")  # put K = 6000, sd=4
    accounts: Accounts = {
        AccountId("t/a-perp"): (0, {perp: Position(1_000, 3_000_000_000)}),
        AccountId("t/b-put"): (0, {put: Position(10_000, 0)}),
        AccountId("t/c-both"): (
            0,
            {perp: Position(1_000, 3_000_000_000), put: Position(10_000, 0)},
        ),
    }
    res = scenario_scan(Book.from_accounts(accounts, INSTRUMENTS), INDEX, NOW, LYRA_LIKE, VOL)
    assert res.worst_case[2] < res.worst_case[0] + res.worst_case[1]
    for a, (_, pos) in enumerate(accounts.values()):
        assert res.maintenance_margin[a] == pytest.approx(scalar_mm(LYRA_LIKE, pos, INDEX))


def test_an_unsettled_expired_option_is_screened_at_its_intrinsic_value() -> None:
    put = InstrumentId("t/ETH-P-0")  # K = 1500, expired a week ago, sd=2
    accounts: Accounts = {AccountId("t/a"): (0, {put: Position(-100, 0)})}  # short 1 put
    book = Book.from_accounts(accounts, INSTRUMENTS)
    low = {**INDEX, "ETH": 1_400_000_000}  # 100 USDC in the money
    res = scenario_scan(book, low, NOW, LYRA_LIKE, VOL)  # no settlement price
    assert res.equity[0] == -100_000_000
    # worst: -20 % -> 1120, intrinsic 380: 280 USDC more to lose
    assert res.worst_case[0] == pytest.approx(280_000_000, rel=1e-12)
    scalar = scalar_mm(LYRA_LIKE, {}, low)  # settled in the scalar helper: no risk
    assert scalar == 0.0
    settled = scenario_scan(book, low, NOW, LYRA_LIKE, VOL, SETTLE)  # settled at 2910
    assert settled.worst_case[0] == 0.0 and settled.equity[0] == 0.0


def random_book(rng: np.random.Generator, n_a: int, per_account: int = 3) -> Book:
    """``n_a`` accounts of ``per_account`` random positions (distinct instruments each)."""
    account = np.repeat(np.arange(n_a), per_account)
    instrument = np.concatenate(
        [rng.choice(len(IIDS), per_account, replace=False) for _ in range(n_a)]
    )
    ref = Book.from_accounts({AccountId("t/x"): (0, {})}, INSTRUMENTS)
    return Book.from_arrays(
        underlyings=ref.underlyings,
        is_option=ref.is_option,
        strike=ref.strike,
        expiry_ts=ref.expiry_ts,
        is_call=ref.is_call,
        size_decimals=np.log10(ref.scale).round().astype(np.int64),
        underlying=ref.underlying,
        account=account,
        instrument=instrument,
        size=rng.integers(-(10**6), 10**6, account.size).astype(np.float64),
        entry_price=np.full(account.size, 1e9),
        cash=rng.integers(0, 10**12, n_a).astype(np.float64),
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_workers_and_block_sizes_do_not_change_the_result(engine: Engine) -> None:
    rng = np.random.default_rng(7)
    book = random_book(rng, 50)
    vols = rng.uniform(0.2, 1.5, book.n_instruments)
    results = [
        scenario_scan(
            ScenarioBook.of(book, block_rows=br),
            INDEX,
            NOW,
            WEIGHTED,
            vols,
            SETTLE,
            workers=w,
            engine=engine,
        )
        for br, w in ((4096, 1), (1, 1), (7, 2), (16, 3))
    ]
    for r in results[1:]:
        for f in ("equity", "worst_case", "maintenance_margin", "error_bound"):
            assert np.array_equal(getattr(r, f), getattr(results[0], f)), f


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 400),
    st.integers(1, 8),
    st.sampled_from(sorted(MODELS)),
    st.sampled_from([1, 2]),
)
def test_the_fused_kernel_agrees_with_the_numpy_path(
    seed: int, n_a: int, per_account: int, name: str, workers: int
) -> None:
    # Same sums in the same order: equal on x86-64 (no FMA in scipy's baseline build), and
    # within the error bound wherever a compiler fuses multiply-adds differently.
    rng = np.random.default_rng(seed)
    book = random_book(rng, n_a, per_account)
    vols = rng.uniform(0.0, 2.0, book.n_instruments)
    prices = {u: int(s * rng.uniform(0.3, 3.0)) for u, s in INDEX.items()}
    sbook = ScenarioBook.of(book, block_rows=int(rng.integers(1, 64)))
    model = MODELS[name]
    ref = scenario_scan(sbook, prices, NOW, model, vols, SETTLE, workers=workers, engine="numpy")
    res = scenario_scan(sbook, prices, NOW, model, vols, SETTLE, workers=workers)
    assert (ref.engine, res.engine) == ("numpy", "numba")
    for f in ("equity", "worst_case", "maintenance_margin"):
        diff = np.abs(getattr(res, f) - getattr(ref, f))
        assert np.all(diff <= ref.error_bound), f
    assert np.allclose(res.error_bound, ref.error_bound, rtol=1e-12, atol=0.0)
    assert np.array_equal(res._x, ref._x) and np.array_equal(res.mark, ref.mark)


# --- models the scan does not cover, and bad input ---------------------------------------------


@pytest.fixture
def sbook() -> ScenarioBook:
    perp = InstrumentId("t/ETH-PERP")
    return ScenarioBook.of(
        Book.from_accounts({AccountId("t/a"): (0, {perp: Position(1, 1)})}, INSTRUMENTS)
    )


@pytest.mark.parametrize(
    ("model", "named"),
    [
        (DERIBIT_BTC_PM, "inverse=True"),
        (dataclasses.replace(LYRA_LIKE, annualised_move_risk=0.075), "annualised_move_risk=0.075"),
        (dataclasses.replace(LYRA_LIKE, min_annualised_move=0.01), "min_annualised_move=0.01"),
        (dataclasses.replace(LYRA_LIKE, max_delta_shock=0.1, m_inc=5e-5), "max_delta_shock=0.1"),
    ],
)
def test_terms_the_scan_does_not_cover_are_refused(
    sbook: ScenarioBook, model: PortfolioMarginModel, named: str
) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(named)):
        scenario_scan(sbook, INDEX, NOW, model, VOL)


def test_a_delta_shock_that_is_always_zero_is_accepted(sbook: ScenarioBook) -> None:
    for model in (
        dataclasses.replace(LYRA_LIKE, max_delta_shock=0.1),  # m_inc = 0
        dataclasses.replace(LYRA_LIKE, m_inc=5e-5, delta_threshold_usd=1e6),  # cap 0
    ):
        assert check_model(model) is model


@dataclasses.dataclass(frozen=True, slots=True)
class _WithContingency(PortfolioMarginModel):
    option_contingency: float = 0.0


def test_a_new_model_setting_is_refused_unless_at_its_default(sbook: ScenarioBook) -> None:
    off = _WithContingency(grid=LYRA_LIKE.grid, inverse=False)
    assert check_model(off) is off
    on = _WithContingency(grid=LYRA_LIKE.grid, inverse=False, option_contingency=0.01)
    with pytest.raises(InvalidArgument, match=re.escape("option_contingency=0.01")):
        scenario_scan(sbook, INDEX, NOW, on, VOL)


def test_bad_input_is_refused_naming_it(sbook: ScenarioBook) -> None:
    with pytest.raises(InvalidArgument, match="model="):
        scenario_scan(sbook, INDEX, NOW, object(), VOL)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=re.escape("vols=-0.1")):
        scenario_scan(sbook, INDEX, NOW, LYRA_LIKE, -0.1)
    vols = np.full(sbook.book.n_instruments, VOL)
    vols[3] = np.nan
    with pytest.raises(InvalidArgument, match=re.escape("vols[3]=nan")):
        scenario_scan(sbook, INDEX, NOW, LYRA_LIKE, vols)
    with pytest.raises(InvalidArgument, match="vols must be"):
        scenario_scan(sbook, INDEX, NOW, LYRA_LIKE, vols[:2])
    with pytest.raises(InvalidArgument, match=re.escape("workers=0")):
        scenario_scan(sbook, INDEX, NOW, LYRA_LIKE, VOL, workers=0)
    with pytest.raises(InvalidArgument, match=re.escape("engine='cuda'")):
        scenario_scan(sbook, INDEX, NOW, LYRA_LIKE, VOL, engine="cuda")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=re.escape("block_rows=0")):
        ScenarioBook.of(sbook.book, block_rows=0)
    with pytest.raises(InvalidArgument, match="book="):
        ScenarioBook.of(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=re.escape("index_prices['ETH']=0")):
        scenario_scan(sbook, {**INDEX, "ETH": 0}, NOW, LYRA_LIKE, VOL)
    res = scenario_scan(sbook, INDEX, NOW, LYRA_LIKE, VOL)
    assert isinstance(res, ScenarioScanResult)
    with pytest.raises(InvalidArgument, match="underlying='DOGE' is not in the book"):
        scenario_rescan(res, {"DOGE": 1})
    with pytest.raises(InvalidArgument, match=re.escape("rel_band=-1")):
        candidates(res, rel_band=-1)
    with pytest.raises(InvalidArgument, match="result="):
        scenario_rescan(object(), {})  # type: ignore[arg-type]


@pytest.mark.parametrize("pnl_offset", [0.0, 0.25])
def test_the_fused_kernel_propagates_overflow_like_numpy(pnl_offset: float) -> None:
    # Sums that overflow (inf, and inf - inf = NaN) come out of both kernels alike.
    n_rows, n_cols, n_s = 40, 6, 5
    rng = np.random.default_rng(3)
    dense = rng.uniform(0.5, 2.0, (n_rows, n_cols)) * (rng.random((n_rows, n_cols)) < 0.5)
    matrix = sp.csr_matrix(dense)
    x = rng.standard_normal((n_cols, n_s + 2))
    x[1, :-1] = [1e308, -1e308, 1e308, 1.0, -1.0, 1.0]  # overflows once doubled
    x[3, 2] = np.nan
    x[:, -1] = np.max(np.abs(x[:, :-1]), axis=1)  # the gross column bounds the others
    grid = ScenarioGrid(LYRA_LIKE.grid.scenarios[:n_s], LYRA_LIKE.grid.vol_curve)
    model = dataclasses.replace(LYRA_LIKE, grid=grid, pnl_offset=pnl_offset)
    w, v, g = np.empty(n_rows), np.empty(n_rows), np.empty(n_rows)
    ssc._run_block(ssc._Block(0, np.arange(n_rows), matrix), x, model, w, v, g)
    assert not np.isfinite(w).all() and np.isfinite(w).any()  # both cases occur
    base, bound_base, slope = rng.standard_normal((3, n_rows))
    ref = (base + v, w, w * model.mm_factor, slope * g + bound_base)
    out = (np.empty(n_rows), np.empty(n_rows), np.empty(n_rows), np.empty(n_rows))
    rows = rng.permutation(n_rows)  # lane entry r is account rows[r]
    permuted = sp.csr_matrix(dense[rows])
    ssc._fused_rows(
        0,
        n_rows,
        permuted.indptr,
        permuted.indices,
        permuted.data,
        x,
        rows,
        n_s,
        pnl_offset,
        model.mm_factor,
        base,
        bound_base,
        slope,
        *out,
    )
    for a, b in zip(out, ref, strict=True):
        assert np.array_equal(a, b, equal_nan=True)


def test_chunked_threads_give_the_single_thread_result() -> None:
    # 9,000 accounts: several row chunks per lane, taken by two threads in any order
    rng = np.random.default_rng(11)
    book = random_book(rng, 9_000, 4)
    sbook = ScenarioBook.of(book)
    vols = rng.uniform(0.2, 1.5, book.n_instruments)
    fields = ("equity", "worst_case", "maintenance_margin", "error_bound")
    one = scenario_scan(sbook, INDEX, NOW, WEIGHTED, vols, SETTLE, workers=1)
    two = scenario_scan(sbook, INDEX, NOW, WEIGHTED, vols, SETTLE, workers=2)
    ref = scenario_scan(sbook, INDEX, NOW, WEIGHTED, vols, SETTLE, workers=2, engine="numpy")
    for f in fields:
        assert np.array_equal(getattr(two, f), getattr(one, f)), f
        diff = np.abs(getattr(two, f) - getattr(ref, f))
        assert np.all(diff <= ref.error_bound), f
    moved = {"ETH": INDEX["ETH"] * 9 // 10, "BTC": INDEX["BTC"] * 11 // 10}
    after = scenario_rescan(two, moved, workers=2)
    full = scenario_scan(sbook, {**INDEX, **moved}, NOW, WEIGHTED, vols, SETTLE, workers=1)
    for f in fields:
        assert np.array_equal(getattr(after, f), getattr(full, f)), f
