"""A throw-away PostgreSQL container (testcontainers), when a Docker engine answers.

Every container dbload starts carries the :data:`LABEL` labels: which
process owns it, so that ``dbload db prune`` can remove those whose owner
was killed outright (SIGKILL leaves no chance to clean up, and testcontainers'
reaper, Ryuk, is not always there). The container's own cgroup gives the
server's CPU (:func:`cpu_clock_for`), whoever started it.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
from psycopg import Error as PsycopgError
from psycopg.conninfo import conninfo_to_dict

from dbload.database.environ import given, setting
from dbload.errors import DatabaseError

DEFAULT_IMAGE = "postgres:17-alpine"
IMAGE_ENV = "DBLOAD_PG_IMAGE"

LABEL = "org.dbload"  # "true" on every container dbload starts
LABEL_PID = "org.dbload.pid"  # the owning process...
LABEL_STARTED = "org.dbload.started"  # ...and its start time: a pid is reused
LABEL_HOST = "org.dbload.host"  # where that pid means something
LABEL_ID = "org.dbload.id"  # this container, before the engine named it

# How long an engine call may take before dbload gives up on it (an engine
# that stopped answering must not hang a command that already has its result).
ENGINE_TIMEOUT_S = 10
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_log = logging.getLogger("dbload")
_ryuk_lock = threading.Lock()


def docker_available(timeout: float = 1.0) -> bool:
    """True when a Docker engine answers a ping within ``timeout`` seconds.

    Never raises and never waits much longer than ``timeout``: the probe runs
    in a daemon thread, so even a Docker SDK that ignores its own timeout
    (API version negotiation, a DOCKER_HOST that black-holes packets) cannot
    hang a command.
    """
    if not setting("DOCKER_HOST") and not os.path.exists("/var/run/docker.sock"):
        return False  # the common case without Docker: answer at once
    answer: list[bool] = []
    probe = threading.Thread(target=_ping, args=(timeout, answer), daemon=True)
    probe.start()
    probe.join(timeout + 0.5)
    return bool(answer and answer[0])


def _ping(timeout: float, answer: list[bool]) -> None:
    try:
        client = _client(max(1, round(timeout)))
        try:
            answer.append(bool(client.ping()))
        finally:
            client.close()
    except Exception:  # no engine, no permission, no SDK: all mean "not available"
        answer.append(False)


def _client(timeout: float = ENGINE_TIMEOUT_S) -> Any:
    import docker

    return docker.from_env(timeout=timeout)


def engine_name() -> str:
    """Where the engine is looked for, to name it in an error."""
    return setting("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _container_class() -> Any:
    try:  # testcontainers >= 4.14 moved it; the old path still works but warns
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:
        try:
            from testcontainers.postgres import PostgresContainer
        except ImportError:
            raise DatabaseError("the container path needs testcontainers[postgres]") from None
    return PostgresContainer


def container_image(image: str | None = None) -> str:
    """``image``, else ``$DBLOAD_PG_IMAGE``, else postgres:17-alpine (blank counts as unset)."""
    return given(image) or setting(IMAGE_ENV) or DEFAULT_IMAGE


def owner_labels(token: str) -> dict[str, str]:
    """The labels of a container this process starts (see :func:`prune`)."""
    me = psutil.Process()
    return {
        LABEL: "true",
        LABEL_PID: str(me.pid),
        LABEL_STARTED: f"{me.create_time():.2f}",
        LABEL_HOST: socket.gethostname(),
        LABEL_ID: token,
    }


@contextmanager
def postgres_container(image: str | None = None) -> Iterator[str]:
    """Start a PostgreSQL container (see :func:`container_image`); yields its
    DSN and removes it at exit, also after Ctrl-C or SIGTERM."""
    image = container_image(image)
    token = secrets.token_hex(8)
    with _terminate_raises():
        _ensure_image(image)  # nothing to remove yet when this fails
        try:
            url = _start(image, token)
            yield url
        finally:
            _remove(token)


def _start(image: str, token: str) -> str:
    """Start the container; its DSN, or a one-line DatabaseError."""
    try:
        # The constructor already talks to the engine: it belongs in the try.
        container = _container_class()(
            image,
            username="dbload",
            # A fresh password per container: its port is published on the host.
            password=secrets.token_urlsafe(12),
            dbname="dbload",
            driver=None,
        ).with_kwargs(labels=owner_labels(token))
        _start_without_unpullable_reaper(container)
        host = _reachable_host(container)
        return str(container.get_connection_url(host=host, driver=None))
    except DatabaseError:
        raise
    except Exception as exc:  # engine, start or readiness: one line, no traceback
        raise DatabaseError(f"could not start a {image} container: {_reason(exc)}") from None


def _ensure_image(image: str) -> None:
    """The image is here or is pulled; else say which and why, in one line."""
    import docker.errors

    try:
        client = _client()
    except docker.errors.DockerException as exc:
        raise DatabaseError(f"no Docker engine at {engine_name()}: {_reason(exc)}") from None
    try:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            _log.info("pulling %s", image)
            client.images.pull(image)
    except docker.errors.DockerException as exc:
        raise DatabaseError(
            f"image {image} is not on this engine and could not be pulled: {_reason(exc)}"
            f" (build or pull one, or set ${IMAGE_ENV})"
        ) from None
    finally:
        client.close()


def _start_without_unpullable_reaper(container: Any) -> None:
    """Start it, with testcontainers' reaper (Ryuk) if that can be had.

    dbload removes its containers itself (and `dbload db prune` those of a
    process killed outright), so a reaper image that cannot be pulled (no
    registry) is no reason to fail: this one start goes without it.
    """
    from testcontainers.core.config import testcontainers_config as config

    if config.ryuk_disabled or _have_image(config.ryuk_image):
        container.start()
        return
    _log.info("no %s (testcontainers' reaper): dbload removes its container itself",
              config.ryuk_image)  # fmt: skip
    with _ryuk_lock:  # the setting is process-wide: restored at once
        config.ryuk_disabled = True
        try:
            container.start()
        finally:
            config.ryuk_disabled = False


def _have_image(image: str) -> bool:
    """Whether ``image`` is on the engine or could be pulled."""
    import docker.errors

    client = _client()
    try:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            client.images.pull(image)
        return True
    except docker.errors.DockerException:
        return False
    finally:
        client.close()


def _reachable_host(container: Any) -> str:
    """testcontainers' host for the published port, else 127.0.0.1.

    A VM with a stray /.dockerenv makes testcontainers think it runs inside
    a container and pick the bridge gateway, where a dockerd started with
    ``--ip 127.0.0.1`` published nothing. A local engine's ports are always
    on loopback, so that is tried second ($TESTCONTAINERS_CONNECTION_MODE or
    $TC_HOST still decide first).
    """
    port = int(container.get_exposed_port(5432))
    first = str(container.get_container_host_ip())
    candidates = [first] if not _engine_is_local() or first in _LOOPBACK else [first, "127.0.0.1"]
    for host in candidates:
        with suppress(OSError), socket.create_connection((host, port), timeout=2):
            return host
    return first  # the connection check that follows says what is wrong


def _engine_is_local() -> bool:
    host = setting("DOCKER_HOST")
    return host is None or host.startswith("unix://")


def _remove(token: str) -> None:
    """Remove our container with its volumes, found by its label, so one
    interrupted between "created" and "started" goes too. An engine that no
    longer answers: say so and what to do, and go on."""
    import docker.errors

    try:
        client = _client()
        try:
            for found in client.containers.list(all=True, filters={"label": f"{LABEL_ID}={token}"}):
                found.remove(force=True, v=True)
        finally:
            client.close()
    except (docker.errors.DockerException, OSError) as exc:
        _log.warning(
            "could not remove dbload's container (%s); `dbload db prune` removes it later",
            _reason(exc),
        )


def _reason(exc: BaseException) -> str:
    """One line: the engine's own explanation when it gave one."""
    text = str(getattr(exc, "explanation", None) or exc).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0]
    if "Read timed out" in line or "timed out" in line.lower():
        return f"the engine at {engine_name()} did not answer within {ENGINE_TIMEOUT_S} s"
    return line[:300]


class Terminated(KeyboardInterrupt):
    """SIGTERM while a container of ours exists and nobody else handles it.

    A KeyboardInterrupt, so that everything unwinds as after Ctrl-C: the CLI
    exits, pytest ends the session and runs its teardown (a SystemExit would
    only fail the test at hand and go on).
    """


@contextmanager
def _terminate_raises() -> Iterator[None]:
    """SIGTERM, while nobody else handles it, unwinds like Ctrl-C does, so
    the container is removed. (The CLI's own handler, in a run, takes over
    and finishes the run first.) Only the main thread may set handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass(frozen=True, slots=True)
class Pruned:
    """What `dbload db prune` did: container names removed and kept (owner alive)."""

    removed: tuple[str, ...]
    kept: tuple[str, ...]


def prune(everything: bool = False) -> Pruned:
    """Remove dbload's containers whose owning process is gone (all of
    them with ``everything``), with their volumes."""
    import docker.errors

    if not docker_available():
        raise DatabaseError(f"no Docker engine answered at {engine_name()} within 1 s")
    removed: list[str] = []
    kept: list[str] = []
    try:
        client = _client()
        try:
            for found in client.containers.list(all=True, filters={"label": f"{LABEL}=true"}):
                if not everything and _owner_alive(found.labels):
                    kept.append(found.name)
                    continue
                with suppress(docker.errors.NotFound):  # removed meanwhile: as good
                    found.remove(force=True, v=True)
                removed.append(found.name)
        finally:
            client.close()
    except docker.errors.DockerException as exc:
        raise DatabaseError(f"could not prune dbload's containers: {_reason(exc)}") from None
    return Pruned(tuple(removed), tuple(kept))


def _owner_alive(labels: dict[str, str]) -> bool:
    """Whether the process that started the container still runs. One on
    another host cannot be checked from here: counted alive (--all removes it)."""
    if labels.get(LABEL_HOST) != socket.gethostname():
        return True
    try:
        owner = psutil.Process(int(labels.get(LABEL_PID, "")))
        return bool(abs(owner.create_time() - float(labels.get(LABEL_STARTED, ""))) < 0.05)
    except (ValueError, psutil.Error):
        return False


@dataclass(frozen=True, slots=True)
class CpuClock:
    """A container's CPU seconds so far (None: unreadable, e.g. gone), and
    which container, for the report."""

    read: Callable[[], float | None]
    note: str


def cpu_clock_for(dsn: str) -> CpuClock | None:
    """The CPU clock of the running container whose published port ``dsn``
    reaches on this engine; None when it reaches none (or no engine answers)."""
    try:
        params = conninfo_to_dict(dsn)
        port = int(str(params.get("port") or 5432).split(",")[0])
    except (PsycopgError, ValueError):
        return None
    host = str(params.get("host") or "")
    if not _reaches_engine(host) or not docker_available(timeout=0.5):
        return None
    try:
        found = _container_publishing(port)
    except Exception:  # the engine went away between the ping and the list
        return None
    if found is None:
        return None
    cid, name, pid = found
    if pid and (path := _cgroup_cpu_file(pid)) is not None:
        return CpuClock(lambda: _read_cgroup(path), f"container {name} (its cgroup)")
    return CpuClock(lambda: _docker_stats_cpu(cid), f"container {name} (docker stats)")


def _reaches_engine(host: str) -> bool:
    """Whether a DSN's host is where the engine publishes ports."""
    if host in _LOOPBACK:
        return _engine_is_local()
    docker_host = setting("DOCKER_HOST") or ""
    return bool(host) and urllib.parse.urlparse(docker_host).hostname == host


def _container_publishing(port: int) -> tuple[str, str, int] | None:
    """(id, name, host pid) of the running container with host port ``port``."""
    client = _client(2)
    try:
        for found in client.containers.list():
            ports = found.attrs.get("NetworkSettings", {}).get("Ports") or {}
            bindings = [b for bs in ports.values() if bs for b in bs]
            if any(str(b.get("HostPort")) == str(port) for b in bindings):
                return found.id, found.name, int(found.attrs.get("State", {}).get("Pid") or 0)
    finally:
        client.close()
    return None


def _cgroup_cpu_file(pid: int) -> Path | None:
    """The file holding the CPU use of ``pid``'s cgroup, when this machine
    runs the engine (cgroup v1 cpuacct, or v2's cpu.stat)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    root = Path("/sys/fs/cgroup")
    for line in lines:
        number, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            for mount in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"):
                candidate = root / mount / path.lstrip("/") / "cpuacct.usage"
                if candidate.exists():
                    return candidate
        if number == "0" and not controllers:
            candidate = root / path.lstrip("/") / "cpu.stat"
            if candidate.exists():
                return candidate
    return None


def _read_cgroup(path: Path) -> float | None:
    try:
        text = path.read_text()
    except OSError:
        return None  # the container is gone, and its cgroup with it
    if path.name == "cpuacct.usage":
        return int(text.strip()) / 1e9
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1e6
    return None


def _docker_stats_cpu(cid: str) -> float | None:
    """A remote engine's figure: one sample of docker stats (API >= 1.41)."""
    try:
        client = _client(5)
        try:
            stats = client.api.stats(cid, stream=False, one_shot=True)
        finally:
            client.close()
        return int(stats["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9
    except Exception:  # gone, or the engine is: no figure
        return None
