"""Shared fixtures: a real simulator on a free loopback port, clients tuned for tests, and the
real price files in the repository's data/ folder (described in data/README.md)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bessai.modbus.client import ClientSettings, ModbusDevice
from bessai.modbus.profile import BUILTIN_PROFILES, load_builtin
from bessai.simulator.device import SimulatedHybrid
from bessai.simulator.plant import PhysicsPlant, PlantConfig
from bessai.simulator.server import SimulatorServer

#: Field defaults scaled down so fault tests run in seconds, not minutes.
FAST_SETTINGS = ClientSettings(
    wait_after_connect_s=0.05,
    cooldown_s=0.0,
    timeout_s=0.5,
    retries=2,
    retry_backoff_s=0.05,
    retry_backoff_max_s=0.2,
    reconnect_backoff_s=0.1,
    reconnect_backoff_max_s=0.4,
)

#: The repository's data/ folder; BESSAI_REPO_DATA points the suite at another copy of it.
DATA = Path(os.environ.get("BESSAI_REPO_DATA", Path(__file__).resolve().parents[1] / "data"))

#: Mid-afternoon in Santiago, so the simulated PV produces.
NOON_UTC = datetime(2026, 1, 15, 16, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def structlog_defaults() -> Iterator[None]:
    """A CLI test configures logging (say at WARNING, filtering info events out before any
    processor sees them); later tests that capture logs must start from structlog's defaults."""
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def data_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The embedded default configuration keeps its data in the per-user data directory
    ($XDG_DATA_HOME/bessai): every test, and every `bessai` it starts, gets a private one
    instead of the real home's."""
    home = tmp_path_factory.mktemp("xdg-data-home")
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    monkeypatch.delenv("BESSAI_GATEWAY__DATA_DIR", raising=False)
    return home


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    plant = PhysicsPlant(PlantConfig(initial_soc_pct=50.0), now=NOON_UTC)
    server = SimulatorServer(SimulatedHybrid(plant, start=NOON_UTC), port=0, speed=1.0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def make_device(sim: SimulatorServer) -> Callable[..., ModbusDevice]:
    created: list[ModbusDevice] = []

    def factory(unit_id: int = 1, settings: ClientSettings = FAST_SETTINGS) -> ModbusDevice:
        device = ModbusDevice(
            "127.0.0.1",
            sim.port,
            unit_id,
            [load_builtin(name) for name in BUILTIN_PROFILES],
            settings,
            name="sim",
        )
        created.append(device)
        return device

    return factory


@pytest.fixture
async def device(make_device: Callable[..., ModbusDevice]) -> AsyncIterator[ModbusDevice]:
    dev = make_device()
    try:
        yield dev
    finally:
        await dev.close()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"real data folder not found at {DATA} (data/, or BESSAI_REPO_DATA)")
    return DATA


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    """One tracer provider for the whole run (OpenTelemetry accepts only one per process)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter
