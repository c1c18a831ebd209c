"""The compare charts, as matplotlib figures rendered without a display.

Figures are built with :class:`matplotlib.figure.Figure` directly, not
pyplot: no global figure registry, no GUI backend, safe to call from any
thread. Saving renders with Agg (PNG) and matplotlib's SVG writer, text as
paths, so the SVG needs no font and inlines into a self-contained page.
Output is deterministic for the same input (fixed ``svg.hashsalt``, no
date in the metadata), so a re-render of saved runs is byte-identical.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogFormatter, NullLocator

from dbload.drivers import default_driver
from dbload.measure.comparison import (
    Comparison,
    baseline,
    run_labels,
    servers,
    shows_drivers,
)
from dbload.measure.histogram import decode
from dbload.measure.recorder import without_sliver
from dbload.measure.result import Result
from dbload.report.files import write_folder

# Same colour for a mode in every chart (and in the HTML table).
MODE_COLOURS = {
    "sequential": "#7f7f7f",
    "threads": "#1f77b4",
    "async": "#2ca02c",
    "processes": "#ff7f0e",
}
_OTHER_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#d62728")
# and a marker per mode, so that curves on top of each other stay apart
MODE_MARKERS = {"sequential": "s", "threads": "o", "async": "^", "processes": "D"}
_OTHER_MARKERS = ("v", "P", "X", "*", "h", "<", ">")
# compare --drivers: a mode keeps its colour; its drivers differ by the
# hatch of their bars and the line style of their curves (legible in grey),
# by kind: plain for the mode's default driver, one pattern for SQLAlchemy
# on any DBAPI, another for the other raw driver (async on psycopg)
DEFAULT_DRIVER, SQLALCHEMY, OTHER_DRIVER = "default", "sqlalchemy", "other"
DRIVER_HATCHES = {DEFAULT_DRIVER: "", SQLALCHEMY: "//", OTHER_DRIVER: ".."}
DRIVER_LINES = {DEFAULT_DRIVER: "-", SQLALCHEMY: "--", OTHER_DRIVER: ":"}
_RUN_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")

# More curves than this on one plot are unreadable: a sweep shows each
# mode's run at its highest concurrency only.
MAX_CURVES = 8

# Any keys: matplotlib types them as a Literal of every rc name, by version.
_RC: dict[Any, Any] = {
    "svg.hashsalt": "dbload",  # ids in the SVG stop depending on a random salt
    "svg.fonttype": "path",  # glyphs as paths: no font needed to view the SVG
    "font.family": "DejaVu Sans",  # ships with matplotlib: same look everywhere
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e0e0e0",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "legend.frameon": False,
}
_SVG_METADATA: dict[str, str | None] = {
    "Date": None,
    "Creator": None,
    "Format": None,
    "Type": None,
}
_PNG_METADATA: dict[str, str | None] = {"Software": None}
PNG_DPI = 120


@contextmanager
def _style() -> Iterator[None]:
    with matplotlib.rc_context(_RC):
        yield


def _figure() -> tuple[Figure, Axes]:
    fig = Figure(figsize=(8.0, 4.5), layout="constrained")
    return fig, fig.subplots()


def mode_colour(mode: str, modes: list[str]) -> str:
    """The colour of ``mode``; unknown modes take the spare colours in turn."""
    if mode in MODE_COLOURS:
        return MODE_COLOURS[mode]
    others = [m for m in modes if m not in MODE_COLOURS]
    return _OTHER_COLOURS[others.index(mode) % len(_OTHER_COLOURS)] if mode in others else "#333"


def _run_colours(results: tuple[Result, ...]) -> list[str]:
    """A colour per run: its mode's, lighter for a lower concurrency when a mode
    ran at several; one colour per run when runs repeat (``dbload report A B``)."""
    modes = [r.mode for r in results]
    pairs = [(r.mode, r.concurrency) for r in results]
    if len(set(pairs)) != len(pairs):
        return [_RUN_COLOURS[i % len(_RUN_COLOURS)] for i in range(len(results))]
    return [_shade(r, results, mode_colour(r.mode, modes)) for r in results]


def _shade(result: Result, results: tuple[Result, ...], colour: str) -> str:
    levels = sorted({r.concurrency for r in results if r.mode == result.mode})
    if len(levels) == 1:
        return colour
    # the highest concurrency in full colour, the lowest mixed 60 % with white
    white = 0.6 * (1 - levels.index(result.concurrency) / (len(levels) - 1))
    r, g, b = (c + (1 - c) * white for c in to_rgb(colour))
    return to_hex((r, g, b))


def featured(comparison: Comparison) -> tuple[tuple[Result, ...], str]:
    """The runs a per-run chart shows, and a note when some were left out."""
    runs = comparison.results
    if len(runs) <= MAX_CURVES:
        return runs, ""
    with_driver = shows_drivers(runs)
    best: dict[tuple[str, str], Result] = {}
    for r in runs:
        key = (r.mode, r.driver if with_driver else "")
        if key not in best or r.concurrency > best[key].concurrency:
            best[key] = r
    what = "mode and driver" if with_driver else "mode"
    return tuple(best.values()), f" (each {what} at its highest concurrency)"


def series_label(result: Result, with_driver: bool) -> str:
    """A bar's or curve's legend: the mode, and its driver on the driver axis."""
    return f"{result.mode} {result.driver}" if with_driver else result.mode


def driver_kind(mode: str, driver: str) -> str:
    """What the hatch and line style of ``mode`` on ``driver`` show."""
    if driver == default_driver(mode):
        return DEFAULT_DRIVER
    return SQLALCHEMY if driver.startswith("sqlalchemy") else OTHER_DRIVER


# -- the four charts -----------------------------------------------------------


def throughput_chart(comparison: Comparison) -> Figure:
    """Transactions per second per run: bars grouped by concurrency, one colour a mode.

    Runs that repeat a mode and concurrency (``dbload report A B``) get a bar
    each, labelled by run.
    """
    runs = comparison.results
    with _style():
        fig, ax = _figure()
        # compare --drivers: a bar per mode and driver in each group
        pairs = [(r.mode, r.driver, r.concurrency) for r in runs]
        several = len(servers(runs)) > 1
        keyed = [(r.database.server, *pair) for r, pair in zip(runs, pairs, strict=True)]
        if len(set(pairs)) == len(pairs):
            _grouped_bars(ax, runs)
        elif several and len(set(keyed)) == len(keyed):  # compare --servers
            _grouped_bars(ax, runs, by_server=True)
        else:
            _bars_per_run(ax, runs)
        ax.set_ylabel("transactions / s")
        ax.set_title(f"Throughput: {comparison.workload}", loc="left", fontweight="bold")
        ax.grid(axis="x", visible=False)
        ax.margins(y=0.12)
    return fig


def _grouped_bars(ax: Axes, runs: tuple[Result, ...], *, by_server: bool = False) -> None:
    """Bars grouped by concurrency (``by_server``: by server, then
    concurrency), one colour a mode (and one hatch a driver, when they vary)."""
    modes = list(dict.fromkeys(r.mode for r in runs))
    with_driver = shows_drivers(runs)
    # a mode's drivers side by side, in the order of the runs
    order = list(dict.fromkeys((r.mode, r.driver if with_driver else "") for r in runs))
    order.sort(key=lambda pair: modes.index(pair[0]))

    def key(r: Result) -> tuple[int, int]:
        place = servers(runs).index(r.database.server) if by_server else 0
        return place, r.concurrency

    def rank(r: Result) -> int:
        return order.index((r.mode, r.driver if with_driver else ""))

    groups = sorted({key(r) for r in runs})
    width = 0.8 / max(len([r for r in runs if key(r) == g]) for g in groups)
    seen: set[str] = set()
    for x, g in enumerate(groups):
        group = sorted((r for r in runs if key(r) == g), key=rank)
        start = x - width * (len(group) - 1) / 2
        for i, r in enumerate(group):
            label = series_label(r, with_driver)
            hatch = DRIVER_HATCHES[driver_kind(r.mode, r.driver)] if with_driver else ""
            # the hatch takes the edge colour: white lines on the mode's colour
            hatched: dict[str, Any] = (
                {"hatch": hatch, "edgecolor": "white", "linewidth": 0} if hatch else {}
            )
            bar = ax.bar(
                start + i * width,
                r.tps,
                width * 0.92,
                color=mode_colour(r.mode, modes),
                label=None if label in seen else label,
                **hatched,
            )
            seen.add(label)
            ax.bar_label(bar, labels=[_short(r.tps)], fontsize=7, padding=2)
    ticks = [_clients(c) for _, c in groups]
    if by_server:
        # "container:\nIMAGE": long names wrap at their kind
        names = [name.replace(":", ":\n", 1) for name in servers(runs)]
        ticks = [f"{names[i]}\n{tick}" for (i, _), tick in zip(groups, ticks, strict=True)]
    ax.set_xticks(range(len(groups)), ticks)
    # legend in the runs' mode order, not the order bars happened to be drawn
    handles = dict(zip(*ax.get_legend_handles_labels()[::-1], strict=True))
    legend = [f"{mode} {driver}" if driver else mode for mode, driver in order]
    ax.legend(
        [handles[m] for m in legend if m in handles],
        [m for m in legend if m in handles],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
    )


def _bars_per_run(ax: Axes, runs: tuple[Result, ...]) -> None:
    labels = run_labels(runs)
    bars = ax.bar(range(len(runs)), [r.tps for r in runs], 0.7, color=_run_colours(runs))
    ax.bar_label(bars, labels=[_short(r.tps) for r in runs], fontsize=7, padding=2)
    ax.set_xticks(range(len(runs)), labels, rotation=20 if len(runs) > 4 else 0, ha="right")


def speedup_chart(comparison: Comparison) -> Figure | None:
    """Speedup over the sequential run against concurrency, per mode, with the
    ideal line y = x (every server wait overlapped). None without a sequential run.

    The x ticks are the concurrencies that ran (a sweep of 20, 50 reads 20
    and 50, not the powers of two around them), and each mode has its own
    marker as well as its colour: curves that coincide (threads and async,
    both at the ideal) stay told apart, in grey print too."""
    runs = comparison.results
    # compare --servers: each server's curves against its own sequential run
    labels: list[str | None] = [*servers(runs)] or [None]
    bases = {s: baseline(runs, s) for s in labels}
    usable = {s: b for s, b in bases.items() if b is not None and b.tps > 0}
    if not usable:
        return None
    modes = list(dict.fromkeys(r.mode for r in runs))
    with_driver = shows_drivers(runs)
    curves = list(dict.fromkeys((r.mode, r.driver if with_driver else "") for r in runs))
    curves.sort(key=lambda pair: modes.index(pair[0]))
    ran = sorted({1, *(r.concurrency for r in runs)})
    with _style():
        fig, ax = _figure()
        ax.plot(
            [1, ran[-1]], [1, ran[-1]], "--", color="#999999", linewidth=1, label="ideal (y = x)"
        )
        top_y = 1.0
        for number, (server, base) in enumerate(usable.items()):
            mine = [r for r in runs if server is None or r.database.server == server]
            top_y = max(top_y, *(r.tps / base.tps for r in mine))
            for mode, driver in curves:
                points = sorted(
                    (r.concurrency, r.tps / base.tps)
                    for r in mine
                    if r.mode == mode and (not with_driver or r.driver == driver)
                )
                if not points:
                    continue
                xs, ys = zip(*points, strict=True)
                name = f"{mode} {driver}" if driver else mode
                # a driver's line style wins over a server's: the legend names both
                style = (
                    DRIVER_LINES[driver_kind(mode, driver)]
                    if driver
                    else SERVER_LINES[number % len(SERVER_LINES)]
                )
                # hollow: where modes coincide (all on the ideal), every outline shows
                ax.plot(
                    xs,
                    ys,
                    linestyle=style,
                    marker=mode_marker(mode, modes),
                    color=mode_colour(mode, modes),
                    label=name if server is None else f"{name} ({server})",
                    markersize=8,
                    markerfacecolor="none",
                    markeredgewidth=1.6,
                )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        _speedup_ticks(ax, ran, top_y)
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel("speedup vs sequential")
        ax.set_title(
            f"Speedup vs concurrency: {comparison.workload}", loc="left", fontweight="bold"
        )
        ax.legend(loc="upper left")
    return fig


# compare --servers: one line style per server, the colours staying the modes'
SERVER_LINES = ("-", ":", "-.", (0, (5, 1)))


def mode_marker(mode: str, modes: list[str]) -> str:
    """The marker of ``mode``'s curve; unknown modes take the spare ones in turn."""
    if mode in MODE_MARKERS:
        return MODE_MARKERS[mode]
    others = [m for m in modes if m not in MODE_MARKERS]
    return _OTHER_MARKERS[others.index(mode) % len(_OTHER_MARKERS)] if mode in others else "x"


def _speedup_ticks(ax: Axes, ran: list[int], top_y: float) -> None:
    """x: the concurrencies that ran; y: powers of two up to the ideal's top.
    Both as plain numbers (log axes would print 2^3)."""
    low_y = min(ax.get_ylim()[0], 1.0)
    high_y = max(top_y, float(ran[-1]))
    lo, hi = math.floor(math.log2(max(low_y, 1e-6))), math.ceil(math.log2(high_y))
    ax.xaxis.set_major_locator(FixedLocator([float(c) for c in ran]))
    ax.yaxis.set_major_locator(FixedLocator([2.0**k for k in range(lo, hi + 1)]))
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: plain_number(v)))
        axis.set_minor_locator(NullLocator())


# Percentiles on a "nines" axis, as HdrHistogram plots them: x = 1/(1-q).
_NINES_TICKS = {1.0: "0%", 2.0: "50%", 10.0: "90%", 100.0: "99%", 1e3: "99.9%", 1e4: "99.99%"}
_NINES_TICKS |= {1e5: "99.999%", 1e6: "99.9999%"}


def latency_chart(comparison: Comparison) -> Figure:
    """Latency by percentile per run, from the full HDR histograms, on a log
    "nines" axis so that the tail (p99, p99.9) gets as much room as the median."""
    runs, note = featured(comparison)
    colours = _run_colours(runs)
    labels = run_labels(runs)
    top = 1.0
    with _style():
        fig, ax = _figure()
        for r, colour, label in zip(runs, colours, labels, strict=True):
            curve = percentile_curve(r.histogram)
            if curve:
                xs = [1.0 / (1.0 - q / 100.0) for q, _ in curve]
                ax.plot(xs, [v for _, v in curve], color=colour, label=label, linewidth=1.6)
                top = max(top, xs[-1])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = [t for t in _NINES_TICKS if t <= top * 1.01]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _NINES_TICKS.get(v, "")))
        ax.xaxis.set_minor_locator(NullLocator())
        # matplotlib labels minor ticks when the range is under a decade
        # (50-58 ms): in its default formatter, as 5x10^1
        ax.yaxis.set_major_formatter(PlainLogFormatter())
        ax.yaxis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"Latency by percentile{note}", loc="left", fontweight="bold")
        _legend_outside(ax)
    return fig


class PlainLogFormatter(LogFormatter):
    """Log-axis labels as plain numbers (50, 0.2, 1000), not 5x10^1: which
    ticks get a label is still matplotlib's choice."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return plain_number(x) if super().__call__(x, pos) else ""


def plain_number(value: float) -> str:
    """``value`` with up to 4 significant digits, never in exponent form."""
    return str(np.format_float_positional(value, precision=4, fractional=False, trim="-"))


def _legend_outside(ax: Axes) -> None:
    """Right of the plot: one curve per run would otherwise hide some of them."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def percentile_curve(encoded: str, steps_per_nine: int = 20) -> list[tuple[float, float]]:
    """(percentile, latency ms) points from an encoded histogram, evenly spaced
    in nines up to the last percentile its count resolves (1 - 1/count)."""
    hist = decode(encoded)
    count = hist.get_total_count()
    if count == 0:
        return []
    nines = min(math.log10(count), 6.0)
    steps = max(1, math.floor(nines * steps_per_nine))
    qs = [100.0 * (1.0 - 10.0 ** (-nines * i / steps)) for i in range(steps + 1)]
    values = hist.get_percentile_to_value_dict(qs)
    return [(q, values[q] / 1000.0) for q in qs]


def timeline_chart(comparison: Comparison) -> Figure:
    """Transactions per second in each reporting interval of each run."""
    runs, note = featured(comparison)
    with _style():
        fig, ax = _figure()
        for r, colour, label in zip(runs, _run_colours(runs), run_labels(runs), strict=True):
            points = interval_rates(r)
            if points:
                # one level per interval: a run shorter than one interval is a line, not a dot
                edges = [0.0, *(t for t, _ in points)]
                ax.stairs(
                    [v for _, v in points],
                    edges,
                    baseline=None,
                    color=colour,
                    label=label,
                    linewidth=1.6,
                )
        ax.set_xlabel("seconds since measuring began")
        ax.set_ylabel("transactions / s")
        ax.set_ylim(bottom=0)
        ax.set_xlim(left=0)
        ax.set_title(f"Throughput over time{note}", loc="left", fontweight="bold")
        _legend_outside(ax)
    return fig


def interval_rates(result: Result) -> list[tuple[float, float]]:
    """(end of interval s, tps) per series point, without a final sliver
    (``without_sliver``): 10 transactions in a last 0.02 s would read as
    500 tps and set the chart's scale. A 1.6 s run keeps its last 0.6 s."""
    points, previous = [], 0.0
    for point in without_sliver(result.series):
        span = point.t - previous
        if span > 0:
            points.append((point.t, point.transactions / span))
        previous = point.t
    return points


_MAKERS: dict[str, Callable[[Comparison], Figure | None]] = {
    "throughput": throughput_chart,
    "speedup": speedup_chart,
    "latency": latency_chart,
    "timeline": timeline_chart,
}
CHART_NAMES = tuple(_MAKERS)  # the file stems


def figures(comparison: Comparison) -> dict[str, Figure]:
    """Every chart by file stem: throughput, speedup (with a sequential run),
    latency, timeline."""
    made = {name: make(comparison) for name, make in _MAKERS.items()}
    return {name: fig for name, fig in made.items() if fig is not None}


# -- output --------------------------------------------------------------------


def svg_bytes(fig: Figure) -> bytes:
    """The figure as a standalone SVG document."""
    buf = io.BytesIO()
    with _style():
        fig.savefig(buf, format="svg", metadata=_SVG_METADATA)
    return buf.getvalue()


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    with _style():
        fig.savefig(buf, format="png", dpi=PNG_DPI, metadata=_PNG_METADATA)
    return buf.getvalue()


def svg_text(fig: Figure) -> str:
    """The ``<svg>`` element alone, for inlining into HTML.

    The XML declaration and the DOCTYPE go: HTML has no use for them, and
    the DOCTYPE names a DTD by URL, an external reference.
    """
    text = svg_bytes(fig).decode("utf-8")
    return text[text.index("<svg") :].strip()


def chart_file_names() -> list[str]:
    """Every file name the charts may take, whichever charts a comparison has."""
    return [f"{name}{suffix}" for name in CHART_NAMES for suffix in (".png", ".svg")]


def chart_files(figs: dict[str, Figure]) -> dict[str, bytes]:
    """Figures already made (see :func:`figures`) as ``NAME.png`` and
    ``NAME.svg`` file contents, by file name."""
    files: dict[str, bytes] = {}
    for name, fig in figs.items():
        files[f"{name}.png"] = png_bytes(fig)
        files[f"{name}.svg"] = svg_bytes(fig)
    return files


def write_charts(comparison: Comparison, out_dir: Path) -> list[Path]:
    """Write every chart as ``NAME.png`` and ``NAME.svg`` into ``out_dir``,
    all or none (see :func:`write_folder`); the paths."""
    return write_folder(out_dir, chart_files(figures(comparison)))


def _short(value: float) -> str:
    """A bar label: 950, 12.3k, 1.2M."""
    if value >= 1e6:
        return f"{value / 1e6:.1f}M"
    if value >= 1e4:
        return f"{value / 1e3:.0f}k"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def _clients(c: int) -> str:
    return "1 client" if c == 1 else f"{c} clients"
