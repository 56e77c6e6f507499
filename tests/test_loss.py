"""Socialised loss and ADL as ledger postings (liquidation.loss; anchors §2.6, §2.7, HL-4)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import open_ledger

from liqeng.errors import InvalidArgument
from liqeng.ids import AccountId, InstrumentId, asset_id
from liqeng.ledger.core import Ledger
from liqeng.ledger.model import (
    AccountKind,
    AccountSpec,
    Position,
    PositionChange,
    Posting,
    Transaction,
)
from liqeng.liquidation.loss import Deleverage, deleverage, socialised_loss
from liqeng.liquidation.waterfall import AdlCandidate, adl_index, adl_ranking
from liqeng.market.instruments import DatedFuture, EuropeanOption, Perpetual
from liqeng.market.trading import Fill, fill
from liqeng.units import Asset

USD = Asset(asset_id("t/USD"), 0)  # whole dollars: the arithmetic below is readable
A, B, C = (AccountId(f"t/{x}") for x in "abc")
ALICE, BOB, CAROL, DAVE = (AccountId(f"t/{x}") for x in ("alice", "bob", "carol", "dave"))
KEEPER = AccountId("t/keeper")
WORLD = AccountId("t/world")
SETTLE = AccountId("t/settlement")
BAD = AccountId("t/bad-debt")
PERP = Perpetual(InstrumentId("t/ETH-PERP"), "ETH", USD, 0)
PERP3 = Perpetual(InstrumentId("t/BTC-PERP"), "BTC", USD, 3)


def net(postings: Iterable[Posting]) -> dict[AccountId, int]:
    out: dict[AccountId, int] = defaultdict(int)
    for p in postings:
        out[p.account] += p.amount.units
    return dict(out)


# ------------------------------------------------------------------ socialised loss


def test_socialised_pro_rata() -> None:
    r = socialised_loss(100, {A: 300, B: 200, C: 0}, BAD, USD)
    # B = 500: a pays 100·300/500 = 60, b 100·200/500 = 40, c nothing
    assert r.haircuts == {A: 60, B: 40, C: 0}
    assert (r.covered, r.uncovered) == (100, 0)
    assert net(r.postings) == {A: -60, B: -40, BAD: 100}  # repays settle's bad-debt entry


def test_socialised_remainder_units() -> None:
    r = socialised_loss(7, {A: 50, B: 30, C: 20}, BAD, USD)
    # 7·50/100 = 3.5, 7·30/100 = 2.1, 7·20/100 = 1.4 -> floors 3+2+1 = 6; the leftover unit
    # goes to the largest remainder (350 mod 100 = 50 for a, 10 for b, 40 for c): a
    assert r.haircuts == {A: 4, B: 2, C: 1} and r.covered == 7
    r = socialised_loss(10, {C: 30, B: 30, A: 30}, BAD, USD)
    # 3.33 each -> 3 each, equal remainders: the leftover goes to the smallest id, t/a
    assert r.haircuts == {A: 4, B: 3, C: 3}


def test_socialised_holders_too_poor() -> None:
    r = socialised_loss(100, {A: 30, B: 20}, BAD, USD)
    # the holders hold 50 < 100: each pays all it has, 50 stays uncovered
    assert r.haircuts == {A: 30, B: 20} and (r.covered, r.uncovered) == (50, 50)
    assert net(r.postings) == {A: -30, B: -20, BAD: 50}


def test_socialised_nothing() -> None:
    assert socialised_loss(0, {A: 5}, BAD, USD).postings == ()
    r = socialised_loss(9, {}, BAD, USD)
    assert (r.covered, r.uncovered, r.postings) == (0, 9, ())
    r = socialised_loss(9, {A: 0}, BAD, USD)
    assert r.haircuts == {A: 0} and r.uncovered == 9 and r.postings == ()


@pytest.mark.parametrize(
    ("loss", "holders", "bad", "match"),
    [
        (-1, {A: 1}, BAD, "uncovered=-1"),
        (1, {A: -5}, BAD, r"balance\[t/a\]=-5"),
        (1, {BAD: 5}, BAD, "cannot be one of the holders"),
        (1, {"nope": 5}, BAD, "holder='nope'"),
        (1, {A: 5}, "bad", "bad_debt='bad'"),
    ],
)
def test_socialised_bad_input(loss: int, holders: dict[str, int], bad: str, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        socialised_loss(loss, holders, bad, USD)  # type: ignore[arg-type]


@given(
    st.integers(0, 10**12),
    st.dictionaries(st.sampled_from([A, B, C, ALICE, BOB]), st.integers(0, 10**12)),
)
def test_socialised_properties(loss: int, holders: dict[AccountId, int]) -> None:
    r = socialised_loss(loss, holders, BAD, USD)
    assert sum(r.haircuts.values()) == r.covered <= loss
    assert r.covered == min(loss, sum(holders.values()))
    assert r.covered + r.uncovered == loss
    assert all(0 <= r.haircuts[a] <= holders[a] for a in holders)
    assert sum(p.amount.units for p in r.postings) == 0


# ------------------------------------------------------------------ ADL: worked examples


def test_adl_worked_example_hyperliquid() -> None:
    # alice: long 10 @ 120, cash 146; mark 100. Closing at mark realises 10·(100−120) = −200,
    # so cash would be −54: loss 54 (no fee when bankrupt, no fund).
    # Opposite shorts (profitable: entry > mark):
    #   carol short 6 @ 104, account value 120: index (104/100)·(6·100/120) = 1.04·5 = 5.2
    #   bob   short 3 @ 130, account value 1000: index (130/100)·(3·100/1000) = 1.3·0.3 = 0.39
    # Carol ranks first (more leveraged) although bob's profit per unit is larger (30 vs 4).
    cands = [(BOB, Position(-3, 130), 1000), (CAROL, Position(-6, 104), 120)]
    idx = {a: adl_index(AdlCandidate(a, p.size, p.entry_price, 100, v)) for a, p, v in cands}
    assert idx == {CAROL: Fraction(52, 10), BOB: Fraction(39, 100)}
    d = deleverage(54, PERP, (ALICE, Position(10, 120)), cands, 100, 0, SETTLE, USD)
    # slices: carol 6 then bob 3 (9 of alice's 10); profit per unit π: carol 4, bob 30.
    # cover(Δ) = 6·min(Δ, 4) + 3·min(Δ, 30): Δ = 9 gives 24 + 27 = 51 < 54, Δ = 10 gives 54.
    # carol closes at her entry 104 (4 < Δ) and gives up all 6·4 = 24 of her profit;
    # bob closes at the bankruptcy price 100 + 10 = 110 and gives up 3·10 = 30 of his 90.
    assert [(s.account, s.size, s.price, s.haircut, s.profit) for s in d.slices] == [
        (CAROL, 6, 104, 24, 24),
        (BOB, 3, 110, 30, 90),
    ]
    assert (d.covered, d.uncovered, d.closed, d.rate) == (54, 0, 9, 10)
    assert d.remaining == Position(1, 120)  # for the keeper, at mark
    # alice: 6·(104−120) + 3·(110−120) = −96 − 30 = −126; the keeper's 1·(100−120) = −20:
    # −146 in all = −200 + 54. Carol realises 24 − 24 = 0, bob 90 − 30 = 60.
    # Carol's fill at her entry realises 0: no posting at all. Settlement: +96 − 60 + 30.
    assert net(d.postings) == {ALICE: -126, BOB: 60, SETTLE: 66}


def _ledger(tmp_path: Path, perp: Perpetual, cash: dict[AccountId, int]) -> Ledger:
    led = open_ledger(tmp_path / "adl.sqlite")
    led.register_asset(USD)
    for acc, kind in [
        (WORLD, AccountKind.EXTERNAL),
        (SETTLE, AccountKind.SETTLEMENT),
        (BAD, AccountKind.BAD_DEBT),
        *((a, AccountKind.USER) for a in (ALICE, BOB, CAROL, DAVE, KEEPER)),
    ]:
        led.open_account(AccountSpec(acc, kind))
    led.list_instrument(perp.spec())
    for acc, units in cash.items():
        led.apply(
            Transaction(
                f"dep-{acc}",
                "deposit",
                (Posting(WORLD, USD.units(-units)), Posting(acc, USD.units(units))),
            )
        )
    return led


def _open(led: Ledger, perp: Perpetual, positions: dict[AccountId, Position]) -> None:
    changes = tuple(PositionChange(a, perp.id, p.size, p.entry_price) for a, p in positions.items())
    led.apply(Transaction("open", "trade", (), changes))


def _keeper_close(d: Deleverage, perp: Perpetual, mark: int) -> Fill:
    """The caller's part: close what ADL left of alice to the keeper at mark, one fill."""
    r = d.remaining
    if r is None:
        return Fill((), ())
    buyer, seller = (KEEPER, ALICE) if r.size > 0 else (ALICE, KEEPER)
    f = fill(
        buyer=buyer,
        seller=seller,
        instrument=perp.id,
        size=abs(r.size),
        price=mark,
        size_decimals=perp.size_decimals,
        premium=False,
        quote=USD,
        buyer_position=None if buyer == KEEPER else r,
        seller_position=None if seller == KEEPER else r,
        settlement=SETTLE,
    )
    return f


def _apply(
    led: Ledger, d: Deleverage, perp: Perpetual, mark: int, extra: tuple[Posting, ...]
) -> Transaction:
    kc = _keeper_close(d, perp, mark)
    tx = Transaction(
        "liq",
        "liquidation",
        d.postings + kc.postings + extra,
        d.position_changes + kc.position_changes,
        {"adl_covered": str(d.covered)},
    )
    led.apply(tx)
    return tx


def _baseline_cash(pos: Position, perp: Perpetual, mark: int) -> int:
    """What alice's cash changes by when the keeper takes all of ``pos`` at mark."""
    buyer, seller = (KEEPER, ALICE) if pos.size > 0 else (ALICE, KEEPER)
    f = fill(
        buyer=buyer,
        seller=seller,
        instrument=perp.id,
        size=abs(pos.size),
        price=mark,
        size_decimals=perp.size_decimals,
        premium=False,
        quote=USD,
        buyer_position=None if buyer == KEEPER else pos,
        seller_position=None if seller == KEEPER else pos,
        settlement=SETTLE,
    )
    return net(f.postings).get(ALICE, 0)


def _totals(led: Ledger) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for (_, asset), units in led.balances().items():
        out[asset] += units
    return dict(out)


def _net_positions(led: Ledger) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for (_, iid), pos in led.positions().items():
        out[iid] += pos.size
    return dict(out)


def test_adl_worked_example_on_the_ledger(tmp_path: Path) -> None:
    cash = {ALICE: 146, BOB: 1000, CAROL: 120}
    led = _ledger(tmp_path, PERP, cash)
    alice = Position(10, 120)
    # dave's short 1 @ 100 only makes the book net to zero (unprofitable: not a candidate)
    _open(led, PERP, {ALICE: alice, BOB: Position(-3, 130), CAROL: Position(-6, 104),
                      DAVE: Position(-1, 100)})  # fmt: skip
    baseline = cash[ALICE] + _baseline_cash(alice, PERP, 100)
    assert baseline == -54  # the shortfall: the loss ADL must cover
    # what the engine gathers: every other holder of the instrument, with its account value
    # (here its cash: the toy has no other positions)
    cands = [
        (a, held[PERP.id], led.balance_units(a, USD.id))
        for a, held in sorted(led.positions_by_account().items())
        if a != ALICE and PERP.id in held
    ]
    d = deleverage(54, PERP, (ALICE, alice), cands, 100, 0, SETTLE, USD)
    before = _totals(led)
    _apply(led, d, PERP, 100, ())
    led.check_invariants()
    assert _totals(led) == before  # conservation: every asset sums as before
    assert _net_positions(led) == {PERP.id: 0}
    assert led.balance_units(ALICE, USD.id) == baseline + d.covered == 0  # shortfall gone
    assert led.balance_units(CAROL, USD.id) == 120  # her 24 of profit all went to alice
    assert led.balance_units(BOB, USD.id) == 1000 + 90 - 30
    assert led.position(ALICE, PERP.id) is None
    assert led.position(BOB, PERP.id) is None and led.position(CAROL, PERP.id) is None
    assert led.position(KEEPER, PERP.id) == Position(1, 100)


def test_adl_short_with_uncovered_rest_and_rounding_on_the_ledger(tmp_path: Path) -> None:
    # size_decimals 3. alice short 2.500 @ 801, cash 198; mark 1000: closing at mark
    # realises floor(−2500·(1000−801)/1000) = floor(−497.5) = −498 -> cash −300: loss 300.
    # Longs: carol 0.700 @ 990 (π = 10), bob 1.500 @ 970 (π = 30), dave 0.300 @ 1050 (a loss).
    # Hyperliquid: carol (1000/990)·(700/10) = 70.7, bob (1000/970)·(1500/50) = 30.9; dave out.
    # Their whole profit: 0.7·10 = 7 and 1.5·30 = 45 -> 52 < 300, so both close at their
    # entries (Δ = max π = 30) and 248 stays uncovered (bad debt).
    cash = {ALICE: 198, BOB: 50, CAROL: 10, DAVE: 100}
    led = _ledger(tmp_path, PERP3, cash)
    alice = Position(-2500, 801)
    _open(led, PERP3, {ALICE: alice, BOB: Position(1500, 970), CAROL: Position(700, 990),
                       DAVE: Position(300, 1050)})  # fmt: skip
    baseline = cash[ALICE] + _baseline_cash(alice, PERP3, 1000)
    assert baseline == -300
    cands = [
        (BOB, Position(1500, 970), 50),
        (CAROL, Position(700, 990), 10),
        (DAVE, Position(300, 1050), 100),
    ]
    d = deleverage(300, PERP3, (ALICE, alice), cands, 1000, 3, SETTLE, USD)
    assert [(s.account, s.size, s.price, s.haircut) for s in d.slices] == [
        (CAROL, -700, 990, 7),
        (BOB, -1500, 970, 45),
    ]
    assert (d.covered, d.uncovered, d.closed) == (52, 248, 2200)
    assert d.remaining == Position(-300, 801)
    # alice's fills: floor(−0.7·189) = floor(−132.3) = −133, floor(−1.5·169) = floor(−253.5)
    # = −254, and the keeper's floor(−0.3·199) = floor(−59.7) = −60: −447 in all, one unit
    # short of −498 + 52 = −446 (three floors lost more than one): a +1 true-up from
    # settlement makes alice's gain exactly `covered`.
    assert net(d.postings)[ALICE] == -133 - 254 + 1
    # settle() books the uncovered rest: alice credited, the bad-debt account debited
    book = (Posting(ALICE, USD.units(248)), Posting(BAD, USD.units(-248)))
    before = _totals(led)
    _apply(led, d, PERP3, 1000, book)
    led.check_invariants()
    assert _totals(led) == before
    assert _net_positions(led) == {PERP3.id: 0}
    assert led.balance_units(ALICE, USD.id) == 0
    assert baseline + d.covered == -248  # the shortfall shrank by exactly covered
    assert led.balance_units(BAD, USD.id) == -248
    assert led.balance_units(CAROL, USD.id) == 10 and led.balance_units(BOB, USD.id) == 50
    assert led.position(DAVE, PERP3.id) == Position(300, 1050)
    assert led.position(KEEPER, PERP3.id) == Position(-300, 1000)  # it sold to alice


def test_adl_ranking_decides_who_pays() -> None:
    # alice long 5 @ 120, cash 46, mark 100: −100 -> loss 54. Same shorts as above.
    cands = [(BOB, Position(-3, 130), 1000), (CAROL, Position(-6, 104), 120)]
    hl = deleverage(54, PERP, (ALICE, Position(5, 120)), cands, 100, 0, SETTLE, USD)
    # Hyperliquid: carol first takes all 5 of alice: at most 5·4 = 20; 34 uncovered
    assert [(s.account, s.haircut) for s in hl.slices] == [(CAROL, 20)]
    assert (hl.covered, hl.uncovered, hl.remaining) == (20, 34, None)
    dy = deleverage(54, PERP, (ALICE, Position(5, 120)), cands, 100, 0, SETTLE, USD, "dydx")
    # dYdX, start 0 in id order: bob 3 then carol 2. 3·min(Δ,30) + 2·min(Δ,4) >= 54 first at
    # Δ = 16 (48 + 8 = 56): bob gives 48 at 116; carol the last 6: q' = ceil(6/4) = 2 at
    # δ' = ceil(6/2) = 3, price 103
    assert [(s.account, s.size, s.price, s.haircut) for s in dy.slices] == [
        (BOB, 3, 116, 48),
        (CAROL, 2, 103, 6),
    ]
    assert (dy.covered, dy.uncovered, dy.rate) == (54, 0, 16)
    dy1 = deleverage(54, PERP, (ALICE, Position(5, 120)), cands, 100, 0, SETTLE, USD, "dydx", 1)
    assert [s.account for s in dy1.slices] == [CAROL]  # rotated start: carol first


def test_adl_closes_only_as_far_as_needed() -> None:
    # alice long 10 @ 101, mark 100, loss 3; bob short 100 @ 200 (π = 100).
    # Δ = 1 already covers with 3 units: the rest (7) goes to the keeper at mark.
    d = deleverage(
        3, PERP, (ALICE, Position(10, 101)), [(BOB, Position(-100, 200), 5)], 100, 0, SETTLE, USD
    )
    assert [(s.size, s.price, s.haircut) for s in d.slices] == [(3, 101, 3)]
    assert d.remaining == Position(7, 101) and d.covered == 3
    none = deleverage(0, PERP, (ALICE, Position(10, 101)), [], 100, 0, SETTLE, USD)
    assert (none.slices, none.postings, none.remaining) == ((), (), Position(10, 101))


def test_adl_bad_input() -> None:
    usd = USD
    lq = (ALICE, Position(10, 120))
    ok = [(BOB, Position(-3, 130), 1000)]
    opt = EuropeanOption(InstrumentId("t/ETH-C"), "ETH", usd, 0, 100, 10, True)
    fut = DatedFuture(InstrumentId("t/ETH-FUT"), "ETH", Asset(asset_id("t/EUR"), 0), 0, 10)
    cases: list[tuple[dict[str, object], str]] = [
        (dict(loss=-1), "loss=-1"),
        (dict(instrument=opt), "t/ETH-C.*option"),
        (dict(instrument=fut), "quote=.*differs"),
        (dict(size_decimals=3), "size_decimals=3 differs"),
        (dict(candidates=[(CAROL, Position(4, 90), 10)]), "same side"),
        (dict(candidates=[(ALICE, Position(-4, 190), 10)]), "liquidated or the settlement"),
        (dict(candidates=ok + ok), "appears twice"),
        (dict(candidates=[(BOB, Position(0, 1), 1)]), "must be non-zero"),
        (dict(liquidated=(ALICE, Position(0, 1))), "non-zero Position"),
        (dict(ranking="random"), "ranking='random'"),
        (dict(mark=0), "mark=0"),
    ]
    for over, match in cases:
        kw: dict[str, object] = dict(
            loss=5,
            instrument=PERP,
            liquidated=lq,
            candidates=ok,
            mark=100,
            size_decimals=0,
            settlement=SETTLE,
            quote=usd,
        )
        kw.update(over)
        with pytest.raises(InvalidArgument, match=match):
            deleverage(**kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ ADL: properties

_NAMES = [AccountId(f"t/c{i}") for i in range(6)]


@st.composite
def _scenario(draw: st.DrawFn) -> tuple[object, ...]:
    sd = draw(st.integers(0, 4))
    side = draw(st.sampled_from([1, -1]))
    mark = draw(st.integers(1, 10**6))
    size = side * draw(st.integers(1, 10**6))
    entry = draw(st.integers(1, 2 * 10**6))
    n = draw(st.integers(0, 5))
    cands = [
        (
            _NAMES[i],
            Position(-side * draw(st.integers(1, 10**6)), draw(st.integers(1, 2 * 10**6))),
            draw(st.integers(-10, 10**9)),
        )
        for i in range(n)
    ]
    loss = draw(st.integers(0, 10**7))
    ranking = draw(st.sampled_from(["hyperliquid", "dydx"]))
    start = draw(st.integers(0, 10))
    return sd, mark, Position(size, entry), cands, loss, ranking, start


@settings(max_examples=300, deadline=None)
@given(_scenario())
def test_adl_properties(sc: tuple[object, ...]) -> None:
    sd, mark, pos, cands, loss, ranking, start = sc
    assert isinstance(sd, int) and isinstance(mark, int) and isinstance(pos, Position)
    assert isinstance(cands, list) and isinstance(loss, int) and isinstance(ranking, str)
    assert isinstance(start, int)
    perp = Perpetual(InstrumentId("t/X-PERP"), "X", USD, sd)
    d = deleverage(loss, perp, (ALICE, pos), cands, mark, sd, SETTLE, USD, ranking, start)
    unit = 10**sd
    held = {a: p for a, p, _ in cands}
    assert sum(s.haircut for s in d.slices) == d.covered <= loss
    assert d.covered + d.uncovered == loss
    for s in d.slices:
        p = held[s.account]
        assert s.size * p.size < 0 and abs(s.size) <= abs(p.size)  # reduces, never flips
        profit = abs(s.size) * (abs(mark - p.entry_price)) // unit
        assert (mark - p.entry_price) * p.size > 0  # only profitable positions pay
        assert 1 <= s.haircut <= s.profit == profit  # never more than its profit
        assert min(mark, p.entry_price) <= s.price <= max(mark, p.entry_price)
    if d.uncovered:
        assert all(s.haircut == s.profit for s in d.slices)  # everyone closed at its entry
    # cash: counterparties realise exactly profit − haircut; alice, with the keeper's close
    # of the rest at mark, exactly what closing all at mark gives plus covered
    got = net(d.postings)
    assert sum(got.values()) == 0
    for s in d.slices:
        assert got.get(s.account, 0) == s.profit - s.haircut
    r0 = pos.size * (mark - pos.entry_price) // unit
    rest = d.remaining.size * (mark - pos.entry_price) // unit if d.remaining else 0
    assert got.get(ALICE, 0) + rest == r0 + d.covered
    # positions: net zero, alice closed by d.closed, the rest left to the keeper
    moved: dict[AccountId, int] = defaultdict(int)
    for c in d.position_changes:
        moved[c.account] += c.size_delta
    assert sum(moved.values()) == 0
    assert moved.get(ALICE, 0) == -pos.size // abs(pos.size) * d.closed
    left = pos.size + moved.get(ALICE, 0)
    assert (d.remaining.size if d.remaining else 0) == left
    # coverage: min(loss, the profit of the slices the ranking reaches), computed afresh
    if ranking == "hyperliquid":
        side = 1 if pos.size > 0 else -1
        pool = [AdlCandidate(a, p.size, p.entry_price, mark, v) for a, p, v in cands]
        cap, taken = 0, 0
        for cand in adl_ranking(pool, side, sd):
            q = min(abs(cand.size), abs(pos.size) - taken)
            if q <= 0:
                break
            if q * abs(mark - cand.entry_price) // unit:
                cap += q * abs(mark - cand.entry_price) // unit
                taken += q
        assert d.covered == min(loss, cap)
