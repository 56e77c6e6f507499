"""Compound III (Comet) liquidations in Comet's own vocabulary, and the ``compound``
preset (docs/presets/compound.md).

Units are Comet's: factors scaled by ``FACTOR_SCALE = 10**18`` (0.95 = ``95 * 10**16``),
prices with 8 decimals, amounts in each asset's base units. A ``Comet`` holds the base
asset's price and scale, the collateral ``CollateralAsset`` configurations, the
protocol's base ``reserves`` (signed: absorbs may take them below zero) and its
collateral reserves; a ``CometAccount`` holds a signed base balance (present value;
negative = borrowed) and collateral balances.

* ``absorb``: an account with ``liquidity < 0`` (collateral at ``liquidateCollateralFactor``)
  loses all its collateral, credited at ``liquidationFactor``; the protocol's reserves pay
  its debt; an excess becomes the account's base supply.
* ``quote_collateral`` / ``buy_collateral``: the storefront sells seized collateral at
  ``price · (1 - storeFrontPriceFactor · (1 - liquidationFactor))``, only while the reserves
  are below ``targetReserves``.

Interest accrual is not modelled: the principal is the present value (indices at 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from liqeng.errors import InvalidArgument, Refused
from liqeng.liquidation.base import Mechanism
from liqeng.liquidation.fixed_fee import FixedFee
from liqeng.liquidation.portion import CloseAll
from liqeng.liquidation.waterfall import Waterfall
from liqeng.presets.base import Preset
from liqeng.units import RATE_SCALE, check_int, mul_div_up

__all__ = [
    "FACTOR_SCALE",
    "PRESET",
    "AbsorbResult",
    "CollateralAsset",
    "Comet",
    "CometAccount",
    "preset",
]

FACTOR_SCALE: Final = 10**18
_UINT256_MAX: Final = 2**256 - 1


def _amount(name: str, value: object) -> int:
    return check_int(name, value, 0, _UINT256_MAX)


def _factor(name: str, value: object, hi: int = FACTOR_SCALE) -> int:
    return check_int(name, value, 0, hi)


def _mul_factor(n: int, factor: int) -> int:
    return n * factor // FACTOR_SCALE


def _trunc_div(a: int, b: int) -> int:
    """Solidity's signed division: toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


@dataclass(frozen=True, slots=True)
class CollateralAsset:
    """One collateral's Comet ``AssetConfig`` and its oracle price (8 decimals, ``> 0``).

    Factors scaled by ``FACTOR_SCALE``: ``borrow_collateral_factor <
    liquidate_collateral_factor < 1`` (Comet's ``BorrowCFTooLarge`` /
    ``LiquidateCFTooLarge``), ``liquidation_factor`` in ``[0, 1]``: the share of the
    seized value credited to the account."""

    symbol: str
    decimals: int
    price: int
    borrow_collateral_factor: int
    liquidate_collateral_factor: int
    liquidation_factor: int

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol:
            raise InvalidArgument(f"symbol={self.symbol!r} must be a non-empty string")
        s = self.symbol
        check_int(f"{s} decimals", self.decimals, 0, 36)
        check_int(f"{s} price", self.price, 1, _UINT256_MAX)
        lcf = _factor(f"{s} liquidate_collateral_factor", self.liquidate_collateral_factor)
        bcf = _factor(f"{s} borrow_collateral_factor", self.borrow_collateral_factor)
        _factor(f"{s} liquidation_factor", self.liquidation_factor)
        if lcf >= FACTOR_SCALE:
            raise InvalidArgument(
                f"{s} liquidate_collateral_factor={lcf} must be below {FACTOR_SCALE} "
                "(LiquidateCFTooLarge)"
            )
        if bcf >= lcf:
            raise InvalidArgument(
                f"{s} borrow_collateral_factor={bcf} must be below "
                f"liquidate_collateral_factor={lcf} (BorrowCFTooLarge)"
            )

    @property
    def scale(self) -> int:
        return int(10**self.decimals)


@dataclass(slots=True)
class CometAccount:
    """A Comet account: ``base_balance`` (present value, signed; ``< 0`` is a borrow) and
    ``collateral`` balances by asset symbol. ``absorb`` changes both."""

    base_balance: int
    collateral: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_int("base_balance", self.base_balance, -_UINT256_MAX, _UINT256_MAX)
        if not isinstance(self.collateral, dict):
            raise InvalidArgument(f"collateral={self.collateral!r} must be a dict")
        for sym, bal in self.collateral.items():
            _amount(f"collateral[{sym!r}]", bal)


@dataclass(frozen=True, slots=True)
class AbsorbResult:
    """One account's ``absorb``: ``seized`` ``(symbol, amount, value)`` per collateral
    (value in 8-decimal base currency, as ``AbsorbCollateral`` emits it); ``delta_value``
    ``= Σ value·liquidationFactor``, ``delta_balance`` its base units; the old and new base
    balance; ``debt_repaid`` / ``supply_created`` (``repayAndSupplyAmount``);
    ``base_paid_out = new - old`` (what the reserves pay, ``AbsorbDebt``) and its value;
    ``shortfall``: the debt the collateral did not cover, paid by the reserves alone."""

    seized: tuple[tuple[str, int, int], ...]
    delta_value: int
    delta_balance: int
    old_balance: int
    new_balance: int
    debt_repaid: int
    supply_created: int
    base_paid_out: int
    value_of_base_paid_out: int
    shortfall: int


@dataclass(slots=True)
class Comet:
    """One Comet market. ``base_price`` (8 decimals) and ``base_decimals`` are the base
    asset's; ``store_front_price_factor`` in ``[0, FACTOR_SCALE]``; ``target_reserves``
    and ``reserves`` in base units (``reserves`` signed); ``collateral_reserves`` by symbol
    (collateral the protocol holds for sale). ``absorb`` and ``buy_collateral`` change the
    reserves."""

    base_price: int
    base_decimals: int
    store_front_price_factor: int
    target_reserves: int
    assets: Mapping[str, CollateralAsset]
    reserves: int = 0
    collateral_reserves: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_int("base_price", self.base_price, 1, _UINT256_MAX)
        check_int("base_decimals", self.base_decimals, 0, 36)
        _factor("store_front_price_factor", self.store_front_price_factor)
        _amount("target_reserves", self.target_reserves)
        check_int("reserves", self.reserves, -_UINT256_MAX, _UINT256_MAX)
        if not isinstance(self.assets, Mapping):
            raise InvalidArgument(f"assets={self.assets!r} must map symbols to assets")
        for sym, a in self.assets.items():
            if not isinstance(a, CollateralAsset) or a.symbol != sym:
                raise InvalidArgument(f"assets[{sym!r}]={a!r} must be its CollateralAsset")
        if not isinstance(self.collateral_reserves, dict):
            raise InvalidArgument("collateral_reserves must be a dict")
        for sym, bal in self.collateral_reserves.items():
            self._asset(sym)
            _amount(f"collateral_reserves[{sym!r}]", bal)

    @property
    def base_scale(self) -> int:
        return int(10**self.base_decimals)

    def _asset(self, symbol: str) -> CollateralAsset:
        a = self.assets.get(symbol) if isinstance(symbol, str) else None
        if a is None:
            raise InvalidArgument(f"asset={symbol!r} is not one of {sorted(self.assets)}")
        return a

    def _held(self, account: CometAccount) -> list[tuple[CollateralAsset, int]]:
        if not isinstance(account, CometAccount):
            raise InvalidArgument(f"account={account!r} must be a CometAccount")
        CometAccount.__post_init__(account)  # re-validate: the balances are mutable
        return [(self._asset(s), b) for s, b in sorted(account.collateral.items()) if b]

    def liquidity(self, account: CometAccount) -> int:
        """``isLiquidatable``'s liquidity (8-decimal base currency)::

        trunc(base_balance·base_price / base_scale)
            + Σ floor(floor(balance_i·price_i / scale_i)·liquidateCF_i / 1e18)"""
        held = self._held(account)
        liq = _trunc_div(account.base_balance * self.base_price, self.base_scale)
        for a, bal in held:
            liq += _mul_factor(bal * a.price // a.scale, a.liquidate_collateral_factor)
        return liq

    def is_liquidatable(self, account: CometAccount) -> bool:
        """``base_balance < 0`` and ``liquidity < 0``."""
        return account.base_balance < 0 and self.liquidity(account) < 0

    def absorb(self, account: CometAccount) -> AbsorbResult:
        """``absorb(absorber, [account])`` (module doc)::

            delta_value   = Σ floor(floor(balance_i·price_i / scale_i)·LF_i / 1e18)
            delta_balance = floor(delta_value·base_scale / base_price)
            new_balance   = max(0, old + delta_balance)
            reserves     -= new_balance - old

        All collateral moves to ``collateral_reserves``. ``Refused("comet/not-liquidatable")``
        (nothing changes) unless ``is_liquidatable``."""
        held = self._held(account)
        if not self.is_liquidatable(account):
            raise Refused(
                "comet/not-liquidatable",
                f"base_balance={account.base_balance}, liquidity={self.liquidity(account)}",
            )
        old = account.base_balance
        seized: list[tuple[str, int, int]] = []
        delta_value = 0
        for a, bal in held:
            value = bal * a.price // a.scale
            delta_value += _mul_factor(value, a.liquidation_factor)
            seized.append((a.symbol, bal, value))
        delta_balance = delta_value * self.base_scale // self.base_price
        new = max(old + delta_balance, 0)
        repay, supply = (-old, new) if new > 0 else (new - old, 0)
        paid = new - old
        for sym, bal, _ in seized:
            self.collateral_reserves[sym] = self.collateral_reserves.get(sym, 0) + bal
            account.collateral[sym] = 0
        account.base_balance = new
        self.reserves -= paid
        return AbsorbResult(
            tuple(seized),
            delta_value,
            delta_balance,
            old,
            new,
            repay,
            supply,
            paid,
            paid * self.base_price // self.base_scale,
            max(-(old + delta_balance), 0),
        )

    def discount_factor(self, asset: str) -> int:
        """``storeFrontPriceFactor · (1 - liquidationFactor)``, floored (1e18 scale)."""
        a = self._asset(asset)
        return _mul_factor(self.store_front_price_factor, FACTOR_SCALE - a.liquidation_factor)

    def quote_collateral(self, asset: str, base_amount: int) -> int:
        """``quoteCollateral``: collateral units ``base_amount`` buys at the storefront::

        discounted = floor(price·(1e18 - discount_factor) / 1e18)
        quote      = floor(floor(base_price·base_amount·scale / discounted) / base_scale)
        """
        a = self._asset(asset)
        amount = _amount("base_amount", base_amount)
        discounted = _mul_factor(a.price, FACTOR_SCALE - self.discount_factor(asset))
        if discounted == 0:
            raise InvalidArgument(f"{asset}: discounted price is 0 at price={a.price}")
        return self.base_price * amount * a.scale // discounted // self.base_scale

    def buy_collateral(self, asset: str, min_amount: int, base_amount: int) -> int:
        """``buyCollateral(asset, minAmount, baseAmount, recipient)``: the collateral
        bought (``quote_collateral``); ``reserves += base_amount``. ``Refused`` (nothing
        changes) with ``comet/not-for-sale`` when ``reserves >= target_reserves``,
        ``comet/too-much-slippage`` below ``min_amount``, ``comet/insufficient-reserves``
        above the collateral the protocol holds."""
        self._asset(asset)
        minimum = _amount("min_amount", min_amount)
        base = _amount("base_amount", base_amount)
        if self.reserves >= 0 and self.reserves >= self.target_reserves:
            raise Refused(
                "comet/not-for-sale",
                f"reserves={self.reserves} >= target_reserves={self.target_reserves}",
            )
        out = self.quote_collateral(asset, base)
        if out < minimum:
            raise Refused("comet/too-much-slippage", f"{asset}: quote={out} < min_amount={minimum}")
        held = self.collateral_reserves.get(asset, 0)
        if out > held:
            raise Refused(
                "comet/insufficient-reserves",
                f"{asset}: quote={out} > collateral reserves={held}",
            )
        self.reserves += base
        self.collateral_reserves[asset] = held - out
        return out


# --- preset --------------------------------------------------------------------------------


def preset(liquidation_factor: int = 95 * 10**16) -> Preset:
    """The ``compound`` preset: liqeng's ``FixedFee`` closing the whole account, with the
    penalty ``1 - liquidation_factor`` (default 0.95: 5%) of the notional, all of it to
    the insurance fund (Comet's reserves, which keep the ``1 - LF`` of the seized value);
    keeper share 0 (an absorber earns only ``liquidatorPoints``, its gas). Bad debt is
    paid by the insurance fund (the reserves) and then socialised over holders (Comet's
    suppliers, on whom an uncovered shortfall falls)."""
    lf = _factor("liquidation_factor", liquidation_factor)
    rate = mul_div_up(FACTOR_SCALE - lf, RATE_SCALE, FACTOR_SCALE)

    def build() -> Mechanism:
        return FixedFee(
            penalty_rate=rate,
            keeper_share=0,
            protocol_share=0,
            name="compound",
            waterfall=Waterfall(("insurance_fund", "socialised")),
            sizing=CloseAll(),
        )

    build()
    return Preset(
        name="compound",
        protocol="Compound III (Comet)",
        mechanism=build,
        reproduces=("COMET-1", "COMET-2", "COMET-3", "COMET-4"),
        simplifies=(
            "the keeper takes the positions at mark in the same transaction instead of a "
            "later storefront sale at the storeFrontPriceFactor discount; no target-reserves "
            "gate; Comet's absorb, quote_collateral and buy_collateral are exact in "
            "liqeng.presets.compound"
        ),
    )


PRESET: Final = preset()
