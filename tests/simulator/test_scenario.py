"""Scenarios script the simulator: point overrides that expire, plant changes, wire faults."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bessai.errors import ConfigError
from bessai.modbus.client import ModbusDevice
from bessai.modbus.profile import PollGroup
from bessai.simulator.scenario import (
    BUILTIN_SCENARIOS,
    Event,
    Scenario,
    ScenarioRunner,
    check_scenario,
    load_scenario,
    scenario_path,
)
from bessai.simulator.server import SimulatorServer


@pytest.mark.parametrize("name", BUILTIN_SCENARIOS)
def test_builtin_scenarios_load_and_check(name: str, sim: SimulatorServer) -> None:
    scenario = load_scenario(scenario_path(name))
    check_scenario(scenario, sim, name)


async def test_set_overrides_a_point_then_releases_it(
    sim: SimulatorServer, device: ModbusDevice
) -> None:
    runner = ScenarioRunner(
        Scenario(events=[Event(at_s=0.8, set={"unit1_temp_c": 52.0}, duration_s=1.0)]), sim
    )
    runner.start()
    assert (await device.poll({PollGroup.FAST})).value("huawei_luna2000", "unit1_temp_c") < 40  # type: ignore[operator]
    # Margins of 0.5 s around each event edge: a loaded machine delays a poll, not the result.
    await asyncio.sleep(1.3)
    hot = await device.poll({PollGroup.FAST})
    assert hot.value("huawei_luna2000", "unit1_temp_c") == 52.0
    await asyncio.sleep(1.0)
    cool = await device.poll({PollGroup.FAST})
    assert cool.value("huawei_luna2000", "unit1_temp_c") < 40  # type: ignore[operator]
    assert runner.done
    await runner.stop()


async def test_initial_and_plant_changes(sim: SimulatorServer, device: ModbusDevice) -> None:
    runner = ScenarioRunner(
        Scenario.model_validate(
            {"initial": {"soc_pct": 97.5}, "events": [{"at_s": 0.8, "plant": {"soc_pct": 5.5}}]}
        ),
        sim,
    )
    runner.start()
    sim.advance()
    # With one battery unit the storage system's SOC (37760) is a slow point.
    full = await device.poll({PollGroup.FAST, PollGroup.SLOW})
    assert full.value("huawei_luna2000", "soc_pct") == pytest.approx(97.5, abs=0.2)
    await asyncio.sleep(1.3)
    empty = await device.poll({PollGroup.FAST, PollGroup.SLOW})
    assert empty.value("huawei_luna2000", "soc_pct") == pytest.approx(5.5, abs=0.2)
    await runner.stop()


def test_malformed_scenarios_are_named(tmp_path: Path, sim: SimulatorServer) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("events: [{at_s: 1, fault: latency, duration_s: 2}]")
    with pytest.raises(ConfigError, match=r"events\.0.*needs 'latency_s'"):
        load_scenario(path)
    path.write_text("events: [{at_s: -1, fault: busy, duration_s: 2}]")
    with pytest.raises(ConfigError, match=r"events\.0\.at_s"):
        load_scenario(path)
    path.write_text("events: [{at_s: 1, set: {unit1_temp_c: 52}, fault: busy, duration_s: 1}]")
    with pytest.raises(ConfigError, match="exactly one of"):
        load_scenario(path)
    path.write_text("events: [{at_s: 1, set: {forcible_command: 'explode'}}]")
    with pytest.raises(ConfigError, match=r"events\.0\.set\.forcible_command"):
        check_scenario(load_scenario(path), sim, str(path))
    path.write_text("events: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_scenario(path)
    with pytest.raises(ConfigError, match="cannot read scenario"):
        load_scenario(tmp_path / "missing.yaml")
