"""The `bessai` command. Each domain keeps its commands in its own module; this file only
assembles them and turns a BessaiError into a one-line message instead of a traceback."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from bessai import __version__
from bessai.analysis import carbon_commands as analysis_carbon_commands
from bessai.analysis import commands as analysis_commands
from bessai.analysis import policy_commands as analysis_policy_commands
from bessai.api import commands as api_commands
from bessai.carbon import commands as carbon_commands
from bessai.config import configured_lake
from bessai.control import commands as control_commands
from bessai.errors import BessaiError
from bessai.federated import commands as fl_commands
from bessai.fleet import commands as fleet_commands
from bessai.ledger import commands as ledger_commands
from bessai.logging import configure_logging
from bessai.market import commands as market_commands
from bessai.modbus import commands as modbus_commands
from bessai.optimize import commands as optimize_commands
from bessai.plant import commands as plant_commands
from bessai.policy import commands as policy_commands
from bessai.runtime import analyst_commands
from bessai.runtime import commands as runtime_commands
from bessai.security import commands as security_commands
from bessai.simulator import commands as sim_commands
from bessai.telemetry import commands as telemetry_commands
from bessai.vpp import commands as vpp_commands

app = typer.Typer(
    name="bessai",
    help="open-bess-edge: edge gateway and energy-management system for battery storage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


@app.callback()
def _root(
    log_level: Annotated[
        str, typer.Option(help="Log level on stderr: debug, info, warning or error.")
    ] = "warning",
    log_json: Annotated[
        bool | None, typer.Option("--log-json/--log-text", help="Force JSON or text logs.")
    ] = None,
) -> None:
    """open-bess-edge: edge gateway and energy-management system for battery storage."""
    configure_logging(log_level, log_json)


@app.command()
def version() -> None:
    """Print the installed version."""
    typer.echo(__version__)


# Each domain adds its commands with one line here: `<package>.commands.register(app)`.
runtime_commands.register(app)
control_commands.register(app)
modbus_commands.register(app)
sim_commands.register(app)
plant_commands.register(app)
optimize_commands.register(app)
analysis_commands.register(app)
telemetry_commands.register(app, configured_lake)
api_commands.register(app)
market_commands.register(app)
# `bessai carbon backtest` needs the back-test, a layer above the carbon package.
analysis_carbon_commands.register(carbon_commands.register(app))
ledger_commands.register(app)
vpp_commands.register(app)
fl_commands.register(app)
analyst_commands.register(app)
policy_commands.register(app)
analysis_policy_commands.register()
fleet_commands.register(app)
security_commands.register(app)


def main() -> None:
    """Entry point of the console script."""
    try:
        app()
    except BessaiError as exc:
        # soft_wrap: off a terminal rich would fold the one-line message at 80 columns.
        # Text, not markup: messages quote user input, file contents and device answers
        # ('[/bold]', ':x:', 'bessai[train]'), shown exactly as they are.
        message = Text.assemble(("error:", "bold red"), " ", str(exc))
        Console(stderr=True).print(message, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
