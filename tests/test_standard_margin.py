"""Standard option margin reproduces Deribit's and Aevo's published vectors exactly."""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from liqeng.errors import InvalidArgument
from liqeng.risk.standard import AEVO, DERIBIT, StandardMargin, requirement_units

S = 60_000


@pytest.mark.parametrize(
    ("is_call", "strike", "mark_coin", "im_coin", "mm_coin"),
    [
        # short 63,000 C, mark 0.02: OTM 3000 -> IM max(0.15 - 0.05, 0.10) + 0.02 = 0.120,
        # MM 0.075 + 0.02 = 0.095
        (True, 63_000, F(2, 100), F(120, 1000), F(95, 1000)),
        # short 60,000 C, mark 0.05: ATM -> IM 0.15 + 0.05 = 0.200, MM 0.075 + 0.05 = 0.125
        (True, 60_000, F(5, 100), F(200, 1000), F(125, 1000)),
        # short 57,000 P, mark 0.015: OTM 3000 -> IM max(0.10 + 0.015, MM) = 0.115,
        # MM max(0.075, 0.075 * 0.015) + 0.015 = 0.090
        (False, 57_000, F(15, 1000), F(115, 1000), F(90, 1000)),
    ],
)
def test_deribit_vectors(is_call: bool, strike: int, mark_coin: F, im_coin: F, mm_coin: F) -> None:
    # Deribit quotes in coin: the same formulas in USD, divided by the index
    got = DERIBIT.margin(short=True, is_call=is_call, index=S, strike=strike, mark=mark_coin * S)
    assert (got.initial / S, got.maintenance / S) == (im_coin, mm_coin)


def test_aevo_short_call_and_put() -> None:
    # Aevo: short call IM = max(0.15 - OTM/S, 0.1)*S + mark, MM = 0.1*S + mark (USD)
    call = AEVO.margin(short=True, is_call=True, index=2000, strike=2200, mark=30)
    # OTM 200 -> max(0.15 - 0.1, 0.1) * 2000 + 30 = 230; MM 0.1 * 2000 + 30 = 230
    assert (call.initial, call.maintenance) == (230, 230)
    put = AEVO.margin(short=True, is_call=False, index=2000, strike=1900, mark=12)
    # MM max(200, 1.2) + 12 = 212; IM max(max(0.15 - 0.05, 0.1) * 2000 + 12, 212) = 212
    assert (put.initial, put.maintenance) == (212, 212)


def test_long_options_need_nothing() -> None:
    got = DERIBIT.margin(short=False, is_call=False, index=S, strike=70_000, mark=10_000)
    assert (got.initial, got.maintenance) == (0, 0)


def test_requirement_rounds_up_into_quote_units() -> None:
    # 0.095 coin * 60,000 = 5,700 USD per contract; 0.333333 contracts (sd 6) in USDC(6):
    # 5700e6 * 333333 / 1e6 = 1,899,998,100 units, exact; one more unit of size rounds up
    per = DERIBIT.margin(
        short=True, is_call=True, index=S * 10**6, strike=63_000 * 10**6, mark=F(2, 100) * S * 10**6
    ).maintenance
    assert requirement_units(per, -333_333, 6) == 1_899_998_100
    assert requirement_units(per / 7, 1, 6) == 815  # 5700e6/7/1e6 = 814.28.. -> 815


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"index": 0, "strike": 1, "mark": 1}, "index=0 must be positive"),
        ({"index": 1.5, "strike": 1, "mark": 1}, "index=1.5 must be an int or a Fraction"),
        ({"index": 1, "strike": 1, "mark": -1}, "mark=-1 must be >= 0"),
    ],
)
def test_bad_input_names_the_value(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidArgument, match=needle):
        DERIBIT.margin(short=True, is_call=True, **kwargs)  # type: ignore[arg-type]


def test_parameters_are_validated() -> None:
    with pytest.raises(InvalidArgument, match="im_floor=1/5 exceeds im_base=3/20"):
        StandardMargin(F(15, 100), F(20, 100), F(75, 1000))
    with pytest.raises(InvalidArgument, match=r"mm_rate=0\.5 must be an int or a Fraction"):
        StandardMargin(F(15, 100), F(10, 100), 0.5)  # type: ignore[arg-type]
