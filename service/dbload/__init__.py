"""dbload: PostgreSQL workloads run sequentially, in threads and with asyncio.

``dbload.run``, ``dbload.run_async`` and ``dbload.compare`` are
:mod:`dbload.api`'s, ``dbload.find_max_rate`` is :mod:`dbload.capacity`'s,
imported on first use: ``import dbload`` alone stays light (the command line
masks passwords in its title before the drivers load).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = ("run", "run_async", "compare", "Options", "Observer")
_CAPACITY = ("find_max_rate",)


def __getattr__(name: str) -> Any:
    if name in _API:
        from dbload import api

        return getattr(api, name)
    if name in _CAPACITY:
        from dbload import capacity

        return getattr(capacity, name)
    raise AttributeError(f"module 'dbload' has no attribute {name!r}")


__all__ = ["__version__", *_API, *_CAPACITY]
