"""`bessai analyst serve`: the analyst page and its API on their own, with no device and no
gateway (docs/analyst.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bessai.api.keys import KeyStore
from bessai.config import ApiConfig, is_loopback, load_config
from bessai.errors import ConfigError

analyst_app = typer.Typer(
    help="The analyst page: forecasts, plans, back-tests and size sweeps on price files.",
    no_args_is_help=True,
)

#: Price files uploaded through the page can be this large (api.max_body_bytes' ceiling).
UPLOAD_BYTES = 10_000_000


def _api_config(config: Path | None, keys_file: Path | None, dev: bool) -> tuple[ApiConfig, Path]:
    """The API settings and the keys file: the gateway configuration's, or the ones given."""
    if config is not None:
        cfg = load_config(config)[0]
        api, keys = cfg.api.model_copy(), keys_file or cfg.keys_file
    elif keys_file is not None or dev:
        api, keys = ApiConfig(), keys_file or Path("api_keys.json")
    else:
        raise ConfigError(
            "bessai analyst serve needs API keys: give --config (a gateway configuration), "
            "--keys-file (made with `bessai keys add NAME --keys-file FILE`) or --dev "
            "(no keys, loopback only)"
        )
    api.dev_mode = api.dev_mode or dev
    # Uploaded price files are far larger than the gateway's control requests.
    api.max_body_bytes = max(api.max_body_bytes, UPLOAD_BYTES)
    return api, keys


@analyst_app.command("serve")
def serve(
    prices: Annotated[
        list[Path] | None,
        typer.Option("--prices", help="A price file to offer beside the shipped sample (repeat)."),
    ] = None,
    models: Annotated[
        list[Path] | None,
        typer.Option("--models", help="A trained model directory, or a folder of them (repeat)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free one).")] = 8010,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Gateway configuration: its keys and \\[api] limits."),
    ] = None,
    keys_file: Annotated[
        Path | None, typer.Option("--keys-file", help="API keys file (bessai keys add).")
    ] = None,
    dev: Annotated[
        bool, typer.Option("--dev", help="No keys at all; loopback only.", metavar="")
    ] = False,
) -> None:
    """Serve the analyst page on http://HOST:PORT/analyst; no device needed."""
    import uvicorn

    from bessai.api.analyst_app import create_analyst_app, make_analyst
    from bessai.runtime.http import port_free

    api, keys = _api_config(config, keys_file, dev)
    if api.dev_mode and not is_loopback(host):
        raise ConfigError(f"--dev serves without keys; it binds to loopback only, not {host!r}")
    for path in [*(prices or []), *(models or [])]:
        if not path.exists():
            raise ConfigError(f"{path}: no such file or directory")
    analyst = make_analyst(list(prices or []), list(models or []))
    entries = analyst.catalog.entries()  # a file that does not load stops the start here
    port_free(host, port)
    typer.echo(
        f"analyst page on http://{host}:{port}/analyst ({len(entries)} price series, "
        f"{len(analyst.models.dirs)} models; keys {'off (dev)' if api.dev_mode else keys})",
        err=True,
    )
    app = create_analyst_app(api, KeyStore(keys), analyst)
    analyst.jobs.warm()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def register(app: typer.Typer) -> None:
    """Add `bessai analyst serve`."""
    app.add_typer(analyst_app, name="analyst")
