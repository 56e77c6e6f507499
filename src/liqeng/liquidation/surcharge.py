"""What eligibility adds to the maintenance margin besides the margin model: a surcharge by
notional, so the account becomes liquidatable while it can still pay what its close-out
costs.

``Surcharge(fixed, rate, cap).of(n) = min(cap, fixed + ceil(rate·n / RATE_SCALE))`` for an
account of notional ``n = Σ ceil(|size|·index / 10**size_decimals)`` (quote base units).
Two uses:

* the keeper reward reserved inside the requirement (Synthetix's ``keeperReward`` in
  ``getRequiredMargins``): a mechanism's ``surcharge`` (``FixedFee.surcharge``);
* the expected closing cost (GMX v2 counts the price impact and close fee in its
  liquidation check): ``Surcharge(rate=closing_cost_rate)``.

The engine screens with ``bound``, a float upper bound of ``of`` per account, and decides
with the exact ``of``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from liqeng.units import AMOUNT_MAX, RATE_SCALE, check_int, mul_div_up

__all__ = ["Surcharge"]


@dataclass(frozen=True, slots=True)
class Surcharge:
    """``min(cap, fixed + ceil(rate·notional / RATE_SCALE))``; ``fixed`` and ``cap`` in quote
    base units, ``rate`` in parts per ``RATE_SCALE`` of the notional."""

    fixed: int = 0
    rate: int = 0
    cap: int = AMOUNT_MAX

    def __post_init__(self) -> None:
        check_int("fixed", self.fixed, 0)
        check_int("rate", self.rate, 0, RATE_SCALE)
        check_int("cap", self.cap, 0)

    def of(self, notional: int) -> int:
        """The exact surcharge of an account of ``notional``."""
        return min(self.cap, self.fixed + mul_div_up(notional, self.rate, RATE_SCALE))

    def bound(
        self, notional: npt.NDArray[np.float64], n_positions: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """An upper bound of ``of`` for accounts of ``n_positions`` positions whose float
        notionals are within a relative 1e-9 of ``Σ |size|·index`` (the screen's): the
        exact notional rounds each position up, less than one unit more per position."""
        rate = self.rate / RATE_SCALE * (1 + 1e-9)
        x = (notional + n_positions) * rate + (self.fixed + 2)
        return np.minimum(x, float(self.cap) + 1.0)
