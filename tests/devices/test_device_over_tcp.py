"""The client against the simulator over real TCP on loopback: values, writes, and every fault
in the scenario list. The client recovers, nothing crashes, errors name device and register."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from bessai.errors import (
    DeviceConnectionError,
    DeviceError,
    DeviceTimeoutError,
    ModbusExceptionError,
    UnitNotAnsweringError,
    WriteRejectedError,
)
from bessai.modbus.client import ModbusDevice
from bessai.modbus.profile import PollGroup, load_builtin
from bessai.simulator.scenario import Event, Scenario, ScenarioRunner
from bessai.simulator.server import SimulatorServer
from tests.conftest import FAST_SETTINGS

FAST = {PollGroup.FAST}
#: the storage system's SOC and power (37760/37765) are slow points when one battery unit is
#: installed (its unit 1 registers carry them every cycle): tests of those read both groups
FAST_AND_SLOW = {PollGroup.FAST, PollGroup.SLOW}


async def test_full_read_matches_plant_state(sim: SimulatorServer, device: ModbusDevice) -> None:
    sim.speed = 0  # freeze the plant so every block of the read sees the same state
    result = await device.poll()
    state = sim.device.plant.state
    v = result.value
    assert v("huawei_sun2000", "model_name") == "SUN2000-10KTL-M1"
    assert v("huawei_luna2000", "soc_pct") == pytest.approx(state.soc_pct, abs=0.1)
    assert v("huawei_luna2000", "power_w") == pytest.approx(state.battery_power_w, abs=1)
    assert v("huawei_sun2000", "input_power_w") == pytest.approx(state.pv_power_w, abs=1)
    assert v("huawei_dtsu666", "active_power_w") == pytest.approx(-state.grid_power_w, abs=1)
    assert v("huawei_sun2000", "active_power_w") == pytest.approx(
        state.pv_power_w - state.battery_power_w, abs=2
    )
    assert not result.errors
    unavailable = [r.key for r in result.readings.values() if not r.available]
    assert unavailable == []
    # Strings beyond the device's two and the absent second battery unit are not asked for.
    assert "huawei_sun2000.pv3_voltage_v" not in result.readings
    assert "huawei_luna2000.unit2_soc_pct" not in result.readings
    assert 0 <= v("huawei_luna2000", "soc_pct") <= 100  # type: ignore[operator]
    assert 49 < v("huawei_sun2000", "grid_frequency_hz") < 51  # type: ignore[operator]


async def test_fast_poll_takes_three_requests(device: ModbusDevice) -> None:
    await device.poll()
    result = await device.poll(FAST)
    assert result.requests <= 3
    assert result.value("huawei_luna2000", "unit1_temp_c") is not None
    assert result.value("huawei_luna2000", "unit1_soc_pct") is not None
    assert result.value("huawei_dtsu666", "active_power_w") is not None


async def test_forced_charge_raises_soc_and_stops_by_itself(
    sim: SimulatorServer, device: ModbusDevice
) -> None:
    sim.speed = 120.0  # one plant minute every half second
    for point, value in [
        ("forcible_charge_power_w", 4000),
        ("forcible_period_min", 1),
        ("forcible_mode", "time (47083)"),
        ("forcible_command", "charge"),
    ]:
        result = await device.write_point(point, value)
        assert result.verified
    first = await device.poll(FAST_AND_SLOW)
    assert first.value("huawei_luna2000", "power_w") == 4000
    await asyncio.sleep(0.3)
    second = await device.poll(FAST_AND_SLOW)
    assert second.value("huawei_luna2000", "soc_pct") > first.value(  # type: ignore[operator]
        "huawei_luna2000", "soc_pct"
    )
    await asyncio.sleep(0.6)  # past the one-minute period in plant time
    after = await device.poll({PollGroup.FAST, PollGroup.SLOW})
    assert after.value("huawei_luna2000", "forcible_command") == "stop"
    assert after.value("huawei_luna2000", "power_w") != 4000


async def test_writes_are_validated_before_anything_is_sent(
    sim: SimulatorServer, device: ModbusDevice
) -> None:
    await device.poll()
    sent = sim.requests_served
    with pytest.raises(WriteRejectedError, match="read-only"):
        await device.write_point("soc_pct", 50)
    with pytest.raises(WriteRejectedError, match=r"outside the limits.*max_charge_power_w"):
        await device.write_point("forcible_charge_power_w", 6000)
    with pytest.raises(WriteRejectedError, match=r"90\.\.100"):
        await device.write_point("charge_cutoff_soc_pct", 50)
    with pytest.raises(WriteRejectedError, match="not a defined value"):
        await device.write_point("forcible_command", 3)
    with pytest.raises(WriteRejectedError, match="ambiguous"):
        await device.write_point("active_power_w", 1)
    assert sim.requests_served == sent


async def test_write_uses_fc06_for_one_register_and_fc16_for_two(device: ModbusDevice) -> None:
    assert (await device.write_point("forcible_period_min", 5)).function_code == 6
    assert (await device.write_point("max_charge_power_setting_w", 2500)).function_code == 16
    assert (await device.write_point("heartbeat", 1, verify=True)).verified is False


async def test_refused_addresses_are_learned_for_the_session(
    sim: SimulatorServer, device: ModbusDevice
) -> None:
    # Firmware that refuses per-unit power and SOC (evcc #31630).
    sim.device.unsupported.update({37001, 37002, 37004})
    first = await device.poll(FAST)
    assert first.readings["huawei_luna2000.unit1_power_w"].available is False
    assert first.readings["huawei_luna2000.unit1_soc_pct"].available is False
    assert first.readings["huawei_luna2000.unit1_temp_c"].value is not None
    assert not first.errors
    second = await device.poll(FAST)
    assert second.requests < first.requests
    assert (
        "huawei_luna2000.unit1_power_w" not in second.readings
        or not second.readings["huawei_luna2000.unit1_power_w"].available
    )
    # A refused hole between points (not a point itself) is learned as well.
    sim.device.unsupported.clear()
    sim.device.unsupported.add(37012)
    fresh_device_first = await device.read_points(device.bound_points(FAST, "huawei_luna2000"))
    assert fresh_device_first.value("huawei_luna2000", "unit1_temp_c") is not None


async def _play(sim: SimulatorServer, event: Event) -> ScenarioRunner:
    runner = ScenarioRunner(Scenario(events=[event]), sim)
    runner.start()
    await asyncio.sleep(0.01)
    return runner


async def test_short_busy_spell_is_retried_through(
    sim: SimulatorServer, device: ModbusDevice
) -> None:
    await device.poll(FAST)
    await _play(sim, Event(at_s=0, fault="busy", duration_s=0.1))
    result = await device.poll(FAST)
    assert not result.errors
    assert device.stats.exceptions_by_code.get(6, 0) >= 1


async def test_long_busy_spell_is_reported_with_device_and_register(
    sim: SimulatorServer, device: ModbusDevice
) -> None:
    await device.poll(FAST)
    await _play(sim, Event(at_s=0, fault="busy", duration_s=1.0))
    result = await device.poll(FAST)
    assert result.errors
    assert "Modbus exception 6 (server device busy)" in result.errors[0]
    assert "device sim" in result.errors[0]
    assert "register 32000" in result.errors[0]
    await asyncio.sleep(1.0)
    assert not (await device.poll(FAST)).errors


async def test_device_failure_exception_is_retried(
    sim: SimulatorServer, device: ModbusDevice
) -> None:
    await device.poll(FAST)
    await _play(sim, Event(at_s=0, fault="exception", code=4, duration_s=0.1))
    assert not (await device.poll(FAST)).errors
    assert device.stats.exceptions_by_code.get(4, 0) >= 1


async def test_silence_times_out_then_recovers(sim: SimulatorServer, device: ModbusDevice) -> None:
    await device.poll(FAST)
    await _play(sim, Event(at_s=0, fault="silence", duration_s=2.0))
    started = time.monotonic()
    with pytest.raises(DeviceTimeoutError) as info:
        await device.poll(FAST)
    assert "device sim" in str(info.value)
    assert "register" in str(info.value)
    assert time.monotonic() - started < 3.0  # bounded: timeout x (1 + retries) + back-off
    await asyncio.sleep(2.0 - (time.monotonic() - started) + 0.1)
    result = await device.poll(FAST)
    assert not result.errors
    assert device.stats.timeouts >= 3


async def test_latency_is_tolerated_below_the_timeout(
    sim: SimulatorServer, device: ModbusDevice
) -> None:
    await device.poll(FAST)
    await _play(sim, Event(at_s=0, fault="latency", latency_s=0.2, duration_s=5))
    started = time.monotonic()
    result = await device.poll(FAST)
    assert not result.errors
    assert time.monotonic() - started >= 0.2 * result.requests


async def test_latency_beyond_the_timeout_is_a_timeout(
    sim: SimulatorServer, device: ModbusDevice
) -> None:
    await device.poll(FAST)
    await _play(sim, Event(at_s=0, fault="latency", latency_s=0.8, duration_s=1.5))
    with pytest.raises(DeviceTimeoutError):
        await device.poll(FAST)
    await asyncio.sleep(1.6)
    assert not (await device.poll(FAST)).errors


async def test_dropped_connection_reconnects(sim: SimulatorServer, device: ModbusDevice) -> None:
    await device.poll(FAST)
    reconnects = device.stats.reconnects
    await _play(sim, Event(at_s=0, fault="drop", duration_s=0.3))
    # Every attempt inside the window is refused; the back-off caps how hard we knock.
    failures = 0
    for _ in range(5):
        try:
            await device.poll(FAST)
        except DeviceError:
            failures += 1
    assert failures >= 1
    await asyncio.sleep(0.8)
    result = await device.poll(FAST)
    assert not result.errors
    assert device.stats.reconnects > reconnects


async def test_a_second_client_takes_the_connection_like_on_a_real_device(
    sim: SimulatorServer, make_device: Callable[..., ModbusDevice]
) -> None:
    first, second = make_device(), make_device()
    try:
        await first.poll(FAST)
        await second.poll(FAST)  # the device closes `first`
        result = await first.poll(FAST)  # which reconnects once and carries on
        assert not result.errors
        assert sim.connections_accepted == 3
    finally:
        await first.close()
        await second.close()


async def test_unit_ids_zero_and_one_answer_others_time_out(
    make_device: Callable[..., ModbusDevice],
) -> None:
    for unit in (0, 1):
        dev = make_device(unit)
        assert (await dev.poll(FAST_AND_SLOW)).value("huawei_luna2000", "soc_pct") is not None
        await dev.close()
    wrong = make_device(100)
    with pytest.raises(DeviceTimeoutError):
        await wrong.poll(FAST)
    await wrong.close()


async def test_unreachable_device_backs_off() -> None:

    dev = ModbusDevice("127.0.0.1", 1, 1, [], FAST_SETTINGS) if False else None
    assert dev is None

    device = ModbusDevice("127.0.0.1", 9, 1, [load_builtin("huawei_dtsu666")], FAST_SETTINGS)
    with pytest.raises(DeviceConnectionError, match=r"cannot connect to 127\.0\.0\.1:9"):
        await device.poll(FAST)
    with pytest.raises(DeviceConnectionError, match="next reconnect attempt in"):
        await device.poll(FAST)


async def test_modbus_exception_error_carries_the_code(
    sim: SimulatorServer, device: ModbusDevice
) -> None:
    with pytest.raises(ModbusExceptionError) as info:
        await device.read_registers(37790, 2)
    assert info.value.code == 2
    assert "register 37790" in str(info.value)


async def test_simulated_battery_follows_the_physics_model_through_modbus_writes(
    sim: SimulatorServer, device: ModbusDevice
) -> None:
    """A forcible discharge written over Modbus drives the physics plant: SOC falls by the energy
    delivered over the discharge efficiency, and the cells warm up on a hot day."""
    sim.device.plant.set_state(soc_pct=90.0, temp_c=35.0, ambient_c=35.0)
    sim.speed = 0
    before = await device.poll(FAST_AND_SLOW)
    soc0 = before.value("huawei_luna2000", "soc_pct")
    temp0 = before.value("huawei_luna2000", "unit1_temp_c")
    for point, value in [
        ("forcible_discharge_power_w", 5000),
        ("forcible_period_min", 120),
        ("forcible_command", "discharge"),
    ]:
        await device.write_point(point, value)
    state0 = sim.device.plant.state
    sim.speed = 1800.0  # half an hour of plant time per wall second
    await asyncio.sleep(1.0)
    sim.speed = 0
    after = await device.poll(FAST_AND_SLOW)
    state1 = sim.device.plant.state
    assert after.value("huawei_luna2000", "power_w") == -5000
    # The registers carry the model's state...
    assert after.value("huawei_luna2000", "soc_pct") == pytest.approx(state1.soc_pct, abs=0.1)
    assert after.value("huawei_luna2000", "unit1_temp_c") == pytest.approx(
        state1.battery_temp_c, abs=0.1
    )
    # ...and the model's SOC moved by the energy delivered over the discharge efficiency.
    delivered_kwh = state1.discharged_kwh - state0.discharged_kwh
    assert delivered_kwh > 2.0
    eta_discharge = sim.device.plant.site.battery_config.discharge_efficiency  # type: ignore[attr-defined]
    expected_drop_pct = 100 * delivered_kwh / eta_discharge / 15.0
    drop_pct = soc0 - after.value("huawei_luna2000", "soc_pct")  # type: ignore[operator]
    assert drop_pct == pytest.approx(expected_drop_pct, rel=0.03)
    assert after.value("huawei_luna2000", "unit1_temp_c") > temp0  # type: ignore[operator]


async def test_a_wrong_unit_id_is_named_after_one_request(
    sim: SimulatorServer, make_device: Callable[..., ModbusDevice]
) -> None:
    wrong = make_device(7)
    expected = (
        f"no answer from unit 7 at 127.0.0.1:{sim.port}: "
        "check the unit id (SDongle 1, inverter access point 0)"
    )
    with pytest.raises(UnitNotAnsweringError) as info:
        await wrong.poll(FAST)
    assert str(info.value) == expected
    assert sim.requests_received[3] == 1  # not retried: one timeout, not four
    # The next poll, within the reconnect back-off, says the same without asking again.
    with pytest.raises(UnitNotAnsweringError, match="check the unit id"):
        await wrong.poll(FAST)
    assert sim.requests_received[3] == 1
    await wrong.close()


async def test_a_gateway_answering_for_a_missing_unit_is_named(
    sim: SimulatorServer, device: ModbusDevice
) -> None:
    sim.faults.exception_code = 11
    sim.faults.exception_until = float("inf")
    with pytest.raises(UnitNotAnsweringError) as info:
        await device.poll(FAST)
    assert "(the gateway answered exception 11, gateway target device failed to respond)" in str(
        info.value
    )
    assert str(info.value).endswith("check the unit id (SDongle 1, inverter access point 0)")


async def test_a_unit_that_answered_once_keeps_the_timeout_and_retries(
    sim: SimulatorServer, device: ModbusDevice
) -> None:
    await device.poll(FAST)
    sim.faults.silence_until = float("inf")
    with pytest.raises(DeviceTimeoutError) as info:
        await device.poll(FAST)
    assert not isinstance(info.value, UnitNotAnsweringError)
    assert device.stats.timeouts == 1 + FAST_SETTINGS.retries


async def test_a_refused_hole_in_the_inverter_block_costs_one_read_more(
    sim: SimulatorServer, device: ModbusDevice
) -> None:
    # The fast read spans 32000-32096 through the PV strings 3-24 of a two-string inverter; a
    # firmware that refused them would be learned, and the plan reads around the hole.
    sim.device.unsupported.update(range(32020, 32064))
    await device.poll()
    result = await device.poll(FAST)
    assert not result.errors
    assert result.requests == 4
    assert result.value("huawei_sun2000", "alarm_1") == ()
    assert result.value("huawei_sun2000", "input_power_w") is not None


async def test_a_verified_write_reaches_the_next_poll(device: ModbusDevice) -> None:
    await device.poll()
    await device.write_point("max_charge_power_setting_w", 2500)
    result = await device.poll(FAST)  # 47075 is a slow point
    reading = result.readings["huawei_luna2000.max_charge_power_setting_w"]
    assert reading.value == 2500
    assert reading.poll_group is PollGroup.SLOW
    assert "huawei_luna2000.max_charge_power_setting_w" not in (await device.poll(FAST)).readings


async def test_a_group_read_asks_only_for_the_static_points_it_depends_on(
    device: ModbusDevice,
) -> None:
    first = await device.poll(FAST, identify=False)
    static = {key for key, r in first.readings.items() if r.point.group is PollGroup.STATIC}
    assert static == {"huawei_sun2000.pv_string_count", "huawei_luna2000.unit2_product_model"}
    assert first.requests == 2 + 3
    assert "huawei_sun2000.pv3_voltage_v" not in first.readings  # two strings
    # A poll that identifies the device still reads the whole static group once.
    second = await device.poll(FAST)
    assert second.value("huawei_sun2000", "model_name") == "SUN2000-10KTL-M1"
    third = await device.poll(FAST)
    assert all(r.point.group is not PollGroup.STATIC for r in third.readings.values())
