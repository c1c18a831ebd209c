"""Validated run options, as frozen records.

Everything a user can get wrong is checked here, before any connection is
opened, so bad input fails fast with a one-line :class:`UsageError`.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dbload.errors import UsageError
from dbload.report.files import refuse_overwrite, why_unwritable
from dbload.workload.arrivals import RateProfile, parse_stages
from dbload.workload.model import Workload

DEFAULT_DURATION_S = 10.0
DEFAULT_CONCURRENCY = 8
# Bounds that turn a typo (-T 1e99, -R inf) into one clear line instead of a
# run that never ends or an OverflowError deep inside a worker.
MAX_SECONDS = 366 * 86_400.0  # a year: longer than any load test
# Far above what one client machine can start (~10^5/s), and low enough that
# the Poisson gaps (1/rate) stay whole nanoseconds, so the schedule advances.
MAX_RATE = 10_000_000.0
# statement_timeout is an int of milliseconds on the server (INT_MAX)
MAX_TIMEOUT_MS = 2_147_483_647


def check_seconds(value: float | None, option: str, *, zero_ok: bool = False) -> float | None:
    """A finite, positive (or zero) number of seconds, at most a year."""
    if value is None:
        return None
    low_ok = value >= 0 if zero_ok else value > 0
    if not (math.isfinite(value) and low_ok):
        what = "zero or positive" if zero_ok else "positive"
        raise UsageError(f"{option} must be a finite {what} number of seconds, got {value}")
    if value > MAX_SECONDS:
        raise UsageError(f"{option} must be at most {MAX_SECONDS:.0f} s (a year), got {value:g}")
    return value


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
    # -M, with pgbench's meaning: "simple" interpolates the values client-side
    # into one simple-protocol query, "extended" sends unnamed statements,
    # "prepared" prepares each statement once per connection (the default)
    query_mode: str = "prepared"
    # -C: a new connection for every transaction, as pgbench -C (its cost counts)
    connect_per_transaction: bool = False

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
    """Workers for ``mode``. Sequential is one connection whatever ``-c``
    says; with ``-c N`` it runs N clients' parameter streams one after
    another on it (modes/sequential.py), so it sends what N workers send.
    Without ``-c`` it is one client, as ``pgbench -c 1``."""
    if concurrency is not None and concurrency < 1:
        raise UsageError(f"-c/--concurrency must be at least 1, got {concurrency}")
    if mode == "sequential":
        return 1 if concurrency is None else concurrency
    return DEFAULT_CONCURRENCY if concurrency is None else concurrency


def check_batch(
    transactions: int | None, duration_s: float | None
) -> tuple[int | None, float | None]:
    if transactions is not None and duration_s is not None:
        raise UsageError("give either -n/--iterations or -T/--duration, not both")
    if transactions is not None and transactions < 1:
        raise UsageError(
            f"-n/--iterations must be a positive number of transactions, got {transactions}"
        )
    check_seconds(duration_s, "-T/--duration")
    if transactions is None and duration_s is None:
        return None, DEFAULT_DURATION_S
    return transactions, duration_s


def check_warmup(warmup_s: float) -> float:
    check_seconds(warmup_s, "--warmup", zero_ok=True)
    return warmup_s


def check_output(path: Path | None, inputs: Sequence[Path] = ()) -> Path | None:
    """Refuse an unwritable --json target before the run, not after it, and
    one that is among ``inputs``. ``-`` (stdout), a FIFO or a device pass:
    they are written through (see dbload.report.files)."""
    if path is None:
        return None
    problem = why_unwritable(path)
    if problem is not None:
        raise UsageError(f"--json: {problem}")
    refuse_overwrite("--json", [path], inputs)
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
    if ms > MAX_TIMEOUT_MS:
        raise UsageError(
            f"--statement-timeout: {text!r} is above PostgreSQL's limit of {MAX_TIMEOUT_MS} ms"
            " (about 24.8 days)"
        )
    return round(ms)


def check_max_errors(max_errors: int | None) -> int:
    if max_errors is not None and max_errors < 1:
        raise UsageError(f"--max-errors must be at least 1, got {max_errors}")
    return max_errors or 0


def check_rate(rate: float | None) -> float | None:
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise UsageError(f"--rate must be a positive number of transactions per second, got {rate}")
    if rate is not None and rate > MAX_RATE:
        raise UsageError(f"--rate must be at most {MAX_RATE:,.0f} per second, got {rate:g}")
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
        raise UsageError("--stages sets the run's length; drop -n/--iterations and -T/--duration")
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
    ms = float(match.group(1)) * _UNIT_MS[match.group(2)]
    if ms > MAX_SECONDS * 1000:
        raise UsageError(f"{option}: {text!r} is longer than a year")
    return ms


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


def check_progress(seconds: float | None) -> float | None:
    """-P/--progress: a finite interval, at least 0.1 s (a line a tick)."""
    if seconds is not None and not (math.isfinite(seconds) and 0.1 <= seconds <= MAX_SECONDS):
        raise UsageError(
            f"--progress must be between 0.1 and {MAX_SECONDS:.0f} seconds, got {seconds}"
        )
    return seconds


def check_scale(value: object) -> int:
    """``-D scale=N`` overrides the data's scale: a whole number >= 1."""
    try:
        number = float(str(value))
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number >= 1 and number == int(number) and number < 2**31):
        raise UsageError(f"-D scale must be a whole number of at least 1, got {value}")
    return int(number)


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
