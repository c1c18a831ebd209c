"""Two Ctrl-C a moment apart, for the tests of "a second Ctrl-C exits at once".

Such a test means the second to land inside the first one's grace period
(modes.base.GRACE_S). A loaded machine can stall this process between the
two sends past it; the run has then ended on the first, and the test would
be of another case. The helper says how far apart they really went, so that
the test can try again instead of failing (or passing) for the wrong reason.
"""

from __future__ import annotations

import signal
import subprocess
import time

from dbload.modes.base import GRACE_S

# the two went close enough for the second to find the first's grace running
IN_GRACE_S = GRACE_S / 2
TRIES = 3


def ctrl_c_twice(proc: subprocess.Popen[str], apart_s: float = 0.2) -> bool:
    """Send SIGINT, wait ``apart_s``, send it again; whether the second went
    within IN_GRACE_S of the first."""
    first = time.monotonic()
    proc.send_signal(signal.SIGINT)
    time.sleep(apart_s)
    proc.send_signal(signal.SIGINT)
    return time.monotonic() - first < IN_GRACE_S
