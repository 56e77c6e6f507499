"""Fill arithmetic: entries, realised PnL through the settlement account, premiums."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from tests.conftest import USDC

from liqeng.ids import AccountId, InstrumentId
from liqeng.ledger.model import Position
from liqeng.market.trading import fill, roll_position

A, B, S = AccountId("t/a"), AccountId("t/b"), AccountId("t/settlement")
PERP = InstrumentId("t/ETH-PERP")
ETH = 10**6  # size units of one ETH (size_decimals = 6)
USD = 10**6  # price units of one dollar (USDC has 6 decimals)


def test_increase_averages_entry_against_the_holder() -> None:
    # long 1 ETH @ 2000 + 2 ETH @ 2001 -> entry (2000 + 4002) / 3 = 2000.666..., rounded up
    size, entry, pnl = roll_position(Position(ETH, 2000 * USD), 2 * ETH, 2001 * USD, 6)
    assert (size, entry, pnl) == (3 * ETH, 2_000_666_667, 0)
    # the same as a short: rounded down
    size, entry, _ = roll_position(Position(-ETH, 2000 * USD), -2 * ETH, 2001 * USD, 6)
    assert (size, entry) == (-3 * ETH, 2_000_666_666)


def test_reduce_and_flip_realise_pnl() -> None:
    # long 2 ETH @ 2000, sell 0.5 @ 1800: pnl = 0.5 * (1800 - 2000) = -100 USDC
    assert roll_position(Position(2 * ETH, 2000 * USD), -ETH // 2, 1800 * USD, 6) == (
        3 * ETH // 2,
        2000 * USD,
        -100 * USD,
    )
    # long 1 ETH @ 2000, sell 3 @ 2100: close 1 for +100, open short 2 @ 2100
    assert roll_position(Position(ETH, 2000 * USD), -3 * ETH, 2100 * USD, 6) == (
        -2 * ETH,
        2100 * USD,
        100 * USD,
    )


def test_perp_fill_pays_pnl_through_settlement() -> None:
    # a is long 1 @ 2000 and sells it to b at 1900: a realises -100, b opens long @ 1900
    f = fill(
        buyer=B,
        seller=A,
        instrument=PERP,
        size=ETH,
        price=1900 * USD,
        size_decimals=6,
        premium=False,
        quote=USDC,
        buyer_position=None,
        seller_position=Position(ETH, 2000 * USD),
        settlement=S,
    )
    moves = {(p.account, p.amount.units) for p in f.postings}
    assert moves == {(A, -100 * USD), (S, 100 * USD)}
    assert {(c.account, c.size_delta, c.entry_price) for c in f.position_changes} == {
        (B, ETH, 1900 * USD),
        (A, -ETH, 0),
    }


def test_option_premium_rounds_against_both_sides() -> None:
    # 0.333333 ETH of puts at 10.000001 USD: 333333 * 10000001 / 1e6 = 3333330.333..:
    # the buyer pays 3333331, the seller receives 3333330, the unit of dust stays cleared
    f = fill(
        buyer=B,
        seller=A,
        instrument=PERP,
        size=333_333,
        price=10_000_001,
        size_decimals=6,
        premium=True,
        quote=USDC,
        buyer_position=None,
        seller_position=None,
        settlement=S,
    )
    assert {(p.account, p.amount.units) for p in f.postings} == {
        (B, -3_333_331),
        (A, 3_333_330),
        (S, 1),
    }


@given(
    s=st.integers(-(10**9), 10**9).filter(bool),
    e=st.integers(1, 10**11),
    d=st.integers(-(10**9), 10**9).filter(bool),
    p=st.integers(1, 10**11),
)
def test_roll_never_pays_the_holder_more_than_exact(s: int, e: int, d: int, p: int) -> None:
    from fractions import Fraction

    new, _entry, pnl = roll_position(Position(s, e), d, p, 6)
    assert new == s + d
    closed = 0 if (s > 0) == (d > 0) else (-d if abs(d) <= abs(s) else s)
    exact = Fraction(closed * (p - e), 10**6)
    assert exact - 1 < pnl <= exact
