"""The comparison report: runs of one or more scenarios, side by side, in one HTML file.

``render_report(runs, title, meta)`` returns a self-contained HTML page: every plot is a PNG
embedded as ``data:image/png;base64,...`` (matplotlib's Agg canvas, no pyplot and no global
backend switch), styles are inline, and nothing refers to the network, so the file opens in
a browser offline and can be attached to an issue as is. The same inputs give the same bytes
(PNG metadata carries no software version or date).

Plots: the price path of each scenario (runs of one scenario share it; runs whose prices
differ, as they do when liquidations move a finite market, are drawn as separate lines),
each run's account-health distribution over time (p5, p25, p50), liquidations per block,
the insurance fund and cumulative bad debt by run. Then a metrics table (a row per metric,
a column per run) and the run identity (``meta``: seed, config hash, version, ...).

``comparison_table(runs)`` is the metrics table as plain text, for the CLI; it needs no
matplotlib. The plots need the ``report`` extra: ``pip install 'liqeng[report]'``.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from liqeng.errors import InvalidArgument

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["RunSeries", "comparison_table", "render_report", "write_report"]

Metric = float | int | str
_MISSING = "-"


@dataclass(frozen=True, slots=True)
class RunSeries:
    """What one run (one mechanism or preset on one scenario) did, block by block.

    ``block_ts``, ``price``, ``liquidations_per_block``, ``insurance_fund`` and ``bad_debt``
    have one entry per block. ``health_quantiles`` has one ``(p5, p25, p50)`` of account
    health per *sampled* block, at ``health_ts`` (empty: every block, so then one per
    block). Money (``insurance_fund``, ``bad_debt``, cumulative) is in quote units as floats,
    for plotting only. ``scenario`` groups runs that share a price path (one plot each).
    Sequences are stored as tuples; lengths are checked and a mismatch names the field.
    """

    name: str
    block_ts: Sequence[int]
    price: Sequence[float]
    health_quantiles: Sequence[tuple[float, float, float]]
    liquidations_per_block: Sequence[int]
    insurance_fund: Sequence[float]
    bad_debt: Sequence[float]
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    scenario: str = ""
    health_ts: Sequence[int] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidArgument(f"run name={self.name!r} must be a non-empty str")
        where = f"run {self.name!r}"
        n = len(self.block_ts)
        if n == 0:
            raise InvalidArgument(f"{where}: block_ts is empty")
        for key in ("price", "liquidations_per_block", "insurance_fund", "bad_debt"):
            got = len(getattr(self, key))
            if got != n:
                raise InvalidArgument(f"{where}: {key} has {got} values for {n} blocks")
        sampled = len(self.health_ts) if self.health_ts else n
        if len(self.health_quantiles) != sampled:
            raise InvalidArgument(
                f"{where}: health_quantiles has {len(self.health_quantiles)} rows for "
                f"{sampled} sampled blocks"
            )
        for row in self.health_quantiles:
            if len(row) != 3:
                raise InvalidArgument(f"{where}: health row={row!r} must be (p5, p25, p50)")
        for k, v in self.metrics.items():
            if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, Metric):
                raise InvalidArgument(f"{where}: metric {k!r}={v!r} must be a float, int or str")
        freeze = object.__setattr__
        freeze(self, "block_ts", tuple(int(t) for t in self.block_ts))
        freeze(self, "price", tuple(float(p) for p in self.price))
        freeze(
            self,
            "health_quantiles",
            tuple((float(a), float(b), float(c)) for a, b, c in self.health_quantiles),
        )
        freeze(self, "liquidations_per_block", tuple(int(x) for x in self.liquidations_per_block))
        freeze(self, "insurance_fund", tuple(float(x) for x in self.insurance_fund))
        freeze(self, "bad_debt", tuple(float(x) for x in self.bad_debt))
        freeze(self, "metrics", dict(self.metrics))
        freeze(self, "health_ts", tuple(int(t) for t in self.health_ts))

    @property
    def sampled_ts(self) -> tuple[int, ...]:
        """The blocks ``health_quantiles`` describe."""
        return tuple(self.health_ts or self.block_ts)


def _check_runs(runs: Sequence[RunSeries]) -> list[RunSeries]:
    out = list(runs)
    if not out:
        raise InvalidArgument("runs=[] : a report needs at least one run")
    for r in out:
        if not isinstance(r, RunSeries):
            raise InvalidArgument(f"run={r!r} must be a RunSeries")
    names = [r.name for r in out]
    if len(set(names)) != len(names):
        raise InvalidArgument(f"run names={names!r} repeat; each run needs its own column")
    return out


def _fmt(value: Metric | None) -> str:
    if value is None:
        return _MISSING
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.4g}"
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def _metric_rows(runs: Sequence[RunSeries]) -> list[tuple[str, list[str]]]:
    """Metric names in first-seen order, each with one cell per run."""
    names: dict[str, None] = {}
    for r in runs:
        names.update(dict.fromkeys(r.metrics))
    return [(m, [_fmt(r.metrics.get(m)) for r in runs]) for m in names]


def comparison_table(runs: Sequence[RunSeries]) -> str:
    """The metrics as an aligned plain-text table: a row per metric, a column per run.

    Numbers are right-aligned, a metric a run lacks shows ``-``.
    """
    checked = _check_runs(runs)
    header = ["metric", *(r.name for r in checked)]
    rows = [[m, *cells] for m, cells in _metric_rows(checked)]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)]) + "\n"


# --- plots ----------------------------------------------------------------------------------


def _figure(height: float = 3.2) -> tuple[Figure, Axes]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the HTML report needs matplotlib: pip install 'liqeng[report]'") from exc
    fig = Figure(figsize=(9.0, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.grid(True, alpha=0.3)
    return fig, ax


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _times(ts: Sequence[int]) -> np.ndarray[tuple[int], np.dtype[np.datetime64]]:
    """Epoch seconds as UTC instants (``datetime64`` has no time zone: it is UTC)."""
    return np.array(ts, dtype="datetime64[s]")


def _finite(xs: Sequence[float]) -> list[float]:
    """Non-finite values (an account with no debt has infinite health) are not drawn."""
    return [x if math.isfinite(x) else math.nan for x in xs]


def _finish(fig: Figure, ax: Axes, ylabel: str, legend: bool) -> str:
    ax.set_xlabel("block time (UTC)")
    ax.set_ylabel(ylabel)
    if legend:
        ax.legend(loc="best", fontsize="small")
    fig.autofmt_xdate()
    return _png(fig)


def _price_plots(runs: Sequence[RunSeries]) -> list[tuple[str, str]]:
    by_scenario: dict[str, list[RunSeries]] = {}
    for r in runs:
        by_scenario.setdefault(r.scenario, []).append(r)
    out = []
    for scenario, group in by_scenario.items():
        fig, ax = _figure()
        paths: dict[tuple[tuple[int, ...], tuple[float, ...]], list[str]] = {}
        for r in group:
            paths.setdefault((tuple(r.block_ts), tuple(r.price)), []).append(r.name)
        for (ts, price), names in paths.items():
            label = "all runs" if len(paths) == 1 else ", ".join(names)
            ax.plot(_times(ts), _finite(price), linewidth=1.2, label=label)
        title = f"Price path: {scenario}" if scenario else "Price path"
        ax.set_title(title)
        out.append((title, _finish(fig, ax, "price (quote per token)", len(paths) > 1)))
    return out


def _health_plot(run: RunSeries) -> tuple[str, str]:
    fig, ax = _figure()
    t = _times(run.sampled_ts)
    p5, p25, p50 = (_finite([row[i] for row in run.health_quantiles]) for i in range(3))
    ax.fill_between(t, p5, p25, alpha=0.25, label="p5 to p25")
    ax.plot(t, p5, linewidth=0.8, label="p5")
    ax.plot(t, p25, linewidth=0.8, label="p25")
    ax.plot(t, p50, linewidth=1.4, label="p50")
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--", label="liquidatable (1.0)")
    title = f"Account health: {run.name}"
    ax.set_title(title)
    return title, _finish(fig, ax, "health", True)


def _per_run_plot(
    runs: Sequence[RunSeries], title: str, ylabel: str, values: str, step: bool
) -> tuple[str, str]:
    fig, ax = _figure()
    for r in runs:
        ys: Sequence[float] = getattr(r, values)
        if step:
            ax.step(_times(r.block_ts), _finite(ys), where="post", linewidth=1.0, label=r.name)
        else:
            ax.plot(_times(r.block_ts), _finite(ys), linewidth=1.2, label=r.name)
    ax.set_title(title)
    return title, _finish(fig, ax, ylabel, True)


# --- HTML -----------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 960px; color: #1b1b1b; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; }
th { background: #f2f2f2; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; } img { max-width: 100%; height: auto; }
figcaption { font-size: 0.85rem; color: #555; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _is_num(cell: str) -> bool:
    return cell.replace(",", "").replace(".", "", 1).lstrip("-").replace("e", "", 1).isdigit()


def _metrics_html(runs: Sequence[RunSeries]) -> str:
    head = "".join(f"<th>{_e(r.name)}</th>" for r in runs)
    body = []
    for metric, cells in _metric_rows(runs):
        tds = "".join(
            f'<td class="num">{_e(c)}</td>' if _is_num(c) else f"<td>{_e(c)}</td>" for c in cells
        )
        body.append(f"<tr><th>{_e(metric)}</th>{tds}</tr>")
    return (
        '<table class="metrics">\n<thead><tr><th>metric</th>'
        + head
        + "</tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + "\n</tbody>\n</table>"
    )


def _meta_html(meta: Mapping[str, str]) -> str:
    if not meta:
        return "<p>(no run identity given)</p>"
    rows = "\n".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in meta.items())
    return f'<table class="meta">\n<tbody>\n{rows}\n</tbody>\n</table>'


def _figure_html(caption: str, png_b64: str) -> str:
    return (
        f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{png_b64}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def render_report(runs: Sequence[RunSeries], title: str, meta: Mapping[str, str]) -> str:
    """The whole report as one self-contained HTML page (see the module doc)."""
    checked = _check_runs(runs)
    if not isinstance(title, str) or not title:
        raise InvalidArgument(f"title={title!r} must be a non-empty str")
    for k, v in meta.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidArgument(f"meta {k!r}={v!r} must map str to str")
    prices = _price_plots(checked)
    health = [_health_plot(r) for r in checked]
    activity = [
        _per_run_plot(
            checked, "Liquidations per block", "liquidations", "liquidations_per_block", True
        ),
        _per_run_plot(checked, "Insurance fund", "insurance fund (quote)", "insurance_fund", False),
        _per_run_plot(
            checked, "Bad debt by mechanism (cumulative)", "bad debt (quote)", "bad_debt", True
        ),
    ]

    def section(heading: str, figures: list[tuple[str, str]]) -> str:
        return f"<h2>{_e(heading)}</h2>\n" + "\n".join(_figure_html(c, p) for c, p in figures)

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(title)}</h1>",
        "<h2>Run identity</h2>",
        _meta_html(meta),
        "<h2>Metrics</h2>",
        _metrics_html(checked),
        section("Price", prices),
        section("Account health", health),
        section("Liquidations, insurance fund and bad debt", activity),
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(
    path: str | Path, runs: Sequence[RunSeries], title: str, meta: Mapping[str, str]
) -> Path:
    """Render and write the report as UTF-8; returns the path written."""
    out = Path(path)
    if out.is_dir():
        raise InvalidArgument(f"report path={str(out)!r} is a directory")
    text = render_report(runs, title, meta)
    out.write_text(text, encoding="utf-8")
    return out
