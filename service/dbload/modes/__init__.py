"""Executors, one module per mode. Adding a mode: one module and one line here."""

from __future__ import annotations

from dbload.errors import UsageError
from dbload.modes.async_ import AsyncExecutor
from dbload.modes.base import Executor
from dbload.modes.processes import ProcessesExecutor
from dbload.modes.sequential import SequentialExecutor
from dbload.modes.threads import ThreadsExecutor

MODES: dict[str, type[Executor]] = {
    cls.name: cls for cls in (SequentialExecutor, ThreadsExecutor, AsyncExecutor, ProcessesExecutor)
}


def get_executor(mode: str) -> Executor:
    try:
        return MODES[mode]()
    except KeyError:
        raise UsageError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}") from None


__all__ = ["MODES", "Executor", "get_executor"]
