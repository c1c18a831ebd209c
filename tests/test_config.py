"""Option validation: pure checks that run before any connection."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from dbload.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_DURATION_S,
    Plan,
    check_batch,
    check_concurrency,
    check_jobs,
    check_output,
    check_per_client,
    check_query_mode,
    check_scale_matches,
    check_scale_option,
    connection_dsn,
    parse_random_seed,
    parse_timeout_ms,
    resolve_builtin,
)
from dbload.errors import UsageError
from dbload.workload.parser import load_workload


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        (None, 0),
        ("0", 0),
        ("250", 250),
        ("100ms", 100),
        ("2s", 2000),
        ("1.5s", 1500),
        ("1min", 60_000),
    ],
)
def test_timeouts(text: str | None, ms: int) -> None:
    assert parse_timeout_ms(text) == ms


def test_defaults() -> None:
    assert check_batch(None, None) == (None, DEFAULT_DURATION_S)
    assert check_concurrency("async", None) == DEFAULT_CONCURRENCY
    assert check_concurrency("sequential", None) == 1
    # one connection running 8 clients' streams (modes/sequential.py)
    assert check_concurrency("sequential", 8) == 8


@pytest.mark.parametrize("n", [1, 7, 8, 100, 1001])
@pytest.mark.parametrize("c", [1, 3, 8])
def test_quota_splits_the_batch_exactly(n: int, c: int) -> None:
    plan = Plan(load_workload(), "async", c, n, None, 0.0, 1, 1, "postgresql://x")
    quotas = [plan.quota(w) for w in range(c)]
    assert sum(q or 0 for q in quotas) == n
    assert max(q or 0 for q in quotas) - min(q or 0 for q in quotas) <= 1


def test_output_checks(tmp_path: Path) -> None:
    assert check_output(tmp_path / "ok.json") == tmp_path / "ok.json"
    with pytest.raises(UsageError, match="is a directory"):
        check_output(tmp_path)
    with pytest.raises(UsageError, match="does not exist"):
        check_output(tmp_path / "no" / "r.json")


# -- pgbench's flags -------------------------------------------------------------

KNOWN = ("aggregate", "join", "select", "select-only", "simple-update", "slow", "tpcb", "tpcb-like")


@pytest.mark.parametrize(
    ("spec", "resolved"),
    [
        ("tpcb-like", "tpcb-like"),
        ("t", "tpcb-like"),
        ("si@3", "simple-update@3"),
        ("se", "select-only"),
        ("select-only@0", "select-only@0"),
        ("select", "select"),  # dbload's own name, not a prefix of select-only
        ("tpcb@2", "tpcb@2"),
    ],
)
def test_builtin_names_and_prefixes(spec: str, resolved: str) -> None:
    assert resolve_builtin(spec, KNOWN) == resolved


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("s", "ambiguous built-in name: 2 built-in scripts found for prefix 's'"),
        ("", "ambiguous built-in name: 3 built-in scripts"),
        ("x@2", "no built-in script found for name 'x'"),
    ],
)
def test_bad_builtin_names(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve_builtin(spec, KNOWN)


def test_transactions_per_client() -> None:
    assert check_per_client(10, None, None, 4) == 40
    assert check_per_client(None, 7, None, 4) == 7
    with pytest.raises(UsageError, match=r"either a number of transactions \(-t\) or a duration"):
        check_per_client(10, None, 5.0, 4)
    with pytest.raises(UsageError, match="not both"):
        check_per_client(10, 5, None, 4)
    with pytest.raises(UsageError, match="at least 1"):
        check_per_client(0, None, None, 4)


def test_random_seed_forms() -> None:
    assert parse_random_seed("42", None) == 42
    assert parse_random_seed("-5", None) == 2**64 - 5  # pgbench reads an unsigned 64-bit
    assert parse_random_seed(None, 7) == 7
    for word in ("time", "rand"):
        seed = parse_random_seed(word, None)
        assert seed is not None and 0 <= seed < 2**64
    with pytest.raises(UsageError, match=r'unrecognized random seed option.*"time" or "rand"'):
        parse_random_seed("foo", None)
    with pytest.raises(UsageError, match="not both"):
        parse_random_seed("1", 1)


def test_query_modes_and_jobs() -> None:
    assert [check_query_mode(m) for m in (None, "simple", "extended")] == [
        "prepared",
        "simple",
        "extended",
    ]
    with pytest.raises(UsageError, match=r"invalid query mode \(-M\): 'bogus'"):
        check_query_mode("bogus")
    assert check_jobs("processes", 3) == 3
    assert check_jobs("async", 1) is None and check_jobs("async", None) is None
    with pytest.raises(UsageError, match="-j 2: worker processes are for -m processes"):
        check_jobs("threads", 2)
    with pytest.raises(UsageError, match="at least 1"):
        check_jobs("processes", 0)


def test_scale_option() -> None:
    assert check_scale_option(None, {}) is None
    assert check_scale_option(5, {}) == 5
    with pytest.raises(UsageError, match="not both"):
        check_scale_option(5, {"scale": 5})
    assert check_scale_matches(None, 3, True) == 3
    assert check_scale_matches(10, 1, False) == 10  # a custom script's :scale
    with pytest.raises(UsageError, match="-s 10: the pgbench tables hold scale 1"):
        check_scale_matches(10, 1, True)


def test_connection_options_over_the_dsn() -> None:
    assert connection_dsn("postgresql://a@h/db", None) == "postgresql://a@h/db"
    assert connection_dsn(None, None) is None
    made = connection_dsn("postgresql://a@h:1/db", "x", host="other", port="5433", dbname="d2")
    assert made is not None
    assert conninfo_to_dict(made) == {"user": "a", "host": "other", "port": "5433", "dbname": "d2"}
    base = connection_dsn(None, "postgresql://b@hb/dbb", user="u")
    assert base is not None and conninfo_to_dict(base)["user"] == "u"
    alone = connection_dsn(None, None, host="127.0.0.1")
    assert alone is not None and conninfo_to_dict(alone) == {"host": "127.0.0.1"}
    with pytest.raises(UsageError, match="not a port number"):
        connection_dsn(None, None, port="abc")


def test_plan_carries_the_new_fields() -> None:
    plan = Plan(
        workload=load_workload(builtin=["select-only", "simple-update@2"]),
        mode="processes", concurrency=2, transactions=4, duration_s=None, warmup_s=0.0,
        seed=1, scale=1, dsn="", query_mode="simple", connect_per_transaction=True, processes=2,
    )  # fmt: skip
    assert [s.weight for s in plan.workload.scripts] == [1, 2]
    assert (plan.query_mode, plan.connect_per_transaction, plan.log) == ("simple", True, None)
