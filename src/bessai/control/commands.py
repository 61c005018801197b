"""`bessai audit` and `bessai config check`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import structlog
import tomli_w
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bessai.config import load_config
from bessai.control.audit import open_readonly
from bessai.control.learned import policy_notes
from bessai.control.planner import planner_inputs, site_wear_cost_per_mwh
from bessai.telemetry.config import no_sinks_note

log = structlog.get_logger("bessai.gateway")

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Site configuration (TOML). Default: the embedded simulator site."
    ),
]


def audit(
    config: ConfigOpt = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory holding audit.sqlite (instead of --config).")
    ] = None,
    site: Annotated[str | None, typer.Option(help="Only this site.")] = None,
    outcome: Annotated[
        str | None, typer.Option(help="Only this guard outcome: allowed, clamped or blocked.")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Only commands at or after this UTC time.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many rows.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the command audit: what was asked, what the guard said, what was written."""
    directory = data_dir if data_dir is not None else load_config(config)[0].gateway.data_dir
    log_db = open_readonly(directory / "audit.sqlite")
    try:
        rows = log_db.query(site=site, limit=limit, since=since, outcome=outcome)
    finally:
        log_db.close()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    Console().print(_audit_table(rows))


def _audit_table(rows: list[dict[str, Any]]) -> Table:
    """The audit as a table, oldest first. Every cell is plain text: reasons, errors and site
    names come from operators and devices and are shown exactly as stored, never as markup."""
    table = Table(show_edge=False, header_style="bold")
    for column in ("time (UTC)", "site", "controller", "requested", "outcome", "setpoint",
                   "guard reason", "writes"):  # fmt: skip
        table.add_column(column, overflow="fold")
    for row in reversed(rows):
        writes = Text(", ".join(f"{w['address']}={w['registers']}" for w in row["writes"]) or "-")
        if row["error"]:
            writes.append(f" error: {row['error']}", style="red")
        table.add_row(
            Text(row["ts"][:19]),
            Text(row["site"]),
            Text(f"{row['controller']}: {row['reason']}"),
            Text(f"{row['requested_w']:.0f} W"),
            Text(row["outcome"]),
            Text(f"{row['setpoint_w']:.0f} W"),
            Text(row["guard_reason"]),
            writes,
        )
    return table


config_app = typer.Typer(help="Validate and show configuration.", no_args_is_help=True)


def _jsonable(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _jsonable(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_jsonable(v) for v in data]
    return data


@config_app.command("check")
def config_check(
    path: Annotated[
        Path | None, typer.Argument(help="TOML file; omit for the embedded default.")
    ] = None,
) -> None:
    """Validate a configuration (with BESSAI_* overrides) and print the effective values.

    Also loads what each optimizer would plan on (price file, trained model), as `bessai run`
    does at start, so a missing or mismatched model is found here."""
    cfg, overridden = load_config(path)
    notes: list[str] = []
    for site in cfg.sites:
        if site.optimizer.enabled:
            prices, _ = planner_inputs(site.id, site.optimizer)
            if site.controllers.policy is not None:
                wear = site_wear_cost_per_mwh(site.optimizer, site.battery)
                said = policy_notes(
                    site.controllers.policy,
                    site.battery,
                    prices.step,
                    prices.unit,
                    site.optimizer.forecaster,
                    wear,
                )
                notes += [f"site {site.id}: controllers.policy: {n}" for n in said]
    data = _jsonable(cfg.model_dump(mode="json"))
    typer.echo(tomli_w.dumps(data))
    source = str(path) if path else "embedded default"
    extra = f"; environment overrides: {', '.join(overridden)}" if overridden else ""
    typer.echo(f"# {source}: ok, {len(cfg.sites)} site(s){extra}", err=True)
    if (note := no_sinks_note(cfg.telemetry)) is not None:
        notes.append(note)
    for note in notes:
        typer.echo(f"# warning: {note}", err=True)


def register(app: typer.Typer) -> None:
    """Add `bessai audit` and `bessai config check`."""
    app.command()(audit)
    app.add_typer(config_app, name="config")
