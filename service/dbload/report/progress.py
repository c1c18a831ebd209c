"""Live progress while a run goes on: a rich status line on a terminal, or
plain ``progress:`` lines every N seconds for CI logs (like pgbench -P).

It only reads :class:`~dbload.measure.recorder.Snapshot` records, from a
background thread, so it never slows the workers beyond one read a tick.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.live import Live
from rich.text import Text

from dbload.measure.recorder import Snapshot

Snap = Callable[[], Snapshot]


def _line(snap: Snapshot, rate: float, label: str) -> str:
    p99 = f"{snap.last.p99_ms:.3f} ms" if snap.last else "-"
    phase = "warm-up" if snap.warming_up else f"{snap.elapsed_s:6.1f} s"
    return f"{label} {phase}  {rate:10,.1f} tps  p99 {p99}  errors {snap.errors:,}"


@contextmanager
def _ticking(
    snapshot: Snap, every_s: float, label: str, emit: Callable[[str], None]
) -> Iterator[None]:
    """Emit one progress line every ``every_s`` seconds from a daemon thread."""
    stop = threading.Event()

    def tick() -> None:
        last_count, last_t = 0, 0.0
        while not stop.wait(every_s):
            snap = snapshot()
            dt = snap.elapsed_s - last_t
            rate = (snap.transactions - last_count) / dt if dt > 0 else 0.0
            last_count, last_t = snap.transactions, snap.elapsed_s
            emit(_line(snap, rate, label))

    thread = threading.Thread(target=tick, name="dbload-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def live(console: Console, snapshot: Snap, label: str) -> Iterator[None]:
    """A one-line rich display refreshed twice a second."""
    view = Live(Text(f"{label} preparing…"), console=console, transient=True)
    with view, _ticking(snapshot, 0.5, label, lambda line: view.update(Text(line))):
        yield


@contextmanager
def plain(console: Console, snapshot: Snap, label: str, every_s: float) -> Iterator[None]:
    """``progress:`` lines every ``every_s`` seconds, for logs."""

    def emit(line: str) -> None:
        console.print(f"progress: {line}", highlight=False)

    with _ticking(snapshot, every_s, label, emit):
        yield
