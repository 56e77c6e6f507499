"""Oracle attacks on real crash data (``liqeng.sim.attacks``, ``docs/oracle.md``).

A minority of bad sources (a 50% flash crash, an hour of silence, a 15% walk down, two of
five sources 20% low) must not liquidate anyone on the liqeng feed that honest prices would
not have; a naive single-source or plain-mean oracle does. Small populations and a few
hours around the crash keep every test to a few seconds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from liqeng.errors import InvalidArgument
from liqeng.sim.attacks import (
    DATA_DIR,
    WINDOWS,
    Attack,
    Outcome,
    Study,
    attacked,
    crash_start,
    honest_stream,
    outcome,
    standard_attacks,
)

pytestmark = pytest.mark.skipif(not DATA_DIR.is_dir(), reason="no price data")

DECIMALS = 6
KINDS = ("flash", "stale", "walk", "collude")


def _study(label: str, accounts: int = 60) -> Iterator[tuple[Study, list[Attack]]]:
    window = WINDOWS[label]
    start = crash_start(window, DECIMALS)
    stream = honest_stream(window, DECIMALS, span=(start - 3600, start + 7200))
    with Study(window, stream, accounts=accounts, seed=11) as study:
        yield study, standard_attacks(window, start)


@pytest.fixture(scope="module")
def eth_2021() -> Iterator[tuple[Study, list[Attack]]]:
    yield from _study("ETH 2021-05-18")


@pytest.fixture(scope="module")
def eth_2020() -> Iterator[tuple[Study, list[Attack]]]:
    yield from _study("ETH 2020-03-11")


def _outcome(study: Study, attacks: list[Attack], kind: str, oracle: str) -> Outcome:
    (attack,) = [a for a in attacks if a.kind == kind]
    return study.compare(oracle, attack)


@pytest.mark.parametrize("kind", KINDS)
def test_minority_attack_liquidates_no_one_on_the_liqeng_feed(
    kind: str, eth_2021: tuple[Study, list[Attack]]
) -> None:
    study, attacks = eth_2021
    out = _outcome(study, attacks, kind, "liqeng")
    assert out.liquidated_honest > 0  # the window does liquidate: the check is not empty
    assert out.false_liquidations == 0, out
    assert out.max_dev_bps <= 100, out  # within the honest venues' own spread
    assert out.halted_ticks == 0  # quorum 3 of 5 holds through every attack


@pytest.mark.parametrize("kind", KINDS)
def test_black_thursday_deviation_is_bounded_and_only_early(
    kind: str, eth_2020: tuple[Study, list[Attack]]
) -> None:
    """Black Thursday: the index moves at most one honest venue (57 bps here) and every
    account the attacked feed liquidates, the honest feed liquidates too (later)."""
    study, attacks = eth_2020
    out = _outcome(study, attacks, kind, "liqeng")
    assert out.liquidated_honest > 0
    assert out.max_dev_bps <= 100, out
    assert out.never_on_honest == 0, out
    assert out.halted_ticks == 0


@pytest.mark.parametrize("kind", KINDS)
def test_black_thursday_no_early_liquidation(
    kind: str, eth_2020: tuple[Study, list[Attack]]
) -> None:
    """The index moves by up to one honest venue (57 bps here) when a source drops out;
    band eligibility still liquidates no one earlier than honest prices would."""
    study, attacks = eth_2020
    assert _outcome(study, attacks, kind, "liqeng").false_liquidations == 0


def test_without_the_band_black_thursday_liquidates_early(
    eth_2020: tuple[Study, list[Attack]],
) -> None:
    """The same collusion decided at the index alone: accounts within the honest venues'
    spread of their threshold go a few ticks early (why the band exists)."""
    study, attacks = eth_2020
    (attack,) = [a for a in attacks if a.kind == "collude"]
    honest = study.run("liqeng", study.stream, attack.sources[0], band=False)
    bad = study.run("liqeng", attacked(study.stream, attack), attack.sources[0], band=False)
    assert outcome("liqeng", attack.label, honest, bad).false_liquidations > 0


@pytest.mark.parametrize("kind", ["flash", "walk", "collude"])
@pytest.mark.parametrize("fixture", ["eth_2021", "eth_2020"])
def test_liqeng_price_stays_within_the_honest_sources(
    kind: str, fixture: str, request: pytest.FixtureRequest
) -> None:
    """Every price lies within the honest reports' range at its tick: the clamp guarantees
    it while liars hold less than a third of the weight; two of five colluders 20% low are
    removed as outliers first."""
    study, attacks = request.getfixturevalue(fixture)
    (attack,) = [a for a in attacks if a.kind == kind]
    ticks = study.run("liqeng", attacked(study.stream, attack), attack.sources[0])
    for (ts, row), tick in zip(study.stream, ticks, strict=True):
        honest = [p for s, p in row.items() if attack.price(ts, p) == p or s not in attack.sources]
        assert tick.price is not None
        assert min(honest) <= tick.price <= max(honest)


def test_naive_oracles_do_suffer(eth_2021: tuple[Study, list[Attack]]) -> None:
    study, attacks = eth_2021
    flash = _outcome(study, attacks, "flash", "single")
    assert flash.max_dev_bps == 5000 and flash.false_liquidations > 0
    collude = _outcome(study, attacks, "collude", "mean")
    assert collude.max_dev_bps >= 700 and collude.false_liquidations > 0


def test_attacks_rewrite_only_the_attacked_sources() -> None:
    stream = [(t, {"a": 1000, "b": 2000, "c": 3000}) for t in range(0, 3000, 300)]
    walk = Attack("walk", ("a",), 600, 1200, size=150_000_000, ramp_s=600)
    got = [row["a"] for _, row in attacked(stream, walk)]
    assert got == [1000, 1000, 1000, 925, 850, 850, 1000, 1000, 1000, 1000]
    assert all(row["b"] == 2000 for _, row in attacked(stream, walk))
    stale = attacked(stream, Attack("stale", ("a",), 600, 600))
    assert ["a" in row for _, row in stale] == [True, True, False, False] + [True] * 6
    flash = attacked(stream, Attack("flash", ("b", "c"), 300, 1, size=500_000_000))
    assert flash[1][1] == {"a": 1000, "b": 1000, "c": 1500} and flash[2][1]["b"] == 2000
    assert attacked(stream, None) is stream


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"kind": "spoof"}, "kind"),
        ({"sources": ()}, "source"),
        ({"duration_s": 0}, "duration_s"),
        ({"size": 10**9}, "size"),
    ],
)
def test_bad_attacks_are_refused(kwargs: dict[str, object], word: str) -> None:
    args: dict[str, object] = {"kind": "flash", "sources": ("a",), "start": 0, "duration_s": 1}
    args.update(kwargs)
    with pytest.raises(InvalidArgument, match=word):
        Attack(**args)  # type: ignore[arg-type]


def test_unknown_oracle_is_refused(eth_2021: tuple[Study, list[Attack]]) -> None:
    study, _ = eth_2021
    with pytest.raises(InvalidArgument, match="oracle"):
        study.run("chainlink", study.stream, "binance")


def test_copy_on_write_snapshot_survives_later_steps() -> None:
    """The engine snapshots the feed every step (copy-on-write since the benchmark): a
    snapshot must equal a deep copy taken with it however the feed moves on, and restoring
    it must replay to the same outputs."""
    import copy

    from liqeng.oracle.presets import median_feed
    from liqeng.oracle.reports import SourceReport

    feed = median_feed(["a", "b", "c"], ["ETH", "BTC"], 60, 2)

    def step(ts: int, shift: int) -> object:
        for i, s in enumerate("abc"):
            for m in ("ETH", "BTC"):
                feed.submit(SourceReport(s, m, 1000 + shift + i, ts), ts)
        return feed.update(ts)

    step(1, 0)
    snap = feed.snapshot()
    frozen = copy.deepcopy(snap)
    first = step(2, 500)
    step(3, -300)
    feed.set_breaker("ETH", 1, "test")
    assert snap == frozen
    feed.restore(snap)
    assert feed.snapshot() == frozen
    assert step(2, 500) == first
    feed.restore(snap)  # a snapshot stays valid for another restore
    assert feed.breaker("ETH") == (0, "")
    with pytest.raises(InvalidArgument, match="snapshot"):
        feed.restore(("not", "a snapshot"))
