"""Proxy fixtures: a site cycling against the test simulator (the control tests' fixtures), the
proxy in front of it on a free loopback port, and pymodbus clients connected to the proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from bessai.config import ProxyConfig
from bessai.control.site import SiteRunner
from bessai.devices.huawei import HuaweiHybrid
from bessai.proxy import ProxyServer
from tests.control.conftest import audit, make_runner

# The site fixtures of the control tests, shared.
__all__ = ["audit", "make_runner"]

MakeRunner = Callable[..., SiteRunner]
MakeProxy = Callable[..., "Any"]


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
