"""Live progress while a run goes on: a rich status line on a terminal, or
plain ``progress:`` lines every N seconds for CI logs (like pgbench -P).

Both go to the console they are given, which should be stderr's (see
:func:`dbload.report.console.make_console`): as pgbench's, progress is not
part of the report, and ``dbload run > report.txt`` keeps only the report.
Messages printed during a live display must go through that same console,
which prints them above the status line.

It only reads :class:`~dbload.measure.recorder.Snapshot` records, from a
background thread, so it never slows the workers beyond one read a tick.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.text import Text

from dbload.measure.recorder import Snapshot

Snap = Callable[[], Snapshot]


@dataclass(frozen=True, slots=True)
class Planned:
    """What the run is to do, to show how far it is: ``-T`` seconds or
    ``-n`` transactions (neither: an open-ended run, e.g. --stages' own)."""

    duration_s: float | None = None
    transactions: int | None = None


def _done(snap: Snapshot, planned: Planned) -> str:
    """``3.0 / 10 s``, or ``1,234 / 4,000 txns`` for a batch."""
    if planned.transactions is not None:
        return f"{snap.transactions:,} / {planned.transactions:,} txns"
    if planned.duration_s is not None:
        return f"{snap.elapsed_s:5.1f} / {planned.duration_s:g} s"
    return f"{snap.elapsed_s:6.1f} s"


def _line(snap: Snapshot, rate: float, label: str, planned: Planned = Planned()) -> str:
    p99 = f"{snap.last.p99_ms:.3f} ms" if snap.last else "-"
    phase = "warm-up" if snap.warming_up else _done(snap, planned)
    return f"{label} {phase}  {rate:10,.1f} tps  p99 {p99}  errors {snap.errors:,}"


@contextmanager
def _ticking(
    snapshot: Snap, every_s: float, emit: Callable[[Snapshot, float], None]
) -> Iterator[None]:
    """Call ``emit(snapshot, rate)`` every ``every_s`` seconds from a daemon thread."""
    stop = threading.Event()

    def tick() -> None:
        last_count, last_t = 0, 0.0
        while not stop.wait(every_s):
            snap = snapshot()
            dt = snap.elapsed_s - last_t
            rate = (snap.transactions - last_count) / dt if dt > 0 else 0.0
            last_count, last_t = snap.transactions, snap.elapsed_s
            emit(snap, rate)

    thread = threading.Thread(target=tick, name="dbload-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def live(
    console: Console, snapshot: Snap, label: str, planned: Planned = Planned()
) -> Iterator[None]:
    """A one-line rich display refreshed twice a second.

    Not transient: at the end the last status stays, ended by a newline, so
    what is printed next (the report, an error) starts on a line of its
    own, and the final rate stays on screen, as pgbench's last progress
    line does.
    """
    view = Live(Text(f"{label} preparing…"), console=console, transient=False)

    def show(snap: Snapshot, rate: float) -> None:
        view.update(Text(_line(snap, rate, label, planned)))

    with view:
        with _ticking(snapshot, 0.5, show):
            yield
        # the line that stays: the whole run's rate, even when it ended
        # before the first tick (not "preparing…")
        final = snapshot()
        show(final, final.transactions / final.elapsed_s if final.elapsed_s > 0 else 0.0)


@contextmanager
def plain(
    console: Console, snapshot: Snap, label: str, every_s: float, planned: Planned = Planned()
) -> Iterator[None]:
    """``progress:`` lines every ``every_s`` seconds, for logs."""

    def emit(snap: Snapshot, rate: float) -> None:
        line = f"progress: {_line(snap, rate, label, planned)}"
        console.print(line, highlight=False, markup=False, soft_wrap=True)

    with _ticking(snapshot, every_s, emit):
        yield
