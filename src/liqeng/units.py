"""Exact money: integer base units tagged with their asset, and named rounding.

Scales and ranges (checked at every boundary; Python ints never overflow, storage does):

==============  ============================================  =======================
quantity        unit                                          range
==============  ============================================  =======================
``Amount``      integer base units of its asset               ``|units| <= AMOUNT_MAX``
                (1 USDC = 10**6 units with ``decimals=6``)    ``= 2**127 - 1``
``decimals``    digits after the point of one whole token      ``0..36``
price           quote base units per one *whole* base token    ``1..PRICE_MAX = 2**96``
                (ETH at $1234.56 in USDC(6) = 1_234_560_000)
size            instrument base units, signed                  ``|size| <= AMOUNT_MAX``
rate            parts per ``RATE_SCALE = 10**9``               ``0..RATE_SCALE`` unless
                (5% = 50_000_000)                              documented otherwise
==============  ============================================  =======================

``AMOUNT_MAX`` is the signed 128-bit bound, far past SQLite's 64-bit ``INTEGER``, so the
ledger stores amounts as canonical decimal text, never as SQLite integers or reals.

Rounding favours solvency and is named where it happens: what an account or a liquidator
*receives* rounds down (``mul_div_down``, ``to_units_down``); what is *owed or required*
rounds up (``mul_div_up``, ``to_units_up``). "Down" is toward minus infinity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation, Rounded
from fractions import Fraction

from liqeng.errors import InvalidArgument
from liqeng.ids import AssetId, asset_id

__all__ = [
    "AMOUNT_MAX",
    "DECIMALS_MAX",
    "EXACT",
    "PRICE_MAX",
    "RATE_SCALE",
    "Amount",
    "Asset",
    "check_int",
    "mul_div_down",
    "mul_div_up",
    "to_units_down",
    "to_units_up",
]

AMOUNT_MAX = 2**127 - 1
PRICE_MAX = 2**96
DECIMALS_MAX = 36
RATE_SCALE = 10**9

EXACT = Context(prec=200, traps=[Inexact, Rounded, InvalidOperation])
"""Decimal arithmetic in liqeng uses this context, never the ambient one: any rounding
raises instead of silently changing a value."""


def check_int(name: str, value: object, lo: int = -AMOUNT_MAX, hi: int = AMOUNT_MAX) -> int:
    """Return ``value`` if it is an ``int`` (not ``bool``, not ``float``) in ``[lo, hi]``."""
    if type(value) is int and lo <= value <= hi:
        return value  # the common case, decided without the checks below
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(
            f"{name}={value!r} must be an int of base units, not {type(value).__name__}"
        )
    if not lo <= value <= hi:
        raise InvalidArgument(f"{name}={value} is outside [{lo}, {hi}]")
    return value


def mul_div_down(a: int, b: int, d: int) -> int:
    """``floor(a * b / d)``, exact; for what is *received*. ``d > 0``.

    e.g. ``mul_div_down(-7, 1, 2) == -4`` (toward minus infinity, against the receiver).
    """
    if d <= 0:
        raise InvalidArgument(f"divisor d={d} must be positive")
    return (a * b) // d


def mul_div_up(a: int, b: int, d: int) -> int:
    """``ceil(a * b / d)``, exact; for what is *owed or required*. ``d > 0``."""
    if d <= 0:
        raise InvalidArgument(f"divisor d={d} must be positive")
    return -((-(a * b)) // d)


def _exact(name: str, x: float) -> Fraction:
    if isinstance(x, bool) or not isinstance(x, (float, int)) or not math.isfinite(x):
        raise InvalidArgument(f"{name}={x!r} must be a finite number")
    return Fraction(x)


def to_units_down(x: float, decimals: int, name: str = "value") -> int:
    """The one door from float valuation into integers, rounding down:
    ``floor(x * 10**decimals)`` computed exactly on the binary value of ``x``."""
    scale: int = 10**decimals
    return math.floor(_exact(name, x) * scale)


def to_units_up(x: float, decimals: int, name: str = "value") -> int:
    """As ``to_units_down`` but ``ceil``: for requirements and liabilities."""
    scale: int = 10**decimals
    return math.ceil(_exact(name, x) * scale)


@dataclass(frozen=True, slots=True)
class Asset:
    """A token the ledger can hold: ``Asset("eth/USDC", 6)``."""

    id: AssetId
    decimals: int

    def __post_init__(self) -> None:
        asset_id(self.id)
        check_int("decimals", self.decimals, 0, DECIMALS_MAX)

    def units(self, value: int) -> Amount:
        return Amount(value, self)

    def parse(self, text: str) -> Amount:
        """Exact decimal text to an amount: ``USDC.parse("12.5") == Amount(12_500_000, USDC)``.

        Refuses more digits than the asset has, rather than rounding silently.
        """
        if not isinstance(text, str):
            raise InvalidArgument(f"amount text={text!r} must be a str like '12.5'")
        try:
            d = Decimal(text)
        except InvalidOperation:
            raise InvalidArgument(f"amount text={text!r} is not a decimal number") from None
        if not d.is_finite() or len(d.as_tuple().digits) > 120:
            raise InvalidArgument(f"amount text={text!r} must be finite and at most 120 digits")
        scaled = d.scaleb(self.decimals, context=EXACT)
        if scaled != scaled.to_integral_value(context=EXACT):
            raise InvalidArgument(
                f"amount text={text!r} has more than {self.decimals} decimals for {self.id}"
            )
        return Amount(int(scaled), self)


@dataclass(frozen=True, slots=True, order=False)
class Amount:
    """Integer base units of one asset. Frozen; floats are refused; mixing assets raises."""

    units: int
    asset: Asset

    def __post_init__(self) -> None:
        if not isinstance(self.asset, Asset):
            raise InvalidArgument(f"asset={self.asset!r} of an amount must be an Asset")
        units = self.units
        if type(units) is not int or not -AMOUNT_MAX <= units <= AMOUNT_MAX:
            check_int(f"amount of {self.asset.id}", units)  # names the asset only on failure

    def _same(self, other: Amount, op: str) -> None:
        if not isinstance(other, Amount):
            raise InvalidArgument(f"cannot {op} {self} and {other!r}: not an Amount")
        if other.asset != self.asset:
            a, b = self.asset, other.asset
            names = (
                (a.id, b.id) if a.id != b.id else (f"{a.id}({a.decimals})", f"{b.id}({b.decimals})")
            )
            raise InvalidArgument(f"cannot {op} {names[0]} and {names[1]}: different assets")

    def __add__(self, other: Amount) -> Amount:
        self._same(other, "add")
        return Amount(self.units + other.units, self.asset)

    def __sub__(self, other: Amount) -> Amount:
        self._same(other, "subtract")
        return Amount(self.units - other.units, self.asset)

    def __neg__(self) -> Amount:
        return Amount(-self.units, self.asset)

    def __abs__(self) -> Amount:
        return Amount(abs(self.units), self.asset)

    def __lt__(self, other: Amount) -> bool:
        self._same(other, "compare")
        return self.units < other.units

    def __le__(self, other: Amount) -> bool:
        self._same(other, "compare")
        return self.units <= other.units

    def __gt__(self, other: Amount) -> bool:
        self._same(other, "compare")
        return self.units > other.units

    def __ge__(self, other: Amount) -> bool:
        self._same(other, "compare")
        return self.units >= other.units

    def to_decimal(self) -> Decimal:
        """Exact decimal value in whole tokens (for display; never for arithmetic)."""
        return Decimal(self.units).scaleb(-self.asset.decimals, context=EXACT)

    def __str__(self) -> str:
        return f"{self.to_decimal():f} {self.asset.id}"
