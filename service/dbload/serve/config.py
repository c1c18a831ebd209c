"""What ``dbload serve`` is started with: where it listens, who may call it,
the databases it may run on and where it keeps results."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from dbload.errors import UsageError

DEFAULT_TARGET = "default"
DEFAULT_PORT = 8642
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """A database the server may run on, by the name requests give.
    ``dsn`` None: the database ``dbload run`` would resolve (embedded included)."""

    name: str
    dsn: str | None = None


@dataclass(frozen=True, slots=True)
class ServeConfig:
    targets: tuple[TargetSpec, ...]
    results_dir: Path
    workloads_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None


def parse_targets(texts: Sequence[str]) -> tuple[TargetSpec, ...]:
    """``--target NAME=DSN``, repeatable; none: the one default target."""
    if not texts:
        return (TargetSpec(DEFAULT_TARGET),)
    specs: dict[str, TargetSpec] = {}
    for text in texts:
        name, sep, dsn = text.partition("=")
        name = name.strip()
        if not sep or not dsn.strip():
            raise UsageError(f"--target {name or text!r}: give NAME=DSN (local=postgresql://...)")
        if not _NAME.fullmatch(name):
            raise UsageError(
                f"--target {name!r}: a name is letters, digits, '_', '.' or '-' (at most 40)"
            )
        if name in specs:
            raise UsageError(f"--target {name!r} is given twice")
        specs[name] = TargetSpec(name, dsn.strip())
    return tuple(specs.values())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """A server others can reach starts a run on your database for whoever asks:
    it must ask for a token."""
    if token is not None and not token.strip():
        raise UsageError("--token: give a non-empty token")
    if not is_loopback(host) and token is None:
        raise UsageError(
            f"--host {host} is reachable from other machines: give --token TOKEN too"
            " (callers then send 'Authorization: Bearer TOKEN')"
        )


def check_port(port: int, option: str = "--port") -> int:
    if not 0 <= port <= 65535:
        raise UsageError(f"{option} {port}: a TCP port is 0 to 65535 (0: any free one)")
    return port


def check_workloads_dir(path: Path | None) -> Path | None:
    if path is not None and not path.is_dir():
        raise UsageError(f"--workloads {path}: not a directory")
    return path


def default_results_dir() -> Path:
    return Path(platformdirs.user_data_dir("dbload")) / "runs"
