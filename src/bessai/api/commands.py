"""`bessai keys add|list|revoke`: API keys for the HTTP API and the dashboard.

Whoever can write the data directory manages keys; the API itself cannot create or revoke them,
so a stolen key can never mint another. A running gateway sees changes at its next request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bessai.api.keys import KeyStore, Role
from bessai.config import load_config

keys_app = typer.Typer(help="Manage API keys (read, control, admin).", no_args_is_help=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Gateway configuration (TOML); its data_dir holds the keys."
    ),
]
KeysFileOpt = Annotated[
    Path | None,
    typer.Option("--keys-file", help="The key file itself, instead of the configuration's."),
]


def _store(config: Path | None, keys_file: Path | None) -> KeyStore:
    if keys_file is not None:
        return KeyStore(keys_file)
    return KeyStore(load_config(config)[0].keys_file)


@keys_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Who or what uses the key (shown in the audit).")],
    role: Annotated[Role, typer.Option(help="read, control or admin.")] = Role.READ,
    config: ConfigOpt = None,
    keys_file: KeysFileOpt = None,
) -> None:
    """Create a key and print it once; only its hash is stored."""
    store = _store(config, keys_file)
    existed = store.path.exists()
    token = store.add(name, role)
    typer.echo(token)
    if not existed:
        typer.echo(f"# created key file {store.path}", err=True)
    typer.echo(
        f"# key '{name}' ({role.value}) added to {store.path}; it is shown only now. "
        "Send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.",
        err=True,
    )


@keys_app.command("list")
def list_keys(config: ConfigOpt = None, keys_file: KeysFileOpt = None) -> None:
    """List key names, roles and creation times (never the keys)."""
    store = _store(config, keys_file)
    records = store.list()
    if not records:
        typer.echo(f"no keys in {store.path}; add one with `bessai keys add NAME --role read`")
        return
    table = Table(show_edge=False, header_style="bold")
    for column in ("name", "role", "created (UTC)"):
        table.add_column(column, overflow="fold")
    for record in records:
        # Plain text: the file may have been edited by hand; a name is shown as stored.
        table.add_row(Text(record.name), Text(record.role.value), Text(record.created_utc))
    Console().print(table)


@keys_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    config: ConfigOpt = None,
    keys_file: KeysFileOpt = None,
) -> None:
    """Delete a key; requests with it fail from the next one on."""
    store = _store(config, keys_file)
    store.revoke(name)
    typer.echo(f"key '{name}' revoked in {store.path}")


def register(app: typer.Typer) -> None:
    """Add `bessai keys` (add, list, revoke API keys)."""
    app.add_typer(keys_app, name="keys")
