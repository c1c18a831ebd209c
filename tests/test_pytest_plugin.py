"""The pytest plugin as a team uses it: a test file of theirs, run by pytest."""

from __future__ import annotations

import psycopg
import pytest

USER_TESTS = """
import pytest


def test_async_overlaps_server_waits(dbload_runner, dbload_database):
    result = dbload_runner.run("slow", mode="async", concurrency=20, queries=200)
    assert result.ok == 200 and result.failed == 0
    assert result.speedup_vs("sequential") > 5
    assert result.latency.p99 < 1000
    assert "dbload_pytest_" in dbload_database.url


@pytest.mark.asyncio
async def test_runner_inside_a_running_event_loop(dbload_runner):
    result = await dbload_runner.run_async("select", mode="async", concurrency=2, queries=50)
    assert result.ok == 50
"""


@pytest.mark.slow
def test_a_users_tests_run_against_a_fresh_database(
    pytester: pytest.Pytester, pg_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBLOAD_DSN", pg_server)
    pytester.makepyfile(test_user=USER_TESTS)
    outcome = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=240)
    outcome.assert_outcomes(passed=2)
    # the session's database is dropped at its end: nothing left behind
    with psycopg.connect(pg_server) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'dbload\\_pytest\\_%'"
        ).fetchone()
    assert row is not None and row[0] == 0


@pytest.mark.slow
def test_no_database_is_a_clear_skip(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBLOAD_DSN", "postgresql://nobody:secret@127.0.0.1:1/none")
    pytester.makepyfile(test_user=USER_TESTS)
    outcome = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", timeout=120)
    outcome.assert_outcomes(skipped=2)
    outcome.stdout.fnmatch_lines(["*dbload: no PostgreSQL available (auto)*"])
    assert "secret" not in outcome.stdout.str()
