"""pgbench's transaction logs (``-l``), line for line, so pgbench's tools read dbload's.

pgbench 15 writes one file per thread, ``PREFIX.PID`` for the first and
``PREFIX.PID.N`` for thread N; dbload writes one per worker *process* (the
``-j`` of processes mode; every other mode runs in one process, as pgbench
``-j 1``), named the same way after the run's PID. Two formats:

* a line per transaction: ``client_id transaction_no time script_no
  time_epoch time_us [schedule_lag] [retries]``, ``time`` being ``failed`` or
  ``skipped`` for those; lag appears with ``--rate``, retries when
  ``--max-tries`` is not 1, and transaction_no counts from 1 per client, as
  pgbench 15 writes them;
* ``--aggregate-interval N``: a line per interval, ``interval_start
  num_transactions sum_latency sum_latency_2 min_latency max_latency sum_lag
  sum_lag_2 min_lag max_lag skipped retried retries serialization_failures
  deadlock_failures`` (15 fields, µs, as pgbench 15 prints them).

Differences, on purpose: the last, partial interval is written too (pgbench
drops it, so a short ``-t`` run logs nothing), so the counts add up to the
run's; and the failure columns are filled (pgbench 15 fills them only with
``--failures-detailed``, which dbload does not have). Failures other than
serialization and deadlock have no column in pgbench 15's aggregate format
(pgbench aborts the client on them); they are in the per-transaction lines.

A log is a sink the recorder calls; executors know nothing of it. The
:class:`LogSpec` is picklable: processes mode's workers open their own file
from it.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dbload.errors import DbloadError, UsageError
from dbload.report.files import why_unwritable

SERIALIZATION, DEADLOCK = "40001", "40P01"
DEFAULT_PREFIX = "pgbench_log"
MAX_AGGREGATE_S = 2_147_483_647  # pgbench's range for --aggregate-interval


@dataclass(frozen=True, slots=True)
class LogSpec:
    """What ``-l`` writes and where (one file per worker process)."""

    prefix: str = DEFAULT_PREFIX
    pid: int = 0  # the run's process id: in every file's name, as pgbench's main_pid
    aggregate_s: int = 0  # --aggregate-interval; 0: a line per transaction
    sampling_rate: float = 0.0  # --sampling-rate; 0: every transaction
    throttled: bool = False  # --rate: the schedule_lag column
    latency_limit: bool = False  # --latency-limit: the skipped count
    retries: bool = False  # --max-tries not 1: the retries column
    seed: int = 0  # of the sampling draws

    def path(self, worker: int) -> Path:
        name = f"{self.prefix}.{self.pid}" + (f".{worker}" if worker else "")
        return Path(name)

    def paths(self, workers: int) -> list[Path]:
        return [self.path(k) for k in range(max(1, workers))]

    def open(self, worker: int = 0) -> TransactionLog:
        """The sink of worker ``worker`` (its file created now, never overwritten)."""
        return TransactionLog(self, worker)


def check_log_options(
    log: bool,
    prefix: str | None,
    aggregate_s: int | None,
    sampling_rate: float | None,
    duration_s: float | None,
) -> None:
    """pgbench's rules for -l's companions, with its messages."""
    if not log:
        if sampling_rate is not None:
            raise UsageError(
                "log sampling (--sampling-rate) is allowed only when logging transactions (-l)"
            )
        if aggregate_s is not None:
            raise UsageError("log aggregation (--aggregate-interval) is allowed only with -l")
        if prefix is not None:
            raise UsageError(
                "log file prefix (--log-prefix) is allowed only when logging transactions (-l)"
            )
        return
    if sampling_rate is not None and not (math.isfinite(sampling_rate) and 0 < sampling_rate <= 1):
        raise UsageError(f"--sampling-rate must be above 0 and at most 1, got {sampling_rate:g}")
    if aggregate_s is not None:
        if not 1 <= aggregate_s <= MAX_AGGREGATE_S:
            raise UsageError(
                f"--aggregate-interval must be in range 1..{MAX_AGGREGATE_S}, got {aggregate_s}"
            )
        if sampling_rate is not None:
            raise UsageError(
                "log sampling (--sampling-rate) and aggregation (--aggregate-interval)"
                " cannot be used at the same time"
            )
        if duration_s is not None and aggregate_s > duration_s:
            raise UsageError(
                f"number of seconds for aggregation ({aggregate_s}) must not be higher than"
                f" test duration ({duration_s:g})"
            )
        if duration_s is not None and duration_s % aggregate_s:
            raise UsageError(
                f"duration ({duration_s:g}) must be a multiple of aggregation interval"
                f" ({aggregate_s})"
            )
    if prefix is not None and not prefix.strip():
        raise UsageError("--log-prefix is empty")


def check_log_files(spec: LogSpec, workers: int) -> None:
    """Refuse, before the run, a log file that exists or cannot be written."""
    for path in spec.paths(workers):
        if path.exists() or path.is_symlink():
            raise UsageError(f"-l: {path} exists; dbload does not overwrite it")
        problem = why_unwritable(path)
        if problem is not None:
            raise UsageError(f"-l: {problem}")


class _Stats:
    """pgbench's SimpleStats: count, min, max, sum, sum of squares (µs)."""

    __slots__ = ("count", "max", "min", "sum", "sum2")

    def __init__(self) -> None:
        self.count = 0
        self.min = self.max = self.sum = self.sum2 = 0.0

    def add(self, value: float) -> None:
        if self.count == 0 or value < self.min:
            self.min = value
        if self.count == 0 or value > self.max:
            self.max = value
        self.count += 1
        self.sum += value
        self.sum2 += value * value


class _Aggregate:
    """One --aggregate-interval's figures (pgbench's StatsData)."""

    __slots__ = ("deadlocks", "lag", "latency", "retried", "retries", "serialization", "skipped")

    def __init__(self) -> None:
        self.latency = _Stats()
        self.lag = _Stats()
        self.skipped = self.retried = self.retries = 0
        self.serialization = self.deadlocks = 0

    @property
    def empty(self) -> bool:
        return not (self.latency.count or self.skipped or self.retried)

    def line(self, start_s: int) -> str:
        lat, lag = self.latency, self.lag
        return (
            f"{start_s} {lat.count} {lat.sum:.0f} {lat.sum2:.0f} {lat.min:.0f} {lat.max:.0f}"
            f" {lag.sum:.0f} {lag.sum2:.0f} {lag.min:.0f} {lag.max:.0f}"
            f" {self.skipped} {self.retried} {self.retries}"
            f" {self.serialization} {self.deadlocks}\n"
        )


class TransactionLog:
    """One worker's log file. Not thread-safe: the recorder calls it under its lock."""

    def __init__(self, spec: LogSpec, worker: int) -> None:
        self.spec = spec
        self.path = spec.path(worker)
        try:
            # "x": created here or not at all, whatever appeared since the check
            self._file: IO[str] = self.path.open("x", encoding="ascii", buffering=1 << 16)
        except OSError as exc:
            raise DbloadError(f"-l: cannot create {self.path}: {exc.strerror or exc}") from None
        # perf_counter_ns (the recorder's clock) to Unix time, for time_epoch
        self._epoch_ns = time.time_ns() - time.perf_counter_ns()
        self._counts: dict[int, int] = {}
        rate = spec.sampling_rate
        self._sample = random.Random(f"dbload:{spec.seed}:log:{worker}").random if rate else None
        self._agg = _Aggregate()
        self._agg_start_us = 0
        self._agg_us = spec.aggregate_s * 1_000_000
        self.lines = 0

    def begin(self, measure_from_ns: int) -> None:
        """The measured window starts: the first interval starts here."""
        self._agg_start_us = (measure_from_ns + self._epoch_ns) // 1000

    def transaction(
        self,
        client: int,
        script: int,
        start_ns: int,
        end_ns: int,
        error: str | None,
        tries: int,
        lag_ns: int | None,
    ) -> None:
        """A finished transaction (ok when ``error`` is None)."""
        number = self._counts.get(client, 0) + 1
        self._counts[client] = number
        if self._sample is not None and self._sample() > self.spec.sampling_rate:
            return
        now_us = (end_ns + self._epoch_ns) // 1000
        # pgbench measures latency and lag of successful transactions only
        latency = (end_ns - start_ns) / 1000 if error is None else 0.0
        lag = (lag_ns or 0) / 1000 if error is None else 0.0
        if self._agg_us:
            agg = self._roll(now_us)
            if tries > 1:
                agg.retried += 1
                agg.retries += tries - 1
            if error is None:
                agg.latency.add(latency)
                if self.spec.throttled:
                    agg.lag.add(lag)
            elif error == SERIALIZATION:
                agg.serialization += 1
            elif error == DEADLOCK:
                agg.deadlocks += 1
            return
        time_field = f"{latency:.0f}" if error is None else "failed"
        self._write(client, number, time_field, script, now_us, lag, tries)

    def skipped(self, client: int, script: int, at_ns: int) -> None:
        """A transaction not run: already later than --latency-limit when due."""
        number = self._counts.get(client, 0) + 1
        self._counts[client] = number
        if self._sample is not None and self._sample() > self.spec.sampling_rate:
            return
        now_us = (at_ns + self._epoch_ns) // 1000
        if self._agg_us:
            self._roll(now_us).skipped += 1
            return
        self._write(client, number, "skipped", script, now_us, 0.0, 1)

    def close(self, end_ns: int) -> None:
        """The run is over: the intervals due, the partial last one, and close."""
        if self._agg_us:
            agg = self._roll((end_ns + self._epoch_ns) // 1000)
            if not agg.empty or agg.serialization or agg.deadlocks:
                self._emit(agg.line(self._agg_start_us // 1_000_000))
            self._agg = _Aggregate()
        self._file.close()

    def _write(
        self, client: int, number: int, time_field: str, script: int, now_us: int, lag: float,
        tries: int,
    ) -> None:  # fmt: skip
        seconds, micros = divmod(now_us, 1_000_000)
        line = f"{client} {number} {time_field} {script} {seconds} {micros}"
        if self.spec.throttled:
            line += f" {lag:.0f}"
        if self.spec.retries:
            line += f" {tries - 1}"
        self._emit(line + "\n")

    def _roll(self, now_us: int) -> _Aggregate:
        """The interval ``now_us`` falls in, writing those that ended before it
        (empty ones too, as pgbench does at a low rate)."""
        while self._agg_start_us + self._agg_us <= now_us:
            self._emit(self._agg.line(self._agg_start_us // 1_000_000))
            self._agg = _Aggregate()
            self._agg_start_us += self._agg_us
        return self._agg

    def _emit(self, line: str) -> None:
        self._file.write(line)
        self.lines += 1
