"""The compare arithmetic: speedup, % of ideal, bound verdicts, deltas.

Rows come from real runs (``small_comparison``); the bound classification
is pure arithmetic on CPU figures, so it is checked on constructed ones.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from rich.console import Console

from dbload.measure.comparison import (
    CLIENT_CPU,
    SERVER_CPU,
    SERVER_WAIT,
    UNKNOWN,
    Comparison,
    busy_others,
    classify,
    classify_cpu,
    client_ceiling_pct,
    diff,
    environment,
    rows,
    run_labels,
    shows_drivers,
)
from dbload.measure.cpu import CpuUse
from dbload.measure.server import OtherSessions
from dbload.report.compare_console import fmt_speedup, print_comparison, print_diff


def _cpu(client_pct: float, server_pct: float | None, cores: int = 8) -> CpuUse:
    """CPU figures over a 10 s window giving these percentages of one core."""
    return CpuUse(
        wall_s=10.0,
        cores=cores,
        client_s=client_pct / 10.0,
        server_s=None if server_pct is None else server_pct / 10.0,
        server_note="postmaster pid 1" if server_pct is not None else "remote server",
    )


def test_rows_follow_the_runs_with_speedup_against_sequential(
    small_comparison: Comparison,
) -> None:
    table = rows(small_comparison)
    runs = small_comparison.results
    assert [(r.mode, r.concurrency) for r in table] == [(r.mode, r.concurrency) for r in runs]
    base = runs[0]
    assert base.mode == "sequential" and base.tps > 0
    for row, result in zip(table, runs, strict=True):
        assert row.tps == pytest.approx(result.tps)
        assert row.p50_ms == result.latency.p50 and row.p99_ms == result.latency.p99
        speedup = result.tps / base.tps
        assert row.speedup == pytest.approx(speedup)
        assert row.ideal_pct == pytest.approx(100.0 * speedup / result.concurrency)
        assert row.bound in {CLIENT_CPU, SERVER_CPU, SERVER_WAIT, UNKNOWN}
        assert row.why
        if result.cpu is not None:
            assert row.client_cpu_pct == pytest.approx(result.cpu.client_pct)
    assert table[0].speedup == pytest.approx(1.0) and table[0].ideal_pct == pytest.approx(100.0)
    assert len({row.label for row in table}) == len(table)


def test_without_a_sequential_run_there_is_no_speedup(small_comparison: Comparison) -> None:
    others = Comparison.of(r for r in small_comparison.results if r.mode != "sequential")
    assert all(row.speedup is None and row.ideal_pct is None for row in rows(others))


def test_ideal_is_the_concurrency(small_comparison: Comparison) -> None:
    """Six times the sequential throughput with 8 clients is 75 % of the
    speedup that overlapping every server wait would give."""
    seq = small_comparison.results[0]
    eight = dataclasses.replace(
        small_comparison.results[-1], concurrency=8, ok=seq.ok * 6, duration_s=seq.duration_s
    )
    row = rows(Comparison.of([seq, eight]))[1]
    assert row.speedup == pytest.approx(6.0)
    assert row.ideal_pct == pytest.approx(75.0)
    assert fmt_speedup(row.speedup) == "6.00\u00d7" and fmt_speedup(12.34) == "12.3\u00d7"


def test_repeated_runs_get_numbered_labels(small_comparison: Comparison) -> None:
    first = small_comparison.results[1]
    labels = run_labels((first, first, small_comparison.results[0]))
    assert labels == [
        f"{first.mode} c={first.concurrency} (run 1)",
        f"{first.mode} c={first.concurrency} (run 2)",
        "sequential c=1",
    ]


@pytest.mark.parametrize(
    ("mode", "clients", "cpu", "bound"),
    [
        # one process: the GIL caps the client at one core, whatever the machine
        ("async", 8, _cpu(95, 40), CLIENT_CPU),
        ("threads", 16, _cpu(88, 30), CLIENT_CPU),
        ("sequential", 1, _cpu(86, 10), CLIENT_CPU),
        ("async", 8, _cpu(84, 40), SERVER_WAIT),  # just under 85 %
        # processes: one core per process, min(clients, cores)
        ("processes", 4, _cpu(95, 50), SERVER_WAIT),
        ("processes", 4, _cpu(360, 50), CLIENT_CPU),
        ("processes", 16, _cpu(350, 30, cores=4), CLIENT_CPU),
        # the server: one busy core per client at most
        ("sequential", 1, _cpu(40, 90), SERVER_CPU),
        ("async", 8, _cpu(60, 350, cores=4), SERVER_CPU),
        ("async", 8, _cpu(60, 500), SERVER_WAIT),  # 500 of 800 %: not saturated
        # client and server together fill the machine
        ("async", 2, _cpu(80, 110, cores=2), SERVER_CPU),
        ("async", 8, _cpu(40, 100), SERVER_WAIT),
        # server CPU unmeasured: only a client verdict can be given
        ("async", 8, _cpu(97, None), CLIENT_CPU),
        ("async", 8, _cpu(30, None), UNKNOWN),
    ],
)
def test_bound_from_cpu_figures(mode: str, clients: int, cpu: CpuUse, bound: str) -> None:
    verdict, why = classify_cpu(mode, clients, cpu)
    assert verdict == bound, why
    assert "\n" not in why


def test_other_sessions_cpu_is_named_not_billed() -> None:
    """One client, 3 % of the server's CPU its own, and another session
    burning 95 % of a core: the clients waited; the other session is named.
    Billed to the run, as before the run's backends were told apart, the
    same figures read "server CPU"."""
    cpu = dataclasses.replace(_cpu(5, 3, cores=2), others_s=9.5)
    verdict, why = classify_cpu("async", 1, cpu)
    assert verdict == SERVER_WAIT
    assert why.endswith("; other sessions used 95 % on the server"), why
    assert cpu.server_s is not None
    billed = dataclasses.replace(cpu, server_s=cpu.server_s + 9.5, others_s=None)
    assert classify_cpu("async", 1, billed)[0] == SERVER_CPU
    quiet = dataclasses.replace(cpu, others_s=0.5)  # 5 %: not worth a word
    assert "other sessions" not in classify_cpu("async", 1, quiet)[1]


def test_busy_others_says_what_was_seen(small_comparison: Comparison) -> None:
    run = small_comparison.results[-1]
    assert run.server is not None
    quiet = dataclasses.replace(
        run,
        cpu=dataclasses.replace(_cpu(5, 3), others_s=0.5),
        server=dataclasses.replace(run.server, others=OtherSessions(10, 0, 0)),
    )
    assert busy_others(quiet) is None
    sampled = OtherSessions(samples=10, busy_samples=9, max_active=2)
    busy = dataclasses.replace(
        run,
        cpu=dataclasses.replace(_cpu(5, 3), others_s=9.5),
        server=dataclasses.replace(run.server, others=sampled),
    )
    assert busy_others(busy) == (
        "other sessions were busy on the server: up to 2 running a statement in 90 %"
        " of 10 samples, 95 % CPU (% of one core); not counted as this run's"
    )
    remote = dataclasses.replace(busy, cpu=dataclasses.replace(_cpu(5, None), others_s=None))
    assert busy_others(remote) == (
        "other sessions were busy on the server: up to 2 running a statement in 90 %"
        " of 10 samples; not counted as this run's"
    )


def test_client_ceiling() -> None:
    assert client_ceiling_pct("async", 64, 8) == 100.0
    assert client_ceiling_pct("processes", 4, 8) == 400.0
    assert client_ceiling_pct("processes", 32, 8) == 800.0


def test_no_cpu_figures_is_unknown(small_comparison: Comparison) -> None:
    result = dataclasses.replace(small_comparison.results[0], cpu=None)
    assert classify(result)[0] == UNKNOWN


def test_a_window_too_short_for_cpu_ticks_is_unknown(small_comparison: Comparison) -> None:
    run = small_comparison.results[-1]
    short = dataclasses.replace(run, cpu=dataclasses.replace(_cpu(99, 10), wall_s=0.2))
    verdict, why = classify(short)
    assert verdict == UNKNOWN and "too short" in why
    long = dataclasses.replace(run, cpu=_cpu(99, 10))
    assert classify(long)[0] == CLIENT_CPU


def test_diff_is_in_percent_of_the_first(small_comparison: Comparison) -> None:
    a = small_comparison.results[0]
    faster = dataclasses.replace(
        a, ok=a.ok * 2, latency=dataclasses.replace(a.latency, p99=a.latency.p99 / 2)
    )
    delta = diff(a, faster)
    assert delta.tps_pct == pytest.approx(100.0)
    assert delta.p99_pct == pytest.approx(-50.0)
    nothing = dataclasses.replace(a, ok=0)
    assert diff(nothing, a).tps_pct is None


def test_environment_names_server_cores_and_seed(small_comparison: Comparison) -> None:
    env = dict(environment(small_comparison))
    first = small_comparison.results[0]
    assert env["server"] == f"PostgreSQL {first.database.server_version}"
    assert env["seed"] == "11" and env["workload"] == "select"
    assert first.cpu is not None and env["CPU cores"] == str(first.cpu.cores)
    assert "asyncpg" in env["drivers"] and "psycopg" in env["drivers"]


def test_console_table_and_diff(small_comparison: Comparison) -> None:
    console = Console(width=160, record=True, color_system=None)
    print_comparison(console, small_comparison)
    print_diff(console, small_comparison.results, [f"r{i}.json" for i in range(4)])
    text = console.export_text()
    for heading in ("mode", "clients", "tps", "p50 ms", "p99 ms", "speedup", "% of ideal"):
        assert heading in text
    assert "1.00\u00d7" in text and "client " in text and "/ server " in text
    assert "\u0394 tps" in text and "r3.json" in text and "%" in text


# -- the driver axis (compare --drivers) ---------------------------------------


def _console_text(comparison: Comparison, width: int = 80) -> str:
    console = Console(width=width, record=True, color_system=None)
    print_comparison(console, comparison)
    return console.export_text()


def test_the_driver_is_an_axis_only_when_a_mode_leaves_its_default(
    small_comparison: Comparison, drivers_comparison: Comparison
) -> None:
    assert not shows_drivers(small_comparison.results)  # psycopg sync, asyncpg async
    assert shows_drivers(drivers_comparison.results)
    assert run_labels(small_comparison.results)[2] == "async c=2"
    assert run_labels(drivers_comparison.results) == [
        "sequential psycopg c=1", "threads psycopg c=2",
        "async psycopg c=2", "async asyncpg c=2",
    ]  # fmt: skip
    assert [row.driver for row in rows(drivers_comparison)] == [
        r.driver for r in drivers_comparison.results
    ]


def test_speedups_on_the_driver_axis_are_against_the_first_sequential_run(
    drivers_comparison: Comparison,
) -> None:
    seq = drivers_comparison.results[0]
    orm = dataclasses.replace(seq, driver="sqlalchemy+psycopg", ok=seq.ok // 2)
    table = rows(Comparison.of([seq, orm, *drivers_comparison.results[1:]]))
    assert table[0].speedup == pytest.approx(1.0)
    assert table[1].speedup == pytest.approx(orm.tps / seq.tps)  # not 1.0: its own baseline
    assert table[3].speedup == pytest.approx(drivers_comparison.results[2].tps / seq.tps)


def test_client_cpu_per_transaction(drivers_comparison: Comparison) -> None:
    result = drivers_comparison.results[0]
    assert result.cpu is not None and result.ok == 200
    expected = 1e6 * result.cpu.client_s / result.ok
    assert result.client_us_per_transaction == pytest.approx(expected)
    assert rows(drivers_comparison)[0].client_us_per_txn == pytest.approx(expected)
    measured = dataclasses.replace(result, cpu=_cpu(50.0, 20.0), ok=5_000)  # 5 s of client CPU
    assert measured.client_us_per_transaction == pytest.approx(1000.0)
    assert dataclasses.replace(result, cpu=None).client_us_per_transaction is None
    assert dataclasses.replace(result, ok=0, failed=200).client_us_per_transaction is None


def test_console_table_shows_the_driver_and_cpu_per_transaction(
    drivers_comparison: Comparison,
) -> None:
    first, *others = drivers_comparison.results
    orm = dataclasses.replace(
        first, driver="sqlalchemy+psycopg", cpu=_cpu(50.0, 20.0), ok=5_000, duration_s=1.0
    )
    unmeasured = dataclasses.replace(others[-1], cpu=None)
    text = _console_text(Comparison.of([first, orm, *others[:-1], unmeasured]))
    table = [line for line in text.splitlines() if not line.startswith("mode=")]
    assert max(len(line) for line in table) <= 80 and "…" not in text
    assert "driver" in text and "µs/txn" in text
    # the driver under its mode, a SQLAlchemy name split at its "+"
    assert "│ sqlalchemy │" in text and "│ +psycopg   │" in text
    assert re.search(r"│ async      │ +2 │ +[\d,.]+ │ +— │", text), text  # no CPU figure: a dash
    assert re.search(r"│ sequential │ +1 │ +5,000 │ +1,000 │", text), text
    assert "sequential sqlalchemy+psycopg c=1:" in text  # the bound lines
    summaries = [line for line in text.splitlines() if line.startswith("mode=")]
    assert [line.rsplit(" ", 1)[1] for line in summaries] == [
        "driver=psycopg", "driver=sqlalchemy+psycopg", "driver=psycopg",
        "driver=psycopg", "driver=asyncpg",
    ]  # fmt: skip


def test_console_table_without_the_driver_axis_has_no_driver(
    small_comparison: Comparison,
) -> None:
    text = _console_text(small_comparison)
    assert "driver" not in text
    assert "µs/txn" in text  # the client's cost per transaction, in every comparison
    assert all(f"driver={r.driver}" not in text for r in small_comparison.results)


def test_saved_runs_of_two_drivers_name_them_in_the_diff(drivers_comparison: Comparison) -> None:
    console = Console(width=80, record=True, color_system=None)
    print_diff(console, drivers_comparison.results)
    text = console.export_text()
    assert "async psycopg c=2" in text and "async asyncpg c=2" in text
