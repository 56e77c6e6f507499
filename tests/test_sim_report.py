"""The HTML comparison report (liqeng.sim.report): self-contained, one column per run."""

from __future__ import annotations

import base64
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from liqeng.errors import InvalidArgument
from liqeng.sim.report import RunSeries, comparison_table, render_report, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
META = {"seed": "42", "config hash": "sha256:ab12cd34", "version": "liqeng 0.1.0"}
TITLE = "Black Thursday <crash> & friends"


def _run(name: str, k: int, scenario: str = "2020-03-12", n: int = 48) -> RunSeries:
    ts = [1_584_000_000 + 60 * i for i in range(n)]
    price = [2000 * math.exp(-0.3 * i / n) for i in range(n)]
    liqs = [(i * k) % 4 for i in range(n)]
    bad = [0.0] * (n // 2) + [12.5 * k * (i + 1) for i in range(n - n // 2)]
    fund = [100_000.0 - 100 * k * i for i in range(n)]
    health = [(0.8 + 0.01 * i, 1.1 + 0.01 * i, math.inf if i == 0 else 1.6) for i in range(0, n, 4)]
    metrics: dict[str, float | int | str] = {
        "liquidations": sum(liqs),
        "bad debt (USDC)": bad[-1],
        "mechanism": name,
    }
    if k == 2:
        metrics["auction rounds"] = 17
    return RunSeries(
        name,
        ts,
        price,
        health,
        liqs,
        fund,
        bad,
        metrics,
        scenario=scenario,
        health_ts=ts[::4],
    )


RUNS = [_run("fixed-fee", 1), _run("dutch-auction", 2), _run("aave-v3", 3)]


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[dict[str, str | None]] = []
        self.attr_values: list[str] = []
        self.text: list[str] = []
        self.title = ""
        self._in_title = False
        self.tables: list[list[list[str]]] = []
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attr_values.extend(v for _, v in attrs if v)
        if tag == "img":
            self.imgs.append(dict(attrs))
        elif tag == "title":
            self._in_title = True
        elif tag == "table":
            self._table = []
            self.tables.append(self._table)
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._table:
            self._table[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_title:
            self.title += data
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def page() -> str:
    return render_report(RUNS, TITLE, META)


@pytest.fixture(scope="module")
def parsed(page: str) -> _Collect:
    p = _Collect()
    p.feed(page)
    p.close()
    return p


def test_every_image_is_an_embedded_png(parsed: _Collect) -> None:
    # 1 price (one scenario) + 3 health + liquidations + insurance fund + bad debt
    assert len(parsed.imgs) == 7
    for img in parsed.imgs:
        src = img["src"] or ""
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.removeprefix("data:image/png;base64,"), validate=True)
        assert data.startswith(PNG_MAGIC)
        assert img.get("alt")


def test_no_network_references(page: str, parsed: _Collect) -> None:
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<(script|link|iframe)\b", page)
    assert all(not v.startswith("//") for v in parsed.attr_values)


def test_metrics_table_has_a_column_per_run(parsed: _Collect) -> None:
    metrics = next(t for t in parsed.tables if t and t[0][0] == "metric")
    assert metrics[0] == ["metric", "fixed-fee", "dutch-auction", "aave-v3"]
    rows = {r[0]: r[1:] for r in metrics[1:]}
    assert list(rows) == ["liquidations", "bad debt (USDC)", "mechanism", "auction rounds"]
    assert all(len(cells) == 3 for cells in rows.values())
    assert rows["mechanism"] == ["fixed-fee", "dutch-auction", "aave-v3"]
    assert rows["auction rounds"] == ["-", "17", "-"]  # a metric only one run has


def test_title_and_meta_appear_escaped(page: str, parsed: _Collect) -> None:
    assert parsed.title == TITLE
    assert TITLE in "".join(parsed.text)
    assert "&lt;crash&gt; &amp; friends" in page  # escaped, not markup
    meta = next(t for t in parsed.tables if t and t[0][0] == "seed")
    assert dict((k, v) for k, v in meta) == META


def test_rendering_is_deterministic(page: str) -> None:
    assert render_report(RUNS, TITLE, META) == page


def test_runs_of_two_scenarios_get_a_price_plot_each() -> None:
    runs = [_run("a", 1, "crash", 12), _run("b", 2, "crash", 12), _run("c", 1, "rally", 12)]
    p = _Collect()
    p.feed(render_report(runs, "two scenarios", {}))
    captions = [img["alt"] for img in p.imgs]
    assert captions[:2] == ["Price path: crash", "Price path: rally"]
    assert len(p.imgs) == 2 + 3 + 3


def test_write_report(tmp_path: Path) -> None:
    out = write_report(tmp_path / "report.html", RUNS[:1], "one run", META)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "one run" in text
    with pytest.raises(InvalidArgument, match="is a directory"):
        write_report(tmp_path, RUNS[:1], "one run", META)


def test_comparison_table_plain_text() -> None:
    table = comparison_table(RUNS)
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "fixed-fee", "dutch-auction", "aave-v3"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["liquidations", "72", "48", "72"]  # sums of (i * k) % 4
    assert lines[5].split() == ["auction", "rounds", "-", "17", "-"]
    assert len({len(line) for line in lines[:2]}) == 1  # header as wide as its rule


def test_bad_series_named() -> None:
    with pytest.raises(InvalidArgument, match="price has 2 values for 3 blocks"):
        RunSeries("x", [1, 2, 3], [1.0, 2.0], [(1, 1, 1)] * 3, [0] * 3, [0.0] * 3, [0.0] * 3)
    with pytest.raises(InvalidArgument, match="health_quantiles has 1 rows for 3"):
        RunSeries("x", [1, 2, 3], [1.0] * 3, [(1, 1, 1)], [0] * 3, [0.0] * 3, [0.0] * 3)
    with pytest.raises(InvalidArgument, match="run name=''"):
        RunSeries("", [1], [1.0], [(1, 1, 1)], [0], [0.0], [0.0])
    with pytest.raises(InvalidArgument, match="repeat"):
        comparison_table([RUNS[0], RUNS[0]])
    with pytest.raises(InvalidArgument, match="runs="):
        render_report([], "t", {})
