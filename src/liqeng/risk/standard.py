"""Standard (per-position) option margin as option venues compute it, parameterised.

Per one whole contract, with index ``S``, strike ``K`` and option mark ``mark`` (all in
price units), and ``OTM`` the out-of-the-money amount (``max(K - S, 0)`` for a call,
``max(S - K, 0)`` for a put):

- long call or put: ``IM = MM = 0`` (the premium was paid);
- short call: ``IM = max(im_base - OTM/S, im_floor)·S + mark``; ``MM = mm_rate·S + mark``;
- short put:  ``MM = max(mm_rate·S, mm_rate·mark) + mark``;
  ``IM = max(max(im_base - OTM/S, im_floor)·S + mark, MM)``.

``DERIBIT`` (0.15, 0.10, 0.075) and ``AEVO`` (0.15, 0.10, 0.10) are configurations;
Deribit quotes the same numbers in coin, i.e. divided by ``S``. Arithmetic is exact
(``Fraction``); ``requirement_units`` rounds up, as every requirement does. This model
carries the mark inside the requirement, so it is used against equity that counts the
option at zero, unlike ``liqeng.risk.margin`` whose equity already holds the mark.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from liqeng.errors import InvalidArgument

__all__ = ["AEVO", "DERIBIT", "OptionMargin", "StandardMargin", "requirement_units"]

Number = int | Fraction


def _fraction(name: str, value: object, positive: bool = True) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, Fraction)):
        raise InvalidArgument(f"{name}={value!r} must be an int or a Fraction (exact)")
    f = Fraction(value)
    if f < 0 or (positive and f == 0):
        raise InvalidArgument(f"{name}={value!r} must be {'positive' if positive else '>= 0'}")
    return f


@dataclass(frozen=True, slots=True)
class OptionMargin:
    """Initial and maintenance requirement of one whole contract, in price units."""

    initial: Fraction
    maintenance: Fraction


@dataclass(frozen=True, slots=True)
class StandardMargin:
    """The three rates of the standard model, as exact fractions of the index."""

    im_base: Fraction
    im_floor: Fraction
    mm_rate: Fraction

    def __post_init__(self) -> None:
        for name in ("im_base", "im_floor", "mm_rate"):
            value = _fraction(name, getattr(self, name))
            if value > 1:
                raise InvalidArgument(f"{name}={value} must be at most 1")
        if self.im_floor > self.im_base:
            raise InvalidArgument(f"im_floor={self.im_floor} exceeds im_base={self.im_base}")

    def margin(
        self, *, short: bool, is_call: bool, index: Number, strike: Number, mark: Number
    ) -> OptionMargin:
        """IM and MM of one contract (see the module doc for the formulas)."""
        s = _fraction("index", index)
        k = _fraction("strike", strike)
        m = _fraction("mark", mark, positive=False)
        if not short:
            return OptionMargin(Fraction(0), Fraction(0))
        zero = Fraction(0)
        otm = max(k - s, zero) if is_call else max(s - k, zero)
        im = max(self.im_base - otm / s, self.im_floor) * s + m
        if is_call:
            return OptionMargin(im, self.mm_rate * s + m)
        mm = max(self.mm_rate * s, self.mm_rate * m) + m
        return OptionMargin(max(im, mm), mm)


def requirement_units(per_contract: Fraction, size: int, size_decimals: int) -> int:
    """``ceil(per_contract · |size| / 10**size_decimals)``: a requirement in quote units."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise InvalidArgument(f"size={size!r} must be an int of base units")
    scale: int = 10**size_decimals
    return math.ceil(per_contract * abs(size) / scale)


DERIBIT = StandardMargin(Fraction(15, 100), Fraction(10, 100), Fraction(75, 1000))
AEVO = StandardMargin(Fraction(15, 100), Fraction(10, 100), Fraction(10, 100))
