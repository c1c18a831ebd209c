"""Generate dbload's sync modules from their async sources.

The worker loop and the drivers that exist in both styles (psycopg,
SQLAlchemy) are written once, async, and their sync twins are generated
from them, as psycopg generates its sync classes from the async ones
(its tools/async_to_sync.py): a change made to one style cannot be
forgotten in the other, and tests/test_async_to_sync.py fails when a
generated file is not what its source gives.

The conversion is on tokens, so comments and layout survive: ``async`` and
``await`` are dropped, names in RENAMES are replaced, and a block under
``if ASYNC:`` is replaced by its ``else:`` block (or dropped). ruff then
removes what became unused and formats the result.

    python tools/async_to_sync.py          # regenerate
    python tools/async_to_sync.py --check  # exit 1 if a file is stale
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "service" / "dbload"

# async source -> generated sync file
FILES = {
    "modes/loop_async.py": "modes/loop_sync.py",
    "drivers/link_async.py": "drivers/link_sync.py",
    "drivers/psycopg_async.py": "drivers/psycopg_sync.py",
    "drivers/sqlalchemy_async.py": "drivers/sqlalchemy_sync.py",
}

RENAMES = {
    # dbload's own twins
    "loop_async": "loop_sync",
    "link_async": "link_sync",
    "rt_async": "rt_sync",
    "psycopg_async": "psycopg_sync",
    "sqlalchemy_async": "sqlalchemy_sync",
    "AsyncLink": "SyncLink",
    "AsyncDriver": "SyncDriver",
    "AsyncPsycopgDriver": "PsycopgDriver",
    "AsyncPsycopgLink": "PsycopgLink",
    "AsyncAlchemyDriver": "AlchemyDriver",
    "AsyncAlchemyLink": "AlchemyLink",
    "async_fn": "sync_fn",
    # psycopg's and psycopg_pool's
    "AsyncConnection": "Connection",
    "AsyncRawCursor": "RawCursor",
    "AsyncPipeline": "Pipeline",
    "AsyncConnectionPool": "ConnectionPool",
    # SQLAlchemy's
    "AsyncEngine": "Engine",
    "AsyncSession": "Session",
    "create_async_engine": "create_engine",
    "AsyncAdaptedQueuePool": "QueuePool",
    # Python's
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
}
# whole texts spelled differently in the sync world
LINE_RENAMES = {
    "from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession,"
    " create_async_engine\n": "from sqlalchemy import Connection, Engine, create_engine\n"
    "from sqlalchemy.orm import Session\n",
}

_IF_ASYNC = re.compile(r"^(?P<indent>[ \t]*)if ASYNC:[ \t]*(#.*)?$")


def convert(source: str, name: str) -> str:
    """The sync twin of ``source`` (the module ``name``), before ruff."""
    text = _resolve_if_async(source)
    for old, new in LINE_RENAMES.items():
        text = text.replace(old, new)
    text = re.sub(r"^ASYNC = True$", "ASYNC = False", text, flags=re.MULTILINE)
    text = _retoken(text)
    header = (
        f"# Generated from {name} by tools/async_to_sync.py:\n"
        "# edit that file, then run `python tools/async_to_sync.py`.\n"
    )
    return header + text


def _resolve_if_async(source: str) -> str:
    """``if ASYNC:`` blocks: the ``else:`` branch, dedented, in their place."""
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _IF_ASYNC.match(lines[i].rstrip("\n"))
        if match is None:
            out.append(lines[i])
            i += 1
            continue
        indent = match.group("indent")
        body_end = _block_end(lines, i + 1, indent)
        i = body_end
        if i < len(lines) and lines[i].rstrip() == f"{indent}else:":
            else_end = _block_end(lines, i + 1, indent)
            for line in lines[i + 1 : else_end]:
                out.append(_dedent(line, len(indent)))
            i = else_end
    return "".join(out)


def _block_end(lines: list[str], start: int, indent: str) -> int:
    """The first line after ``start`` indented no deeper than ``indent``."""
    i = start
    while i < len(lines):
        line = lines[i]
        if (
            line.strip()
            and not line.startswith(indent + " ")
            and not line.startswith(indent + "\t")
        ):
            break
        i += 1
    return i


def _dedent(line: str, outer: int) -> str:
    """A line of an else block, moved up to the ``if``'s own indentation."""
    if not line.strip():
        return line
    return line[:outer] + line[outer + 4 :] if line[outer : outer + 4] == "    " else line


def _retoken(text: str) -> str:
    lines = text.splitlines(keepends=True)
    edits: list[tuple[int, int, int, str]] = []  # row, start col, end col, new text
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    for i, tok in enumerate(tokens):
        if tok.type != tokenize.NAME:
            continue
        row, col = tok.start
        if tok.string in ("async", "await"):
            following = tokens[i + 1]
            end = following.start[1] if following.start[0] == row else tok.end[1]
            edits.append((row, col, end, ""))
        elif tok.string in RENAMES:
            edits.append((row, col, tok.end[1], RENAMES[tok.string]))
    for row, start, end, new in sorted(edits, reverse=True):
        line = lines[row - 1]
        lines[row - 1] = line[:start] + new + line[end:]
    return "".join(lines)


def _ruff(code: str, target: Path) -> str:
    """Unused imports removed, imports sorted, formatted: as the project's ruff does."""
    name = str(target.relative_to(ROOT))
    fixed = subprocess.run(
        ["ruff", "check", "--fix", "--select", "F401,I", "--stdin-filename", name, "-"],
        input=code, capture_output=True, text=True, check=False, cwd=ROOT,
    ).stdout or code  # fmt: skip
    return subprocess.run(
        ["ruff", "format", "--stdin-filename", name, "-"],
        input=fixed, capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout  # fmt: skip


def generate(source: Path, target: Path) -> str:
    name = str(source.relative_to(PACKAGE.parent))
    return _ruff(convert(source.read_text(), name), target)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for src, dst in FILES.items():
        source, target = PACKAGE / src, PACKAGE / dst
        if not source.exists():
            continue
        code = generate(source, target)
        if target.exists() and target.read_text() == code:
            continue
        stale.append(dst)
        if not check:
            target.write_text(code)
    if stale:
        verb = "stale" if check else "regenerated"
        print(f"{verb}: {', '.join(stale)}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
