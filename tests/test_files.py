"""Result files under faults: a full disk or a read-only folder is one clear
error, the report still reaches the terminal, and no file is left behind,
whole or half-written.

Root ignores mode bits, so the faults are real ones: a small tmpfs that is
full, remounted read-only, or (where mounting is not permitted) an
immutable folder; mode bits only for a user they bind.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbload.errors import DbloadError, UsageError
from dbload.report.html import check_out_dir
from dbload.report.json_ import write_json
from test_cli import _cli, _one_line_error, _script, _subprocess
from test_secrets import _start

PAGE = 4096  # tmpfs counts its space in pages
# 40 statements: their per-statement figures make the JSON ~10 kB, which
# cannot fit in the one page left free on the full disk
BIG_SCRIPT = "\\set aid random(1, 100000)\n" + "".join(
    f"SELECT abalance + {i} FROM pgbench_accounts WHERE aid = :aid;\n" for i in range(40)
)


def _try(cmd: list[str]) -> str | None:
    """None when ``cmd`` succeeded, else why not."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if done.returncode == 0 else done.stderr.strip() or f"exit {done.returncode}"


def _mount_tmpfs(path: Path, size: str) -> str | None:
    """Mount a tmpfs of ``size`` on ``path``; None when done, else why not."""
    path.mkdir(exist_ok=True)
    return _try(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)])


def _unmount(path: Path) -> None:
    if _try(["umount", str(path)]) is not None:
        _try(["umount", "--lazy", str(path)])  # still busy: detach it all the same


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a 64 kB tmpfs that is full but for one page."""
    folder = tmp_path / "full"
    if (why := _mount_tmpfs(folder, "64k")) is not None:
        pytest.skip(f"cannot mount a tmpfs (needs root with CAP_SYS_ADMIN): {why}")
    try:
        _fill(folder / "filler", leave=PAGE)
        yield folder
    finally:
        _unmount(folder)


def _fill(path: Path, leave: int) -> None:
    """Write ``path`` until the file system is full, then give back ``leave`` bytes."""
    with path.open("wb", buffering=0) as f:
        while True:
            try:
                f.write(b"\0" * PAGE)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    os.truncate(path, path.stat().st_size - leave)
    assert _free(path.parent) == leave


def _free(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


class ReadOnly:
    """Turns a folder read-only for its user, root included, and back."""

    def __init__(self, folder: Path, how: str) -> None:
        self.folder = folder
        self.how = how  # "remount", "chattr" or "chmod"

    def __call__(self, on: bool = True) -> None:
        if self.how == "remount":
            why = _try(["mount", "-o", f"remount,{'ro' if on else 'rw'}", str(self.folder)])
        elif self.how == "chattr":
            why = _try(["chattr", "+i" if on else "-i", str(self.folder)])
        else:
            self.folder.chmod(0o500 if on else 0o700)
            why = None
        assert why is None, why


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[ReadOnly]:
    """An empty, still writable folder, and the switch that makes it read-only."""
    folder = tmp_path / "out"
    folder.mkdir()
    if os.geteuid() != 0:  # mode bits bind everyone but root
        switch = ReadOnly(folder, "chmod")
    elif (why := _mount_tmpfs(folder, "1m")) is None:
        switch = ReadOnly(folder, "remount")
    elif (why_not := _try(["chattr", "+i", str(folder)])) is None:
        _try(["chattr", "-i", str(folder)])
        switch = ReadOnly(folder, "chattr")
    else:
        pytest.skip(f"root, and no way to make a folder read-only: {why}; {why_not}")
    try:
        yield switch
    finally:
        switch(on=False)
        if switch.how == "remount":
            _unmount(folder)


@pytest.mark.slow
def test_full_disk_is_one_clear_error_and_leaves_no_file(
    seeded_dsn: str, tmp_path: Path, full_disk: Path
) -> None:
    script = _script(tmp_path, "big.sql", BIG_SCRIPT)
    args = ("run", "-n", "40", "-c", "2", "--seed", "3", "-f", script, "--dsn", seeded_dsn)
    # the control: on a disk with room, this JSON needs more than the page left
    code, _, err = _cli(*args, "--json", str(tmp_path / "control.json"))
    assert code == 0, err
    assert (tmp_path / "control.json").stat().st_size > 2 * PAGE
    target = full_disk / "out.json"
    proc = _subprocess(*args, "--json", str(target))
    _one_line_error(proc.returncode, proc.stderr, str(target), "No space left on device")
    assert proc.returncode == 1
    assert "tps" in proc.stdout and "result written" not in proc.stdout  # nothing lost
    assert [p.name for p in full_disk.iterdir()] == ["filler"]  # no file, no .tmp
    assert _free(full_disk) == PAGE  # the half-written temp file's space came back


def test_read_only_folder_is_refused_before_the_run(read_only: ReadOnly) -> None:
    read_only()
    # an unreachable server: the check comes before any connection
    target = read_only.folder / "out.json"
    code, _, err = _cli("run", "--dsn", "postgresql://u@127.0.0.1:1/x", "--json", str(target))
    _one_line_error(code, err, "--json", str(read_only.folder), "not writable")
    assert code == 2


def test_write_json_into_a_read_only_folder_is_a_clear_error(read_only: ReadOnly) -> None:
    read_only()
    target = read_only.folder / "run.json"
    with pytest.raises(DbloadError, match=f"cannot write {target}: ") as info:
        write_json(target, {"schema": "dbload/result@1"})
    assert "\n" not in str(info.value)
    read_only(on=False)
    assert list(read_only.folder.iterdir()) == []


@pytest.mark.slow
def test_folder_turning_read_only_during_the_run(seeded_dsn: str, read_only: ReadOnly) -> None:
    """Writable when the run starts (the early check passes), read-only when it
    ends: the report is printed, the error is one line, no file is left."""
    target = read_only.folder / "out.json"
    proc, _ = _start(["-T", "2", "-c", "2", "--json", str(target), "--dsn", seeded_dsn])
    try:
        time.sleep(0.5)
        read_only()
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    _one_line_error(proc.returncode, err, f"cannot write {target}: ")
    assert proc.returncode == 1
    assert "tps" in out and "result written" not in out
    read_only(on=False)
    assert list(read_only.folder.iterdir()) == []


def test_json_replaces_an_old_file_in_one_step(seeded_dsn: str, tmp_path: Path) -> None:
    """A rename, not a rewrite: a reader of the old file keeps reading it
    whole, and the new one appears complete."""
    target = tmp_path / "r.json"
    target.write_text('{"old": true}\n')
    with target.open() as reader:
        code, _, err = _cli("run", "-n", "10", "--dsn", seeded_dsn, "--json", str(target))
        assert code == 0, err
        assert reader.read() == '{"old": true}\n'
    assert json.loads(target.read_text())["transactions"]["count"] == 10
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_read_only_compare_out_dir_is_refused(read_only: ReadOnly) -> None:
    read_only()
    with pytest.raises(UsageError, match="--out: cannot write into"):
        check_out_dir(read_only.folder)
