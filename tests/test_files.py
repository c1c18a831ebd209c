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
import re
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbload.config import check_output
from dbload.errors import DbloadError, UsageError
from dbload.measure.comparison import Comparison
from dbload.report.html import check_out_dir, write_report
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


# -- what is not a regular file is written through, never renamed over ---------


def _is_link_to(path: Path, target: str) -> bool:
    return path.is_symlink() and os.readlink(path) == target


def test_a_fifo_is_written_through_not_replaced(seeded_dsn: str, tmp_path: Path) -> None:
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    # the reader blocks in open() until dbload opens the FIFO to write
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    code, _, err = _cli("run", "-n", "10", "--dsn", seeded_dsn, "--json", str(fifo))
    assert code == 0, err
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # still the FIFO, not a file renamed over it
    reader.join(timeout=60)  # a guard against a hang, not a measurement
    assert received and json.loads(received[0])["transactions"]["count"] == 10


def test_json_dash_goes_to_stdout_and_creates_no_file(
    capfd: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_json(Path("-"), {"schema": "dbload/result@1"})
    assert json.loads(capfd.readouterr().out) == {"schema": "dbload/result@1"}
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_run_json_dash_puts_json_on_stdout_and_report_on_stderr(seeded_dsn: str) -> None:
    proc = _subprocess("run", "-n", "10", "--dsn", seeded_dsn, "--json", "-")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["transactions"]["count"] == 10
    assert "tps" in proc.stderr


def test_a_link_to_dev_null_is_written_through(tmp_path: Path) -> None:
    link = tmp_path / "null.json"
    link.symlink_to("/dev/null")
    write_json(link, {"schema": "dbload/result@1"})
    assert _is_link_to(link, "/dev/null")
    assert [p.name for p in tmp_path.iterdir()] == ["null.json"]  # no temp file either


def test_a_link_to_dev_full_is_one_clear_error_and_stays(tmp_path: Path) -> None:
    link = tmp_path / "full.json"
    link.symlink_to("/dev/full")
    with pytest.raises(DbloadError) as info:
        write_json(link, {"schema": "dbload/result@1"})
    assert str(info.value) == f"cannot write {link}: No space left on device"
    assert _is_link_to(link, "/dev/full")


@pytest.mark.slow
def test_a_descriptor_link_appends_after_what_was_printed(seeded_dsn: str, tmp_path: Path) -> None:
    """``--json /dev/stdout > out.txt``, with a link of our own to
    /proc/self/fd/1 (never the real /dev/stdout): the JSON goes to the
    descriptor after the report, neither renamed over the link nor over
    the redirected file, nor written from its start."""
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    captured = tmp_path / "out.txt"
    with captured.open("w") as stdout:
        done = subprocess.run(
            [sys.executable, "-m", "dbload", "run", "-n", "10", "--dsn", seeded_dsn,
             "--json", str(link)],
            stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _is_link_to(link, "/proc/self/fd/1")
    text = captured.read_text()
    report, brace, data = text.partition("\n{\n")
    assert "tps" in report and brace
    assert json.loads(brace + data)["transactions"]["count"] == 10


def test_a_link_to_a_directory_is_refused_and_kept(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    link = tmp_path / "r.json"
    link.symlink_to("dir")
    with pytest.raises(DbloadError, match=f"^cannot write {re.escape(str(link))}: Is a directory$"):
        write_json(link, {"schema": "dbload/result@1"})
    assert _is_link_to(link, "dir") and list((tmp_path / "dir").iterdir()) == []
    with pytest.raises(UsageError, match="is a directory"):
        check_output(link)


def test_a_link_to_a_file_keeps_the_link_and_replaces_the_target(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    target = tmp_path / "runs" / "run-42.json"
    target.write_text('{"old": true}\n')
    link = tmp_path / "latest.json"
    link.symlink_to("runs/run-42.json")
    with target.open() as reader:  # the target is replaced by a rename, too
        write_json(link, {"new": True})
        assert reader.read() == '{"old": true}\n'
    assert _is_link_to(link, "runs/run-42.json")
    assert json.loads(target.read_text()) == {"new": True}
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["latest.json", "run-42.json", "runs"]


def test_a_link_into_a_read_only_folder_fails_and_keeps_both(
    tmp_path: Path, read_only: ReadOnly
) -> None:
    target = read_only.folder / "r.json"
    target.write_text('{"old": true}\n')
    read_only()
    link = tmp_path / "r.json"
    link.symlink_to(target)
    assert check_output(tmp_path / "plain.json") is not None  # the link's own folder is fine
    with pytest.raises(
        UsageError, match=f"--json: directory {re.escape(str(read_only.folder))} is not writable"
    ):
        check_output(link)
    with pytest.raises(DbloadError, match=f"^cannot write {re.escape(str(link))}: "):
        write_json(link, {"new": True})
    assert _is_link_to(link, str(target))
    assert target.read_text() == '{"old": true}\n'


def test_a_link_onto_a_full_disk_fails_and_keeps_the_old_file(
    tmp_path: Path, full_disk: Path
) -> None:
    target = full_disk / "r.json"
    target.write_text('{"old": true}\n')  # in the one page left
    link = tmp_path / "r.json"
    link.symlink_to(target)
    with pytest.raises(
        DbloadError, match=f"^cannot write {re.escape(str(link))}: No space left on device$"
    ):
        write_json(link, {"statements": ["x" * 100] * 100})
    assert _is_link_to(link, str(target))
    assert target.read_text() == '{"old": true}\n'
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler", "r.json"]


# -- a folder of files is complete or as it was ----------------------------------


@pytest.fixture
def roomy_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """An empty 4 MB tmpfs, to be filled by the test."""
    folder = tmp_path / "disk"
    if (why := _mount_tmpfs(folder, "4m")) is not None:
        pytest.skip(f"cannot mount a tmpfs (needs root with CAP_SYS_ADMIN): {why}")
    try:
        yield folder
    finally:
        _unmount(folder)


def _report_size(comparison: Comparison, tmp_path: Path) -> int:
    written = write_report(comparison, tmp_path / "control")
    return sum(p.stat().st_size for p in written)


@pytest.mark.slow
def test_compare_out_on_a_full_disk_leaves_no_folder(
    small_comparison: Comparison, tmp_path: Path, roomy_tmpfs: Path
) -> None:
    """Room for about half the report: some files would fit, the folder does not appear."""
    size = _report_size(small_comparison, tmp_path)
    _fill(roomy_tmpfs / "filler", leave=size // 2 // PAGE * PAGE)
    out = roomy_tmpfs / "report"
    check_out_dir(out)  # before the run: there is room for a file
    with pytest.raises(DbloadError) as info:
        write_report(small_comparison, out)
    assert [p.name for p in roomy_tmpfs.iterdir()] == ["filler"]  # no folder, no stage
    message = str(info.value)
    assert message.startswith(f"cannot write {out}/") and "\n" not in message
    assert message.endswith(f"No space left on device; {out} not created")


@pytest.mark.slow
def test_a_full_disk_leaves_an_existing_report_folder_as_it_was(
    small_comparison: Comparison, tmp_path: Path, roomy_tmpfs: Path
) -> None:
    size = _report_size(small_comparison, tmp_path)
    out = roomy_tmpfs / "report"
    out.mkdir()
    before = {"notes.txt": "mine\n", "results.json": '{"old": true}\n', "report.html": "old\n"}
    for name, text in before.items():
        (out / name).write_text(text)
    _fill(roomy_tmpfs / "filler", leave=size // 2 // PAGE * PAGE)
    with pytest.raises(DbloadError) as info:
        write_report(small_comparison, out)
    assert {p.name: p.read_bytes().decode("latin-1") for p in out.iterdir()} == before
    assert str(info.value).endswith(f"; {out} left as it was")
    # with room again: the report's files replaced, the others kept
    (roomy_tmpfs / "filler").unlink()
    written = write_report(small_comparison, out)
    assert (out / "notes.txt").read_text() == "mine\n"
    assert json.loads((out / "results.json").read_text())["schema"].startswith("dbload/compare@")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["notes.txt", *(p.name for p in written)]
    )


def test_report_refuses_to_overwrite_its_input(tmp_path: Path) -> None:
    """``dbload report X/results.json --out X``: by its name, a link or a hard link."""
    saved = tmp_path / "x" / "results.json"
    saved.parent.mkdir()
    saved.write_text('{"schema": "dbload/compare@1"}\n')
    (tmp_path / "link.json").symlink_to(saved)
    os.link(saved, tmp_path / "hard.json")
    for given in (saved, tmp_path / "link.json", tmp_path / "hard.json"):
        with pytest.raises(UsageError, match="would overwrite that input") as info:
            check_out_dir(tmp_path / "x", inputs=[given])
        assert str(info.value).startswith(f"--out: {saved} is an input")
    assert check_out_dir(tmp_path / "y", inputs=[saved]) == tmp_path / "y"
    assert saved.read_text() == '{"schema": "dbload/compare@1"}\n'
