"""`bessai run` wires the monitor: a rogue client's write shows in /metrics and /api/v1/status."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from bessai.api.app import create_app
from bessai.config import Config
from bessai.runtime.service import Runtime
from bessai.security.attack.rogue import Target, inject
from bessai.simulator.server import SimulatorServer
from tests.control.conftest import site_config


async def test_a_foreign_write_shows_in_metrics_and_status(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    site = site_config(sim.port).model_dump()
    config = Config.model_validate(
        {"gateway": {"data_dir": str(tmp_path / "gw")}, "sites": [site], "api": {"dev_mode": True}}
    )
    runtime = Runtime(config)
    await runtime.start()
    try:
        runner = runtime.gateway.sites["t1"]
        assert runner.assessor is not None
        for _ in range(100):
            if runner.last is not None and runner.last.cycle >= 4:
                break
            await asyncio.sleep(0.05)
        await inject(Target("127.0.0.1", sim.port, 1), "mode_change")
        for _ in range(60):
            await asyncio.sleep(0.05)
            if runner.last is not None and runner.last.safety_state.value == "safe":
                break
        assert sim.device.get("working_mode_setting") != "fully fed to grid"
        transport = httpx.ASGITransport(app=create_app(runtime.monitor))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            metrics = (await client.get("/metrics")).text
            status = (await client.get("/api/v1/sites/t1/status")).json()
        assert 'ids_alerts_total{kind="foreign_write",site="t1"}' in metrics
        security = status["security"]
        assert security["alerts_by_kind"]["foreign_write"] >= 1
        alert = next(a for a in security["recent"] if a["kind"] == "foreign_write")
        assert alert["evidence"]["register"] == 47086
        assert alert["evidence"]["seen"] == "fully fed to grid"
        assert status["safety"]["state"] == "safe"
        # The operator's alert list (and its webhook) has it too, critical: it was acted on.
        alerts = runtime.monitor.alerts.active("t1") + runtime.monitor.alerts.recent(site="t1")
        security = [a for a in alerts if a.kind == "security"]
        assert security
        assert security[0].subject == "foreign_write"
        assert security[0].severity.value == "critical"
        assert "47086" in security[0].message
    finally:
        await runtime.stop()
