"""The compare charts: valid PNG and SVG files, stable across re-renders."""

from __future__ import annotations

import dataclasses
import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import imread

from dbload.errors import DbloadError
from dbload.measure.comparison import Comparison
from dbload.measure.histogram import decode, encode, new_histogram
from dbload.measure.recorder import Interval
from dbload.measure.result import Result
from dbload.report.charts import (
    MAX_CURVES,
    featured,
    figures,
    interval_rates,
    latency_chart,
    percentile_curve,
    plain_number,
    speedup_chart,
    svg_bytes,
    svg_text,
    throughput_chart,
    timeline_chart,
    write_charts,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG_NS = "{http://www.w3.org/2000/svg}svg"


@pytest.mark.slow
def test_write_charts_gives_valid_png_and_svg(small_comparison: Comparison, tmp_path: Path) -> None:
    written = write_charts(small_comparison, tmp_path)
    names = {p.name for p in written}
    for chart in ("throughput", "speedup", "latency", "timeline"):
        assert {f"{chart}.png", f"{chart}.svg"} <= names
    for path in written:
        data = path.read_bytes()
        if path.suffix == ".png":
            assert data.startswith(PNG_SIGNATURE)
            pixels = imread(io.BytesIO(data), format="png")
            assert pixels.shape[0] > 300 and pixels.shape[1] > 600
            assert pixels.std() > 0.05  # not a blank image
        else:
            root = ET.fromstring(data)
            assert root.tag == SVG_NS
            assert b"<script" not in data
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no temp files left


def test_svg_is_stable_across_renders(small_comparison: Comparison) -> None:
    first = svg_bytes(throughput_chart(small_comparison))
    assert svg_bytes(throughput_chart(small_comparison)) == first
    assert b"<dc:date>" not in first  # no timestamp in the metadata


def test_svg_text_is_the_bare_element(small_comparison: Comparison) -> None:
    text = svg_text(latency_chart(small_comparison))
    assert text.startswith("<svg") and text.endswith("</svg>")
    assert "<!DOCTYPE" not in text and "<?xml" not in text
    ET.fromstring(text)


def test_no_speedup_chart_without_a_sequential_run(small_comparison: Comparison) -> None:
    others = Comparison.of(r for r in small_comparison.results if r.mode != "sequential")
    assert speedup_chart(others) is None
    assert set(figures(others)) == {"throughput", "latency", "timeline"}


def test_repeated_runs_still_chart(small_comparison: Comparison) -> None:
    """``dbload report A B`` of the same mode and clients: a bar per run."""
    run = small_comparison.results[1]
    twice = Comparison.of([run, run])
    for fig in figures(twice).values():
        ET.fromstring(svg_bytes(fig))


def test_percentile_curve_follows_the_histogram(small_comparison: Comparison) -> None:
    result = small_comparison.results[0]
    curve = percentile_curve(result.histogram)
    qs = [q for q, _ in curve]
    values = [v for _, v in curve]
    assert qs[0] == 0.0 and qs == sorted(qs) and qs[-1] < 100.0
    assert values == sorted(values)
    assert values[-1] <= decode(result.histogram).get_max_value() / 1000.0 + 1e-9
    assert percentile_curve(encode(new_histogram())) == []


def test_interval_rates_divide_by_the_interval(small_comparison: Comparison) -> None:
    result = small_comparison.results[0]
    rates = interval_rates(result)
    assert rates and rates[0][0] == result.series[0].t
    assert rates[0][1] == pytest.approx(result.series[0].transactions / result.series[0].t)


@pytest.mark.slow
def test_a_large_sweep_shows_each_mode_once_per_curve_chart(
    small_comparison: Comparison,
) -> None:
    base = small_comparison.results
    sweep = [base[0]] + [
        dataclasses.replace(r, concurrency=c) for r in base[1:] for c in (1, 2, 4, 8, 16, 32)
    ]
    assert len(sweep) > MAX_CURVES
    shown, note = featured(Comparison.of(sweep))
    assert {(r.mode, r.concurrency) for r in shown} == {
        ("sequential", 1),
        ("threads", 32),
        ("async", 32),
    }
    assert note
    for fig in figures(Comparison.of(sweep)).values():
        ET.fromstring(svg_bytes(fig))


@pytest.mark.slow
def test_unwritable_chart_directory_is_one_line(
    small_comparison: Comparison, tmp_path: Path
) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a directory")
    with pytest.raises(DbloadError, match=r"^cannot write .*file\.txt/sub: Not a directory;"):
        write_charts(small_comparison, blocker / "sub")


# -- what the charts show ----------------------------------------------------------


@pytest.fixture(scope="module")
def slow_comparison(seeded_dsn: str) -> Comparison:
    """Real runs of the slow workload (50 ms of server wait each), at
    concurrencies that are not powers of two: 1, 3 and 6."""
    from dbload.api import prepare_options, run_on
    from dbload.database.resolve import Database

    runs = []
    for mode, clients in (("sequential", 1), ("threads", 3), ("async", 3), ("async", 6)):
        options = prepare_options(
            workload="slow", mode=mode, concurrency=clients, transactions=4 * clients, seed=1
        )
        runs.append(run_on(Database(kind="dsn", dsn=seeded_dsn), 1, options))
    return Comparison.of(runs)


def _drawn(fig: Figure) -> Axes:
    """The figure's axes, after a draw: tick labels exist only then."""
    fig.draw_without_rendering()
    return fig.axes[0]


def _labels(ax: Axes, axis: str) -> list[tuple[float, str]]:
    """(value, text) of every labelled tick in view on ``axis``, major and minor."""
    which = ax.yaxis if axis == "y" else ax.xaxis
    low, high = sorted(ax.get_ylim() if axis == "y" else ax.get_xlim())
    ticks = [*which.get_major_ticks(), *which.get_minor_ticks()]
    return [
        (t.get_loc(), t.label1.get_text())
        for t in ticks
        if t.label1.get_text() and low <= t.get_loc() <= high
    ]


@pytest.mark.slow
def test_speedup_chart_ticks_at_the_concurrencies_that_ran(slow_comparison: Comparison) -> None:
    fig = speedup_chart(slow_comparison)
    assert fig is not None
    ax = _drawn(fig)
    assert _labels(ax, "x") == [(1.0, "1"), (3.0, "3"), (6.0, "6")]
    assert "slow" in ax.get_title(loc="left")
    markers = {line.get_label(): line.get_marker() for line in ax.get_lines()}
    modes = ["sequential", "threads", "async"]
    assert set(modes) <= set(markers)
    assert len({markers[m] for m in modes}) == len(modes)  # one marker per mode
    assert all(markers[m] not in ("", "None", None) for m in modes)


def test_latency_axis_reads_plain_milliseconds(slow_comparison: Comparison) -> None:
    """50-55 ms is under a decade: matplotlib labels the minor ticks of a
    log axis then, by default as 5x10^1."""
    ax = _drawn(latency_chart(slow_comparison))
    labels = _labels(ax, "y")
    assert labels, "no latency label in view"
    for value, text in labels:
        assert re.fullmatch(r"\d+(\.\d+)?", text), text
        assert float(text) == pytest.approx(value)


def test_plain_number_never_uses_an_exponent() -> None:
    assert [plain_number(v) for v in (50.0, 0.05, 0.0012, 2.5, 1000.0, 120000.0)] == [
        "50", "0.05", "0.0012", "2.5", "1000", "120000",
    ]  # fmt: skip


def _with_series(result: Result, *points: tuple[float, int]) -> Result:
    series = tuple(Interval(t=t, transactions=n, errors=0, p99_ms=1.0) for t, n in points)
    return dataclasses.replace(result, series=series)


def test_a_final_sliver_is_left_out_of_the_rate_charts(slow_comparison: Comparison) -> None:
    """10 transactions in the last 0.02 s are not a 500 tps spike."""
    run = _with_series(slow_comparison.results[0], (1.0, 100), (2.0, 110), (2.02, 10))
    assert interval_rates(run) == [(1.0, 100.0), (2.0, 110.0)]
    ax = _drawn(timeline_chart(Comparison.of([run])))
    assert 110 <= ax.get_ylim()[1] < 200  # the scale is the full intervals'
    # half an interval or more is drawn, at its true rate
    run = _with_series(slow_comparison.results[0], (1.0, 100), (2.0, 110), (2.6, 66))
    assert [rate for _, rate in interval_rates(run)] == pytest.approx([100.0, 110.0, 110.0])
    # a run shorter than one interval keeps its only point
    short = _with_series(slow_comparison.results[0], (0.3, 30))
    assert [rate for _, rate in interval_rates(short)] == pytest.approx([100.0])


# -- the driver axis (compare --drivers) ---------------------------------------


def _legend(fig: Figure) -> list[str]:
    legend = fig.axes[0].get_legend()
    assert legend is not None
    return [text.get_text() for text in legend.get_texts()]


def test_charts_name_each_mode_and_driver(drivers_comparison: Comparison) -> None:
    throughput = throughput_chart(drivers_comparison)
    assert _legend(throughput) == [
        "sequential psycopg", "threads psycopg", "async psycopg", "async asyncpg",
    ]  # fmt: skip
    # async's two drivers side by side, told apart by a hatch: none for the
    # mode's default driver (asyncpg), dots for the other raw one
    bars = [p for p in throughput.axes[0].patches if p.get_height() > 0]
    assert [p.get_hatch() or "" for p in bars] == ["", "", "..", ""]
    speedup = speedup_chart(drivers_comparison)
    assert speedup is not None
    assert _legend(speedup)[1:] == [
        "sequential psycopg", "threads psycopg", "async psycopg", "async asyncpg",
    ]  # fmt: skip
    for fig in (latency_chart(drivers_comparison), timeline_chart(drivers_comparison)):
        assert _legend(fig) == [
            "sequential psycopg c=1", "threads psycopg c=2",
            "async psycopg c=2", "async asyncpg c=2",
        ]  # fmt: skip
    svg = svg_bytes(throughput).decode()
    ET.fromstring(svg)
    # text as paths, each with its text in a comment
    assert "<!-- async asyncpg -->" in svg and "<!-- async psycopg -->" in svg


def test_charts_without_the_driver_axis_name_modes_only(small_comparison: Comparison) -> None:
    assert _legend(throughput_chart(small_comparison)) == ["sequential", "threads", "async"]
    assert not any(p.get_hatch() for p in throughput_chart(small_comparison).axes[0].patches)


def test_a_large_sweep_of_drivers_keeps_each_mode_and_driver(
    drivers_comparison: Comparison,
) -> None:
    base = drivers_comparison.results
    sweep = [base[0]] + [
        dataclasses.replace(r, concurrency=c) for r in base[1:] for c in (1, 2, 4, 8)
    ]
    assert len(sweep) > MAX_CURVES
    shown, note = featured(Comparison.of(sweep))
    assert {(r.mode, r.driver, r.concurrency) for r in shown} == {
        ("sequential", "psycopg", 1), ("threads", "psycopg", 8),
        ("async", "psycopg", 8), ("async", "asyncpg", 8),
    }  # fmt: skip
    assert "mode and driver" in note
