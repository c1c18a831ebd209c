"""``--cluster`` and ``--cluster-workers``, checked before anything runs."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from dbload.errors import UsageError

CLUSTER_MODES = ("async",)
_SCHEMES = ("tcp", "tls")


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """A Dask scheduler to use (``address``), or a LocalCluster of
    ``local_workers`` worker processes to start; ``workers``: how many of
    its workers to use (None: all)."""

    address: str | None
    local_workers: int = 0
    workers: int | None = None

    @property
    def label(self) -> str:
        return self.address or f"local:{self.local_workers}"


def parse_cluster(text: str, workers: int | None = None) -> ClusterSpec:
    """``tcp://host:port`` (``host:port`` alone means tcp), or ``local:N``."""
    given = text.strip()
    if workers is not None and workers < 1:
        raise UsageError(f"--cluster-workers must be at least 1, got {workers}")
    if given.startswith("local:"):
        count = given.removeprefix("local:")
        if not count.isdigit() or int(count) < 1:
            raise UsageError(f"--cluster {given}: local:N needs N >= 1 Dask worker processes")
        n = int(count)
        if workers is not None and workers > n:
            raise UsageError(f"--cluster-workers {workers}: local:{n} starts only {n} workers")
        return ClusterSpec(address=None, local_workers=n, workers=workers)
    return ClusterSpec(address=_address(given), workers=workers)


def _address(given: str) -> str:
    url = urlsplit(given if "://" in given else f"tcp://{given}")
    problem = None
    if url.scheme not in _SCHEMES:
        problem = f"scheme {url.scheme!r} (Dask's are {', '.join(_SCHEMES)})"
    elif not url.hostname:
        problem = "no host"
    elif url.path not in ("", "/") or url.query:
        problem = "a path or query"
    else:
        try:
            port = url.port
        except ValueError:
            port = -1
        if port is None or not 0 < port < 65536:
            problem = "no valid port"
    if problem is not None:
        raise UsageError(
            f"--cluster {given!r}: not a Dask scheduler address ({problem});"
            " give tcp://HOST:PORT (a scheduler's default port is 8786) or local:N"
        )
    host = url.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{url.scheme}://{host}:{url.port}"


def check_cluster_mode(mode: str) -> None:
    if mode not in CLUSTER_MODES:
        raise UsageError(
            f"--cluster runs the async executor on every Dask worker, not --mode {mode}:"
            " use --mode async (for more processes per host, start more Dask workers:"
            " dask worker --nworkers N)"
        )
