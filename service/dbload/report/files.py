"""Atomic file writes: every file dbload produces goes through here."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from dbload.errors import DbloadError


def write_atomically(path: Path, data: bytes) -> None:
    """Write next to the target, fsync and rename, so a reader never sees
    half a file and a full disk or read-only folder leaves nothing behind.
    Raises :class:`DbloadError` with one line naming the path."""
    path = path.expanduser()
    tmp_name: str | None = None
    try:
        with tempfile.NamedTemporaryFile(
            "wb", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
        ) as tmp:
            tmp_name = tmp.name
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, _new_file_mode())  # temp files are 0600; results are to share
        os.replace(tmp_name, path)
    except OSError as exc:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        raise DbloadError(f"cannot write {path}: {exc.strerror or exc}") from None


def _new_file_mode() -> int:
    """The mode open() gives a new file: 0666 less the umask (read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask
