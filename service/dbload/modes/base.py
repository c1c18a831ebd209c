"""The executor interface: what every mode implements, and nothing more.

An executor takes a :class:`~dbload.config.Plan` and a
:class:`~dbload.measure.recorder.Recorder`, opens its connections, prepares
every statement on every connection, calls ``recorder.begin()`` once all
workers are ready, runs the batch and calls ``recorder.finish()``. It knows
nothing of reports. A new mode is one new module with one subclass, listed
in ``dbload.modes.MODES``.
"""

from __future__ import annotations

import random
import re
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

from dbload.config import Plan
from dbload.errors import WorkloadError
from dbload.measure.recorder import NS_PER_S, Recorder
from dbload.workload.model import SLEEP, Statement
from dbload.workload.parser import check_query_mode
from dbload.workload.stream import ParameterStream

# Serialization failure and deadlock: the server rolled the transaction back
# and running it again is safe (--max-tries). A lost connection is not here:
# its COMMIT may have landed, so a retry could apply the transaction twice.
RETRYABLE = frozenset({"40001", "40P01"})
QUERY_CANCELED = "57014"
# The error code of a transaction whose script failed on the client side (a
# \set that divides by zero): pgbench aborts that client, and so does dbload.
SCRIPT_FAILED = "script"
# pgbench's words for a script that ends inside a transaction block: the
# client is aborted (nothing of it was committed, so it is not counted ok)
OPEN_TRANSACTION = "end of script reached without completing the last transaction"
# The recorder's step for a request that is not a statement (\\sleep, \\shell...)
NOT_SQL = (SLEEP, ())
# How often the server looks whether a client that is running a statement
# is still there (PostgreSQL 14+): a dbload killed (or stopped by a second
# Ctrl-C) closes its sockets, and without this check a backend would run a
# pg_sleep(60) to its end before it noticed.
CLIENT_CHECK_MS = 1000
# After Ctrl-C, in-flight transactions get this long to finish before they
# are cancelled: long enough for an OLTP transaction, short enough that a
# user who pressed Ctrl-C is not kept waiting by a pg_sleep(60).
GRACE_S = 2.0


class Executor(ABC):
    name: ClassVar[str]
    # shown in the report: "psycopg 3.2.1", ...; an executor may refine it
    # once it knows the plan ("... x 2 processes")
    driver: str

    @abstractmethod
    def run(self, plan: Plan, recorder: Recorder, stop: threading.Event) -> None:
        """Run the plan to completion, or until ``stop`` is set."""


def check_plan(plan: Plan) -> None:
    """Refuse before connecting, naming file and line, what the query mode
    cannot run (a \\; compound outside -M simple, a pipeline in it)."""
    check_query_mode(plan.workload, plan.query_mode)


def deadline_ns(plan: Plan, recorder: Recorder) -> int | None:
    """When workers stop starting transactions (None for a -n batch)."""
    if plan.duration_s is None:
        return None
    return recorder.measure_from_ns + int(plan.duration_s * NS_PER_S)


class Schedule:
    """Open loop (``--rate``, ``--stages``): when this worker's next
    transaction is due.

    Each of the N workers follows a Poisson process of 1/N of the scheduled
    rate, so all of them together make one of the whole rate, as pgbench -R
    schedules its clients. The draws come from a generator of their own: the
    same seed sends the same parameters open loop or closed.
    """

    def __init__(self, plan: Plan, client_id: int, start_ns: int) -> None:
        profile = plan.rate_profile
        assert profile is not None
        self._draw = random.Random(f"dbload:{plan.seed}:{client_id}:schedule").expovariate
        self._seconds_at = profile.seconds_at
        self._workers = plan.concurrency
        self._arrivals = 0.0  # expected arrivals over all workers, so far
        self._start_ns = start_ns
        self.due_ns = start_ns

    def next(self) -> int:
        """The next due time (``perf_counter_ns``); far beyond any deadline
        once the stages are over."""
        self._arrivals += self._draw(1.0) * self._workers
        seconds = self._seconds_at(self._arrivals)
        if not seconds < 1e9:  # inf, or a rate so low that the ns would overflow
            seconds = 1e9  # ~30 years: after every deadline, and still an int
        self.due_ns = self._start_ns + int(seconds * NS_PER_S)
        return self.due_ns


def first_line(text: str, default: str) -> str:
    """The first line of a driver's message (they may add DETAIL, HINT...)."""
    return text.strip().splitlines()[0].strip() if text.strip() else default


def clients_label(clients: Sequence[int]) -> str:
    """Who a connection runs for: "client 3", or "clients 0-3" (sequential
    mode's one connection runs several clients' streams)."""
    if len(clients) == 1:
        return f"client {clients[0]}"
    return f"clients {clients[0]}-{clients[-1]}"


def reconnect_until(plan: Plan, deadline: int | None) -> int:
    """Until when a worker tries to reconnect: the run's end, or the give-up."""
    give_up = time.perf_counter_ns() + int(plan.reconnect_give_up_s * NS_PER_S)
    return give_up if deadline is None else min(deadline, give_up)


def gave_up(
    plan: Plan, recorder: Recorder, who: str, lost_ns: int, until: int, deadline: int | None
) -> None:
    """Note a worker that stopped because its server stayed away, whether it
    gave up or the run ended while it still tried (a run that lost its
    server for good is not a success); not one stopped (Ctrl-C) meanwhile.
    ``lost_ns`` is when its connection was lost."""
    if time.perf_counter_ns() < until:
        return
    lost_s = (lost_ns - recorder.started_ns) / NS_PER_S
    if deadline is None or until < deadline:
        how = f"tried for {plan.reconnect_give_up_s:g} s, then stopped"
    else:
        how = f"tried until the end of the run, {(deadline - lost_ns) / NS_PER_S:.1f} s later"
    recorder.incidents.append(
        f"{who} lost the server {lost_s:.1f} s into the run and could not reconnect ({how});"
        " the server is unreachable or the database is gone"
    )


def lost_share(recorder: Recorder, begun: bool, reported_t: float | None) -> tuple[str, str]:
    """When a worker (process, or Dask worker) was lost, and what of its
    share the result misses: the two halves of its incident."""
    when = "before the start"
    if begun:
        when = f"after {(time.perf_counter_ns() - recorder.started_ns) / NS_PER_S:.1f} s"
    if reported_t is None:
        return when, "none of its transactions are in the result"
    return when, f"its transactions after {reported_t:g} s are not in the result"


def script_failed(
    recorder: Recorder, who: str, message: str, at_ns: int, script: int = 0, client: int = 0
) -> None:
    """A client whose script failed at run time (pgbench aborts it): counted
    as a failed transaction, with an incident that says which and why."""
    recorder.record(
        at_ns, at_ns, (), (), SCRIPT_FAILED, 1, None, message, script=script, client=client
    )
    recorder.incidents.append(f"{who} aborted: {message}")


def prepare_error(statement: Statement, message: str) -> WorkloadError:
    """A statement the server rejected, named by file and line."""
    first_line = message.strip().splitlines()[0] if message.strip() else "rejected by the server"
    return WorkloadError(first_line, source=statement.source, line=statement.line)


def cancel_after_grace(
    stop: threading.Event,
    finished: threading.Event,
    cancel: Callable[[], None],
    grace_s: float = GRACE_S,
) -> threading.Thread:
    """Once ``stop`` is set, wait ``grace_s`` for the run to finish, then
    ``cancel()`` what is still in flight. Returns the (daemon) watcher."""

    def watch() -> None:
        while not finished.is_set():
            if stop.wait(0.1):
                if not finished.wait(grace_s):
                    cancel()
                return

    watcher = threading.Thread(target=watch, name="dbload-grace", daemon=True)
    watcher.start()
    return watcher


class Client:
    """One client's stream and its share of the batch (both workers use it)."""

    __slots__ = ("done", "due", "id", "quota", "schedule", "stream")

    def __init__(self, plan: Plan, client_id: int, recorder: Recorder) -> None:
        self.id = client_id
        self.stream = ParameterStream(
            plan.workload,
            seed=plan.seed,
            client_id=client_id,
            scale=plan.scale,
            replayable=plan.max_tries > 1,
            query_mode=plan.query_mode,
            clients=plan.concurrency,
        )
        self.quota = plan.quota(client_id)
        self.done = 0
        self.schedule = Schedule(plan, client_id, recorder.started_ns) if plan.rate else None
        # open loop: when its next transaction is due (the earliest goes first)
        self.due = 0 if self.schedule is None else self.schedule.next()

    @property
    def has_work(self) -> bool:
        return self.quota is None or self.done < self.quota


def make_clients(plan: Plan, clients: Sequence[int], recorder: Recorder) -> list[Client]:
    """The clients with work to do; one whose script fails already (a \\set
    that folds to a division by zero with its :client_id) is aborted."""
    made = []
    for client_id in clients:
        try:
            client = Client(plan, client_id, recorder)
        except WorkloadError as exc:
            at = time.perf_counter_ns()
            script_failed(recorder, f"client {client_id}", str(exc), at, client=client_id)
            continue
        if client.has_work:
            made.append(client)
    return made


def settle(
    recorder: Recorder,
    client: Client,
    start: int,
    end: int,
    steps: Sequence[tuple[int, tuple[str | None, ...]]],
    step_ns: Sequence[int],
    error: str | None,
    tries: int,
    lag: int | None,
    message: str | None,
    in_block: bool,
) -> bool:
    """Record how one transaction ended, by pgbench's rules, for both
    workers; False when the client is aborted: its script failed on the
    client side, or ended inside a transaction block (``in_block``; the
    caller has rolled either back)."""
    stream = client.stream
    if error == SCRIPT_FAILED:
        at = time.perf_counter_ns()
        script_failed(recorder, f"client {client.id}", str(message), at, stream.script, client.id)
        return False
    if error is None and in_block:
        open_transaction(recorder, client, end)
        return False
    if error is not None and len(steps) > len(step_ns):
        # the failed statement, by file and line, as pgbench names its command
        statement = stream.workload.statements[steps[-1][0]]
        message = f"{statement.where}: {message}"
    recorder.record(start, end, steps, step_ns, error, tries, lag, message,
                    script=stream.script, client=client.id)  # fmt: skip
    client.done += start >= recorder.measure_from_ns
    return True


def open_transaction(recorder: Recorder, client: Client, at_ns: int) -> None:
    """The script ended inside a transaction block: pgbench aborts the client."""
    message = f"{client.stream.script_source}: {OPEN_TRANSACTION}"
    script_failed(recorder, f"client {client.id}", message, at_ns, client.stream.script, client.id)


def shell_command(argv: Sequence[str]) -> str:
    """The command line pgbench hands to the shell: the words joined by spaces."""
    return " ".join(argv)


def run_shell(argv: Sequence[str], capture: bool) -> tuple[int, str]:
    """``\\shell``/``\\setshell`` in a sync worker: (exit status, stdout)."""
    try:
        done = subprocess.run(
            shell_command(argv),
            shell=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else None,
            check=False,
        )
    except OSError as exc:
        return 127, "" if capture else str(exc)
    out = done.stdout.decode(errors="replace") if capture and done.stdout else ""
    return done.returncode, out


# A number as pgbench prints one (wire_text): pasted as a numeric literal,
# as pgbench pastes it, so that 1e+20 is the number 1e20 and not the text.
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]*)?(?:e[+-][0-9]+)?\Z")


def sql_literal(value: str | None) -> str:
    """A value as an SQL literal for -M simple: a number as a numeric literal
    (a negative one in parentheses: pgbench's bare paste turns ``x - :v``
    with v = -5 into ``x - -5``, a comment), anything else quoted; NULL as
    NULL; an E'' string when it holds a backslash, so that it reads the same
    whatever standard_conforming_strings says. pgbench pastes text unquoted
    (``hello`` becomes a column name): dbload quotes it, as issue 12 asks."""
    if value is None:
        return "NULL"
    if _NUMBER.match(value):
        return f"({value})" if value.startswith("-") else value
    if "\\" in value:
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + value.replace("'", "''") + "'"


_PLACEHOLDER = re.compile(r"\$([0-9]+)")


def interpolate(statement: Statement, values: Sequence[str | None]) -> str:
    """-M simple: the statement's text with its values as literals."""
    parts = statement.parts
    if not values:
        return parts[0] if parts else statement.sql
    if parts:
        refs = statement.param_refs
        out = [parts[0]]
        for ref, part in zip(refs, parts[1:], strict=True):
            out.append(sql_literal(values[ref]))
            out.append(part)
        return "".join(out)
    # a parser without parts: the $n placeholders it made
    return _PLACEHOLDER.sub(lambda m: sql_literal(values[int(m.group(1)) - 1]), statement.sql)


def lazy_statements(plan: Plan, refused: dict[int, str]) -> set[int]:
    """Of the statements whose up-front prepare failed (index -> message),
    those prepared when first run instead: an earlier statement of the same
    script may create what they use (Statement.may_create). Raises the early,
    line-named error for the first other one."""
    lazy: set[int] = set()
    statements = plan.workload.statements
    for index in sorted(refused):
        statement = statements[index]
        script = plan.workload.scripts[statement.script]
        earlier = [i for i in script.statements if i < index]
        if any(statements[i].may_create for i in earlier):
            lazy.add(index)
        else:
            raise prepare_error(statement, refused[index])
    return lazy


def skip_check(plan: Plan, statement: Statement) -> bool:
    """A statement that is not prepared before the run: a \\; compound in
    simple mode (a prepared statement holds one command), and a Python
    workload's named step (a row of the report, not SQL)."""
    if plan.workload.scripts[statement.script].python is not None:
        return True
    return plan.query_mode == "simple" and statement.compound
