"""Drivers: what talks to the server, one small module each.

The mode is the concurrency model; the driver is the client library under
it. Two styles of loop drive them (dbload.modes.loop_async and its generated
twin loop_sync): sequential and threads run a sync driver, async and
processes an async one. A new driver is one module and one line here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbload.errors import UsageError

if TYPE_CHECKING:
    from dbload.config import Plan
    from dbload.drivers.link_async import AsyncDriver
    from dbload.drivers.link_sync import SyncDriver

SYNC_MODES = ("sequential", "threads")
ASYNC_MODES = ("async", "processes")

# The canonical names, per style, the default first. "sqlalchemy" alone is
# SQLAlchemy on the style's default DBAPI (psycopg sync, asyncpg async), as
# a URL's postgresql:// picks one; "sqlalchemy+psycopg" spells the other
# choice the way SQLAlchemy's own URLs do (postgresql+psycopg://).
SYNC_DRIVERS = ("psycopg", "sqlalchemy+psycopg")
ASYNC_DRIVERS = ("asyncpg", "psycopg", "sqlalchemy+asyncpg", "sqlalchemy+psycopg")
_ALIASES = {
    "sync": {"sqlalchemy": "sqlalchemy+psycopg"},
    "async": {"sqlalchemy": "sqlalchemy+asyncpg"},
}
ALL_DRIVERS = ("asyncpg", "psycopg", "sqlalchemy", "sqlalchemy+asyncpg", "sqlalchemy+psycopg")


def style_of(mode: str) -> str:
    """ "sync" or "async": which loop a mode runs."""
    return "sync" if mode in SYNC_MODES else "async"


def default_driver(mode: str) -> str:
    return SYNC_DRIVERS[0] if style_of(mode) == "sync" else ASYNC_DRIVERS[0]


def check_driver(mode: str, driver: str | None) -> str:
    """The canonical driver for ``mode`` (its default for None), or one
    clear line naming what fits."""
    if driver is None or not driver.strip():
        return default_driver(mode)
    name = driver.strip().lower()
    style = style_of(mode)
    fits = SYNC_DRIVERS if style == "sync" else ASYNC_DRIVERS
    name = _ALIASES[style].get(name, name)
    if name in fits:
        return name
    if name not in ALL_DRIVERS and name not in _ALIASES["async"].values():
        raise UsageError(f"unknown driver {driver!r}; choose one of {', '.join(ALL_DRIVERS)}")
    modes = ", ".join(m for m in (*SYNC_MODES, *ASYNC_MODES) if name in _fits(m))
    raise UsageError(
        f"--driver {name} does not fit --mode {mode}: {mode} runs"
        f" {', '.join(fits)}; {name} runs in {modes}"
    )


def _fits(mode: str) -> tuple[str, ...]:
    style = style_of(mode)
    return (SYNC_DRIVERS if style == "sync" else ASYNC_DRIVERS) + tuple(_ALIASES[style])


# -- the driver modules, imported when a run needs one -------------------------


def async_driver(plan: Plan) -> AsyncDriver:
    """The async modes' driver for ``plan`` (its checks not yet run)."""
    name = check_driver(plan.mode, plan.driver or None)
    if name == "asyncpg":
        from dbload.drivers.asyncpg_ import AsyncpgDriver

        return AsyncpgDriver(plan)
    if name == "psycopg":
        from dbload.drivers.psycopg_async import AsyncPsycopgDriver

        return AsyncPsycopgDriver(plan)
    from dbload.drivers.sqlalchemy_async import AsyncAlchemyDriver

    return AsyncAlchemyDriver(plan, name.partition("+")[2])


def sync_driver(plan: Plan) -> SyncDriver:
    """The sync modes' driver for ``plan`` (its checks not yet run)."""
    name = check_driver(plan.mode, plan.driver or None)
    if name == "psycopg":
        from dbload.drivers.psycopg_sync import PsycopgDriver

        return PsycopgDriver(plan)
    from dbload.drivers.sqlalchemy_sync import AlchemyDriver

    return AlchemyDriver(plan, name.partition("+")[2])
