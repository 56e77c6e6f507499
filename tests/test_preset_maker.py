"""The Maker preset: every Maker vector of anchors.md §3.1 (MKR-A1..A7) and the
``makerdao/dss`` ``src/test/clip.t.sol`` scenarios built on its ``setUp`` (MKR-C1..),
through ``liqeng.presets.maker``'s Maker API, exact; plus bad input."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import pytest

from liqeng.errors import InvalidArgument, Refused
from liqeng.liquidation.curves import (
    Curve,
    ExponentialDecrease,
    LinearDecrease,
    StairstepExponentialDecrease,
)
from liqeng.liquidation.dutch_auction import DutchAuction
from liqeng.presets.maker import (
    ETH_A,
    PRESET,
    RAD,
    RAY,
    WAD,
    Clipper,
    ClipperMom,
    ClipperParams,
    Dog,
    Osm,
    Spotter,
    Vat,
    Vow,
    bark_size,
    maker_mechanism,
    take_size,
)

T0 = 604_411_200  # clip.t.sol startTime
GOLD = "gold"
ME, ALI, BOB, GOD = "me", "ali", "bob", "god"


@dataclass
class World:
    vat: Vat
    spot: Spotter
    pip: Osm
    vow: Vow
    dog: Dog
    clip: Clipper

    def gem(self, usr: str) -> int:
        return self.vat.gem.get((GOLD, usr), 0)

    def dai(self, usr: str) -> int:
        return self.vat.dai.get(usr, 0)


def set_up() -> World:
    """clip.t.sol ``setUp``: a 40 gold / 100 DAI vault opened at price 5 (mat 2), price
    then 4 (spot 2: unsafe); chop 1.1, dust 20 DAI, Hole = hole = 1000 DAI; ali and bob
    hold 1000 DAI each."""
    vat = Vat()
    vat.init(GOLD)
    spot = Spotter(vat)
    pip = Osm(5 * WAD)
    spot.file(GOLD, pip, 2 * RAY)
    spot.poke(GOLD)
    vow = Vow(vat)
    dog = Dog(vat, vow)
    dog.file("Hole", 1000 * RAD)
    dog.file_ilk(GOLD, "hole", 1000 * RAD)
    dog.file_ilk(GOLD, "dust", 20 * RAD)
    dog.file_ilk(GOLD, "chop", 11 * WAD // 10)
    clip = Clipper(vat, spot, dog, GOLD)
    clip.upchost()
    dog.file_ilk(GOLD, "clip", clip)
    vat.slip(GOLD, ME, 1000 * WAD)
    vat.frob(GOLD, ME, 40 * WAD, 100 * WAD)
    assert vat.gem[(GOLD, ME)] == 960 * WAD and vat.dai[ME] == 100 * RAD
    pip.set(4 * WAD)
    spot.poke(GOLD)
    for usr in (ALI, BOB):
        vat.suck(GOD, usr, 1000 * RAD)
    return World(vat, spot, pip, vow, dog, clip)


def take_setup() -> World:
    """clip.t.sol ``takeSetup``: stair-step cut 0.99 every 1 s, buf 1.25, cusp 0.3, tail
    3600; bark → tab 110 DAI, lot 40, top 5."""
    w = set_up()
    w.clip.file("calc", StairstepExponentialDecrease(99 * RAY // 100, 1))
    w.clip.file("buf", 125 * RAY // 100)
    w.clip.file("cusp", 3 * RAY // 10)
    w.clip.file("tail", 3600)
    b = w.dog.bark(GOLD, ME, "keeper", T0)
    assert (b.dart, b.dink, b.tab, b.id) == (100 * WAD, 40 * WAD, 110 * RAD, 1)
    s = w.clip.sale(1)
    assert (s.pos, s.tab, s.lot, s.usr, s.tic, s.top) == (0, 110 * RAD, 40 * WAD, ME, T0, 5 * RAY)
    assert w.vat.urns[(GOLD, ME)].ink == 0 and w.vat.urns[(GOLD, ME)].art == 0
    return w


def reset_setup(tau: int) -> World:
    """clip.t.sol ``auctionResetSetup(tau)``: LinearDecrease(tau), buf 1.25, cusp 0.5,
    tail 3600, then bark."""
    w = set_up()
    w.clip.file("calc", LinearDecrease(tau))
    w.clip.file("buf", 125 * RAY // 100)
    w.clip.file("cusp", RAY // 2)
    w.clip.file("tail", 3600)
    w.dog.bark(GOLD, ME, "keeper", T0)
    return w


def auction_at(
    curve: Curve, top_wad: int, buf: int = RAY, cusp: int = 0, tail: int = 10**9
) -> World:
    """The setUp vault barked at T0 with the feed at ``top_wad``: ``top = rmul(feed, buf)``."""
    w = set_up()
    w.clip.file("calc", curve)
    w.clip.file("buf", buf)
    w.clip.file("cusp", cusp)
    w.clip.file("tail", tail)
    w.pip.set(top_wad)
    assert w.dog.bark(GOLD, ME, "keeper", T0).id == 1  # spot not poked: still unsafe
    return w


def price(w: World, dur: int) -> int:
    return w.clip.status(1, T0 + dur).price


def digits(value: int, text: str) -> None:
    """``value`` (RAY) equals the decimal ``text`` to the digits ``text`` gives (rounded)."""
    d = Decimal(text)
    places = -d.as_tuple().exponent  # type: ignore[operator]
    assert round(Fraction(value, RAY), places) == Fraction(d), (value, text)


# --- anchors.md §3.1 ------------------------------------------------------------------


def mkr_a1() -> None:
    # abaci.t.sol::test_linear_decrease
    w = auction_at(LinearDecrease(3600), 1000 * WAD)
    for k in range(11):
        assert price(w, 360 * k) == (1000 - 100 * k) * RAY


def mkr_a2() -> None:
    w = auction_at(LinearDecrease(3600), 1000 * WAD)
    assert price(w, 1800) == 500 * RAY
    assert price(w, 3599) == 277_777_777_777_777_777_777_777_000  # 0.2777… RAY


def mkr_a3() -> None:
    # abaci.t.sol::test_continuous_exp_decrease: within 0.001 RAY; exact digits (D)
    w = auction_at(ExponentialDecrease(999_230_132_966 * 10**15), 4000 * WAD)
    expected = {
        0: "4000",
        900: "2000.0000002587572",
        1800: "1000.0000002587573",
        2700: "500.0000001940679",
        3600: "250.00000012937863",
    }
    for dur, text in expected.items():
        p = price(w, dur)
        assert abs(Fraction(p, RAY) - Fraction(4000, 2 ** (dur // 900))) <= Fraction(1, 1000)
        assert float(Fraction(p, RAY)) == float(text)  # the digits are a double's repr


def mkr_a4() -> None:
    # clip.t.sol::test_take_bid_avoids_recalculate_due_no_more_lot: price after 60 s
    w = take_setup()
    assert w.clip.status(1, T0 + 60).price == 2_735_783_211_953_807_380_973_706_855


def mkr_a5() -> None:
    # clip.t.sol::test_take_multiple_bids_different_prices: 5·0.99^30
    w = take_setup()
    assert w.clip.status(1, T0 + 30).price == 3_698_501_866_941_402_113_650_075_460


def eth_a_auction() -> World:
    """The preset's ETH-A Clipper on a 1000 DAI feed price: top = 1000 × buf 1.20."""
    w = set_up()
    ETH_A.apply(w.clip)
    w.pip.set(1000 * WAD)
    w.dog.bark(GOLD, ME, "keeper", T0)
    assert w.clip.sale(1).top == 1200 * RAY
    return w


def mkr_a6() -> None:
    w = eth_a_auction()
    expected = {
        89: "1200",
        90: "1188",
        180: "1176.12",
        900: "1085.2584900105653880",
        1800: "981.4883251166770450670",
        3600: "802.7661102836166167260",
        8400: "471.2532340293662212339",
    }
    for dur, text in expected.items():
        digits(price(w, dur), text)
    assert price(w, 900) == 1_085_258_490_010_565_388_012_000_000_000


def mkr_a7() -> None:
    w = eth_a_auction()
    first = next(d for d in range(0, 8401) if w.clip.status(1, T0 + d).needs_redo)
    assert first == 8280
    p = price(w, 8280)
    assert round(Fraction(p, 1200 * RAY), 6) == Fraction("0.396678")
    with pytest.raises(Refused, match="clipper/needs-reset"):
        w.clip.take(1, WAD, 2000 * RAY, ALI, T0 + 8280)
    w.clip.take(1, WAD, 2000 * RAY, ALI, T0 + 8279)  # still open a second earlier


# --- clip.t.sol scenarios (makerdao/dss src/test/clip.t.sol) ----------------------------


def mkr_c1() -> None:
    # test_kick: tip 100 DAI to the barker; then buf 1.25 and chip 2%
    w = set_up()
    w.clip.file("tip", 100 * RAD)
    w.clip.file("chip", 0)
    w.dog.bark(GOLD, ME, ALI, T0)
    s = w.clip.sale(1)
    assert (s.pos, s.tab, s.lot, s.usr, s.tic, s.top) == (0, 110 * RAD, 40 * WAD, ME, T0, 4 * RAY)
    assert w.dai(ALI) == 1100 * RAD and w.gem(ME) == 960 * WAD
    w.pip.set(5 * WAD)
    w.spot.poke(GOLD)
    w.vat.frob(GOLD, ME, 40 * WAD, 100 * WAD)
    w.pip.set(4 * WAD)
    w.spot.poke(GOLD)
    assert w.gem(ME) == 920 * WAD
    w.clip.file("buf", 125 * RAY // 100)
    w.clip.file("chip", 2 * WAD // 100)
    w.dog.bark(GOLD, ME, BOB, T0 + 100)
    s = w.clip.sale(2)
    assert (s.pos, s.tab, s.lot, s.usr, s.top) == (1, 110 * RAD, 40 * WAD, ME, 5 * RAY)
    assert w.dai(BOB) == 1000 * RAD + 100 * RAD + s.tab * 2 // 100
    assert w.clip.kicks == 2 and w.clip.count() == 2


def mkr_c2() -> None:
    # test_bark_not_leaving_dust: room 80 leaves exactly dust (20): partial
    w = set_up()
    w.dog.file_ilk(GOLD, "hole", 80 * RAD)
    w.dog.file_ilk(GOLD, "chop", WAD)
    b = w.dog.bark(GOLD, ME, "keeper", T0)
    assert (b.tab, b.dink, b.dart) == (80 * RAD, 32 * WAD, 80 * WAD)
    u = w.vat.urns[(GOLD, ME)]
    assert (u.ink, u.art) == (8 * WAD, 20 * WAD)
    assert w.clip.sale(1).top == 4 * RAY


def mkr_c3() -> None:
    # test_bark_not_leaving_dust_over_hole: room 80 + 1 wei would leave < dust: take all
    w = set_up()
    w.dog.file_ilk(GOLD, "hole", 80 * RAD + RAY)
    w.dog.file_ilk(GOLD, "chop", WAD)
    b = w.dog.bark(GOLD, ME, "keeper", T0)
    assert (b.tab, b.dink) == (100 * RAD, 40 * WAD)
    u = w.vat.urns[(GOLD, ME)]
    assert (u.ink, u.art) == (0, 0)


def mkr_c4() -> None:
    # test_bark_not_leaving_dust_rate: rate 1.02, room 100 → remnant ≈ 2 DAI < dust: all
    w = set_up()
    w.vat.fold(GOLD, w.vow.address, 2 * RAY // 100)
    assert w.vat.ilks[GOLD].rate == 102 * RAY // 100
    w.dog.file_ilk(GOLD, "hole", 100 * RAD)
    w.dog.file_ilk(GOLD, "chop", WAD)
    w.dog.file_ilk(GOLD, "dust", 20 * RAD)
    w.clip.upchost()
    b = w.dog.bark(GOLD, ME, "keeper", T0)
    assert (b.tab, b.dink) == (100 * WAD * 102 * RAY // 100, 40 * WAD)
    assert (w.vat.urns[(GOLD, ME)].ink, w.vat.urns[(GOLD, ME)].art) == (0, 0)


def mkr_c5() -> None:
    # test_bark_only_leaving_dust_over_hole_rate: remnant exactly dust (20.4) is allowed
    w = set_up()
    w.vat.fold(GOLD, w.vow.address, 2 * RAY // 100)
    w.dog.file_ilk(GOLD, "hole", 816 * RAD // 10)
    w.dog.file_ilk(GOLD, "chop", WAD)
    w.dog.file_ilk(GOLD, "dust", 204 * RAD // 10)
    w.clip.upchost()
    b = w.dog.bark(GOLD, ME, "keeper", T0)
    assert (b.tab, b.dink, b.dart) == (816 * RAD // 10, 32 * WAD, 80 * WAD)
    u = w.vat.urns[(GOLD, ME)]
    assert (u.ink, u.art) == (8 * WAD, 20 * WAD)
    assert u.art * w.vat.ilks[GOLD].rate == w.dog.ilks[GOLD].dust


def mkr_c6() -> None:
    # test_Hole_hole: Dirt sums the dirt of two ilks
    w = set_up()
    b1 = w.dog.bark(GOLD, ME, "keeper", T0)
    assert w.dog.Dirt == b1.tab == w.dog.ilks[GOLD].dirt
    w.vat.init("silver")
    pip2 = Osm(5 * WAD)
    w.spot.file("silver", pip2, 2 * RAY)
    w.spot.poke("silver")
    clip2 = Clipper(w.vat, w.spot, w.dog, "silver")
    w.dog.file_ilk("silver", "clip", clip2)
    w.dog.file_ilk("silver", "chop", 11 * WAD // 10)
    w.dog.file_ilk("silver", "hole", 1000 * RAD)
    w.vat.slip("silver", ME, 40 * WAD)
    w.vat.frob("silver", ME, 40 * WAD, 100 * WAD)
    pip2.set(4 * WAD)
    w.spot.poke("silver")
    b2 = w.dog.bark("silver", ME, "keeper", T0)
    assert w.dog.Dirt == b1.tab + b2.tab
    assert (w.dog.ilks[GOLD].dirt, w.dog.ilks["silver"].dirt) == (b1.tab, b2.tab)


def _partial_limit(w: World) -> None:
    b = w.dog.bark(GOLD, ME, "keeper", T0)
    chop, rate = w.dog.chop(GOLD), w.vat.ilks[GOLD].rate
    assert b.tab == 75 * RAD - RAY // 5  # "0.2 RAY rounding error"
    assert b.dink == 40 * WAD * (b.tab * WAD // rate // chop) // (100 * WAD)
    u = w.vat.urns[(GOLD, ME)]
    assert (u.ink, u.art) == (40 * WAD - b.dink, 100 * WAD - b.tab * WAD // rate // chop)
    assert w.dog.Dirt == b.tab == w.dog.ilks[GOLD].dirt


def mkr_c7() -> None:
    # test_partial_liquidation_Hole_limit
    w = set_up()
    w.dog.file("Hole", 75 * RAD)
    _partial_limit(w)


def mkr_c8() -> None:
    # test_partial_liquidation_hole_limit
    w = set_up()
    w.dog.file_ilk(GOLD, "hole", 75 * RAD)
    _partial_limit(w)


def _ended(w: World) -> None:
    assert w.clip.sales == {} and w.clip.count() == 0
    assert w.dog.Dirt == 0 and w.dog.ilks[GOLD].dirt == 0


def mkr_c9() -> None:
    # test_take_over_tab: 25 at 5 = 125 > 110: slice = 110/5 = 22, rest to the owner
    w = take_setup()
    assert w.clip.take(1, 25 * WAD, 5 * RAY, ALI, T0) == (110 * RAD, 22 * WAD)
    assert (w.gem(ALI), w.dai(ALI), w.gem(ME)) == (22 * WAD, 890 * RAD, 978 * WAD)
    _ended(w)


def mkr_c10() -> None:
    # test_take_at_tab
    w = take_setup()
    assert w.clip.take(1, 22 * WAD, 5 * RAY, ALI, T0) == (110 * RAD, 22 * WAD)
    assert (w.gem(ALI), w.dai(ALI), w.gem(ME)) == (22 * WAD, 890 * RAD, 978 * WAD)
    _ended(w)


def mkr_c11() -> None:
    # test_take_under_tab
    w = take_setup()
    assert w.clip.take(1, 11 * WAD, 5 * RAY, ALI, T0) == (55 * RAD, 11 * WAD)
    assert (w.gem(ALI), w.dai(ALI), w.gem(ME)) == (11 * WAD, 945 * RAD, 960 * WAD)
    s = w.clip.sale(1)
    assert (s.tab, s.lot, s.usr, s.tic, s.top) == (55 * RAD, 29 * WAD, ME, T0, 5 * RAY)
    assert w.dog.Dirt == s.tab == w.dog.ilks[GOLD].dirt


def mkr_c12() -> None:
    # test_take_full_lot_partial_tab: the whole lot for ~100 < 110; Dirt cleared, the
    # unpaid rest stays as sin in the Vow (bad debt)
    w = take_setup()
    owe, got = w.clip.take(1, 40 * WAD, 25 * RAY // 10, ALI, T0 + 69)
    assert got == 40 * WAD and w.gem(ALI) == 40 * WAD and w.gem(ME) == 960 * WAD
    assert 0 <= w.dai(ALI) - 900 * RAD < RAD // 10
    _ended(w)
    assert w.vow.Sin == 100 * RAD and w.vow.joy == owe
    w.vow.flog(T0, T0)
    w.vow.heal(owe)
    assert w.vow.woe == 100 * RAD - owe > 0 and w.vow.joy == 0
    w.vow.flop(w.vow.woe)
    assert w.vow.Ash == 100 * RAD - owe and w.vow.woe == 0


def mkr_c13() -> None:
    # testFail_take_bid_too_low: max 4 < price 5
    w = take_setup()
    with pytest.raises(InvalidArgument, match="max=4000000000000000000000000000 < price="):
        w.clip.take(1, 22 * WAD, 4 * RAY, ALI, T0)
    assert w.clip.sale(1).tab == 110 * RAD and w.dai(ALI) == 1000 * RAD


def mkr_c14() -> None:
    # test_take_bid_recalculates_due_to_chost_check: 18 would leave 20 < chost 22
    w = take_setup()
    assert w.clip.chost == 22 * RAD
    assert w.clip.status(1, T0) == (False, 5 * RAY, 40 * WAD, 110 * RAD)
    w.clip.take(1, 18 * WAD, 5 * RAY, ALI, T0)
    s = w.clip.sale(1)
    assert s.tab == w.clip.chost
    assert s.lot == 40 * WAD - (110 * RAD - w.clip.chost) // (5 * RAY)


def mkr_c15() -> None:
    # test_take_bid_avoids_recalculate_due_no_more_lot: all of the lot at 2.73…
    w = take_setup()
    w.clip.take(1, 40 * WAD, 28 * RAY // 10, ALI, T0 + 60)
    assert w.clip.sale(1).tab == 0 and w.clip.sale(1).lot == 0
    _ended(w)


def mkr_c16() -> None:
    # test_take_bid_fails_no_partial_allowed: at tab 22 = chost only the whole tab
    w = take_setup()
    w.vat.suck(GOD, ME, 1000 * RAD)
    w.clip.take(1, 176 * WAD // 10, 5 * RAY, ME, T0)
    s = w.clip.sale(1)
    assert (s.tab, s.lot) == (22 * RAD, 224 * WAD // 10)
    with pytest.raises(Refused, match="clipper/no-partial-purchase"):
        w.clip.take(1, WAD, 5 * RAY, ME, T0)
    w.clip.take(1, s.tab // (5 * RAY), 5 * RAY, ME, T0)
    _ended(w)


def mkr_c17() -> None:
    # test_take_multiple_bids_different_prices
    w = take_setup()
    w.clip.take(1, 10 * WAD, 5 * RAY, ALI, T0)
    assert (w.gem(ALI), w.dai(ALI), w.gem(ME)) == (10 * WAD, 950 * RAD, 960 * WAD)
    s = w.clip.sale(1)
    assert (s.tab, s.lot, s.top) == (60 * RAD, 30 * WAD, 5 * RAY)
    _, p, lot, _ = w.clip.status(1, T0 + 30)
    w.clip.take(1, lot, p, BOB, T0 + 30)
    _ended(w)
    expected = RAY * 60 * WAD // p
    assert (w.gem(BOB), w.dai(BOB)) == (expected, 940 * RAD)
    assert w.gem(ME) == 960 * WAD + 30 * WAD - expected


def mkr_c18() -> None:
    # test_auction_reset_tail: tail 3600 passed at 3601; redo at the new feed 3 → top 3.75
    w = reset_setup(10 * 3600)
    w.pip.set(3 * WAD)
    assert (w.clip.sale(1).tic, w.clip.sale(1).top) == (T0, 5 * RAY)
    assert not w.clip.status(1, T0 + 3600).needs_redo
    with pytest.raises(Refused, match="clipper/cannot-reset"):
        w.clip.redo(1, "keeper", T0 + 3600)
    assert w.clip.status(1, T0 + 3601).needs_redo
    w.clip.redo(1, "keeper", T0 + 3601)
    assert (w.clip.sale(1).tic, w.clip.sale(1).top) == (T0 + 3601, 375 * RAY // 100)
    with pytest.raises(Refused, match="clipper/cannot-reset"):  # test_auction_reset_tail_twice
        w.clip.redo(1, "keeper", T0 + 3601)


def mkr_c19() -> None:
    # test_auction_reset_cusp: price below 50% of top after 1801 s (tau 1 h)
    w = reset_setup(3600)
    w.pip.set(3 * WAD)
    assert not w.clip.status(1, T0 + 1800).needs_redo
    with pytest.raises(Refused, match="clipper/cannot-reset"):
        w.clip.redo(1, "keeper", T0 + 1800)
    assert w.clip.status(1, T0 + 1801).needs_redo
    w.clip.redo(1, "keeper", T0 + 1801)
    assert (w.clip.sale(1).tic, w.clip.sale(1).top) == (T0 + 1801, 375 * RAY // 100)
    with pytest.raises(Refused, match="clipper/cannot-reset"):  # test_auction_reset_cusp_twice
        w.clip.redo(1, "keeper", T0 + 1801)
    with pytest.raises(Refused, match="clipper/not-running-auction"):  # test_redo_zero_usr
        w.clip.redo(2, "keeper", T0 + 1801)


def mkr_c20() -> None:
    # test_stopped_kick: any level refuses bark, and nothing moves
    w = set_up()
    for level in (1, 2, 3):
        w.clip.file("stopped", level)
        with pytest.raises(Refused, match="clipper/stopped"):
            w.dog.bark(GOLD, ME, "keeper", T0)
        assert w.vat.urns[(GOLD, ME)].art == 100 * WAD and w.dog.Dirt == 0 and w.vow.Sin == 0
    w.clip.file("stopped", 0)
    w.dog.bark(GOLD, ME, "keeper", T0)


def mkr_c21() -> None:
    # test_stopped_1_take, test_stopped_2_take, testFail_stopped_3_take
    for level in (1, 2):
        w = take_setup()
        w.clip.file("stopped", level)
        assert w.clip.take(1, 25 * WAD, 5 * RAY, ALI, T0) == (110 * RAD, 22 * WAD)
    w = take_setup()
    w.clip.file("stopped", 3)
    with pytest.raises(Refused, match="clipper/stopped"):
        w.clip.take(1, 25 * WAD, 5 * RAY, ALI, T0)


def mkr_c22() -> None:
    # test_stopped_1_auction_reset_tail, test_stopped_2/3_auction_reset_tail
    w = reset_setup(10 * 3600)
    w.clip.file("stopped", 1)
    w.pip.set(3 * WAD)
    w.clip.redo(1, "keeper", T0 + 3601)
    assert w.clip.sale(1).top == 375 * RAY // 100
    for level in (2, 3):
        w = reset_setup(10 * 3600)
        w.clip.file("stopped", level)
        assert w.clip.status(1, T0 + 3601).needs_redo
        with pytest.raises(Refused, match="clipper/stopped"):
            w.clip.redo(1, "keeper", T0 + 3601)


def mkr_c23() -> None:
    # test_redo_incentive: tip, chip, and no incentive for a dusty tab or lot
    w = take_setup()
    w.clip.file("tip", 100 * RAD)
    w.clip.file("chip", 0)
    now = T0 + 300
    assert w.clip.redo(1, "k1", now) == 100 * RAD and w.dai("k1") == 100 * RAD
    w.clip.file("chip", 2 * WAD // 100)
    now += 300
    w.clip.redo(1, "k2", now)
    assert w.dai("k2") == 100 * RAD + 2 * WAD // 100 * 110 * RAD // WAD
    w.clip.file("tip", 0)
    now += 300
    w.clip.redo(1, "k3", now)
    assert w.dai("k3") == 2 * WAD // 100 * 110 * RAD // WAD
    w.dog.file_ilk(GOLD, "dust", 100 * RAD + 1)
    w.clip.upchost()
    assert w.clip.chost == 110 * RAD + 1
    now += 300
    assert w.clip.redo(1, "k4", now) == 0 and w.dai("k4") == 0
    w.dog.file_ilk(GOLD, "dust", 20 * RAD)
    w.clip.upchost()
    assert w.clip.chost == 22 * RAD
    now += 100
    p = w.clip.status(1, now).price
    assert p == 1_830_161_706_366_147_524_653_080_130
    w.vat.suck(GOD, ME, 1000 * RAD)
    w.clip.take(1, 38 * WAD, 5 * RAY, ME, now)
    s = w.clip.sale(1)
    assert (s.tab, s.lot) == (110 * RAD - 38 * WAD * p, 2 * WAD)
    now += 300
    assert w.clip.redo(1, "k5", now) == 0 and w.dai("k5") == 0  # lot 2 × $4 < chost


def mkr_c24() -> None:
    # test_Clipper_yank: the auction is deleted, Dirt cleared, the lot to the caller
    w = take_setup()
    w.clip.yank(1, ME)
    _ended(w)
    assert w.gem(ME) == 1000 * WAD


def mkr_c25() -> None:
    # testFail_kick_zero_price: no auction at price 0, and bark changes nothing
    w = set_up()
    w.pip.set(0)
    with pytest.raises(Refused, match="clipper/zero-top-price"):
        w.dog.bark(GOLD, ME, "keeper", T0)
    assert w.vat.urns[(GOLD, ME)].art == 100 * WAD and w.clip.kicks == 0


VECTORS: list[tuple[str, Callable[[], None]]] = [
    ("MKR-A1", mkr_a1),
    ("MKR-A2", mkr_a2),
    ("MKR-A3", mkr_a3),
    ("MKR-A4", mkr_a4),
    ("MKR-A5", mkr_a5),
    ("MKR-A6", mkr_a6),
    ("MKR-A7", mkr_a7),
    ("MKR-C1", mkr_c1),
    ("MKR-C2", mkr_c2),
    ("MKR-C3", mkr_c3),
    ("MKR-C4", mkr_c4),
    ("MKR-C5", mkr_c5),
    ("MKR-C6", mkr_c6),
    ("MKR-C7", mkr_c7),
    ("MKR-C8", mkr_c8),
    ("MKR-C9", mkr_c9),
    ("MKR-C10", mkr_c10),
    ("MKR-C11", mkr_c11),
    ("MKR-C12", mkr_c12),
    ("MKR-C13", mkr_c13),
    ("MKR-C14", mkr_c14),
    ("MKR-C15", mkr_c15),
    ("MKR-C16", mkr_c16),
    ("MKR-C17", mkr_c17),
    ("MKR-C18", mkr_c18),
    ("MKR-C19", mkr_c19),
    ("MKR-C20", mkr_c20),
    ("MKR-C21", mkr_c21),
    ("MKR-C22", mkr_c22),
    ("MKR-C23", mkr_c23),
    ("MKR-C24", mkr_c24),
    ("MKR-C25", mkr_c25),
]


@pytest.mark.parametrize("check", [pytest.param(f, id=i) for i, f in VECTORS])
def test_maker_vector(check: Callable[[], None]) -> None:
    check()


def test_preset_reproduces_every_a_vector() -> None:
    ids = {i for i, _ in VECTORS}
    assert set(PRESET.reproduces) <= ids
    assert {f"MKR-A{k}" for k in range(1, 8)} == set(PRESET.reproduces)


# --- the preset's mechanism -------------------------------------------------------------


def test_preset_builds_eth_a_dutch_auction() -> None:
    assert PRESET.name == "maker" and PRESET.protocol == "Maker Liquidations 2.0"
    m = PRESET.mechanism()
    assert isinstance(m, DutchAuction)
    assert m.curve == StairstepExponentialDecrease(99 * RAY // 100, 90)
    assert (m.buf, m.tail, m.cusp) == (12 * RAY // 10, 8400, 4 * RAY // 10)
    assert m.penalty_rate == 130_000_000  # chop 1.13
    assert m.keeper_reward is not None
    assert m.keeper_reward.tip == 300_000_000  # 300 DAI in USDC(6)
    # chip of notional × chop: 0.1% × 1.13 / 0.13 of the penalty, rounded down
    assert m.keeper_reward.share == 8_692_307
    assert m is not PRESET.mechanism()  # a fresh mechanism per engine
    reward18 = maker_mechanism(18).keeper_reward
    assert reward18 is not None and reward18.tip == 300 * 10**18


# --- ClipperMom and pure sizing ---------------------------------------------------------


def test_clipper_mom_trips_on_a_drop_beyond_tolerance() -> None:
    w = set_up()
    mom = ClipperMom(w.spot)
    mom.set_price_tolerance(w.clip, RAY // 2)
    w.pip.poke(2 * WAD)  # OSM hop: cur 4, nxt 2 = exactly 50%: within bounds
    with pytest.raises(Refused, match="clipper-mom/price-within-bounds"):
        mom.trip_breaker(w.clip, T0)
    assert w.clip.stopped == 0
    w.pip.set(4 * WAD)
    w.pip.nxt = 2 * WAD - 1  # more than a 50% drop
    mom.set_breaker(w.clip, 0, 3600, T0)
    with pytest.raises(Refused, match="clipper-mom/temporary-locked"):
        mom.trip_breaker(w.clip, T0 + 3600)
    mom.trip_breaker(w.clip, T0 + 3601)
    assert w.clip.stopped == 2
    with pytest.raises(Refused, match="clipper/stopped"):
        w.dog.bark(GOLD, ME, "keeper", T0 + 3601)
    with pytest.raises(Refused, match="clipper-mom/clipper-already-stopped"):
        mom.trip_breaker(w.clip, T0 + 3602)


def test_pure_sizing_matches_the_stateful_api() -> None:
    # the clip.t.sol vault: room 1000 DAI, chop 1.1
    assert bark_size(40 * WAD, 100 * WAD, RAY, 2 * RAY, 20 * RAD, 11 * WAD // 10, 1000 * RAD) == (
        100 * WAD,
        40 * WAD,
        110 * RAD,
        0,
    )
    assert take_size(110 * RAD, 40 * WAD, 18 * WAD, 5 * RAY, 22 * RAD) == (
        88 * RAD,
        176 * WAD // 10,
    )
    with pytest.raises(Refused, match="dog/not-unsafe"):
        bark_size(40 * WAD, 100 * WAD, RAY, 3 * RAY, 0, WAD, RAD)
    with pytest.raises(Refused, match="dog/dusty-auction-from-partial-liquidation"):
        bark_size(40 * WAD, 100 * WAD, RAY, 2 * RAY, 20 * RAD, WAD, 10 * RAD)
    with pytest.raises(Refused, match="dog/liquidation-limit-hit"):
        bark_size(40 * WAD, 100 * WAD, RAY, 2 * RAY, 20 * RAD, WAD, 0)


# --- bad input --------------------------------------------------------------------------


def _state(w: World) -> tuple[object, ...]:
    c, d = w.clip, w.dog
    return (
        repr(w.vat),
        (c.buf, c.tail, c.cusp, c.chip, c.tip, c.stopped, c.calc, dict(c.sales)),
        (d.Hole, d.Dirt, {k: (i.chop, i.hole, i.dirt, i.dust) for k, i in d.ilks.items()}),
        (w.vow.Sin, dict(w.vow.sin)),
    )


@pytest.mark.parametrize(
    ("action", "match"),
    [
        pytest.param(lambda w: w.dog.file_ilk(GOLD, "chop", WAD - 1), "chop=", id="chop-lt-wad"),
        pytest.param(lambda w: w.clip.file("buf", RAY - 1), "buf=", id="buf-lt-ray"),
        pytest.param(lambda w: w.clip.file("cusp", RAY + 1), "cusp=", id="cusp-gt-ray"),
        pytest.param(
            lambda w: w.dog.file_ilk(GOLD, "dust", 1001 * RAD), "dust=", id="dust-gt-hole"
        ),
        pytest.param(lambda w: w.dog.file_ilk(GOLD, "hole", 19 * RAD), "hole=", id="hole-lt-dust"),
        pytest.param(lambda w: w.dog.file("Hole", -1), "Hole=", id="negative-Hole"),
        pytest.param(lambda w: w.clip.file("tip", -1), "tip=", id="negative-tip"),
        pytest.param(lambda w: w.clip.file("stopped", 4), "stopped=", id="stopped-4"),
        pytest.param(lambda w: w.clip.file("tail", 1.5), "tail=", id="float-tail"),
        pytest.param(lambda w: w.clip.take(1, -1, 5 * RAY, ALI, T0), "amt=", id="negative-amt"),
        pytest.param(lambda w: w.clip.take(1, WAD, 4 * RAY, ALI, T0), "max=", id="max-below"),
        pytest.param(lambda w: w.clip.take(1, WAD, 5 * RAY, ALI, T0 - 1), "now=", id="before-tic"),
        pytest.param(lambda w: w.vat.frob(GOLD, ME, -1, 0), "dink=", id="negative-dink"),
        pytest.param(lambda w: w.dog.file_ilk(GOLD, "what", 1), "what=", id="unknown-param"),
        pytest.param(
            lambda w: ClipperMom(w.spot).set_price_tolerance(w.clip, RAY + 1),
            "tolerance=",
            id="tolerance-gt-ray",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_value(
    action: Callable[[World], object], match: str
) -> None:
    w = take_setup()
    before = _state(w)
    with pytest.raises(InvalidArgument, match=match):
        action(w)
    assert _state(w) == before


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"chop": WAD - 1}, id="chop"),
        pytest.param({"buf": RAY - 1}, id="buf"),
        pytest.param({"cusp": RAY + 1}, id="cusp"),
        pytest.param({"cut": RAY}, id="cut"),
        pytest.param({"tip": -1}, id="tip"),
    ],
)
def test_bad_clipper_params(kwargs: dict[str, int]) -> None:
    fields = {
        "cut": ETH_A.cut,
        "step": ETH_A.step,
        "buf": ETH_A.buf,
        "tail": ETH_A.tail,
        "cusp": ETH_A.cusp,
        "chop": ETH_A.chop,
        "chip": ETH_A.chip,
        "tip": ETH_A.tip,
    }
    with pytest.raises(InvalidArgument, match=next(iter(kwargs))):
        ClipperParams(**{**fields, **kwargs})


def test_refused_take_changes_nothing() -> None:
    w = take_setup()
    w.vat.dai[ALI] = 10 * RAD  # cannot pay 55
    before = _state(w)
    with pytest.raises(Refused, match="vat/insufficient-dai"):
        w.clip.take(1, 11 * WAD, 5 * RAY, ALI, T0)
    assert _state(w) == before
