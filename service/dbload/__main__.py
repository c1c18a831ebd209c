"""``python -m dbload`` and the ``dbload`` script.

The password in a ``--dsn`` is masked in the process title before the CLI's
imports (~0.5 s of drivers, Typer and rich), so ``ps`` never shows it.
"""

from __future__ import annotations

import sys

from dbload.ctrl_c import ignore_ctrl_c_while_exiting, keep_ctrl_c_out_of_imports
from dbload.database.redact import hide_password_in_title


def main() -> int:
    hide_password_in_title(None)
    keep_ctrl_c_out_of_imports()  # before the imports: a Ctrl-C in them must not be lost
    try:
        from dbload.cli import main as cli_main
    except KeyboardInterrupt:  # Ctrl-C while the imports load: no traceback
        print("dbload: error: interrupted", file=sys.stderr)
        ignore_ctrl_c_while_exiting()
        sys.exit(130)
    return cli_main()


if __name__ == "__main__":
    main()
