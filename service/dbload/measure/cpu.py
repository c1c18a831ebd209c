"""Client and server CPU use over a run (psutil).

On a small machine the client is often the bottleneck; showing CPU next to
throughput is how a user sees it. Server CPU is only measurable when the
server runs on this machine and its postmaster is visible to us; otherwise
the figure is omitted with the reason.

Given the run's :class:`Backends` (found by the run's application_name, see
dbload.database.server_stats), server CPU is theirs alone: on a shared
server another session's query is not billed to the run, and is reported
apart as the other sessions' CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True, slots=True)
class CpuUse:
    """CPU seconds over a wall-clock window; ``None`` means not measured."""

    wall_s: float
    cores: int
    client_s: float
    server_s: float | None  # the run's own backends (older results: the whole server)
    server_note: str  # why server CPU is missing, or where it came from
    others_s: float | None = None  # other sessions' backends; None: not measured

    @property
    def others_pct(self) -> float | None:
        """The other sessions' CPU, in % of one core (None: not measured)."""
        if self.others_s is None or self.wall_s <= 0:
            return None
        return 100.0 * self.others_s / self.wall_s

    @property
    def client_pct(self) -> float:
        """Percent of one core, like top (200 % = two cores busy)."""
        return 100.0 * self.client_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def server_pct(self) -> float | None:
        if self.server_s is None or self.wall_s <= 0:
            return None
        return 100.0 * self.server_s / self.wall_s


def tree_cpu(root: psutil.Process) -> dict[int, float]:
    """CPU seconds of a process and its children, by pid; each counts the
    children it has reaped too, so the sum never goes down when a child
    (processes mode's worker) exits and is waited for."""
    out: dict[int, float] = {}
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return out
    for proc in procs:
        try:
            t = proc.cpu_times()
            out[proc.pid] = t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            continue
    return out


def own_cpu() -> float:
    """This process (all threads) and its children (processes mode)."""
    me = psutil.Process()
    total = sum(tree_cpu(me).values())
    return total


def find_postmaster(data_directory: str | None) -> tuple[psutil.Process | None, str]:
    """The local postmaster for a data directory, or ``None`` and why not."""
    if not data_directory:
        return None, "server data directory not visible (needs pg_read_all_settings)"
    pid_file = Path(data_directory) / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
        return psutil.Process(pid), f"postmaster pid {pid}"
    except (OSError, ValueError, psutil.Error):
        return None, "server is not on this machine or its postmaster.pid is unreadable"


@dataclass(frozen=True, slots=True)
class Backends:
    """Server processes by whose they are, as pg_stat_activity lists them."""

    own: frozenset[int]  # the run's connections (and their parallel workers)
    others: frozenset[int]  # other sessions' client backends


class CpuMeter:
    """Samples CPU at :meth:`start` and :meth:`stop`.

    Backends that start and end inside the window are missed, but dbload's
    workers hold their connections for the whole run, so their backends
    exist at both samples; one that appears by :meth:`stop` (a reconnect)
    counts from its birth. Without :class:`Backends` the server is the
    postmaster's whole process tree, whoever its sessions serve.
    """

    def __init__(
        self,
        postmaster: psutil.Process | None,
        note: str,
        clock: Callable[[], float | None] | None = None,
    ) -> None:
        self._postmaster = postmaster
        self._note = note
        # A server in a container: its cgroup's CPU seconds, the whole server
        # (its pids are not ours to see). See dbload.database.container.
        self._clock = clock
        self._clock0: float | None = None
        self._t0 = 0.0
        self._client0 = 0.0
        self._server0: dict[int, float] = {}
        self.result: CpuUse | None = None

    @property
    def started(self) -> bool:
        return self._t0 > 0

    @property
    def local(self) -> bool:
        """Whether the server's processes are visible here."""
        return self._postmaster is not None or self._clock is not None

    def start(self, backends: Backends | None = None) -> None:
        self._t0 = time.perf_counter()
        self._client0 = own_cpu()
        self._server0 = self._server_cpu(backends)
        self._clock0 = self._clock() if self._clock is not None else None

    def stop(self, backends: Backends | None = None) -> CpuUse | None:
        """Sample again; the use since :meth:`start` (None if never started)."""
        if not self.started:
            return None
        wall = time.perf_counter() - self._t0
        client = own_cpu() - self._client0
        server = others = None
        note = self._note
        if self._clock is not None:
            now_s = self._clock()
            if now_s is None or self._clock0 is None:
                note = f"{note}: its CPU could not be read (the container is gone?)"
            else:
                server = now_s - self._clock0
        elif self._postmaster is not None:
            now = self._server_cpu(backends)
            n = 0 if backends is None else len(backends.own & now.keys())
            if backends is None:
                server = self._since_start(now, now)
            elif n == 0:  # all gone (lost and reconnected, closed early): no figure, not 0 %
                note = "the run's backends had exited before their CPU was read again"
            else:
                server = self._since_start(now, backends.own)
                others = self._since_start(now, backends.others)
                note = f"{n} backend{'' if n == 1 else 's'} of this run, {note}"
        self.result = CpuUse(
            wall_s=round(wall, 3),
            cores=psutil.cpu_count() or 1,
            client_s=round(client, 3),
            server_s=None if server is None else round(server, 3),
            server_note=note,
            others_s=None if others is None else round(others, 3),
        )
        return self.result

    def _since_start(self, now: dict[int, float], pids: Iterable[int]) -> float:
        return sum(now[pid] - self._server0.get(pid, 0.0) for pid in pids if pid in now)

    def _server_cpu(self, backends: Backends | None) -> dict[int, float]:
        """CPU seconds by pid: the postmaster's tree, or only the listed
        backends among its children (a pid from a server in a container
        means another process here: only the postmaster's own count)."""
        if self._postmaster is None:
            return {}
        tree = tree_cpu(self._postmaster)
        if backends is None:
            return tree
        wanted = backends.own | backends.others
        return {pid: cpu for pid, cpu in tree.items() if pid in wanted}
