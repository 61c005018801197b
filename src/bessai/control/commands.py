"""`bessai run`, `bessai audit` and `bessai config check`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import structlog
import tomli_w
import typer
import uvicorn
from rich.console import Console
from rich.live import Live
from rich.table import Table

from bessai.config import Config, load_config
from bessai.control.audit import open_readonly
from bessai.control.gateway import Gateway
from bessai.errors import BessaiError
from bessai.logging import configure_logging
from bessai.telemetry.config import no_sinks_note

log = structlog.get_logger("bessai.gateway")

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Site configuration (TOML). Default: the embedded simulator site."
    ),
]


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside our loop: the gateway owns SIGINT/SIGTERM (stop dispatch first)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve_http(gateway: Gateway, host: str, port: int) -> tuple[uvicorn.Server, int]:
    from bessai.api.app import check_bind, create_app

    check_bind(gateway.config, host)
    server = _EmbeddedServer(
        uvicorn.Config(
            create_app(gateway),
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            # An access log line holds the query string, where a careless client may put a key.
            access_log=False,
        )
    )
    task = asyncio.create_task(server.serve(), name="http")
    while not server.started:
        if task.done():
            task.result()
            raise BessaiError(f"the HTTP server could not listen on {host}:{port}")
        await asyncio.sleep(0.02)
    bound = port
    for srv in server.servers:
        for sock in srv.sockets:
            bound = int(sock.getsockname()[1])
    return server, bound


async def run_gateway(config: Config, duration_s: float | None, live: bool) -> None:
    data_dir_created = not config.gateway.data_dir.exists()
    gateway = Gateway(config)
    await gateway.start()
    http, port = await _serve_http(gateway, config.gateway.http_host, config.gateway.http_port)
    base = f"http://{config.gateway.http_host}:{port}"
    urls = [f"dashboard {base}/", f"health {base}/health", f"metrics {base}/metrics"]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, gateway.stop_event.set)
    if duration_s is not None:
        loop.call_later(duration_s, gateway.stop_event.set)
    console = Console()
    console.print(
        f"open-bess-edge gateway: {len(gateway.sites)} site(s); {'; '.join(urls)}; "
        "Ctrl-C stops dispatch and exits."
    )
    console.print(
        f"{'created data directory' if data_dir_created else 'data directory'} "
        f"{config.gateway.data_dir}"
    )
    if (note := no_sinks_note(config.telemetry)) is not None:
        console.print(f"warning: {note}", markup=False, highlight=False)
    log.info("gateway running", sites=list(gateway.sites), health=f"{base}/health")
    from bessai.api.keys import KeyStore

    if not config.api.dev_mode and not KeyStore(config.keys_file).list():
        console.print(
            f"no API keys yet in {config.keys_file}: the dashboard and /api/v1 need one; "
            "make one with `bessai keys add NAME --role read` (or --role control)"
        )
    try:
        if live:
            from bessai.observe.status import status_table

            with Live(status_table(gateway, urls), console=console, refresh_per_second=2) as view:
                while not gateway.stop_event.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(gateway.stop_event.wait(), timeout=0.5)
                    view.update(status_table(gateway, urls))
        else:
            await gateway.stop_event.wait()
    finally:
        log.info("stopping: dispatch stops on every site")
        await gateway.stop()
        http.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(http.shutdown(), timeout=5)
    console.print("gateway stopped; dispatch stopped on every reachable device.")


def run(
    config: ConfigOpt = None,
    http_port: Annotated[
        int | None, typer.Option(help="Override gateway.http_port (0 = any free port).")
    ] = None,
    duration_s: Annotated[
        float | None, typer.Option(help="Stop by itself after this many seconds.")
    ] = None,
    status: Annotated[
        bool, typer.Option(help="Show the live status table when on a terminal.")
    ] = True,
) -> None:
    """Run the gateway: every site's control cycle, health and metrics over HTTP."""
    cfg, _ = load_config(config)
    if http_port is not None:
        cfg.gateway.http_port = http_port
    live = status and cfg.gateway.status_display and sys.stdout.isatty()
    # On a terminal with the live table, only warnings and worse interrupt it.
    configure_logging("warning" if live else cfg.gateway.log_level)
    asyncio.run(run_gateway(cfg, duration_s, live))


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
    table = Table(show_edge=False, header_style="bold")
    for column in ("time (UTC)", "site", "controller", "requested", "outcome", "setpoint",
                   "guard reason", "writes"):  # fmt: skip
        table.add_column(column)
    for row in reversed(rows):
        writes = ", ".join(f"{w['address']}={w['registers']}" for w in row["writes"]) or "-"
        if row["error"]:
            writes += f" [red]error: {row['error']}[/]"
        table.add_row(
            row["ts"][:19],
            row["site"],
            f"{row['controller']}: {row['reason']}",
            f"{row['requested_w']:.0f} W",
            row["outcome"],
            f"{row['setpoint_w']:.0f} W",
            row["guard_reason"],
            writes,
        )
    Console().print(table)


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
    """Validate a configuration (with BESSAI_* overrides) and print the effective values."""
    cfg, overridden = load_config(path)
    data = _jsonable(cfg.model_dump(mode="json"))
    typer.echo(tomli_w.dumps(data))
    source = str(path) if path else "embedded default"
    extra = f"; environment overrides: {', '.join(overridden)}" if overridden else ""
    typer.echo(f"# {source}: ok, {len(cfg.sites)} site(s){extra}", err=True)
    if (note := no_sinks_note(cfg.telemetry)) is not None:
        typer.echo(f"# warning: {note}", err=True)


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(audit)
    app.add_typer(config_app, name="config")
