"""A Ctrl-C before the run's own handler: raised, except where Python would drop it."""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType

import pytest

from dbload.ctrl_c import _interrupt


def _frame_of(name: str, filename: str) -> FrameType:
    """A frame of a function ``name`` compiled as if it were in ``filename``."""
    found: dict[str, object] = {}
    source = f"def {name}():\n    import sys\n    return sys._getframe()\n"
    exec(compile(source, filename, "exec"), found)
    frame = found[name]()  # type: ignore[operator]
    assert isinstance(frame, FrameType)
    return frame


def test_in_importlibs_lock_callback_it_is_sent_again_not_raised() -> None:
    # Python prints "Exception ignored" and drops an exception raised there
    frame = _frame_of("cb", "<frozen importlib._bootstrap>")
    got: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, _: got.append(signum))
    try:
        _interrupt(signal.SIGUSR1, frame)  # no KeyboardInterrupt here
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert got == [signal.SIGUSR1]


@pytest.mark.parametrize(
    ("name", "filename"),
    [("cb", "/work/user/code.py"), ("find_spec", "<frozen importlib._bootstrap_external>")],
)
def test_anywhere_else_it_is_a_keyboard_interrupt(name: str, filename: str) -> None:
    with pytest.raises(KeyboardInterrupt):
        _interrupt(signal.SIGINT, _frame_of(name, filename))
    with pytest.raises(KeyboardInterrupt):
        _interrupt(signal.SIGINT, sys._getframe())
