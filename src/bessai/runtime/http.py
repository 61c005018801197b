"""The HTTP server (API, dashboard, /health, /metrics) inside the gateway's own event loop."""

from __future__ import annotations

import asyncio

import uvicorn

from bessai.api import serving
from bessai.api.app import check_bind, create_app
from bessai.errors import BessaiError
from bessai.observe.monitor import Monitor
from bessai.vpp.ven import Ven


def port_free(host: str, port: int) -> None:
    """A busy port in one line, with the way out, before uvicorn logs its own traceback."""
    serving.port_free(
        host,
        port,
        " (another gateway?); choose another with --http-port PORT (0 = any free port), "
        "gateway.http_port in the config, or `make demo PORT=8001`",
    )


async def serve_http(
    monitor: Monitor, host: str, port: int, vens: dict[str, Ven] | None = None
) -> tuple[uvicorn.Server, int]:
    """Start serving; returns the server and the port it is bound to."""
    config = monitor.gateway.config
    check_bind(config, host)
    port_free(host, port)
    proxies = config.api.trusted_proxies
    server = serving.EmbeddedServer(
        uvicorn.Config(
            create_app(monitor, vens),
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            # An access log line holds the query string, where a careless client may put a key.
            access_log=False,
            # X-Forwarded-For is whatever a caller wants it to be: trusting it from anyone would
            # let anyone dodge the wrong-key limiter or lock out another address. Only the
            # configured proxies may name the client (docs/api.md: behind a reverse proxy).
            proxy_headers=bool(proxies),
            forwarded_allow_ips=list(proxies) if proxies else None,
        )
    )
    task = asyncio.create_task(server.serve(), name="http")
    while not server.started:
        if task.done():
            raise BessaiError(f"the HTTP server could not listen on {host}:{port}")
        await asyncio.sleep(0.02)
    bound = port
    for srv in server.servers:
        for sock in srv.sockets:
            bound = int(sock.getsockname()[1])
    return server, bound
