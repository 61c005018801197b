"""`bessai run`: the gateway with its HTTP server and, on a terminal, the live status table."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import structlog
import typer
from rich.console import Console
from rich.live import Live

from bessai.api.keys import KeysFileError, KeyStore
from bessai.config import Config, load_config
from bessai.logging import configure_logging
from bessai.observe.status import status_table
from bessai.proxy import ProxyServer
from bessai.runtime.http import port_free, serve_http
from bessai.runtime.service import Runtime
from bessai.telemetry.config import no_sinks_note

log = structlog.get_logger("bessai.gateway")

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Site configuration (TOML). Default: the embedded simulator site."
    ),
]


class _Signals:
    """The first Ctrl-C (or SIGTERM) stops dispatch and exits in order; a second one exits at
    once. Nothing committed is lost either way (the outbox and audit are on disk), and the
    device's own forcible period ends any dispatch the stop could not reach."""

    def __init__(self, stop: asyncio.Event, console: Console) -> None:
        self.stop = stop
        self.console = console

    def __call__(self) -> None:
        if not self.stop.is_set():
            self.stop.set()
            self.console.print("stopping: dispatch stops on every site (Ctrl-C again to exit now)")
            return
        self.console.print("second interrupt: exiting now; the device's forcible period ends "
                           "any dispatch still running.")  # fmt: skip
        sys.stdout.flush()
        os._exit(130)


async def _watch(runtime: Runtime, console: Console, urls: list[str], live: bool) -> None:
    stop = runtime.gateway.stop_event
    if not live:
        await stop.wait()
        return
    with Live(status_table(runtime.monitor, urls), console=console, refresh_per_second=2) as view:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            view.update(status_table(runtime.monitor, urls))


def _keys_note(config: Config) -> str:
    """What the operator should know about the API keys at start: none yet, or a damaged file
    (the gateway runs anyway; the API answers 503 until the file is fixed)."""
    try:
        keys = KeyStore(config.keys_file).list()
    except KeysFileError as exc:
        return f"warning: {exc}. Until then the dashboard and /api/v1 answer 503."
    if keys:
        return ""
    return (
        f"no API keys yet in {config.keys_file}: the dashboard and /api/v1 need one; "
        "make one with `bessai keys add NAME --role read` (or --role control)"
    )


async def run_gateway(config: Config, duration_s: float | None, live: bool) -> None:
    """Run until a signal or `duration_s`; stop dispatch on the way out."""
    host, port = config.gateway.http_host, config.gateway.http_port
    port_free(host, port)  # before anything starts: a busy port is a one-line error
    if config.proxy.enabled:
        ProxyServer.check_port(config.proxy.host, config.proxy.port)
    data_dir_created = not config.gateway.data_dir.exists()
    console = Console()
    # Signals first: a Ctrl-C or SIGTERM while the sites start still stops dispatch in order.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handler = _Signals(stop, console)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handler)
    runtime = Runtime(config, stop_event=stop)
    http = None
    try:
        await runtime.start()
        http, port = await serve_http(runtime.monitor, host, port)
        base = f"http://{host}:{port}"
        urls = [f"dashboard {base}/", f"health {base}/health", f"metrics {base}/metrics"]
        if runtime.proxy is not None:
            urls.append(f"modbus proxy {runtime.proxy.host}:{runtime.proxy.port}")
        if duration_s is not None:
            loop.call_later(duration_s, stop.set)
        console.print(
            f"open-bess-edge gateway: {len(runtime.gateway.sites)} site(s); {'; '.join(urls)}; "
            "Ctrl-C stops dispatch and exits.",
            markup=False,
            emoji=False,
        )
        console.print(
            f"{'created data directory' if data_dir_created else 'data directory'} "
            f"{config.gateway.data_dir}",
            markup=False,
            highlight=False,
        )
        if (note := no_sinks_note(config.telemetry)) is not None:
            console.print(f"warning: {note}", markup=False, highlight=False)
        log.info("gateway running", sites=list(runtime.gateway.sites), health=f"{base}/health")
        note = "" if config.api.dev_mode else _keys_note(config)
        if note:
            console.print(note, markup=False, emoji=False, highlight=False)
        await _watch(runtime, console, urls, live)
    finally:
        log.info("stopping: dispatch stops on every site")
        await runtime.stop()
        if http is not None:
            http.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(http.shutdown(), timeout=2)
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


def register(app: typer.Typer) -> None:
    """Add `bessai run`."""
    app.command()(run)
