"""Validated run options, as frozen records.

Everything a user can get wrong is checked here, before any connection is
opened, so bad input fails fast with a one-line :class:`UsageError`.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dbload.errors import UsageError
from dbload.workload.arrivals import RateProfile, parse_stages
from dbload.workload.model import Workload

DEFAULT_DURATION_S = 10.0
DEFAULT_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class Plan:
    """What one executor runs: the workload, the mode and the batch."""

    workload: Workload
    mode: str
    concurrency: int
    transactions: int | None  # total script executions (-n), shared by the workers
    duration_s: float | None  # or a measured duration (-T)
    warmup_s: float
    seed: int
    scale: int
    dsn: str  # may hold a password: never print it
    statement_timeout_ms: int = 0  # 0: the server's default
    max_tries: int = 1  # tries per transaction on 40001/40P01 (--max-tries)
    isolation: str | None = None  # default_transaction_isolation; None: the server's
    cpu_work_ms: float = 0.0  # Python-side work per transaction (--cpu-work)
    cpu_work_loops: int = 0  # the same, as calibrated loops of workload.cpu.burn
    # a worker that cannot reconnect for this long stops, with an incident,
    # rather than retry for ever: the database may be gone for good
    reconnect_give_up_s: float = 30.0
    rate: float | None = None  # open loop: transactions/s over all workers (--rate)
    latency_limit_ms: float = 0.0  # --latency-limit; 0: none
    # --stages: the rate over time; then ``rate`` is its peak, so that "is
    # this run open loop?" stays one test of ``rate``
    stages: RateProfile | None = None

    @property
    def rate_profile(self) -> RateProfile | None:
        """The open-loop schedule's rate over time (None: closed loop)."""
        if self.stages is not None:
            return self.stages
        return RateProfile(self.rate) if self.rate else None

    @property
    def latency_limit_ns(self) -> int:
        return int(self.latency_limit_ms * 1_000_000)

    processes: int | None = None  # processes mode: worker processes (None: one per core)

    def server_settings(self) -> dict[str, str]:
        """Session settings every worker connection starts with."""
        settings: dict[str, str] = {}
        if self.statement_timeout_ms:
            settings["statement_timeout"] = f"{self.statement_timeout_ms}ms"
        if self.isolation:
            settings["default_transaction_isolation"] = self.isolation
        return settings

    def quota(self, worker: int) -> int | None:
        """How many transactions worker ``worker`` runs (None: until the deadline).

        The batch is split statically, like pgbench's -t per client, so that
        a given seed and concurrency yield the same parameters in every mode.
        """
        if self.transactions is None:
            return None
        share, extra = divmod(self.transactions, self.concurrency)
        return share + (1 if worker < extra else 0)


def check_concurrency(mode: str, concurrency: int | None) -> int:
    """Workers for ``mode``; sequential is one connection whatever ``-c`` says,
    so the same command line can be run in every mode."""
    if concurrency is not None and concurrency < 1:
        raise UsageError(f"-c/--concurrency must be at least 1, got {concurrency}")
    if mode == "sequential":
        return 1
    return DEFAULT_CONCURRENCY if concurrency is None else concurrency


def check_batch(
    transactions: int | None, duration_s: float | None
) -> tuple[int | None, float | None]:
    if transactions is not None and duration_s is not None:
        raise UsageError("give either -n/--queries or -T/--duration, not both")
    if transactions is not None and transactions < 1:
        raise UsageError(
            f"-n/--queries must be a positive number of transactions, got {transactions}"
        )
    if duration_s is not None and duration_s <= 0:
        raise UsageError(f"-T/--duration must be positive, got {duration_s}")
    if transactions is None and duration_s is None:
        return None, DEFAULT_DURATION_S
    return transactions, duration_s


def check_warmup(warmup_s: float) -> float:
    if warmup_s < 0:
        raise UsageError(f"--warmup must be zero or positive, got {warmup_s}")
    return warmup_s


def check_output(path: Path | None) -> Path | None:
    """Refuse an unwritable --json target before the run, not after it."""
    if path is None:
        return None
    parent = path.expanduser().resolve().parent
    if not parent.is_dir():
        raise UsageError(f"--json: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"--json: directory {parent} is not writable")
    if path.is_dir():
        raise UsageError(f"--json: {path} is a directory")
    return path


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min)?\s*\Z")
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "min": 60_000.0, None: 1.0}


def parse_timeout_ms(text: str | None) -> int:
    """``100ms``, ``2s``, ``1.5s`` or a bare number of milliseconds; 0 = off."""
    if text is None:
        return 0
    match = _DURATION.match(text)
    if match is None:
        raise UsageError(f"--statement-timeout: {text!r} is not a duration like 100ms or 2s")
    ms = float(match.group(1)) * _UNIT_MS[match.group(2)]
    if 0 < ms < 1:
        raise UsageError(f"--statement-timeout: {text!r} is below PostgreSQL's 1 ms resolution")
    return round(ms)


def check_max_errors(max_errors: int | None) -> int:
    if max_errors is not None and max_errors < 1:
        raise UsageError(f"--max-errors must be at least 1, got {max_errors}")
    return max_errors or 0


def check_rate(rate: float | None) -> float | None:
    if rate is not None and not rate > 0:
        raise UsageError(f"--rate must be a positive number of transactions per second, got {rate}")
    return rate


def check_stages(
    text: str | None,
    rate: float | None,
    batch: tuple[int | None, float | None],
    warmup_s: float,
) -> RateProfile | None:
    """``--stages``, ramping from ``--rate`` (else 0); the stages are the
    whole run, so none of -n, -T or --warmup goes with them."""
    if text is None:
        return None
    if batch != (None, None):
        raise UsageError("--stages sets the run's length; drop -n/--queries and -T/--duration")
    if warmup_s > 0:
        raise UsageError("--stages: drop --warmup; a first stage at a low rate warms up")
    return parse_stages(text, rate)


def parse_duration_ms(text: str | None, option: str) -> float:
    """``10ms``, ``1.5s``, ``500us`` or bare milliseconds, as a float; 0 = off."""
    if text is None:
        return 0.0
    match = _DURATION.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise UsageError(f"{option}: {text!r} is not a positive duration like 10ms or 1.5s")
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def check_max_tries(max_tries: int | None) -> int:
    if max_tries is not None and max_tries < 1:
        raise UsageError(f"--max-tries must be at least 1 (1: no retry), got {max_tries}")
    return max_tries or 1


ISOLATION_LEVELS = {
    "read-committed": "read committed",
    "repeatable-read": "repeatable read",
    "serializable": "serializable",
}


def check_isolation(isolation: str | None) -> str | None:
    """The CLI's spelling (``repeatable-read``) to PostgreSQL's."""
    if isolation is None:
        return None
    level = ISOLATION_LEVELS.get(isolation.strip().lower().replace(" ", "-").replace("_", "-"))
    if level is None:
        raise UsageError(
            f"--isolation: unknown level {isolation!r}; choose one of {', '.join(ISOLATION_LEVELS)}"
        )
    return level


def check_cpu_work(ms: float | None) -> float:
    if ms is not None and not 0 <= ms <= 10_000:
        raise UsageError(f"--cpu-work must be between 0 and 10000 ms, got {ms}")
    return ms or 0.0


def check_sweep(values: Sequence[int] | None) -> list[int]:
    """The concurrency sweep of ``compare`` (default: 8)."""
    if values is None:
        return [DEFAULT_CONCURRENCY]
    if not values:
        raise UsageError("-c/--concurrency: the sweep is empty")
    if any(v < 1 for v in values):
        raise UsageError(f"-c/--concurrency: values must be at least 1, got {list(values)}")
    return list(dict.fromkeys(values))


def parse_sweep(text: str) -> list[int]:
    """``1,2,4,8`` (commas or spaces) as a list of ints."""
    items = [item for item in re.split(r"[,\s]+", text.strip()) if item]
    try:
        return [int(item) for item in items]
    except ValueError:
        raise UsageError(
            f"-c/--concurrency: {text!r} is not a list of numbers like 1,2,4,8"
        ) from None


def pick_seed(seed: int | None) -> int:
    """A user seed, or a fresh one that the result records for replay."""
    return seed if seed is not None else secrets.randbelow(2**31)
