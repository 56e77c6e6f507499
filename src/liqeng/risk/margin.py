"""Per-position (standard) margin and account health, in exact integers.

Marks are floats (``liqeng.market.marks``); everything that decides is an ``int`` of quote
base units, converted exactly from the float's binary value with ``fractions.Fraction``
and rounded against the account: values round *down* (toward minus infinity, for longs
and shorts alike), requirements round *up*. With ``sd = size_decimals`` and every price
in quote base units per whole underlying token:

==================  ===========================================================================
position value      perp, future: ``floor(size·(mark - entry) / 10**sd)``, mark = index
                    (a future's settlement price from its expiry on)
                    option: ``floor(mark·size / 10**sd)`` (premium-style; mark by Black-76)
collateral value    ``floor(balance·price·(RATE_SCALE - haircut) / (RATE_SCALE·10**dec))``,
                    ``price = index`` or ``index·rate/RATE_SCALE`` (``SpotCollateral``)
maintenance margin  perp, future: ``ceil(perp_rate·|size|·index / (RATE_SCALE·10**sd))``
                    long option: ``0`` (its premium is paid; the most it can lose is its value)
                    short option: ``ceil(|size|·max(opt_rate·index/RATE_SCALE - otm,
                    floor_rate·index/RATE_SCALE) / 10**sd)``, ``otm = max(K - index, 0)`` for
                    a call, ``max(index - K, 0)`` for a put
                    expired (settled) future or option: ``0``, its value is final
initial margin      the same formulas with the ``*_initial_*`` rates (each >= its MM rate)
equity              ``cash + Σ collateral value + Σ position value``
account             liquidatable iff ``equity < Σ maintenance margin``
==================  ===========================================================================

The short-option requirement is Deribit's ``max(rate·index - OTM, floor·index) + mark``
without the ``+ mark`` term: the mark liability is already in equity, through the
position's (negative) value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

from liqeng.errors import InvalidArgument
from liqeng.ids import AssetId, InstrumentId
from liqeng.ledger.model import Position
from liqeng.market.instruments import (
    DatedFuture,
    EuropeanOption,
    Instrument,
    Perpetual,
    SpotCollateral,
    check_instrument,
)
from liqeng.market.marks import Vol, check_index_price, check_vol, exact_mark, mark_price
from liqeng.units import (
    AMOUNT_MAX,
    PRICE_MAX,
    RATE_SCALE,
    Asset,
    check_int,
    mul_div_down,
    mul_div_up,
)

__all__ = [
    "HEALTH_MAX",
    "AccountRisk",
    "MarginParams",
    "account_risk",
    "collateral_value",
    "initial_margin",
    "maintenance_margin",
    "position_value",
]

EXCHANGE_RATE_MAX: Final = 1_000 * RATE_SCALE
"""Bound of an LST exchange rate (parts per ``RATE_SCALE``): 1000 underlying per token."""

HEALTH_MAX: Final = Fraction(10**18)
"""Bound of ``AccountRisk.health``: the health of an account with no requirement."""
_HEALTH_MAX_INT: Final = 10**18


@dataclass(frozen=True, slots=True)
class MarginParams:
    """Standard-margin parameters; rates are parts per ``RATE_SCALE = 10**9``.

    ``perp_maintenance_rate`` (5%) of the perp or future notional; for a short option
    ``option_maintenance_rate`` (10%) of the index less the out-of-the-money amount, at
    least ``option_floor_rate`` (5%) of the index; ``vol`` is the flat Black-76 volatility
    of option marks (0.8 = 80%) where the market has no surface. The ``*_initial_*`` rates
    (10%, 15%, 10%) give the initial margin by the same formulas. Rates lie in
    ``0..RATE_SCALE``, each floor is at most its rate and each initial rate at least its
    maintenance rate; ``vol`` is finite and ``>= 0``.
    """

    perp_maintenance_rate: int = 50_000_000
    option_maintenance_rate: int = 100_000_000
    option_floor_rate: int = 50_000_000
    vol: float = 0.8
    perp_initial_rate: int = 100_000_000
    option_initial_rate: int = 150_000_000
    option_initial_floor_rate: int = 100_000_000

    def __post_init__(self) -> None:
        for name in (
            "perp_maintenance_rate",
            "option_maintenance_rate",
            "option_floor_rate",
            "perp_initial_rate",
            "option_initial_rate",
            "option_initial_floor_rate",
        ):
            check_int(name, getattr(self, name), 0, RATE_SCALE)
        for low, high in (
            ("option_floor_rate", "option_maintenance_rate"),
            ("option_initial_floor_rate", "option_initial_rate"),
            ("perp_maintenance_rate", "perp_initial_rate"),
            ("option_maintenance_rate", "option_initial_rate"),
            ("option_floor_rate", "option_initial_floor_rate"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise InvalidArgument(
                    f"{low}={getattr(self, low)} must not exceed {high}={getattr(self, high)}"
                )
        check_vol(self.vol)


def _check_position(instrument: Instrument, position: Position) -> None:
    check_instrument(instrument)
    if not isinstance(position, Position):
        raise InvalidArgument(f"position={position!r} in {instrument.id} must be a Position")
    size, entry = position.size, position.entry_price
    # the names are built only for a value that fails (check_int then raises)
    if type(size) is not int or not -AMOUNT_MAX <= size <= AMOUNT_MAX:
        check_int(f"size in {instrument.id}", size)
    if type(entry) is not int or not 0 <= entry <= PRICE_MAX:
        check_int(f"entry_price in {instrument.id}", entry, 0, PRICE_MAX)


def position_value(
    instrument: Instrument,
    position: Position,
    index_price: int,
    now_ts: int,
    vol: Vol,
    settlement: int | None = None,
) -> int:
    """Value of ``position`` in quote base units, rounded down (against the holder).

    Perpetual or future: ``floor(size·(mark - entry) / 10**sd)``, mark = index (or the
    future's ``settlement`` from expiry on). Option: ``floor(Fraction(mark)·size / 10**sd)``
    with ``mark = mark_price(...)``, the float's exact binary value; the entry price plays
    no part (the premium was paid at the trade). Expired and unsettled raises ``Unsettled``.
    """
    _check_position(instrument, position)
    return _value_of(instrument, position, index_price, now_ts, vol, settlement)


def _value_of(
    instrument: Instrument,
    position: Position,
    index_price: int,
    now_ts: int,
    vol: Vol,
    settlement: int | None,
) -> int:
    """``position_value`` of a position already checked (``_check_position``)."""
    scale: int = 10**instrument.size_decimals
    exact = exact_mark(instrument, index_price, now_ts, settlement)
    if exact is None:  # a live option: the float Black-76 mark, taken exactly
        mark = Fraction(mark_price(instrument, index_price, now_ts, vol))
        return (mark.numerator * position.size) // (mark.denominator * scale)
    if isinstance(instrument, EuropeanOption):
        return mul_div_down(position.size, exact, scale)  # settled: intrinsic value
    return mul_div_down(position.size, exact - position.entry_price, scale)


def collateral_value(
    collateral: SpotCollateral, balance: int, index_price: int, exchange_rate: int | None = None
) -> int:
    """``floor(balance·index·rate·(RS - haircut) / (RS²·10**decimals))``, ``rate = RS``
    unless ``collateral.exchange_rate`` (then the given ``exchange_rate``, ``1..1000·RS``)."""
    if not isinstance(collateral, SpotCollateral):
        raise InvalidArgument(f"collateral={collateral!r} must be a SpotCollateral")
    check_int(f"balance of {collateral.asset.id}", balance)
    check_index_price(index_price, f"index price of {collateral.underlying}")
    rate = RATE_SCALE
    if collateral.exchange_rate:
        if exchange_rate is None:
            raise InvalidArgument(f"collateral {collateral.asset.id} needs an exchange rate")
        rate = check_int(
            f"exchange_rate of {collateral.asset.id}", exchange_rate, 1, EXCHANGE_RATE_MAX
        )
    return mul_div_down(
        balance * index_price * rate,
        RATE_SCALE - collateral.haircut,
        RATE_SCALE * RATE_SCALE * 10**collateral.asset.decimals,
    )


def _requirement(
    instrument: Instrument,
    position: Position,
    index_price: int,
    now_ts: int,
    rates: tuple[int, int, int],
) -> int:
    """``rates = (linear, option, option_floor)``; the formulas of the module doc."""
    _check_position(instrument, position)
    check_index_price(index_price)
    check_int("now_ts", now_ts)
    return _requirement_of(instrument, position.size, index_price, now_ts, rates)


def _requirement_of(
    instrument: Instrument,
    size: int,
    index_price: int,
    now_ts: int,
    rates: tuple[int, int, int],
) -> int:
    """``_requirement`` of a position, price and time already checked."""
    linear_rate, option_rate, floor_rate = rates
    if isinstance(instrument, Perpetual) or (
        isinstance(instrument, DatedFuture) and now_ts < instrument.expiry_ts
    ):
        scale = RATE_SCALE * 10**instrument.size_decimals
        return mul_div_up(linear_rate * abs(size), index_price, scale)
    if not isinstance(instrument, EuropeanOption) or size >= 0:
        return 0  # a settled future, or a long option
    if now_ts >= instrument.expiry_ts:
        return 0  # expired: the value is final
    strike = instrument.strike
    otm = max(strike - index_price, 0) if instrument.is_call else max(index_price - strike, 0)
    per_token = max(
        option_rate * index_price - otm * RATE_SCALE, floor_rate * index_price
    )  # price units · RATE_SCALE, >= 0
    return mul_div_up(-size, per_token, RATE_SCALE * 10**instrument.size_decimals)


def _params(params: object) -> MarginParams:
    if not isinstance(params, MarginParams):
        raise InvalidArgument(f"params={params!r} must be MarginParams")
    return params


def maintenance_margin(
    instrument: Instrument,
    position: Position,
    index_price: int,
    now_ts: int,
    params: MarginParams,
) -> int:
    """Maintenance requirement of ``position`` in quote base units, rounded up, ``>= 0``.

    Perpetual or live future: ``ceil(perp_rate·|size|·index / (RATE_SCALE·10**sd))``. Long
    option: 0. Live short option: ``ceil(|size|·max(opt_rate·index - otm·RATE_SCALE,
    floor_rate·index) / (RATE_SCALE·10**sd))`` with ``otm = max(K - index, 0)`` (call) or
    ``max(index - K, 0)`` (put). Expired future or option: 0.
    """
    p = _params(params)
    rates = (p.perp_maintenance_rate, p.option_maintenance_rate, p.option_floor_rate)
    return _requirement(instrument, position, index_price, now_ts, rates)


def initial_margin(
    instrument: Instrument,
    position: Position,
    index_price: int,
    now_ts: int,
    params: MarginParams,
) -> int:
    """``maintenance_margin``'s formulas with the initial rates: always ``>=`` it."""
    p = _params(params)
    rates = (p.perp_initial_rate, p.option_initial_rate, p.option_initial_floor_rate)
    return _requirement(instrument, position, index_price, now_ts, rates)


@dataclass(frozen=True, slots=True)
class AccountRisk:
    """An account's ``equity``, ``maintenance_margin`` and ``initial_margin`` (quote base
    units, exact); ``initial_margin`` defaults to the maintenance margin and is never below
    it. ``health = equity / maintenance_margin`` is the one definition the engine uses."""

    equity: int
    maintenance_margin: int
    initial_margin: int = None  # type: ignore[assignment]  # set to maintenance if None

    def __post_init__(self) -> None:
        check_int("equity", self.equity)
        check_int("maintenance_margin", self.maintenance_margin, 0)
        if self.initial_margin is None:
            object.__setattr__(self, "initial_margin", self.maintenance_margin)
        check_int("initial_margin", self.initial_margin, self.maintenance_margin)

    @property
    def is_liquidatable(self) -> bool:
        """``equity < maintenance_margin``: exact; with no requirement, iff equity < 0."""
        return self.equity < self.maintenance_margin

    @property
    def health_ratio(self) -> tuple[int, int]:
        """``health`` as ``(numerator, denominator)`` ints, denominator ``> 0`` (not reduced):
        compare two by cross-multiplying, without building a ``Fraction``."""
        equity, mm = self.equity, self.maintenance_margin
        if mm == 0:
            return (_HEALTH_MAX_INT if equity >= 0 else -_HEALTH_MAX_INT), 1
        if equity >= _HEALTH_MAX_INT * mm:
            return _HEALTH_MAX_INT, 1
        if equity <= -_HEALTH_MAX_INT * mm:
            return -_HEALTH_MAX_INT, 1
        return equity, mm

    @property
    def health(self) -> Fraction:
        """``equity / maintenance_margin`` clamped to ``[-HEALTH_MAX, HEALTH_MAX]``.

        With no requirement it is ``HEALTH_MAX`` (``10**18``) if ``equity >= 0`` and
        ``-HEALTH_MAX`` otherwise, so ``health < 1`` exactly when ``is_liquidatable``.
        """
        equity, mm = self.equity, self.maintenance_margin
        if mm == 0:
            return HEALTH_MAX if equity >= 0 else -HEALTH_MAX
        # clamp in integers (mm > 0): one Fraction, and no Fraction comparisons
        if equity >= _HEALTH_MAX_INT * mm:
            return HEALTH_MAX
        if equity <= -_HEALTH_MAX_INT * mm:
            return -HEALTH_MAX
        return Fraction(equity, mm)

    @property
    def shortfall(self) -> int:
        """``max(maintenance_margin - equity, 0)``: what restores the requirement."""
        return max(self.maintenance_margin - self.equity, 0)


def account_risk(
    cash: int,
    positions: Mapping[InstrumentId, Position],
    instruments: Mapping[InstrumentId, Instrument],
    index_prices: Mapping[str, int],
    now_ts: int,
    params: MarginParams,
    *,
    vols: Mapping[str, Vol] | None = None,
    settlements: Mapping[InstrumentId, int] | None = None,
    collateral: Mapping[SpotCollateral, int] | None = None,
    exchange_rates: Mapping[AssetId, int] | None = None,
) -> AccountRisk:
    """``equity = cash + Σ collateral_value + Σ position_value``; maintenance and initial
    margin the sums of ``maintenance_margin`` and ``initial_margin``.

    ``cash`` is in base units of the instruments' quote asset; every open position must
    be quoted in that one asset (mixing assets raises). ``index_prices`` is keyed by
    underlying; option σ comes from ``vols[underlying]`` (a flat vol or a ``VolSurface``)
    or else ``params.vol``; ``settlements`` prices expired instruments; ``collateral``
    maps each ``SpotCollateral`` the account holds to its balance (LSTs take their rate
    from ``exchange_rates``). Positions of size 0 are skipped; an unknown instrument, a
    missing index price or an expired instrument without settlement raises
    ``InvalidArgument`` naming it.
    """
    check_int("cash", cash)
    p = _params(params)
    maintenance = (p.perp_maintenance_rate, p.option_maintenance_rate, p.option_floor_rate)
    initial_rates = (p.perp_initial_rate, p.option_initial_rate, p.option_initial_floor_rate)
    vols = vols or {}
    settlements = settlements or {}
    equity = cash
    requirement = initial = 0
    quote: Asset | None = None

    def index_of(underlying: str, what: object) -> int:
        index = index_prices.get(underlying)
        if index is None:
            raise InvalidArgument(f"no index price for underlying={underlying!r} of {what}")
        return index

    for spec, balance in (collateral or {}).items():
        if not isinstance(spec, SpotCollateral):
            raise InvalidArgument(f"collateral={spec!r} must be a SpotCollateral")
        rate = (exchange_rates or {}).get(spec.asset.id)
        equity += collateral_value(spec, balance, index_of(spec.underlying, spec.asset.id), rate)
    for iid in sorted(positions):
        position = positions[iid]
        if not isinstance(position, Position):
            raise InvalidArgument(f"position={position!r} in {iid} must be a Position")
        if position.size == 0:
            continue
        instrument = instruments.get(iid)
        if instrument is None:
            raise InvalidArgument(f"instrument={iid!r} has a position but no Instrument")
        check_instrument(instrument)
        if instrument.id != iid:
            raise InvalidArgument(f"instruments[{iid!r}] has id={instrument.id!r}")
        if quote is None:
            quote = instrument.quote
        elif instrument.quote != quote:
            raise InvalidArgument(
                f"instrument={iid!r} is quoted in {instrument.quote.id}, "
                f"other positions in {quote.id}: cannot add them"
            )
        index = index_of(instrument.underlying, iid)
        vol = vols.get(instrument.underlying, p.vol)
        # the checks position_value, maintenance_margin and initial_margin each make, once
        _check_position(instrument, position)
        check_index_price(index)
        check_int("now_ts", now_ts)
        equity += _value_of(instrument, position, index, now_ts, vol, settlements.get(iid))
        requirement += _requirement_of(instrument, position.size, index, now_ts, maintenance)
        initial += _requirement_of(instrument, position.size, index, now_ts, initial_rates)
    return AccountRisk(equity, requirement, initial)
