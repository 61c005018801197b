"""`bessai fleet serve` without the terminal: the database pool (migrated on start), the
stream consumer and the HTTP app, started and stopped in order. Tests and benchmarks use it
directly."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import structlog
import uvicorn
from fastapi import APIRouter

from bessai.api.keys import KeyStore
from bessai.api.security import Authorizer
from bessai.api.serving import EmbeddedServer, port_free
from bessai.errors import ConfigError
from bessai.fleet.app import create_fleet_app
from bessai.fleet.consumer import FleetConsumer
from bessai.fleet.context import FleetContext
from bessai.fleet.metrics import FleetMetrics
from bessai.fleet.migrations import migrate
from bessai.fleet.settings import FleetSettings
from bessai.fleet.store import DbOptions, check_schema, connect, open_pool

log = structlog.get_logger("bessai.fleet")


def db_options(settings: FleetSettings, max_size: int = 4) -> DbOptions:
    """Pool options from `[fleet]`."""
    fleet = settings.fleet
    return DbOptions(
        dsn=fleet.database_url.get_secret_value(),
        tls_ca_file=fleet.database_tls_ca_file,
        max_size=max_size,
    )


class FleetService:
    """One `fleet serve` process."""

    def __init__(
        self,
        settings: FleetSettings,
        *,
        migrate_schema: bool = True,
        extra_routers: Sequence[tuple[APIRouter, str]] = (),
    ) -> None:
        self.settings = settings
        self.migrate_schema = migrate_schema
        self.extra_routers = extra_routers
        self.stop_event = asyncio.Event()
        self.port = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._server: EmbeddedServer | None = None
        self._consumer: FleetConsumer | None = None
        self.ctx: FleetContext | None = None

    async def start(self) -> None:
        """Schema, pool, consumer, HTTP: raises a BessaiError naming what failed."""
        fleet, api = self.settings.fleet, self.settings.api
        if api.dev_mode and fleet.http_host not in ("127.0.0.1", "::1", "localhost"):
            raise ConfigError(
                f"api.dev_mode serves the fleet API without keys: fleet.http_host must be "
                f"loopback, not {fleet.http_host!r}"
            )
        options = db_options(self.settings)
        conn = await connect(options)
        try:
            if self.migrate_schema:
                await migrate(conn)
            await check_schema(conn)
        finally:
            await conn.close()
        pool = await open_pool(options)
        consumer = FleetConsumer(fleet, pool)
        self._consumer = consumer
        await consumer.start()
        self.ctx = FleetContext(
            auth=Authorizer(api, KeyStore(self.settings.keys_file)),
            config=api,
            fleet=fleet,
            pool=pool,
            stats=consumer.stats,
            metrics=FleetMetrics(consumer.stats),
        )
        self._tasks.append(asyncio.create_task(consumer.run(self.stop_event), name="consume"))
        await self._serve_http()
        log.info("fleet serving", port=self.port, consumer=fleet.consumer)

    async def _serve_http(self) -> None:
        assert self.ctx is not None
        fleet = self.settings.fleet
        port_free(
            fleet.http_host,
            fleet.http_port,
            ": choose another with fleet.http_port or --http-port (0 = any free port)",
        )
        proxies = self.settings.api.trusted_proxies
        server = EmbeddedServer(
            uvicorn.Config(
                create_fleet_app(self.ctx, self.extra_routers),
                host=fleet.http_host,
                port=fleet.http_port,
                log_level="warning",
                lifespan="off",
                access_log=False,
                proxy_headers=bool(proxies),
                forwarded_allow_ips=list(proxies) if proxies else None,
            )
        )
        task = asyncio.create_task(server.serve(), name="fleet-http")
        while not server.started:
            if task.done():
                raise ConfigError(
                    f"the fleet HTTP server could not listen on {fleet.http_host}:"
                    f"{fleet.http_port} (fleet.http_port; is the port in use?)"
                )
            await asyncio.sleep(0.02)
        self._server = server
        self._tasks.append(task)
        for srv in server.servers:
            for sock in srv.sockets:
                self.port = int(sock.getsockname()[1])

    async def wait(self) -> None:
        """Until stopped (or the consumer fails)."""
        await self.stop_event.wait()

    async def stop(self) -> None:
        """Stop fetching; a batch in flight is finished (or left to redelivery); close all."""
        self.stop_event.set()
        if self._server is not None:
            self._server.should_exit = True
        for task in self._tasks:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
        if self._consumer is not None:
            await self._consumer.close()
        if self.ctx is not None:
            await self.ctx.pool.close()
