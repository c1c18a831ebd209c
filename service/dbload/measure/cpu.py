"""Client and server CPU use over a run (psutil).

On a small machine the client is often the bottleneck; showing CPU next to
throughput is how a user sees it. Server CPU is only measurable when the
server runs on this machine and its postmaster is visible to us; otherwise
the figure is omitted with the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True, slots=True)
class CpuUse:
    """CPU seconds over a wall-clock window; ``None`` means not measured."""

    wall_s: float
    cores: int
    client_s: float
    server_s: float | None
    server_note: str  # why server CPU is missing, or where it came from

    @property
    def client_pct(self) -> float:
        """Percent of one core, like top (200 % = two cores busy)."""
        return 100.0 * self.client_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def server_pct(self) -> float | None:
        if self.server_s is None or self.wall_s <= 0:
            return None
        return 100.0 * self.server_s / self.wall_s


def _tree_cpu(root: psutil.Process) -> dict[int, float]:
    """CPU seconds of a process and its children, by pid."""
    out: dict[int, float] = {}
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return out
    for proc in procs:
        try:
            t = proc.cpu_times()
            out[proc.pid] = t.user + t.system
        except psutil.Error:
            continue
    return out


def _own_cpu() -> float:
    """This process (all threads) and its children (processes mode)."""
    me = psutil.Process()
    total = sum(_tree_cpu(me).values())
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


class CpuMeter:
    """Samples CPU at :meth:`start` and :meth:`stop`.

    Backends that start and end inside the window are missed, but dbload's
    workers hold their connections for the whole run, so their backends
    exist at both samples.
    """

    def __init__(self, postmaster: psutil.Process | None, note: str) -> None:
        self._postmaster = postmaster
        self._note = note
        self._t0 = 0.0
        self._client0 = 0.0
        self._server0: dict[int, float] = {}
        self.result: CpuUse | None = None

    @property
    def started(self) -> bool:
        return self._t0 > 0

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._client0 = _own_cpu()
        self._server0 = _tree_cpu(self._postmaster) if self._postmaster else {}

    def stop(self) -> CpuUse | None:
        """Sample again; the use since :meth:`start` (None if never started)."""
        if not self.started:
            return None
        wall = time.perf_counter() - self._t0
        client = _own_cpu() - self._client0
        server: float | None = None
        if self._postmaster is not None:
            now = _tree_cpu(self._postmaster)
            server = sum(v - self._server0.get(pid, 0.0) for pid, v in now.items())
        self.result = CpuUse(
            wall_s=round(wall, 3),
            cores=psutil.cpu_count() or 1,
            client_s=round(client, 3),
            server_s=None if server is None else round(server, 3),
            server_note=self._note,
        )
        return self.result
