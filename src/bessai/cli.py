"""The `bessai` command. Each domain keeps its commands in its own module; this file only
assembles them and turns a BessaiError into a one-line message instead of a traceback."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from bessai import __version__
from bessai.errors import BessaiError
from bessai.telemetry import commands as telemetry_commands

app = typer.Typer(
    name="bessai",
    help="open-bess-edge: edge gateway and energy-management system for battery storage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """open-bess-edge: edge gateway and energy-management system for battery storage."""


@app.command()
def version() -> None:
    """Print the installed version."""
    typer.echo(__version__)


# Each domain adds its commands with one line here: `<package>.commands.register(app)`.
telemetry_commands.register(app)


def main() -> None:
    """Entry point of the console script."""
    try:
        app()
    except BessaiError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
