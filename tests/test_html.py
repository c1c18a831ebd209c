"""The HTML report: self-contained, escaped, and rendered by a real Chromium.

The browser tests need Debian's ``chromium`` (.ci/run installs it); without
it they are skipped with that reason.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
from matplotlib.image import imread

from dbload.errors import UsageError
from dbload.measure.comparison import Comparison
from dbload.report.compare_console import fmt_us
from dbload.report.html import CSP, check_out_dir, render_html, write_report
from dbload.report.json_ import to_dict, write_json
from dbload.report.load import load_any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian package `chromium`; .ci/run installs it)"
)

_FETCHING_TAGS = {"script", "link", "iframe", "frame", "object", "embed", "img", "base", "audio"}
_FETCHING_TAGS |= {"video", "source", "track", "image", "feimage", "form", "input", "picture"}
_URL_ATTRS = {"src", "href", "xlink:href", "action", "srcset", "poster", "data", "background"}


class _References(HTMLParser):
    """Tags and attributes of a page that make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _FETCHING_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            value = value or ""
            # xmlns names a namespace; nothing is fetched from it
            if name.startswith("xmlns"):
                continue
            if name in _URL_ATTRS and not value.startswith("#"):
                self.found.append(f"{name}={value}")
            self._css(value)
        self._in_style = tag == "style"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self._in_style = False

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self._css(data)

    def _css(self, css: str) -> None:
        self.found += re.findall(r"@import|@font-face", css)
        self.found += [
            f"url({m})"
            for m in re.findall(r"url\(\s*['\"]?([^)'\"]*)", css)
            if not m.startswith("#")
        ]


def external_references(page: str) -> list[str]:
    """Everything in ``page`` that could make a browser fetch something, plus
    any http(s) URL outside a namespace declaration."""
    parser = _References()
    parser.feed(page)
    parser.close()
    text = re.sub(r'\sxmlns(?::\w+)?="[^"]*"', "", page)
    return parser.found + re.findall(r"https?://[^\s\"'<>]*", text)


@pytest.fixture(scope="module")
def page(small_comparison: Comparison) -> str:
    return render_html(small_comparison)


@pytest.mark.slow
def test_the_page_has_no_external_reference(page: str) -> None:
    assert external_references(page) == []
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in page
    assert page.count("<svg") == 4  # every chart, inline


def test_the_checker_finds_external_references() -> None:
    bad = (
        '<link rel="stylesheet" href="https://cdn.example.com/x.css">'
        '<img src="logo.png"><script src="app.js"></script>'
        "<style>@import url(http://example.com/f.css)</style>"
        '<svg xmlns="http://www.w3.org/2000/svg"><use href="#ok"/></svg>'
    )
    found = external_references(bad)
    assert any("cdn.example.com" in f for f in found)
    assert "src=logo.png" in found and "src=app.js" in found and "@import" in found
    assert not any("w3.org" in f for f in found)


def test_the_page_shows_the_table_and_environment(page: str, small_comparison: Comparison) -> None:
    for heading in ("mode", "clients", "tps", "p50 ms", "p99 ms", "speedup", "% of ideal"):
        assert f">{heading}</th>" in page
    assert page.count("<tr><td>") == len(small_comparison.results)
    first = small_comparison.results[0]
    assert f"PostgreSQL {first.database.server_version}" in page
    assert first.cpu is not None and f"<dt>CPU cores</dt><dd>{first.cpu.cores}</dd>" in page
    assert "<dt>seed</dt><dd>11</dd>" in page
    assert "server wait" in page or "client CPU" in page or "server CPU" in page


def test_ids_are_unique_across_the_inline_charts(page: str) -> None:
    ids = Counter(re.findall(r'\bid="([^"]+)"', page))
    assert ids and max(ids.values()) == 1
    for ref in re.findall(r'(?:href="#|url\(#)([^")]+)', page):
        assert ref in ids, ref


@pytest.mark.slow
def test_user_text_is_escaped(small_comparison: Comparison) -> None:
    evil = '<script>alert("x")</script>'
    first = small_comparison.results[0]
    stmt = dataclasses.replace(first.statements[0], sql="SELECT 1 </pre><img src=x onerror=1>")
    runs = (dataclasses.replace(first, workload=evil, statements=(stmt,)),)
    page = render_html(Comparison(workload=evil, results=runs, created_at="now & then"))
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&lt;/pre&gt;&lt;img src=x onerror=1&gt;" in page
    assert "now &amp; then" in page
    assert external_references(page) == []


@pytest.mark.slow
def test_report_mode_shows_deltas_and_sources(small_comparison: Comparison) -> None:
    names = [f"run{i}.json" for i in range(len(small_comparison.results))]
    page = render_html(small_comparison, deltas=True, sources=names)
    assert "\u0394 tps" in page and "\u0394 p99" in page
    assert "<code>run3.json</code>" in page
    assert external_references(page) == []


@pytest.mark.slow
def test_rendering_is_deterministic(small_comparison: Comparison, page: str) -> None:
    assert render_html(small_comparison) == page


@pytest.mark.slow
def test_saved_runs_re_render_with_deltas(small_comparison: Comparison, tmp_path: Path) -> None:
    """``dbload report A.json B.json``: load, compare, write the same report."""
    files = []
    for i, result in enumerate(small_comparison.results[:2]):
        files.append(tmp_path / f"run{i}.json")
        write_json(files[-1], to_dict(result))
    runs = [r for path in files for r in load_any(path)]
    written = write_report(
        Comparison.of(runs), tmp_path / "out", deltas=True, sources=[p.name for p in files]
    )
    page = written[-1].read_text()
    assert "dbload report: select" in page and "<code>run1.json</code>" in page
    assert external_references(page) == []


@pytest.mark.slow
def test_write_report_writes_everything_atomically(
    small_comparison: Comparison, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "nested"  # created on demand
    written = write_report(small_comparison, out)
    names = sorted(p.name for p in written)
    assert names == sorted(p.name for p in out.iterdir())  # no temp file left behind
    assert {"results.json", "report.html", "throughput.svg", "latency.png"} <= set(names)
    assert written[-1].name == "report.html"
    mode = stat.S_IMODE((out / "report.html").stat().st_mode)
    assert mode & 0o600 == 0o600


def test_out_dir_under_a_file_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    with pytest.raises(UsageError) as info:
        check_out_dir(blocker / "sub")
    message = str(info.value)
    assert message.startswith(f"--out: cannot create directory {blocker / 'sub'}: ")
    assert "\n" not in message and info.value.exit_code == 2
    with pytest.raises(UsageError, match="exists and is not a directory"):
        check_out_dir(blocker)


def test_write_report_refuses_an_unwritable_out(
    small_comparison: Comparison, tmp_path: Path
) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    with pytest.raises(UsageError, match="--out: cannot create directory"):
        write_report(small_comparison, blocker / "sub")


# -- a real browser ------------------------------------------------------------


def _chromium(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with console messages logged to stderr."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="dbload-chromium-") as profile:
        return subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",  # we may be root in CI, where the sandbox refuses to start
                "--disable-gpu",
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--v=0",
                *args,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def console_messages(stderr: str) -> list[str]:
    """What the page wrote to the console: errors, CSP violations, any log."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@needs_chromium
@pytest.mark.slow
def test_console_check_catches_errors(tmp_path: Path) -> None:
    """The check below would see a broken page (a control for it)."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        f'<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<img src="http://example.invalid/x.png"><p>x</p>'
    )
    messages = console_messages(_chromium(bad.as_uri(), "--dump-dom").stderr)
    assert any("Content Security Policy" in m for m in messages), messages


@needs_chromium
@pytest.mark.slow
def test_report_renders_in_chromium_without_console_errors(
    small_comparison: Comparison, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    write_report(small_comparison, out)
    url = (out / "report.html").as_uri()

    dom = _chromium(url, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_messages(dom.stderr) == []
    assert '<table id="compare">' in dom.stdout
    assert dom.stdout.count("<svg") == 4

    shot_path = tmp_path / "screenshot.png"
    shot = _chromium(url, f"--screenshot={shot_path}", "--window-size=1200,2000")
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert console_messages(shot.stderr) == []
    pixels = imread(io.BytesIO(shot_path.read_bytes()), format="png")
    assert pixels.shape[:2] == (2000, 1200)
    assert pixels.std() > 0.05  # something was drawn, not a blank page
    if keep := os.environ.get("DBLOAD_KEEP_SCREENSHOT"):
        shutil.copy(shot_path, keep)


def test_check_out_dir_leaves_no_empty_folder_behind(tmp_path: Path) -> None:
    """The folder appears when the report is complete, not at the check before the run."""
    out = tmp_path / "reports" / "today"
    assert check_out_dir(out) == out
    assert not out.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    check_out_dir(existing)
    assert existing.is_dir() and list(existing.iterdir()) == []


def test_out_dash_is_refused() -> None:
    with pytest.raises(UsageError, match=r"^--out takes a folder"):
        check_out_dir(Path("-"))


def test_timeline_caption_says_what_is_left_out(page: str) -> None:
    assert "A last interval shorter than half the others is left out" in page


# -- the driver axis (compare --drivers) ---------------------------------------


def test_the_page_of_two_drivers_shows_them(drivers_comparison: Comparison) -> None:
    page = render_html(drivers_comparison)
    assert ">driver</th>" in page and ">client CPU \u00b5s/txn</th>" in page
    cells = re.findall(r'<td class="l">(asyncpg|psycopg)</td>', page)
    assert cells == [r.driver for r in drivers_comparison.results]
    assert "several modes and drivers" in page
    assert "throughput over the first sequential (psycopg) run" in page
    assert "<!-- async asyncpg -->" in page and "<!-- async psycopg -->" in page  # charts
    assert "async psycopg c=2" in page  # the headline, verdicts and statement columns
    for result in drivers_comparison.results:
        assert result.client_us_per_transaction is not None
        assert f"<td>{fmt_us(result.client_us_per_transaction)}</td>" in page


def test_the_page_of_one_driver_per_mode_has_no_driver_column(page: str) -> None:
    assert ">driver</th>" not in page and ">client CPU \u00b5s/txn</th>" in page
    assert "throughput over the sequential run" in page
