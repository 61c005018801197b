"""The simulated hybrid behaves like the device: limits, forcible commands that end on their own,
cutoffs, and exceptions where a real device answers with one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bessai.simulator.device import ILLEGAL_ADDRESS, ILLEGAL_VALUE, SimulatedHybrid
from bessai.simulator.plant import PhysicsPlant, PlantConfig

NIGHT_UTC = datetime(2026, 1, 15, 5, 0, tzinfo=UTC)  # 02:00 in Santiago: no PV


def hybrid(soc_pct: float = 50.0, start: datetime = NIGHT_UTC) -> SimulatedHybrid:
    return SimulatedHybrid(
        PhysicsPlant(PlantConfig(initial_soc_pct=soc_pct), now=start), start=start
    )


def write(dev: SimulatedHybrid, name: str, value: object) -> int | None:
    point = dev.point(name)
    from bessai.modbus.codec import encode

    return dev.write(point.address, encode(point, value))


def run_for(dev: SimulatedHybrid, seconds: float, step_s: float = 5.0) -> None:
    t = 0.0
    while t < seconds:
        dev.advance(dev.now + timedelta(seconds=step_s))
        t += step_s


def test_identity_block_is_complete() -> None:
    dev = hybrid()
    assert dev.get("model_name") == "SUN2000-10KTL-M1"
    assert dev.get("serial_number")
    assert dev.get("pv_string_count") == 2
    assert dev.get("rated_power_w") == 10_000
    assert dev.read(30000, 64) != ILLEGAL_ADDRESS  # the whole block reads in one go


def test_forcible_charge_runs_for_its_period_then_stops() -> None:
    dev = hybrid()
    assert write(dev, "forcible_charge_power_w", 3000) is None
    assert write(dev, "forcible_period_min", 2) is None
    assert write(dev, "forcible_mode", 0) is None
    assert write(dev, "forcible_command", 1) is None
    soc0 = dev.get("soc_pct")
    run_for(dev, 60)
    assert dev.get("huawei_luna2000.power_w") == 3000
    assert dev.get("soc_pct") > soc0  # type: ignore[operator]
    assert dev.get("unit1_working_mode_b") == "forcible charge/discharge"
    run_for(dev, 65)
    assert dev.get("forcible_command") == "stop"
    assert dev.get("huawei_luna2000.power_w") <= 0  # type: ignore[operator]


def test_rewriting_the_period_extends_the_command() -> None:
    dev = hybrid()
    write(dev, "forcible_discharge_power_w", 2000)
    write(dev, "forcible_period_min", 1)
    write(dev, "forcible_command", 2)
    run_for(dev, 50)
    write(dev, "forcible_period_min", 1)  # a watchdog refresh
    run_for(dev, 50)
    assert dev.get("forcible_command") == "discharge"
    assert dev.get("huawei_luna2000.power_w") == -2000


def test_soc_mode_stops_at_target() -> None:
    dev = hybrid(soc_pct=50.0)
    write(dev, "forcible_charge_power_w", 5000)
    write(dev, "forcible_target_soc_pct", 52.0)
    write(dev, "forcible_mode", 1)
    write(dev, "forcible_command", 1)
    for _ in range(200):
        run_for(dev, 10, step_s=10)
        if dev.get("forcible_command") == "stop":
            break
    assert dev.get("forcible_command") == "stop"
    assert 52.0 <= dev.get("soc_pct") < 52.5  # type: ignore[operator]
    # Afterwards the battery serves the house again, as in the field (batpred #3106).
    run_for(dev, 300, step_s=10)
    assert dev.get("huawei_luna2000.power_w") < 0  # type: ignore[operator]


def test_discharge_cutoff_and_power_limit_setting_hold() -> None:
    dev = hybrid(soc_pct=6.0)
    write(dev, "forcible_discharge_power_w", 5000)
    write(dev, "max_discharge_power_setting_w", 1500)
    write(dev, "forcible_period_min", 60)
    write(dev, "forcible_command", 2)
    run_for(dev, 10)
    assert dev.get("huawei_luna2000.power_w") == -1500
    run_for(dev, 900, step_s=10)
    assert dev.get("soc_pct") >= 4.9  # type: ignore[operator]
    assert dev.get("huawei_luna2000.power_w") == 0


def test_device_answers_like_the_real_one() -> None:
    dev = hybrid()
    assert dev.read(37790, 1) == ILLEGAL_ADDRESS  # outside a served block
    assert dev.read(37760, 40) == ILLEGAL_ADDRESS  # a span reaching past the block fails whole
    assert dev.read(49999, 1) == ILLEGAL_ADDRESS  # write-only heartbeat
    assert dev.write(37760, [500]) == ILLEGAL_ADDRESS  # read-only
    assert write(dev, "forcible_charge_power_w", 6000) == ILLEGAL_VALUE  # above 37046
    assert write(dev, "charge_cutoff_soc_pct", 80.0) == ILLEGAL_VALUE
    assert dev.write(dev.point("forcible_command").address, [9]) == ILLEGAL_VALUE
    assert dev.write(47247, [0]) == ILLEGAL_ADDRESS  # half of a U32
    dev.unsupported.update({37001, 37002})
    assert dev.read(37000, 10) == ILLEGAL_ADDRESS


def test_signs_at_the_device_boundary() -> None:
    dev = hybrid()
    write(dev, "forcible_charge_power_w", 4000)
    write(dev, "forcible_period_min", 10)
    write(dev, "forcible_command", 1)
    run_for(dev, 10)
    state = dev.plant.state
    assert state.grid_power_w > 0  # importing to charge at night
    assert dev.get("huawei_dtsu666.active_power_w") == -round(state.grid_power_w)  # > 0 = export
    assert dev.get("huawei_luna2000.power_w") == 4000  # > 0 = charging
    assert dev.get("huawei_sun2000.active_power_w") == round(state.pv_power_w - 4000)


def test_temperature_rises_under_sustained_full_power_on_a_hot_day() -> None:
    plant = PhysicsPlant(
        PlantConfig(max_charge_w=7500, max_discharge_w=7500, initial_soc_pct=90),
        now=NIGHT_UTC,
    )
    dev = SimulatedHybrid(plant, start=NIGHT_UTC)
    plant.set_state(temp_c=35.0, ambient_c=35.0)
    write(dev, "forcible_charge_power_w", 7500)
    write(dev, "forcible_discharge_power_w", 7500)
    write(dev, "forcible_period_min", 1440)
    command = 2
    write(dev, "forcible_command", command)
    temps = []
    for _ in range(6 * 60):  # six hours of cycling at full power, 1-minute steps
        run_for(dev, 60, step_s=60)
        soc = dev.get("soc_pct")
        assert isinstance(soc, float)
        if command == 2 and soc <= 10:
            command = 1
            write(dev, "forcible_command", command)
        elif command == 1 and soc >= 90:
            command = 2
            write(dev, "forcible_command", command)
        temps.append(dev.get("unit1_temp_c"))
    assert max(temps) > 45.0  # type: ignore[type-var]
    assert temps[30] > 35.0  # type: ignore[operator]


def test_forcing_soc_does_not_count_as_cycling() -> None:
    plant = PhysicsPlant(PlantConfig(initial_soc_pct=50.0), now=NIGHT_UTC)
    plant.set_state(soc_pct=97.5)
    plant.step(1000.0, 0.2, NIGHT_UTC)
    assert plant.site.state.soh_pct > 99.9
    assert plant.state.soc_pct == pytest.approx(97.5, abs=0.01)
