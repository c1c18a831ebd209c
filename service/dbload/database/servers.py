"""``compare --servers``: several servers, one workload, side by side.

An entry is ``embedded`` (dbload's own server, see database/embedded.py),
``container:IMAGE`` (a throw-away container of IMAGE, see
database/container.py) or ``dsn:URI`` (a server of the user's, waited for
while it starts, as ``--dsn`` is). Each is opened the way ``--db`` opens it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from dbload.database.container import postgres_container
from dbload.database.redact import redact
from dbload.database.resolve import (
    CONNECT_TIMEOUT_S,
    Database,
    OnWait,
    check_connection,
    normalize_dsn,
    open_database,
)
from dbload.database.wait import connect_timeout_s
from dbload.errors import UsageError

KINDS = ("embedded", "container:IMAGE", "dsn:URI")

# Settings that change what a workload measures, shown per server: memory,
# durability, the planner's view of the disk, and what is preloaded (the
# server view needs pg_stat_statements).
SETTINGS = (
    "shared_buffers",
    "work_mem",
    "max_connections",
    "fsync",
    "synchronous_commit",
    "wal_level",
    "random_page_cost",
    "jit",
    "shared_preload_libraries",
)


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """One ``--servers`` entry: ``kind`` embedded, container or dsn; ``target``
    the image or the DSN (None for embedded)."""

    kind: str
    target: str | None = None

    @property
    def label(self) -> str:
        """How reports name it: a DSN by ``host:port/database`` only (never
        its password; the run's ``database.url`` has the rest)."""
        if self.target is None:
            return self.kind
        shown = _where(self.target) if self.kind == "dsn" else self.target
        return f"{self.kind}:{shown}"


def _where(dsn: str) -> str:
    """``host:port/database`` of a DSN, libpq's defaults filled in."""
    params = conninfo_to_dict(dsn)
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    return f"{host}:{port}/{params.get('dbname') or params.get('user') or ''}"


def parse_servers(entries: str | Sequence[str]) -> list[ServerSpec]:
    """``embedded,container:IMAGE,dsn:URI`` (or a list of entries) as specs.

    A DSN may hold commas of its own only as a list item: the comma-joined
    form splits on every comma that starts a new ``kind:`` or ``embedded``.
    """
    items = _split(entries) if isinstance(entries, str) else [e.strip() for e in entries]
    specs = [_spec(item) for item in items if item]
    if not specs:
        raise UsageError(f"--servers: give at least one server ({', '.join(KINDS)})")
    labels = [s.label for s in specs]
    repeated = next((label for label in labels if labels.count(label) > 1), None)
    if repeated is not None:
        raise UsageError(f"--servers: {repeated!r} is named twice")
    return specs


def _split(text: str) -> list[str]:
    """Split on commas, but keep a libpq host list (``dsn:postgresql://a,b:5433/db``)
    whole: after a ``dsn:`` entry, a piece that reads ``host[:port][/...]``
    and names no kind continues it."""
    parts: list[str] = []
    for piece in text.split(","):
        head = piece.strip()
        continues = (
            parts
            and parts[-1].startswith("dsn:")
            and _HOST_PIECE.match(head) is not None
            and head != "embedded"
            and head.split(":", 1)[0] not in ("container", "dsn")
        )
        if continues:
            parts[-1] += "," + head
        else:
            parts.append(head)
    return parts


_HOST_PIECE = re.compile(r"[\w.\-\[\]]+(:\d*)?(/.*|\?.*)?$")


def _spec(item: str) -> ServerSpec:
    kind, _, target = item.partition(":")
    kind, target = kind.strip(), target.strip()
    if kind == "embedded" and not target:
        return ServerSpec("embedded")
    if kind == "container" and target:
        return ServerSpec("container", target)
    if kind == "dsn" and target:
        return ServerSpec("dsn", normalize_dsn(target))
    if kind in ("container", "dsn"):
        raise UsageError(
            f"--servers: {kind}: needs {'an image' if kind == 'container' else 'a URI'}"
        )
    shown = redact(item) if "://" in item else item
    raise UsageError(
        f"--servers: unknown kind {kind!r} in {shown!r}; give {', '.join(KINDS)}"
        " (e.g. --servers embedded,container:postgres:17)"
    )


@contextmanager
def open_server(
    spec: ServerSpec, *, connect_timeout: float | None = None, on_wait: OnWait | None = None
) -> Iterator[Database]:
    """Start (or reach) the server of ``spec``; yields it labelled, cleans up what it started."""
    if spec.kind == "container":
        assert spec.target is not None
        with postgres_container(spec.target) as url:
            database = Database("container", normalize_dsn(url), spec.label, spec.target)
            check_connection(database.dsn, connect_timeout_s(connect_timeout), on_wait)
            yield database
        return
    choice, dsn = ("embedded", None) if spec.kind == "embedded" else ("dsn", spec.target)
    with open_database(choice, dsn, connect_timeout=connect_timeout, on_wait=on_wait) as found:
        yield replace(found, label=spec.label)


def server_settings(dsn: str) -> dict[str, str]:
    """:data:`SETTINGS` as the server reports them (``SHOW``), and its full version."""
    with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        rows: list[Any] = conn.execute(
            "SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s)", [list(SETTINGS)]
        ).fetchall()
        version = conn.execute("SELECT version()").fetchone()
    found = {name: _with_unit(setting, unit) for name, setting, unit in rows}
    ordered = {name: found[name] for name in SETTINGS if name in found}
    if version is not None:
        ordered["version"] = str(version[0]).split(",")[0]
    return ordered


def _with_unit(setting: str, unit: str | None) -> str:
    """pg_settings' value in the words of ``SHOW``: 8kB pages as MB, etc."""
    if unit in ("8kB", "kB") and setting.isdigit():
        kb = int(setting) * (8 if unit == "8kB" else 1)
        return f"{kb // 1024}MB" if kb % 1024 == 0 else f"{kb}kB"
    return setting if not unit else f"{setting}{unit}"
