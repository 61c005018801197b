"""Acquisition as the cycle sees it, against the simulator over loopback TCP: the requests a
steady cycle costs on the wire, slow values that stay usable between slow polls, a written limit
that reaches the guard, a second battery unit's temperature, and a wrong unit id."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from structlog.testing import capture_logs

from bessai.api.app import create_app
from bessai.config import Config, SiteConfig
from bessai.control.safety import Outcome
from bessai.control.site import SiteRunner
from bessai.devices.huawei import HuaweiHybrid
from bessai.modbus.profile import PollGroup
from bessai.runtime.service import Runtime
from bessai.simulator.server import SimulatorServer

from .conftest import site_config

SLOW_EVERY = SiteConfig.model_fields["slow_every"].default
READ = 3  # function code


async def test_a_steady_cycle_costs_what_the_plan_says_on_the_wire(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner]
) -> None:
    runner = make_runner(slow_every=SLOW_EVERY)
    await runner.step()  # identification and the start-up writes
    reads, writes = sim.requests_received[READ], sim.requests_received.total()
    cycles = 2 * SLOW_EVERY
    for _ in range(cycles):
        record = await runner.step()
        assert not record.errors
    per_cycle = (sim.requests_received[READ] - reads) / cycles
    assert sim.requests_received.total() - writes == sim.requests_received[READ] - reads
    device = runner.device
    assert isinstance(device, HuaweiHybrid)
    fast = len(device.modbus.plan({PollGroup.FAST}))
    slow = len(device.modbus.plan({PollGroup.FAST, PollGroup.SLOW}))
    assert per_cycle == ((SLOW_EVERY - 1) * fast + slow) / SLOW_EVERY
    assert per_cycle <= 4.0


async def test_slow_values_stay_usable_between_slow_polls(
    make_runner: Callable[..., SiteRunner],
) -> None:
    # Slow values are read every 12 cycles, far apart compared with the 0.6 s fast window.
    runner = make_runner(slow_every=12, cycle_s=0.2, safety={"stale_after_s": 0.6})
    started = time.monotonic()
    for _ in range(12):  # the first cycle reads everything; the 13th would be the next slow one
        m = (await runner.step()).measurements
        assert m.max_charge_w == 5000
        assert m.max_discharge_w == 5000
        assert m.charge_limit_setting_w == 5000
        assert m.discharge_limit_setting_w == 5000
        assert m.capacity_wh == 15000
        assert m.soc_pct is not None
        assert m.battery_power_w is not None
        await asyncio.sleep(0.1)
    assert time.monotonic() - started > 2 * 0.6  # well past the fast window


async def test_a_written_limit_reaches_the_guard_on_the_next_cycle(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner]
) -> None:
    runner = make_runner(slow_every=12)
    await runner.step()
    device = runner.device
    assert isinstance(device, HuaweiHybrid)
    await device.modbus.write_point("max_charge_power_setting_w", 0)
    record = await runner.step()  # a fast cycle: 47075 is not polled in it
    assert record.measurements.charge_limit_setting_w == 0
    assert runner.guard.power_limit_w(record.measurements, charging=True) == (
        0,
        "device setting 47075",
    )


async def test_a_hot_second_unit_blocks_within_one_cycle(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner]
) -> None:
    sim.device.set("unit2_product_model", 2)
    runner = make_runner(slow_every=12)
    runner.override.set(-2000, datetime.now(UTC), 60, "discharge")
    first = await runner.step()
    assert first.decision.outcome is Outcome.ALLOWED
    assert first.measurements.soc_pct == sim.device.get("soc_pct")  # the storage system's
    sim.device.overrides["unit2_temp_c"] = 52.0
    await asyncio.sleep(0.25)  # one simulator tick applies the override
    hot = await runner.step()  # a fast cycle
    assert hot.decision.outcome is Outcome.BLOCKED
    assert "52.0 °C" in hot.decision.reason
    assert sim.device.get("forcible_command") == "stop"


async def test_a_wrong_unit_id_is_named_within_one_timeout(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    site = site_config(sim.port).model_dump()
    site["devices"][0].update(unit_id=7, timeout_s=1.0, wait_after_connect_s=0.1, retries=3)
    config = Config.model_validate({"gateway": {"data_dir": str(tmp_path)}, "sites": [site]})
    expected = f"no answer from unit 7 at 127.0.0.1:{sim.port}: check the unit id"
    runtime = Runtime(config)
    with capture_logs() as logs:
        await runtime.start()
        try:
            runner = runtime.gateway.sites["t1"]
            first_cycle = asyncio.Event()
            runner.listeners.append(lambda _record: first_cycle.set())
            started = time.monotonic()
            await asyncio.wait_for(first_cycle.wait(), timeout=10.0)
            # One timeout (1 s) after the wait, where 3 retries would take over 4 s: a unit that
            # never answered is not retried.
            assert time.monotonic() - started < 2.5
            assert runner.last is not None
            assert runner.last.errors[0].startswith(expected)
            assert runner.last.errors[0].endswith("(SDongle 1, inverter access point 0)")
            await asyncio.sleep(2.0)  # more cycles, and a reconnect after the back-off
            assert runner.counters.cycles > 3
            transport = httpx.ASGITransport(app=create_app(runtime.monitor))
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                body = (await client.get("/health")).json()
            offline = [a for a in runtime.monitor.alerts.active() if a.kind == "device_offline"]
        finally:
            await runtime.stop()
    assert any(reason.startswith(f"t1: {expected}") for reason in body["reasons"]), body
    assert [a.message.startswith(expected) for a in offline] == [True]
    assert sim.requests_received[READ] >= 2  # it did ask again, after the back-off
    said = [e for e in logs if str(e.get("event", "")).startswith("no answer from unit 7")]
    assert len(said) == 1
    assert sum(1 for e in logs if e.get("event") == "connected" and e["log_level"] == "info") == 1
