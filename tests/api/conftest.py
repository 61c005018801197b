"""API fixtures: a gateway on the test simulator with keys of every role, served in-process
(httpx.ASGITransport) for route tests, or as a real `bessai run` process on a free loopback
port for the browser, schemathesis and streaming tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tomli_w
from fastapi import FastAPI

from bessai.api.app import create_app
from bessai.api.keys import KeyStore, Role
from bessai.config import Config
from bessai.control.gateway import Gateway
from bessai.observe.monitor import Monitor
from bessai.optimize import Schedule
from bessai.runtime.service import Runtime
from bessai.simulator.server import SimulatorServer
from tests.api.browser import page
from tests.control.conftest import site_config
from tests.process import free_port, stop_process, wait_ready

__all__ = ["page"]  # the browser fixture, shared with the fleet page's test


@dataclass
class ApiHarness:
    runtime: Runtime
    app: FastAPI
    keys: dict[str, str]  # role -> token

    @property
    def gateway(self) -> Gateway:
        return self.runtime.gateway

    @property
    def monitor(self) -> Monitor:
        return self.runtime.monitor

    def client(self, client_addr: str = "127.0.0.1", **kwargs: Any) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(client_addr, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://gw", **kwargs)

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


def make_keys(path: Path) -> dict[str, str]:
    store = KeyStore(path)
    return {role.value: store.add(f"{role.value}-key", role) for role in Role}


@pytest.fixture
async def make_api(sim: SimulatorServer, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    runtimes: list[Runtime] = []

    async def factory(api: dict[str, Any] | None = None, **site: Any) -> ApiHarness:
        data_dir = tmp_path / f"gw{len(runtimes)}"
        config = Config.model_validate(
            {
                "gateway": {"data_dir": str(data_dir)},
                # Each gateway its own outbox: the outbox allows one writer per file.
                "telemetry": {"outbox_path": str(data_dir / "outbox.sqlite")},
                "api": api or {},
                "sites": [site_config(sim.port, **site).model_dump()],
            }
        )
        keys = make_keys(config.keys_file)
        runtime = Runtime(config)
        runtimes.append(runtime)
        await runtime.start()
        app = create_app(runtime.monitor)
        await wait_for(lambda: runtime.gateway.sites["t1"].last is not None)
        return ApiHarness(runtime, app, keys)

    yield factory
    for runtime in runtimes:
        await runtime.stop()


async def wait_for(condition: Callable[[], object], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.05)


@dataclass
class RunningGateway:
    base_url: str
    keys: dict[str, str]
    data_dir: Path
    log_path: Path


def demo_site(**overrides: Any) -> dict[str, Any]:
    """The site `bessai run` serves in these tests: an embedded simulator (fast plant so the
    SOC moves) and a real plan from the shipped prices, so the schedule route and page have one."""
    site: dict[str, Any] = {
        "id": "demo",
        "name": "simulated site",
        "cycle_s": 0.5,
        "devices": [
            {
                "host": "127.0.0.1",
                "port": 0,
                "wait_after_connect_s": 0.05,
                "cooldown_s": 0.0,
                "timeout_s": 1.0,
            }
        ],
        "safety": {"stale_after_s": 3.0},
        "simulator": {"enabled": True, "speed": 120.0, "initial_soc_pct": 50.0},
        "optimizer": {"enabled": True, "prices": "builtin:crucero-2023", "replay": True},
    }
    return {**site, **overrides}


def write_gateway_config(root: Path, port: int, **site: Any) -> tuple[Path, dict[str, str]]:
    """A `bessai run` configuration for one demo site on `port`, and keys of every role."""
    data_dir = root / "data"
    config = {
        "gateway": {"data_dir": str(data_dir), "http_port": port, "status_display": False},
        # Generous failure limit: schemathesis probes routes without keys on purpose.
        "api": {"auth_failures_max": 10_000},
        "sites": [demo_site(**site)],
    }
    config_path = root / "gateway.toml"
    config_path.write_text(tomli_w.dumps(config))
    return config_path, make_keys(data_dir / "api_keys.json")


@contextlib.contextmanager
def gateway_process(config_path: Path, port: int, key: str) -> Iterator[subprocess.Popen[bytes]]:
    """`bessai run --config config_path` in its own process, up once its site has a SOC;
    stopped (SIGTERM, as an operator's Ctrl-C) on exit."""
    log_path = config_path.with_suffix(".log")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bessai.cli", "--log-level", "info", "run",
             "--config", str(config_path), "--no-status"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"

    def has_soc() -> bool:
        r = httpx.get(f"{base_url}/api/v1/status", headers={"X-API-Key": key})
        return r.status_code == 200 and r.json()["sites"][0].get("soc_pct") is not None

    try:
        wait_ready(proc, has_soc, log_path, name="gateway", timeout_s=30)
        yield proc
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def running_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """`bessai run` in its own process on an embedded simulator (fast plant so SOC moves)."""
    root = tmp_path_factory.mktemp("running-gateway")
    port = free_port()
    config_path, keys = write_gateway_config(root, port)
    with gateway_process(config_path, port, keys["read"]):
        yield RunningGateway(
            f"http://127.0.0.1:{port}", keys, root / "data", config_path.with_suffix(".log")
        )


def make_plan(
    setpoints_w: list[float], prices: list[float], reasons: list[str], step_h: float = 0.25
) -> Schedule:
    """A plan as the optimizer makes it, with chosen setpoints, prices and reasons."""
    kw = np.array(setpoints_w) / 1000.0
    n = len(kw)
    return Schedule(
        status="optimal",
        charge_kw=np.maximum(kw, 0.0),
        discharge_kw=np.maximum(-kw, 0.0),
        energy_kwh=np.zeros(n),
        soc_pct=np.linspace(55.0, 40.0, n),
        prices=np.array(prices, dtype=float),
        step_h=step_h,
        revenue=12.5,
        degradation_cost=0.5,
        energy_value_per_mwh=np.zeros(n),
        actions=tuple("charge" if w > 0 else "discharge" if w < 0 else "hold" for w in kw),
        reasons=tuple(reasons),
        violations=(),
        solver="test",
        solve_time_s=0.0,
    )
