"""The pytest plugin as a team uses it: a test file of theirs, run by pytest."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from dbload.database.container import docker_available
from dbload.database.resolve import LIBPQ_ENV

USER_TESTS = """
import pytest


def test_async_overlaps_server_waits(dbload_runner, dbload_database):
    result = dbload_runner.run("slow", mode="async", concurrency=20, transactions=200)
    assert result.ok == 200 and result.failed == 0
    assert result.speedup_vs("sequential") > 5
    assert result.latency.p99 < 1000
    assert "dbload_pytest_" in dbload_database.url


@pytest.mark.asyncio
async def test_runner_inside_a_running_event_loop(dbload_runner):
    result = await dbload_runner.run_async("select", mode="async", concurrency=2, transactions=50)
    assert result.ok == 50


def test_the_batch_is_transactions_only(dbload_runner):
    with pytest.raises(TypeError, match="transactions"):
        dbload_runner.run("select", queries=10)
"""


@pytest.mark.slow
def test_a_users_tests_run_against_a_fresh_database(
    pytester: pytest.Pytester, pg_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBLOAD_DSN", pg_server)
    pytester.makepyfile(test_user=USER_TESTS)
    outcome = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=240)
    outcome.assert_outcomes(passed=3)
    # the session's database is dropped at its end: nothing left behind
    with psycopg.connect(pg_server) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'dbload\\_pytest\\_%'"
        ).fetchone()
    assert row is not None and row[0] == 0


def _nothing_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DBLOAD_DSN", "DATABASE_URL", *LIBPQ_ENV):
        monkeypatch.delenv(name, raising=False)


def _errors_with(pytester: pytest.Pytester, *args: str, said: str) -> str:
    """The user's tests error (not skip, not pass), each saying ``said``."""
    pytester.makepyfile(test_user=USER_TESTS)
    outcome = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)
    outcome.assert_outcomes(errors=3)
    outcome.stdout.fnmatch_lines([f"*{said}*"])
    assert "Traceback" not in outcome.stdout.str()
    return outcome.stdout.str()


@pytest.mark.slow
def test_an_unreachable_configured_database_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CI said where the database is: skipping would turn a broken setup green
    monkeypatch.setenv("DBLOAD_DSN", "postgresql://nobody:secret@127.0.0.1:1/none")
    out = _errors_with(pytester, said="dbload: $DBLOAD_DSN or $DATABASE_URL is set, but it gives")
    assert "connection refused" in out and "secret" not in out


@pytest.mark.slow
def test_a_forced_dsn_without_one_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _nothing_configured(monkeypatch)
    _errors_with(pytester, "--dbload-db", "dsn", said="dbload: --dbload-db dsn was asked for")


@pytest.mark.slow
def test_a_forced_container_without_docker_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    if docker_available():
        pytest.skip("a Docker engine answers here")
    _nothing_configured(monkeypatch)
    _errors_with(pytester, "--dbload-db", "container", said="no Docker engine")


@pytest.mark.slow
def test_nothing_configured_nor_available_is_a_clear_skip(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if docker_available():
        pytest.skip("a Docker engine answers here")
    _nothing_configured(monkeypatch)
    # no embedded server either: its cache directory cannot be made (under a file)
    (tmp_path / "a-file").write_text("")
    monkeypatch.delenv("DBLOAD_EMBEDDED_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file" / "cache"))
    pytester.makepyfile(test_user=USER_TESTS)
    outcome = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", timeout=120)
    outcome.assert_outcomes(skipped=3)
    outcome.stdout.fnmatch_lines(
        ["*dbload: no PostgreSQL available (none configured)*cannot create*"]
    )
