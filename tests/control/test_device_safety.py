"""Safety judged at the device: a blocked direction stops the battery whatever the inverter's own
working mode does, measured as battery power, and a battery that ignores or inverts its command
puts the site in SAFE.

The simulator runs in its default working mode (maximise self-consumption): with a house load of
several kW and no PV the battery discharges into the house by itself, with PV at noon it charges
by itself. Neither is a forcible command, so stopping the command alone would not stop it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bessai.control.audit import AuditLog
from bessai.control.safety import SafetyState
from bessai.control.site import CycleRecord, SiteRunner
from bessai.devices.registry import open_device
from bessai.simulator.device import SimulatedHybrid
from bessai.simulator.plant import PhysicsPlant, PlantConfig
from bessai.simulator.server import SimulatorServer
from tests.conftest import FAST_SETTINGS

from .conftest import site_config

#: 23:00 in Santiago (January): dark, evening load.
NIGHT_UTC = datetime(2026, 1, 16, 2, 0, tzinfo=UTC)
#: 13:00 in Santiago: strong PV.
NOON_UTC = datetime(2026, 1, 15, 16, 0, tzinfo=UTC)
STILL_W = 50.0


async def _sim(now: datetime, speed: float = 1.0, **plant: Any) -> SimulatorServer:
    config = PlantConfig(**{"initial_soc_pct": 50.0, **plant})
    server = SimulatorServer(
        SimulatedHybrid(PhysicsPlant(config, now=now), start=now), port=0, speed=speed
    )
    await server.start()
    return server


@pytest.fixture
async def night_sim() -> AsyncIterator[SimulatorServer]:
    server = await _sim(NIGHT_UTC, pv_peak_w=0.0, load_mean_w=4000.0)
    yield server
    await server.stop()


@pytest.fixture
async def noon_sim() -> AsyncIterator[SimulatorServer]:
    server = await _sim(NOON_UTC, pv_peak_w=9000.0, load_mean_w=500.0)
    yield server
    await server.stop()


@pytest.fixture
async def runner_on(tmp_path: Path) -> AsyncIterator[Callable[..., SiteRunner]]:
    runners: list[SiteRunner] = []
    audit = AuditLog(tmp_path / "audit.sqlite")

    def factory(sim: SimulatorServer, **overrides: Any) -> SiteRunner:
        config = site_config(sim.port, **overrides)
        runner = SiteRunner(config, open_device(config, FAST_SETTINGS), audit)
        runners.append(runner)
        return runner

    yield factory
    for runner in runners:
        await runner.device.close()
    audit.close()


async def _cycles(runner: SiteRunner, n: int, period_s: float = 0.2) -> list[CycleRecord]:
    records = []
    for _ in range(n):
        records.append(await runner.step())
        await asyncio.sleep(period_s)
    return records


def _plant_w(sim: SimulatorServer) -> float:
    return sim.device.plant.state.battery_power_w


def _settings_w(sim: SimulatorServer) -> tuple[float, float]:
    return (
        float(sim.device.raw("max_charge_power_setting_w")),
        float(sim.device.raw("max_discharge_power_setting_w")),
    )


@pytest.mark.parametrize("scene", ["night: discharging into the house", "noon: charging from PV"])
async def test_over_temperature_stops_the_battery_at_the_device(
    scene: str,
    night_sim: SimulatorServer,
    noon_sim: SimulatorServer,
    runner_on: Callable[..., SiteRunner],
) -> None:
    sim = night_sim if scene.startswith("night") else noon_sim
    runner = runner_on(sim)
    before = await _cycles(runner, 3)
    moving_w = before[-1].measurements.battery_power_w
    assert moving_w is not None
    # Self-consumption moves the battery by itself, kilowatts, with no command from us.
    assert abs(moving_w) > 2000, moving_w
    assert before[-1].decision.setpoint_w == 0
    settings_before = _settings_w(sim)

    sim.device.overrides["unit1_temp_c"] = 52.0
    records = await _cycles(runner, 8)
    seen = next(i for i, r in enumerate(records) if r.safety_state is SafetyState.LIMITED)
    # Within two cycles of seeing 52 °C the measured battery power is still, and stays so.
    for record in records[seen + 2 :]:
        assert record.measurements.battery_power_w is not None
        assert abs(record.measurements.battery_power_w) < STILL_W, record.measurements
    assert abs(_plant_w(sim)) < STILL_W
    assert _settings_w(sim) == (0.0, 0.0)  # held at the device, read back by the gateway
    assert records[-1].block.charge
    assert records[-1].block.discharge

    sim.device.overrides["unit1_temp_c"] = 44.0  # below the limit, above the hysteresis
    for record in await _cycles(runner, 5):
        assert abs(record.measurements.battery_power_w or 0.0) < STILL_W
        assert record.block.discharge

    sim.device.overrides["unit1_temp_c"] = 40.0  # below 45 - 3 °C: released
    after = await _cycles(runner, 6)
    assert not after[-1].block.any
    assert _settings_w(sim) == settings_before  # the operator's limits are back
    assert abs(after[-1].measurements.battery_power_w or 0.0) > 2000


async def test_soc_minimum_under_load_stops_discharge_at_the_device(
    runner_on: Callable[..., SiteRunner],
) -> None:
    # x30 so the house drains the battery to its minimum within seconds.
    sim = await _sim(NIGHT_UTC, speed=30.0, pv_peak_w=0.0, load_mean_w=4000.0)
    try:
        # A minimum above what the inverter's own cutoff accepts (47082: 0-20 %), so only the
        # gateway's hold can keep the battery there.
        runner = runner_on(sim, safety={"soc_min_pct": 30.0, "soc_hysteresis_pct": 2.0})
        sim.device.plant.set_state(soc_pct=31.0)
        records = await _cycles(runner, 60)
        assert any((r.measurements.battery_power_w or 0.0) < -2000 for r in records[:5])
        seen = next(i for i, r in enumerate(records) if any(x.name == "soc_low" for x in r.latches))
        assert seen < 50
        for record in records[seen + 2 :]:
            assert abs(record.measurements.battery_power_w or 0.0) < STILL_W
        assert records[-1].block.discharge
        assert not records[-1].block.charge
        soc = records[-1].measurements.soc_pct
        assert soc is not None
        assert soc >= 29.8
        assert _settings_w(sim)[1] == 0.0
    finally:
        await sim.stop()


async def test_a_battery_that_inverts_its_command_puts_the_site_in_safe(
    noon_sim: SimulatorServer, runner_on: Callable[..., SiteRunner]
) -> None:
    runner = runner_on(noon_sim, tracking={"settle_s": 0.5, "failsafe_after_s": 0.4, "hold_s": 60})
    await _cycles(runner, 2)
    noon_sim.device.dispatch_fault = "invert"
    runner.override.set(-3000, datetime.now(UTC), 60, "discharge")
    records = await _cycles(runner, 12)
    last = records[-1]
    assert last.safety_state is SafetyState.SAFE
    assert last.failsafe_reason is not None
    assert "opposite to the command" in last.failsafe_reason
    # In SAFE the device holds both directions: the inverted battery stops too.
    assert abs(last.measurements.battery_power_w or 0.0) < STILL_W
    assert abs(_plant_w(noon_sim)) < STILL_W


async def test_a_battery_that_ignores_its_command_raises_the_tracking_alert(
    night_sim: SimulatorServer, runner_on: Callable[..., SiteRunner]
) -> None:
    runner = runner_on(
        night_sim,
        tracking={"settle_s": 0.4, "alert_after_s": 0.6, "failsafe_after_s": 0.4},
        simulator={"enabled": False},
    )
    await _cycles(runner, 2)
    night_sim.device.dispatch_fault = "ignore"
    # A charge the battery ignores: it keeps discharging into the house (opposite), so SAFE.
    runner.override.set(2000, datetime.now(UTC), 60, "charge")
    records = await _cycles(runner, 12)
    assert records[-1].safety_state is SafetyState.SAFE
    assert "opposite" in (records[-1].failsafe_reason or "")


async def test_a_shortfall_is_an_alert_not_a_stop(
    noon_sim: SimulatorServer, runner_on: Callable[..., SiteRunner]
) -> None:
    runner = runner_on(noon_sim, tracking={"settle_s": 0.4, "alert_after_s": 0.6})
    await _cycles(runner, 2)
    # The battery's own limit below the command: it charges, but short of what was asked.
    noon_sim.device.set("max_charge_power_setting_w", 5000)
    runner.override.set(4000, datetime.now(UTC), 60, "charge")
    noon_sim.device.plant.set_state(temp_c=25.0)
    noon_sim.device.dispatch_fault = None
    await _cycles(runner, 2)
    # Pin what the battery reports: 1 kW of a 4 kW command.
    noon_sim.device.overrides["unit1_power_w"] = 1000
    records = await _cycles(runner, 10)
    last = records[-1]
    assert last.safety_state is not SafetyState.SAFE
    assert last.tracking is not None
    assert last.tracking.deviation is not None
    assert "short of the command of 4000 W" in last.tracking.deviation
