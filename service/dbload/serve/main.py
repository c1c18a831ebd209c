"""``dbload serve`` and ``run --dashboard``, put together from the parts."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from dbload.api import Cell, Observer, Options, RunOptions
from dbload.measure.result import Result
from dbload.report.json_ import to_dict
from dbload.serve.app import AppSettings, create_app
from dbload.serve.config import ServeConfig, check_bind, check_port
from dbload.serve.live import LiveObserver
from dbload.serve.request import Job
from dbload.serve.runs import Runs, RunState, save
from dbload.serve.server import bind, serve_forever, serving_in_background, url_of
from dbload.serve.store import ResultsDir
from dbload.serve.targets import Targets


def serve(config: ServeConfig, say: Callable[[str], None]) -> int:
    """Serve until Ctrl-C or SIGTERM; the exit code (130, 143)."""
    check_bind(config.host, config.token)
    check_port(config.port)
    store = ResultsDir(config.results_dir)
    targets = Targets(config.targets)
    runs = Runs(targets, store)
    app = create_app(runs, AppSettings(config.token, config.workloads_dir))
    sock = bind(config.host, config.port)
    say(f"dbload serve: {url_of(sock)}  (API schema: {url_of(sock)}/openapi.json)")
    for name in targets.names():
        info = targets.info(name)
        where = info.url or "resolved at the first run (embedded when nothing else is set)"
        say(f"  target {name}: {info.kind} {where}")
    say(f"  results: {store.path}")
    try:
        caught = serve_forever(app, sock, lambda: runs.close(wait=False))
    finally:
        runs.close(wait=True)  # running runs save their partial results
        targets.close()
    if caught is None:
        return 0
    stopped = [s.id for s in runs.current() if s.status == "stopped" and s.saved]
    if stopped:
        say(f"stopped; partial result saved: {', '.join(stopped)}")
    return 128 + caught


@dataclass(frozen=True, slots=True)
class Dashboard:
    """The page of one CLI run: its observer, and what to do with its result."""

    observer: Observer
    state: RunState
    store: ResultsDir

    def finish(self, result: Result) -> None:
        save(self.state, self.store, (result,), to_dict(result))


@contextlib.contextmanager
def open_dashboard(
    options: RunOptions,
    port: int,
    config: ServeConfig,
    say: Callable[[str], None],
    stop: threading.Event,
) -> Iterator[Dashboard]:
    """``run --dashboard``: the live page on ``port`` for the run about to
    start; its Stop stops the CLI's run (``stop``), as Ctrl-C would."""
    check_port(port, "--dashboard")
    store = ResultsDir(config.results_dir)
    runs = Runs(Targets(config.targets), store)
    cell = Cell(options.mode, options.driver, options.concurrency)
    job = Job("cli", "run", options.workload.name, None, (), (cell,), Options())
    state = runs.adopt(job, stop)
    observer = LiveObserver(state.cell_began, state.add_point, state.set_database)
    sock = bind(config.host, port, "--dashboard")
    app = create_app(runs, AppSettings(workloads_dir=None, accept_runs=False))
    with serving_in_background(app, sock):
        say(f"dashboard: {url_of(sock)}/#run={state.id}")
        yield Dashboard(observer, state, store)


def wait_for_interrupt(say: Callable[[str], None]) -> int:
    """``--dashboard-keep``: the page stays until Ctrl-C (or SIGTERM); its signal."""
    caught: list[int] = []
    done = threading.Event()

    def handler(signum: int, frame: object) -> None:
        caught.append(signum)
        done.set()

    say("the dashboard stays up: Ctrl-C to exit")
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not done.wait(0.5):
            pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return caught[0]
