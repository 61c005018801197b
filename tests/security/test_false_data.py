"""False data through a man-in-the-middle: the trained monitor flags the falsified SOC within a
few cycles and keeps it from the planner; the learned parts never saw an attack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bessai.control.audit import AuditLog
from bessai.control.site import SiteRunner
from bessai.devices.registry import open_device
from bessai.security.attack.mitm import MitmProxy
from bessai.security.wiring import attach
from bessai.simulator.device import SimulatedHybrid
from bessai.simulator.plant import PhysicsPlant, PlantConfig
from bessai.simulator.server import SimulatorServer
from tests.conftest import FAST_SETTINGS, NOON_UTC
from tests.control.conftest import site_config


async def test_a_soc_bias_is_flagged_and_kept_from_the_planner(tmp_path: Path) -> None:
    plant = PhysicsPlant(PlantConfig(initial_soc_pct=50.0), now=NOON_UTC)
    sim = SimulatorServer(SimulatedHybrid(plant, start=NOON_UTC), port=0, speed=0.0)
    await sim.start()
    mitm = MitmProxy(("127.0.0.1", sim.port))
    await mitm.start()
    config = site_config(mitm.port, cycle_s=5.0, safety={"stale_after_s": 15.0},
                         security={"train_cycles": 40})  # fmt: skip
    audit = AuditLog(tmp_path / "audit.sqlite")
    runner = SiteRunner(config, open_device(config, FAST_SETTINGS), audit)
    monitor = attach(runner, clock=lambda: sim.device.now.timestamp())
    assert monitor is not None

    async def cycle() -> list[str]:
        sim.device.advance(sim.device.now + timedelta(seconds=5))
        record = await runner.step()
        assert record.security is not None
        return [a.kind for a in record.security.alerts]

    try:
        runner.override.set(3000, datetime.now(UTC), 600, "charge")
        for _ in range(45):  # training (benign), then armed
            assert "physics" not in await cycle()
        assert not monitor.scorer.learning
        mitm.start_attack("bias", "soc", 6.0)
        kinds: list[str] = []
        for _ in range(3):
            kinds = await cycle()
            if "physics" in kinds:
                break
        assert "physics" in kinds, "falsified SOC not flagged within 3 cycles"
        last = runner.last
        assert last is not None
        assert last.security is not None
        assert "soc_pct" in last.security.suspect
    finally:
        await runner.device.close()
        audit.close()
        await mitm.stop()
        await sim.stop()
