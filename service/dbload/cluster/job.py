"""What the coordinator sends each Dask worker, and how it travels.

A job holds the plan (the parsed workload with it), the worker's share of
the clients and the run's names in Dask (topic, start variable, stop
event). It crosses as bytes: the scheduler unpickles the task graph, and
dbload need not be installed there, only on the workers. A Python
workload's module (and the modules it imports from its folder) travels as
source text and is written to a folder of the worker's own, so a worker
needs nothing but ``dbload[dask]`` installed.
"""

from __future__ import annotations

import io
import pickle
import tempfile
from dataclasses import dataclass, field, replace
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

from dbload.config import Plan
from dbload.workload.model import Workload
from dbload.workload.python import PythonCode, load_code, shipped_sources


@dataclass(frozen=True, slots=True)
class Job:
    index: int  # the share's number
    plan: Plan
    clients: range
    interval_ns: int
    topic: str  # the run's events topic (deltas to the coordinator)
    go: str  # the Variable holding the start instant, per the worker's clock
    stop: str  # the Event that stops the run
    # the Event that lets it close its connections, once the coordinator
    # has read the server's CPU while every backend of the run still exists
    release: str = ""
    # a Python workload's files: original path -> {file name: source}
    sources: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Shipped:
    """A Python workload on its way: loaded again from shipped source."""

    path: str
    script: int
    first: int
    steps: tuple[str, ...]


class _JobPickler(ForkingPickler):
    """ForkingPickler (it knows how a compiled \\set expression crosses),
    with a Python workload's code replaced by where it came from."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, PythonCode):
            first = obj.steps[0] if obj.steps else 0
            return (_Shipped, (obj.path, obj.script, first, obj.step_names))
        return NotImplemented


def pack(job: Job) -> bytes:
    sources = {
        s.python.path: shipped_sources(s.python.path)
        for s in job.plan.workload.scripts
        if s.python is not None
    }
    buffer = io.BytesIO()
    _JobPickler(buffer, pickle.HIGHEST_PROTOCOL).dump(replace(job, sources=sources))
    return buffer.getvalue()


def unpack(blob: bytes) -> Job:
    """The job, its Python workloads written out and loaded on this worker."""
    import dbload.modes.processes  # noqa: F401  (registers how an Expression crosses)

    job: Job = pickle.loads(blob)
    workload = job.plan.workload
    if not job.sources:
        return job
    root = Path(tempfile.mkdtemp(prefix=f"dbload-{job.topic}-"))
    scripts = []
    for number, script in enumerate(workload.scripts):
        shipped: Any = script.python
        if isinstance(shipped, _Shipped):
            folder = root / str(number)
            folder.mkdir()
            for name, text in job.sources[shipped.path].items():
                (folder / name).write_text(text, encoding="utf-8")
            local = str(folder / Path(shipped.path).name)
            code = load_code(local, shipped.script, shipped.first, shipped.steps)
            script = replace(script, python=code)
        scripts.append(script)
    plan = replace(job.plan, workload=_with_scripts(workload, scripts))
    return replace(job, plan=plan)


def _with_scripts(workload: Workload, scripts: list[Any]) -> Workload:
    return replace(workload, scripts=tuple(scripts))
