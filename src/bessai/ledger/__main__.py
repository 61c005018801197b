"""`python -m bessai.ledger ...`: the ledger commands alone, for an auditor's machine. Same
commands and output as `bessai ledger ...`, without loading the gateway (the full `bessai`
command imports every package first, which costs seconds on a small or busy machine)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape

from bessai.errors import BessaiError
from bessai.ledger.commands import ledger_app

app = ledger_app()
app.pretty_exceptions_enable = False


def main() -> None:
    """Run the standalone ledger verifier (`python -m bessai.ledger`)."""
    try:
        app(prog_name="python -m bessai.ledger")
    except BessaiError as exc:
        Console(stderr=True).print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
