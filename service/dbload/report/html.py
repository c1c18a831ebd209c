"""The HTML report of a comparison: one self-contained file that opens offline.

Everything is inline: CSS in a ``<style>``, charts as ``<svg>`` elements.
There is no script, font, image or stylesheet to fetch, and a
Content-Security-Policy forbids any, so the page looks the same from a
mail attachment, a CI artifact or an air-gapped laptop. Every piece of
user text (workload and script names, SQL, URLs) is escaped.
"""

from __future__ import annotations

import html
import json
import re
import tempfile
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from matplotlib.figure import Figure

from dbload import __version__
from dbload.errors import UsageError
from dbload.measure.comparison import (
    CLIENT_CPU,
    NEAR_CEILING,
    SERVER_CPU,
    SERVER_WAIT,
    Comparison,
    Row,
    baseline,
    diff,
    environment,
    rows,
    servers,
    shows_drivers,
)
from dbload.measure.result import ClusterInfo, Result
from dbload.measure.thresholds import Verdict
from dbload.report.charts import chart_file_names, chart_files, figures, mode_colour, svg_text
from dbload.report.compare_console import (
    DASH,
    TIMES,
    fmt_cpu,
    fmt_delta,
    fmt_ms,
    fmt_pct,
    fmt_speedup,
    fmt_tps,
    fmt_us,
)
from dbload.report.console import CLUSTER_HEADS, CLUSTER_NOTE, cluster_cells
from dbload.report.files import is_stdout, refuse_overwrite, write_folder
from dbload.report.json_ import compare_to_dict

RESULTS_JSON = "results.json"
US_PER_TXN_HEAD = "client CPU \u00b5s/txn"
REPORT_HTML = "report.html"

# Nothing may be fetched: inline styles only (the SVGs use style attributes).
CSP = "default-src 'none'; style-src 'unsafe-inline'"

CAPTIONS = {
    "throughput": "Transactions per second of each run, grouped by concurrent clients.",
    "speedup": (
        "Throughput relative to the sequential run. The dashed line is the ideal:"
        " N clients whose time is all server wait finish N times the work."
    ),
    "latency": (
        "Transaction latency by percentile, from the full HDR histograms. Each nine"
        " gets the same width, so the tail (p99, p99.9) is as visible as the median."
    ),
    "timeline": (
        "Transactions per second in each reporting interval. A last interval shorter"
        " than half the others is left out: a few transactions over a few ms are no rate."
    ),
}

_BOUND_CLASS = {CLIENT_CPU: "client", SERVER_CPU: "server", SERVER_WAIT: "wait"}

_CSS = """
:root { color-scheme: light; --ink: #1d2330; --dim: #5f6b7a; --line: #e3e7ee;
  --bg: #f6f7f9; --card: #ffffff; --accent: #2c6fbb; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 24px 40px; }
header h1 { margin: 0; font-size: 26px; letter-spacing: -0.01em; }
header h1 .workload { color: var(--accent); }
.sub { margin: 4px 0 0; color: var(--dim); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 18px 22px; margin-top: 18px; }
h2 { margin: 0 0 12px; font-size: 17px; }
.headline { font-size: 17px; margin: 0; }
.headline b { font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 7px 10px; border-bottom: 1px solid var(--line); text-align: right;
  white-space: nowrap; }
th { font-size: 12px; text-transform: uppercase; letter-spacing: 0.04em; color: var(--dim);
  font-weight: 600; border-bottom: 2px solid var(--line); }
th.l, td.l { text-align: left; }
tbody tr:hover { background: #f0f4fa; }
.dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
  margin-right: 7px; vertical-align: baseline; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 12.5px;
  font-weight: 600; border: 1px solid transparent; }
.badge.client { background: #fff4d6; color: #8a5a00; border-color: #f0d58c; }
.badge.server { background: #fde4e4; color: #9b1c1c; border-color: #f3b5b5; }
.badge.wait { background: #e0f2f1; color: #0f5f59; border-color: #a7d8d3; }
.badge.unknown { background: #eceff3; color: #5f6b7a; border-color: #d5dae1; }
.better { color: #1b7f3b; } .worse { color: #b42318; }
.note { color: var(--dim); font-size: 13px; margin: 10px 0 0; }
ul.verdicts { list-style: none; margin: 0; padding: 0; }
ul.verdicts li { padding: 5px 0; border-bottom: 1px dashed var(--line); }
ul.verdicts li:last-child { border-bottom: 0; }
ul.verdicts .why { color: var(--dim); }
.warn { background: #fff8e6; border-color: #f0d58c; }
.warn ul { margin: 0; padding-left: 20px; }
.charts { display: grid; grid-template-columns: 1fr; gap: 18px; }
figure { margin: 0; }
figure svg { width: 100%; max-width: 880px; height: auto; display: block; margin: 0 auto; }
figcaption { color: var(--dim); font-size: 13px; margin: 4px auto 0; max-width: 880px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 0; }
dt { color: var(--dim); } dd { margin: 0; overflow-wrap: anywhere; }
details summary { cursor: pointer; font-weight: 600; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size: 13px; }
td pre { margin: 0; white-space: pre-wrap; text-align: left; min-width: 320px; }
footer { color: var(--dim); font-size: 12.5px; text-align: center; margin-top: 22px; }
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


# -- the output directory ------------------------------------------------------


def report_names() -> list[str]:
    """Every file name ``write_report`` may write into its folder."""
    return [RESULTS_JSON, *chart_file_names(), REPORT_HTML]


def check_out_dir(path: Path, *, inputs: Sequence[Path] = ()) -> Path:
    """Make sure ``--out`` can receive the report, before any run.

    A missing folder is created (with its parents) and removed again: it
    appears only when the report is complete. An existing one gets a scratch
    file: a real write, not ``os.access``, because root passes every
    permission check but still fails on a read-only mount. ``inputs`` (the
    files ``dbload report`` reads) may not be among the files the report
    would replace. Raises UsageError with one line.
    """
    if is_stdout(path):
        raise UsageError("--out takes a folder for several files; - (stdout) cannot hold them")
    path = path.expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out: {path} exists and is not a directory")
    refuse_overwrite("--out", [path / name for name in report_names()], inputs)
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out: cannot create directory {path}: {exc.strerror or exc}") from None
    try:
        with tempfile.TemporaryFile(dir=path, prefix=".dbload-check-"):
            pass
    except OSError as exc:
        raise UsageError(f"--out: cannot write into {path}: {exc.strerror or exc}") from None
    finally:
        if created:
            with suppress(OSError):  # a folder we could not write in may not go either
                path.rmdir()
    return path


def write_report(
    comparison: Comparison,
    out_dir: Path,
    *,
    deltas: bool = False,
    sources: Sequence[str] | None = None,
    verdicts: Sequence[Sequence[Verdict]] = (),
) -> list[Path]:
    """Write ``results.json``, every chart as PNG and SVG, and ``report.html``
    into ``out_dir``; the paths written, report last. Everything is rendered
    first, then written as one folder (see :func:`write_folder`): it is
    complete or as it was. ``verdicts[i]`` (``--threshold``) are run i's."""
    out_dir = check_out_dir(out_dir)
    figs = figures(comparison)
    data = json.dumps(compare_to_dict(comparison, verdicts), indent=2) + "\n"
    page = _page(comparison, figs, deltas, sources)
    files = {
        RESULTS_JSON: data.encode("utf-8"),
        **chart_files(figs),
        REPORT_HTML: page.encode("utf-8"),
    }
    return write_folder(out_dir, files)


def render_html(
    comparison: Comparison, *, deltas: bool = False, sources: Sequence[str] | None = None
) -> str:
    """The report page. ``deltas`` adds tps and p99 changes relative to the
    first run (``dbload report A B``); ``sources`` (file names) label runs."""
    return _page(comparison, figures(comparison), deltas, sources)


# -- the page ------------------------------------------------------------------


def _page(
    comparison: Comparison,
    figs: dict[str, Figure],
    deltas: bool,
    sources: Sequence[str] | None,
) -> str:
    if sources is not None and len(sources) != len(comparison.results):
        raise ValueError("one source per result")
    table_rows = rows(comparison)
    title = f"dbload {'report' if deltas else 'compare'}: {comparison.workload}"
    body = "\n".join(
        part
        for part in (
            _header(comparison, deltas),
            _headline(table_rows),
            _warnings(comparison.results),
            _table(comparison, table_rows, deltas, sources),
            _clusters(comparison, table_rows),
            _verdicts(table_rows),
            _charts(figs),
            _statements(comparison, table_rows),
            _environment(comparison),
        )
        if part
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"{body}\n<footer>dbload {_esc(__version__)} · one self-contained file:"
        " no scripts, nothing fetched</footer>\n</main>\n</body>\n</html>\n"
    )


def _header(comparison: Comparison, deltas: bool) -> str:
    runs = comparison.results
    servers = ", ".join(dict.fromkeys(r.database.server_version for r in runs))
    kind = "saved runs compared" if deltas else "one workload, several modes"
    if not deltas and shows_drivers(runs):
        kind += " and drivers"
    return (
        f"<header><h1>dbload {'report' if deltas else 'compare'}: "
        f'<span class="workload">{_esc(comparison.workload)}</span></h1>'
        f'<p class="sub">{_esc(kind)} · {len(runs)} run{"s" if len(runs) != 1 else ""}'
        f" · PostgreSQL {_esc(servers or DASH)} · {_esc(comparison.created_at)}</p></header>"
    )


def _headline(table_rows: list[Row]) -> str:
    if not table_rows:
        return '<section><p class="headline">No runs.</p></section>'
    best = max(table_rows, key=lambda row: row.tps)
    speed = ""
    if best.speedup is not None:
        speed = (
            f", <b>{_esc(fmt_speedup(best.speedup))}</b> the sequential run"
            f" ({_esc(fmt_pct(best.ideal_pct))} of the ideal {best.concurrency}{TIMES})"
        )
    return (
        f'<section><p class="headline">Fastest: <b>{_esc(best.label)}</b> at'
        f" <b>{_esc(fmt_tps(best.tps))} tps</b>{speed}; bound: {_badge(best)}</p></section>"
    )


def _warnings(results: Sequence[Result]) -> str:
    items = []
    with_driver = shows_drivers(results)
    for i, r in enumerate(results, start=1):
        driver = f" {r.driver}" if with_driver else ""
        what = f"run {i} ({r.mode}{driver}, {r.concurrency} clients)"
        if r.aborted:
            items.append(f"{what} was aborted after too many errors")
        elif r.interrupted:
            items.append(f"{what} was interrupted: its figures cover part of the batch")
        if r.failed:
            items.append(f"{what}: {r.failed:,} transactions failed")
    if not items:
        return ""
    lis = "".join(f"<li>{_esc(item)}</li>" for item in items)
    return f'<section class="warn"><h2>Warnings</h2><ul>{lis}</ul></section>'


def _table(
    comparison: Comparison,
    table_rows: list[Row],
    deltas: bool,
    sources: Sequence[str] | None,
) -> str:
    modes = [r.mode for r in comparison.results]
    several = len(servers(comparison.results)) > 1  # compare --servers
    with_driver = shows_drivers(comparison.results)  # compare --drivers
    heads = ["#", *(["source"] if sources else []), *(["server"] if several else [])]
    heads += ["mode", *(["driver"] if with_driver else []), "clients", "tps"]
    heads += ["\u0394 tps"] if deltas else []
    heads += [US_PER_TXN_HEAD, "p50 ms", "p99 ms"] + (["\u0394 p99"] if deltas else [])
    heads += ["speedup", "% of ideal", "CPU (% of one core)", "bound"]
    left = {"source", "server", "mode", "driver", "CPU (% of one core)", "bound"}
    thead = "".join(f"<th{' class=l' if h in left else ''}>{_esc(h)}</th>" for h in heads)
    body = []
    first = comparison.results[0] if comparison.results else None
    for i, (row, result) in enumerate(zip(table_rows, comparison.results, strict=True)):
        delta = diff(first, result) if first is not None and i else None
        cells = [f"<td>{i + 1}</td>"]
        if sources:
            cells.append(f'<td class="l"><code>{_esc(sources[i])}</code></td>')
        if several:
            cells.append(f'<td class="l">{_esc(row.server)}</td>')
        cells.append(
            f'<td class="l"><span class="dot" style="background:{mode_colour(row.mode, modes)}">'
            f"</span>{_esc(row.mode)}</td>"
        )
        if with_driver:
            cells.append(f'<td class="l">{_esc(row.driver)}</td>')
        cells += [f"<td>{row.concurrency}</td>", f"<td>{_esc(fmt_tps(row.tps))}</td>"]
        if deltas:
            cells.append(_delta_cell(delta.tps_pct if delta else None, higher_is_better=True))
        cells.append(f"<td>{_esc(fmt_us(row.client_us_per_txn))}</td>")
        cells += [f"<td>{_esc(fmt_ms(row.p50_ms))}</td>", f"<td>{_esc(fmt_ms(row.p99_ms))}</td>"]
        if deltas:
            cells.append(_delta_cell(delta.p99_pct if delta else None, higher_is_better=False))
        cells += [
            f"<td>{_esc(fmt_speedup(row.speedup))}</td>",
            f"<td>{_esc(fmt_pct(row.ideal_pct))}</td>",
            f'<td class="l">{_esc(fmt_cpu(row))}</td>',
            f'<td class="l">{_badge(row)}</td>',
        ]
        body.append(f"<tr>{''.join(cells)}</tr>")
    cores = ", ".join(dict.fromkeys(str(r.cpu.cores) for r in comparison.results if r.cpu))
    note = (
        f"{_esc(US_PER_TXN_HEAD)}: client CPU (dbload's process) per successful transaction,"
        " the cost of the mode and driver on this side of the wire."
        f" Speedup: throughput over the {_esc(_baseline_name(comparison))} run's."
        " % of ideal: speedup over clients,"
        " the speedup if every server wait overlapped. CPU in % of one core"
        f" ({_esc(cores or DASH)} cores on this machine)."
    )
    if deltas:
        note += " \u0394: change relative to run 1."
    return (
        f'<section><h2>Results</h2><div class="scroll"><table id="compare">'
        f"<thead><tr>{thead}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        f'<p class="note">{note}</p></section>'
    )


def _clusters(comparison: Comparison, table_rows: list[Row]) -> str:
    """--cluster runs: each one's Dask workers, as the console's table."""
    runs = comparison.results
    parts = []
    for i, (result, row) in enumerate(zip(runs, table_rows, strict=True)):
        if result.cluster is not None:
            which = f" of run {i + 1} ({row.label})" if len(runs) > 1 else ""
            parts.append(_cluster_section(result.cluster, result.duration_s, which))
    return "\n".join(parts)


def _cluster_section(cluster: ClusterInfo, duration_s: float, which: str) -> str:
    text = {0, 1, 2, len(CLUSTER_HEADS) - 1}
    thead = "".join(
        f"<th{' class=l' if i in text else ''}>{_esc(h)}</th>" for i, h in enumerate(CLUSTER_HEADS)
    )
    body = []
    for worker in cluster.workers:
        cells = [_esc(cell) for cell in cluster_cells(worker, duration_s)]
        if worker.lost:
            cells[-1] = f'<b class="worse">{cells[-1]}</b>'
        tds = "".join(
            f"<td{' class=l' if i in text else ''}>{cell}</td>" for i, cell in enumerate(cells)
        )
        body.append(f"<tr>{tds}</tr>")
    return (
        f"<section><h2>Dask workers{_esc(which)}</h2>"
        f'<p class="note">scheduler <code>{_esc(cluster.scheduler)}</code></p>'
        f'<div class="scroll"><table class="cluster"><thead><tr>{thead}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
        f'<p class="note">Each worker\'s share as it measured it. {_esc(CLUSTER_NOTE)}.</p>'
        "</section>"
    )


def _baseline_name(comparison: Comparison) -> str:
    """The speedups' baseline as the note names it: "sequential", or on the
    driver axis "first sequential (DRIVER)" (see
    :func:`dbload.measure.comparison.rows`)."""
    base = baseline(comparison.results)
    if base is None or not shows_drivers(comparison.results):
        return "sequential"
    return f"first sequential ({base.driver})"


def _delta_cell(value: float | None, *, higher_is_better: bool) -> str:
    if value is None or abs(value) < 0.05:
        return f"<td>{_esc(fmt_delta(value))}</td>"
    better = (value > 0) == higher_is_better
    return f'<td class="{"better" if better else "worse"}">{_esc(fmt_delta(value))}</td>'


def _badge(row: Row) -> str:
    css = _BOUND_CLASS.get(row.bound, "unknown")
    return f'<span class="badge {css}" title="{_esc(row.why)}">{_esc(row.bound)}</span>'


def _verdicts(table_rows: list[Row]) -> str:
    items = "".join(
        f"<li>{_badge(row)} <b>{_esc(row.label)}</b> <span class=why>{_esc(row.why)}</span></li>"
        for row in table_rows
    )
    pct = f"{NEAR_CEILING * 100:.0f} %"
    return (
        f'<section><h2>What bounded each run</h2><ul class="verdicts">{items}</ul>'
        f'<p class="note">From the CPU figures. <b>client CPU</b>: the client used {pct} of'
        " what it can (one core for sequential, threads and async, because of the GIL; one"
        f" core per process for processes). <b>server CPU</b>: the server used {pct} of one"
        f" core per client, or client and server together {pct} of all cores."
        " <b>server wait</b>: neither; the clients mostly waited on the server"
        " (round trips, disk, locks), which more concurrency can overlap.</p></section>"
    )


def _charts(figs: dict[str, Figure]) -> str:
    parts = [
        f'<figure id="chart-{_esc(name)}">{_scoped_svg(svg_text(fig), name, CAPTIONS.get(name))}'
        f"<figcaption>{_esc(CAPTIONS.get(name, ''))}</figcaption></figure>"
        for name, fig in figs.items()
    ]
    return f'<section><h2>Charts</h2><div class="charts">{"".join(parts)}</div></section>'


_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(href="#|url\(#)([^")]+)')


def _scoped_svg(svg: str, prefix: str, label: str | None) -> str:
    """Prefix every id (and reference to one) with the chart's name: several
    matplotlib SVGs in one page reuse ids such as ``patch_1``, and an id is
    resolved page-wide."""
    ids = set(_ID.findall(svg))
    svg = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = _REF.sub(
        lambda m: f"{m.group(1)}{prefix}-{m.group(2)}" if m.group(2) in ids else m.group(0), svg
    )
    aria = f' role="img" aria-label="{_esc(label)}"' if label else ""
    return svg.replace("<svg", f"<svg{aria}", 1)


def _statements(comparison: Comparison, table_rows: list[Row]) -> str:
    """The workload's statements with each run's p99, folded (it can be long)."""
    runs = comparison.results
    if not runs or not runs[0].statements:
        return ""
    # runs of another workload (dbload report A B) have other statements
    same = [i for i, r in enumerate(runs) if len(r.statements) == len(runs[0].statements)]
    heads = "".join(f"<th>{_esc(table_rows[i].label)}<br>p99 ms</th>" for i in same)
    body = []
    for i, stat in enumerate(runs[0].statements):
        p99s = "".join(f"<td>{_esc(fmt_ms(runs[j].statements[i].latency.p99))}</td>" for j in same)
        body.append(
            f'<tr><td class="l"><code>{_esc(stat.source)}:{stat.line}</code></td>'
            f"<td class=l><pre>{_esc(stat.sql)}</pre></td>{p99s}</tr>"
        )
    return (
        f"<section><details><summary>Statements ({len(runs[0].statements)})</summary>"
        f'<div class="scroll"><table><thead><tr><th class="l">where</th>'
        f'<th class="l">statement</th>{heads}</tr></thead><tbody>{"".join(body)}</tbody>'
        "</table></div></details></section>"
    )


def _environment(comparison: Comparison) -> str:
    items = "".join(
        f"<dt>{_esc(label)}</dt><dd>{_esc(value)}</dd>" for label, value in environment(comparison)
    )
    return f"<section><h2>Environment</h2><dl>{items}</dl></section>"


__all__ = ["check_out_dir", "render_html", "report_names", "write_report"]
