"""``dbload serve`` and ``run --dashboard`` on a real uvicorn, over real HTTP,
against the session database.

Nothing is mocked but one injected bug (a run's internal error): the app is
served by uvicorn on a loopback port, the client is httpx, the event stream
is read as a browser reads it, and the commands run as subprocesses where
their signals and exit codes are what is tested.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from dbload.serve import runs as runs_module
from dbload.serve.app import AppSettings, create_app
from dbload.serve.config import DEFAULT_PORT, TargetSpec
from dbload.serve.request import RunRequest, check_request
from dbload.serve.runs import ENDED, Runs
from dbload.serve.store import ResultsDir
from dbload.serve.targets import Targets
from serve_helpers import live_server, serving
from test_cli import _cli

# a read-only script of the server's --workloads folder: runs leave the data as it was
MINE = (
    "\\set aid random(1, 100000 * :scale)\n"
    "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n"
)
SECRET_DSN = "postgresql://u:secret@h/db"
TOKEN = "s3cret"
DBLOAD = [sys.executable, "-m", "dbload"]


# -- the server under test ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Served:
    url: str
    runs: Runs
    results: Path
    client: httpx.Client


@pytest.fixture(scope="module")
def served(seeded_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the module: two names for the same database (runs queue
    per target name, so ``other`` is a second queue) and a --workloads folder."""
    root = tmp_path_factory.mktemp("serve")
    folder = root / "workloads"
    folder.mkdir()
    (folder / "mine.sql").write_text(MINE)
    results = root / "results"
    targets = Targets((TargetSpec("main", seeded_dsn), TargetSpec("other", seeded_dsn)))
    runs = Runs(targets, ResultsDir(results))
    try:
        app = create_app(runs, AppSettings(workloads_dir=folder))
        with serving(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            yield Served(url, runs, results, client)
    finally:
        runs.close()
        targets.close()


@pytest.fixture
def server(served: Served) -> Iterator[Served]:
    """The module's server, with no run left going after the test: a failed
    test must not hold a target's queue (or the database) for the next one."""
    yield served
    left = [state for state in served.runs.current() if not state.ended.is_set()]
    for state in left:
        state.stop.set()
    for state in left:
        assert state.ended.wait(60), f"run {state.id} did not end after its stop"


# -- helpers ------------------------------------------------------------------------


def start(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/api/runs", json=body)
    assert response.status_code == 202, response.text
    started: dict[str, Any] = response.json()
    return started


def view(client: httpx.Client, run_id: str) -> dict[str, Any]:
    response = client.get(f"/api/runs/{run_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def wait_for(
    client: httpx.Client,
    run_id: str,
    until: Callable[[dict[str, Any]], bool],
    timeout: float = 60.0,
    what: str = "the condition",
) -> dict[str, Any]:
    """The run's view once ``until`` holds for it, polled every 0.1 s."""
    deadline = time.monotonic() + timeout
    while True:
        now = view(client, run_id)
        if until(now):
            return now
        assert time.monotonic() < deadline, f"{what} within {timeout} s: {now['status']}"
        time.sleep(0.1)


def ended(client: httpx.Client, run_id: str, timeout: float = 60.0) -> dict[str, Any]:
    return wait_for(client, run_id, lambda v: v["status"] in ENDED, timeout, "the run's end")


def points(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every cell's points in a view or an event, cell after cell."""
    return [point for cell in data["cells"] for point in cell["points"]]


def has_point(data: dict[str, Any]) -> bool:
    return bool(points(data))


def saved(server: Served, run_id: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((server.results / f"{run_id}.json").read_text())
    return document


def one_line_error(response: httpx.Response, status: int, *needles: str) -> str:
    """The error body every refusal has: ``{"error": "one line"}`` naming what is wrong."""
    assert response.status_code == status, response.text
    line = response.json()["error"]
    assert isinstance(line, str) and line.strip() and "\n" not in line, line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    data: dict[str, Any]
    at: float  # time.monotonic() when it arrived


def sse(response: httpx.Response) -> Iterator[Event]:
    """Server-Sent Events as a browser's EventSource parses them."""
    kind = "message"
    data: list[str] = []
    for line in response.iter_lines():
        if not line:
            if data:
                yield Event(kind, json.loads("\n".join(data)), time.monotonic())
            kind, data = "message", []
        elif line.startswith("event:"):
            kind = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").removeprefix(" "))


def same_shape(ours: dict[str, Any], cli: dict[str, Any], where: str) -> None:
    """The same keys, and the same keys one level down wherever both hold an object."""
    assert set(ours) == set(cli), (where, set(ours) ^ set(cli))
    for key, value in ours.items():
        if isinstance(value, dict) and isinstance(cli[key], dict):
            assert set(value) == set(cli[key]), (f"{where}.{key}", set(value) ^ set(cli[key]))


class Child:
    """A subprocess whose stdout and stderr are read line by line from
    threads, so that a test can wait for a line with a timeout."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            # a terminal's Ctrl-C: Python's own handler, even when this suite runs
            # in the background (a shell's & hands its children SIGINT ignored)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(name, stream, kept), daemon=True)
            for name, stream, kept in (
                ("out", self.proc.stdout, self.out),
                ("err", self.proc.stderr, self.err),
            )
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str, stream: Any, kept: list[str]) -> None:
        for line in stream:
            kept.append(line)
            self._lines.put((name, line))

    def line(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """The first new line of stdout or stderr matching ``pattern``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                _, line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if found := re.search(pattern, line):
                return found
        raise AssertionError(f"no line like {pattern!r}: {''.join(self.out + self.err)}")

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        return code

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@contextmanager
def child(args: list[str], env: dict[str, str]) -> Iterator[Child]:
    started = Child(args, env)
    try:
        yield started
    finally:
        started.kill()  # only when a test failed before the child ended


def child_env(tmp_path: Path) -> dict[str, str]:
    """The children's environment: dbload's data folder (the default results
    folder) in ``tmp_path``, never the real home; no token from the caller's."""
    env = {k: v for k, v in os.environ.items() if k != "DBLOAD_SERVE_TOKEN"}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env["COLUMNS"] = "250"  # no line of the children's chatter wraps
    return env


def dbload_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``dbload ARGS`` as a user runs it, to its end, in the children's environment."""
    return subprocess.run(
        [*DBLOAD, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(tmp_path),
        check=False,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cli_json(*args: str) -> dict[str, Any]:
    """What ``dbload ... --json -`` prints, run as a user runs it."""
    done = subprocess.run(
        [*DBLOAD, *args, "--json", "-"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


@pytest.fixture(scope="module")
def cli_documents(seeded_dsn: str) -> dict[str, dict[str, Any]]:
    """The CLI's own --json documents for a tiny run and a tiny comparison:
    the schema the server's results must have."""
    return {
        "compare": cli_json("compare", "--dsn", seeded_dsn, "--modes", "async", "-c", "2",
                            "-n", "20"),
        "run": cli_json("run", "--dsn", seeded_dsn, "-n", "20"),
    }  # fmt: skip


# -- end to end -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_comparison_streams_each_second_and_keeps_the_clis_result(
    server: Served, cli_documents: dict[str, dict[str, Any]]
) -> None:
    posted = time.monotonic()
    started = start(server.client, modes=["sequential", "async"], concurrency=4, duration=2)
    assert started["url"] == f"/api/runs/{started['id']}"
    events: list[Event] = []
    with server.client.stream("GET", started["events"]) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in sse(response):
            events.append(event)
            if event.kind == "final":
                break
    first_event = events[0].at - posted
    first_point = next(e.at for e in events if has_point(e.data)) - posted
    print(f"\nPOST -> first SSE event {first_event * 1000:.0f} ms;"
          f" POST -> first event with a point {first_point:.2f} s")  # fmt: skip

    assert [e.kind for e in events[:-1]] == ["snapshot"] * (len(events) - 1)
    assert events[-1].kind == "final" and events[-1].data["status"] == "done"
    # two cells of 2 s: a snapshot a second, no burst and no stall
    gaps = [b.at - a.at for a, b in itertools.pairwise(events[:-1])]
    assert len(gaps) >= 3, gaps
    assert 0.8 <= statistics.median(gaps) <= 1.3, gaps
    assert max(gaps) < 2.0, gaps
    streamed = points({"cells": [c for e in events for c in e.data["cells"]]})
    assert len(streamed) >= 3 and all(p["tps"] > 0 for p in streamed), streamed

    # each event carries the points after those already sent: together, the view's
    final = view(server.client, started["id"])
    for index, cell in enumerate(final["cells"]):
        got: list[dict[str, Any]] = []
        for event in events:
            sent = event.data["cells"][index]
            assert sent["points_from"] == len(got)
            got += sent["points"]
        assert got == cell["points"]
        assert cell["state"] == "done"

    result = final["result"]
    assert final["status"] == "done" and final["saved"] is True
    assert result == saved(server, started["id"])
    cli = cli_documents["compare"]
    same_shape(result, cli, "compare")
    assert result["schema"] == cli["schema"]
    assert [(r["mode"], r["concurrency"]) for r in result["runs"]] == [
        ("sequential", 1),
        ("async", 4),
    ]
    for run in result["runs"]:
        same_shape(run, cli["runs"][0], "compare.runs[]")
    assert [c["mode"] for c in final["summary"]] == ["sequential", "async"]


@pytest.mark.slow
def test_a_single_mode_runs_a_folder_script_with_the_run_json_schema(
    server: Served, cli_documents: dict[str, dict[str, Any]]
) -> None:
    listed = server.client.get("/api/workloads").json()
    assert {"name": "mine.sql", "source": "folder"}.items() <= next(
        w for w in listed if w["name"] == "mine.sql"
    ).items()
    started = start(server.client, workload="mine.sql", mode="async", concurrency=2,
                    transactions=200)  # fmt: skip
    final = ended(server.client, started["id"])
    assert final["status"] == "done", final["error"]
    result = final["result"]
    assert result == saved(server, started["id"])
    same_shape(result, cli_documents["run"], "run")
    assert result["schema"] == cli_documents["run"]["schema"]
    assert result["transactions"]["ok"] == 200 and result["workload"] == "mine"


@pytest.mark.slow
def test_the_live_points_are_the_results_seconds(server: Served) -> None:
    # ~10k tps here would take 3000 transactions in a third of a second,
    # before the first point; an open-loop 1000 tps spreads them over 3 s
    started = start(server.client, mode="async", concurrency=2, transactions=3000, rate=1000)
    final = ended(server.client, started["id"])
    assert final["status"] == "done", final["error"]
    result = final["result"]
    assert result["transactions"]["ok"] == 3000
    live = points(final)
    series = result["series"]  # the per-second series the --json file keeps
    assert len(series) >= 3
    times = [p["t"] for p in live]
    assert times == sorted(set(times)), times
    # a point per second of the series, in step with it; the run's last, partial
    # second may be left out (a few ms of stragglers is no rate to chart)
    assert len(live) in (len(series), len(series) - 1), (times, series)
    assert times == [s["t"] for s in series[: len(live)]]


@pytest.mark.slow
def test_a_stopped_run_keeps_and_saves_its_partial_result(server: Served) -> None:
    started = start(server.client, mode="async", concurrency=2, duration=30)
    wait_for(server.client, started["id"], has_point, 30, "a first point")
    asked = time.monotonic()
    response = server.client.post(f"/api/runs/{started['id']}/stop")
    assert response.status_code == 202, response.text
    assert response.json()["stopping"] is True
    final = ended(server.client, started["id"], timeout=10)
    print(f"\nstop -> ended {time.monotonic() - asked:.2f} s")
    assert final["status"] == "stopped"
    assert final["result"]["interrupted"] is True
    assert final["result"]["duration_s"] < 30
    assert final["saved"] is True and saved(server, started["id"]) == final["result"]
    one_line_error(server.client.post(f"/api/runs/{started['id']}/stop"), 409, "ended")


def started_ahead(client: httpx.Client, duration: float) -> dict[str, Any]:
    """A run on ``main`` that has left the queue: the next one waits behind it."""
    ahead = start(client, mode="async", concurrency=2, duration=duration)
    wait_for(client, ahead["id"], lambda v: v["status"] != "queued", 30, "the first run's start")
    return ahead


@pytest.mark.slow
def test_runs_queue_per_target_and_another_target_is_not_held_up(server: Served) -> None:
    client = server.client
    first = started_ahead(client, duration=4)
    second = start(client, mode="async", concurrency=2, duration=1)
    assert (second["status"], second["queue_position"]) == ("queued", 0)
    elsewhere = start(client, target="other", mode="async", concurrency=2, duration=1)

    # the other target's run measures while main's first one still runs
    wait_for(client, elsewhere["id"], has_point, 30, "a point on the other target")
    assert view(client, first["id"])["status"] == "running"
    waiting = view(client, second["id"])
    assert (waiting["status"], waiting["queue_position"]) == ("queued", 0)
    main = next(t for t in client.get("/api/targets").json() if t["name"] == "main")
    assert (main["running"], main["queued"]) == ([first["id"]], [second["id"]])

    # the second is read before the first: had it left the queue while the
    # first still ran, some poll would see it so
    while (behind := view(client, second["id"]))["status"] not in ENDED:
        ahead = view(client, first["id"])
        if behind["status"] != "queued" or has_point(behind):
            assert ahead["status"] in ENDED, (behind["status"], ahead["status"])
        time.sleep(0.05)
    for run in (first, second, elsewhere):
        assert ended(client, run["id"])["status"] == "done"


@pytest.mark.slow
def test_a_browser_closing_the_stream_leaves_the_run_going(server: Served) -> None:
    started = start(server.client, mode="async", concurrency=2, duration=2)
    with server.client.stream("GET", started["events"]) as response:
        first = next(sse(response))
    assert first.kind == "snapshot"
    # the connection is closed mid-run; the run does not notice
    final = ended(server.client, started["id"])
    assert final["status"] == "done" and final["saved"] is True
    assert saved(server, started["id"])["transactions"]["ok"] > 0
    # and a stream opened once the run has ended gets its final event at once
    with server.client.stream("GET", started["events"]) as response:
        assert [e.kind for e in sse(response)] == ["final"]


@pytest.mark.slow
def test_history_lists_this_servers_runs_and_files_copied_in(
    server: Served, seeded_dsn: str, tmp_path: Path
) -> None:
    written = tmp_path / "by-hand.json"
    code, _, err = _cli("run", "--dsn", seeded_dsn, "-n", "20", "--json", str(written))
    assert code == 0, err
    shutil.copy(written, server.results / "copied-by-hand.json")
    started = start(server.client, workload="mine.sql", mode="async", transactions=50)
    assert ended(server.client, started["id"])["status"] == "done"

    listed = {entry["id"]: entry for entry in server.client.get("/api/runs").json()}
    ours, copied = listed[started["id"]], listed["copied-by-hand"]
    assert (ours["status"], ours["target"], ours["workload"]) == ("done", "main", "mine.sql")
    assert (copied["status"], copied["workload"], copied["saved"]) == ("saved", "select", True)
    assert copied["interrupted"] is False
    shown = view(server.client, "copied-by-hand")
    assert shown["status"] == "saved" and shown["result"] == json.loads(written.read_text())

    report = server.client.get(f"/runs/{started['id']}/report")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "mine" in report.text
    diff = server.client.get("/report", params=[("ids", started["id"]), ("ids", "copied-by-hand")])
    assert diff.status_code == 200 and diff.headers["content-type"].startswith("text/html")
    assert "copied-by-hand.json" in diff.text
    assert server.client.get("/runs/no-such-run/report").status_code == 404


# -- bad input: refused before anything is queued, in one line -------------------------


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"target": "nowhere"}, 400, "nowhere"),
        ({"workload": "nothing.sql"}, 400, "nothing.sql"),
        ({"workload": "../workloads/mine.sql"}, 400, "../workloads/mine.sql"),
        ({"mode": "fibers"}, 400, "fibers"),
        ({"modes": ["async", "fibers"]}, 400, "fibers"),
        ({"mode": "async", "driver": "odbc"}, 400, "odbc"),
        ({"concurrency": -1}, 422, "concurrency"),
        ({"concurrency": 10**9}, 422, "concurrency"),
        ({"concurrency": [2, 0]}, 422, "concurrency"),
        ({"mode": "async", "modes": ["async"]}, 400, "not both"),
        ({"duration": 0}, 422, "duration"),
        ({"cores": 4}, 422, "cores"),
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else None,
)
def test_a_bad_request_is_refused_in_one_line(
    server: Served, body: dict[str, Any], status: int, needle: str
) -> None:
    before = len(server.runs.current())
    one_line_error(server.client.post("/api/runs", json=body), status, needle)
    assert len(server.runs.current()) == before


def test_a_dsn_in_the_body_is_refused_and_not_echoed(server: Served) -> None:
    response = server.client.post("/api/runs", json={"dsn": SECRET_DSN})
    one_line_error(response, 422, "DSN")
    assert "detail" in response.json()
    # neither the DSN, nor its password, anywhere in what is sent back
    assert SECRET_DSN not in response.text and "secret" not in response.text


def test_a_target_that_is_a_dsn_is_refused_and_not_echoed(server: Served) -> None:
    response = server.client.post("/api/runs", json={"target": SECRET_DSN})
    one_line_error(response, 422, "DSN")
    assert "secret" not in response.text


@pytest.mark.parametrize("field", ["modes", "drivers"])
def test_a_dsn_inside_a_list_is_not_echoed(server: Served, field: str) -> None:
    # the password must not come back in the one line that says what is unknown
    response = server.client.post("/api/runs", json={field: [SECRET_DSN]})
    assert response.status_code in (400, 422), response.text
    assert "secret" not in response.text, response.text


def test_more_clients_than_the_server_allows_fail_in_one_line(server: Served) -> None:
    # valid for the schema (at most 10 000), too many for max_connections: the
    # run fails in its preparation, before it opens a connection, saying why
    started = start(server.client, mode="async", concurrency=5000, duration=1)
    final = ended(server.client, started["id"], timeout=30)
    assert final["status"] == "failed" and final["result"] is None
    error = final["error"]
    assert "\n" not in error and "5000" in error and "max_connections" in error, error


def test_stopping_an_ended_or_unknown_run_is_refused(server: Served) -> None:
    started = start(server.client, mode="async", concurrency=2, transactions=20)
    assert ended(server.client, started["id"], timeout=30)["status"] == "done"
    one_line_error(server.client.post(f"/api/runs/{started['id']}/stop"), 409, started["id"])
    one_line_error(server.client.post("/api/runs/no-such-run/stop"), 404, "no-such-run")
    one_line_error(server.client.get("/api/runs/no-such-run"), 404, "no-such-run")
    one_line_error(server.client.get("/api/runs/no-such-run/events"), 404, "no-such-run")


@pytest.mark.slow
def test_stopping_a_queued_run_drops_it_at_once(server: Served) -> None:
    # "a queued run is dropped": it must not wait, shown as queued, for the
    # run ahead of it to end before it says it is stopped
    client = server.client
    ahead = started_ahead(client, duration=30)
    behind = start(client, mode="async", concurrency=2, transactions=20)
    assert behind["status"] == "queued"
    assert client.post(f"/api/runs/{behind['id']}/stop").status_code == 202
    dropped = ended(client, behind["id"], timeout=5)
    assert dropped["status"] == "stopped" and dropped["result"] is None
    # the run ahead goes on (it may still be connecting its clients)
    assert view(client, ahead["id"])["status"] in ("preparing", "running")
    one_line_error(client.post(f"/api/runs/{behind['id']}/stop"), 409, behind["id"])
    assert client.post(f"/api/runs/{ahead['id']}/stop").status_code == 202
    assert ended(client, ahead["id"])["status"] == "stopped"


def test_a_bug_in_one_run_does_not_stall_its_target(
    seeded_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the one injected fault: an error dbload does not know (a bug) in the
    # first run; the server outlives it, and so must the target's queue
    real = runs_module._run
    calls: list[int] = []

    def buggy_once(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real(*args)

    monkeypatch.setattr(runs_module, "_run", buggy_once)
    targets = Targets((TargetSpec("main", seeded_dsn),))
    runs = Runs(targets, ResultsDir(tmp_path))
    try:
        job = check_request(
            RunRequest.model_validate({"mode": "async", "concurrency": 2, "transactions": 20}),
            "main",
            None,
        )
        first = runs.submit(job)
        assert first.ended.wait(30)
        assert (first.status, first.error) == ("failed", "internal error: RuntimeError: boom")
        second = runs.submit(job)
        assert second.ended.wait(15), "the target's queue died with the first run's bug"
        assert second.status == "done", second.error
    finally:
        runs.close()
        targets.close()


# -- who may call ------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(served: Served) -> Iterator[str]:
    """A second app on the same runs, asking for a token."""
    with serving(create_app(served.runs, AppSettings(token=TOKEN))) as url:
        yield url


def test_a_token_is_asked_for_by_header_or_cookie(guarded: str) -> None:
    with httpx.Client(base_url=guarded, timeout=30) as client:
        one_line_error(client.get("/api/targets"), 401, "token")
        wrong = client.get("/api/targets", headers={"Authorization": "Bearer nope"})
        one_line_error(wrong, 401, "token")
        assert wrong.headers["www-authenticate"] == "Bearer"
        right = client.get("/api/targets", headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 200 and [t["name"] for t in right.json()] == ["main", "other"]
        one_line_error(client.post("/api/runs", json={"mode": "async"}), 401, "token")
        one_line_error(client.get("/?token=nope"), 401, "token")
        assert "dbload_token" not in client.cookies

    # a browser: /?token= once sets the cookie the page and its event stream send
    with httpx.Client(base_url=guarded, timeout=30) as browser:
        opened = browser.get(f"/?token={TOKEN}")
        assert opened.status_code == 303 and opened.headers["location"] == "/"
        assert "httponly" in opened.headers["set-cookie"].lower()
        assert browser.get("/api/targets").status_code == 200
        assert browser.get("/").status_code == 200


@pytest.mark.parametrize("given", ["Bearer \u00e9t\u00e9", "Bearer s3cret\u00e9"])
def test_a_token_that_is_not_ascii_is_a_wrong_token(guarded: str, given: str) -> None:
    # a wrong token, whatever its characters: 401, never a server error
    with httpx.Client(base_url=guarded, timeout=30) as client:
        header = client.get("/api/targets", headers={b"Authorization": given.encode()})
        one_line_error(header, 401, "token")
        query = client.get("/", params={"token": given.removeprefix("Bearer ")})
        one_line_error(query, 401, "token")


def test_another_sites_page_is_refused(server: Served) -> None:
    evil = server.client.post(
        "/api/runs", json={"mode": "async"}, headers={"Origin": "http://evil.example"}
    )
    one_line_error(evil, 403, "http://evil.example")
    # the page's own origin passes the guard (and is then refused for its workload)
    own = server.client.post(
        "/api/runs", json={"workload": "nothing.sql"}, headers={"Origin": server.url}
    )
    one_line_error(own, 400, "nothing.sql")


def test_a_rebound_host_name_is_refused(server: Served) -> None:
    # DNS rebinding: another site's name made to resolve to 127.0.0.1; its
    # page's Origin then matches the Host it sends, and only the Host
    # header tells the loopback server that it is not being asked as itself
    port = httpx.URL(server.url).port
    rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    assert server.client.get("/api/runs", headers=rebound).status_code in (400, 403, 421)
    as_localhost = {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}
    assert server.client.get("/api/targets", headers=as_localhost).status_code == 200


# -- the command line ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--host", "0.0.0.0"], "--token"),
        (["--target", "bad"], "--target"),
        (["--port", "70000"], "--port"),
    ],
    ids=["reachable-without-token", "target-without-dsn", "port-out-of-range"],
)
def test_serve_refuses_bad_options_in_one_line(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    done = dbload_cli(tmp_path, "serve", *args, "--results", str(tmp_path / "results"))
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("dbload: error: ") and needle in lines[0], lines[0]
    assert done.stdout == ""  # it never got as far as listening


class Watcher(threading.Thread):
    """A page's event stream, read to its end from a thread of its own."""

    def __init__(self, client: httpx.Client, path: str) -> None:
        super().__init__(daemon=True)
        self.events: list[Event] = []
        self.connected = threading.Event()  # its first event has arrived
        self._client, self._path = client, path
        self.start()

    def run(self) -> None:
        try:
            with self._client.stream("GET", self._path) as response:
                for event in sse(response):
                    self.events.append(event)
                    self.connected.set()
        except httpx.HTTPError:  # cut off: the events so far tell
            pass
        finally:
            self.connected.set()


@pytest.mark.slow
def test_ctrl_c_stops_the_server_and_saves_the_running_runs_partial_result(
    seeded_dsn: str, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    args = [*DBLOAD, "serve", "--target", f"main={seeded_dsn}", "--results", str(results),
            "--port", "0"]  # fmt: skip
    with child(args, child_env(tmp_path)) as proc:
        url = proc.line(r"^dbload serve: (http://127\.0\.0\.1:\d+)\s").group(1)
        with httpx.Client(base_url=url, timeout=30) as client:
            started = start(client, mode="async", concurrency=2, duration=30)
            wait_for(client, started["id"], has_point, 30, "a first point")
            # a page watching the run: its stream is given its final event
            watcher = Watcher(client, started["events"])
            assert watcher.connected.wait(10) and watcher.events
            interrupted = time.monotonic()
            proc.proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=15)
            print(f"\nSIGINT -> exit {time.monotonic() - interrupted:.2f} s")
            watcher.join(5)
    assert code == 130, proc.stderr
    assert watcher.events and watcher.events[-1].kind == "final", watcher.events
    assert watcher.events[-1].data["status"] == "stopped"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("dbload: error: interrupted"), lines[0]
    kept = json.loads((results / f"{started['id']}.json").read_text())
    assert kept["interrupted"] is True and kept["transactions"]["ok"] > 0
    assert f"partial result saved: {started['id']}" in "".join(proc.out)


@contextmanager
def dashboard_run(
    seeded_dsn: str, tmp_path: Path, seconds: float, *more: str
) -> Iterator[tuple[Child, str]]:
    """``dbload run --dashboard PORT -T seconds``; the child and the page's base URL."""
    port = free_port()
    args = [*DBLOAD, "run", "--dashboard", str(port), "-T", str(seconds), "--dsn", seeded_dsn,
            "-m", "async", "-c", "2", *more]  # fmt: skip
    with child(args, child_env(tmp_path)) as proc:
        found = proc.line(r"dashboard: (http://127\.0\.0\.1:\d+)/#run=(\S+)")
        assert found.group(1) == f"http://127.0.0.1:{port}"
        yield proc, found.group(1)


def dashboard_saved(tmp_path: Path) -> list[dict[str, Any]]:
    """The results the dashboard kept in its default folder (the child's XDG_DATA_HOME)."""
    folder = tmp_path / "data" / "dbload" / "runs"
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


@pytest.mark.slow
def test_run_dashboard_shows_the_one_cli_run_and_exits_with_it(
    seeded_dsn: str, tmp_path: Path
) -> None:
    with dashboard_run(seeded_dsn, tmp_path, 3) as (proc, url):
        with httpx.Client(base_url=url, timeout=30) as client:
            listed = client.get("/api/runs").json()
            assert len(listed) == 1, listed
            run_id = listed[0]["id"]
            with client.stream("GET", f"/api/runs/{run_id}/events") as response:
                events = []
                for event in sse(response):
                    events.append(event)
                    if has_point(event.data) or event.kind == "final":
                        break
            assert [e.kind for e in events] == ["snapshot"] * len(events), events
            assert all(p["tps"] > 0 for e in events for p in points(e.data))
            refused = client.post("/api/runs", json={"mode": "async"})
            one_line_error(refused, 409, "dashboard shows one CLI run")
        code = proc.wait(timeout=30)
    assert code == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    kept = dashboard_saved(tmp_path)
    assert len(kept) == 1 and kept[0]["interrupted"] is False
    assert kept[0]["transactions"]["ok"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("where", ["before-other-options", "last"])
def test_dashboard_without_a_port_uses_the_default_one(
    seeded_dsn: str, tmp_path: Path, where: str
) -> None:
    # `--dashboard [PORT]`: alone, it neither takes the next option for its
    # port nor asks for one; it listens on 8642
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", DEFAULT_PORT))
    except OSError:
        pytest.skip(f"port {DEFAULT_PORT} is taken on this machine")
    rest = ["-T", "1", "--dsn", seeded_dsn, "-m", "async", "-c", "2"]
    args = ["--dashboard", *rest] if where == "before-other-options" else [*rest, "--dashboard"]
    done = dbload_cli(tmp_path, "run", *args)
    assert done.returncode == 0, done.stderr
    assert f"dashboard: http://127.0.0.1:{DEFAULT_PORT}/#run=" in done.stderr


@pytest.mark.slow
def test_the_dashboards_stop_stops_the_cli_run_as_ctrl_c_would(
    seeded_dsn: str, tmp_path: Path
) -> None:
    # the API must not answer "stopping" and let the CLI's run go on whole:
    # the page's Stop ends it early, partial result kept, exit 130
    with dashboard_run(seeded_dsn, tmp_path, 4) as (proc, url):
        with httpx.Client(base_url=url, timeout=30) as client:
            run_id = client.get("/api/runs").json()[0]["id"]
            wait_for(client, run_id, has_point, 30, "a first point")
            asked = client.post(f"/api/runs/{run_id}/stop")
        code = proc.wait(timeout=30)
    assert asked.status_code == 202, asked.text
    assert code == 130, proc.stderr
    assert "stopped from the dashboard" in proc.stderr and "Traceback" not in proc.stderr
    kept = dashboard_saved(tmp_path)
    assert len(kept) == 1
    assert kept[0]["interrupted"] is True and kept[0]["duration_s"] < 3.5


@pytest.mark.slow
def test_dashboard_keep_keeps_the_page_after_the_run_until_ctrl_c(
    seeded_dsn: str, tmp_path: Path
) -> None:
    with dashboard_run(seeded_dsn, tmp_path, 1, "--dashboard-keep") as (proc, url):
        proc.line(r"the dashboard stays up")  # printed once the run has ended
        assert "tps" in "".join(proc.out)  # its report already printed
        with httpx.Client(base_url=url, timeout=30) as client:
            (kept,) = client.get("/api/runs").json()
            assert kept["status"] == "done" and kept["saved"] is True
            assert client.get(f"/runs/{kept['id']}/report").status_code == 200
        proc.proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    # the report came before the page stayed up, not after the Ctrl-C
    assert proc.out and "tps" in "".join(proc.out)


def test_a_target_that_does_not_answer_fails_its_run_in_one_line(tmp_path: Path) -> None:
    # port 1: nothing listens; the suite's DBLOAD_CONNECT_TIMEOUT=0 makes it fail at once
    dsn = "postgresql://postgres:secret@127.0.0.1:1/nowhere"
    with live_server(dsn, tmp_path) as url, httpx.Client(base_url=url, timeout=30) as client:
        started = start(client, mode="async", concurrency=2, transactions=10)
        view = ended(client, started["id"], timeout=30)
        listed = client.get("/api/targets").text
    assert view["status"] == "failed" and view["result"] is None
    assert view["error"] and "\n" not in view["error"] and "127.0.0.1" in view["error"]
    assert "secret" not in view["error"] and "secret" not in listed
    assert not list(tmp_path.glob("*.json"))  # nothing saved that looks like a run


@pytest.mark.slow
def test_a_dashboard_port_taken_or_out_of_range_is_one_line(
    seeded_dsn: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        for given, says in ((str(busy), "already in use"), ("70000", "0 to 65535")):
            done = dbload_cli(tmp_path, "run", "--dashboard", given, "-T", "1", "--dsn", seeded_dsn)
            assert done.returncode == 2, done.stderr
            (line,) = done.stderr.strip().splitlines()
            assert line.startswith(f"dbload: error: --dashboard {given}") and says in line
