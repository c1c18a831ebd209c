"""Ctrl-C before a run has its own handler (the CLI's ``_stop_on_signals``).

Python's default handler raises KeyboardInterrupt wherever the main thread
is. Inside the import machinery that can be a weakref callback of
importlib's module locks, where Python prints "Exception ignored" with a
traceback and drops the exception: the Ctrl-C is lost and the run goes on.
The handler here raises it too, but not in that callback: there it sends
the signal again a moment later.

Once the exit code is decided, Ctrl-C is ignored: Python gives SIGINT back
its default action while it finalizes, so a Ctrl-C then (a second one just
as the grace period ends the run, say) would kill the process with the
signal instead of the code and message already printed.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

RESEND_S = 0.01


def _interrupt(signum: int, frame: FrameType | None) -> None:
    code = frame.f_code if frame is not None else None
    # only the callback: anywhere else in an import the exception propagates
    # (and the import's caller turns it into one line)
    if code is not None and code.co_name == "cb" and code.co_filename.startswith("<frozen"):
        threading.Timer(RESEND_S, os.kill, (os.getpid(), signum)).start()
        return
    raise KeyboardInterrupt


def keep_ctrl_c_out_of_imports() -> None:
    """Install the handler, unless SIGINT is ignored (a shell's ``&``) or
    someone else's handler is in place."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt)


def ignore_ctrl_c_while_exiting() -> None:
    """From here the process only exits, with a code already decided and
    reported; SIGTERM still ends it, should its finalizers hang."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
