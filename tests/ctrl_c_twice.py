"""Two Ctrl-C a moment apart, for the tests of "a second Ctrl-C exits at once".

Such a test means the second to land inside the first one's grace period
(modes.base.GRACE_S), and to be a second one. Two signals that dbload has
not yet taken are one: the kernel keeps a single SIGINT pending, and
Python's handler runs once for any number that arrived since it last
looked. A loaded machine that does not schedule dbload for the 0.2 s
between them turns them into one Ctrl-C, a graceful stop. So the second
is sent once dbload has answered the first ("stopping, …"), as a person at
the keyboard does. The same loaded machine can stall this process between
the two sends past the grace; the helper says how far apart they went, so
that the test can try again instead of failing (or passing) for the wrong
reason.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from dbload.modes.base import GRACE_S

T = TypeVar("T")

# the two went close enough for the second to find the first's grace running
IN_GRACE_S = GRACE_S / 2
TRIES = 3
# what the CLI says when it takes the first Ctrl-C of a run
ANSWER = "stopping, finishing transactions in flight"
# no answer by then is a failure of its own, not a wait on a 120 s run
ANSWER_TIMEOUT_S = 30.0


def ctrl_c_twice(proc: subprocess.Popen[str], apart_s: float = 0.2) -> tuple[bool, str]:
    """Send SIGINT; once dbload answers it, wait ``apart_s`` and send it
    again; then read stderr to the end. Returns whether the second went
    within IN_GRACE_S of the first, and all of stderr read here."""
    assert proc.stderr is not None
    guard = threading.Timer(ANSWER_TIMEOUT_S, proc.kill)
    guard.start()
    try:
        first = time.monotonic()
        proc.send_signal(signal.SIGINT)
        read = []
        for line in proc.stderr:
            read.append(line)
            if line.startswith(ANSWER):
                break
        time.sleep(apart_s)
        proc.send_signal(signal.SIGINT)
        in_grace = time.monotonic() - first < IN_GRACE_S
        read.append(proc.stderr.read())
    finally:
        guard.cancel()
    proc.stderr.close()  # read to its end: a later communicate() reads stdout only
    return in_grace, "".join(read)


def until_in_grace(attempt: Callable[[], tuple[bool, T]]) -> T:
    """Run ``attempt`` (it returns whether its two Ctrl-C went inside the
    grace, and its outcome) up to TRIES times, until one did; that outcome."""
    for _ in range(TRIES):
        in_grace, outcome = attempt()
        if in_grace:
            return outcome
    pytest.fail(f"this process stalled past the grace between the two Ctrl-C, {TRIES} times")
