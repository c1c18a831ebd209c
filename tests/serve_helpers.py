"""A real ``dbload serve`` for tests that need one over the network (a browser,
schemathesis): the app of ``create_app`` under uvicorn on a free loopback port.

A module of its own rather than a conftest fixture: the page and schema tests
each start a server with their own settings and scope.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from dbload.serve.app import AppSettings, create_app
from dbload.serve.config import TargetSpec
from dbload.serve.runs import ENDED, Runs
from dbload.serve.server import bind, serving_in_background, url_of
from dbload.serve.store import ResultsDir
from dbload.serve.targets import Targets


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` under a real uvicorn on a free loopback port; its base URL.
    The socket listens before uvicorn's thread starts: no wait for readiness."""
    sock = bind("127.0.0.1", 0)
    try:
        with serving_in_background(app, sock):
            yield url_of(sock)
    finally:
        sock.close()


@contextmanager
def live_server(dsn: str, results_dir: Path, **settings: Any) -> Iterator[str]:
    """The base URL of a server with one target, ``main`` on ``dsn``, saving to
    ``results_dir``; ``settings`` are :class:`AppSettings`' fields. On exit its
    runs are stopped (their partial results saved) and the target closed."""
    targets = Targets((TargetSpec("main", dsn),))
    runs = Runs(targets, ResultsDir(results_dir))
    app = create_app(runs, AppSettings(**settings))
    try:
        with serving(app) as url:
            yield url
    finally:
        # runs first: their threads hold the target's database until they end
        runs.close()
        targets.close()


def wait_for_end(client: httpx.Client, run_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """``GET /api/runs/{id}`` once the run has ended (done, stopped or failed)."""
    deadline = time.monotonic() + timeout
    while True:
        view: dict[str, Any] = client.get(f"/api/runs/{run_id}").raise_for_status().json()
        if view["status"] in ENDED:
            return view
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {view['status']} after {timeout} s")
        time.sleep(0.2)
