"""The running gateway accounts CO2 from the measured battery power and mints credits from it:
a real simulator over Modbus TCP, the real runtime, the ledger on disk, verified offline after
the gateway stopped; the API and metrics show the same numbers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest

from bessai.api.app import create_app
from bessai.config import Config
from bessai.ledger import keys
from bessai.ledger.verify import verify_log
from bessai.runtime.service import Runtime
from bessai.simulator.device import SimulatedHybrid
from bessai.simulator.plant import PhysicsPlant, PlantConfig
from bessai.simulator.server import SimulatorServer
from tests.api.conftest import make_keys, wait_for
from tests.conftest import NOON_UTC
from tests.control.conftest import site_config

CHILE_G_KWH = 291.113


@pytest.fixture
async def quiet_sim() -> AsyncIterator[SimulatorServer]:
    """A site without PV or load: the battery moves only when dispatched, so its own energy
    counters are the reference for what the gateway measures."""
    plant = PhysicsPlant(PlantConfig(pv_peak_w=0.0, load_mean_w=0.0), now=NOON_UTC)
    server = SimulatorServer(SimulatedHybrid(plant, start=NOON_UTC), port=0, speed=1.0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _config(tmp_path: Path, port: int, **ledger: object) -> Config:
    data_dir = tmp_path / "gw"
    return Config.model_validate(
        {
            "gateway": {"data_dir": str(data_dir)},
            "telemetry": {"outbox_path": str(data_dir / "outbox.sqlite")},
            "sites": [site_config(port).model_dump()],
            "carbon": {"interval_s": 1.0, "max_gap_s": 2.0},
            "ledger": {"enabled": True, "co2_method": "average", **ledger},
        }
    )


async def _dispatch(runtime: Runtime, setpoint_w: float, seconds: float) -> None:
    site = runtime.gateway.sites["t1"]
    await site.install_override(setpoint_w, seconds + 5, "carbon test")
    await asyncio.sleep(seconds)


async def test_minted_energy_is_the_measured_energy_and_verifies_offline(
    quiet_sim: SimulatorServer, tmp_path: Path
) -> None:
    config = _config(tmp_path, quiet_sim.port)
    public = keys.generate(config.ledger_key_file)
    tokens = make_keys(config.keys_file)
    plant = quiet_sim.device.plant
    runtime = Runtime(config)
    await runtime.start()
    try:
        await wait_for(lambda: runtime.gateway.sites["t1"].last is not None)
        before = (plant.state.charged_kwh, plant.state.discharged_kwh)
        await _dispatch(runtime, -3000.0, 6.0)
        await _dispatch(runtime, 3000.0, 4.0)
        await runtime.gateway.sites["t1"].clear_override()
        await asyncio.sleep(1.5)
        app = create_app(runtime.monitor)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        headers = {"Authorization": f"Bearer {tokens['read']}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            carbon = (await client.get("/api/v1/carbon", headers=headers)).json()
            credits = (await client.get("/api/v1/credits", headers=headers)).json()
        metrics = generate_latest(runtime.metrics.registry).decode()
    finally:
        await runtime.stop()
    after = (plant.state.charged_kwh, plant.state.discharged_kwh)

    # What the gateway measured is what the device did (the plant's own energy counters)...
    observer = runtime.monitor.carbon
    assert observer is not None
    measured = observer.sites["t1"].tallies["location-average"]
    assert measured.discharged_kwh == pytest.approx(after[1] - before[1], rel=0.05)
    assert measured.charged_kwh == pytest.approx(after[0] - before[0], rel=0.05)
    assert measured.discharged_kwh > 3.0 * 5 / 3600  # at least 5 s of the 3 kW discharge
    # ...and what was minted is that measurement, to the Wh each credit rounds to.
    report = verify_log(config.ledger_log_file, [public], public)
    assert report.ok, report.problems
    assert report.anchored == report.records  # the stop signed a final checkpoint
    rounding_kwh = 0.0005 * report.state.mints
    assert report.state.discharged_wh / 1000 == pytest.approx(
        measured.discharged_kwh, abs=rounding_kwh
    )
    assert report.state.charged_wh / 1000 == pytest.approx(measured.charged_kwh, abs=rounding_kwh)
    for credit in report.state.credits.values():
        assert credit.co2_avoided_g == round(credit.discharged_wh * CHILE_G_KWH / 1000)

    # The API and metrics tell the same story while the gateway runs.
    [site] = carbon["sites"]
    average = next(m for m in site["methods"] if m["method"] == "location-average")
    assert average["avoided_kg"] == pytest.approx(
        (average["discharged_kwh"] - average["charged_kwh"]) * CHILE_G_KWH / 1000, abs=1e-3
    )
    assert carbon["fleet"][0]["method"] == "location-average"
    assert credits["enabled"]
    assert credits["minted"] > 0
    assert credits["public_key"] == public
    assert 'bessai_carbon_avoided_kg{method="location-average",site="t1"}' in metrics
    assert 'bessai_carbon_intensity_g_kwh{method="location-average",site="t1"} 291.113' in metrics
    assert 'bessai_energy_credits_minted_total{site="t1"}' in metrics


async def test_a_restart_continues_the_log_without_minting_time_twice(
    quiet_sim: SimulatorServer, tmp_path: Path
) -> None:
    config = _config(tmp_path, quiet_sim.port)
    public = keys.generate(config.ledger_key_file)
    for _ in range(2):
        runtime = Runtime(config)
        await runtime.start()
        try:
            await wait_for(lambda rt=runtime: rt.gateway.sites["t1"].last is not None)
            await _dispatch(runtime, -5000.0, 3.5)
        finally:
            await runtime.stop()
        assert runtime.monitor.carbon is not None
        minter = runtime.monitor.carbon.minter
        assert minter is not None
        assert (minter.failures, minter.last_error) == (0, None)  # no double mint at restart
    report = verify_log(config.ledger_log_file, [public], public)
    assert report.ok, report.problems
    assert report.state.mints >= 4


async def test_a_missing_key_says_how_to_make_it(
    quiet_sim: SimulatorServer, tmp_path: Path
) -> None:
    runtime = Runtime(_config(tmp_path, quiet_sim.port))
    with pytest.raises(Exception, match="bessai ledger keygen"):
        await runtime.start()
    await runtime.stop()
