"""Exact amounts and named rounding."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liqeng.errors import InvalidArgument
from liqeng.ids import asset_id
from liqeng.units import (
    AMOUNT_MAX,
    Amount,
    Asset,
    mul_div_down,
    mul_div_up,
    to_units_down,
    to_units_up,
)

USDC = Asset(asset_id("eth/USDC"), 6)
WETH = Asset(asset_id("eth/WETH"), 18)


def test_parse_is_exact() -> None:
    # "12.5" USDC = 12.5 * 10**6 = 12_500_000 units
    assert USDC.parse("12.5") == Amount(12_500_000, USDC)
    # 0.1 + 0.2 is exactly 0.3 in base units, unlike floats
    assert USDC.parse("0.1") + USDC.parse("0.2") == USDC.parse("0.3")


def test_parse_refuses_excess_precision() -> None:
    with pytest.raises(InvalidArgument, match=r"'1\.0000001' has more than 6 decimals"):
        USDC.parse("1.0000001")


@pytest.mark.parametrize("bad", [1.5, float("nan"), float("inf"), True, "7", None])
def test_float_and_non_int_refused(bad: object) -> None:
    with pytest.raises(InvalidArgument, match="must be an int"):
        Amount(bad, USDC)  # type: ignore[arg-type]


def test_range_is_enforced() -> None:
    Amount(AMOUNT_MAX, USDC)
    with pytest.raises(InvalidArgument, match="outside"):
        Amount(AMOUNT_MAX + 1, USDC)
    with pytest.raises(InvalidArgument, match="outside"):
        Amount(AMOUNT_MAX, USDC) + Amount(1, USDC)


def test_mixing_assets_names_both() -> None:
    with pytest.raises(InvalidArgument, match="eth/USDC and eth/WETH"):
        Amount(1, USDC) + Amount(1, WETH)
    with pytest.raises(InvalidArgument, match="eth/USDC and eth/WETH"):
        _ = Amount(1, USDC) < Amount(1, WETH)


def test_rounding_directions() -> None:
    # 10 * 1 / 3 = 3.33..: received rounds down to 3, owed rounds up to 4
    assert mul_div_down(10, 1, 3) == 3
    assert mul_div_up(10, 1, 3) == 4
    # -10 / 3 = -3.33..: down is toward minus infinity (-4), up is -3
    assert mul_div_down(-10, 1, 3) == -4
    assert mul_div_up(-10, 1, 3) == -3
    # exact division: both agree
    assert mul_div_down(9, 2, 3) == mul_div_up(9, 2, 3) == 6
    with pytest.raises(InvalidArgument, match="d=0"):
        mul_div_down(1, 1, 0)


def test_float_conversion_is_exact_and_directed() -> None:
    # 0.1 is stored as 0.1000000000000000055511151231257827...: 6 decimals -> 100000
    # down and 100001 up, not both 100000 as round() would say
    assert to_units_down(0.1, 6) == 100_000
    assert to_units_up(0.1, 6) == 100_001
    # 1e-7 USDC is below one unit: receiving it gets 0, owing it costs 1 unit
    assert to_units_down(1e-7, 6) == 0
    assert to_units_up(1e-7, 6) == 1
    with pytest.raises(InvalidArgument, match="price=nan"):
        to_units_down(math.nan, 6, "price")


@given(st.integers(-(10**30), 10**30), st.integers(0, 10**30), st.integers(1, 10**20))
def test_mul_div_brackets_the_exact_quotient(a: int, b: int, d: int) -> None:
    lo, hi = mul_div_down(a, b, d), mul_div_up(a, b, d)
    assert lo * d <= a * b <= hi * d
    assert hi - lo in (0, 1)
    assert (hi == lo) == (a * b % d == 0)


def test_amount_is_frozen_and_displays_exactly() -> None:
    a = USDC.parse("1234.5")
    with pytest.raises(AttributeError):
        a.units = 1  # type: ignore[misc]
    assert str(a) == "1234.500000 eth/USDC"
    assert str(Amount(-1, WETH)) == "-0.000000000000000001 eth/WETH"


def test_asset_validation() -> None:
    with pytest.raises(InvalidArgument, match="asset='USDC'"):
        Asset("USDC", 6)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="decimals=37"):
        Asset(asset_id("eth/X"), 37)


def test_parsing_ignores_the_ambient_decimal_context() -> None:
    import decimal

    with decimal.localcontext() as ctx:
        ctx.prec = 6  # someone else's setting must not round our money
        assert USDC.parse("1234.5678") == Amount(1_234_567_800, USDC)
        big = "12345678901.123456789012345678"
        assert WETH.parse(big).units == 12345678901123456789012345678
        assert str(WETH.parse(big)) == big + " eth/WETH"


def test_same_id_other_decimals_is_another_asset() -> None:
    with pytest.raises(InvalidArgument, match=r"eth/USDC\(6\) and eth/USDC\(8\)"):
        Amount(1, USDC) + Amount(1, Asset(USDC.id, 8))
