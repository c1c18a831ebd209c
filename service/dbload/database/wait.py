"""Waiting for a server that is still starting (``--connect-timeout``).

``docker compose up -d`` returns while the container runs initdb and its
init scripts on a socket-only server; meanwhile the published port accepts
and closes at once ("server closed the connection unexpectedly"), then the
real server answers 57P03 ("the database system is starting up") for a
moment. A server started by hand refuses until it listens. These three are
waited for; anything else (a wrong password, a missing database, an unknown
host, a timeout) fails at once: waiting would not change the answer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg

from dbload.database.environ import setting
from dbload.errors import UsageError

# The official image's first start (initdb, a socket-only server running the
# init scripts, then the real one) takes 3 to 10 s, several times that on a
# loaded 2-core CI machine; compose's healthcheck gives it 30 s as well. A
# port nobody will ever listen on costs the user that long, told at once.
DEFAULT_CONNECT_TIMEOUT_S = 30.0
ENV = "DBLOAD_CONNECT_TIMEOUT"
# One attempt never waits longer than this (libpq's connect_timeout): a
# server that is starting answers at once; a timeout is not waited for.
ATTEMPT_TIMEOUT_S = 5
FIRST_PAUSE_S = 0.05
MAX_PAUSE_S = 0.5

# What libpq says when a server is not there yet. psycopg gives no SQLSTATE
# for a failed connection, so 57P03 is told by its messages (postmaster.c):
# "... is starting up", "... is not yet accepting connections", "... is not
# accepting connections" (a standby), "... is shutting down" (a restart),
# "... is in recovery mode".
_STARTING = (
    "the database system is",
    "server closed the connection unexpectedly",
    "connection refused",
    "connection reset by peer",
    "no such file or directory",  # a unix socket not created yet
    "eof detected",
)

T = TypeVar("T")


class NotReady(Exception):
    """The server was still not accepting after ``waited_s``; ``error`` is its last answer."""

    def __init__(self, error: psycopg.Error, waited_s: float) -> None:
        super().__init__(str(error))
        self.error = error
        self.waited_s = waited_s


def connect_timeout_s(value: float | None = None) -> float:
    """``value``, else ``$DBLOAD_CONNECT_TIMEOUT``, else 30 s; 0 means one attempt, no wait."""
    where = "--connect-timeout"
    if value is None and (text := setting(ENV)) is not None:
        where = f"${ENV}"
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"{where} must be a number of seconds, got {text!r}") from None
    if value is None:
        return DEFAULT_CONNECT_TIMEOUT_S
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{where} must be 0 or more seconds, got {value:g}")
    return value


def is_starting(exc: psycopg.Error) -> bool:
    """Whether ``exc`` is what a server that is starting (or not yet listening) says."""
    text = str(exc).lower()
    return any(needle in text for needle in _STARTING)


def describe(exc: psycopg.Error) -> str:
    """What a server that is not ready yet said, in a few words."""
    text = str(exc)
    lowered = text.lower()
    if "the database system is" in lowered:
        start = lowered.index("the database system is")
        return text[start:].splitlines()[0].strip()
    if "closed the connection" in lowered or "eof detected" in lowered or "reset by" in lowered:
        return "it closed the connection"
    return "connection refused"


def until_ready(
    attempt: Callable[[int], T],
    timeout_s: float,
    on_wait: Callable[[psycopg.Error, float], None] | None = None,
) -> T:
    """``attempt(connect_timeout)`` until it returns, or fails otherwise than
    :func:`is_starting`, or ``timeout_s`` has passed.

    A failure of another kind is raised as it is; running out of time raises
    :class:`NotReady`. ``on_wait(error, timeout_s)`` is called once, at the
    first failure that is waited for.
    """
    deadline = time.monotonic() + timeout_s
    pause = FIRST_PAUSE_S
    told = False
    while True:
        try:
            return attempt(ATTEMPT_TIMEOUT_S)
        except psycopg.Error as exc:
            if not is_starting(exc):
                raise
            now = time.monotonic()
            if now >= deadline:
                if timeout_s <= 0:
                    raise
                # the whole timeout was waited (the last attempt may end later)
                raise NotReady(exc, timeout_s) from None
            if not told and on_wait is not None:
                on_wait(exc, timeout_s)
            told = True
        time.sleep(min(pause, deadline - now))
        pause = min(pause * 2, MAX_PAUSE_S)
