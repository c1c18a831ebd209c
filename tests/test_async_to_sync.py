"""The generated sync twins are what their async sources give, and the
generator's rules do what they say."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("async_to_sync", ROOT / "tools" / "async_to_sync.py")
assert spec is not None and spec.loader is not None
tool = importlib.util.module_from_spec(spec)
sys.modules["async_to_sync"] = tool
spec.loader.exec_module(tool)


@pytest.mark.parametrize(("source", "target"), sorted(tool.FILES.items()))
def test_every_generated_file_is_what_its_async_source_gives(source: str, target: str) -> None:
    src, dst = tool.PACKAGE / source, tool.PACKAGE / target
    assert dst.read_text() == tool.generate(src, dst), (
        f"{target} is stale: run `python tools/async_to_sync.py`"
    )


def test_async_and_await_are_dropped_and_twins_renamed() -> None:
    source = (
        "async def f(conn: AsyncConnection) -> None:\n"
        "    async with conn.lock:\n"
        "        await conn.execute('SELECT 1')  # await stays in comments\n"
    )
    out = tool.convert(source, "x.py")
    assert "async def" not in out and "await conn" not in out
    assert "def f(conn: Connection) -> None:" in out
    assert "    with conn.lock:" in out
    assert "conn.execute('SELECT 1')  # await stays in comments" in out


def test_an_if_async_block_becomes_its_else_branch() -> None:
    source = (
        "ASYNC = True\n"
        "def f() -> int:\n"
        "    if ASYNC:\n"
        "        return 1\n"
        "    else:\n"
        "        if True:\n"
        "            return 2\n"
        "    return 3\n"
    )
    out = tool.convert(source, "x.py")
    assert "ASYNC = False" in out
    assert "return 1" not in out
    assert "    if True:\n        return 2\n    return 3\n" in out


def test_the_check_fails_on_a_stale_twin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "service" / "dbload"
    (package / "modes").mkdir(parents=True)
    (package / "modes" / "loop_async.py").write_text("async def f() -> None:\n    await g()\n")
    (package / "modes" / "loop_sync.py").write_text("def f() -> None:\n    h()\n")
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    monkeypatch.setattr(tool, "PACKAGE", package)
    assert tool.main(["--check"]) == 1
    assert tool.main([]) == 0
    assert tool.main(["--check"]) == 0
    assert "    g()\n" in (package / "modes" / "loop_sync.py").read_text()
