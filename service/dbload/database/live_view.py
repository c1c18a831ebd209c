"""One run seen from the server, second by second, for a live display
(``dbload serve``, ``run --dashboard``).

Each :meth:`LiveView.read` lists the run's backends (found by the
application_name its connections carry, as :class:`~dbload.database.
server_stats.RunWatch` finds them) and what each is doing: running a
statement, waiting on a wait event inside one, or idle, waiting for the
client. Where the server runs on this machine (or in a container whose
cgroup we can read) it adds the CPU those backends used since the last
read. A live view never fails a run: a read that fails returns None.
It is not the report's figure (that is RunWatch's, over the measured
window); it is what the page shows while the run goes on.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import LiteralString

import psycopg
from psycopg.rows import DictRow, dict_row

from dbload.database.container import cpu_clock_for
from dbload.database.server_stats import CONNECT_TIMEOUT_S, MARK, data_directory
from dbload.measure.cpu import find_postmaster, tree_cpu


@dataclass(frozen=True, slots=True)
class ServerTick:
    """The run's backends at one instant, and their CPU since the last tick."""

    running: int  # active with no wait event: on the server's CPU
    waiting: int  # active and waiting (a lock, I/O, an LWLock...)
    idle: int  # between statements: waiting for the client
    top_wait: str | None  # the commonest wait, ``Lock:transactionid``
    cpu_s: float | None  # None: the server's processes are not visible here


_QUERY: LiteralString = (
    f"SELECT pid, state, wait_event_type, wait_event FROM pg_stat_activity {MARK}"
    " WHERE application_name = %s AND backend_type = 'client backend'"
)


class LiveView:
    """Reads the run tagged ``tag`` on the server of ``dsn``, on a session of its own."""

    def __init__(self, dsn: str, tag: str) -> None:
        self._dsn = dsn
        self._tag = tag
        self._conn: psycopg.Connection[DictRow] | None = None
        self._cpu_before: dict[int, float] | None = None
        self._clock_before: float | None = None
        self._clock = cpu_clock_for(dsn)
        self._postmaster = None
        self._opened = False

    def _open(self) -> psycopg.Connection[DictRow] | None:
        if not self._opened:
            self._opened = True
            try:
                self._conn = psycopg.connect(
                    self._dsn,
                    autocommit=True,
                    connect_timeout=CONNECT_TIMEOUT_S,
                    row_factory=dict_row,
                    application_name=f"{self._tag} live",
                )
            except psycopg.Error:
                return None
            if self._clock is None:
                self._postmaster, _ = find_postmaster(data_directory(self._conn, self._dsn))
        return self._conn

    def read(self) -> ServerTick | None:
        conn = self._open()
        if conn is None or conn.closed or conn.broken:
            return None
        try:
            rows = conn.execute(_QUERY, (self._tag,)).fetchall()
        except psycopg.Error:
            return None
        cpu_s = self._cpu({int(r["pid"]) for r in rows})  # a container's baseline too
        if not rows:  # not connected yet, or already gone: nothing to say, not "idle"
            return None
        waits = collections.Counter(
            f"{r['wait_event_type']}:{r['wait_event']}"
            for r in rows
            if r["state"] == "active" and r["wait_event_type"]
        )
        active = sum(1 for r in rows if r["state"] == "active")
        waiting = sum(waits.values())
        return ServerTick(
            running=active - waiting,
            waiting=waiting,
            idle=len(rows) - active,
            top_wait=waits.most_common(1)[0][0] if waits else None,
            cpu_s=cpu_s,
        )

    def _cpu(self, pids: set[int]) -> float | None:
        """CPU seconds of ``pids`` since the last read. A container's is the
        whole server's, its first read only a baseline (0); a backend first
        seen counts from its birth, for the view is made before the run's
        connections open (and -C's are born inside the run)."""
        if self._clock is not None:
            now = self._clock.read()
            before, self._clock_before = self._clock_before, now
            return None if now is None else (0.0 if before is None else max(0.0, now - before))
        if self._postmaster is None:
            return None
        now_by_pid = {pid: s for pid, s in tree_cpu(self._postmaster).items() if pid in pids}
        before_by_pid, self._cpu_before = self._cpu_before or {}, now_by_pid
        return sum(s - before_by_pid.get(pid, 0.0) for pid, s in now_by_pid.items())

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
