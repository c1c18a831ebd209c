"""Running the app under uvicorn: ``dbload serve`` in the foreground (Ctrl-C
stops the running runs, saves their partial results and exits 130), and
``run --dashboard``'s server on a thread beside the CLI's run."""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn
from fastapi import FastAPI

from dbload.errors import UsageError

GRACE_S = 5  # open event streams get this long to send their final event


class _Server(uvicorn.Server):
    """uvicorn's server, whose first signal also stops the runs (their
    threads save what they measured) and is remembered for the exit code,
    instead of being raised again once the server is down."""

    def __init__(self, config: uvicorn.Config, on_signal: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.signalled: int | None = None
        self._on_signal = on_signal

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:  # a second Ctrl-C: do not wait for the streams
            self.force_exit = True
            return
        self.signalled = sig
        if self._on_signal is not None:
            # not here: a signal handler runs on the event loop's thread,
            # which may hold the lock that stopping the runs takes
            threading.Thread(target=self._on_signal, name="dbload-stopping").start()
        self.should_exit = True


def bind(host: str, port: int, option: str = "--port") -> socket.socket:
    """The listening socket, or one line saying why not (port 0: any free one)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        why = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise UsageError(f"{option} {port} on {host}: {why}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _config(app: FastAPI) -> uvicorn.Config:
    return uvicorn.Config(
        app, log_level="warning", lifespan="off", timeout_graceful_shutdown=GRACE_S
    )


def serve_forever(app: FastAPI, sock: socket.socket, on_signal: Callable[[], None]) -> int | None:
    """Serve until SIGINT or SIGTERM; the signal that stopped it."""
    server = _Server(_config(app), on_signal)
    server.run(sockets=[sock])
    return server.signalled


@contextlib.contextmanager
def serving_in_background(app: FastAPI, sock: socket.socket) -> Iterator[_Server]:
    """The app served from a thread (no signal handlers: the CLI keeps its
    own); stopped, its event streams given their final event, on exit."""
    server = _Server(_config(app))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="dbload-dashboard", daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(GRACE_S + 2)
