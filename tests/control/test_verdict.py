"""One safety verdict: the API override and the cycle reach the device through the same decision.

The cycle runs here on a fake device (no Modbus): the same state is put in front of both paths
and both must answer alike, for every kind of state the verdict distinguishes."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bessai.api.app import create_app
from bessai.api.keys import KeyStore, Role
from bessai.config import Config, SiteConfig
from bessai.control.gateway import Gateway
from bessai.control.site import SiteMode
from bessai.devices.base import Measurements
from bessai.observe.metrics import GatewayMetrics
from bessai.observe.monitor import Monitor
from bessai.telemetry.pipeline import TelemetryPipeline
from tests.devices.fake import FakeDevice

NORMAL = Measurements(
    soc_pct=50.0, battery_power_w=0.0, battery_temp_c=25.0, grid_power_w=300.0, alarms_known=True
)


@dataclasses.dataclass
class Harness:
    gateway: Gateway
    device: FakeDevice
    client: httpx.AsyncClient
    headers: dict[str, str]


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    config = Config.model_validate(
        {
            "gateway": {"data_dir": str(tmp_path)},
            "telemetry": {"outbox_path": str(tmp_path / "outbox.sqlite")},
            "sites": [
                {
                    "id": "f1",
                    "battery": {"max_charge_w": 5000, "max_discharge_w": 4000},
                    "safety": {"grid_import_max_w": 6000, "stale_after_s": 5.0},
                }
            ],
        }
    )
    devices: list[FakeDevice] = []

    def factory(site: SiteConfig) -> FakeDevice:
        devices.append(FakeDevice(site.id, NORMAL))
        return devices[-1]

    gateway = Gateway(config, factory)
    telemetry = TelemetryPipeline(config.telemetry)
    await telemetry.start()
    monitor = Monitor(gateway, telemetry, GatewayMetrics(), config.alerts)
    key = KeyStore(config.keys_file).add("ops", Role.CONTROL)
    transport = httpx.ASGITransport(app=create_app(monitor), client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield Harness(gateway, devices[0], client, {"X-API-Key": key})
    await telemetry.stop()
    gateway.audit.close()


async def _api_verdict(h: Harness, requested_w: float) -> dict[str, Any]:
    r = await h.client.post(
        "/api/v1/sites/f1/override",
        json={"setpoint_w": requested_w, "duration_s": 60},
        headers=h.headers,
    )
    assert r.status_code in (200, 409), r.text
    body = r.json()
    await h.gateway.sites["f1"].clear_override()
    return {k: body[k] for k in ("outcome", "setpoint_w", "reason", "binding_limit")}


async def _cycle_verdict(h: Harness, requested_w: float) -> dict[str, Any]:
    site = h.gateway.sites["f1"]
    # The same request, reaching the cycle as a controller's proposal.
    site.override.set(requested_w, datetime.now(UTC), 60, "parity")
    record = await site.step()
    site.override.clear()
    d = record.decision
    return {
        "outcome": d.outcome.value,
        "setpoint_w": d.setpoint_w,
        "reason": d.reason,
        "binding_limit": d.binding_limit,
    }


STATES: dict[str, Callable[[Harness], Any]] = {
    "normal": lambda h: None,
    "hot": lambda h: setattr(
        h.device, "measurements", dataclasses.replace(NORMAL, battery_temp_c=52.0)
    ),
    "full": lambda h: setattr(h.device, "measurements", dataclasses.replace(NORMAL, soc_pct=99)),
    "device limit": lambda h: setattr(
        h.device, "measurements", dataclasses.replace(NORMAL, max_charge_w=2500.0)
    ),
    "grid limit": lambda h: setattr(
        h.device, "measurements", dataclasses.replace(NORMAL, grid_power_w=4000.0)
    ),
    "temperature missing": lambda h: setattr(
        h.device, "measurements", dataclasses.replace(NORMAL, battery_temp_c=None)
    ),
    "operator safe": lambda h: setattr(h.gateway.sites["f1"], "mode", SiteMode.SAFE),
}


@pytest.mark.parametrize("state", list(STATES))
@pytest.mark.parametrize("requested_w", [4500.0, -4500.0, 0.0])
async def test_api_and_cycle_give_the_same_verdict(
    harness: Harness, state: str, requested_w: float
) -> None:
    site = harness.gateway.sites["f1"]
    STATES[state](harness)
    await site.step()  # the cycle sees the state: latches and measurements as the API will
    api = await _api_verdict(harness, requested_w)
    cycle = await _cycle_verdict(harness, requested_w)
    assert api == cycle, state
    if state == "normal" and requested_w:
        assert api["outcome"] in ("allowed", "clamped")
    if state in ("hot", "operator safe") and requested_w:
        assert api["outcome"] == "blocked"


async def test_the_device_never_sees_a_setpoint_the_verdict_did_not_pass(
    harness: Harness,
) -> None:
    site = harness.gateway.sites["f1"]
    harness.device.measurements = dataclasses.replace(NORMAL, soc_pct=99.0)
    await site.step()
    r = await harness.client.post(
        "/api/v1/sites/f1/override", json={"setpoint_w": 3000}, headers=harness.headers
    )
    assert r.status_code == 409  # charging a full battery: blocked, not installed
    site.override.set(3000, datetime.now(UTC), 60, "bypassing the API")
    await site.step()
    assert all(setpoint <= 0 for setpoint, _ in harness.device.applied)
    assert harness.device.block.charge  # and the device holds the charging direction
