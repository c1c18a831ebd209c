"""Lossless merging of recorders kept in other processes (processes mode).

A :class:`RecorderState` is everything a :class:`Recorder` measured, in a
picklable form: encoded HDR histograms (transactions and each statement),
counters, errors by class and the per-interval series. A worker process
sends its parent one *delta* per interval (what it measured since the
previous one, see :class:`DeltaTaker`) and a last one when it is done; the
parent adds each into its own recorder with :func:`merge_into`. Adding
encoded histograms is exact (bucket counts are summed), so the merged
percentiles are those of one recorder that had seen every value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from dbload.measure.histogram import encode, new_histogram
from dbload.measure.recorder import Interval, Recorder

# The recorder's additive counters, by attribute name.
COUNTERS = (
    "ok",
    "failed",
    "retried",
    "retries",
    "cancelled",
    "skipped",
    "late",
    "statement_count",
    "warmup_transactions",
)


@dataclass(frozen=True, slots=True)
class RecorderState:
    """A recorder's measurements (all of them, or a delta), picklable.

    ``series[0]`` is interval number ``first_interval`` of the run: a delta
    carries only the intervals finished since the previous one.
    """

    transactions: str  # encoded HDR histogram, µs; "" when empty
    statements: tuple[str, ...]  # one per statement, same encoding
    counters: dict[str, int] = field(default_factory=dict)  # COUNTERS -> value
    errors: dict[str, int] = field(default_factory=dict)
    series: tuple[Interval, ...] = ()
    first_interval: int = 0
    ended_ns: int = 0  # perf_counter_ns when the recorder finished (0: still running)
    incidents: tuple[str, ...] = ()  # new since the previous delta
    lag: str = ""  # open loop: encoded HDR histogram of schedule lag, µs
    error_examples: dict[str, str] = field(default_factory=dict)  # new since the previous delta
    # per script: encoded latency histograms, successes and failures (one each a script)
    scripts: tuple[str, ...] = ()
    script_ok: tuple[int, ...] = ()
    script_failed: tuple[int, ...] = ()


def _encoded(hist: HdrHistogram) -> str:
    """Encoded histogram, or "" for an empty one (the common case for deltas
    of statements that did not run in an interval)."""
    return encode(hist) if hist.get_total_count() else ""


def state_of(recorder: Recorder) -> RecorderState:
    """Everything ``recorder`` measured so far (it is left as it was)."""
    return RecorderState(
        transactions=_encoded(recorder.transactions),
        statements=tuple(_encoded(h) for h in recorder.statements),
        counters={name: getattr(recorder, name) for name in COUNTERS},
        errors=dict(recorder.errors),
        series=tuple(recorder.series),
        ended_ns=recorder.ended_ns,
        incidents=tuple(recorder.incidents),
        lag=_encoded(recorder.lag),
        error_examples=dict(recorder.error_examples),
        scripts=tuple(_encoded(h) for h in recorder.script_latency),
        script_ok=tuple(recorder.script_ok),
        script_failed=tuple(recorder.script_failed),
    )


class DeltaTaker:
    """What a recorder measured since the previous :meth:`take`.

    Histograms are moved out (the recorder gets fresh, empty ones), so the
    recorder's own histograms only ever hold one delta; counters, errors and
    series are differenced against what was taken before. Call it where the
    recorder cannot change meanwhile: from ``Recorder.on_interval`` (under
    its lock), or once the run is over.
    """

    def __init__(self) -> None:
        self._counters = dict.fromkeys(COUNTERS, 0)
        self._errors: dict[str, int] = {}
        self._intervals = 0
        self._incidents = 0
        self._examples: set[str] = set()
        self._script_ok: list[int] = []
        self._script_failed: list[int] = []

    def take(self, recorder: Recorder) -> RecorderState:
        transactions, recorder.transactions = recorder.transactions, new_histogram()
        lag, recorder.lag = recorder.lag, new_histogram()
        statements = recorder.statements
        recorder.statements = [new_histogram() for _ in statements]
        counters = {name: getattr(recorder, name) for name in COUNTERS}
        errors = dict(recorder.errors)
        scripts = recorder.script_latency
        recorder.script_latency = [new_histogram() for _ in scripts]
        script_ok, script_failed = list(recorder.script_ok), list(recorder.script_failed)
        state = RecorderState(
            transactions=_encoded(transactions),
            statements=tuple(_encoded(h) for h in statements),
            counters={k: v - self._counters[k] for k, v in counters.items()},
            errors={k: v - self._errors.get(k, 0) for k, v in errors.items()},
            series=tuple(recorder.series[self._intervals :]),
            first_interval=self._intervals,
            ended_ns=recorder.ended_ns,
            incidents=tuple(recorder.incidents[self._incidents :]),
            lag=_encoded(lag),
            error_examples={
                k: v for k, v in recorder.error_examples.items() if k not in self._examples
            },
            scripts=tuple(_encoded(h) for h in scripts),
            script_ok=_minus(script_ok, self._script_ok),
            script_failed=_minus(script_failed, self._script_failed),
        )
        self._script_ok, self._script_failed = script_ok, script_failed
        self._examples.update(state.error_examples)
        self._counters, self._errors = counters, errors
        self._incidents += len(state.incidents)
        self._intervals = len(recorder.series)
        return state


def merge_into(recorder: Recorder, state: RecorderState) -> None:
    """Add ``state`` (a whole recorder's or a delta) to ``recorder``.

    Histograms, counters and errors add exactly. Intervals add by their
    index (every process ticks on the same clock from the same start):
    transactions and errors are summed; an interval's p99 becomes the
    largest of the parts' p99 — an upper bound of the true merged p99 (at
    most 1 % of each part lies above its own p99, so at most 1 % of the
    union lies above the largest), not the exact figure, which would need
    per-interval histograms. The run-wide percentiles are exact.
    """
    if state.transactions:
        recorder.transactions.decode_and_add(state.transactions.encode("ascii"))
    if state.lag:
        recorder.lag.decode_and_add(state.lag.encode("ascii"))
    for hist, encoded in zip(recorder.statements, state.statements, strict=True):
        if encoded:
            hist.decode_and_add(encoded.encode("ascii"))
    for name, value in state.counters.items():
        setattr(recorder, name, getattr(recorder, name) + value)
    for code, count in state.errors.items():
        if count:
            recorder.errors[code] = recorder.errors.get(code, 0) + count
    _merge_series(recorder.series, state.series, state.first_interval)
    recorder.incidents.extend(state.incidents)
    for code, message in state.error_examples.items():
        recorder.error_examples.setdefault(code, message)
    recorder.ended_ns = max(recorder.ended_ns, state.ended_ns)
    _merge_scripts(recorder, state)


def _minus(now: list[int], before: list[int]) -> tuple[int, ...]:
    return tuple(v - (before[i] if i < len(before) else 0) for i, v in enumerate(now))


def _merge_scripts(recorder: Recorder, state: RecorderState) -> None:
    """Per-script figures add like the run's (a worker may know fewer scripts:
    it grows its lists when a script first runs)."""
    count = max(len(state.scripts), len(state.script_ok), len(state.script_failed))
    if count > len(recorder.script_ok):
        recorder.grow_scripts(count - 1)
    for index, encoded in enumerate(state.scripts):
        if encoded:
            recorder.script_latency[index].decode_and_add(encoded.encode("ascii"))
    for index, value in enumerate(state.script_ok):
        recorder.script_ok[index] += value
    for index, value in enumerate(state.script_failed):
        recorder.script_failed[index] += value


def _merge_series(series: list[Interval], parts: tuple[Interval, ...], first: int) -> None:
    if first > len(series):
        raise ValueError(f"interval {first} arrived before interval {len(series)}")
    for index, part in enumerate(parts, start=first):
        if index == len(series):
            series.append(part)
            continue
        have = series[index]
        # Items are replaced, never mutated: a progress display may hold one.
        series[index] = dataclasses.replace(
            have,
            t=max(have.t, part.t),  # the last interval is partial, of a different length
            transactions=have.transactions + part.transactions,
            errors=have.errors + part.errors,
            p99_ms=max(have.p99_ms, part.p99_ms),
        )
