"""The Lyra / Derive v2 preset: anchors.md §3.7 vectors and lyra_pmrm.md's worked numbers
through ``liqeng.presets.lyra``, the PMRM and auction formulas, bad input, and
``PRESET.mechanism()`` liquidating an account in a real engine."""

from __future__ import annotations

import math
from decimal import Decimal, getcontext
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ALICE
from tests.test_engine import KEEPER, PERP, alice_goes_long, make_engine, reports

from liqeng.errors import InvalidArgument, Refused
from liqeng.liquidation.curves import RAY, TwoSlope
from liqeng.liquidation.dutch_auction import DutchAuction
from liqeng.presets import lyra as ly
from liqeng.risk.models import Scenario
from liqeng.risk.portfolio import LYRA_PMRM, ScenarioPosition


def _decimal_vol_shock(tau: int) -> tuple[float, float, float, float]:
    """x, m, up, down at 50 significant digits (the reference for ~1e-12)."""
    getcontext().prec = 50
    x = Decimal(30 * 86_400) / Decimal(max(tau, 86_400))
    m = x ** (Decimal("0.3") if tau <= 30 * 86_400 else Decimal("0.13"))
    down = max(Decimal(0), 1 - Decimal("0.30") * m)
    return float(x), float(m), float(1 + Decimal("0.45") * m), float(down)


VECTORS = [
    # anchors.md §3.7, unit-test params: start 1.0, cutoff 0.8, fast 600 s, slow 7,200 s
    pytest.param(
        "discount",
        (ly.UNIT_TEST_AUCTION, {300: "0.90", 600: "0.80", 960: "0.76", 7_800: "0"}),
        None,
        id="LYRA-1",
    ),
    pytest.param(
        "discount",
        (
            ly.AuctionParams("0.96", "0.8", 300, 7_200, 600, 0, "0.1"),
            {0: "0.96", 150: "0.88", 300: "0.80", 300 + 6_480: "0.08"},
        ),
        None,
        id="LYRA-2",
    ),
    # lyra_pmrm.md §4.3: tau = 500,400 s (printed to 6-8 significant digits)
    pytest.param(
        "volshock",
        500_400,
        {
            "x": (5.17986, 1e-6),
            "m": (1.637930, 1e-6),
            "up": (1.7370685, 1e-7),
            "down": (0.5086210, 1e-7),
        },
        id="PMRM-volshock-1",
    ),
    # lyra_pmrm.md §5.3 with §5.1 params (0.98 / 0.8 / 100 s / 14,400 s)
    pytest.param("discount", (ly.PMRM_SIM_AUCTION, {0: "0.98"}), None, id="PMRM-discount-0"),
    pytest.param("discount", (ly.PMRM_SIM_AUCTION, {30: "0.926"}), None, id="PMRM-discount-30"),
    pytest.param("discount", (ly.PMRM_SIM_AUCTION, {100: "0.80"}), None, id="PMRM-discount-100"),
    # 0.8 − trunc(0.8·500)/14,400 = 0.772222…; 0.8 − trunc(0.8·8,900)/14,400 = 0.305555…
    pytest.param("discount", (ly.PMRM_SIM_AUCTION, {600: "139/180"}), None, id="PMRM-discount-600"),
    pytest.param(
        "discount", (ly.PMRM_SIM_AUCTION, {9_000: "11/36"}), None, id="PMRM-discount-9000"
    ),
]


@pytest.mark.parametrize(("kind", "inputs", "expected"), VECTORS)
def test_lyra_vectors(kind: str, inputs: Any, expected: Any) -> None:
    if kind == "discount":
        params, points = inputs
        for t, d in points.items():
            assert params.discount(t) == Fraction(d), t  # exact
            # Lyra's WAD: the same to 1e-18 (each on-chain division floors)
            assert abs(Fraction(d) * 10**18 - params.curve.discount_wad(t)) < 1, t
        return
    got = ly.vol_shock(inputs)
    ref = dict(zip(("x", "m", "up", "down"), _decimal_vol_shock(inputs), strict=True))
    for name, (printed, tol) in expected.items():
        value = getattr(got, name)
        assert value == pytest.approx(ref[name], rel=1e-12), name
        assert value == pytest.approx(printed, rel=tol), name


# --- the PMRM ------------------------------------------------------------------------------

EXPIRY = 500_400  # seconds from now = 0
SHORT_CALL = ly.Portfolio(
    now=0,
    spot=2_000.0,
    options=(ly.Option(EXPIRY, 2_000.0, True, -10.0, 0.8),),
    expiries={EXPIRY: ly.ExpiryFeed(2_000.0)},
    cash=1_000.0,
)


def _by_hand(pf: ly.Portfolio) -> tuple[float, list[float], float, float]:
    """MtM, Δ_i, BC, SC of ``pf`` (one expiry, calls only) straight from lyra_pmrm.md §4."""
    (o,) = pf.options
    feed = pf.expiries[o.expiry]
    t = (o.expiry - pf.now) / 31_536_000
    _, _, up, down = _decimal_vol_shock(o.expiry - pf.now)
    delta = 0.95 * math.exp(-t * (4 * max(feed.rate, 0.0) + 0.05))

    def v(s: float, mult: float) -> float:
        return o.amount * ly.call_price(feed.forward(s), o.strike, o.vol * mult, t)

    mtm_e = v(1.0, 1.0)
    deltas = []
    for s in (1.15, 1.10, 1.05, 1.00, 0.95, 0.90, 0.85):
        for mult in (up, 1.0, down):
            x = v(s, mult)
            deltas.append((delta * x if x > 0 else x) - mtm_e)
    bc = min(v(1.05, 1.0) - mtm_e, v(0.95, 1.0) - mtm_e, 0.0) * (0.25 + 0.01 * t)
    sc = 0.01 * max(0.0, -o.amount) * pf.spot
    return pf.cash + mtm_e, deltas, bc, sc


def test_pmrm_matches_the_formulas() -> None:
    r = ly.pmrm(SHORT_CALL)
    mtm, deltas, bc, sc = _by_hand(SHORT_CALL)
    assert r.mtm == pytest.approx(mtm, rel=1e-12)
    assert r.scenario_pnl == pytest.approx(deltas, rel=1e-12)
    assert (r.basis_contingency, r.static_contingency) == pytest.approx((bc, sc), rel=1e-12)
    assert r.static_contingency == 0.01 * 10 * 2_000  # SC = 0.01·q·S
    mm_i = [min(bc, d) - sc + mtm for d in deltas]
    assert r.mm_by_scenario == pytest.approx(mm_i, rel=1e-12)
    assert r.mm == pytest.approx(min(bc, min(deltas)) - sc + mtm, rel=1e-12)
    assert r.im == pytest.approx((min(bc, min(deltas)) - sc) * 1.3 + mtm, rel=1e-12)
    assert r.mm_by_scenario[r.worst_scenario] == min(r.mm_by_scenario)
    assert r.worst_scenario == 0  # spot +15 %, vol up: a short call's worst case
    assert r.mm == r.mm_by_scenario[r.worst_scenario] < 0  # any MM_i < 0: same number
    # BM_i = 1.2·MM_i − 0.2·MtM with b = 0.2
    assert r.buffer_margin(3, 0.2) == pytest.approx(1.2 * mm_i[3] - 0.2 * mtm, rel=1e-12)
    assert (r.confidence_contingency, r.peg) == (0.0, 0.0)


def test_pmrm_agrees_with_risk_portfolio_lyra_pmrm() -> None:
    """Where they model the same thing (whole forward shocked, one rate 0, confidence 1,
    stable 1), liqeng's ``LYRA_PMRM`` requirement is ``MtM − MM`` and ``1.3×`` that."""
    pf = ly.Portfolio(
        now=0,
        spot=2_000.0,
        options=(
            ly.Option(EXPIRY, 2_000.0, True, -10.0, 0.8),
            ly.Option(EXPIRY, 1_800.0, False, 4.0, 0.9),
            ly.Option(EXPIRY, 1_800.0, True, -1.0, 0.9),
        ),
        expiries={EXPIRY: ly.ExpiryFeed(2_000.0)},
        cash=500.0,
    )
    r = ly.pmrm(pf)
    t = EXPIRY / 31_536_000
    legs = [
        ScenarioPosition("call" if o.is_call else "put", o.amount, 2_000.0, t, o.strike, o.vol)
        for o in pf.options
    ]
    pm = LYRA_PMRM.margin(legs, 2_000.0)
    assert pm.maintenance == pytest.approx(r.mtm - r.mm, rel=1e-9)
    assert pm.initial == pytest.approx(r.mtm - r.im, rel=1e-9)
    assert pm.static_contingency == pytest.approx(r.static_contingency, rel=1e-12)


def test_pmrm_terms_portfolio_lacks() -> None:
    # the fixed forward part is not shocked: a fixed-only forward has Δ_i = (D − 1)·mtm
    fixed = ly.Portfolio(
        now=0,
        spot=2_000.0,
        options=(ly.Option(EXPIRY, 1_000.0, True, 1.0, 0.5),),
        expiries={EXPIRY: ly.ExpiryFeed(0.0, 2_000.0, rate=0.1)},
    )
    r = ly.pmrm(fixed)
    t = EXPIRY / 31_536_000
    delta = 0.95 * math.exp(-t * (4 * 0.1 + 0.05))
    mtm = r.mtm_by_expiry[EXPIRY]
    for i, (_, d) in enumerate(ly.LYRA_SCENARIOS):
        if d == 0:
            assert r.scenario_pnl[i] == pytest.approx((delta - 1) * mtm, rel=1e-12)
    # a stable coin at 0.95 adds peg = 2·(0.98 − 0.95) to the IM factor; low confidence
    # adds CC = (1 − c)·0.5·amount·S
    pf = ly.Portfolio(
        now=0,
        spot=2_000.0,
        base=2.0,
        perp=-3.0,
        cash=100.0,
        stable_price=0.95,
        spot_conf=0.5,
    )
    r = ly.pmrm(pf)
    assert r.peg == pytest.approx(0.06, rel=1e-12)
    assert r.confidence_contingency == pytest.approx((1 - 0.5) * 0.5 * (3 + 2) * 2_000, rel=1e-12)
    assert r.static_contingency == pytest.approx(2_000 * (0.02 * 3 + 0.02 * 2), rel=1e-12)
    base_now = 2 * 2_000 / 0.95
    assert r.mtm == pytest.approx(100 + base_now, rel=1e-12)
    # base and perp P&L per scenario: base·S·(s − 1)/P_stable + perp·(s − 1)·S
    for i, (s, _) in enumerate(ly.LYRA_SCENARIOS):
        want = (2 * 2_000 * s / 0.95 - base_now) - 3 * (s - 1) * 2_000
        assert r.scenario_pnl[i] == pytest.approx(want, rel=1e-12, abs=1e-9)
    span = min(r.basis_contingency, min(r.scenario_pnl))
    assert r.im == pytest.approx(
        (span - r.static_contingency) * 1.36 - r.confidence_contingency + r.mtm
    )


def test_black76_edge_rules() -> None:
    assert ly.call_price(2_000.0, 0.0, 0.8, 1.0) == 2_000.0  # K = 0
    assert ly.put_price(2_000.0, 0.0, 0.8, 1.0) == 0.0
    assert ly.call_price(0.0, 1_500.0, 0.8, 1.0) == 0.0  # F = 0
    assert ly.put_price(0.0, 1_500.0, 0.8, 1.0) == 1_500.0
    assert ly.call_price(2_000.0, 1_500.0, 0.0, 1.0) == 500.0  # zero vol: intrinsic
    assert ly.put_price(2_000.0, 1_500.0, 30.0, 1.0) == 1_500.0  # σ√T >= 24: C = F
    c = ly.call_price(2_000.0, 1_900.0, 0.7, 0.25)
    assert ly.put_price(2_000.0, 1_900.0, 0.7, 0.25) == pytest.approx(c + 1_900 - 2_000)


# --- the auction ---------------------------------------------------------------------------


def test_solvent_auction_fee_bid_and_f_max() -> None:
    params = ly.PMRM_SIM_AUCTION
    r0 = ly.pmrm(SHORT_CALL)
    a = ly.start_auction(SHORT_CALL, now=1_000)
    assert not a.insolvent and a.scenario == r0.worst_scenario
    bm0 = r0.buffer_margin(a.scenario, 0.2)
    fee = bm0 / (bm0 - r0.mtm) * r0.mtm * 0.02  # f_max(d=1, R=0)·|MtM|·φ
    assert a.fee == pytest.approx(fee, rel=1e-12)
    assert a.portfolio.cash == pytest.approx(1_000.0 - fee, rel=1e-12)
    _, bm, mtm = a.margin()
    # a 10 % bid at e = 30 s: d = 0.926, pays (MtM − 0)·d·10 %
    res = a.bid(0.1, now=1_030)
    assert res.discount == pytest.approx(0.926, rel=1e-15) and not res.terminated
    assert res.price == pytest.approx(mtm * 0.926, rel=1e-12)
    assert res.cash_paid == pytest.approx(mtm * 0.926 * 0.1, rel=1e-12)
    assert res.f_max == pytest.approx(bm / (bm - 0.926 * mtm), rel=1e-12)
    assert res.bidder_collateral == pytest.approx(res.cash_paid + abs(bm) * 0.1, rel=1e-12)
    b = res.auction
    assert b.reserved == res.cash_paid
    assert b.portfolio.options[0].amount == pytest.approx(-9.0, rel=1e-15)
    # asking for everything takes f_max, after which BM is 0 (f_max's derivation)
    res2 = b.bid(1.0, now=1_600)
    d = float(params.discount(600))
    _, bm1, mtm1 = b.margin()
    assert res2.terminated and res2.percent == res2.f_max < 1
    assert res2.f_max == pytest.approx(bm1 / (bm1 - d * mtm1 - (1 - d) * b.reserved), rel=1e-12)
    _, bm_after, _ = res2.auction.margin()
    assert bm_after == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(Refused, match="lyra/auction-ended"):
        res2.auction.bid(0.1, now=1_700)


def test_insolvent_auction_and_conversion() -> None:
    broke = ly.Portfolio(
        now=0,
        spot=2_000.0,
        options=(ly.Option(EXPIRY, 1_500.0, True, -10.0, 0.8),),
        expiries={EXPIRY: ly.ExpiryFeed(2_000.0)},
        cash=1_000.0,
    )
    r = ly.pmrm(broke)
    assert r.mtm < 0
    a = ly.start_auction(broke, now=0)
    assert a.insolvent and a.fee == 0 and a.cached_mm == -r.mm
    # halfway: price = m0 + (MM − m0)/2; the SM pays up to its cash, the rest is socialised
    res = a.bid(0.5, now=300, security_module_cash=100.0)
    price = r.mtm + (r.mm - r.mtm) * 300 / 600
    assert res.price == pytest.approx(price, rel=1e-12)
    assert res.cash_paid == pytest.approx(price * 0.5, rel=1e-12) and res.cash_paid < 0
    assert res.from_security_module == 100.0
    assert res.socialised == pytest.approx(-price * 0.5 - 100.0, rel=1e-12)
    assert not res.terminated
    # after the insolvent length the price is MM; taking 100 % ends it
    last = res.auction.bid(1.0, now=5_000)
    assert last.price == pytest.approx(ly.pmrm(res.auction.portfolio).mm, rel=1e-12)
    assert last.terminated
    # a solvent auction that ran out of time converts to insolvent
    s = ly.start_auction(SHORT_CALL, now=0)
    with pytest.raises(Refused, match="solvent-auction-running"):
        s.convert_to_insolvent(100)
    with pytest.raises(Refused, match="solvent-auction-ended"):
        s.bid(0.5, now=14_500)
    conv = s.convert_to_insolvent(14_500)
    assert conv.insolvent and conv.start == 14_500 and conv.cached_mm > 0


def test_refusals() -> None:
    healthy = ly.Portfolio(now=0, spot=2_000.0, cash=1_000.0)
    with pytest.raises(Refused, match="not-liquidatable"):
        ly.start_auction(healthy, now=0)
    a = ly.start_auction(SHORT_CALL, now=0)
    with pytest.raises(Refused, match="can-terminate"):
        a.with_portfolio(ly.Portfolio(now=0, spot=2_000.0, cash=10_000.0)).bid(0.5, 10)
    with pytest.raises(InvalidArgument, match=r"percent=1\.5"):
        a.bid(1.5, 10)
    with pytest.raises(Refused, match="scenario-not-worse"):
        a.update_scenario(10)
    assert ly.f_max(-1.0, -5.0, 0.9, 0.0, mtm_cutoff=0.0) == 1.0  # MtM below the cutoff
    assert ly.f_max(10.0, 5.0, 0.9, 0.0) == 0.0  # BM >= 0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"fee_rate": "0.11"}, "fee_rate=0.11"),
        ({"fee_rate": 0.2}, "fee_rate=0.2"),
        ({"cutoff": "0.99"}, "cutoff=0.99 is above start=0.98"),
        ({"start": "1.01"}, "start=1.01"),
        ({"fast": -100}, "fast=-100"),
        ({"slow": -1}, "slow=-1"),
        ({"insolvent": -600}, "insolvent=-600"),
        ({"buffer_margin": 5}, "buffer_margin=5"),
        ({"mtm_cutoff": 2_000.0}, "mtm_cutoff=2000.0"),
    ],
)
def test_bad_auction_params_name_the_value(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        ly.AuctionParams(**kwargs)


def test_bad_pmrm_input_names_the_value() -> None:
    with pytest.raises(InvalidArgument, match=r"base_static_discount=1\.5"):
        ly.PMRMParams(base_static_discount=1.5)
    with pytest.raises(InvalidArgument, match=r"vol_range_up=-0\.1"):
        ly.PMRMParams(vol_range_up=-0.1)
    with pytest.raises(InvalidArgument, match="expiry=7"):
        ly.Portfolio(now=0, spot=1.0, options=(ly.Option(7, 1.0, True, 1.0, 0.5),))
    with pytest.raises(InvalidArgument, match="tau=-5"):
        ly.vol_shock(-5)


def test_preset_configuration() -> None:
    assert ly.PRESET.name == "lyra" and ly.PRESET.margin == Scenario(LYRA_PMRM)
    mech = ly.PRESET.mechanism()
    assert isinstance(mech, DutchAuction)
    assert mech.curve == TwoSlope(Fraction(49, 50), Fraction(4, 5), 100, 14_400)
    assert (mech.buf, mech.tail, mech.cusp, mech.penalty_rate) == (RAY, 14_500, 0, 0)
    main = ly.lyra_mechanism(ly.MAINNET_AUCTION)
    assert main.curve == TwoSlope(Fraction(95, 100), Fraction(7, 10), 900, 43_200)


def test_preset_mechanism_liquidates_in_an_engine(tmp_path: Path) -> None:
    mech = ly.PRESET.mechanism()
    assert isinstance(mech, DutchAuction) and ly.PRESET.margin is not None
    engine, clock = make_engine(
        tmp_path, mechanism=mech, markets={"ETH": ly.PRESET.margin}, instruments=(PERP,)
    )
    engine.step(reports(0, 2000, 2000, 2000, 2000, 2000))
    alice_goes_long(engine, 5, 2000)
    clock.set(60)
    # LYRA_PMRM: worst loss 15 % of 5·1,900 plus SC 2 % of it > equity 1,000 − 500
    step = engine.step(reports(60, 1900, 1900, 1900, 1900, 1900), keeper=KEEPER)
    assert [liq.account for liq in step.liquidations] == [ALICE]
    aid = mech.auction_id_for(ALICE, "liq:60:t/alice")
    assert engine.holds(ALICE) == f"auction {aid} running"
    clock.set(90)
    engine.step(reports(90, 1900, 1900, 1900, 1900, 1900))
    q = mech.quote(engine, aid)
    # e = 30 s on the 0.98 → 0.80 slope: d = 0.926, price = equity·d
    assert q.factor == RAY * 926 // 1000
    assert q.price == pytest.approx(500 * 10**6 * 0.926, rel=1e-12)
    res = mech.take(engine, aid, KEEPER, 1, 10**12, "take-1")
    assert res.auction.done and engine.ledger.positions_of(ALICE) == {}
    engine.ledger.check_invariants()
