"""`bessai vpp vtn serve`: run the OpenADR 3.1 VTN on its own (the fleet backend mounts the same
router). Clients come from ``--client ID:SECRET:ROLE`` or ``BESSAI_VTN_CLIENTS`` (comma
separated, the better place for secrets)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from bessai.errors import BessaiError

vpp_app = typer.Typer(
    help="Virtual power plant: OpenADR 3.1 VEN status and a VTN.", no_args_is_help=True
)
vtn_app = typer.Typer(help="The OpenADR 3.1 VTN (aggregator side).", no_args_is_help=True)
vpp_app.add_typer(vtn_app, name="vtn")


@vtn_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 = any free port).")] = 8091,
    client: Annotated[
        list[str] | None,
        typer.Option(help="A client ID:SECRET:ROLE (role bl or ven); repeat for more."),
    ] = None,
    db: Annotated[
        Path | None, typer.Option(help="SQLite file for the VTN's objects; unset: in memory.")
    ] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
) -> None:
    """Serve the VTN under /openadr3/3.1.0 until Ctrl-C."""
    import uvicorn

    from bessai.vpp.vtn.app import PREFIX, create_vtn_app
    from bessai.vpp.vtn.auth import parse_client
    from bessai.vpp.vtn.service import Vtn
    from bessai.vpp.vtn.store import MemoryStore, SqliteStore

    texts = list(client or [])
    texts += [t for t in os.environ.get("BESSAI_VTN_CLIENTS", "").split(",") if t.strip()]
    if not texts:
        raise BessaiError("no clients: give --client ID:SECRET:ROLE or BESSAI_VTN_CLIENTS")
    if (tls_cert is None) != (tls_key is None):
        raise BessaiError("--tls-cert and --tls-key go together")
    clients = [parse_client(t.strip()) for t in texts]
    store = SqliteStore(db) if db is not None else MemoryStore()
    app = create_vtn_app(Vtn(clients, store))
    scheme = "https" if tls_cert else "http"
    typer.echo(f"VTN at {scheme}://{host}:{port}{PREFIX} ({len(clients)} clients)", err=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
    )


def register(app: typer.Typer) -> None:
    """Add `bessai vpp ...` to the main command."""
    app.add_typer(vpp_app, name="vpp")
