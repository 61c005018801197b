"""Gateway fixtures: a site config pointing at the test simulator, tuned for fast cycles."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bessai.config import SiteConfig
from bessai.control.audit import AuditLog
from bessai.control.site import SiteRunner
from bessai.devices.registry import open_device
from bessai.simulator.server import SimulatorServer
from tests.conftest import FAST_SETTINGS


def site_config(port: int, **overrides: Any) -> SiteConfig:
    data: dict[str, Any] = {
        "id": "t1",
        "cycle_s": 0.2,
        "slow_every": 5,
        "devices": [
            {
                "host": "127.0.0.1",
                "port": port,
                "unit_id": 1,
                "timeout_s": 0.5,
                "wait_after_connect_s": 0.05,
                "cooldown_s": 0.0,
                "retries": 1,
            }
        ],
        "battery": {"capacity_kwh": 15, "max_charge_w": 5000, "max_discharge_w": 5000},
        "safety": {"stale_after_s": 1.0, "recovery_cycles": 2},
        "dispatch": {"forcible_period_min": 2, "refresh_s": 30},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return SiteConfig.model_validate(data)


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    log = AuditLog(tmp_path / "audit.sqlite")
    yield log  # type: ignore[misc]
    log.close()


@pytest.fixture
async def make_runner(
    sim: SimulatorServer, audit: AuditLog
) -> AsyncIterator[Callable[..., SiteRunner]]:
    runners: list[SiteRunner] = []

    def factory(**overrides: Any) -> SiteRunner:
        config = site_config(sim.port, **overrides)
        runner = SiteRunner(config, open_device(config, FAST_SETTINGS), audit)
        runners.append(runner)
        return runner

    yield factory
    for runner in runners:
        await runner.device.close()
