"""The databases a server runs on, each opened at its first run and held
open until the server stops (an embedded server or a container is started
once, not per run). Requests name them; only redacted URLs leave here."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

from dbload.database.redact import redact
from dbload.database.resolve import Database, env_dsn, normalize_dsn, open_database
from dbload.errors import UsageError
from dbload.serve.config import TargetSpec


@dataclass(frozen=True, slots=True)
class TargetInfo:
    """What the API shows of a target: never its DSN, never a password."""

    name: str
    kind: str  # dsn, embedded, container; "auto" until the default one is opened
    url: str | None  # redacted; None until opened when it is resolved at the first run
    default: bool


class Targets:
    """The server's targets by name; thread-safe, closed once by :meth:`close`."""

    def __init__(self, specs: tuple[TargetSpec, ...], connect_timeout: float | None = None):
        if not specs:
            raise UsageError("dbload serve needs at least one target")
        self._specs = {spec.name: spec for spec in specs}
        self._timeout = connect_timeout
        self._open: dict[str, Database] = {}
        self._stack = contextlib.ExitStack()
        self._lock = threading.Lock()  # the two dicts, held for an instant
        # one per target, held while it opens: an embedded server takes
        # seconds to start, and GET /api/targets must not wait for it
        self._opening = {spec.name: threading.Lock() for spec in specs}
        self.default = specs[0].name

    def names(self) -> list[str]:
        return list(self._specs)

    def check(self, name: str | None) -> str:
        """``name`` (None: the default), or a UsageError naming the known ones."""
        chosen = self.default if name is None else name
        if chosen not in self._specs:
            raise UsageError(f"unknown target {chosen!r}; this server has {', '.join(self._specs)}")
        return chosen

    def database(self, name: str) -> Database:
        """The target's database, opened (and started, for an embedded one) on first use."""
        with self._opening[name]:
            with self._lock:
                if name in self._open:
                    return self._open[name]
            spec = self._specs[name]
            opened = open_database(
                "auto" if spec.dsn is None else "dsn", spec.dsn, connect_timeout=self._timeout
            )
            with contextlib.ExitStack() as one:
                database = one.enter_context(opened)
                with self._lock:
                    self._open[name] = database
                    self._stack.push(one.pop_all())
            return database

    def info(self, name: str) -> TargetInfo:
        spec = self._specs[name]
        with self._lock:
            database = self._open.get(name)
        if database is not None:
            return TargetInfo(name, database.kind, database.url, name == self.default)
        if spec.dsn is not None:
            return TargetInfo(name, "dsn", redact(normalize_dsn(spec.dsn)), name == self.default)
        found = env_dsn()
        url = redact(normalize_dsn(found)) if found else None
        return TargetInfo(name, "dsn" if found else "auto", url, name == self.default)

    def close(self) -> None:
        with self._lock:
            self._stack.close()
            self._open.clear()
