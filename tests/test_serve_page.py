"""``dbload serve``'s page in a real headless browser (Playwright driving
Debian's chromium; no browser is ever downloaded): a run started from the
form charts live, stops, and links its report; the history compares saved
runs; a browser that goes away mid-run leaves the run going.

Every test fails on any console error or uncaught exception of its pages:
the page is plain JavaScript under a strict CSP, and a script error there
is what a user would see as a page that does nothing.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Locator,
    Page,
    Playwright,
    Request,
    expect,
    sync_playwright,
)

from serve_helpers import live_server, wait_for_end

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT_COPY = Path("/tmp/dbload-page.png")  # for a person to look at after the run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no {CHROMIUM} (Debian package `chromium`; .ci/run installs it)",
    ),
]


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


def launch(playwright: Playwright) -> Browser:
    # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    opened = launch(playwright)
    yield opened
    opened.close()


@pytest.fixture
def server(seeded_dsn: str, tmp_path: Path) -> Iterator[str]:
    with live_server(seeded_dsn, tmp_path / "results") as url:
        yield url


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as http:
        yield http


class Errors(list[str]):
    """The console errors and uncaught exceptions of every page of a context
    (report popups included), as ``type: text`` lines; and every request to
    anywhere but the server (the page ships all it runs: no CDN)."""

    def watch(self, context: BrowserContext, server: str) -> BrowserContext:
        def request(sent: Request) -> None:
            if not sent.url.startswith((f"{server}/", "data:", "about:")):
                self.append(f"request elsewhere: {sent.url}")

        context.on("request", request)

        def console(message: ConsoleMessage) -> None:
            if message.type == "error":  # a failed fetch of the page's is one too
                self.append(f"console: {message.text} ({message.location.get('url')})")

        context.on("console", console)
        context.on("weberror", lambda error: self.append(f"pageerror: {error.error}"))
        return context

    def assert_none(self, page: Page) -> None:
        # the sync API hands events over only while it is called: a last call
        # lets those the page has just sent arrive
        page.wait_for_timeout(250)
        assert self == []


@pytest.fixture
def errors() -> Errors:
    return Errors()


@pytest.fixture
def context(browser: Browser, errors: Errors, server: str) -> Iterator[BrowserContext]:
    # after the server: closed before it, so the server never waits on an open page
    opened = errors.watch(new_context(browser), server)
    yield opened
    opened.close()


def new_context(browser: Browser) -> BrowserContext:
    # en-US: the page formats numbers with toLocaleString (18,628 tps)
    return browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-US")


def open_page(context: BrowserContext, url: str, frozen: bool = False) -> Page:
    """The page, its form filled in by its script; ``frozen``: its timers
    stopped once it is drawn (the history's refresh every 5 s comes only when
    ``page.clock.run_for`` says)."""
    page = context.new_page()
    if frozen:
        page.clock.install()
    page.goto(url)
    # the form is filled from /api/workloads and /api/modes once the script runs
    page.wait_for_selector("#workload option", state="attached")
    page.wait_for_selector("input[name=mode]", state="attached")
    if frozen:
        page.clock.pause_at(page.evaluate("Date.now()") + 1)
    return page


def saved_runs(client: httpx.Client, count: int) -> list[str]:
    """``count`` short finished runs, started over the API."""
    body = {"mode": "sequential", "transactions": 20}
    ids = [client.post("/api/runs", json=body).json()["id"] for _ in range(count)]
    for run_id in ids:
        assert wait_for_end(client, run_id)["status"] == "done"
    return ids


def pick(page: Page, run_id: str) -> Locator:
    """The history's checkbox of a saved run."""
    return page.locator(f"#runs input[name=pick][value='{run_id}']")


def fill_form(page: Page, modes: tuple[str, ...], duration: float, concurrency: int) -> None:
    page.select_option("#workload", "select")
    page.fill("#duration", str(duration))
    page.fill("#transactions", "")  # else it wins over the duration
    page.fill("#concurrency", str(concurrency))
    for box in page.locator("input[name=mode]").all():
        box.set_checked(box.get_attribute("value") in modes)


def chart_length(page: Page) -> int:
    """How much of the tps chart is drawn: the length of all its lines' paths."""
    paths = page.locator("#chart-tps path.series")
    return sum(len(paths.nth(i).get_attribute("d") or "") for i in range(paths.count()))


def run_id_of(page: Page) -> str:
    """The run the page follows (it puts ``#run=ID`` in its address)."""
    match = re.search(r"#run=([\w.-]+)$", page.url)
    assert match, page.url
    return match.group(1)


def test_the_error_watch_sees_script_errors(browser: Browser) -> None:
    """The watch every test relies on: a console.error, a thrown error and a
    rejected promise are all seen (else "no errors" would prove nothing)."""
    errors = Errors()
    context = errors.watch(new_context(browser), "http://127.0.0.1:9")
    try:
        page = context.new_page()
        page.set_content(
            "<script>console.error('logged'); Promise.reject(new Error('rejected'));"
            " setTimeout(() => { throw new Error('thrown'); }, 10);</script>"
            '<img src="http://cdn.invalid/chart.js">'
        )
        with pytest.raises(AssertionError):
            errors.assert_none(page)
    finally:
        context.close()
    assert any(line.startswith("console: logged") for line in errors)
    assert {"pageerror: rejected", "pageerror: thrown"} <= set(errors)
    assert "request elsewhere: http://cdn.invalid/chart.js" in errors


def test_a_run_from_the_page_charts_live_stops_and_links_its_report(
    context: BrowserContext, server: str, errors: Errors, tmp_path: Path
) -> None:
    page = open_page(context, server)
    # two modes of 6 s each, so that the run is still going when it is stopped
    fill_form(page, ("sequential", "async"), duration=6, concurrency=4)
    page.click("#start")

    status = page.locator("#status")
    expect(status).to_have_text(re.compile(r"^running"), timeout=20_000)
    expect(status).to_have_class("status running")
    page.wait_for_selector("#chart-tps path.series", timeout=15_000)
    # the charts move: a snapshot a second adds to the lines
    before = chart_length(page)
    page.wait_for_timeout(1_500)
    after = chart_length(page)
    assert after > before, f"the tps chart did not grow in 1.5 s ({before} -> {after})"
    # the cell table shows the current tps as a number, not the dash of no data
    tps = page.locator("#cells tbody tr").first.locator("td").nth(2)
    expect(tps).to_have_text(re.compile(r"^\d[\d,.]*$"))
    page.locator("#chart-p99 path.series").first.wait_for(state="attached")

    page.click("#stop")
    expect(status).to_have_class("status stopped", timeout=30_000)
    expect(status).to_have_text(re.compile(r"^stopped"))
    link = page.locator("#report-link a")
    expect(link).to_be_visible(timeout=10_000)
    # the stopped run is in the history, with its partial result saved
    run_id = run_id_of(page)
    row = page.locator("#runs tbody tr", has_text=run_id)
    expect(row).to_contain_text("stopped", timeout=10_000)

    shot = tmp_path / "dbload-page.png"
    page.screenshot(path=str(shot), full_page=True)
    shutil.copyfile(shot, SCREENSHOT_COPY)
    print(f"\nscreenshot of the page: {shot} (a copy: {SCREENSHOT_COPY})")

    with page.expect_popup() as popup_info:  # target=_blank: the report opens beside the page
        link.click()
    report = popup_info.value
    report.wait_for_load_state()
    assert report.url.endswith(f"/runs/{run_id}/report")
    assert "dbload" in report.content()
    errors.assert_none(report)


def test_the_history_compares_two_saved_runs(
    context: BrowserContext, server: str, client: httpx.Client, errors: Errors
) -> None:
    # a stopped run and two short finished ones, started over the API
    long = client.post("/api/runs", json={"mode": "sequential", "duration": 60}).json()["id"]
    deadline = time.monotonic() + 30
    while client.get(f"/api/runs/{long}").json()["status"] != "running":
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.1)
    assert client.post(f"/api/runs/{long}/stop").status_code == 202
    assert wait_for_end(client, long)["status"] == "stopped"
    done = saved_runs(client, 2)

    # frozen: the history's refresh would rebuild the table between the ticks
    page = open_page(context, server, frozen=True)
    rows = page.locator("#runs tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#runs tbody tr", has_text=long)).to_contain_text("stopped")
    diff = page.locator("#diff")
    expect(diff).to_be_disabled()
    pick(page, done[0]).check()
    expect(diff).to_be_disabled()  # one run is nothing to compare
    pick(page, done[1]).check()
    expect(diff).to_be_enabled()

    with page.expect_popup() as popup_info:
        diff.click()
    report = popup_info.value
    report.wait_for_load_state()
    assert all(f"ids={run_id}" in report.url for run_id in done), report.url
    assert "dbload" in report.content()
    errors.assert_none(report)


def test_ticked_runs_stay_ticked_when_the_history_refreshes(
    context: BrowserContext, server: str, client: httpx.Client, errors: Errors
) -> None:
    done = saved_runs(client, 2)
    page = open_page(context, server, frozen=True)
    for run_id in done:
        pick(page, run_id).check()
    expect(page.locator("#diff")).to_be_enabled()
    # the refresh: once it has rebuilt the table, none of the rows marked now is left
    page.evaluate("document.querySelectorAll('#runs tbody tr').forEach(r => r.dataset.stale = 1)")
    page.clock.run_for(5_000)
    expect(page.locator("#runs tbody tr[data-stale]")).to_have_count(0)
    expect(page.locator("#runs tbody tr")).to_have_count(2)
    for run_id in done:
        expect(pick(page, run_id)).to_be_checked()
    expect(page.locator("#diff")).to_be_enabled()
    errors.assert_none(page)


def test_a_browser_closed_mid_run_leaves_the_run_going(
    playwright: Playwright, server: str, client: httpx.Client, tmp_path: Path
) -> None:
    # a browser of its own: closing it is the point
    browser = launch(playwright)
    errors = Errors()
    context = errors.watch(new_context(browser), server)
    try:
        page = open_page(context, server)
        fill_form(page, ("sequential",), duration=6, concurrency=2)
        page.click("#start")
        expect(page.locator("#status")).to_have_text(re.compile(r"^running"), timeout=20_000)
        run_id = run_id_of(page)
        errors.assert_none(page)
    finally:
        browser.close()  # the event stream drops mid-run, with no goodbye
    assert client.get(f"/api/runs/{run_id}").json()["status"] == "running"
    view = wait_for_end(client, run_id)
    assert view["status"] == "done", view["error"]
    assert view["saved"]
    assert (tmp_path / "results" / f"{run_id}.json").is_file()
