"""Proxy fixtures: a site cycling against the test simulator, the proxy in front of it on a free
loopback port, and pymodbus clients connected to the proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from bessai.config import ProxyConfig
from bessai.control.audit import AuditLog
from bessai.control.site import SiteRunner
from bessai.devices.huawei import HuaweiHybrid
from bessai.devices.registry import open_device
from bessai.proxy import ProxyServer
from bessai.simulator.server import SimulatorServer
from tests.conftest import FAST_SETTINGS
from tests.control.conftest import site_config

MakeRunner = Callable[..., SiteRunner]
MakeProxy = Callable[..., "Any"]


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    log = AuditLog(tmp_path / "audit.sqlite")
    yield log  # type: ignore[misc]
    log.close()


@pytest.fixture
async def make_runner(sim: SimulatorServer, audit: AuditLog) -> AsyncIterator[MakeRunner]:
    runners: list[SiteRunner] = []

    def factory(**overrides: Any) -> SiteRunner:
        config = site_config(sim.port, **overrides)
        runner = SiteRunner(config, open_device(config, FAST_SETTINGS), audit)
        runners.append(runner)
        return runner

    yield factory
    for runner in runners:
        await runner.device.close()


@pytest.fixture
async def runner(make_runner: MakeRunner) -> SiteRunner:
    return make_runner()


@pytest.fixture
async def make_proxy() -> AsyncIterator[Callable[..., Any]]:
    servers: list[ProxyServer] = []

    async def factory(site: SiteRunner, **config: Any) -> ProxyServer:
        device = site.device
        assert isinstance(device, HuaweiHybrid)
        proxy_config = ProxyConfig.model_validate({"enabled": True, "port": 0, **config})
        server = ProxyServer(proxy_config, site, device.modbus)
        await server.start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        await server.stop()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Any]]:
    clients: list[AsyncModbusTcpClient] = []

    async def factory(proxy: ProxyServer, timeout_s: float = 2.0) -> AsyncModbusTcpClient:
        client = AsyncModbusTcpClient(
            "127.0.0.1", port=proxy.port, timeout=timeout_s, retries=0, reconnect_delay=0
        )
        assert await client.connect()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()
