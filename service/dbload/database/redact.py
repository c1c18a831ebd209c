"""Masking passwords in DSNs: the only form in which a DSN is ever shown."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

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


def hide_password_in_title(argv: Sequence[str] | None) -> None:
    """Mask the passwords in this process's command line as others see it.

    Any local user can read ``ps`` and ``/proc/PID/cmdline``, so a ``--dsn``
    holding a password must not stay there for the whole run. ``argv`` is
    what ``main()`` was given: None means this process's own command line,
    the only case in which the title is dbload's to change.
    """
    if argv is not None:
        return
    shown = [redact(arg) for arg in sys.orig_argv]
    if shown == sys.orig_argv:
        return  # nothing to hide: leave the title (and argv memory) alone
    try:
        # imported only when needed: it rewrites the memory argv lives in
        import setproctitle
    except ImportError:  # a platform without it: a missing mask must not stop the run
        return
    name = setproctitle.getthreadtitle()
    setproctitle.setproctitle(" ".join(shown))
    # it also renames the process (comm, as pgrep and top show it) to the
    # title's first 15 bytes; keep the name it had
    setproctitle.setthreadtitle(name)
