"""A libpq DSN as asyncpg's connect() keywords, read as libpq reads it.

asyncpg parses a URI itself but not libpq's key=value form, sends a
parameter it does not know to the server as a setting, and looks up
.pgpass by "localhost" for a unix socket: this module gives it what psql
and the psycopg driver would use, or refuses, before the run, what it
cannot honour.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from psycopg.conninfo import conninfo_to_dict

from dbload.config import Plan
from dbload.errors import UsageError

# libpq's connection parameters, as asyncpg takes them (see connect_kwargs).
# Read from a URI's query by asyncpg itself, as libpq reads them:
_PASSED = frozenset(
    {"host", "port", "dbname", "user", "password", "passfile", "service", "sslmode",
     "sslcert", "sslkey", "sslrootcert", "sslcrl", "sslpassword", "sslnegotiation",
     "ssl_min_protocol_version", "ssl_max_protocol_version", "target_session_attrs",
     "krbsrvname", "gsslib"}
)  # fmt: skip
# Sent in the startup packet, where the server reads them as it does from libpq:
_STARTUP = frozenset({"application_name", "options", "client_encoding"})
# Values that ask for what asyncpg does anyway (it has no GSS encryption,
# channel binding or keepalives, and tries hosts in order):
_SAME = {
    "gssencmode": {"disable", "prefer"},
    "channel_binding": {"disable", "prefer"},
    "keepalives": {"0"},
    "load_balance_hosts": {"disable"},
}
# Translated below; sslcompression is ignored by libpq too.
_TRANSLATED = frozenset({"connect_timeout", "fallback_application_name", "sslcompression"})
CONNECT_TIMEOUT_S = 30.0


ASYNCPG = "asyncpg (the async modes' default driver)"


def connect_kwargs(
    plan: Plan,
    timeout_s: float = CONNECT_TIMEOUT_S,
    who: str = ASYNCPG,
    instead: str = "--driver psycopg",
) -> dict[str, Any]:
    """``asyncpg.connect`` keywords for the plan's DSN, a URI
    or libpq's key=value form, read as libpq reads it.

    asyncpg sends a parameter it does not know to the server as a setting
    (``connect_timeout`` then fails the connection: "unrecognized
    configuration parameter"), so each one is passed on, translated
    (``connect_timeout`` is asyncpg's ``timeout``; ``application_name``,
    ``options`` go in the startup packet) or refused here, before the run,
    with a UsageError that names it (``who`` cannot honour it: run
    ``instead``). For a unix-socket host the .pgpass
    password is looked up as libpq does, by the socket directory (asyncpg
    looks for "localhost"), so that the file psql and the sync modes accept
    works in this mode too.
    """
    params = {k: str(v) for k, v in conninfo_to_dict(plan.dsn).items()}
    refused = [
        f"{k}={v}" if k in _SAME else k
        for k, v in params.items()
        if k not in _PASSED | _STARTUP | _TRANSLATED and v not in _SAME.get(k, ())
    ]
    if refused:
        raise UsageError(
            f"{who} cannot honour the connection"
            f" parameter{'s' if len(refused) > 1 else ''} {', '.join(refused)} of the DSN;"
            f" drop it there, or run {instead}"
        )
    query = {k: v for k, v in params.items() if k in _PASSED}
    if "host" in query:  # a bare IPv6 address would read as host:port
        query["host"] = ",".join(_bracketed(h) for h in query["host"].split(","))
    given = params.get("password") or os.environ.get("PGPASSWORD")
    if not given and (password := _socket_pgpass(params)) is not None:
        query["password"] = password
    settings = {k: v for k, v in params.items() if k in _STARTUP}
    if "application_name" not in settings and "fallback_application_name" in params:
        settings["application_name"] = params["fallback_application_name"]
    timeout = float(params.get("connect_timeout") or 0)
    return {
        "dsn": "postgresql://?" + urlencode(query),
        "timeout": max(timeout, 2.0) if timeout > 0 else timeout_s,  # libpq's minimum: 2 s
        "server_settings": {**settings, **plan.server_settings()},
    }


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith(("/", "[")) else host


def _socket_pgpass(params: dict[str, Any]) -> str | None:
    """libpq's .pgpass password for a unix-socket host; None for a TCP host
    (asyncpg matches those as libpq does) or when no line matches."""
    host = str(params.get("host") or os.environ.get("PGHOST") or "")
    if not host.startswith("/") or "," in host:
        return None
    user = str(params.get("user") or os.environ.get("PGUSER") or getpass.getuser())
    wanted = (
        host,
        str(params.get("port") or os.environ.get("PGPORT") or "5432"),
        str(params.get("dbname") or os.environ.get("PGDATABASE") or user),
        user,
    )
    try:
        default = os.environ.get("PGPASSFILE") or Path.home() / ".pgpass"
        path = Path(params.get("passfile") or default)
        if not path.is_file() or path.stat().st_mode & 0o077:
            return None  # libpq ignores a password file others may read
        lines = path.read_text().splitlines()
    except (OSError, RuntimeError, UnicodeDecodeError):  # RuntimeError: no home directory
        return None
    for line in lines:
        fields = _pgpass_fields(line)
        if line.startswith("#") or len(fields) < 5:
            continue
        if all(field in ("*", value) for field, value in zip(fields[:4], wanted, strict=True)):
            return fields[4]  # libpq ends the password at an unescaped ':'
    return None


def _pgpass_fields(line: str) -> list[str]:
    """host:port:database:user:password, with libpq's \\: and \\\\ escapes undone."""
    fields: list[str] = []
    current: list[str] = []
    chars = iter(line)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    return [*fields, "".join(current)]
