"""Masking passwords in DSNs: the only form in which a DSN is ever shown."""

from __future__ import annotations

import re

MASK = "***"

# URI userinfo: ``scheme://user:password@host``. The password runs to the
# *last* ``@`` of the whitespace-delimited token: an unencoded ``@`` or ``/``
# in a password (invalid, but typed by people) must not leak its tail. At
# worst this over-masks a query value holding an ``@``, which is safe.
_URI_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)(?P<pw>\S*)@", re.I)
# ``password=`` in a URI query (ends at ``&``) or a key=value DSN (ends at a
# space, or is a single-quoted value with backslash escapes). An ``&`` not
# followed by ``key=`` is part of the password, not a query separator.
_PARAM_PASSWORD = re.compile(
    r"(?P<head>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'?|[^\s&]*(?:&(?![\w-]+=)[^\s&]*)*)", re.I
)


def redact(text: str) -> str:
    """``text`` with every password in a URI or ``password=`` pair masked.

    Works on a DSN, a key=value connection string or free text that quotes
    one (an error message); never raises.
    """
    try:
        text = _URI_PASSWORD.sub(
            lambda m: f"{m.group('head')}{MASK}@" if m.group("pw") else m.group(0), text
        )
        return _PARAM_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}", text)
    except Exception:  # a redactor must never be the thing that fails
        return MASK
