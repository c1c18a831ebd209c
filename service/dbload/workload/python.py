"""Python workloads: ``-f tasks.py``, a team's own code under load.

The module defines ``transaction(db, ctx)``: a plain ``def`` for the sync
modes, an ``async def`` for the async ones; ``async_transaction`` (an
``async def``) lets one file serve both. ``db`` is what the driver holds
(psycopg or asyncpg connection, SQLAlchemy session): the executor passes it,
this module never connects.

Named steps (``with ctx.step("lookup"):``) become per-statement rows. The
recorder's slots are fixed before the run, so the names are found by reading
the source (calls ``<anything>.step("literal")``) when the file is loaded,
one :class:`~dbload.workload.model.Statement` per distinct name.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import random
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, ModuleType, TracebackType
from typing import Any

from dbload.errors import WorkloadError
from dbload.workload.model import Script, Statement, Step, Value, Workload
from dbload.workload.source import read_script

SYNC_NAME, ASYNC_NAME = "transaction", "async_transaction"
_NEEDS = (
    "define transaction(db, ctx): a def for --mode sequential or threads, an async def"
    " for --mode async or processes (or both: def transaction and async def async_transaction)"
)


@dataclass(frozen=True, slots=True)
class PythonCode:
    """A loaded Python workload: what :data:`~dbload.workload.stream.CALL` carries.

    ``steps[i]`` is the statement index of the step named ``step_names[i]``;
    ``tables`` the pgbench tables its source (and its same-folder imports)
    names, for seeding.
    """

    path: str
    sync_fn: Callable[..., Any] | None
    async_fn: Callable[..., Any] | None
    steps: tuple[int, ...]
    script: int = 0
    step_names: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()

    def __reduce__(self) -> tuple[Any, ...]:
        # functions do not pickle by value: a worker process imports the file again
        first = self.steps[0] if self.steps else 0
        return (load_code, (self.path, self.script, first, self.step_names))


class StepError(Exception):
    """A ``ctx.step()`` the run cannot record: it fails that transaction."""


class _StepTimer:
    """``with ctx.step(name):`` — a plain class: this is the hot path."""

    __slots__ = ("_ctx", "_index", "_name", "_start")

    def __init__(self, ctx: TaskContext, index: int, name: str) -> None:
        self._ctx = ctx
        self._index = index
        self._name = name
        self._start = 0

    def __enter__(self) -> None:
        ctx = self._ctx
        if ctx._open is not None:
            # the executor pairs steps[i] with step_ns[i]: an inner step's
            # time would land on the outer one's row
            raise StepError(
                f"ctx.step({self._name!r}) inside ctx.step({ctx._open!r}):"
                " steps cannot nest or overlap"
            )
        ctx._open = self._name
        ctx._steps.append((self._index, ()))
        self._start = _now_ns()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        elapsed = _now_ns() - self._start
        ctx = self._ctx
        ctx._open = None
        if exc_type is None:  # a failed step has no time: the executor names it
            ctx._step_ns.append(elapsed)


_now_ns = time.perf_counter_ns


class TaskContext:
    """``ctx``: one per client and Python script, for the whole run.

    ``random`` is seeded from the run's seed, the client id and the script
    index: the same ``--seed`` draws the same values in every mode.
    """

    __slots__ = (
        "_index",
        "_open",
        "_source",
        "_step_ns",
        "_steps",
        "client_id",
        "defines",
        "random",
        "scale",
    )

    def __init__(
        self,
        code: PythonCode,
        *,
        seed: int,
        client_id: int,
        scale: int,
        defines: Mapping[str, Value] | None = None,
    ) -> None:
        # a string seed is hashed (SHA-512) by random.Random: the same in every process
        self.random = random.Random(f"dbload:python:{seed}:{client_id}:{code.script}")
        self.client_id = client_id
        self.scale = scale
        self.defines: Mapping[str, Value] = MappingProxyType(dict(defines or {}))
        self._index = dict(zip(code.step_names, code.steps, strict=True))
        self._source = code.path
        self._steps: list[Step] = []
        self._step_ns: list[int] = []
        self._open: str | None = None

    def bind(self, steps: list[Step], step_ns: list[int]) -> None:
        """Where the next call's steps go: ``(statement, ())`` on entry, the
        elapsed ns on a clean exit (so a failed step has no time)."""
        self._steps = steps
        self._step_ns = step_ns
        self._open = None

    def step(self, name: str) -> _StepTimer:
        """A context manager timing a named part of the transaction."""
        try:
            index = self._index[name]
        except (KeyError, TypeError):
            known = ", ".join(repr(n) for n in self._index) or "none"
            raise StepError(
                f"ctx.step({name!r}): not a step of {self._source} (found: {known});"
                " ctx.step(...) needs a string literal name, found before the run"
            ) from None
        return _StepTimer(self, index, name)

    def __repr__(self) -> str:
        return f"TaskContext(client_id={self.client_id}, scale={self.scale})"


def is_python(path: str) -> bool:
    return path.lower().endswith(".py")


def load_python(
    path: str, *, name: str, weight: int, script_index: int, first_statement: int
) -> tuple[Script, list[Statement]]:
    """The script for ``path`` and its step statements, numbered from
    ``first_statement``. Raises :class:`WorkloadError` naming file and line."""
    code, scan = _load(path, script_index, first_statement)
    statements = [
        Statement(sql=f'step "{step}"', params=(), script=script_index, source=where, line=line)
        for step, (where, line) in scan.steps.items()
    ]
    script = Script(
        name=name,
        source=path,
        weight=weight,
        description=scan.description,
        commands=(),
        statements=code.steps,
        python=code,
    )
    return script, statements


def load_code(
    path: str,
    script: int = 0,
    first_statement: int = 0,
    expect_steps: tuple[str, ...] | None = None,
) -> PythonCode:
    """Import ``path`` (once per process and file version) and check its
    functions; ``expect_steps``: the names found when the run was prepared
    (a worker process loads the file again)."""
    code, _ = _load(path, script, first_statement)
    if expect_steps is not None and code.step_names != expect_steps:
        raise WorkloadError("changed since the run was prepared (its ctx.step names)", source=path)
    return code


def _load(path: str, script: int, first_statement: int) -> tuple[PythonCode, _Scan]:
    scan = _scan(path)
    names = tuple(scan.steps)
    sync_fn, async_fn = _functions(_import(path), path)
    code = PythonCode(
        path=path,
        sync_fn=sync_fn,
        async_fn=async_fn,
        steps=tuple(range(first_statement, first_statement + len(names))),
        script=script,
        step_names=names,
        tables=_pgbench_tables(scan.texts),
    )
    return code, scan


def shipped_sources(path: str) -> dict[str, str]:
    """What a Dask worker needs to load ``path``: its source and that of the
    modules it imports from its own folder, by file name (dbload.cluster)."""
    return dict(_scan(path).files)


def check_python_style(workload: Workload, style: str, mode: str | None = None) -> None:
    """Refuse a Python script that has no function for ``style`` ("sync" or
    "async", see dbload.drivers.style_of); ``mode`` names it in the message."""
    if style not in ("sync", "async"):
        raise ValueError(f"style must be 'sync' or 'async', not {style!r}")
    for script in workload.scripts:
        code = script.python
        if code is None:
            continue
        if style == "async" and code.async_fn is None:
            which = f"--mode {mode}" if mode else "an async mode"
            raise WorkloadError(
                f"{SYNC_NAME} is a plain def; {which} needs an async def ({SYNC_NAME} or"
                f" {ASYNC_NAME}), or run --mode sequential or threads",
                source=script.source,
            )
        if style == "sync" and code.sync_fn is None:
            which = f"--mode {mode}" if mode else "a sync mode"
            raise WorkloadError(
                f"{_async_name(code)} is an async def; {which} needs a plain def"
                f" {SYNC_NAME}(db, ctx), or run --mode async or processes",
                source=script.source,
            )


def workload_tables(workload: Workload) -> tuple[str, ...]:
    """The pgbench tables a workload names: in its SQL, and in its Python
    scripts' source and their same-folder imports (an ORM model's
    ``__tablename__ = "pgbench_accounts"`` counts)."""
    texts: list[str] = [s.sql for s in workload.statements]
    texts += [" ".join(s.python.tables) for s in workload.scripts if s.python is not None]
    return _pgbench_tables(texts)


def _async_name(code: PythonCode) -> str:
    fn = code.async_fn
    return ASYNC_NAME if fn is not None and fn.__name__ == ASYNC_NAME else SYNC_NAME


@dataclass(frozen=True, slots=True)
class _Scan:
    steps: dict[str, tuple[str, int]]  # name -> (file, line) of first use, in order
    texts: tuple[str, ...]  # the module's source and its same-folder imports'
    description: str  # the module docstring's first line
    files: dict[str, str]  # the same sources, by file name


def _parse(text: str, source: str) -> ast.Module:
    try:
        return ast.parse(text, filename=source)
    except SyntaxError as exc:
        raise _syntax_error(exc, source) from None
    except ValueError as exc:  # e.g. a NUL byte in the source
        raise WorkloadError(f"SyntaxError: {exc}", source=source) from None


def _syntax_error(exc: SyntaxError, source: str) -> WorkloadError:
    return WorkloadError(f"{type(exc).__name__}: {exc.msg}", source=source, line=exc.lineno)


def _scan(path: str) -> _Scan:
    """Step names (in order of first use) in the module and the modules it
    imports from its own folder, with their source texts."""
    steps: dict[str, tuple[str, int]] = {}
    texts: list[str] = []
    files: dict[str, str] = {}
    description = ""
    folder = Path(path).expanduser().parent
    pending, seen = [path], {Path(path).expanduser().resolve()}
    while pending:
        current = pending.pop(0)
        text = read_script(current)
        try:
            tree = _parse(text, current)
        except WorkloadError:
            if current == path:
                raise
            continue  # a broken helper: importing it says where, with its line
        texts.append(text)
        files[Path(current).name] = text
        if current == path:
            doc = (ast.get_docstring(tree) or "").strip()
            description = doc.splitlines()[0] if doc else ""
        for step, line in _step_calls(tree):
            steps.setdefault(step, (current, line))
        for module in _local_imports(tree):
            candidate = folder / f"{module}.py"
            if candidate.is_file() and (real := candidate.resolve()) not in seen:
                seen.add(real)
                pending.append(str(candidate))
    return _Scan(steps, tuple(texts), description, files)


def _step_calls(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """``x.step("name")`` (or ``name="..."``) calls, in source order."""
    found: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "step"
        ):
            continue
        args = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "name")]
        if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
            found.append((node.lineno, node.col_offset, args[0].value))
    for line, _, name in sorted(found):
        yield name, line


def _local_imports(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.partition(".")[0]


_LOADED: dict[tuple[str, int, int], ModuleType] = {}
_LOCK = threading.Lock()


def _import(path: str) -> ModuleType:
    """The module, imported once per file version: a second import would
    declare an ORM model twice on a shared ``Base``."""
    real = Path(path).expanduser().resolve()
    stat = real.stat()
    key = (str(real), stat.st_mtime_ns, stat.st_size)
    with _LOCK:
        if (module := _LOADED.get(key)) is None:
            module = _LOADED[key] = _exec(real, path)
    return module


def _exec(real: Path, source: str) -> ModuleType:
    digest = hashlib.sha1(str(real).encode(), usedforsecurity=False).hexdigest()[:10]
    name = f"_dbload_workload_{digest}"
    spec = importlib.util.spec_from_file_location(name, real)
    if spec is None or spec.loader is None:
        raise WorkloadError("cannot load as a Python module", source=source)
    module = importlib.util.module_from_spec(spec)
    # as `python tasks.py` would: its folder first, so `from models import ...` works
    # (kept after the import: a function may import lazily at run time)
    folder = str(real.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module  # dataclasses and pickle look classes up there
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:  # in a module it imports: name that file
        sys.modules.pop(name, None)
        where = source if exc.filename == str(real) else exc.filename
        raise _syntax_error(exc, where or source) from None
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        raise _import_error(exc, real, source) from None
    return module


def _import_error(exc: BaseException, real: Path, source: str) -> WorkloadError:
    frames = traceback.extract_tb(exc.__traceback__)
    lines = [f.lineno for f in frames if f.filename == str(real)]
    message = str(exc).strip().splitlines()
    what = type(exc).__name__ + (f": {message[0]}" if message else "")
    return WorkloadError(f"import raised {what}", source=source, line=lines[-1] if lines else None)


def _functions(
    module: ModuleType, source: str
) -> tuple[Callable[..., Any] | None, Callable[..., Any] | None]:
    """(sync, async) entry points, checked for kind and arity."""
    plain = getattr(module, SYNC_NAME, None)
    other = getattr(module, ASYNC_NAME, None)
    if plain is None and other is None:
        raise WorkloadError(f"no {SYNC_NAME} function: {_NEEDS}", source=source)
    for label, fn in ((SYNC_NAME, plain), (ASYNC_NAME, other)):
        if fn is not None:
            _check_callable(label, fn, source)
    if other is not None and not _is_async(other):
        raise WorkloadError(f"{ASYNC_NAME} must be an async def", source=source, line=_line(other))
    if plain is not None and _is_async(plain):
        if other is not None:
            raise WorkloadError(
                f"both {SYNC_NAME} and {ASYNC_NAME} are async def: make {SYNC_NAME} a plain def",
                source=source,
                line=_line(plain),
            )
        return None, plain
    return plain, other


def _check_callable(label: str, fn: object, source: str) -> None:
    if not callable(fn):
        what = type(fn).__name__
        raise WorkloadError(f"{label} is not a function ({what}): {_NEEDS}", source=source)
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise WorkloadError(
            f"{label} is a generator (it yields): it must return", source=source, line=_line(fn)
        )
    try:
        inspect.signature(fn).bind(None, None)
    except TypeError:
        raise WorkloadError(
            f"{label} must take two arguments (db, ctx)", source=source, line=_line(fn)
        ) from None
    except ValueError:  # no signature to read (a builtin): let the call tell
        pass


def _is_async(fn: object) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def _line(fn: object) -> int | None:
    code = getattr(fn, "__code__", None)
    return getattr(code, "co_firstlineno", None)


def _pgbench_tables(texts: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    # imported here: dbload.schema pulls in Alembic and SQLAlchemy, a second
    # of start-up that every worker process would pay for the stream alone
    from dbload.schema.seed import pgbench_tables

    return pgbench_tables(texts)
