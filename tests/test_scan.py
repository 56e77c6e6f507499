"""The screening scan against the exact scalar path (numpy screens, exact math decides).

Units: USDC has 6 decimals, so a price of 1800 USDC per ETH is ``1_800_000_000``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liqeng.errors import InvalidArgument
from liqeng.ids import AccountId, InstrumentId, account_id, asset_id, instrument_id
from liqeng.ledger.model import Position
from liqeng.market import DatedFuture, EuropeanOption, Instrument, Perpetual
from liqeng.risk.margin import AccountRisk, MarginParams, account_risk
from liqeng.risk.scan import Book, ScanResult, candidates, rescan, scan
from liqeng.units import Asset

USDC = Asset(asset_id("eth/USDC"), 6)
DAY = 24 * 3600
NOW = 1_000 * DAY
PARAMS = MarginParams()
INDEX = {"BTC": 60_000_000_000, "ETH": 3_000_000_000, "SOL": 150_000_000}

Accounts = dict[AccountId, tuple[int, dict[InstrumentId, Position]]]


def _instruments() -> dict[InstrumentId, Instrument]:
    out: list[Instrument] = []
    for u, s in INDEX.items():
        out.append(Perpetual(instrument_id(f"t/{u}-PERP"), u, USDC, 3 if u != "SOL" else 0))
        for j in (0, 2):  # one expired, one live
            out.append(DatedFuture(instrument_id(f"t/{u}-F{j}"), u, USDC, 3, NOW + (j - 1) * DAY))
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
    if isinstance(i, (DatedFuture, EuropeanOption)) and i.expiry_ts <= NOW
}  # settled at 97% of the unshocked index, away from the scanned index
SETTLE_ARRAY = np.array([float(SETTLEMENTS.get(i, math.nan)) for i in IIDS])


def exact(
    accounts: Accounts, prices: Mapping[str, int], params: MarginParams = PARAMS
) -> dict[AccountId, AccountRisk]:
    return {
        a: account_risk(cash, pos, INSTRUMENTS, prices, NOW, params, settlements=SETTLEMENTS)
        for a, (cash, pos) in accounts.items()
    }


def gross_notional(iid: InstrumentId, position: Position, prices: Mapping[str, int]) -> float:
    """``|q|·(2·index + strike + entry)``: what the float error is proportional to."""
    inst = INSTRUMENTS[iid]
    strike = inst.strike if isinstance(inst, EuropeanOption) else 0
    q = abs(position.size) / 10**inst.size_decimals
    return float(q) * (2 * prices[inst.underlying] + strike + position.entry_price)


@st.composite
def portfolios(draw: st.DrawFn) -> tuple[Accounts, dict[str, int]]:
    """Up to 8 accounts of up to 5 positions, longs and shorts; cash placed so that
    equity lands within a few units of the requirement (the hard cases for floats)."""
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
        aid = account_id(f"t/a{a}")
        risk = account_risk(0, pos, INSTRUMENTS, prices, NOW, PARAMS, settlements=SETTLEMENTS)
        offset = draw(st.one_of(st.integers(-3, 3), st.integers(-(10**12), 10**12)))
        accounts[aid] = (risk.maintenance_margin - risk.equity + offset, pos)
    return accounts, prices


@settings(max_examples=300, deadline=None)
@given(portfolios())
def test_scan_screens_in_every_liquidatable_account(
    case: tuple[Accounts, dict[str, int]],
) -> None:
    accounts, prices = case
    book = Book.from_accounts(accounts, INSTRUMENTS)
    res = scan(book, prices, NOW, PARAMS, settlements=SETTLE_ARRAY)
    truth = exact(accounts, prices)
    assert book.account_ids is not None
    ids = book.account_ids

    # float values lie within the error bound of the exact integers, and the bound is tiny
    for a, aid in enumerate(ids):
        r = truth[aid]
        assert abs(res.equity[a] - r.equity) <= res.error_bound[a]
        assert abs(res.maintenance_margin[a] - r.maintenance_margin) <= res.error_bound[a]
        cash, pos = accounts[aid]
        gross = abs(cash) + sum(gross_notional(iid, p, prices) for iid, p in pos.items())
        assert res.error_bound[a] <= 2 * len(pos) + 1 + 1e-13 * gross

    screened = candidates(res)
    liquidatable = {aid for aid, r in truth.items() if r.is_liquidatable}
    confirmed = {ids[a] for a in screened if truth[ids[a]].is_liquidatable}
    assert confirmed == liquidatable  # no liquidatable account escapes the screen
    # ordered by (health, account index)
    keys = [(float(res.health[a]), int(a)) for a in screened]
    assert keys == sorted(keys)


@settings(max_examples=100, deadline=None)
@given(portfolios(), st.sets(st.sampled_from(sorted(INDEX)), min_size=1), st.floats(0.5, 2.0))
def test_incremental_rescan_equals_a_full_scan(
    case: tuple[Accounts, dict[str, int]], moved: set[str], shock: float
) -> None:
    accounts, prices = case
    book = Book.from_accounts(accounts, INSTRUMENTS)
    before = scan(book, prices, NOW, PARAMS, settlements=SETTLE_ARRAY)
    new = {u: max(1, int(prices[u] * shock)) for u in moved}
    after = rescan(book, before, new)
    full = scan(book, {**prices, **new}, NOW, PARAMS, settlements=SETTLE_ARRAY)
    for name in ("equity", "maintenance_margin", "error_bound", "index", "mark"):
        assert np.array_equal(getattr(after, name), getattr(full, name)), name
    assert np.array_equal(before.index, scan(book, prices, NOW, PARAMS).index)  # untouched


def test_rescan_touches_only_exposed_accounts() -> None:
    eth_perp, btc_perp = InstrumentId("t/ETH-PERP"), InstrumentId("t/BTC-PERP")
    accounts: Accounts = {
        AccountId("t/eth"): (10**9, {eth_perp: Position(1_000, 3_000_000_000)}),
        AccountId("t/btc"): (10**10, {btc_perp: Position(-1_000, 60_000_000_000)}),
    }
    book = Book.from_accounts(accounts, INSTRUMENTS)
    assert list(book.exposed_accounts("ETH")) == [1]  # sorted ids: t/btc=0, t/eth=1
    res = scan(book, INDEX, NOW, PARAMS)
    # ETH perp long 1 ETH at entry 3000: value 0; MM = 5% · 3000 USDC = 150 USDC
    assert res.equity[1] == 10**9 and res.maintenance_margin[1] == 150_000_000
    moved = rescan(book, res, {"ETH": 2_000_000_000})
    assert moved.equity[1] == 10**9 - 1_000_000_000  # lost 1000 USDC
    assert moved.equity[0] == res.equity[0]
    assert list(candidates(moved)) == [1]


def test_a_known_portfolio_matches_the_exact_path() -> None:
    c = InstrumentId("t/ETH-C-3")  # strike 1.1 · 3000 = 3300, 14 days left
    accounts: Accounts = {
        AccountId("t/writer"): (50_000_000, {c: Position(-1_000_000, 0)}),  # sd=2: -10000 ETH
        AccountId("t/buyer"): (0, {c: Position(1_000_000, 0)}),
        AccountId("t/empty"): (-1, {}),
    }
    book = Book.from_accounts(accounts, INSTRUMENTS)
    res = scan(book, INDEX, NOW, PARAMS)
    truth = exact(accounts, INDEX)
    assert book.account_ids is not None
    for a, aid in enumerate(book.account_ids):
        assert res.equity[a] == pytest.approx(truth[aid].equity, rel=1e-12, abs=2)
        assert res.maintenance_margin[a] == pytest.approx(
            truth[aid].maintenance_margin, rel=1e-12, abs=2
        )
    liq = {book.account_ids[a] for a in candidates(res)}
    assert liq == {aid for aid, r in truth.items() if r.is_liquidatable}
    assert AccountId("t/empty") in liq  # no requirement, negative equity


def test_bands_widen_the_screen() -> None:
    perp = InstrumentId("t/ETH-PERP")
    # 1 ETH long: MM 150 USDC; cash 160 USDC: healthy, 10 USDC (6.7%) above the requirement
    accounts: Accounts = {AccountId("t/a"): (160_000_000, {perp: Position(1_000, 3_000_000_000)})}
    res = scan(Book.from_accounts(accounts, INSTRUMENTS), INDEX, NOW, PARAMS)
    assert list(candidates(res)) == []
    assert list(candidates(res, rel_band=0.1)) == [0]
    assert list(candidates(res, abs_band=10_000_001.0)) == [0]


def test_book_from_arrays_matches_book_from_accounts() -> None:
    accounts: Accounts = {
        AccountId("t/a"): (7, {InstrumentId("t/BTC-P-1"): Position(-5, 0)}),
        AccountId("t/b"): (9, {InstrumentId("t/SOL-PERP"): Position(3, 100_000_000)}),
    }
    ref = Book.from_accounts(accounts, INSTRUMENTS)
    book = Book.from_arrays(
        underlyings=ref.underlyings,
        is_option=ref.is_option,
        strike=ref.strike,
        expiry_ts=ref.expiry_ts,
        is_call=ref.is_call,
        size_decimals=np.log10(ref.scale).round().astype(np.int64),
        underlying=ref.underlying,
        account=ref.account[::-1],  # any order
        instrument=ref.instrument[::-1],
        size=ref.size[::-1],
        entry_price=ref.entry_price[::-1],
        cash=ref.cash,
    )
    a, b = scan(ref, INDEX, NOW, PARAMS), scan(book, INDEX, NOW, PARAMS)
    assert np.array_equal(a.equity, b.equity)
    assert np.array_equal(a.maintenance_margin, b.maintenance_margin)


# --- bad input -----------------------------------------------------------------------------


@pytest.fixture
def book() -> Book:
    perp = InstrumentId("t/ETH-PERP")
    return Book.from_accounts({AccountId("t/a"): (0, {perp: Position(1, 1)})}, INSTRUMENTS)


@pytest.mark.parametrize(
    ("price", "shown"),
    [(float("nan"), "nan"), (0, "0"), (-5, "-5"), (-1.5, "-1.5"), (float("inf"), "inf")],
)
def test_bad_index_price_is_refused_naming_it(book: Book, price: float, shown: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(f"index_prices['ETH']={shown}")):
        scan(book, {**INDEX, "ETH": price}, NOW, PARAMS)
    res = scan(book, INDEX, NOW, PARAMS)
    with pytest.raises(InvalidArgument, match=re.escape(f"index_prices['ETH']={shown}")):
        rescan(book, res, {"ETH": price})


def test_unknown_or_missing_underlying_is_refused(book: Book) -> None:
    with pytest.raises(InvalidArgument, match="underlying='DOGE' is not in the book"):
        scan(book, {**INDEX, "DOGE": 1}, NOW, PARAMS)
    with pytest.raises(InvalidArgument, match="no index price for underlying='SOL'"):
        scan(book, {"BTC": 1, "ETH": 1}, NOW, PARAMS)
    res = scan(book, INDEX, NOW, PARAMS)
    with pytest.raises(InvalidArgument, match="underlying='DOGE' is not in the book"):
        rescan(book, res, {"DOGE": 1})
    with pytest.raises(InvalidArgument, match="underlying='DOGE' is not in the book"):
        book.exposed_accounts("DOGE")


def test_negative_vol_is_refused_naming_it(book: Book) -> None:
    with pytest.raises(InvalidArgument, match=re.escape("vol=-0.2")):
        MarginParams(vol=-0.2)
    vols = np.full(book.n_instruments, 0.8)
    vols[4] = -0.2
    with pytest.raises(InvalidArgument, match=re.escape("vols[4]=-0.2")):
        scan(book, INDEX, NOW, PARAMS, vols=vols)
    vols[4] = np.nan
    with pytest.raises(InvalidArgument, match=re.escape("vols[4]=nan")):
        scan(book, INDEX, NOW, PARAMS, vols=vols)


def test_bad_book_input_is_refused() -> None:
    ghost = InstrumentId("t/GHOST")
    with pytest.raises(InvalidArgument, match="instrument='t/GHOST' has a position"):
        Book.from_accounts({AccountId("t/a"): (0, {ghost: Position(1, 1)})}, INSTRUMENTS)
    perp = InstrumentId("t/ETH-PERP")
    with pytest.raises(InvalidArgument, match=re.escape("cash of t/a=1.5")):
        Book.from_accounts({AccountId("t/a"): (1.5, {perp: Position(1, 1)})}, INSTRUMENTS)  # type: ignore[dict-item]
    ok = dict(
        underlyings=["ETH"],
        is_option=np.array([False]),
        strike=np.zeros(1),
        expiry_ts=np.zeros(1, np.int64),
        is_call=np.array([False]),
        size_decimals=np.zeros(1, np.int64),
        underlying=np.zeros(1, np.int64),
        account=np.array([0, 0]),
        instrument=np.array([0, 0]),
        size=np.array([1.0, 2.0]),
        entry_price=np.array([1.0, 1.0]),
        cash=np.zeros(1),
    )
    with pytest.raises(InvalidArgument, match="two positions in instrument 0"):
        Book.from_arrays(**ok)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=re.escape("size[1]=nan must be finite")):
        Book.from_arrays(**{**ok, "size": np.array([1.0, np.nan])})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=re.escape("instrument[0]=3 is outside")):
        Book.from_arrays(**{**ok, "instrument": np.array([3, 0])})  # type: ignore[arg-type]


def test_scan_result_is_a_scan_result(book: Book) -> None:
    res = scan(book, np.array([float(INDEX[u]) for u in book.underlyings]), NOW, PARAMS)
    assert isinstance(res, ScanResult)
    assert res.equity.dtype == np.float64 and res.equity.shape == (1,)
