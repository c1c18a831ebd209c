"""The compare charts: valid PNG and SVG files, stable across re-renders."""

from __future__ import annotations

import dataclasses
import io
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from matplotlib.image import imread

from dbload.errors import DbloadError
from dbload.measure.comparison import Comparison
from dbload.measure.histogram import decode, encode, new_histogram
from dbload.report.charts import (
    MAX_CURVES,
    featured,
    figures,
    interval_rates,
    latency_chart,
    percentile_curve,
    speedup_chart,
    svg_bytes,
    svg_text,
    throughput_chart,
    write_charts,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG_NS = "{http://www.w3.org/2000/svg}svg"


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


def test_unwritable_chart_directory_is_one_line(
    small_comparison: Comparison, tmp_path: Path
) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a directory")
    with pytest.raises(DbloadError, match=r"^cannot write .*file\.txt/sub/throughput\.png"):
        write_charts(small_comparison, blocker / "sub")
