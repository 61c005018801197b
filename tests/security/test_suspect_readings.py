"""Readings the monitor flags as false do not feed the optimizer: the planner waits for trusted
ones."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bessai.config import OptimizerConfig
from bessai.control.audit import AuditLog
from bessai.control.planner import SchedulePlanner
from bessai.control.site import SiteRunner
from bessai.control.watch import SecurityAssessment
from bessai.devices.base import Acquisition
from bessai.devices.registry import open_device
from bessai.simulator.server import SimulatorServer
from tests.conftest import FAST_SETTINGS
from tests.control.conftest import site_config

REPLAY = OptimizerConfig(enabled=True, prices="builtin:crucero-2023", replay=True)


class Flags:
    """An assessor that flags the SOC while `suspect` is set (the monitor's physics checks do
    this on a falsified SOC; `test_foreign_write` runs the real monitor)."""

    suspect: tuple[str, ...] = ("soc_pct",)

    async def assess(self, cycle: int, acquired: Acquisition) -> SecurityAssessment:
        return SecurityAssessment(suspect=self.suspect)

    def status(self) -> Mapping[str, object]:
        return {}


async def test_the_planner_does_not_plan_from_a_suspect_soc(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    config = site_config(sim.port)
    audit = AuditLog(tmp_path / "audit.sqlite")
    runner = SiteRunner(config, open_device(config, FAST_SETTINGS), audit)
    flags = Flags()
    runner.assessor = flags
    planner = SchedulePlanner(runner, REPLAY)
    try:
        record = await runner.step()
        assert record.security is not None
        assert record.security.suspect == ("soc_pct",)
        assert await planner.replan() is None
        flags.suspect = ()
        await runner.step()
        assert await planner.replan() is not None
    finally:
        await runner.device.close()
        audit.close()
