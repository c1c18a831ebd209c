"""The (mode, driver) pairs the guarantee tests run, shared by the test modules.

Every driver that fits a mode is a pair, by its canonical name
(dbload.drivers), except in processes mode: its workers run the async
drivers' very code (dbload.modes.async_.run_async in each process), so
asyncpg (its default) and sqlalchemy+asyncpg (the driver with the most
code of its own) are run there, and psycopg's AsyncConnection and
sqlalchemy+psycopg only in async mode, to keep the suite's time bounded.
"""

from __future__ import annotations

from typing import Any

import pytest

from dbload.drivers import ASYNC_DRIVERS, SYNC_DRIVERS

PROCESSES_DRIVERS = ("asyncpg", "sqlalchemy+asyncpg")

MODE_DRIVERS: list[tuple[str, str]] = [
    *((mode, driver) for mode in ("sequential", "threads") for driver in SYNC_DRIVERS),
    *(("async", driver) for driver in ASYNC_DRIVERS),
    *(("processes", driver) for driver in PROCESSES_DRIVERS),
]
CONCURRENT_MODE_DRIVERS = [(m, d) for m, d in MODE_DRIVERS if m != "sequential"]
SQLALCHEMY_DRIVERS = ("sqlalchemy+asyncpg", "sqlalchemy+psycopg")


def pair_id(mode: str, driver: str) -> str:
    """``async-psycopg``, ``processes-sqlalchemy+asyncpg``."""
    return f"{mode}-{driver}"


def pairs(chosen: list[tuple[str, str]] | None = None) -> list[Any]:
    """``chosen`` (every pair by default) as parameters of ("mode", "driver")."""
    return [pytest.param(m, d, id=pair_id(m, d)) for m, d in chosen or MODE_DRIVERS]


def label_of(driver: str) -> str:
    """How the start of a run's ``versions["driver"]`` names ``driver``:
    the library that really ran, with its version after it."""
    if driver.startswith("sqlalchemy+"):
        return "SQLAlchemy "
    return f"{driver} "


def assert_ran_on(result: Any, driver: str) -> None:
    """``result`` (a Result) came from ``driver``, not the mode's default."""
    assert result.driver == driver, (result.driver, driver)
    label = result.versions["driver"]
    assert label.startswith(label_of(driver)), label
    if driver.startswith("sqlalchemy+"):
        assert f" on {driver.partition('+')[2]} " in label, label


QUERY_MODES = ("prepared", "extended", "simple")


def cannot(driver: str, query_mode: str) -> bool:
    """SQLAlchemy always binds parameters: -M simple is refused before the run."""
    return query_mode == "simple" and driver.startswith("sqlalchemy+")


def with_query_modes(chosen: tuple[str, ...] = QUERY_MODES) -> list[Any]:
    """Every pair with each of ``chosen`` that its driver runs, as
    parameters of ("mode", "driver", "query_mode")."""
    return [
        pytest.param(m, d, q, id=f"{pair_id(m, d)}-{q}")
        for m, d in MODE_DRIVERS
        for q in chosen
        if not cannot(d, q)
    ]
