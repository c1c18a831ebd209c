"""Typed errors. Each carries a one-line message meant for the user.

The CLI is the only place that turns them into exit codes; everything else
raises. A message never contains a password: build it from redacted DSNs.
"""

from __future__ import annotations


class DbloadError(Exception):
    """Base class: ``str(err)`` is the one-line message shown to the user."""

    exit_code: int = 1


class UsageError(DbloadError):
    """A bad option value (``-c 0``, unknown mode, unwritable ``--json``)."""

    exit_code = 2


class WorkloadError(DbloadError):
    """A script that cannot be read, parsed or prepared.

    The message starts with ``file:line:`` when a line is known.
    """

    exit_code = 2

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None):
        where = ""
        if source is not None:
            where = f"{source}:{line}: " if line is not None else f"{source}: "
        super().__init__(f"{where}{message}")
        self.source = source
        self.line = line


class DatabaseError(DbloadError):
    """No database could be reached, started or used."""

    exit_code = 3
