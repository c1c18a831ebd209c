"""What an error code in a result means: SQLSTATE condition names.

A failed transaction is counted under the SQLSTATE the server sent
(``22012``), or under a code of dbload's own for failures that have none
(see :data:`DBLOAD_CODES`); a client library's exception without a SQLSTATE
is counted under its class name (``InterfaceError``).

The table of names is psycopg's: ``psycopg.errors`` has one exception class
per SQLSTATE, generated from PostgreSQL's own errcodes.txt, so every code a
server can send is named without a hand-written list going stale. Only that
table is read (no connection, no driver behaviour), so reports that use
this module still know nothing of drivers; psycopg is a dependency of
dbload in any case.
"""

from __future__ import annotations

import re
from functools import cache

from psycopg import errors as pg_errors

# dbload's own codes: failures of the workload that no server reported
SCRIPT = "script"  # the script failed in the client (\set arithmetic, a Python workload)
DBLOAD_CODES = {SCRIPT: "script_error"}

# an exception of the client library that carries no SQLSTATE
CLIENT_ERROR = "client_error"

_SQLSTATE = re.compile(r"[0-9A-Z]{5}\Z")
# where CamelCase starts a word: after a lower-case letter or digit, and
# before the last capital of a run (UnterminatedCString: unterminated_c_string)
_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def is_sqlstate(code: str) -> bool:
    return _SQLSTATE.match(code) is not None


@cache
def condition_name(code: str) -> str:
    """``22012`` → ``division_by_zero``, PostgreSQL's condition name.

    A SQLSTATE psycopg does not know yet is named by its class
    (``22ZZZ`` → ``data_exception (class 22)``); dbload's own codes by
    :data:`DBLOAD_CODES`; anything else is a client-side exception.
    """
    if code in DBLOAD_CODES:
        return DBLOAD_CODES[code]
    if not is_sqlstate(code):
        return CLIENT_ERROR
    name = _name_of(code)
    if name is not None:
        return name
    category = _name_of(code[:2] + "000")
    return f"{category} (class {code[:2]})" if category else f"unknown (class {code[:2]})"


def _name_of(code: str) -> str | None:
    """The condition name from psycopg's class for ``code``: the class name
    is the condition's in CamelCase (``psycopg.errors.lookup`` accepts either
    and tests/test_report_formats.py checks the two agree for every code).
    Not a lookup by name: PostgreSQL gives some names to two codes (22004
    and 39004 are both null_value_not_allowed), and psycopg keeps one."""
    try:
        cls = pg_errors.lookup(code)
    except KeyError:
        return None
    if getattr(cls, "sqlstate", None) != code:
        return None
    # Python names must differ where the condition names do not: psycopg
    # adds "Ext" to the duplicates of class 38/39 and "_" to InternalError_
    base = cls.__name__.rstrip("_")
    if code[:2] in ("38", "39") and base.endswith("Ext"):
        base = base[: -len("Ext")]
    return _WORD_START.sub("_", base).lower()
