"""Writing result files: every file dbload produces goes through here.

A regular file (or a new one) is replaced atomically: written next to the
target, fsynced and renamed over it, so a reader never sees half a file and
a failed write (full disk, read-only folder) leaves the old file intact.

Nothing else is ever renamed over, or the rename would replace it with a
regular file (``--json /dev/stdout`` run as root once turned the machine's
/dev/stdout link into one):

- a FIFO, a device (/dev/null, /dev/full) or a socket is written through,
  in place, as ``cat > PATH`` would;
- a descriptor link (/dev/stdout, /dev/fd/N, /proc/self/fd/N) is written
  through in append mode, so the JSON lands after what was already printed
  to that descriptor, even when it is a redirected file;
- any other symlink keeps its link: its target is written (atomically when
  the target is a regular file or missing). ``latest.json -> run-42.json``
  is the user's arrangement; replacing the link would break it and put the
  data somewhere they did not point at, and writing the target in place
  would lose the atomicity (a full disk would truncate the old result);
- ``-`` is stdout.

A folder of files (``--out``) is complete or as it was, never half-written:
see :func:`write_folder`.
"""

from __future__ import annotations

import errno
import io
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from dbload.errors import DbloadError, UsageError

STDOUT = "-"

# /proc/PID/fd (and a thread's): each entry is a descriptor, whose link text
# names what it is open on, not a file to replace
_FD_DIR = re.compile(r"/proc/(?:self|thread-self|\d+)(?:/task/\d+)?/fd")
_MAX_LINKS = 40  # Linux's own limit on links followed in one lookup


def is_stdout(path: Path | None) -> bool:
    """Whether ``path`` is ``-``, stdout (``--json -``)."""
    return path is not None and str(path) == STDOUT


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` as the module docstring says: a regular
    file by rename, anything else through, ``-`` to stdout. Raises
    :class:`DbloadError` with one line naming the path."""
    if is_stdout(path):
        _write_stdout(data)
        return
    path = path.expanduser()
    try:
        target, in_place = _target(path)
        if in_place:
            _write_through(target, data)
        else:
            _replace(target, data)
    except OSError as exc:
        raise DbloadError(f"cannot write {path}: {_why(exc)}") from None


def why_unwritable(path: Path) -> str | None:
    """Why :func:`write_atomically` would surely fail on ``path``, checked
    before a run rather than after it; None when it should succeed.

    The folder that will receive the temporary file gets a real one, not an
    ``os.access`` test: root passes every permission check but still fails
    on a read-only mount. A FIFO, device or descriptor is not opened (a FIFO
    would block until its reader comes), only checked for write permission.
    """
    if is_stdout(path):
        return None
    path = path.expanduser()
    try:
        target, in_place = _target(path)
    except IsADirectoryError:
        return f"{path} is a directory"
    except OSError as exc:
        return f"cannot write {path}: {_why(exc)}"
    if in_place:
        return None if os.access(target, os.W_OK) else f"{path} is not writable"
    folder = target.parent
    if not folder.is_dir():
        return f"directory {folder} does not exist"
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".dbload-check-"):
            pass
    except OSError as exc:
        return f"directory {folder} is not writable: {_why(exc)}"
    return None


def refuse_overwrite(option: str, outputs: Iterable[Path], inputs: Iterable[Path]) -> None:
    """UsageError when one of ``outputs`` is one of ``inputs`` (the same file,
    by any name: a link, a hard link, ``./x``), before anything is written."""
    sources = [p.expanduser() for p in inputs if not is_stdout(p)]
    for output in outputs:
        output = output.expanduser()
        for source in sources:
            if _same_file(output, source):
                raise UsageError(
                    f"{option}: {output} is an input ({source}); writing it would overwrite"
                    " that input: choose another place"
                )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # either is missing: it cannot be overwritten
        return False


# -- one file ------------------------------------------------------------------


def _target(path: Path) -> tuple[Path, bool]:
    """Where ``path``'s bytes go, and whether in place (True) or by rename."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return path, False
    if stat.S_ISLNK(mode):
        return _link_target(path)
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    return path, not stat.S_ISREG(mode)


def _link_target(link: Path) -> tuple[Path, bool]:
    if _is_descriptor(link):
        return link, True
    try:
        mode = os.stat(link).st_mode  # raises ELOOP for a loop of links
    except FileNotFoundError:
        return Path(os.path.realpath(link)), False  # dangling: create its target
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(link))
    if stat.S_ISREG(mode):
        return Path(os.path.realpath(link)), False
    return link, True


def _is_descriptor(link: Path) -> bool:
    """Whether following ``link`` goes through an entry of /proc/PID/fd, as
    /dev/stdout (-> /proc/self/fd/1) and /dev/fd/1 do. One link at a time:
    realpath would read the descriptor's link text (``pipe:[123]``) as a path."""
    current = Path(os.path.abspath(link))
    for _ in range(_MAX_LINKS):
        folder = Path(os.path.realpath(current.parent))
        if _FD_DIR.fullmatch(str(folder)):
            return True
        current = folder / current.name
        if not current.is_symlink():
            return False
        current = Path(os.path.normpath(folder / os.readlink(current)))
    return False


def _replace(path: Path, data: bytes) -> None:
    tmp_name: str | None = None
    try:
        with tempfile.NamedTemporaryFile(
            "wb", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
        ) as tmp:
            tmp_name = tmp.name
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, _mode_for(path))
        os.replace(tmp_name, path)
        tmp_name = None
        _fsync_dir(path.parent)
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)


def _write_through(path: Path, data: bytes) -> None:
    # our own buffered output first: the target may be our stdout or stderr
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    flags = os.O_WRONLY | (os.O_APPEND if _is_descriptor(path) else 0)
    # blocks until a FIFO has a reader, as any writer to a FIFO does
    with open(os.open(path, flags), "wb") as out:
        out.write(data)


def _write_stdout(data: bytes) -> None:
    try:
        sys.stdout.flush()
        try:
            fd = sys.stdout.fileno()
        except (AttributeError, ValueError, io.UnsupportedOperation):
            # a captured stdout (tests, an embedding program) has no descriptor
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        # straight to the descriptor: a failed write (ENOSPC, EPIPE) leaves
        # nothing in Python's buffer to fail again, with a traceback, at exit
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise DbloadError(f"cannot write to stdout: {_why(exc)}") from None


def _mode_for(path: Path) -> int:
    """A replaced file keeps its mode; a new one gets what open() would give
    it (temp files are 0600, results are to share)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return _new_file_mode()


def _new_file_mode() -> int:
    """The mode open() gives a new file: 0666 less the umask."""
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read by setting it (there is no other way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: without it a crash may bring back the old name."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


# -- a folder of files ---------------------------------------------------------


def write_folder(folder: Path, files: Mapping[str, bytes]) -> list[Path]:
    """Write ``files`` (name -> bytes) into ``folder``; the paths, in order.

    The folder ends complete or as it was. A missing or empty folder is
    built as a temporary sibling and renamed into place in one step (rename
    replaces an empty directory). A folder with other content keeps it: the
    files are staged in a temporary folder inside it, then each is renamed
    over its name; renames need no space, so a full disk fails while
    staging, before any file changes. Raises DbloadError with one line.
    """
    folder = folder.expanduser()
    real = Path(os.path.realpath(folder))  # a link to the folder stays a link
    existed = real.exists()
    try:
        if _swappable(real):
            _swap_in(folder, real, files)
        else:
            _stage_inside(folder, real, files)
    except _StageFailed as failed:
        where = folder / failed.name if failed.name else folder
        state = "left as it was" if existed else "not created"
        raise DbloadError(f"cannot write {where}: {failed.why}; {folder} {state}") from None
    return [folder / name for name in files]


class _StageFailed(Exception):
    """Writing the staged copy failed: nothing in the folder has changed."""

    def __init__(self, name: str, exc: OSError) -> None:
        super().__init__(name)
        self.name, self.why = name, _why(exc)


def _swappable(real: Path) -> bool:
    """Missing, or empty and not a mount point (a rename cannot cross one)."""
    if not real.exists():
        return True
    if not real.is_dir() or any(real.iterdir()):
        return False
    return real.stat().st_dev == real.parent.stat().st_dev


def _swap_in(folder: Path, real: Path, files: Mapping[str, bytes]) -> None:
    try:
        if real.parent.exists() and not real.parent.is_dir():
            # mkdir would say "File exists", true but beside the point
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        real.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp"))
    except OSError as exc:
        if real.is_dir():  # an empty folder in a read-only parent: fill it in place
            _stage_inside(folder, real, files)
            return
        raise _StageFailed("", exc) from None
    try:
        _stage(stage, files)
        try:
            stage.chmod(0o777 & ~_umask())  # mkdtemp's 0700: a report folder is to share
            os.rename(stage, real)  # over an empty folder too
            _fsync_dir(real.parent)
        except OSError as exc:
            raise _StageFailed("", exc) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)  # gone after the rename


def _stage_inside(folder: Path, real: Path, files: Mapping[str, bytes]) -> None:
    """Stage what can be renamed, write the rest through, then rename."""
    renamed = {name: data for name, data in files.items() if _renamable(real / name)}
    try:
        stage = Path(tempfile.mkdtemp(dir=real, prefix=".dbload-", suffix=".tmp"))
    except OSError as exc:
        raise _StageFailed("", exc) from None
    done: list[str] = []
    try:
        _stage(stage, renamed)
        for name, data in files.items():
            if name not in renamed:  # a link, FIFO or device: see write_atomically
                write_atomically(real / name, data)
                done.append(name)
        for name in renamed:
            os.chmod(stage / name, _mode_for(real / name))
            os.replace(stage / name, real / name)
            done.append(name)
        _fsync_dir(real)
    except (OSError, DbloadError) as exc:
        why = _why(exc) if isinstance(exc, OSError) else str(exc)
        missing = [name for name in files if name not in done]
        raise DbloadError(
            f"cannot finish {folder}: {why}; written: {', '.join(done) or 'nothing'};"
            f" missing: {', '.join(missing)}"
        ) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _renamable(path: Path) -> bool:
    """Missing or a regular file: safe to rename a staged file over."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except FileNotFoundError:
        return True


def _stage(stage: Path, files: Mapping[str, bytes]) -> None:
    """Write every file into ``stage``, fsynced; _StageFailed names the one that failed."""
    mode = _new_file_mode()
    for name, data in files.items():
        try:
            with open(stage / name, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(stage / name, mode)
        except OSError as exc:
            raise _StageFailed(name, exc) from None
    try:
        _fsync_dir(stage)
    except OSError as exc:
        raise _StageFailed("", exc) from None
