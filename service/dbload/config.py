"""Validated run options, as frozen records.

Everything a user can get wrong is checked here, before any connection is
opened, so bad input fails fast with a one-line :class:`UsageError`.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from dbload.errors import UsageError
from dbload.report.files import refuse_overwrite, why_unwritable
from dbload.report.pgbench_log import LogSpec
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
    # -l: pgbench's transaction log; the recorder writes it, one file per
    # worker process (processes mode's workers open theirs from this)
    log: LogSpec | None = None
    # --driver: the client library under the mode (dbload.drivers), by its
    # canonical name; "" for the mode's default
    driver: str = ""

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


# -- pgbench's flags -----------------------------------------------------------

# pgbench's built-in scripts, in its order: -b takes a unique prefix of one
PGBENCH_BUILTINS = ("tpcb-like", "simple-update", "select-only")
QUERY_MODES = ("simple", "extended", "prepared")
UINT64 = 2**64


def resolve_builtin(spec: str, known: Sequence[str], option: str = "-b") -> str:
    """``-b NAME[@W]``: a dbload built-in by its name (``known``), else one of
    pgbench's by a unique prefix, as pgbench's findBuiltin; returns
    ``name[@W]`` with the full name."""
    name, sep, weight = spec.rpartition("@")
    if not sep:
        name, weight = spec, ""
    if name in known:
        return spec
    found = [b for b in PGBENCH_BUILTINS if b.startswith(name)]
    if len(found) == 1:
        return found[0] + (f"@{weight}" if sep else "")
    listed = ", ".join(PGBENCH_BUILTINS)
    if not found:
        raise UsageError(
            f"{option}: no built-in script found for name {name!r}; pgbench's are {listed}"
            f" (and dbload's: {', '.join(k for k in known if k not in PGBENCH_BUILTINS)})"
        )
    raise UsageError(
        f"{option}: ambiguous built-in name: {len(found)} built-in scripts found for prefix"
        f" {name!r} ({', '.join(found)})"
    )


def check_per_client(
    per_client: int | None, transactions: int | None, duration_s: float | None, concurrency: int
) -> int | None:
    """``-t N`` (pgbench's transactions per client) as dbload's batch in all."""
    if per_client is None:
        return transactions
    if duration_s is not None:
        raise UsageError(
            "specify either a number of transactions (-t) or a duration (-T), not both"
        )
    if transactions is not None:
        raise UsageError("give -t (transactions per client) or -n/--iterations (in all), not both")
    if per_client < 1:
        raise UsageError(f"-t/--transactions must be at least 1, got {per_client}")
    return per_client * concurrency


def parse_random_seed(text: str | None, seed: int | None) -> int | None:
    """``--random-seed``: an integer (read as pgbench's unsigned 64 bits),
    ``time`` or ``rand``; the seed it gives is recorded for replay."""
    if text is None:
        return seed
    if seed is not None:
        raise UsageError("give --seed or --random-seed, not both")
    word = text.strip()
    if word == "time":
        return time.time_ns() // 1000 % UINT64
    if word == "rand":
        return secrets.randbelow(UINT64)
    if not re.fullmatch(r"[+-]?[0-9]+", word):
        raise UsageError(
            f"--random-seed: unrecognized random seed option {text!r};"
            ' expecting an unsigned integer, "time" or "rand"'
        )
    return int(word) % UINT64


def check_query_mode(mode: str | None) -> str:
    if mode is None:
        return "prepared"
    if mode not in QUERY_MODES:
        raise UsageError(f"invalid query mode (-M): {mode!r}; choose {', '.join(QUERY_MODES)}")
    return mode


def check_jobs(mode: str, jobs: int | None) -> int | None:
    """``-j N``: worker processes of processes mode (pgbench's threads). The
    other modes run in one process (threads: a thread per client already),
    so they take no -j but 1."""
    if jobs is None:
        return None
    if jobs < 1:
        raise UsageError(f"-j/--jobs must be at least 1, got {jobs}")
    if mode != "processes" and jobs != 1:
        raise UsageError(
            f"-j {jobs}: worker processes are for -m processes; {mode} mode runs in one"
            " process (threads: one thread per client, -c); add -m processes or drop -j"
        )
    return jobs if mode == "processes" else None


def check_scale_option(scale: int | None, defines: Mapping[str, object]) -> int | None:
    """``-s N``: the scale to report (and :scale), checked against the data."""
    if scale is None:
        return None
    if scale < 1:
        raise UsageError(f"-s/--scale must be at least 1, got {scale}")
    if "scale" in defines:
        raise UsageError("give -s or -D scale=N, not both")
    return scale


def check_scale_matches(scale: int | None, data_scale: int, uses_pgbench_tables: bool) -> int:
    """The run's scale: ``-s`` must be the data's when the workload reads
    pgbench's tables (pgbench ignores -s then; dbload says so)."""
    if scale is None:
        return data_scale
    if uses_pgbench_tables and scale != data_scale:
        raise UsageError(
            f"-s {scale}: the pgbench tables hold scale {data_scale}; load scale {scale} with"
            f" `dbload seed -s {scale} --force` (or pgbench -i -s {scale}), or drop -s"
        )
    return scale


def connection_dsn(
    dsn: str | None,
    base: str | None,
    host: str | None = None,
    port: str | None = None,
    user: str | None = None,
    dbname: str | None = None,
) -> str | None:
    """``-h/-p/-U/-d`` over ``--dsn`` (else ``base``, the environment's DSN,
    else libpq's PG* variables): psql's and pgbench's connection options."""
    given = {"host": host, "port": port, "user": user, "dbname": dbname}
    overrides = {key: value for key, value in given.items() if value is not None}
    if not overrides:
        return dsn
    if port is not None and not port.strip().isdigit():
        raise UsageError(f"-p/--port: {port!r} is not a port number")
    try:
        return make_conninfo(dsn or base or "", **overrides)
    except psycopg.ProgrammingError:  # a malformed --dsn; its text may hold a password
        raise UsageError("malformed DSN under -h/-p/-U/-d") from None
