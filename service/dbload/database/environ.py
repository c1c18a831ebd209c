"""Reading dbload's settings from the environment and the command line."""

from __future__ import annotations

import os


def given(value: str | None) -> str | None:
    """``value`` stripped, or None when it is missing, empty or blank.

    A blank value is what a shell leaves from ``export X=`` or a CI template
    with an unset variable: it means "not given", never "connect to libpq's
    defaults" or "use the directory ''".
    """
    if value is None:
        return None
    return value.strip() or None


def setting(name: str) -> str | None:
    """``$name`` as :func:`given` reads it."""
    return given(os.environ.get(name))
