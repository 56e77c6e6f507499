"""Scenario files (TOML): load, validate, and name every bad value.

A scenario is frozen once loaded; its ``digest`` (sha256 of the file bytes) names a run
together with the seed and the liqeng version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from liqeng.errors import InvalidArgument
from liqeng.liquidation.registry import MECHANISMS
from liqeng.presets import preset
from liqeng.sim.keepers import KeeperSpec
from liqeng.sim.prices import source_name
from liqeng.units import EXACT, RATE_SCALE

__all__ = ["MARGIN_MODELS", "Scenario", "load_scenario", "rate"]

MARGIN_MODELS = ("per-position", "lyra-like", "lyra-pmrm")
_PRESET_DEFAULTS: dict[str, Any] = {
    "mechanism": "fixed-fee",
    "penalty_rate": 0.0,
    "keeper_share": 0.0,
    "protocol_share": 0.0,
}
_PRESET_SETS = (*_PRESET_DEFAULTS, "sizing", "target_health")
"""``[liquidation]`` keys a ``preset`` replaces (a preset brings its own)."""

_TABLES = frozenset(
    {
        *("scenario", "prices", "oracle", "quote", "instruments", "margin", "liquidation"),
        *("accounts", "system", "chain", "market", "keepers", "attacks"),
    }
)

SIZINGS = ("all", "close-factor", "target-health")
"""``[liquidation] sizing``: close the whole account, Aave v3's close factor (50% above
health 0.95), or just enough to restore ``target_health``."""
"""``[margin] model``: per-position rates, or a scenario-margin preset (liqeng.risk.portfolio)."""

ORACLE_RATES = ("max_deviation", "max_move", "twap_guard_bound", "breaker_tolerance")
"""Optional ``[oracle]`` fractions (0.10 = 10%), passed to ``MarketConfig`` as rates."""
ORACLE_INTS = (
    "confirm_updates",
    "delay_s",
    "twap_window_s",
    "twap_guard_window_s",
    "grace_period_s",
)
"""Optional ``[oracle]`` integers (counts and seconds), passed to ``MarketConfig``."""


def _oracle_settings(orc: _Table) -> dict[str, Any]:
    """The optional feed settings of ``[oracle]``; ``mad_k`` is a multiple (3.0)."""
    out: dict[str, Any] = {}
    for key in ORACLE_RATES:
        if key in orc.data:
            out[key] = rate(orc.get(key, float, 0, 100), key)
    if "mad_k" in orc.data:
        out["mad_k"] = rate(orc.get("mad_k", float, 0, 100), "mad_k")
    for key in ORACLE_INTS:
        if key in orc.data:
            out[key] = orc.get(key, int, 0, 10**9)
    return out


def rate(value: float, name: str) -> int:
    """A TOML fraction (0.05) as parts per RATE_SCALE, via its shortest decimal text."""
    d = EXACT.multiply(Decimal(str(value)), RATE_SCALE)
    if d != d.to_integral_value(context=EXACT):
        raise InvalidArgument(f"{name}={value} has more precision than 1e-9")
    return int(d)


class _Table:
    """One TOML table; ``get`` notes every key read, ``check_all_read`` refuses the rest
    (a misspelt optional key would otherwise be ignored without a word)."""

    def __init__(self, path: Path, name: str, data: dict[str, Any]) -> None:
        self.where = f"{path.name} [{name}]"
        self.data = data
        self.read: set[str] = set()

    def check_all_read(self) -> None:
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            raise InvalidArgument(f"{self.where}: unknown key(s) {unknown}")

    def get(self, key: str, kind: type, lo: float | None = None, hi: float | None = None) -> Any:
        self.read.add(key)
        if key not in self.data:
            raise InvalidArgument(f"{self.where}: missing key {key!r}")
        value = self.data[key]
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise InvalidArgument(f"{self.where}: {key}={value!r} must be a {kind.__name__}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise InvalidArgument(f"{self.where}: {key}={value!r} must be within [{lo}, {hi}]")
        return value


@dataclass(frozen=True, slots=True)
class Scenario:
    path: Path
    digest: str
    name: str
    description: str
    namespace: str
    seed: int
    underlying: str
    price_files: tuple[Path, ...]
    ticks_per_candle: int
    quorum: int
    max_age_s: int
    oracle_settings: dict[str, Any]
    quote_asset: str
    quote_decimals: int
    perp_size_decimals: int
    option_size_decimals: int
    option_expiry_days: int
    option_strikes: tuple[float, ...]
    perp_maintenance_rate: int
    option_maintenance_rate: int
    option_floor_rate: int
    vol: float
    margin_model: str
    mechanism: str
    preset: str | None
    sizing: str
    target_health: float
    penalty_rate: int
    keeper_share: int
    protocol_share: int
    accounts: int
    collateral_median: float
    collateral_sigma: float
    collateral_min: float
    collateral_max: float
    leverage_min: float
    leverage_max: float
    long_share: float
    put_seller_share: float
    put_size_min: float
    put_size_max: float
    min_initial_health: float
    insurance_fund: int
    keeper_capital: int
    market_maker_capital: int
    backstop_pool: int
    collateral_asset_share: float = 0.0
    """``[accounts]``: fraction of accounts whose collateral is the spot token
    ``<quote namespace>/W<underlying>`` instead of quote cash (``sim.population``)."""
    collateral_haircut: int = 0
    """``[system]``: that token's ``SpotCollateral`` haircut, parts per ``RATE_SCALE``."""
    chain: ChainSpec | None = None
    keepers: tuple[KeeperSpec, ...] = ()
    market: MarketSpec | None = None
    attacks: tuple[AttackSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class ChainSpec:
    """``[chain]``: the run goes block by block (``liqeng.sim.blocks``), from ``start_s``
    after the first candle for ``duration_s`` (default: to the last). Seconds per block,
    gas limit, base fee at the start (gwei), the gas token's price in whole quote units
    (``None``: the underlying's index, for an ETH market), and congestion episodes as
    ``(start_s, end_s, gas per block, tip_gwei, max_fee_gwei)`` from the start of the run
    (the crowd stops bidding once the base fee passes its ``max_fee_gwei``, 1,000 unless
    set). ``backstop_s``: an account left liquidatable that long (no keeper found it worth
    its gas, e.g. it is insolvent) is liquidated by the protocol's own backstop keeper
    (Hyperliquid's vault, a protocol-run bot); ``None``: no backstop."""

    block_s: int
    gas_limit: int
    base_fee_gwei: float
    gas_token_price: float | None
    duration_s: int | None
    start_s: int
    congestion: tuple[tuple[int, int, int, float, float], ...]
    backstop_s: int | None = None


@dataclass(frozen=True, slots=True)
class AttackSpec:
    """``[[attacks]]`` (block by block): from ``start_s`` to ``end_s`` after the run's
    start, source ``source`` reports its price times ``factor`` (0.5: half; a liar)."""

    source: str
    start_s: int
    end_s: int
    factor: float


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """``[market]``: where keepers sell what they take over. ``model`` "amm" (a constant
    product pool of ``depth`` quote per side) or "depth" (linear impact: ``depth`` quote per
    1% move, recovering ``resilience`` of the gap per block toward the path)."""

    model: str
    depth: float
    resilience: float


def _block_tables(
    p: Path, doc: dict[str, Any]
) -> tuple[ChainSpec | None, MarketSpec | None, tuple[KeeperSpec, ...], tuple[AttackSpec, ...]]:
    """The optional ``[chain]``, ``[market]``, ``[[keepers]]`` and ``[[attacks]]`` of a
    scenario."""
    chain = market = None
    if "chain" in doc:
        ch = _Table(p, "chain", doc["chain"])
        episodes = ch.get("congestion", list) if "congestion" in ch.data else []
        congestion = []
        for i, e in enumerate(episodes):
            if not isinstance(e, dict):
                raise InvalidArgument(f"{ch.where}: congestion[{i}] must be a table")
            t = _Table(p, f"chain.congestion[{i}]", e)
            congestion.append(
                (
                    t.get("start_s", int, 0, 10**9),
                    t.get("end_s", int, 0, 10**9),
                    t.get("gas", int, 0, 10**10),
                    t.get("tip_gwei", float, 0, 1e6),
                    t.get("max_fee_gwei", float, 0, 1e7) if "max_fee_gwei" in t.data else 1e3,
                )
            )
            t.check_all_read()
        gas_token = ch.data.get("gas_token_price")
        chain = ChainSpec(
            block_s=ch.get("block_s", int, 1, 3600),
            gas_limit=ch.get("gas_limit", int, 21_000, 10**10),
            base_fee_gwei=ch.get("base_fee_gwei", float, 0, 1e6),
            gas_token_price=None
            if gas_token is None
            else ch.get("gas_token_price", float, 0, 1e12),
            duration_s=ch.get("duration_s", int, 1, 10**9) if "duration_s" in ch.data else None,
            start_s=ch.get("start_s", int, 0, 10**9) if "start_s" in ch.data else 0,
            backstop_s=ch.get("backstop_s", int, 0, 10**9) if "backstop_s" in ch.data else None,
            congestion=tuple(congestion),
        )
        ch.check_all_read()
    if "market" in doc:
        mk = _Table(p, "market", doc["market"])
        model = mk.get("model", str)
        if model not in ("amm", "depth"):
            raise InvalidArgument(f"{mk.where}: model={model!r}; available: amm, depth")
        market = MarketSpec(
            model,
            mk.get("depth", float, 1, 1e15),
            mk.get("resilience", float, 0, 1) if "resilience" in mk.data else 0.05,
        )
        mk.check_all_read()
    keepers = []
    for i, k in enumerate(doc.get("keepers", [])):
        if not isinstance(k, dict):
            raise InvalidArgument(f"{p.name}: keepers[{i}] must be a table")
        try:
            keepers.append(KeeperSpec(**k))
        except TypeError as exc:
            raise InvalidArgument(f"{p.name} [[keepers]] #{i}: {exc}") from None
    if keepers and chain is None:
        raise InvalidArgument(f"{p.name}: [[keepers]] need a [chain] to act in")
    attacks = []
    for i, a in enumerate(doc.get("attacks", [])):
        if not isinstance(a, dict):
            raise InvalidArgument(f"{p.name}: attacks[{i}] must be a table")
        t = _Table(p, f"attacks[{i}]", a)
        start = t.get("start_s", int, 0, 10**9)
        attacks.append(
            AttackSpec(
                t.get("source", str),
                start,
                t.get("end_s", int, start, 10**9),
                t.get("factor", float, 0.0, 100.0),
            )
        )
        t.check_all_read()
    if attacks and chain is None:
        raise InvalidArgument(f"{p.name}: [[attacks]] run block by block: add a [chain]")
    return chain, market, tuple(keepers), tuple(attacks)


def _spot_collateral(ac: _Table, sy: _Table) -> dict[str, Any]:
    """The optional ``[accounts] collateral_asset_share`` (0..1) and ``[system]
    collateral_haircut`` (0 <= haircut < 1) of a scenario, absent: 0 and 0."""
    out: dict[str, Any] = {}
    if "collateral_asset_share" in ac.data:
        out["collateral_asset_share"] = ac.get("collateral_asset_share", float, 0, 1)
    if "collateral_haircut" in sy.data:
        haircut = sy.get("collateral_haircut", float, 0, 1)
        if haircut >= 1:
            raise InvalidArgument(f"{sy.where}: collateral_haircut={haircut!r} must be below 1")
        out["collateral_haircut"] = rate(haircut, "collateral_haircut")
    return out


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; raise ``InvalidArgument`` naming the bad key."""
    p = Path(path)
    if not p.is_file():
        raise InvalidArgument(f"scenario={str(p)!r} is not a file")
    raw = p.read_bytes()
    try:
        doc = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"scenario={str(p)!r} is not valid TOML: {exc}") from None

    def table(name: str) -> _Table:
        data = doc.get(name)
        if not isinstance(data, dict):
            raise InvalidArgument(f"{p.name}: missing table [{name}]")
        return _Table(p, name, data)

    unknown = sorted(set(doc) - _TABLES)
    if unknown:
        raise InvalidArgument(f"{p.name}: unknown table(s) {unknown}; known: {sorted(_TABLES)}")
    sc, pr, orc = table("scenario"), table("prices"), table("oracle")
    qt, ins, mg = table("quote"), table("instruments"), table("margin")
    lq, ac, sy = table("liquidation"), table("accounts"), table("system")
    files = pr.get("files", list)
    if not files or not all(isinstance(f, str) for f in files):
        raise InvalidArgument(f"{pr.where}: files must be a non-empty list of paths")
    price_files = tuple((p.parent / f).resolve() for f in files)
    for f in price_files:
        if not f.is_file():
            raise InvalidArgument(f"{pr.where}: price file {str(f)!r} does not exist")
    sources = [source_name(f) for f in price_files]
    if len(set(sources)) != len(sources):
        raise InvalidArgument(f"{pr.where}: two files name the same source: {sorted(sources)}")
    strikes = ins.get("option_strikes", list)
    if not strikes or not all(isinstance(s, (int, float)) and 0 < s < 10 for s in strikes):
        raise InvalidArgument(f"{ins.where}: option_strikes={strikes!r} must be fractions > 0")
    margin_model = mg.get("model", str) if "model" in mg.data else "per-position"
    if margin_model not in MARGIN_MODELS:
        raise InvalidArgument(
            f"{mg.where}: model={margin_model!r}; available: {', '.join(MARGIN_MODELS)}"
        )
    preset_name = lq.get("preset", str) if "preset" in lq.data else None
    if preset_name is not None:
        preset(preset_name)  # refuses an unknown name, listing the known ones
        clash = sorted(k for k in _PRESET_SETS if k in lq.data)
        if clash:
            raise InvalidArgument(
                f"{lq.where}: preset={preset_name!r} sets the mechanism and its rates; "
                f"remove {clash}"
            )
        lq.data.update(_PRESET_DEFAULTS)
    mechanism = lq.get("mechanism", str)
    if mechanism not in MECHANISMS:
        raise InvalidArgument(
            f"{lq.where}: mechanism={mechanism!r}; available: {', '.join(sorted(MECHANISMS))}"
        )
    sizing = lq.get("sizing", str) if "sizing" in lq.data else "all"
    if sizing not in SIZINGS:
        raise InvalidArgument(f"{lq.where}: sizing={sizing!r}; available: {', '.join(SIZINGS)}")
    target_health = lq.get("target_health", float, 1, 100) if "target_health" in lq.data else 1.2
    if sizing != "all" and mechanism != "fixed-fee":
        raise InvalidArgument(f"{lq.where}: sizing={sizing!r} applies to 'fixed-fee' only")
    for lo, hi in (
        ("collateral_min", "collateral_max"),
        ("leverage_min", "leverage_max"),
        ("put_size_min", "put_size_max"),
    ):
        if ac.get(lo, float) > ac.get(hi, float):
            raise InvalidArgument(
                f"{ac.where}: {lo}={ac.get(lo, float)} > {hi}={ac.get(hi, float)}"
            )
    if lq.get("keeper_share", float) + lq.get("protocol_share", float) > 1:
        raise InvalidArgument(f"{lq.where}: keeper_share + protocol_share must not exceed 1")
    scenario = Scenario(
        path=p,
        digest=hashlib.sha256(raw).hexdigest(),
        name=sc.get("name", str),
        description=sc.get("description", str),
        namespace=sc.get("namespace", str),
        seed=sc.get("seed", int, 0, 2**63 - 1),
        underlying=pr.get("underlying", str),
        price_files=price_files,
        ticks_per_candle=pr.get("ticks_per_candle", int, 1, 4),
        quorum=orc.get("quorum", int, 1, len(files)),
        max_age_s=orc.get("max_age_s", int, 1, 10**9),
        oracle_settings=_oracle_settings(orc),
        quote_asset=qt.get("asset", str),
        quote_decimals=qt.get("decimals", int, 0, 18),
        perp_size_decimals=ins.get("perp_size_decimals", int, 0, 18),
        option_size_decimals=ins.get("option_size_decimals", int, 0, 18),
        option_expiry_days=ins.get("option_expiry_days", int, 1, 3650),
        option_strikes=tuple(float(s) for s in strikes),
        perp_maintenance_rate=rate(mg.get("perp_maintenance_rate", float, 0, 1), "perp mm"),
        option_maintenance_rate=rate(mg.get("option_maintenance_rate", float, 0, 1), "opt mm"),
        option_floor_rate=rate(mg.get("option_floor_rate", float, 0, 1), "option_floor_rate"),
        vol=mg.get("vol", float, 0.01, 5.0),
        margin_model=margin_model,
        mechanism=mechanism,
        preset=preset_name,
        sizing=sizing,
        target_health=target_health,
        penalty_rate=rate(lq.get("penalty_rate", float, 0, 1), "penalty_rate"),
        keeper_share=rate(lq.get("keeper_share", float, 0, 1), "keeper_share"),
        protocol_share=rate(lq.get("protocol_share", float, 0, 1), "protocol_share"),
        accounts=ac.get("count", int, 1, 1_000_000),
        collateral_median=ac.get("collateral_median", float, 1, 1e12),
        collateral_sigma=ac.get("collateral_sigma", float, 0, 5),
        collateral_min=ac.get("collateral_min", float, 1, 1e12),
        collateral_max=ac.get("collateral_max", float, 1, 1e12),
        leverage_min=ac.get("leverage_min", float, 0, 100),
        leverage_max=ac.get("leverage_max", float, 0, 100),
        long_share=ac.get("long_share", float, 0, 1),
        put_seller_share=ac.get("put_seller_share", float, 0, 1),
        put_size_min=ac.get("put_size_min", float, 0, 100),
        put_size_max=ac.get("put_size_max", float, 0, 100),
        min_initial_health=ac.get("min_initial_health", float, 1, 100),
        insurance_fund=sy.get("insurance_fund", int, 0, 10**15),
        keeper_capital=sy.get("keeper_capital", int, 0, 10**15),
        market_maker_capital=sy.get("market_maker_capital", int, 0, 10**15),
        backstop_pool=sy.get("backstop_pool", int, 0, 10**15) if "backstop_pool" in sy.data else 0,
        **_spot_collateral(ac, sy),
    )
    chain, market, keepers, attacks = _block_tables(p, doc)
    known = {source_name(f) for f in price_files}
    for a in attacks:
        if a.source not in known:
            raise InvalidArgument(
                f"{p.name} [[attacks]]: source={a.source!r} is not one of {sorted(known)}"
            )
    scenario = dataclasses.replace(
        scenario, chain=chain, market=market, keepers=keepers, attacks=attacks
    )
    for t in (sc, pr, orc, qt, ins, mg, lq, ac, sy):
        t.check_all_read()
    return scenario
