"""Maker Liquidations 2.0 (``makerdao/dss`` ``dog.sol``, ``clip.sol``, ``abaci.sol``,
``vow.sol``; ``makerdao/clipper-mom``): ``PRESET`` and Maker's vocabulary as a thin API.

Two halves (docs/presets/maker.md):

* ``PRESET`` runs liqeng's own ``DutchAuction`` on a perp/option book with an ETH-A-like
  Clipper (``ETH_A``): stair-step curve ``cut`` 0.99 every 90 s, ``buf`` 1.20, ``tail``
  8400 s, ``cusp`` 0.40, ``chop`` 1.13 (a 13% penalty), keeper incentive ``tip + chip``.
* ``Vat``, ``Spotter``, ``Osm``, ``Dog``, ``Clipper``, ``ClipperMom`` and ``Vow`` reproduce
  dss in Maker's own units, exact integers: WAD (``10**18``: collateral ``ink``/``lot``,
  normalized debt ``art``, ``chop``, ``chip``), RAY (``10**27``: ``rate``, ``spot``, prices,
  ``buf``, ``cusp``) and RAD (``10**45``: DAI, ``tab``, ``dust``, ``hole``, ``Hole``,
  ``tip``). Curves are ``liqeng.liquidation.curves`` (bit for bit dss).

The sizing rules are also pure functions, to check one's own numbers without state:
``bark_size`` (Dog) and ``take_size`` (Clipper). Where dss reverts on state, the API raises
``Refused`` with a code from the dss message (``dog/not-unsafe``, ``clipper/needs-reset``,
…); a value dss would never accept (``chop`` < WAD, ``buf`` < RAY, ``cusp`` > RAY,
``dust`` > ``hole``, a negative amount, ``max`` below the price) is ``InvalidArgument``
naming it. Either way nothing has changed.

What the model leaves out: authorization (``wards``/``auth``), ``cage``/End, the
``clipperCall`` flash callback (``DutchAuction`` has flash takes), the ``Vat``'s debt
ceilings and safety checks on ``frob``, ``flap``/``flop`` auctions (``Vow.flop`` only books
``Ash``) and uint256 overflow outside the curves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, NamedTuple

from liqeng.errors import InvalidArgument, Refused
from liqeng.liquidation.curves import (
    RAY,
    UINT256_MAX,
    WAD,
    Curve,
    StairstepExponentialDecrease,
    rdiv,
    rmul,
    start_price,
)
from liqeng.liquidation.dutch_auction import DutchAuction
from liqeng.liquidation.keeper import KeeperReward
from liqeng.presets.base import Preset
from liqeng.units import RATE_SCALE, check_int

__all__ = [
    "BLN",
    "ETH_A",
    "PRESET",
    "RAD",
    "RAY",
    "WAD",
    "Bark",
    "Clipper",
    "ClipperMom",
    "ClipperParams",
    "Dog",
    "DogIlk",
    "Osm",
    "Sale",
    "Spotter",
    "Status",
    "Take",
    "Urn",
    "Vat",
    "VatIlk",
    "Vow",
    "bark_size",
    "maker_mechanism",
    "take_size",
    "wmul",
]

RAD: Final = 10**45
BLN: Final = 10**9
_TIP_MAX: Final = 2**192 - 1  # clip.sol stores tip as uint192
_CHIP_MAX: Final = 2**64 - 1  # and chip as uint64


def _u(name: str, value: object, lo: int = 0) -> int:
    """A non-negative integer that fits a uint256 (Maker amounts cannot be negative)."""
    return check_int(name, value, lo, UINT256_MAX)


def wmul(x: int, y: int) -> int:
    """dss ``wmul``: ``floor(x * y / WAD)``."""
    return _u("x", x) * _u("y", y) // WAD


# --- pure sizing ------------------------------------------------------------------------


class Bark(NamedTuple):
    """What ``bark`` took: normalized debt ``dart`` (WAD), collateral ``dink`` (WAD), the
    auction's target ``tab = dart·rate·chop/WAD`` (RAD) and the auction ``id`` (0 from
    ``bark_size``, which starts none)."""

    dart: int
    dink: int
    tab: int
    id: int = 0


class Take(NamedTuple):
    """What one ``take`` paid, ``owe`` (RAD), and bought, ``slice`` (WAD)."""

    owe: int
    slice: int


def bark_size(ink: int, art: int, rate: int, spot: int, dust: int, chop: int, room: int) -> Bark:
    """``Dog.bark``'s sizing, exactly as dog.sol::

        require spot > 0 and ink·spot < art·rate                     (dog/not-unsafe)
        require room > 0                                              (dog/liquidation-limit-hit)
        dart = min(art, room·WAD / rate / chop)
        if art > dart:
            if (art − dart)·rate < dust: dart = art                   (no dusty vault left)
            else: require dart·rate >= dust   (dog/dusty-auction-from-partial-liquidation)
        dink = ink·dart / art ; require dink > 0                      (dog/null-auction)
        tab  = dart·rate·chop / WAD

    ``room = min(Hole − Dirt, hole − dirt)`` (RAD); ink, art, chop WAD; rate, spot RAY;
    dust RAD. Divisions floor."""
    ink, art = _u("ink", ink), _u("art", art)
    rate, spot = _u("rate", rate, 1), _u("spot", spot)
    dust, room = _u("dust", dust), _u("room", room)
    chop = _check_chop(chop)
    if not (spot > 0 and ink * spot < art * rate):
        raise Refused("dog/not-unsafe", f"ink={ink} × spot={spot} >= art={art} × rate={rate}")
    if room == 0:
        raise Refused("dog/liquidation-limit-hit", "room=0: Dirt has reached Hole or hole")
    dart = min(art, room * WAD // rate // chop)
    if art > dart:
        if (art - dart) * rate < dust:
            dart = art
        elif dart * rate < dust:
            raise Refused(
                "dog/dusty-auction-from-partial-liquidation",
                f"dart={dart} × rate={rate} < dust={dust}",
            )
    dink = ink * dart // art
    if dink == 0:
        raise Refused("dog/null-auction", f"dink=ink×dart/art=0 (ink={ink}, dart={dart})")
    return Bark(dart, dink, dart * rate * chop // WAD)


def take_size(tab: int, lot: int, amt: int, price: int, chost: int) -> Take:
    """``Clipper.take``'s amounts, exactly as clip.sol::

        slice = min(lot, amt) ; owe = slice·price
        if owe > tab:  owe = tab ; slice = owe / price             (never collect past tab)
        elif owe < tab and slice < lot and tab − owe < chost:     (would leave a dusty tab)
            require tab > chost                                   (clipper/no-partial-purchase)
            owe = tab − chost ; slice = owe / price

    tab, chost RAD; lot, amt WAD; price RAY. The caller has checked ``max >= price``."""
    tab, lot, amt = _u("tab", tab), _u("lot", lot), _u("amt", amt)
    price, chost = _u("price", price), _u("chost", chost)
    slice_ = min(lot, amt)
    owe = slice_ * price
    if owe > tab:
        owe = tab
        slice_ = owe // price
    elif owe < tab and slice_ < lot and tab - owe < chost:
        if tab <= chost:
            raise Refused(
                "clipper/no-partial-purchase",
                f"tab={tab} <= chost={chost}: only the whole lot={lot} can be bought",
            )
        if price == 0:
            raise Refused("clipper/zero-price", "price=0: slice = owe / price is undefined")
        owe = tab - chost
        slice_ = owe // price
    return Take(owe, slice_)


def _check_chop(chop: object) -> int:
    if type(chop) is int and 0 <= chop < WAD:
        raise InvalidArgument(f"chop={chop} must be >= WAD={WAD} (Dog/file-chop-lt-WAD)")
    return _u("chop", chop, WAD)


# --- Vat, oracle, Spotter ---------------------------------------------------------------


@dataclass
class Urn:
    """A vault: collateral ``ink`` and normalized debt ``art`` (both WAD)."""

    ink: int = 0
    art: int = 0


@dataclass
class VatIlk:
    """Per-collateral Vat state: total normalized debt ``Art`` (WAD), ``rate`` (RAY, the
    accumulated stability fee) and ``spot`` (RAY, price over liquidation ratio)."""

    Art: int = 0
    rate: int = RAY
    spot: int = 0


@dataclass
class Vat:
    """The part of dss's ``Vat`` liquidations touch: vaults, collateral ``gem`` (WAD),
    ``dai`` and ``sin`` (RAD) per address, total ``debt`` and unbacked ``vice`` (RAD).
    Addresses are strings. No debt ceilings and no safety check on ``frob``."""

    ilks: dict[str, VatIlk] = field(default_factory=dict)
    urns: dict[tuple[str, str], Urn] = field(default_factory=dict)
    gem: dict[tuple[str, str], int] = field(default_factory=dict)
    dai: dict[str, int] = field(default_factory=dict)
    sin: dict[str, int] = field(default_factory=dict)
    debt: int = 0
    vice: int = 0

    def init(self, ilk: str) -> None:
        if ilk in self.ilks:
            raise Refused("vat/ilk-already-init", f"ilk={ilk!r} exists")
        self.ilks[ilk] = VatIlk()

    def ilk(self, ilk: str) -> VatIlk:
        found = self.ilks.get(ilk)
        if found is None:
            raise InvalidArgument(f"ilk={ilk!r} is not initialised (Vat.init)")
        return found

    def urn(self, ilk: str, usr: str) -> Urn:
        self.ilk(ilk)
        return self.urns.setdefault((ilk, usr), Urn())

    def slip(self, ilk: str, usr: str, wad: int) -> None:
        """Add ``wad`` (>= 0) of collateral to ``usr`` (a ``GemJoin.join``)."""
        self.ilk(ilk)
        self.gem[(ilk, usr)] = self.gem.get((ilk, usr), 0) + _u("wad", wad)

    def frob(self, ilk: str, usr: str, dink: int, dart: int) -> None:
        """Lock ``dink`` of ``usr``'s gem and draw ``dart`` of normalized debt (both >= 0;
        DAI ``dart·rate`` to ``usr``). Opens vaults for tests and scenarios: unlike dss it
        checks neither ceilings nor safety."""
        i, dink, dart = self.ilk(ilk), _u("dink", dink), _u("dart", dart)
        if self.gem.get((ilk, usr), 0) < dink:
            raise Refused("vat/insufficient-gem", f"gem={self.gem.get((ilk, usr), 0)} < {dink}")
        u = self.urn(ilk, usr)
        self.gem[(ilk, usr)] -= dink
        u.ink += dink
        u.art += dart
        i.Art += dart
        self.dai[usr] = self.dai.get(usr, 0) + dart * i.rate
        self.debt += dart * i.rate

    def fold(self, ilk: str, u: str, rate: int) -> None:
        """Accrue stability fees: ``rate += rate_delta`` (RAY, >= 0), ``Art·delta`` DAI to ``u``."""
        i = self.ilk(ilk)
        delta = _u("rate", rate)
        i.rate += delta
        self.dai[u] = self.dai.get(u, 0) + i.Art * delta
        self.debt += i.Art * delta

    def suck(self, u: str, v: str, rad: int) -> None:
        """Mint ``rad`` of unbacked DAI to ``v``, its debt as ``sin`` of ``u``."""
        rad = _u("rad", rad)
        self.sin[u] = self.sin.get(u, 0) + rad
        self.dai[v] = self.dai.get(v, 0) + rad
        self.vice += rad
        self.debt += rad

    def move(self, src: str, dst: str, rad: int) -> None:
        rad = _u("rad", rad)
        if self.dai.get(src, 0) < rad:
            raise Refused("vat/insufficient-dai", f"{src}: dai={self.dai.get(src, 0)} < {rad}")
        self.dai[src] -= rad
        self.dai[dst] = self.dai.get(dst, 0) + rad

    def flux(self, ilk: str, src: str, dst: str, wad: int) -> None:
        wad = _u("wad", wad)
        if self.gem.get((ilk, src), 0) < wad:
            raise Refused("vat/insufficient-gem", f"{src}: gem={self.gem.get((ilk, src), 0)}")
        self.gem[(ilk, src)] -= wad
        self.gem[(ilk, dst)] = self.gem.get((ilk, dst), 0) + wad

    def grab(self, ilk: str, u: str, v: str, w: str, dink: int, dart: int) -> None:
        """Confiscate: ``dink`` collateral of vault ``u`` to ``v``, ``dart`` debt to ``w``'s
        ``sin`` (``dink``, ``dart`` >= 0 are what is *removed*, dss's negated arguments)."""
        i, urn = self.ilk(ilk), self.urn(ilk, u)
        dink, dart = _u("dink", dink), _u("dart", dart)
        if urn.ink < dink or urn.art < dart:
            raise Refused("vat/grab-underflow", f"{u}: ink={urn.ink}, art={urn.art}")
        urn.ink -= dink
        urn.art -= dart
        i.Art -= dart
        self.gem[(ilk, v)] = self.gem.get((ilk, v), 0) + dink
        self.sin[w] = self.sin.get(w, 0) + dart * i.rate
        self.vice += dart * i.rate

    def heal(self, u: str, rad: int) -> None:
        """Cancel ``rad`` of ``u``'s ``sin`` against its ``dai``."""
        rad = _u("rad", rad)
        if self.sin.get(u, 0) < rad or self.dai.get(u, 0) < rad:
            raise Refused(
                "vat/heal-underflow",
                f"{u}: rad={rad} > sin={self.sin.get(u, 0)} or dai={self.dai.get(u, 0)}",
            )
        self.sin[u] -= rad
        self.dai[u] -= rad
        self.vice -= rad
        self.debt -= rad


@dataclass
class Osm:
    """A price feed (WAD): ``peek()`` the current value ``cur``, ``peep()`` the next
    ``nxt`` (Maker's OSM shows it one ``hop`` early). ``poke(val)`` is the OSM hop
    (``cur = nxt; nxt = val``); ``set(val)`` sets both (a plain ``DSValue``)."""

    cur: int
    nxt: int | None = None
    has: bool = True

    def __post_init__(self) -> None:
        _u("cur", self.cur)
        if self.nxt is None:
            self.nxt = self.cur
        _u("nxt", self.nxt)

    def peek(self) -> int:
        if not self.has:
            raise Refused("osm/invalid-price", "the feed has no value")
        return self.cur

    def peep(self) -> int:
        if not self.has or self.nxt is None:
            raise Refused("osm/invalid-price", "the feed has no next value")
        return self.nxt

    def poke(self, val: int) -> None:
        nxt = self.peep()
        self.cur, self.nxt = nxt, _u("val", val)

    def set(self, val: int) -> None:
        self.cur = self.nxt = _u("val", val)


@dataclass
class Spotter:
    """``spot = rdiv(rdiv(val·1e9, par), mat)`` per ilk (``mat`` RAY >= RAY, e.g. 1.5e27)."""

    vat: Vat
    par: int = RAY
    ilks: dict[str, tuple[Osm, int]] = field(default_factory=dict)

    def file(self, ilk: str, pip: Osm, mat: int) -> None:
        if not isinstance(pip, Osm):
            raise InvalidArgument(f"pip={pip!r} must be an Osm")
        self.ilks[ilk] = (pip, _u("mat", mat, RAY))

    def pip(self, ilk: str) -> Osm:
        found = self.ilks.get(ilk)
        if found is None:
            raise InvalidArgument(f"ilk={ilk!r} has no pip (Spotter.file)")
        return found[0]

    def feed_price(self, ilk: str) -> int:
        """clip.sol ``getFeedPrice``: ``rdiv(val·1e9, par)`` (RAY) of the current value."""
        return rdiv(self.pip(ilk).peek() * BLN, self.par)

    def poke(self, ilk: str) -> None:
        mat = self.ilks[ilk][1] if ilk in self.ilks else RAY
        self.vat.ilk(ilk).spot = rdiv(self.feed_price(ilk), mat)


# --- Vow --------------------------------------------------------------------------------


@dataclass
class Vow:
    """The system's balance sheet (vow.sol). Liquidated debt is queued by ``fess`` in
    ``sin[era]`` (and ``Sin``) for ``wait`` seconds; ``flog(era)`` releases it to be
    ``heal``-ed against the Vow's DAI (auction proceeds, penalties). What is neither queued
    nor on a debt auction (``Ash``) is ``woe``; once the Vow has no DAI left, ``woe`` is the
    bad debt a ``flop`` (MKR minting) must cover."""

    vat: Vat
    wait: int = 0
    address: str = "vow"
    sin: dict[int, int] = field(default_factory=dict)
    Sin: int = 0
    Ash: int = 0

    def __post_init__(self) -> None:
        _u("wait", self.wait)

    @property
    def woe(self) -> int:
        """``vat.sin(vow) − Sin − Ash`` (RAD)."""
        return self.vat.sin.get(self.address, 0) - self.Sin - self.Ash

    @property
    def joy(self) -> int:
        """The Vow's DAI (RAD)."""
        return self.vat.dai.get(self.address, 0)

    def fess(self, tab: int, now: int) -> None:
        tab = _u("tab", tab)
        era = _u("now", now)
        self.sin[era] = self.sin.get(era, 0) + tab
        self.Sin += tab

    def flog(self, era: int, now: int) -> None:
        era, now = _u("era", era), _u("now", now)
        if era + self.wait > now:
            raise Refused("vow/wait-not-finished", f"era={era} + wait={self.wait} > now={now}")
        self.Sin -= self.sin.get(era, 0)
        self.sin.pop(era, None)

    def heal(self, rad: int) -> None:
        rad = _u("rad", rad)
        if rad > self.joy:
            raise Refused("vow/insufficient-surplus", f"rad={rad} > dai={self.joy}")
        if rad > self.woe:
            raise Refused("vow/insufficient-debt", f"rad={rad} > woe={self.woe}")
        self.vat.heal(self.address, rad)

    def flop(self, sump: int) -> None:
        """Book ``sump`` of ``woe`` as on debt auction (``Ash``); the auction itself is
        not modelled."""
        sump = _u("sump", sump)
        if sump > self.woe:
            raise Refused("vow/insufficient-debt", f"sump={sump} > woe={self.woe}")
        if self.joy != 0:
            raise Refused("vow/surplus-not-zero", f"dai={self.joy} must be healed first")
        self.Ash += sump

    def kiss(self, rad: int) -> None:
        """Heal ``rad`` of on-auction debt with DAI a debt auction raised."""
        rad = _u("rad", rad)
        if rad > self.Ash:
            raise Refused("vow/not-enough-ash", f"rad={rad} > Ash={self.Ash}")
        if rad > self.joy:
            raise Refused("vow/insufficient-surplus", f"rad={rad} > dai={self.joy}")
        self.Ash -= rad
        self.vat.heal(self.address, rad)


# --- Dog --------------------------------------------------------------------------------


@dataclass
class DogIlk:
    """Per-collateral Dog settings: its ``clip``, ``chop`` (WAD, >= 1), ``hole`` (RAD: the
    most DAI its auctions may be raising at once), ``dirt`` (RAD: what they are raising now)
    and ``dust`` (RAD: the minimum vault debt, dss's ``Vat.ilks.dust``)."""

    clip: Clipper | None = None
    chop: int = WAD
    hole: int = 0
    dirt: int = 0
    dust: int = 0


@dataclass
class Dog:
    """dog.sol: ``bark`` liquidates an unsafe vault into its ilk's Clipper within the limits
    ``Hole`` (all ilks) and ``hole`` (per ilk), both RAD; ``Dirt``/``dirt`` count the DAI
    the running auctions are still to raise."""

    vat: Vat
    vow: Vow
    Hole: int = 0
    Dirt: int = 0
    ilks: dict[str, DogIlk] = field(default_factory=dict)
    address: str = "dog"

    def file(self, what: str, data: int) -> None:
        """``file("Hole", rad)``."""
        if what != "Hole":
            raise InvalidArgument(f"what={what!r} is not a Dog parameter (Hole)")
        self.Hole = _u("Hole", data)

    def file_ilk(self, ilk: str, what: str, data: int | Clipper) -> None:
        """``file(ilk, what, data)`` for ``chop`` (WAD, >= WAD), ``hole`` (RAD, >= dust),
        ``dust`` (RAD, <= hole) or ``clip`` (a ``Clipper`` of this ilk)."""
        i = self.ilks.setdefault(ilk, DogIlk())
        if what == "clip":
            if not isinstance(data, Clipper) or data.ilk != ilk:
                raise InvalidArgument(f"clip={data!r} must be a Clipper of ilk={ilk!r}")
            i.clip = data
            return
        if isinstance(data, Clipper):
            raise InvalidArgument(f"{what}={data!r} must be an int")
        if what == "chop":
            i.chop = _check_chop(data)
        elif what == "hole":
            hole = _u("hole", data)
            if hole < i.dust:
                raise InvalidArgument(f"hole={hole} must be >= dust={i.dust} of ilk={ilk!r}")
            i.hole = hole
        elif what == "dust":
            dust = _u("dust", data)
            if dust > i.hole:
                raise InvalidArgument(f"dust={dust} must be <= hole={i.hole} of ilk={ilk!r}")
            i.dust = dust
        else:
            raise InvalidArgument(f"what={what!r} is not a Dog ilk parameter (chop, hole, dust)")

    def ilk(self, ilk: str) -> DogIlk:
        found = self.ilks.get(ilk)
        if found is None:
            raise InvalidArgument(f"ilk={ilk!r} is not configured in the Dog")
        return found

    def chop(self, ilk: str) -> int:
        return self.ilk(ilk).chop

    def room(self, ilk: str) -> int:
        """``min(Hole − Dirt, hole − dirt)``, 0 once either limit is reached."""
        i = self.ilk(ilk)
        return max(0, min(self.Hole - self.Dirt, i.hole - i.dirt))

    def bark(self, ilk: str, urn: str, kpr: str, now: int) -> Bark:
        """Liquidate vault ``urn`` of ``ilk`` (``bark_size``): its ``dink`` and ``dart`` go
        to the Clipper and the Vow's ``sin``, ``due = dart·rate`` is queued in the Vow at
        ``now``, ``tab = due·chop/WAD`` is added to ``Dirt`` and ``dirt``, and the auction
        is kicked with ``kpr`` receiving the incentive. All or nothing."""
        _u("now", now)
        i, v = self.ilk(ilk), self.vat.ilk(ilk)
        if i.clip is None:
            raise Refused("dog/no-clip", f"ilk={ilk!r} has no Clipper")
        u = self.vat.urns.get((ilk, urn), Urn())  # an unknown vault is not unsafe
        sized = bark_size(u.ink, u.art, v.rate, v.spot, i.dust, i.chop, self.room(ilk))
        top, coin = i.clip.check_kick(sized.tab, sized.dink, urn)
        self.vat.grab(ilk, urn, i.clip.address, self.vow.address, sized.dink, sized.dart)
        self.vow.fess(sized.dart * v.rate, now)
        self.Dirt += sized.tab
        i.dirt += sized.tab
        aid = i.clip.start(sized.tab, sized.dink, urn, kpr, now, top, coin)
        return sized._replace(id=aid)

    def digs(self, ilk: str, rad: int) -> None:
        i, rad = self.ilk(ilk), _u("rad", rad)
        if rad > self.Dirt or rad > i.dirt:
            raise Refused("dog/digs-underflow", f"rad={rad} > Dirt={self.Dirt} or dirt={i.dirt}")
        self.Dirt -= rad
        i.dirt -= rad


# --- Clipper ----------------------------------------------------------------------------


@dataclass
class Sale:
    """One running auction (clip.sol ``sales``): index ``pos`` in ``active``, DAI still to
    raise ``tab`` (RAD), collateral left ``lot`` (WAD), vault owner ``usr``, start ``tic``
    (s) and starting price ``top`` (RAY)."""

    pos: int = 0
    tab: int = 0
    lot: int = 0
    usr: str = ""
    tic: int = 0
    top: int = 0


class Status(NamedTuple):
    """clip.sol ``getStatus``: ``needs_redo``, current ``price`` (RAY), ``lot``, ``tab``."""

    needs_redo: bool
    price: int
    lot: int
    tab: int


@dataclass
class Clipper:
    """clip.sol for one ilk. Parameters (``file``): ``calc`` (a ``curves`` curve),
    ``buf`` (RAY >= RAY), ``tail`` (s), ``cusp`` (RAY <= RAY), ``chip`` (WAD), ``tip``
    (RAD), ``stopped`` (0 none; 1 no kick; 2 no kick/redo; 3 no kick/redo/take).
    ``chost = wmul(dust, chop)`` is refreshed by ``upchost()``."""

    vat: Vat
    spotter: Spotter
    dog: Dog
    ilk: str
    calc: Curve | None = None
    buf: int = RAY
    tail: int = 0
    cusp: int = 0
    chip: int = 0
    tip: int = 0
    chost: int = 0
    stopped: int = 0
    kicks: int = 0
    active: list[int] = field(default_factory=list)
    sales: dict[int, Sale] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"clip-{self.ilk}"

    @property
    def vow(self) -> Vow:
        return self.dog.vow

    def file(self, what: str, data: int | Curve) -> None:
        if what == "calc":
            if isinstance(data, int) or not callable(getattr(data, "price", None)):
                raise InvalidArgument(f"calc={data!r} must be a curve with price(top, dur)")
            self.calc = data
            return
        if not isinstance(data, int):
            raise InvalidArgument(f"{what}={data!r} must be an int")
        if what == "buf":
            if type(data) is int and 0 <= data < RAY:
                raise InvalidArgument(f"buf={data} must be >= RAY={RAY} (1.0)")
            self.buf = _u("buf", data, RAY)
        elif what == "tail":
            self.tail = _u("tail", data)
        elif what == "cusp":
            self.cusp = check_int("cusp", data, 0, RAY)
        elif what == "chip":
            self.chip = check_int("chip", data, 0, _CHIP_MAX)
        elif what == "tip":
            self.tip = check_int("tip", data, 0, _TIP_MAX)
        elif what == "stopped":
            self.stopped = check_int("stopped", data, 0, 3)
        else:
            raise InvalidArgument(
                f"what={what!r} is not a Clipper parameter "
                "(calc, buf, tail, cusp, chip, tip, stopped)"
            )

    def upchost(self) -> None:
        i = self.dog.ilk(self.ilk)
        self.chost = wmul(i.dust, i.chop)

    def sale(self, aid: int) -> Sale:
        """The sale, or the all-zero record dss returns for an unknown id."""
        return self.sales.get(aid, Sale())

    def count(self) -> int:
        """The number of running auctions (their ids are ``active``)."""
        return len(self.active)

    # ------------------------------------------------------------------ auction

    def _stopped(self, level: int, action: str) -> None:
        if self.stopped >= level:
            raise Refused("clipper/stopped", f"stopped={self.stopped} refuses {action}")

    def _running(self, aid: int) -> Sale:
        s = self.sales.get(aid)
        if s is None:
            raise Refused("clipper/not-running-auction", f"id={aid} is not running")
        return s

    def _status(self, s: Sale, now: int) -> tuple[bool, int]:
        if self.calc is None:
            raise Refused("clipper/no-calc", "no price curve filed (file('calc', …))")
        now = _u("now", now)
        if now < s.tic:
            raise InvalidArgument(f"now={now} precedes the auction's tic={s.tic}")
        dur = now - s.tic
        price = self.calc.price(s.top, dur)
        return dur > self.tail or rdiv(price, s.top) < self.cusp, price

    def _coin(self, tab: int) -> int:
        return self.tip + wmul(tab, self.chip) if self.tip > 0 or self.chip > 0 else 0

    def check_kick(self, tab: int, lot: int, usr: str) -> tuple[int, int]:
        """What ``kick`` would do, without doing it: ``(top, coin)``, or the refusal."""
        self._stopped(1, "kick")
        if _u("tab", tab) == 0:
            raise Refused("clipper/zero-tab", "tab=0")
        if _u("lot", lot) == 0:
            raise Refused("clipper/zero-lot", "lot=0")
        if not usr:
            raise Refused("clipper/zero-usr", f"usr={usr!r}")
        feed = self.spotter.feed_price(self.ilk)
        if feed == 0:
            raise Refused("clipper/zero-top-price", "the feed price is 0")
        return start_price(feed, self.buf), self._coin(tab)

    def start(self, tab: int, lot: int, usr: str, kpr: str, now: int, top: int, coin: int) -> int:
        # the effects of kick once check_kick passed
        self.kicks += 1
        aid = self.kicks
        self.active.append(aid)
        self.sales[aid] = Sale(len(self.active) - 1, tab, lot, usr, now, top)
        if coin:
            self.vat.suck(self.vow.address, kpr, coin)
        return aid

    def kick(self, tab: int, lot: int, usr: str, kpr: str, now: int) -> int:
        """Start an auction of ``lot`` (WAD) to raise ``tab`` (RAD) at
        ``top = rmul(feedPrice, buf)``; ``kpr`` receives ``tip + wmul(tab, chip)`` minted
        against the Vow. ``Dog.bark`` calls it; the collateral must already be here.
        Returns the id."""
        _u("now", now)
        top, coin = self.check_kick(tab, lot, usr)
        return self.start(tab, lot, usr, kpr, now, top, coin)

    def status(self, aid: int, now: int) -> Status:
        """``(needs_redo, price, lot, tab)`` at ``now``: the price is
        ``calc.price(top, now − tic)``; a redo is needed once ``now − tic > tail`` or
        ``rdiv(price, top) < cusp``."""
        s = self.sales.get(aid)
        if s is None:
            return Status(False, 0, 0, 0)
        done, price = self._status(s, now)
        return Status(done, price, s.lot, s.tab)

    def take(
        self, aid: int, amt: int, max: int, who: str, now: int, sender: str | None = None
    ) -> Take:
        """Buy up to ``amt`` (WAD) of auction ``aid`` at no more than ``max`` (RAY per
        unit) at ``now`` (``take_size``): the collateral goes to ``who``, ``owe`` DAI is paid
        by ``sender`` (default ``who``) to the Vow, ``Dirt``/``dirt`` fall by ``owe`` (by
        all of ``tab`` once the lot is gone: the rest stays as bad debt in the Vow), and an
        auction whose ``tab`` is paid returns the leftover lot to the vault owner."""
        self._stopped(3, "take")
        amt, mx = _u("amt", amt), _u("max", max)
        s = self._running(aid)
        done, price = self._status(s, now)
        if done:
            raise Refused("clipper/needs-reset", f"id={aid} needs redo at now={now}")
        if mx < price:
            raise InvalidArgument(f"max={mx} < price={price} (Clipper/too-expensive)")
        got = take_size(s.tab, s.lot, amt, price, self.chost)
        payer = who if sender is None else sender
        if self.vat.dai.get(payer, 0) < got.owe:
            raise Refused("vat/insufficient-dai", f"{payer}: dai < owe={got.owe}")
        tab, lot = s.tab - got.owe, s.lot - got.slice
        self._check_holds(
            got.slice + (lot if tab == 0 else 0), tab + got.owe if lot == 0 else got.owe
        )
        self.vat.flux(self.ilk, self.address, who, got.slice)
        self.vat.move(payer, self.vow.address, got.owe)
        self.dog.digs(self.ilk, tab + got.owe if lot == 0 else got.owe)
        if lot == 0:
            self._remove(aid)
        elif tab == 0:
            self.vat.flux(self.ilk, self.address, s.usr, lot)
            self._remove(aid)
        else:
            s.tab, s.lot = tab, lot
        return got

    def redo(self, aid: int, kpr: str, now: int) -> int:
        """Restart an auction that needs it at ``top = rmul(feedPrice, buf)``, ``tic = now``;
        ``kpr`` gets ``tip + wmul(tab, chip)`` only if ``tab >= chost`` and
        ``lot·feedPrice >= chost``. Returns that incentive (RAD)."""
        self._stopped(2, "redo")
        s = self._running(aid)
        done, _ = self._status(s, now)
        if not done:
            raise Refused("clipper/cannot-reset", f"id={aid} does not need a redo at now={now}")
        feed = self.spotter.feed_price(self.ilk)
        top = rmul(feed, self.buf)
        if top == 0:
            raise Refused("clipper/zero-top-price", "the feed price is 0")
        coin = 0
        if (self.tip > 0 or self.chip > 0) and s.tab >= self.chost and s.lot * feed >= self.chost:
            coin = self._coin(s.tab)
        s.tic, s.top = now, top
        if coin:
            self.vat.suck(self.vow.address, kpr, coin)
        return coin

    def yank(self, aid: int, to: str) -> None:
        """Cancel an auction (governance / Emergency Shutdown): its lot goes to ``to``."""
        s = self._running(aid)
        self._check_holds(s.lot, s.tab)
        self.dog.digs(self.ilk, s.tab)
        self.vat.flux(self.ilk, self.address, to, s.lot)
        self._remove(aid)

    def _check_holds(self, wad: int, dig: int) -> None:
        # dss would revert half-way (vat.flux, dog.digs); refuse before anything moves
        held = self.vat.gem.get((self.ilk, self.address), 0)
        if held < wad:
            raise Refused("vat/insufficient-gem", f"{self.address}: gem={held} < {wad}")
        i = self.dog.ilk(self.ilk)
        if dig > self.dog.Dirt or dig > i.dirt:
            raise Refused(
                "dog/digs-underflow", f"rad={dig} > Dirt={self.dog.Dirt} or dirt={i.dirt}"
            )

    def _remove(self, aid: int) -> None:
        last = self.active[-1]
        if aid != last:
            idx = self.sales[aid].pos
            self.active[idx] = last
            self.sales[last].pos = idx
        self.active.pop()
        del self.sales[aid]


# --- ClipperMom -------------------------------------------------------------------------


@dataclass
class ClipperMom:
    """The circuit breaker (``makerdao/clipper-mom``). ``trip_breaker(clip)`` is
    permissionless: it sets ``stopped = 2`` when the OSM's next price ``nxt`` is below
    ``rmul(cur, tolerance)`` (tolerance 0.5 RAY allows a 50% drop). Governance's
    ``set_breaker`` sets any level and locks the permissionless trip for ``delay`` s."""

    spotter: Spotter
    tolerance: dict[str, int] = field(default_factory=dict)
    locked: dict[str, int] = field(default_factory=dict)

    def set_price_tolerance(self, clip: Clipper, value: int) -> None:
        if type(value) is int and value > RAY:
            raise InvalidArgument(f"tolerance={value} must be <= RAY={RAY}")
        self.tolerance[clip.address] = _u("tolerance", value)

    def set_breaker(self, clip: Clipper, level: int, delay: int, now: int) -> None:
        clip.file("stopped", check_int("level", level, 0, 3))
        self.locked[clip.address] = _u("now", now) + _u("delay", delay)

    def trip_breaker(self, clip: Clipper, now: int) -> None:
        if clip.stopped >= 2:
            raise Refused("clipper-mom/clipper-already-stopped", f"stopped={clip.stopped}")
        if _u("now", now) <= self.locked.get(clip.address, 0):
            raise Refused(
                "clipper-mom/temporary-locked",
                f"now={now} <= locked={self.locked.get(clip.address, 0)}",
            )
        pip = self.spotter.pip(clip.ilk)
        cur, nxt = pip.peek(), pip.peep()
        floor = rmul(cur, self.tolerance.get(clip.address, 0))
        if not nxt < floor:
            raise Refused("clipper-mom/price-within-bounds", f"nxt={nxt} >= cur×tolerance={floor}")
        clip.stopped = 2


# --- ETH-A parameters and the preset ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClipperParams:
    """One ilk's liquidation parameters in Maker units: the stair-step ``cut`` (RAY) every
    ``step`` s, ``buf`` and ``cusp`` (RAY), ``tail`` (s), ``chop`` and ``chip`` (WAD),
    ``tip`` (RAD). ``apply`` files them into a Clipper and its Dog."""

    cut: int
    step: int
    buf: int
    tail: int
    cusp: int
    chop: int
    chip: int
    tip: int

    def __post_init__(self) -> None:
        StairstepExponentialDecrease(self.cut, self.step)  # validates cut and step
        if type(self.buf) is int and 0 <= self.buf < RAY:
            raise InvalidArgument(f"buf={self.buf} must be >= RAY={RAY} (1.0)")
        _u("buf", self.buf, RAY)
        _u("tail", self.tail)
        check_int("cusp", self.cusp, 0, RAY)
        _check_chop(self.chop)
        check_int("chip", self.chip, 0, _CHIP_MAX)
        check_int("tip", self.tip, 0, _TIP_MAX)

    @property
    def curve(self) -> StairstepExponentialDecrease:
        return StairstepExponentialDecrease(self.cut, self.step)

    def apply(self, clip: Clipper) -> None:
        clip.dog.file_ilk(clip.ilk, "chop", self.chop)
        clip.file("calc", self.curve)
        for what in ("buf", "tail", "cusp", "chip", "tip"):
            clip.file(what, getattr(self, what))
        clip.upchost()


ETH_A: Final = ClipperParams(
    cut=99 * RAY // 100,
    step=90,
    buf=120 * RAY // 100,
    tail=8_400,
    cusp=40 * RAY // 100,
    chop=113 * WAD // 100,
    chip=WAD // 1000,
    tip=300 * RAD,
)
"""ETH-A-like: −1% every 90 s from 120% of the OSM price, reset after 140 min or below 40%
of ``top``, 13% penalty, keeper paid 300 DAI + 0.1% of ``tab`` (anchors.md §2.1, MIP45)."""


def maker_mechanism(quote_decimals: int = 6, params: ClipperParams = ETH_A) -> DutchAuction:
    """liqeng's ``DutchAuction`` configured as a Maker Clipper with ``params`` (ETH-A).

    Translation to a perp/option book (quote asset with ``quote_decimals``, 6 for USDC):
    the curve, ``buf``, ``tail`` and ``cusp`` are Maker's; the penalty rate is
    ``chop − 1`` (13%) of the notional and goes to the insurance fund (Maker's Vow surplus
    buffer, which absorbs bad debt first); the kick pays ``tip`` (in quote units) plus a
    share ``chip·chop/(chop − 1)`` of the penalty, i.e. ``chip`` of ``notional·chop``,
    Maker's ``chip·tab`` when the notional stands for the vault's debt (rounded down)."""
    dec = check_int("quote_decimals", quote_decimals, 0, 36)
    if not isinstance(params, ClipperParams):
        raise InvalidArgument(f"params={params!r} must be ClipperParams")
    penalty = params.chop - WAD
    rate = penalty * RATE_SCALE // WAD
    share = (
        0
        if penalty == 0
        else min(RATE_SCALE, params.chip * params.chop * RATE_SCALE // (penalty * WAD))
    )
    reward = KeeperReward(tip=params.tip * 10**dec // RAD, share=share)
    return DutchAuction(
        curve=params.curve,
        buf=params.buf,
        tail=params.tail,
        cusp=params.cusp,
        penalty_rate=rate,
        keeper_reward=reward,
    )


PRESET: Final = Preset(
    name="maker",
    protocol="Maker Liquidations 2.0",
    mechanism=maker_mechanism,
    reproduces=("MKR-A1", "MKR-A2", "MKR-A3", "MKR-A4", "MKR-A5", "MKR-A6", "MKR-A7"),
    simplifies=(
        "The engine runs liqeng's DutchAuction of the whole book with ETH-A's curve, buf, "
        "tail, cusp, chop and tip + chip; Dog/Clipper sizing in DAI units (Hole/hole, the "
        "dust remnant and chost rules, partial takes by amt/max), the OSM delay and the "
        "ClipperMom breaker live only in the Maker API of this module, and bad debt goes "
        "to the insurance fund, then is booked, instead of a Vow queue and MKR flop."
    ),
)
