"""Finite liquidity: where liquidated collateral is sold, and what the oracles then see.

A liquidation that sells ``tokens`` into a ``Market`` gets less than ``tokens * price``, and
moves the price it leaves behind; the next block's oracle reports (``SourcePrices``) follow
that moved price, so a large liquidation can trigger the next one (a cascade). Between
blocks ``Market.step(external_price)`` pulls the market back toward the scenario's price
path (arbitrage, order-book refill).

Units are the engine's (``liqeng.units``): ``tokens`` are integer base units of the sold
asset (``decimals`` digits, 18 by default), quote amounts integer quote base units, prices
*price units* (quote base units per one whole token, an ``int`` in, an exact ``Fraction``
out of ``Market.price``). State is exact (integers, or ``Fraction`` for the depth curve's
impact); every amount a trade pays out rounds down and every amount it charges rounds up:
rounding is always against the trader, never against the pool or book.

Bad input (negative sizes, non-positive depth or price, floats where integers are due)
raises ``InvalidArgument`` naming the value. A well-formed trade that the current liquidity
cannot fill (buying the whole pool, selling the book through zero) raises ``Refused`` with
code ``"market/insufficient-liquidity"`` and leaves the state unchanged.

Randomness (``SourcePrices``) comes only from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Protocol, runtime_checkable

import numpy as np

from liqeng.errors import InvalidArgument, Refused
from liqeng.oracle.reports import SourceReport
from liqeng.units import AMOUNT_MAX, DECIMALS_MAX, PRICE_MAX, check_int

__all__ = [
    "INSUFFICIENT_LIQUIDITY",
    "ConstantProductMarket",
    "DepthCurveMarket",
    "Market",
    "SourcePrices",
]

INSUFFICIENT_LIQUIDITY = "market/insufficient-liquidity"
"""``Refused.code`` of a trade larger than the market can fill."""

_BPS = 10_000
_IMPACT_GRID = 10**18
"""The depth curve's relative impact is kept on a grid of 1e-18 after each recovery, so a
long run's ``Fraction`` state does not grow without bound."""


@runtime_checkable
class Market(Protocol):
    """Where the simulator sells liquidated tokens and buys them back."""

    @property
    def price(self) -> Fraction:
        """The current marginal price, exact, in price units."""
        ...

    def sell(self, tokens: int) -> int:
        """Sell ``tokens`` base units; return the quote base units received (rounded down)."""
        ...

    def buy(self, tokens: int) -> int:
        """Buy ``tokens`` base units; return the quote base units paid (rounded up)."""
        ...

    def step(self, external_price: int) -> None:
        """One block passes: move toward the scenario's ``external_price`` (price units)."""
        ...


def _fraction_arg(name: str, value: object, lo: float, hi: float) -> Fraction:
    """A finite real in ``[lo, hi]`` (an ``int``, ``float`` or ``Fraction``), exactly."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise InvalidArgument(f"{name}={value!r} must be a number in [{lo}, {hi}]")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgument(f"{name}={value!r} must be finite")
    exact = Fraction(value)
    if not lo <= exact <= hi:
        raise InvalidArgument(f"{name}={value!r} must be within [{lo}, {hi}]")
    return exact


def _price_arg(name: str, value: object) -> int:
    return check_int(name, value, 1, PRICE_MAX)


def _tokens_arg(value: object) -> int:
    return check_int("tokens", value, 0, AMOUNT_MAX)


def _floor(q: Fraction) -> int:
    return q.numerator // q.denominator


def _ceil(q: Fraction) -> int:
    return -((-q.numerator) // q.denominator)


class ConstantProductMarket:
    """An AMM pool of ``x`` token base units and ``y`` quote base units, ``x * y = k``.

    ``ConstantProductMarket(depth_quote, price)`` starts with ``y = depth_quote`` and
    ``x = floor(depth_quote * 10**decimals / price)`` (rounded down, so the pool's opening
    price ``y * 10**decimals / x`` is at or just above ``price``). ``fee_bps`` (30 = 0.3%,
    Uniswap v2's) is taken from the input of every trade and stays in the pool, so ``k``
    only grows. Exact integer arithmetic, Uniswap v2's formulas without its 1/1000 grid:

    - ``sell(t)``: ``out = floor(t_net * y / (x + t_net))`` with
      ``t_net = floor(t * (1 - fee))``; then ``x += t``, ``y -= out``.
    - ``buy(t)``: ``t < x``; ``net = ceil(y * t / (x - t))``,
      ``in = ceil(net / (1 - fee))``; then ``x -= t``, ``y += in``.

    ``arbitrage(external_price, rate)`` trades (through ``sell``/``buy``, paying the fee)
    the amount that would move a fee-free pool by ``rate`` of the log-gap
    ``ln(external / price)``; ``step`` does so with the ``arbitrage_rate`` given here.
    """

    __slots__ = ("_arb_rate", "_decimals", "_fee_bps", "_scale", "_x", "_y")
    _arb_rate: Fraction
    _decimals: int
    _fee_bps: int
    _scale: int
    _x: int
    _y: int

    def __init__(
        self,
        depth_quote: int,
        price: int,
        *,
        decimals: int = 18,
        fee_bps: int = 30,
        arbitrage_rate: float = 0.5,
    ) -> None:
        depth = check_int("depth_quote", depth_quote, 1, AMOUNT_MAX)
        p = _price_arg("price", price)
        self._decimals = check_int("decimals", decimals, 0, DECIMALS_MAX)
        self._fee_bps = check_int("fee_bps", fee_bps, 0, _BPS - 1)
        self._arb_rate = _fraction_arg("arbitrage_rate", arbitrage_rate, 0, 1)
        self._scale = 10**self._decimals
        x = depth * self._scale // p
        if x < 1:
            raise InvalidArgument(
                f"depth_quote={depth} buys less than one token base unit at price={p}"
            )
        self._x = x
        self._y = depth

    @property
    def tokens(self) -> int:
        """``x``: token base units in the pool."""
        return self._x

    @property
    def quote(self) -> int:
        """``y``: quote base units in the pool."""
        return self._y

    @property
    def k(self) -> int:
        return self._x * self._y

    @property
    def decimals(self) -> int:
        return self._decimals

    @property
    def price(self) -> Fraction:
        """``y / x`` in price units: ``y * 10**decimals / x``."""
        return Fraction(self._y * self._scale, self._x)

    def sell(self, tokens: int) -> int:
        t = _tokens_arg(tokens)
        net = t * (_BPS - self._fee_bps) // _BPS
        out = net * self._y // (self._x + net)
        self._x += t
        self._y -= out
        return out

    def buy(self, tokens: int) -> int:
        t = _tokens_arg(tokens)
        if t >= self._x:
            raise Refused(
                INSUFFICIENT_LIQUIDITY,
                f"buy of tokens={t} needs fewer than the pool's {self._x} token units",
            )
        if t == 0:
            return 0
        net = -((-self._y * t) // (self._x - t))
        paid = -((-net * _BPS) // (_BPS - self._fee_bps))
        self._x -= t
        self._y += paid
        return paid

    def arbitrage(self, external_price: int, rate: float) -> int:
        """Pull the pool toward ``external_price`` by ``rate`` (0..1) of the log-gap.

        Returns the tokens the arbitrageur traded: positive sold into the pool (the pool
        was above ``external_price``), negative bought from it, 0 for no trade.
        """
        ext = _price_arg("external_price", external_price)
        r = _fraction_arg("rate", rate, 0, 1)
        current = self.price
        if r == 0 or ext == current:
            return 0
        gap = math.log(ext / current)
        target = Fraction(float(current) * math.exp(float(r) * gap))
        if target <= 0:
            return 0
        # a fee-free pool at price p holds x = sqrt(k * 10**decimals / p) tokens
        x_target = max(math.isqrt(_floor(self.k * self._scale / target)), 1)
        dx = x_target - self._x
        if dx > 0:
            self.sell(dx)
        elif dx < 0:
            self.buy(-dx)
        return dx

    def step(self, external_price: int) -> None:
        self.arbitrage(external_price, float(self._arb_rate))

    def __repr__(self) -> str:
        return (
            f"ConstantProductMarket(x={self._x}, y={self._y}, decimals={self._decimals}, "
            f"fee_bps={self._fee_bps}, price={float(self.price):.6g})"
        )


class DepthCurveMarket:
    """An order-book-like market with linear impact that recovers between blocks.

    ``depth_per_pct`` is the quote notional (base units) that moves the price by 1%:
    selling notional ``q`` moves the price from ``p`` to ``p * (1 - q / (100 *
    depth_per_pct))`` and fills at the average of the two (half way); buying moves it up by
    the same amount. Notional is valued at the *reference* price (the last external price),
    so impact is linear in tokens and a sell followed by a buy of the same size returns the
    price exactly where it was: the book itself gives no round-trip profit, and a round trip
    loses the fee (``fee_bps``, a taker fee, 0 by default), the rounding and whatever the book
    recovered in between. On a fresh book (price = reference) the formula is the one above.

    State: ``reference`` (price units) and a relative ``impact``, with ``price = reference *
    (1 + impact)``. ``recover(external_price)`` sets ``reference = external_price`` and
    multiplies ``impact`` by ``1 - resilience`` (then truncates it toward zero to a 1e-18
    grid); ``step`` is ``recover``. Fills: ``sell`` pays ``floor(tokens * avg / 10**decimals
    * (1 - fee))``, ``buy`` charges ``ceil(tokens * avg / 10**decimals / (1 - fee))``.
    """

    __slots__ = ("_decimals", "_depth", "_fee_bps", "_impact", "_ref", "_res", "_scale")
    _decimals: int
    _depth: int
    _fee_bps: int
    _impact: Fraction
    _ref: int
    _res: Fraction
    _scale: int

    def __init__(
        self,
        depth_per_pct: int,
        price: int,
        resilience: float,
        *,
        decimals: int = 18,
        fee_bps: int = 0,
    ) -> None:
        self._depth = check_int("depth_per_pct", depth_per_pct, 1, AMOUNT_MAX)
        self._ref = _price_arg("price", price)
        self._res = _fraction_arg("resilience", resilience, 0, 1)
        self._decimals = check_int("decimals", decimals, 0, DECIMALS_MAX)
        self._fee_bps = check_int("fee_bps", fee_bps, 0, _BPS - 1)
        self._scale = 10**self._decimals
        self._impact = Fraction(0)

    @property
    def decimals(self) -> int:
        return self._decimals

    @property
    def reference(self) -> int:
        """The external price the book refills toward, in price units."""
        return self._ref

    @property
    def impact(self) -> Fraction:
        """``price / reference - 1``: negative after net selling."""
        return self._impact

    @property
    def price(self) -> Fraction:
        return self._ref * (1 + self._impact)

    def _move(self, tokens: int) -> Fraction:
        """Relative price move of trading ``tokens``: ``q / (100 * depth_per_pct)``."""
        notional = Fraction(tokens * self._ref, self._scale)
        return notional / (100 * self._depth)

    def sell(self, tokens: int) -> int:
        t = _tokens_arg(tokens)
        after = self._impact - self._move(t)
        if after <= -1:
            raise Refused(
                INSUFFICIENT_LIQUIDITY,
                f"sell of tokens={t} would push the price through zero "
                f"(depth_per_pct={self._depth}, price={float(self.price):.6g})",
            )
        avg = self._ref * (1 + (self._impact + after) / 2)
        out = _floor(t * avg / self._scale * Fraction(_BPS - self._fee_bps, _BPS))
        self._impact = after
        return out

    def buy(self, tokens: int) -> int:
        t = _tokens_arg(tokens)
        after = self._impact + self._move(t)
        avg = self._ref * (1 + (self._impact + after) / 2)
        paid = _ceil(t * avg / self._scale / Fraction(_BPS - self._fee_bps, _BPS))
        self._impact = after
        return paid

    def recover(self, external_price: int) -> None:
        """Re-anchor on ``external_price`` and decay the impact by ``resilience``."""
        self._ref = _price_arg("external_price", external_price)
        decayed = self._impact * (1 - self._res)
        scaled = decayed * _IMPACT_GRID
        whole = _floor(scaled) if scaled >= 0 else _ceil(scaled)  # toward zero
        self._impact = Fraction(whole, _IMPACT_GRID)

    def step(self, external_price: int) -> None:
        self.recover(external_price)

    def __repr__(self) -> str:
        return (
            f"DepthCurveMarket(reference={self._ref}, impact={float(self._impact):.6g}, "
            f"depth_per_pct={self._depth}, resilience={float(self._res):.6g})"
        )


class SourcePrices:
    """Per-source oracle prices that follow a ``Market``, with seeded noise.

    Source ``i`` (in the order given) carries a fixed basis ``b_i ~ U(-spread_bps,
    spread_bps)``, drawn once here (always, even for a zero spread, so the stream of ``rng``
    does not depend on it); each call to ``sample`` draws ``z_i ~ N(0, 1)`` for every
    source in order and reports ``floor(price * exp((b_i + noise_bps * z_i) / 10_000))``,
    clamped to ``1..PRICE_MAX``. Everything random comes from ``rng``: the same seed gives
    the same prices.
    """

    __slots__ = ("_basis", "_market", "_noise", "_rng", "_sources")
    _basis: tuple[float, ...]
    _market: Market
    _noise: float
    _rng: np.random.Generator
    _sources: tuple[str, ...]

    def __init__(
        self,
        market: Market,
        sources: Sequence[str],
        spread_bps: float,
        noise_bps: float,
        rng: np.random.Generator,
    ) -> None:
        if not isinstance(market, Market):
            raise InvalidArgument(f"market={market!r} must be a Market")
        if isinstance(sources, str) or not isinstance(sources, Sequence) or not sources:
            raise InvalidArgument(f"sources={sources!r} must be a non-empty sequence of names")
        for s in sources:
            if not isinstance(s, str) or not s:
                raise InvalidArgument(f"source={s!r} must be a non-empty str")
        if len(set(sources)) != len(sources):
            raise InvalidArgument(f"sources={list(sources)!r} has a repeated name")
        spread = float(_fraction_arg("spread_bps", spread_bps, 0, _BPS))
        self._noise = float(_fraction_arg("noise_bps", noise_bps, 0, _BPS))
        if not isinstance(rng, np.random.Generator):
            raise InvalidArgument(f"rng={rng!r} must be a numpy.random.Generator")
        self._market = market
        self._sources = tuple(sources)
        self._rng = rng
        self._basis = tuple(float(b) for b in rng.uniform(-spread, spread, len(sources)))

    @property
    def sources(self) -> tuple[str, ...]:
        return self._sources

    @property
    def basis_bps(self) -> tuple[float, ...]:
        """Each source's fixed basis against the market, in basis points."""
        return self._basis

    def sample(self) -> dict[str, int]:
        """One block's price per source, in price units."""
        price = self._market.price
        z = self._rng.standard_normal(len(self._sources))
        out: dict[str, int] = {}
        for name, b, zi in zip(self._sources, self._basis, z, strict=True):
            factor = Fraction(math.exp((b + self._noise * float(zi)) / _BPS))
            out[name] = min(max(_floor(price * factor), 1), PRICE_MAX)
        return out

    def reports(self, market: str, ts: int) -> list[SourceReport]:
        """``sample()`` as one ``SourceReport`` per source for ``market`` at ``ts``."""
        return [SourceReport(s, market, p, ts) for s, p in self.sample().items()]
