"""``python -m dbload`` and the ``dbload`` script.

The password in a ``--dsn`` is masked in the process title before the CLI's
imports (~0.5 s of drivers, Typer and rich), so ``ps`` never shows it.
"""

from __future__ import annotations

from dbload.database.redact import hide_password_in_title


def main() -> int:
    hide_password_in_title(None)
    from dbload.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    main()
