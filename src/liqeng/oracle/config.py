"""Per-market feed configuration: frozen, validated, every default documented.

Rates are integers in parts per ``RATE_SCALE = 10**9`` (5% = ``50_000_000``); ``None``
switches a guard off. See ``aggregate`` for the formulas and ``feed`` for the state machine.

=========================  ===============  ==============================================
field                      default          meaning
=========================  ===============  ==============================================
``SourceConfig.weight``    1                weight in every weighted median and quorum share
``SourceConfig.max_age_s`` 60               fresh iff ``now - ts <= max_age_s``
``SourceConfig.max_jump``  None             suspect if its price moved by more than this
                                            between rounds: ``(hi - lo)·S > max_jump·hi``
``quorum``                 1                survivors needed for a price (else halted)
``mad_k``                  3·S              MAD outlier: ``|p-m|·S > mad_k·max(MAD,
                                            mad_floor·m/S)``
``mad_floor``              1_000_000 (0.1%) floor of the MAD scale, relative to the median
``max_deviation``          100_000_000      outlier if ``|p-m|·S > max_deviation·m``
``max_confidence``         None             refused if ``confidence·S > max_confidence·p``
``corroboration``          50_000_000 (5%)  a suspect source is kept iff another fresh
                                            source is within this: ``(hi-lo)·S <= c·lo``
``sticky_distrust``        False            a suspect left uncorroborated stays suspect
                                            (even without a new jump) until corroborated
``max_move``               None             move guard: a jump beyond ``max_move`` of the
                                            last good price freezes the price ...
``move_interval_s``        None             ... per interval (None: per update): the bound
                                            is ``max_move·max(1, ceil(dt/interval))``
``confirm_updates``        3                ... unless it persists this many updates
``confirm_supermajority``  666_666_667      ... or survivors holding this share of the
                                            configured weight are all beyond the bound
``delay_s``                None             OSM hop: ``price`` lags, ``next_price`` leads
``twap_window_s``          None             TWAP of the good price over this window
``twap_guard_window_s``    None             Drift guard: halt while the price is ...
``twap_guard_bound``       500_000_000      ... at least this far from its own TWAP
``breaker_tolerance``      500_000_000      ClipperMom: breaker 2 if ``next < price·tol/S``
``grace_period_s``         0                after a halt or breaker ends, only accounts
``grace_health_floor``     19/20            below this health may be liquidated
``band_tolerance``         1                weight of surviving sources that may be wrong
                                            undetected, widening the band (``aggregate``)
=========================  ===============  ==============================================
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from liqeng.errors import InvalidArgument
from liqeng.units import RATE_SCALE, check_int

__all__ = ["MarketConfig", "SourceConfig"]

_AGE_MAX = 2**40
_WEIGHT_MAX = 10**6


def _opt_rate(name: str, value: int | None, hi: int = RATE_SCALE) -> None:
    if value is not None:
        check_int(name, value, 1, hi)


def _opt_seconds(name: str, value: int | None) -> None:
    if value is not None:
        check_int(name, value, 1, _AGE_MAX)


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One independent source of one market."""

    name: str
    weight: int = 1
    max_age_s: int = 60
    max_jump: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidArgument(f"source name={self.name!r} must be a non-empty str")
        check_int(f"weight of {self.name}", self.weight, 1, _WEIGHT_MAX)
        check_int(f"max_age_s of {self.name}", self.max_age_s, 1, _AGE_MAX)
        _opt_rate(f"max_jump of {self.name}", self.max_jump)


@dataclass(frozen=True, slots=True)
class MarketConfig:
    """Everything the feed needs to price one market (see the module table)."""

    market: str
    sources: tuple[SourceConfig, ...]
    quorum: int = 1
    mad_k: int | None = 3 * RATE_SCALE
    mad_floor: int = 1_000_000
    max_deviation: int | None = 100_000_000
    max_confidence: int | None = None
    corroboration: int = 50_000_000
    sticky_distrust: bool = False
    max_move: int | None = None
    move_interval_s: int | None = None
    confirm_updates: int = 3
    confirm_supermajority: int = 666_666_667
    delay_s: int | None = None
    twap_window_s: int | None = None
    twap_guard_window_s: int | None = None
    twap_guard_bound: int = 500_000_000
    breaker_tolerance: int | None = 500_000_000
    grace_period_s: int = 0
    grace_health_floor: Fraction = Fraction(19, 20)
    band_tolerance: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.market, str) or not self.market:
            raise InvalidArgument(f"market={self.market!r} must be a non-empty str")
        if not isinstance(self.sources, tuple) or not self.sources:
            raise InvalidArgument(f"sources of {self.market} must be a non-empty tuple")
        for s in self.sources:
            if not isinstance(s, SourceConfig):
                raise InvalidArgument(f"source={s!r} of {self.market} must be a SourceConfig")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise InvalidArgument(f"sources of {self.market} repeat a name: {names}")
        check_int(f"quorum of {self.market}", self.quorum, 1, len(self.sources))
        _opt_rate(f"mad_k of {self.market}", self.mad_k, 100 * RATE_SCALE)
        check_int(f"mad_floor of {self.market}", self.mad_floor, 0, RATE_SCALE)
        _opt_rate(f"max_deviation of {self.market}", self.max_deviation)
        _opt_rate(f"max_confidence of {self.market}", self.max_confidence)
        check_int(f"corroboration of {self.market}", self.corroboration, 0, RATE_SCALE)
        if not isinstance(self.sticky_distrust, bool):
            raise InvalidArgument(f"sticky_distrust={self.sticky_distrust!r} must be a bool")
        _opt_rate(f"max_move of {self.market}", self.max_move, 100 * RATE_SCALE)
        _opt_seconds(f"move_interval_s of {self.market}", self.move_interval_s)
        check_int(f"confirm_updates of {self.market}", self.confirm_updates, 1, 10**6)
        check_int(
            f"confirm_supermajority of {self.market}", self.confirm_supermajority, 1, RATE_SCALE
        )
        _opt_seconds(f"delay_s of {self.market}", self.delay_s)
        _opt_seconds(f"twap_window_s of {self.market}", self.twap_window_s)
        _opt_seconds(f"twap_guard_window_s of {self.market}", self.twap_guard_window_s)
        check_int(f"twap_guard_bound of {self.market}", self.twap_guard_bound, 1, 100 * RATE_SCALE)
        _opt_rate(f"breaker_tolerance of {self.market}", self.breaker_tolerance)
        check_int(f"grace_period_s of {self.market}", self.grace_period_s, 0, _AGE_MAX)
        check_int(f"band_tolerance of {self.market}", self.band_tolerance, 0, _WEIGHT_MAX)
        if not isinstance(self.grace_health_floor, Fraction):
            raise InvalidArgument(
                f"grace_health_floor={self.grace_health_floor!r} must be a Fraction"
            )

    @property
    def total_weight(self) -> int:
        return sum(s.weight for s in self.sources)

    def source(self, name: str) -> SourceConfig | None:
        for s in self.sources:
            if s.name == name:
                return s
        return None
