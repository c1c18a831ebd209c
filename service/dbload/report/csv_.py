"""``--csv PATH``: the per-second series, for a spreadsheet or a dashboard.

One row per interval of the run: ``t`` (seconds since measuring began, the
interval's end), ``transactions`` finished in it (failed ones included),
``tps`` (successful per second, as the report counts it), ``errors`` and
``p99_ms`` (empty when nothing succeeded in the interval). A comparison
adds ``mode`` and ``concurrency`` columns first, one block of rows per cell.

Pure functions returning the text (RFC 4180: CRLF line ends, as the csv
module writes them).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

from dbload.measure.comparison import Comparison
from dbload.measure.result import Result

COLUMNS = ("t", "transactions", "tps", "errors", "p99_ms")


def series_csv(result: Result) -> str:
    """One run's series."""
    return _csv(COLUMNS, _rows(result))


def compare_series_csv(comparison: Comparison) -> str:
    """Every cell's series, each row led by its mode and concurrency."""
    return _csv(
        ("mode", "concurrency", *COLUMNS),
        (
            [result.mode, str(result.concurrency), *row]
            for result in comparison.results
            for row in _rows(result)
        ),
    )


def _rows(result: Result) -> Iterator[list[str]]:
    previous = 0.0
    for point in result.series:
        span = point.t - previous  # 1 s, but the last interval may be shorter
        previous = point.t
        ok = point.transactions - point.errors
        yield [
            f"{point.t:.3f}",
            str(point.transactions),
            f"{ok / span:.3f}" if span > 0 else "",
            str(point.errors),
            f"{point.p99_ms:.3f}" if ok else "",
        ]


def _csv(header: Iterable[str], rows: Iterable[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()
