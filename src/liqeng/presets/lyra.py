"""Lyra / Derive v2 (``derivexyz/v2-core``) as a liqeng preset: the portfolio margin (PMRM)
and the solvent and insolvent Dutch auctions, exactly as ``lyra_pmrm.md`` writes them
(docs/presets/lyra.md), every parameter settable.

**PMRM** (``PMRMParams``, ``pmrm(portfolio, params)``), floating point as Lyra's own
simulations (``lyra_pmrm.md`` §4). Per expiry ``E``: ``τ_E = max(E − now, 0)``,
``T_E = τ_E/31 536 000``, ``F_E(s) = variable_E·s + fixed_E`` (only the variable part is
shocked), ``r_E = max(rate_E, 0)``; options by undiscounted Black-76 with Lyra's edge rules
(``option_price``)::

    V_E(s, v) = Σ_k amount_k·price_k(F_E(s), K_k, σ_k·v, T_E);   mtm_E = V_E(1, 1)
    x_E = pivot/max(τ_E, dteFloor);  m_E = x_E**(short if τ_E ≤ pivot else long)
    up_E = 1 + volRangeUp·m_E;  down_E = max(0, 1 − volRangeDown·m_E)
    δ_E = baseStaticDiscount·exp(−T_E·(rateMultScale·r_E + rateAddScale));  D_E(X) = δ_E·X if X > 0
    Δ_i = Σ_E [D_E(V_E(s_i, v_iE)) − mtm_E] + (base·S·s_i − base·S)/P_stable
          + perp·(s_i − 1)·perpPrice
    BC  = Σ_E min(V_E(basisUp, 1) − mtm_E, V_E(basisDown, 1) − mtm_E, 0)·(basisAdd + basisMult·T_E)
    SC  = S·[perpPct·|perp| + basePct·base + optionPct·Σ_E naked_E],
          naked_E = Σ_K max(0, −(a_call,K + a_put,K))
    CC  = S·[g(min(conf_spot, conf_perp), |perp| + base)
             + Σ_E g(min(conf_spot, conf_fwd_E, conf_rate_E, conf_vol_E), Σ_k |a_k|)],
          g(c, a) = (1 − c)·confMargin·a if c < confThreshold, else 0
    MtM = cash + Σ_E mtm_E + base·S/P_stable + perpUnrealisedPnL
    MM_i = min(BC, Δ_i) − SC + MtM;   MM = min(BC, min_i Δ_i) − SC + MtM
    IM  = (min(BC, min_i Δ_i) − SC)·(imFactor + peg) − CC + MtM,
          peg = pegLossFactor·(pegLossThreshold − P_stable) if P_stable < pegLossThreshold
    BM_i = MM_i + b·(MM_i − MtM)

Where ``risk.portfolio`` matches it is reused: the vol-shock curve is
``portfolio.VolShockCurve`` and ``LYRA_PMRM`` is the engine margin of ``PRESET``. What this
module adds (``portfolio.PortfolioMarginModel`` lacks it): the fixed/variable forward split,
a rate per expiry in ``δ_E``, the stable-coin price and peg term, the confidence
contingency, base and perp terms with their own prices, per-scenario ``MM_i`` and the
buffer margin; and MtM-based (not requirement-based) signs.

**Auction** (``AuctionParams``, ``start_auction``, ``Auction.bid``; ``lyra_pmrm.md`` §5,
anchors.md §2.5). Discount ``d(e)`` is liqeng's ``curves.TwoSlope`` (Lyra's on-chain
truncation included). Solvent: ``fee = f_max(MtM, BM, 1, 0)·|MtM|·φ`` to the security module
at the start; a bid of ``percent`` pays ``(MtM − R)·d·f`` for ``f = min(percent, f_max)``
with ``f_max = B/(B − d·MtM − (1 − d)·R)``, ``B = min(BM, 0)`` (1 if ``MtM < mtmCutoff``);
every balance but the reserved cash ``R`` moves by ``f``; ``R`` grows by the payment.
Insolvent: the price runs from ``min(MtM, 0)`` to ``MM`` over ``insolventLength``; the
security module pays the bidder ``−price·f`` as far as its cash goes, the rest is socialised.

**Engine preset** ``PRESET``: liqeng's ``DutchAuction`` with ``TwoSlope`` (start, cutoff,
fast, slow from ``PMRM_SIM_AUCTION``, the set ``LYRA_PMRM`` comes with) and
``margin=Scenario(LYRA_PMRM)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from types import MappingProxyType
from typing import Final

import numpy as np

from liqeng.errors import InvalidArgument, Refused
from liqeng.liquidation.curves import RAY, TwoSlope
from liqeng.liquidation.dutch_auction import DutchAuction
from liqeng.presets.base import Preset
from liqeng.risk.models import Scenario
from liqeng.risk.portfolio import LYRA_PMRM, VolShockCurve

__all__ = [
    "LYRA_SCENARIOS",
    "MAINNET_AUCTION",
    "PMRM_SIM_AUCTION",
    "PRESET",
    "UNIT_TEST_AUCTION",
    "YEAR_SECONDS",
    "Auction",
    "AuctionParams",
    "BidResult",
    "ExpiryFeed",
    "Option",
    "PMRMParams",
    "PMRMResult",
    "Portfolio",
    "VolShock",
    "buffer_margin",
    "call_price",
    "f_max",
    "insolvent_bid_price",
    "lyra_mechanism",
    "option_price",
    "pmrm",
    "put_price",
    "start_auction",
    "static_discount",
    "vol_shock",
]

YEAR_SECONDS: Final = 31_536_000
DAY: Final = 86_400


def _real(name: str, value: object, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise InvalidArgument(f"{name}={value!r} must be a real number")
    v = float(value)
    if not math.isfinite(v):
        raise InvalidArgument(f"{name}={value!r} must be finite")
    if low is not None and v < low:
        raise InvalidArgument(f"{name}={value!r} must be >= {low}")
    if high is not None and v > high:
        raise InvalidArgument(f"{name}={value!r} must be <= {high}")
    return v


def _seconds(name: str, value: object, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name}={value!r} must be an int number of seconds")
    if value < low:
        raise InvalidArgument(f"{name}={value} must be >= {low} seconds")
    return value


# --- Black-76 as Lyra prices it --------------------------------------------------------------


def _ncdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def call_price(forward: float, strike: float, vol: float, t_years: float) -> float:
    """Undiscounted Black-76 call with Lyra's edge rules: ``K = 0`` → ``F``; ``F = 0`` → 0;
    total vol ``σ√T = 0`` → 1 wei (intrinsic); ``σ√T >= 24`` → ``F``; capped at ``F``."""
    if strike <= 0.0:
        return forward
    if forward <= 0.0:
        return 0.0
    tv = vol * math.sqrt(t_years)
    if tv <= 0.0:
        tv = 1e-18
    if tv >= 24.0:
        return forward
    d1 = (math.log(forward / strike) + 0.5 * tv * tv) / tv
    c = forward * _ncdf(d1) - strike * _ncdf(d1 - tv)
    return min(max(c, 0.0), forward)


def put_price(forward: float, strike: float, vol: float, t_years: float) -> float:
    """``max(C + K − F, 0)`` (put–call parity on the call), ``K = 0`` → 0, ``F = 0`` → ``K``,
    capped at ``K``."""
    if strike <= 0.0:
        return 0.0
    if forward <= 0.0:
        return strike
    c = call_price(forward, strike, vol, t_years)
    return min(max(c + strike - forward, 0.0), strike)


def option_price(forward: float, strike: float, vol: float, t_years: float, is_call: bool) -> float:
    """``call_price`` or ``put_price``."""
    return (call_price if is_call else put_price)(forward, strike, vol, t_years)


# --- parameters and inputs ----------------------------------------------------------------

LYRA_SCENARIOS: Final = tuple(
    (s, d) for s in (1.15, 1.10, 1.05, 1.00, 0.95, 0.90, 0.85) for d in (1, 0, -1)
)
"""``lyra_pmrm.md`` §4.1: 21 ``(spot shock, vol direction)`` pairs in index order
(direction 1 Up, 0 None, −1 Down)."""


@dataclass(frozen=True, slots=True)
class PMRMParams:
    """Every PMRM parameter (``lyra_pmrm.md`` §6 defaults); times in seconds."""

    scenarios: tuple[tuple[float, int], ...] = LYRA_SCENARIOS
    basis_spot_up: float = 1.05
    basis_spot_down: float = 0.95
    basis_add_factor: float = 0.25
    basis_mult_factor: float = 0.01
    peg_loss_threshold: float = 0.98
    peg_loss_factor: float = 2.0
    conf_threshold: float = 0.6
    conf_margin: float = 0.5
    base_percent: float = 0.02
    perp_percent: float = 0.02
    option_percent: float = 0.01
    im_factor: float = 1.3
    base_static_discount: float = 0.95
    rate_mult_scale: float = 4.0
    rate_add_scale: float = 0.05
    vol_range_up: float = 0.45
    vol_range_down: float = 0.30
    short_term_power: float = 0.30
    long_term_power: float = 0.13
    dte_floor: int = DAY
    pivot: int = 30 * DAY

    def __post_init__(self) -> None:
        if not isinstance(self.scenarios, tuple) or not self.scenarios:
            raise InvalidArgument(f"scenarios={self.scenarios!r} must be a non-empty tuple")
        for i, sc in enumerate(self.scenarios):
            if not isinstance(sc, tuple) or len(sc) != 2:
                raise InvalidArgument(f"scenarios[{i}]={sc!r} must be (spot shock, direction)")
            if _real(f"scenarios[{i}] spot shock", sc[0], 0.0) <= 0.0:
                raise InvalidArgument(f"scenarios[{i}] spot shock={sc[0]!r} must be > 0")
            if isinstance(sc[1], bool) or sc[1] not in (-1, 0, 1):
                raise InvalidArgument(f"scenarios[{i}] vol direction={sc[1]!r} must be -1/0/1")
        for name in (
            "basis_add_factor",
            "basis_mult_factor",
            "peg_loss_threshold",
            "peg_loss_factor",
            "conf_margin",
            "base_percent",
            "perp_percent",
            "option_percent",
            "rate_mult_scale",
            "rate_add_scale",
            "vol_range_up",
            "vol_range_down",
            "short_term_power",
            "long_term_power",
        ):
            _real(name, getattr(self, name), 0.0)
        _real("conf_threshold", self.conf_threshold, 0.0, 1.0)
        _real("basis_spot_up", self.basis_spot_up, 1.0)
        _real("basis_spot_down", self.basis_spot_down, 0.0, 1.0)
        _real("im_factor", self.im_factor, 1.0)
        if not 0.0 < _real("base_static_discount", self.base_static_discount) <= 1.0:
            raise InvalidArgument(
                f"base_static_discount={self.base_static_discount!r} must be in (0, 1]"
            )
        _seconds("dte_floor", self.dte_floor, 1)
        _seconds("pivot", self.pivot, 1)

    @property
    def vol_curve(self) -> VolShockCurve:
        """The same curve as ``risk.portfolio.VolShockCurve`` (days; no minimum up-vol)."""
        return VolShockCurve(
            self.vol_range_up,
            self.vol_range_down,
            0.0,
            self.short_term_power,
            self.long_term_power,
            self.pivot / DAY,
            self.dte_floor / DAY,
        )


@dataclass(frozen=True, slots=True)
class Option:
    """One option leg: ``amount`` (signed, in units of the underlying), its vol-feed value."""

    expiry: int
    strike: float
    is_call: bool
    amount: float
    vol: float

    def __post_init__(self) -> None:
        _seconds("expiry", self.expiry)
        _real("strike", self.strike, 0.0)
        if not isinstance(self.is_call, bool):
            raise InvalidArgument(f"is_call={self.is_call!r} must be a bool")
        _real("amount", self.amount)
        _real("vol", self.vol, 0.0)


@dataclass(frozen=True, slots=True)
class ExpiryFeed:
    """The forward of one expiry (``variable + fixed``; only ``variable`` is shocked), its
    rate (floored at 0 in ``δ``) and the forward, rate and vol confidences."""

    forward_variable: float
    forward_fixed: float = 0.0
    rate: float = 0.0
    forward_conf: float = 1.0
    rate_conf: float = 1.0
    vol_conf: float = 1.0

    def __post_init__(self) -> None:
        _real("forward_variable", self.forward_variable, 0.0)
        _real("forward_fixed", self.forward_fixed)
        _real("rate", self.rate)
        for name in ("forward_conf", "rate_conf", "vol_conf"):
            _real(name, getattr(self, name), 0.0, 1.0)

    def forward(self, s: float = 1.0) -> float:
        """``variable·s + fixed``."""
        return self.forward_variable * s + self.forward_fixed


@dataclass(frozen=True, slots=True)
class Portfolio:
    """A Lyra subaccount at ``now``: cash, options (with ``expiries`` feeds), ``base`` units
    of the underlying (at ``spot/stable_price``), a perp (``perp`` units marked at
    ``perp_price``, default the spot, with ``perp_pnl`` unrealised) and the spot, perp and
    stable feeds (``stable_price``) with their confidences."""

    now: int
    spot: float
    options: tuple[Option, ...] = ()
    expiries: Mapping[int, ExpiryFeed] = field(default_factory=lambda: MappingProxyType({}))
    cash: float = 0.0
    base: float = 0.0
    perp: float = 0.0
    perp_price: float | None = None
    perp_pnl: float = 0.0
    stable_price: float = 1.0
    spot_conf: float = 1.0
    perp_conf: float = 1.0

    def __post_init__(self) -> None:
        _seconds("now", self.now)
        if _real("spot", self.spot, 0.0) <= 0.0:
            raise InvalidArgument(f"spot={self.spot!r} must be > 0")
        if not isinstance(self.options, tuple):
            raise InvalidArgument(f"options={self.options!r} must be a tuple of Option")
        for o in self.options:
            if not isinstance(o, Option):
                raise InvalidArgument(f"option={o!r} must be an Option")
            if o.expiry not in self.expiries:
                raise InvalidArgument(f"option expiry={o.expiry} has no ExpiryFeed")
        for e, feed in self.expiries.items():
            if not isinstance(feed, ExpiryFeed):
                raise InvalidArgument(f"expiries[{e}]={feed!r} must be an ExpiryFeed")
        _real("cash", self.cash)
        _real("base", self.base, 0.0)
        _real("perp", self.perp)
        if self.perp_price is not None:
            _real("perp_price", self.perp_price, 0.0)
        _real("perp_pnl", self.perp_pnl)
        if _real("stable_price", self.stable_price, 0.0) <= 0.0:
            raise InvalidArgument(f"stable_price={self.stable_price!r} must be > 0")
        _real("spot_conf", self.spot_conf, 0.0, 1.0)
        _real("perp_conf", self.perp_conf, 0.0, 1.0)

    def after_transfer(self, f: float, reserved: float, cash_in: float) -> Portfolio:
        """``executeBid``: fraction ``f`` of every balance but the reserved cash leaves
        (``a → a − f·a``, ``c → c − f·(c − R)``), then ``cash_in`` is credited."""
        keep = 1.0 - f
        return replace(
            self,
            options=tuple(replace(o, amount=o.amount - f * o.amount) for o in self.options),
            cash=self.cash - f * (self.cash - reserved) + cash_in,
            base=self.base * keep,
            perp=self.perp - f * self.perp,
            perp_pnl=self.perp_pnl - f * self.perp_pnl,
        )


# --- PMRM --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VolShock:
    """``x = pivot/max(τ, dteFloor)``, ``m = x**p``, the up and down multipliers."""

    x: float
    m: float
    up: float
    down: float


def vol_shock(tau: int, params: PMRMParams | None = None) -> VolShock:
    """The vol-shock pair of an expiry ``tau`` seconds away (``lyra_pmrm.md`` §4.3), through
    ``risk.portfolio.VolShockCurve``."""
    p = PMRMParams() if params is None else params
    t = _seconds("tau", tau)
    curve = p.vol_curve
    m = float(curve.factor(np.asarray(t / DAY)))
    mult = curve.shock(np.ones(2), np.full(2, t / DAY), np.array([1.0, -1.0]))
    return VolShock(p.pivot / max(t, p.dte_floor), m, float(mult[0]), float(mult[1]))


def static_discount(t_years: float, rate: float, params: PMRMParams | None = None) -> float:
    """``δ = baseStaticDiscount·exp(−T·(rateMultScale·max(r, 0) + rateAddScale))``."""
    p = PMRMParams() if params is None else params
    k = p.rate_mult_scale * max(rate, 0.0) + p.rate_add_scale
    return p.base_static_discount * math.exp(-t_years * k)


def buffer_margin(mm: float, mtm: float, b: float) -> float:
    """``BM = MM + b·(MM − MtM)`` (``DutchAuction._getBufferMargin``)."""
    return mm + b * (mm - mtm)


@dataclass(frozen=True, slots=True)
class PMRMResult:
    """The PMRM of one portfolio: ``mtm``; per expiry ``mtm_by_expiry``; per scenario
    ``scenario_pnl`` (``Δ_i``) and ``mm_by_scenario`` (``MM_i``); the contingencies
    (``basis`` ≤ 0, ``static`` ≥ 0, ``confidence`` ≥ 0, IM only); ``peg``; the account ``mm``
    and ``im``; ``worst_scenario`` (first index with the most negative ``MM_i``)."""

    mtm: float
    mtm_by_expiry: Mapping[int, float]
    scenario_pnl: tuple[float, ...]
    mm_by_scenario: tuple[float, ...]
    basis_contingency: float
    static_contingency: float
    confidence_contingency: float
    peg: float
    mm: float
    im: float
    worst_scenario: int

    def buffer_margin(self, scenario: int, b: float) -> float:
        """``BM_i = MM_i + b·(MM_i − MtM)``."""
        return buffer_margin(self.mm_by_scenario[scenario], self.mtm, b)


def _conf_term(conf: float, amount: float, p: PMRMParams) -> float:
    return (1.0 - conf) * p.conf_margin * amount if conf < p.conf_threshold else 0.0


def pmrm(portfolio: Portfolio, params: PMRMParams | None = None) -> PMRMResult:
    """MtM, ``Δ_i``, ``MM_i``, MM, IM and the contingencies (module doc)."""
    p = PMRMParams() if params is None else params
    if not isinstance(portfolio, Portfolio):
        raise InvalidArgument(f"portfolio={portfolio!r} must be a Portfolio")
    pf = portfolio
    spot = pf.spot
    by_expiry: dict[int, list[Option]] = {}
    for o in pf.options:
        by_expiry.setdefault(o.expiry, []).append(o)
    n = len(p.scenarios)
    deltas = [0.0] * n
    bc = 0.0
    naked_total = 0.0
    cc_options = 0.0
    mtm_e: dict[int, float] = {}
    for expiry in sorted(by_expiry):
        legs, feed = by_expiry[expiry], pf.expiries[expiry]
        tau = max(expiry - pf.now, 0)
        t = tau / YEAR_SECONDS
        shock = vol_shock(tau, p)
        delta = static_discount(t, feed.rate, p)

        def value(
            s: float, v: float, legs: list[Option] = legs, t: float = t, feed: ExpiryFeed = feed
        ) -> float:
            fwd = feed.forward(s)
            return sum(
                o.amount * option_price(fwd, o.strike, o.vol * v, t, o.is_call) for o in legs
            )

        mtm = value(1.0, 1.0)
        mtm_e[expiry] = mtm
        mult = {1: shock.up, 0: 1.0, -1: shock.down}
        for i, (s, d) in enumerate(p.scenarios):
            x = value(s, mult[d])
            deltas[i] += (delta * x if x > 0.0 else x) - mtm
        worst = min(value(p.basis_spot_up, 1.0) - mtm, value(p.basis_spot_down, 1.0) - mtm, 0.0)
        bc += worst * (p.basis_add_factor + p.basis_mult_factor * t)
        strikes: dict[float, float] = {}
        for o in legs:
            strikes[o.strike] = strikes.get(o.strike, 0.0) + o.amount
        naked_total += sum(max(0.0, -a) for a in strikes.values())
        conf = min(pf.spot_conf, feed.forward_conf, feed.rate_conf, feed.vol_conf)
        cc_options += _conf_term(conf, sum(abs(o.amount) for o in legs), p)
    perp_price = spot if pf.perp_price is None else pf.perp_price
    base_now = pf.base * spot / pf.stable_price
    for i, (s, _) in enumerate(p.scenarios):
        deltas[i] += (pf.base * spot * s / pf.stable_price - base_now) + pf.perp * (
            s - 1.0
        ) * perp_price
    sc = spot * (
        p.perp_percent * abs(pf.perp) + p.base_percent * pf.base + p.option_percent * naked_total
    )
    cc = spot * (
        _conf_term(min(pf.spot_conf, pf.perp_conf), abs(pf.perp) + pf.base, p) + cc_options
    )
    mtm = pf.cash + sum(mtm_e.values()) + base_now + pf.perp_pnl
    mm_i = tuple(min(bc, d) - sc + mtm for d in deltas)
    min_span = min(bc, min(deltas))
    peg = (
        p.peg_loss_factor * (p.peg_loss_threshold - pf.stable_price)
        if pf.stable_price < p.peg_loss_threshold
        else 0.0
    )
    mm = min_span - sc + mtm
    im = (min_span - sc) * (p.im_factor + peg) - cc + mtm
    worst = min(range(n), key=lambda i: (mm_i[i], i))
    return PMRMResult(
        mtm,
        MappingProxyType(mtm_e),
        tuple(deltas),
        mm_i,
        bc,
        sc,
        cc,
        peg,
        mm,
        im,
        worst,
    )


# --- the auction -------------------------------------------------------------------------


def _ratio(name: str, value: object) -> Fraction:
    """A WAD-like parameter as an exact ``Fraction``; a float is read as its shortest
    decimal (``0.98`` → 49/50)."""
    if isinstance(value, bool):
        raise InvalidArgument(f"{name}={value!r} must be a number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument(f"{name}={value!r} must be finite")
        return Fraction(repr(value))
    if isinstance(value, (int, Fraction)):
        return Fraction(value)
    if isinstance(value, str):
        try:
            return Fraction(value)
        except (ValueError, ZeroDivisionError):
            raise InvalidArgument(f"{name}={value!r} is not a number") from None
    raise InvalidArgument(f"{name}={value!r} must be a number")


@dataclass(frozen=True, slots=True)
class AuctionParams:
    """``DutchAuction`` parameters, validated as Lyra's ``setSolventAuctionParams``: ``0 <
    start <= 1``, ``0 <= cutoff <= start``, ``fee_rate <= 10%``, ``buffer_margin <= 400%``,
    ``mtm_cutoff <= 1000``; ``fast``, ``slow``, ``insolvent`` durations > 0 seconds. Ratios
    are kept as exact ``Fraction`` (floats read as their decimal)."""

    start: Fraction | float | str = Fraction(49, 50)
    cutoff: Fraction | float | str = Fraction(4, 5)
    fast: int = 100
    slow: int = 14_400
    insolvent: int = 600
    fee_rate: Fraction | float | str = Fraction(1, 50)
    buffer_margin: Fraction | float | str = Fraction(1, 5)
    mtm_cutoff: float = 0.0

    def __post_init__(self) -> None:
        start, cutoff = _ratio("start", self.start), _ratio("cutoff", self.cutoff)
        fee, bm = _ratio("fee_rate", self.fee_rate), _ratio("buffer_margin", self.buffer_margin)
        if not 0 < start <= 1:
            raise InvalidArgument(f"start={float(start)} must be in (0, 1]")
        if cutoff < 0:
            raise InvalidArgument(f"cutoff={float(cutoff)} must be >= 0")
        if cutoff > start:
            raise InvalidArgument(f"cutoff={float(cutoff)} is above start={float(start)}")
        if not 0 <= fee <= Fraction(1, 10):
            raise InvalidArgument(f"fee_rate={float(fee)} must be in [0, 0.1] (10% at most)")
        if not 0 <= bm <= 4:
            raise InvalidArgument(f"buffer_margin={float(bm)} must be in [0, 4] (400% at most)")
        for name in ("fast", "slow", "insolvent"):
            _seconds(name, getattr(self, name), 1)
        _real("mtm_cutoff", self.mtm_cutoff, None, 1000.0)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "cutoff", cutoff)
        object.__setattr__(self, "fee_rate", fee)
        object.__setattr__(self, "buffer_margin", bm)

    @property
    def curve(self) -> TwoSlope:
        """liqeng's ``TwoSlope`` with these start, cutoff, fast and slow."""
        return TwoSlope(
            _ratio("start", self.start), _ratio("cutoff", self.cutoff), self.fast, self.slow
        )

    def discount(self, elapsed: int) -> Fraction:
        """``d(e)`` exactly, on-chain truncation included (``TwoSlope.discount``)."""
        return self.curve.discount(_seconds("elapsed", elapsed))

    @property
    def b(self) -> float:
        return float(self.buffer_margin)

    @property
    def phi(self) -> float:
        return float(self.fee_rate)


UNIT_TEST_AUCTION: Final = AuctionParams(1, "0.8", 600, 7_200, 600, 0, "0.1")
"""``test/config-test.sol getDefaultAuctionParam`` (anchors.md §3.7)."""
PMRM_SIM_AUCTION: Final = AuctionParams()
"""``lyra_pmrm.md`` §5.1 (``PMRMTestBase``): 0.98 / 0.8 / 100 s / 14,400 s / 600 s / 2% / 20%."""
MAINNET_AUCTION: Final = AuctionParams("0.95", "0.7", 900, 43_200, 3_600, "0.1", "0.15")
"""``scripts/config-mainnet.sol``: 0.95 / 0.7 / 15 min / 12 h / 60 min / 10% / 15%."""


def f_max(mtm: float, bm: float, d: float, reserved: float, mtm_cutoff: float = 0.0) -> float:
    """The largest fraction a solvent bid may take: 1 if ``MtM < mtmCutoff``, else with
    ``B = min(BM, 0)``: ``B/(B − d·MtM − (1 − d)·R)`` (0 when ``BM >= 0``)."""
    if mtm < mtm_cutoff:
        return 1.0
    b = min(bm, 0.0)
    if b == 0.0:
        return 0.0
    return b / (b - d * mtm - (1.0 - d) * reserved)


def insolvent_bid_price(mtm: float, mm: float, elapsed: int, length: int) -> float:
    """``m0 + (MM − m0)·e/L`` while ``e < L``, then ``MM``; ``m0 = min(MtM, 0)`` (≤ 0: the
    security module pays the bidder)."""
    m0 = min(mtm, 0.0)
    if elapsed >= length:
        return mm
    return m0 + (mm - m0) * elapsed / length


@dataclass(frozen=True, slots=True)
class BidResult:
    """One bid: ``cash_paid`` by the bidder to the account (solvent; ≤ 0 in an insolvent
    auction, where the bidder receives ``−cash_paid``), ``percent`` taken (of the current
    portfolio), ``terminated``; ``price`` (for 100%), ``discount`` (solvent), ``f_max``,
    ``from_security_module`` and ``socialised`` (insolvent), ``bidder_collateral`` (what
    the bidder must hold) and the ``auction`` after the bid."""

    cash_paid: float
    percent: float
    terminated: bool
    price: float
    discount: float
    f_max: float
    from_security_module: float
    socialised: float
    bidder_collateral: float
    auction: Auction


@dataclass(frozen=True, slots=True)
class Auction:
    """One account's auction (``start_auction``): the ``portfolio`` now, the stored
    ``scenario``, ``start`` time, ``insolvent`` flag, reserved cash ``reserved`` (R),
    ``cached_mm`` (insolvent: ``−MM`` at the start), the start ``fee`` paid to the security
    module, and ``done``."""

    portfolio: Portfolio
    params: AuctionParams
    pmrm_params: PMRMParams
    scenario: int
    start: int
    insolvent: bool
    reserved: float = 0.0
    cached_mm: float = 0.0
    fee: float = 0.0
    done: bool = False

    def margin(self) -> tuple[float, float, float]:
        """``(MM, BM, MtM)`` of the stored scenario at the current portfolio and feeds."""
        r = pmrm(self.portfolio, self.pmrm_params)
        mm = r.mm_by_scenario[self.scenario]
        return mm, buffer_margin(mm, r.mtm, self.params.b), r.mtm

    def with_portfolio(self, portfolio: Portfolio) -> Auction:
        """The same auction with new feeds or balances (e.g. the next price update)."""
        return replace(self, portfolio=portfolio)

    def can_terminate(self, now: int) -> bool:
        """Solvent: ``MtM < 0 or R >= MtM or BM >= 0`` (before ``fast + slow``); insolvent:
        ``MM >= 0``."""
        mm, bm, mtm = self.margin()
        if self.insolvent:
            return mm >= 0.0
        return mtm < 0.0 or self.reserved >= mtm or bm >= 0.0

    def _live(self, now: int) -> int:
        if self.done:
            raise Refused("lyra/auction-ended", "the auction has terminated")
        e = _seconds("now", now) - self.start
        if e < 0:
            raise InvalidArgument(f"now={now} precedes the auction start={self.start}")
        return e

    def bid(self, percent: float, now: int, security_module_cash: float = math.inf) -> BidResult:
        """Lyra's ``bid(percentOfAccount)`` at ``now``: solvent or insolvent (module doc).
        Refused ``lyra/can-terminate`` when the auction should end instead, and
        ``lyra/solvent-auction-ended`` after ``fast + slow`` (``convert_to_insolvent``)."""
        pct = _real("percent", percent, 0.0, 1.0)
        if pct == 0.0:
            raise InvalidArgument("percent=0 must be > 0")
        e = self._live(now)
        mm, bm, mtm = self.margin()
        if self.insolvent:
            return self._insolvent_bid(pct, e, mm, mtm, security_module_cash)
        if e >= self.params.fast + self.params.slow:
            raise Refused("lyra/solvent-auction-ended", f"elapsed={e}: convert to insolvent")
        r = self.reserved
        if mtm < 0.0 or r >= mtm or bm >= 0.0:
            raise Refused("lyra/can-terminate", f"MtM={mtm}, R={r}, BM={bm}")
        d = float(self.params.discount(e))
        price = (mtm - r) * d
        if price <= 0.0:
            raise Refused("lyra/zero-bid-price", f"bid price={price} at d={d}")
        fm = f_max(mtm, bm, d, r, self.params.mtm_cutoff)
        f, terminated = (fm, True) if pct >= fm else (pct, False)
        cash = price * f
        pf = self.portfolio.after_transfer(f, r, cash)
        nxt = replace(self, portfolio=pf, reserved=r + cash, done=terminated)
        need = cash + abs(bm - r) * f
        return BidResult(cash, f, terminated, price, d, fm, 0.0, 0.0, need, nxt)

    def _insolvent_bid(self, f: float, e: int, mm: float, mtm: float, sm_cash: float) -> BidResult:
        if mm >= 0.0:
            raise Refused("lyra/can-terminate", f"MM={mm} >= 0")
        price = insolvent_bid_price(mtm, mm, e, self.params.insolvent)
        to_bidder = -price * f
        if isinstance(sm_cash, bool) or not isinstance(sm_cash, (int, float)) or sm_cash != sm_cash:
            raise InvalidArgument(f"security_module_cash={sm_cash!r} must be a number")
        from_sm = min(to_bidder, max(float(sm_cash), 0.0))
        pf = self.portfolio.after_transfer(f, self.reserved, 0.0)
        terminated = f >= 1.0
        nxt = replace(self, portfolio=pf, done=terminated)
        need = abs(mm) * f - to_bidder
        return BidResult(
            -to_bidder, f, terminated, price, 0.0, 1.0, from_sm, to_bidder - from_sm, need, nxt
        )

    def convert_to_insolvent(self, now: int) -> Auction:
        """``convertToInsolventAuction``: once ``fast + slow`` has passed with ``MM < 0``."""
        e = self._live(now)
        if self.insolvent:
            raise Refused("lyra/already-insolvent", "the auction is insolvent already")
        if e < self.params.fast + self.params.slow:
            raise Refused("lyra/solvent-auction-running", f"elapsed={e}")
        mm, _, _ = self.margin()
        if mm >= 0.0:
            raise Refused("lyra/can-terminate", f"MM={mm} >= 0")
        return replace(self, insolvent=True, start=now, cached_mm=-mm)

    def update_scenario(self, scenario: int) -> Auction:
        """``updateScenarioId``: only to a scenario with a lower ``MM``."""
        r = pmrm(self.portfolio, self.pmrm_params)
        if not 0 <= scenario < len(r.mm_by_scenario):
            raise InvalidArgument(f"scenario={scenario} is not a scenario index")
        if r.mm_by_scenario[scenario] >= r.mm_by_scenario[self.scenario]:
            raise Refused("lyra/scenario-not-worse", f"scenario={scenario}")
        return replace(self, scenario=scenario)


def start_auction(
    portfolio: Portfolio,
    now: int,
    params: AuctionParams | None = None,
    pmrm_params: PMRMParams | None = None,
    scenario: int | None = None,
) -> Auction:
    """``startAuction``: with the worst scenario ``w`` (or ``scenario``), requires
    ``MM_w < 0``; solvent if ``MtM > 0``, with the fee ``f_max(MtM, BM_w, 1, 0)·|MtM|·φ``
    moved from the account's cash to the security module; else insolvent with
    ``cached_mm = −MM_w``."""
    ap = PMRM_SIM_AUCTION if params is None else params
    pp = PMRMParams() if pmrm_params is None else pmrm_params
    r = pmrm(portfolio, pp)
    w = r.worst_scenario if scenario is None else scenario
    if not 0 <= w < len(r.mm_by_scenario):
        raise InvalidArgument(f"scenario={w} is not a scenario index")
    mm = r.mm_by_scenario[w]
    if mm >= 0.0:
        raise Refused("lyra/not-liquidatable", f"MM={mm} >= 0 in scenario {w}")
    if r.mtm > 0.0:
        bm = buffer_margin(mm, r.mtm, ap.b)
        fee = f_max(r.mtm, bm, 1.0, 0.0, ap.mtm_cutoff) * abs(r.mtm) * ap.phi
        pf = replace(portfolio, cash=portfolio.cash - fee)
        return Auction(pf, ap, pp, w, _seconds("now", now), False, fee=fee)
    return Auction(portfolio, ap, pp, w, _seconds("now", now), True, cached_mm=-mm)


# --- the engine preset -------------------------------------------------------------------


def lyra_mechanism(params: AuctionParams | None = None) -> DutchAuction:
    """liqeng's ``DutchAuction`` as Lyra's solvent auction: ``TwoSlope`` from ``params``
    (default ``PMRM_SIM_AUCTION``), opening at the mark (``buf = 1``), a reset needed
    once ``fast + slow`` has passed (the curve is at 0), no price-based reset and no
    notional penalty (Lyra's fee is on MtM: vocabulary API only)."""
    p = PMRM_SIM_AUCTION if params is None else params
    return DutchAuction(
        curve=p.curve, buf=RAY, tail=p.fast + p.slow, cusp=0, penalty_rate=0, keeper_share=0
    )


PRESET: Final = Preset(
    name="lyra",
    protocol="Lyra / Derive v2",
    mechanism=lyra_mechanism,
    reproduces=(
        "LYRA-1",
        "LYRA-2",
        "PMRM-volshock-1",
        "PMRM-discount-0",
        "PMRM-discount-30",
        "PMRM-discount-100",
        "PMRM-discount-600",
        "PMRM-discount-9000",
    ),
    simplifies=(
        "in the engine, the PMRM is risk.portfolio's LYRA_PMRM (whole forward shocked, one "
        "rate, no confidence or peg term) and the auction is liqeng's DutchAuction with "
        "Lyra's TwoSlope curve, no start fee, a reset instead of the insolvent auction; the "
        "exact PMRM and both auctions are the module's vocabulary API"
    ),
    margin=Scenario(LYRA_PMRM),
)
"""Lyra v2 in the engine: ``lyra_mechanism()`` and ``Scenario(LYRA_PMRM)``."""
