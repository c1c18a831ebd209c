"""The recorder: what executors report to, and all they know of measurement.

Executors call :meth:`Recorder.begin` once every worker holds a prepared
connection, then :meth:`Recorder.record` after each transaction. The hot
path only counts integers in dicts; each interval's counts go into the HDR
histograms a few at a time (see :meth:`Recorder._flush`), which keeps
memory constant in run length and the per-transaction cost near 1 µs.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

from dbload.measure.histogram import BucketIndex, new_histogram, percentile_of_counts
from dbload.workload.model import SLEEP, Step

NS_PER_S = 1_000_000_000
# which histogram a pending value goes to (statements: their index, >= 0;
# script k's transactions: SCRIPTS - k)
TRANSACTIONS, LAG, SCRIPTS = -1, -2, -3
# pending values recorded per record() call: at least what one transaction
# can add (a latency, a lag, one per statement), so the queue never grows
DRAIN_MIN = 4
# An interval is closed once a transaction ends this long after its tick, not
# at the tick: a run ending just after a tick (a -T deadline is one) would
# otherwise end the series with a point of a few in-flight transactions
# whose ``t``, rounded to the millisecond, is the tick's own.
ROLL_SLACK_NS = 1_000_000
# a last interval shorter than this share of the longest before it is a sliver
PARTIAL_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class Interval:
    """One point of the per-interval series (``t`` = seconds since measuring began)."""

    t: float
    transactions: int
    errors: int
    p99_ms: float


def without_sliver(series: Sequence[Interval]) -> Sequence[Interval]:
    """The series without a last interval shorter than half the others.

    A run's last interval ends when the run does, often a few ms past its
    last whole one (workers end the transactions in flight, processes send
    their last figures): what ended in those ms, often nothing, is no rate
    to draw or to judge the run's end by. From half an interval on it is an
    estimate as good as the others and stays. Its transactions still count
    in the run's totals; only the rate series leaves it out.
    """
    if len(series) < 2:
        return series
    ends = [0.0, *(point.t for point in series)]
    spans = [end - start for start, end in pairwise(ends)]
    if spans[-1] < PARTIAL_SHARE * max(spans[:-1]):
        return series[:-1]
    return series


class TransactionSink(Protocol):
    """Where each measured transaction goes as it ends (pgbench's -l log,
    dbload.report.pgbench_log): called under the recorder's lock."""

    def begin(self, measure_from_ns: int) -> None: ...

    def transaction(
        self,
        client: int,
        script: int,
        start_ns: int,
        end_ns: int,
        error: str | None,
        tries: int,
        lag_ns: int | None,
    ) -> None: ...

    def skipped(self, client: int, script: int, at_ns: int) -> None: ...

    def close(self, end_ns: int) -> None: ...


class SinkSpec(Protocol):
    """A picklable description of a sink (a Plan field), opened per worker
    process: processes mode's workers each open their own."""

    def open(self, worker: int = 0) -> TransactionSink: ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a progress display may read while the run goes on."""

    elapsed_s: float
    warming_up: bool
    transactions: int
    errors: int
    last: Interval | None
    # the last few intervals, oldest first: a reader polling less often than
    # once an interval (or at the end, when a short final one follows at
    # once) still sees each of them
    recent: tuple[Interval, ...] = ()


RECENT = 8


class Recorder:
    """Collects latencies and counters of one run (of one process).

    Thread-safe: the threads executor shares one recorder between workers.
    The lock is uncontended in practice (the GIL serialises the workers
    anyway) and costs ~0.1 µs.
    """

    def __init__(self, n_statements: int, *, interval_s: float = 1.0, scripts: int = 1) -> None:
        self.interval_ns = int(interval_s * NS_PER_S)
        self.transactions = new_histogram()
        self.statements = [new_histogram() for _ in range(n_statements)]
        # per script (pgbench's per-script report): successes, failures and
        # the successes' latencies; grown on demand (a worker process's
        # recorder is built without the count)
        self.script_ok = [0] * scripts
        self.script_failed = [0] * scripts
        self.script_latency = [new_histogram() for _ in range(scripts)]
        self._script_buf: list[dict[int, int]] = [{} for _ in range(scripts)]
        # -l: the per-transaction sink (see attach_log), open from begin() to
        # finish(); None: no log
        self.log: TransactionSink | None = None
        self._log_spec: tuple[SinkSpec, int] | None = None
        self.series: list[Interval] = []
        self.ok = 0
        self.failed = 0
        self.retried = 0  # transactions that needed more than one try (--max-tries)
        self.retries = 0  # tries beyond the first, over all transactions
        self.cancelled = 0  # in flight at Ctrl-C and cancelled after the grace period
        # open loop (--rate): how late each transaction started against its
        # schedule, and those skipped or late against --latency-limit
        self.lag = new_histogram()
        self.skipped = 0
        self.late = 0
        self.latency_limit_ns = 0  # 0: no limit
        self._lag_buf: dict[int, int] = {}  # µs -> count, this interval
        self.statement_count = 0
        self.errors: dict[str, int] = {}
        # the first message seen for each code of ``errors``: "22012" alone
        # does not tell a user which division failed
        self.error_examples: dict[str, str] = {}
        self.warmup_transactions = 0
        self.started_ns = 0  # when the clock started (workers released)
        self.measure_from_ns = 0  # end of warm-up
        self.ended_ns = 0
        # e.g. the CPU meter: sampled while the workers' connections still exist
        self.on_begin: Callable[[], None] | None = None
        self.on_finish: Callable[[], object] | None = None
        self.aborted = False  # stopped by max_errors
        # faults that lost part of the run but did not end it (a worker process died)
        self.incidents: list[str] = []
        # called under the lock after each interval is folded in (processes mode
        # streams its workers' intervals to the parent from here)
        self.on_interval: Callable[[], None] | None = None
        self._max_errors = 0
        self._stop: threading.Event | None = None
        self._lock = threading.Lock()
        self._next_tick_ns = 0
        self._roll_ns = 0  # when the interval ending at _next_tick_ns is closed
        # this interval's latencies as µs -> count: a dict increment costs
        # about what a list append does, and latencies repeat a lot
        self._buf: dict[int, int] = {}
        self._stmt_buf: list[dict[int, int]] = [{} for _ in range(n_statements)]
        self._interval_errors = 0
        # (histogram, µs, count) still to record: see _drain
        self._pending: deque[tuple[int, int, int]] = deque()
        self._buckets = BucketIndex()
        self._drain_per_record = DRAIN_MIN + n_statements

    def attach_log(self, spec: SinkSpec | None, worker: int = 0) -> None:
        """Send every measured transaction to the sink ``spec`` opens for
        ``worker`` (processes mode: each worker process its own). It is
        opened when the clock starts: a run that fails while it connects and
        prepares leaves no empty log behind."""
        self._log_spec = None if spec is None else (spec, worker)

    def abort_after(self, max_errors: int, stop: threading.Event) -> None:
        """Set ``stop`` once ``max_errors`` transactions have failed (--max-errors)."""
        self._max_errors, self._stop = max_errors, stop

    # -- executor side -------------------------------------------------------

    @property
    def max_errors(self) -> int:
        """The --max-errors threshold (0: none)."""
        return self._max_errors

    def begin(self, warmup_s: float = 0.0, at_ns: int | None = None) -> int:
        """Start the clock (now, or at ``at_ns``: processes mode starts every
        worker process's recorder at the parent's instant; ``perf_counter_ns``
        is CLOCK_MONOTONIC, one clock for all processes); returns its start."""
        now = time.perf_counter_ns() if at_ns is None else at_ns
        self.started_ns = now
        self.measure_from_ns = now + int(warmup_s * NS_PER_S)
        self._next_tick_ns = self.measure_from_ns + self.interval_ns
        self._roll_ns = self._next_tick_ns + ROLL_SLACK_NS
        if self._log_spec is not None:
            spec, worker = self._log_spec
            self.log = spec.open(worker)
            self.log.begin(self.measure_from_ns)
        if self.on_begin is not None:
            self.on_begin()
        return now

    def record(
        self,
        start_ns: int,
        end_ns: int,
        steps: Sequence[Step],
        step_ns: Sequence[int],
        error: str | None = None,
        tries: int = 1,
        lag_ns: int | None = None,
        message: str | None = None,
        *,
        script: int = 0,
        client: int = 0,
    ) -> None:
        """One finished transaction (of ``script``, run by ``client``).

        ``step_ns[i]`` is the duration of ``steps[i]``; a failed transaction
        passes the durations of the steps that completed and the SQLSTATE
        (or a short code for non-SQL failures) as ``error``. ``tries`` counts
        the attempts (>1 after serialization failures or deadlocks); latency
        spans them all, from the first start, as pgbench measures it. In
        open loop ``start_ns`` is the scheduled start and ``lag_ns`` how late
        the transaction really started, so latency includes the wait for a
        free worker (coordinated omission corrected). ``message`` is the
        server's message for ``error`` (first line, no severity).
        """
        if start_ns < self.measure_from_ns:
            self.warmup_transactions += 1
            return
        with self._lock:
            while end_ns >= self._roll_ns:
                self._roll()
            if tries > 1:
                self.retried += 1
                self.retries += tries - 1
            if lag_ns is not None:
                lag = self._lag_buf
                lag[lag_ns // 1000] = lag.get(lag_ns // 1000, 0) + 1
            if self.latency_limit_ns and error is None:
                self.late += end_ns - start_ns > self.latency_limit_ns
            if script >= len(self.script_ok):
                self.grow_scripts(script)
            if self.log is not None:
                self.log.transaction(client, script, start_ns, end_ns, error, tries, lag_ns)
            if error is not None:
                self.script_failed[script] += 1
                self.failed += 1
                self._interval_errors += 1
                self.errors[error] = self.errors.get(error, 0) + 1
                if message and error not in self.error_examples:
                    self.error_examples[error] = message
                if self._stop is not None and self.failed >= self._max_errors:
                    self.aborted = True
                    self._stop.set()
            else:
                self.ok += 1
                self.script_ok[script] += 1
                us = (end_ns - start_ns) // 1000
                self._buf[us] = self._buf.get(us, 0) + 1
                counts = self._script_buf[script]
                counts[us] = counts.get(us, 0) + 1
            for (index, _), ns in zip(steps, step_ns, strict=False):
                if index != SLEEP:
                    counts = self._stmt_buf[index]
                    counts[ns // 1000] = counts.get(ns // 1000, 0) + 1
                    self.statement_count += 1
            if self._pending:
                self._drain(self._drain_per_record)

    def skip(self, due_ns: int, lag_ns: int, *, script: int = 0, client: int = 0) -> None:
        """Open loop: a transaction not run because it was already later than
        --latency-limit when a worker was free for it (pgbench -L with -R)."""
        if due_ns < self.measure_from_ns:
            return
        with self._lock:
            self.skipped += 1
            if self.log is not None:
                self.log.skipped(client, script, due_ns + lag_ns)
            self._lag_buf[lag_ns // 1000] = self._lag_buf.get(lag_ns // 1000, 0) + 1

    def cancel(self) -> None:
        """One transaction cut short by a stop: neither a success nor a server error."""
        with self._lock:
            self.cancelled += 1

    def finish(self) -> None:
        """Stop the clock and flush the last (partial) interval."""
        with self._lock:
            now = time.perf_counter_ns()
            self.ended_ns = now
            while now >= self._roll_ns:
                self._roll()
            if now > self.measure_from_ns:
                self._flush(partial_end_ns=now)
            self._drain(len(self._pending))
            if self.log is not None:
                self.log.close(now)
                self.log = None
        if self.on_finish is not None:
            self.on_finish()

    # -- reader side ---------------------------------------------------------

    def snapshot(self) -> Snapshot:
        now = time.perf_counter_ns()
        return Snapshot(
            elapsed_s=max(0.0, (now - self.measure_from_ns) / NS_PER_S),
            warming_up=now < self.measure_from_ns,
            transactions=self.ok + self.failed,
            errors=self.failed,
            last=self.series[-1] if self.series else None,
            recent=tuple(self.series[-RECENT:]),
        )

    @property
    def measured_s(self) -> float:
        end = self.ended_ns or time.perf_counter_ns()
        return max(0.0, (end - self.measure_from_ns) / NS_PER_S)

    # -- internals -----------------------------------------------------------

    def grow_scripts(self, script: int) -> None:
        """Room for scripts up to index ``script``."""
        more = script + 1 - len(self.script_ok)
        self.script_ok += [0] * more
        self.script_failed += [0] * more
        self.script_latency += [new_histogram() for _ in range(more)]
        self._script_buf += [{} for _ in range(more)]

    def _roll(self) -> None:
        self._flush(partial_end_ns=None)
        self._next_tick_ns += self.interval_ns
        self._roll_ns += self.interval_ns

    def _flush(self, partial_end_ns: int | None) -> None:
        """Close an interval: its point of the series now, its latencies into
        the run's histograms a few at a time from the next records on.

        hdrhistogram's record_value is pure Python (~1 µs a call): recording
        an interval's few thousand distinct values at once stalled the
        event loop ~10 ms a second at 27k tps, which an open-loop run saw
        as schedule lag (p99 1.2-1.8 ms at 50 % of capacity). Spread over the
        next records, the same work is never more than a few µs at a time.
        """
        buf, self._buf = self._buf, {}
        end = self._next_tick_ns if partial_end_ns is None else partial_end_ns
        self.series.append(
            Interval(
                t=round((end - self.measure_from_ns) / NS_PER_S, 3),
                transactions=sum(buf.values()) + self._interval_errors,
                errors=self._interval_errors,
                p99_ms=percentile_of_counts(buf, 99.0) / 1000.0,
            )
        )
        self._interval_errors = 0
        pending = self._pending
        pending.extend((TRANSACTIONS, us, n) for us, n in buf.items())
        if self._lag_buf:
            pending.extend((LAG, us, n) for us, n in self._lag_buf.items())
            self._lag_buf = {}
        for index, counts in enumerate(self._stmt_buf):
            if counts:
                pending.extend((index, us, n) for us, n in counts.items())
                self._stmt_buf[index] = {}
        for index, counts in enumerate(self._script_buf):
            if counts:
                pending.extend((SCRIPTS - index, us, n) for us, n in counts.items())
                self._script_buf[index] = {}
        if self.on_interval is not None:
            self.on_interval()

    def _drain(self, count: int) -> None:
        """Record ``count`` pending values. The histogram is looked up now,
        not when the value was queued: processes mode swaps in fresh
        histograms at every interval (measure/merge.py, DeltaTaker), and a
        value recorded late belongs in the next delta, not a sent one."""
        pending = self._pending
        record_into = self._buckets.record
        for _ in range(min(count, len(pending))):
            which, us, n = pending.popleft()
            if which == TRANSACTIONS:
                hist = self.transactions
            elif which == LAG:
                hist = self.lag
            elif which <= SCRIPTS:
                hist = self.script_latency[SCRIPTS - which]
            else:
                hist = self.statements[which]
            record_into(hist, us, n)
