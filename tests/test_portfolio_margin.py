"""Portfolio (scenario) margin: Deribit's worked example, the vol-shock vector, the grids."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from liqeng.errors import InvalidArgument
from liqeng.market import black76
from liqeng.risk.portfolio import (
    DERIBIT_BTC_PM,
    LYRA_LIKE,
    LYRA_PMRM,
    PortfolioMarginModel,
    Scenario,
    ScenarioGrid,
    ScenarioPosition,
    ScenarioPositions,
    VolShockCurve,
    deribit_grid,
    deribit_vol_curve,
    lyra_like_grid,
    lyra_pmrm_grid,
    risk_arrays,
    scenario_pnl,
    span_grid,
    span_model,
)

NOW = int(datetime(2024, 6, 17, 10, 22, 20, tzinfo=UTC).timestamp())
JUN28 = int(datetime(2024, 6, 28, 8, 0, 0, tzinfo=UTC).timestamp())  # Deribit expiry 08:00 UTC
T_JUN28 = black76.year_fraction(NOW, JUN28)  # 10 d 21 h 37 m 40 s = 0.029866 y
PERP = ScenarioPosition("future", 0.314538364, 66_000.0)
FUT = ScenarioPosition("future", -0.001187534, 66_200.0, T_JUN28)
SPOT = 66_000.0  # coin P&L of futures does not depend on the level


def _standard(values: tuple[float, ...], direction_index: int = 1) -> list[float]:
    """The 9 standard entries of one vol direction (rows are m x {up, same, down})."""
    return list(values[direction_index:27:3])


def test_deribit_grid_shape() -> None:
    grid = deribit_grid()
    assert len(grid) == 27 + 8
    assert [round(m, 2) for m in grid.spot_moves[:27:3]] == [
        -0.16, -0.12, -0.08, -0.04, 0.0, 0.04, 0.08, 0.12, 0.16
    ]  # fmt: skip
    ext = [s for s in grid.scenarios if s.extended]
    assert [s.spot_move for s in ext] == [-0.66, -0.33, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert all(s.vol_direction == 1 for s in ext)
    # w(-0.66) = (0.16/0.66)·0.34/0.84
    assert ext[0].weight == pytest.approx(0.16 / 0.66 * 0.34 / 0.84, rel=1e-15)


def test_perp_standard_row() -> None:
    # q·(1 - 1/(1+m)), q = 0.314538364, m = -16 % .. +16 % step 4 %
    row = scenario_pnl(ScenarioPositions.of([PERP]), DERIBIT_BTC_PM.grid, inverse=True)[0]
    expected = [
        -0.0599120693, -0.0428915951, -0.0273511621, -0.0131057652, 0.0,
        0.0120976294, 0.0232991381, 0.0337005390, 0.0433846019,
    ]  # fmt: skip
    for direction in range(3):  # futures ignore the vol direction
        assert _standard(tuple(row), direction) == pytest.approx(expected, abs=1e-10)


def test_perp_extended_moves_equal_the_edge_buckets() -> None:
    # coin weight makes w(m)·q·(1 - 1/(1+m)) = q·pr/(1 ± pr): the ±16 % bucket
    grid = DERIBIT_BTC_PM.grid
    row = scenario_pnl(ScenarioPositions.of([PERP]), grid, inverse=True)[0] * grid.weights
    ext = row[27:]
    assert ext[:2] == pytest.approx([-0.0599120693] * 2, abs=1e-10)
    assert ext[2:] == pytest.approx([0.0433846019] * 6, abs=1e-10)


def test_deribit_golden_vector() -> None:
    r = DERIBIT_BTC_PM.margin([PERP, FUT], SPOT, open_orders_margin=0.000018212, mmp_margin=0.06)
    fut_row = scenario_pnl(ScenarioPositions.of([FUT]), DERIBIT_BTC_PM.grid, inverse=True)[0]
    assert fut_row[0] == pytest.approx(0.0002261970, abs=1e-10)
    assert r.worst_case == pytest.approx(0.0596858724, abs=1e-10)
    assert DERIBIT_BTC_PM.grid.scenarios[r.worst_scenario].spot_move in (-0.16, -0.66)
    # 0.01·0.314538364 + max(0.01, e^{0.075·0.029866} - 1)·0.001187534
    assert r.roll_shock == pytest.approx(0.00315725898, abs=1e-14)
    assert r.delta_shock == 0.0  # |δ| = 0.31 BTC, far below 20,000,000 USD / S
    # The docs' 0.06284313098 is 3.8e-10 below worst_case + roll_shock (0.0628431313610),
    # which no documented term explains; hold the figures to 1e-9.
    assert r.risk_matrix_margin == pytest.approx(0.06284313098, abs=1e-9)
    assert r.risk_matrix_margin - 0.06284313098 == pytest.approx(3.8e-10, abs=1e-11)
    assert r.maintenance == pytest.approx(0.050274504784, abs=1e-9)
    assert r.initial == pytest.approx(0.122861343, abs=1e-9)


@pytest.mark.parametrize(
    ("dte", "factor", "up", "down"),
    [
        (1, 2.7742, 1.1935, 0.1532),
        (7, 1.5474, 0.8869, 0.3066),
        (30, 1.0, 0.7500, 0.3750),
        (365, 0.7226, 0.6807, 0.4097),
    ],
)
def test_deribit_vol_factor_vector(dte: float, factor: float, up: float, down: float) -> None:
    curve = deribit_vol_curve()
    d = np.array(float(dte))
    sigma = np.array(0.5)
    assert round(float(curve.factor(d)), 4) == factor
    assert round(float(curve.shock(sigma, d, np.array(1.0))), 4) == up
    assert round(float(curve.shock(sigma, d, np.array(-1.0))), 4) == down
    assert float(curve.shock(sigma, d, np.array(0.0))) == 0.5


def test_lyra_like_grid() -> None:
    grid = lyra_like_grid()
    assert len(grid) == 23
    assert min(grid.spot_moves) == -0.20
    assert max(grid.spot_moves) == 0.20
    assert sorted({s.vol_direction for s in grid.scenarios}) == [-1, 0, 1]
    # Lyra §4.3 example: τ = 500 400 s → up 1.7370685, down 0.5086210 (multipliers)
    dte = np.array(500_400 / 86_400)
    assert float(grid.vol_curve.shock(np.array(1.0), dte, np.array(1.0))) == pytest.approx(  # type: ignore[union-attr]
        1.7370685, abs=1e-7
    )
    assert float(grid.vol_curve.shock(np.array(1.0), dte, np.array(-1.0))) == pytest.approx(  # type: ignore[union-attr]
        0.5086210, abs=1e-7
    )


def test_option_pnl_matches_scalar_black76() -> None:
    call = ScenarioPosition("call", -2.0, 60_000.0, 0.1, 65_000.0, 0.6)
    put = ScenarioPosition("put", 1.5, 61_000.0, 0.3, 55_000.0, 0.7)
    pos = ScenarioPositions.of([call, put, PERP])
    grid = lyra_like_grid()
    curve = grid.vol_curve
    assert curve is not None
    for inverse in (False, True):
        pnl = scenario_pnl(pos, grid, inverse=inverse)
        for j, sc in enumerate(grid.scenarios):
            for i, p in enumerate((call, put)):
                f1 = p.forward * (1 + sc.spot_move)
                dte = np.array(p.t_years * 365)
                sig = float(curve.shock(np.array(p.sigma), dte, np.array(sc.vol_direction)))
                v1 = black76.price(f1, p.strike, p.t_years, sig, p.kind == "call")
                v0 = black76.price(p.forward, p.strike, p.t_years, p.sigma, p.kind == "call")
                want = p.quantity * ((v1 / f1 - v0 / p.forward) if inverse else (v1 - v0))
                assert pnl[i, j] == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_short_call_margin_is_worst_loss_usd() -> None:
    short = ScenarioPosition("call", -1.0, 60_000.0, 30 / 365, 60_000.0, 0.5)
    r = LYRA_LIKE.margin([short], 60_000.0)
    assert r.worst_case == pytest.approx(-min(r.scenario_pnl))
    assert r.worst_case > 0.15 * 60_000.0 * 0.5  # +15 % spot and vol up beats half the move
    assert r.initial == r.risk_matrix_margin
    assert r.maintenance == pytest.approx(r.risk_matrix_margin / 1.3)


def test_gains_do_not_offset_unless_pnl_offset() -> None:
    grid = ScenarioGrid((Scenario(0.1), Scenario(0.2)))
    long_ = [ScenarioPosition("future", 1.0, 100.0)]
    assert PortfolioMarginModel(grid, inverse=False).margin(long_, 100.0).worst_case == 0.0
    half = PortfolioMarginModel(grid, inverse=False, pnl_offset=0.5).margin(long_, 100.0)
    assert half.worst_case == pytest.approx(-5.0)  # credit: 0.5 · 10 USD gain


def test_delta_shock_kicks_in_above_threshold() -> None:
    # |δ| = 400 BTC, threshold 20e6/50e3 = 400 → 0; at 500: 500·min(0.1, 5e-5·100) = 2.5
    assert DERIBIT_BTC_PM.margin([ScenarioPosition("future", 400.0, 5e4)], 5e4).delta_shock == 0.0
    r = DERIBIT_BTC_PM.margin([ScenarioPosition("future", 500.0, 5e4)], 5e4)
    assert r.delta_shock == pytest.approx(2.5)


def test_empty_portfolio_has_zero_margin() -> None:
    r = DERIBIT_BTC_PM.margin([], SPOT)
    assert (r.worst_case, r.roll_shock, r.initial, r.maintenance) == (0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("build", "needle"),
    [
        (lambda: DERIBIT_BTC_PM.margin([PERP], math.nan), "spot=nan"),
        (lambda: DERIBIT_BTC_PM.margin([PERP], -1.0), "spot=-1.0"),
        (lambda: ScenarioPosition("call", 1.0, 100.0, 0.1, 100.0, -0.2), "sigma=-0.2"),
        (lambda: ScenarioPosition("future", math.nan, 100.0), "quantity=nan"),
        (lambda: ScenarioGrid(()), "scenarios=()"),
        (lambda: ScenarioGrid((Scenario(0.1, 1),)), "vol_curve=None"),
        (lambda: Scenario(-1.0), "spot_move=-1.0"),
        (lambda: Scenario(0.1, 2), "vol_direction=2"),
        (lambda: VolShockCurve(-0.5, 0.25), "range_up=-0.5"),
        (lambda: deribit_grid(extended_moves=(0.0,)), "extended_move=0.0"),
        (lambda: PortfolioMarginModel(deribit_grid(), True, mm_factor=0.0), "mm_factor=0.0"),
        (lambda: DERIBIT_BTC_PM.margin([PERP], SPOT, mmp_margin=-1.0), "mmp_margin=-1.0"),
    ],
)
def test_bad_input_names_the_value(build: object, needle: str) -> None:
    with pytest.raises(InvalidArgument, match=needle.replace("(", r"\(").replace(")", r"\)")):
        build()  # type: ignore[operator]


# --- CME SPAN as a configuration --------------------------------------------------------------


def test_span_grid_is_the_16_scenarios_in_order() -> None:
    grid = span_grid(0.06, 0.04, extreme_multiple=3.0, extreme_weight=0.33, lookahead_days=1.0)
    assert len(grid) == 16
    thirds = [0, 0, 1, 1, -1, -1, 2, 2, -2, -2, 3, 3, -3, -3]
    assert list(grid.spot_moves[:14]) == pytest.approx([k / 3 * 0.06 for k in thirds], abs=1e-16)
    assert list(grid.spot_moves[14:]) == pytest.approx([0.18, -0.18], abs=1e-16)
    assert list(grid.vol_shifts) == [0.04, -0.04] * 7 + [0.0, 0.0]
    assert list(grid.weights) == [1.0] * 14 + [0.33, 0.33]
    assert list(grid.extended_mask) == [False] * 14 + [True, True]
    assert grid.vol_curve is None
    assert not grid.vol_directions.any()
    assert grid.lookahead_days == 1.0


def test_span_long_future_risk_array_is_minus_q_f_m() -> None:
    # RA[j] = -q·F·m_j, the two extreme moves (±2·PSR) times c = 0.35
    q, f, psr = 3.0, 2_000.0, 0.05
    grid = span_grid(psr, 0.10)
    ra = risk_arrays(
        ScenarioPositions.of([ScenarioPosition("future", q, f, 0.25)]), grid, inverse=False
    )
    moves = [k / 3 for k in (0, 0, 1, 1, -1, -1, 2, 2, -2, -2, 3, 3, -3, -3)] + [2.0, -2.0]
    weights = [1.0] * 14 + [0.35, 0.35]
    want = [-q * f * m * psr * w for m, w in zip(moves, weights, strict=True)]
    assert list(ra[0]) == pytest.approx(want, rel=1e-14, abs=1e-12)
    assert ra[0][14] == pytest.approx(-0.35 * 3.0 * 2_000.0 * 0.10)  # -210 USD: a gain
    assert ra[0][15] == pytest.approx(0.35 * 3.0 * 2_000.0 * 0.10)  # +210 USD: a loss
    r = span_model(psr, 0.10).margin([ScenarioPosition("future", q, f, 0.25)], f)
    assert r.worst_case == pytest.approx(q * f * psr)  # the -1·PSR scenario (the extreme: 0.7)
    assert r.worst_scenario == 12
    assert r.initial == pytest.approx(1.10 * r.risk_matrix_margin)
    assert r.maintenance == r.risk_matrix_margin


def test_span_option_revalued_after_lookahead_with_additive_vol() -> None:
    t, sigma, vsr = 5 / 365, 0.03, 0.05  # vol down 5 points floors at 0
    put = ScenarioPosition("put", 2.0, 100.0, t, 95.0, sigma)
    grid = span_grid(0.09, vsr, lookahead_days=1.0)
    pnl = scenario_pnl(ScenarioPositions.of([put]), grid, inverse=False)[0]
    v0 = black76.price(100.0, 95.0, t, sigma, False)
    for j, sc in enumerate(grid.scenarios):
        sig = max(sigma + sc.vol_shift, 0.0)
        want = 2.0 * (black76.price(100.0 * (1 + sc.spot_move), 95.0, 4 / 365, sig, False) - v0)
        assert pnl[j] == pytest.approx(want, rel=1e-12, abs=1e-13)
    # the look-ahead floors time at 0: an option with half a day left is revalued at expiry
    short = ScenarioPosition("call", 1.0, 100.0, 0.5 / 365, 100.0, 0.5)
    at_expiry = scenario_pnl(ScenarioPositions.of([short]), grid, inverse=False)[0]
    v0 = black76.price(100.0, 100.0, 0.5 / 365, 0.5, True)
    intrinsic = [max(100.0 * sc.spot_move, 0.0) - v0 for sc in grid.scenarios]
    assert list(at_expiry) == pytest.approx(intrinsic, abs=1e-12)


def test_span_short_option_minimum_binds_for_a_deep_otm_strangle() -> None:
    model = span_model(0.05, 0.05, som_rate=0.01)
    call = ScenarioPosition("call", -1.0, 100.0, 30 / 365, 150.0, 0.3)
    put = ScenarioPosition("put", -1.0, 100.0, 30 / 365, 60.0, 0.3)
    r = model.margin([call, put], 100.0)
    assert r.worst_case < 0.001  # far OTM: the scan barely moves
    # SOM = 0.01 · S · max(1 short call, 1 short put) = 1 USD
    assert r.short_option_minimum == pytest.approx(1.0)
    assert r.risk_matrix_margin == r.short_option_minimum
    assert r.maintenance == pytest.approx(1.0)
    assert r.initial == pytest.approx(1.10)
    # max, not sum, of the two sides; a long option does not offset another series' short
    more = [call, put, replace(put, strike=55.0), replace(call, quantity=0.5, strike=160.0)]
    assert model.margin(more, 100.0).short_option_minimum == pytest.approx(2.0)
    # netting within one series: short 1 + long 1 of the same put is no short put
    netted = [call, put, replace(put, quantity=1.0)]
    assert model.margin(netted, 100.0).short_option_minimum == pytest.approx(1.0)
    # coin-settled: in coins (0.01 per short coin)
    inv = span_model(0.05, 0.05, som_rate=0.01, inverse=True).margin([call, put], 100.0)
    assert inv.short_option_minimum == pytest.approx(0.01)
    # a binding scan is kept as it is: a long future adds a 5 USD loss at -1·PSR
    hedged = model.margin([call, put, ScenarioPosition("future", 1.0, 100.0)], 100.0)
    assert hedged.risk_matrix_margin == hedged.worst_case > 5.0


# --- Lyra PMRM as a configuration -------------------------------------------------------------

LYRA_S = 2_000.0
LYRA_T = 500_400 / black76.YEAR_SECONDS


def _lyra_value(p: ScenarioPosition, move: float, vol_mult: float) -> float:
    return p.quantity * black76.price(
        p.forward * (1 + move), p.strike, p.t_years, p.sigma * vol_mult, p.kind == "call"
    )


def test_lyra_pmrm_grid_and_vol_multipliers() -> None:
    grid = LYRA_PMRM.grid
    assert grid == lyra_pmrm_grid()
    assert len(grid) == 21
    assert [(round(1 + s.spot_move, 2), s.vol_direction) for s in grid.scenarios[:4]] == [
        (1.15, 1), (1.15, 0), (1.15, -1), (1.10, 1)
    ]  # fmt: skip
    assert (round(1 + grid.scenarios[20].spot_move, 2), grid.scenarios[20].vol_direction) == (
        0.85,
        -1,
    )
    curve = grid.vol_curve
    assert curve is not None
    dte = np.array(500_400 / 86_400)  # x = 5.17986, m = 1.637930
    assert float(curve.factor(dte)) == pytest.approx(1.637930, abs=1e-6)
    assert float(curve.shock(np.array(1.0), dte, np.array(1.0))) == pytest.approx(
        1.7370685, abs=1e-7
    )
    assert float(curve.shock(np.array(1.0), dte, np.array(-1.0))) == pytest.approx(
        0.5086210, abs=1e-7
    )


def test_lyra_static_discount_formula() -> None:
    t = np.array([0.0, 0.5, 1.0, 2.0])
    assert list(LYRA_PMRM.static_discount(t)) == pytest.approx(
        list(0.95 * np.exp(-0.05 * t)), rel=1e-15
    )
    assert float(LYRA_PMRM.static_discount(np.array(1.0))) == pytest.approx(0.9036679533, abs=1e-10)
    # r = 3 %: 0.95·exp(-T·(4·0.03 + 0.05)); a negative rate is floored at 0
    assert float(replace(LYRA_PMRM, rate=0.03).static_discount(np.array(1.0))) == pytest.approx(
        0.95 * math.exp(-0.17), rel=1e-15
    )
    assert float(replace(LYRA_PMRM, rate=-0.03).static_discount(np.array(1.0))) == pytest.approx(
        0.95 * math.exp(-0.05), rel=1e-15
    )


def test_lyra_discount_applies_to_the_net_expiry_value() -> None:
    # a call spread, long 2000 / short 2200: net value > 0 in every scenario, so each
    # Δ_j = δ·V_E(s_j, v_j) - mtm_E; per leg the short leg would be left undiscounted
    long_ = ScenarioPosition("call", 1.0, LYRA_S, LYRA_T, 2_000.0, 0.8)
    short = ScenarioPosition("call", -1.0, LYRA_S, LYRA_T, 2_200.0, 0.7)
    curve = LYRA_PMRM.grid.vol_curve
    assert curve is not None
    model = replace(LYRA_PMRM, basis_add_factor=0.0, basis_mult_factor=0.0, option_percent=0.0)
    r = model.margin([long_, short], LYRA_S)
    delta = 0.95 * math.exp(-0.05 * LYRA_T)
    mtm = _lyra_value(long_, 0, 1) + _lyra_value(short, 0, 1)
    dte = np.array(LYRA_T * 365)
    for j, sc in enumerate(model.grid.scenarios):
        v = float(curve.shock(np.array(1.0), dte, np.array(float(sc.vol_direction))))
        net = _lyra_value(long_, sc.spot_move, v) + _lyra_value(short, sc.spot_move, v)
        assert net > 0
        assert r.scenario_pnl[j] == pytest.approx(delta * net - mtm, rel=1e-12, abs=1e-9)
    assert r.worst_case == pytest.approx(-min(r.scenario_pnl))
    assert r.risk_matrix_margin == r.worst_case  # no contingency switched on
    # a net short expiry (value < 0) is not discounted at all
    naked = LYRA_PMRM.margin([short], LYRA_S)
    plain = replace(LYRA_PMRM, base_static_discount=1.0, rate_add_scale=0.0).margin([short], LYRA_S)
    assert naked.scenario_pnl == plain.scenario_pnl


def test_lyra_basis_contingency_one_leg() -> None:
    # long call: BC = min(V(1.05) - mtm, V(0.95) - mtm, 0)·(0.25 + 0.01·T) < 0, the down leg
    call = ScenarioPosition("call", 3.0, LYRA_S, 0.25, 2_100.0, 0.6)
    mtm = _lyra_value(call, 0, 1)
    up, down = _lyra_value(call, 0.05, 1) - mtm, _lyra_value(call, -0.05, 1) - mtm
    assert down < 0 < up
    bc = min(up, down, 0.0) * (0.25 + 0.01 * 0.25)
    r = LYRA_PMRM.margin([call], LYRA_S)
    assert r.basis_contingency == pytest.approx(-bc, rel=1e-12)  # stored as a requirement > 0
    assert r.basis_contingency == pytest.approx(3.0 * 46.1254772 * 0.2525, rel=1e-8)  # 34.94 USD
    # a short call loses on the up move instead
    short = replace(call, quantity=-3.0)
    r_short = LYRA_PMRM.margin([short], LYRA_S)
    assert r_short.basis_contingency == pytest.approx(up * (0.25 + 0.01 * 0.25), rel=1e-12)
    # a perp has no basis contingency (not in V_E)
    assert (
        LYRA_PMRM.margin([ScenarioPosition("future", 1.0, LYRA_S)], LYRA_S).basis_contingency == 0.0
    )


def test_lyra_naked_shorts_pool_call_and_put_per_strike() -> None:
    def sc(*legs: ScenarioPosition) -> float:
        return LYRA_PMRM.margin(list(legs), LYRA_S).static_contingency

    call = ScenarioPosition("call", -2.0, LYRA_S, LYRA_T, 2_000.0, 0.6)
    put = ScenarioPosition("put", 2.0, LYRA_S, LYRA_T, 2_000.0, 0.6)
    assert sc(call) == pytest.approx(0.01 * 2.0 * LYRA_S)
    assert sc(call, put) == 0.0  # short call + long put at one strike: not naked
    assert sc(call, replace(put, quantity=-2.0)) == pytest.approx(0.01 * 4.0 * LYRA_S)  # both
    assert sc(call, replace(put, strike=1_900.0)) == pytest.approx(0.01 * 2.0 * LYRA_S)
    assert sc(call, replace(put, t_years=2 * LYRA_T)) == pytest.approx(0.01 * 2.0 * LYRA_S)
    perp = ScenarioPosition("future", -1.5, LYRA_S)
    assert sc(call, put, perp) == pytest.approx(0.02 * 1.5 * LYRA_S)
    r = LYRA_PMRM.margin([call, put, perp], LYRA_S, base=4.0)
    assert r.static_contingency == pytest.approx((0.02 * 1.5 + 0.02 * 4.0) * LYRA_S)


def test_lyra_mm_and_im_obey_the_relation() -> None:
    legs = [
        ScenarioPosition("call", -2.0, LYRA_S, LYRA_T, 2_100.0, 0.65),
        ScenarioPosition("put", 1.0, LYRA_S, LYRA_T, 1_900.0, 0.7),
        ScenarioPosition("call", 1.0, 2_020.0, 0.3, 2_400.0, 0.6),
        ScenarioPosition("put", -1.0, 2_020.0, 0.3, 2_400.0, 0.6),
        ScenarioPosition("future", 0.7, LYRA_S),
    ]
    r = LYRA_PMRM.margin(legs, LYRA_S, base=1.0)
    bc = -r.basis_contingency
    assert bc < 0
    assert r.static_contingency > 0
    mm = -min(bc, min(r.scenario_pnl)) + r.static_contingency
    assert r.maintenance == pytest.approx(mm, rel=1e-14)
    assert r.initial == pytest.approx(1.3 * mm, rel=1e-14)
    # base and perp P&L are linear in s and undiscounted
    base_only = LYRA_PMRM.margin([], LYRA_S, base=1.0)
    assert base_only.scenario_pnl[0] == pytest.approx(0.15 * LYRA_S)
    assert base_only.maintenance == pytest.approx(0.15 * LYRA_S + 0.02 * LYRA_S)


# --- Deribit extended dampener ---------------------------------------------------------------


def test_deribit_extended_dampener_by_hand() -> None:
    model = replace(DERIBIT_BTC_PM, extended_dampener_usd=100_000.0)
    short = [ScenarioPosition("future", -100.0, SPOT)]
    off = DERIBIT_BTC_PM.margin(short, SPOT)
    on = model.margin(short, SPOT)
    assert on.scenario_pnl[:27] == off.scenario_pnl[:27]
    ext_off, ext_on = off.scenario_pnl[27:], on.scenario_pnl[27:]
    # every up tail weighs to q·0.16/1.16 = -13.7931034 BTC;
    # d(0.5) = (0.5/0.16 - 1)·100 000/(66 000·1.16) = 2.7756008 BTC
    # d(1.0) = (1.0/0.16 - 1)·100 000/(66 000·1.16) = 6.8573668 BTC; d(2) = 15.02 > the loss
    assert ext_off[2] == pytest.approx(-13.7931034, abs=1e-7)
    assert ext_on[2] == pytest.approx(-13.7931034 + 2.7756008, abs=1e-7)
    assert ext_on[3] == pytest.approx(-13.7931034 + 6.8573668, abs=1e-7)
    assert ext_on[4:] == (0.0, 0.0, 0.0, 0.0)  # moved to 0, never past it
    assert ext_on[:2] == ext_off[:2]  # gains (down tails for a short) untouched
    assert on.worst_case == pytest.approx(off.worst_case, rel=1e-14)  # now the +16 % bucket
    assert on.worst_scenario == 24
    # a long: -33 % tail weighs to q·(-0.16/0.84) = -19.0476190;
    # d(-0.33) = (0.33/0.16 - 1)·100 000/(66 000·0.84) = 1.9164863 BTC
    long_ = model.margin([ScenarioPosition("future", 100.0, SPOT)], SPOT)
    assert long_.scenario_pnl[28] == pytest.approx(-19.0476190 + 1.9164863, abs=1e-7)
    d = model.extended_dampener(SPOT)
    assert list(d[:27]) == [0.0] * 27
    assert d[27] == pytest.approx((0.66 / 0.16 - 1) * 1e5 / (SPOT * 0.84))


@pytest.mark.parametrize(
    ("build", "needle"),
    [
        (lambda: Scenario(0.1, vol_shift=math.inf), "vol_shift=inf"),
        (lambda: ScenarioGrid((Scenario(0.1),), lookahead_days=-1.0), "lookahead_days=-1.0"),
        (lambda: span_grid(0.0, 0.1), "price_scan_range=0.0"),
        (lambda: span_grid(0.1, -0.1), "vol_scan_range=-0.1"),
        (lambda: span_grid(0.4, 0.1, extreme_multiple=3.0), "extreme_multiple=3.0"),
        (lambda: span_grid(0.1, 0.1, extreme_weight=-0.35), "extreme_weight=-0.35"),
        (lambda: span_model(0.1, 0.1, som_rate=-0.01), "som_rate=-0.01"),
        (lambda: span_model(0.1, 0.1, im_ratio=0.9), "im_ratio=0.9"),
        (lambda: replace(LYRA_PMRM, base_static_discount=0.0), "base_static_discount=0.0"),
        (lambda: replace(LYRA_PMRM, rate=math.nan), "rate=nan"),
        (lambda: replace(LYRA_PMRM, basis_moves=(0.05, 0.05)), r"basis_moves\[1\]=0.05"),
        (lambda: replace(LYRA_PMRM, basis_moves=(0.05,)), "basis_moves="),
        (lambda: replace(LYRA_PMRM, option_percent=-0.01), "option_percent=-0.01"),
        (lambda: replace(LYRA_PMRM, extended_dampener_usd=1.0), "extended_dampener_usd=1.0"),
        (lambda: replace(DERIBIT_BTC_PM, extended_dampener_usd=-1.0), "extended_dampener_usd=-1.0"),
        (lambda: LYRA_PMRM.margin([], LYRA_S, base=-1.0), "base=-1.0"),
    ],
)
def test_bad_settings_name_the_value(build: object, needle: str) -> None:
    with pytest.raises(InvalidArgument, match=needle):
        build()  # type: ignore[operator]
