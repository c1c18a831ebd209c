"""Reading a workload's file (a pgbench script or a Python module), with
the one-line errors both loaders give."""

from __future__ import annotations

from pathlib import Path

from dbload.errors import WorkloadError


def read_script(path: str) -> str:
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkloadError("script file not found", source=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise WorkloadError(f"cannot read script: {reason}", source=path) from None
