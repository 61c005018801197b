"""A foreign write to a control register, by a rogue client on the simulator, is detected within
two cycles; the gateway's values are restored and the site goes to SAFE, judged at the device."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from bessai.control.audit import AuditLog
from bessai.control.safety import SafetyState
from bessai.control.site import CycleRecord, SiteRunner
from bessai.devices.registry import open_device
from bessai.security.attack.rogue import Target, inject
from bessai.security.wiring import attach
from bessai.simulator.server import SimulatorServer
from tests.conftest import FAST_SETTINGS
from tests.control.conftest import site_config


def foreign(record: CycleRecord) -> list[str]:
    security = record.security
    assert security is not None
    return [a.check for a in security.alerts if a.kind == "foreign_write"]


async def test_forcible_charge_by_a_rogue_client_is_undone_within_two_cycles(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    config = site_config(sim.port, security={"on_foreign_write": "safe", "safe_hold_cycles": 3})
    audit = AuditLog(tmp_path / "audit.sqlite")
    runner = SiteRunner(config, open_device(config, FAST_SETTINGS), audit)
    monitor = attach(runner)
    assert monitor is not None
    try:
        for _ in range(4):  # both control blocks read once: the gateway's values are known
            record = await runner.step()
            assert not foreign(record)
        device = sim.device
        own_power = device.raw("forcible_charge_power_w")
        assert device.raw("forcible_command") == 0

        await inject(Target("127.0.0.1", sim.port, 1), "forcible_charge")
        sim.device.advance(sim.device.now + timedelta(seconds=5))
        assert device.raw("forcible_command") == 1
        assert device.plant.state.battery_power_w > 1000  # the attack moves the battery

        detected_at = None
        for cycle in (1, 2):
            record = await runner.step()
            if foreign(record):
                detected_at = cycle
                break
        assert detected_at is not None, "no foreign-write alert within 2 cycles"
        assert record.safety_state is SafetyState.SAFE
        assert record.failsafe_reason is not None
        assert "foreign write" in record.failsafe_reason
        # The restore and the stop are the gateway's writes, audited and verified.
        assert any(w.address == 47100 and w.value in (0, "stop") for w in record.writes)
        assert all(w.verified for w in record.writes)
        # At the device: the registers hold the gateway's values again and the battery obeys.
        assert device.raw("forcible_command") == 0
        assert device.raw("forcible_charge_power_w") == own_power
        sim.device.advance(sim.device.now + timedelta(seconds=5))
        assert abs(device.plant.state.battery_power_w) < 1.0
        # SAFE is held for the configured cycles, then the site recovers.
        for _ in range(3 + config.safety.recovery_cycles + 1):
            record = await runner.step()
            await asyncio.sleep(0)
        assert record.safety_state is not SafetyState.SAFE
        assert monitor.state.alerts_by_kind["foreign_write"] >= 1
    finally:
        await runner.device.close()
        audit.close()
