"""huawei-solar, the library Home Assistant's huawei_solar integration uses, against the proxy
while the gateway cycles: its own set-up (identity, PV strings, battery, meter, time zone), its
own batching, its login, its write-permission probe and the forcible discharge the integration
writes. huawei-solar is AGPL-3.0: a test-only dependency, never imported by the product."""

from __future__ import annotations

import ast
import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bessai.control.site import SiteRunner
from bessai.devices.huawei import HuaweiHybrid
from bessai.modbus.profile import PollGroup
from bessai.proxy import ProxyServer
from bessai.simulator.server import SimulatorServer

huawei_solar = pytest.importorskip("huawei_solar")
from huawei_solar import (  # noqa: E402
    HuaweiSolarBridge,
    InvalidCredentials,
    create_tcp_bridge,
)
from huawei_solar import register_names as rn  # noqa: E402
from huawei_solar.registers import REGISTERS, TargetDevice  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"
READ = 3
SLOW_EVERY = 12


@pytest.fixture
async def cycling(make_runner: Callable[..., SiteRunner]) -> AsyncIterator[SiteRunner]:
    runner = make_runner(slow_every=SLOW_EVERY, cycle_s=0.1)
    await runner.step()
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    yield runner
    stop.set()
    await task


@pytest.fixture
async def bridges() -> AsyncIterator[Callable[..., Any]]:
    opened: list[HuaweiSolarBridge] = []

    async def open_bridge(proxy: ProxyServer, unit_id: int = 1) -> HuaweiSolarBridge:
        bridge = await create_tcp_bridge("127.0.0.1", proxy.port, unit_id)
        opened.append(bridge)
        return bridge

    yield open_bridge
    for bridge in opened:
        await bridge.stop()


def _served_names(runner: SiteRunner) -> list[str]:
    """huawei-solar's readable inverter registers that lie inside points the gateway polls."""
    device = runner.device
    assert isinstance(device, HuaweiHybrid)
    polled = {
        address
        for bp in device.modbus.bound_points()
        for address in range(bp.point.address, bp.point.end)
    }
    inside = sorted(
        (reg.register, name)
        for name, reg in REGISTERS.items()
        if reg.readable
        and TargetDevice.SUN2000 in reg.target_device
        and set(range(reg.register, reg.register + reg.length)) <= polled
    )
    names, end = [], 0
    for address, name in inside:  # one name per register (it has aliases), in order
        if address >= end:
            names.append(name)
            end = address + REGISTERS[name].length
    return names


def test_the_product_never_imports_huawei_solar() -> None:
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.split(".")[0] == "huawei_solar" for n in names), path


async def test_huawei_solar_sets_up_and_reads_through_the_proxy_as_from_the_device(
    sim: SimulatorServer,
    cycling: SiteRunner,
    make_proxy: Callable[..., Any],
    bridges: Callable[..., Any],
) -> None:
    proxy = await make_proxy(cycling, client_requests_per_s=1000)
    bridge = await bridges(proxy)
    assert bridge.model_name == "SUN2000-10KTL-M1"
    assert bridge.serial_number == "HV2150012345"
    assert bridge.pv_string_count == 2
    assert bridge.battery_type.name == "HUAWEI_LUNA2000"
    assert bridge.power_meter_online
    names = _served_names(cycling)
    assert len(names) > 80
    device = cycling.device
    assert isinstance(device, HuaweiHybrid)
    fast = len(device.modbus.plan({PollGroup.FAST}))
    slow = len(device.modbus.plan({PollGroup.FAST, PollGroup.SLOW}))

    received: list[Counter[int]] = []
    reads_before = proxy.reader.reads
    cycling.listeners.append(lambda _r: received.append(sim.requests_received.copy()))
    values: dict[str, Any] = {}
    while len(received) < SLOW_EVERY + 1:
        values = await bridge.batch_update(names)  # its own batches: 64 registers, gaps < 16
    on_wire = received[SLOW_EVERY] - received[0]
    assert on_wire[READ] / SLOW_EVERY == ((SLOW_EVERY - 1) * fast + slow) / SLOW_EVERY
    assert proxy.reader.reads == reads_before  # all of it from the cycle's reads
    assert set(values) == set(names)
    image = cycling.last
    assert image is not None
    assert values[rn.STORAGE_STATE_OF_CAPACITY].value == pytest.approx(
        image.image.get("huawei_luna2000.soc_pct").value, abs=0.1
    )
    assert values[rn.RATED_POWER].value == 10_000


async def test_huawei_solar_logs_in_and_a_writer_passes_its_write_probe(
    cycling: SiteRunner, make_proxy: Callable[..., Any], bridges: Callable[..., Any]
) -> None:
    read_only = await make_proxy(cycling, login_password="s3cret")
    bridge = await bridges(read_only)
    assert await bridge.login("installer", "s3cret")
    with pytest.raises(InvalidCredentials):
        await bridge.login("installer", "00000a")
    assert not await bridge.has_write_permission()
    writer = await make_proxy(cycling, writers=[{"client": "127.0.0.1"}])
    writing = await bridges(writer)
    assert await writing.has_write_permission()
    identifiers = await writing.client.get_device_identifiers()
    assert identifiers.vendor == "HUAWEI"
    assert identifiers.product_code == "SUN2000-10KTL-M1"
    (info,) = await writing.client.get_device_infos()
    assert info.model == "SUN2000-10KTL-M1"
    assert info.esn == "HV2150012345"


async def test_the_integrations_forcible_discharge_becomes_a_guarded_override(
    sim: SimulatorServer,
    cycling: SiteRunner,
    make_proxy: Callable[..., Any],
    bridges: Callable[..., Any],
) -> None:
    proxy = await make_proxy(cycling, writers=[{"client": "127.0.0.1"}])
    bridge = await bridges(proxy)
    # What the integration's forcible_discharge service writes, in its order.
    assert await bridge.set(rn.STORAGE_FORCIBLE_DISCHARGE_POWER, 2500)
    assert await bridge.set(rn.STORAGE_FORCED_CHARGING_AND_DISCHARGING_PERIOD, 20)
    assert await bridge.set(rn.STORAGE_FORCIBLE_CHARGE_DISCHARGE_SETTING_MODE, 0)
    assert await bridge.set(rn.STORAGE_FORCIBLE_CHARGE_DISCHARGE_WRITE, 2)
    assert cycling.override.setpoint_w == -2500
    rows = [r for r in cycling.audit.query(limit=20) if r["controller"] == "proxy:127.0.0.1"]
    assert [r["outcome"] for r in rows] == ["allowed"]
    deadline = asyncio.get_running_loop().time() + 5
    while sim.device.get("forcible_command") != "discharge":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    assert sim.device.get("forcible_discharge_power_w") == 2500
    # Its stop service: the command first, then the settings back to 0.
    assert await bridge.set(rn.STORAGE_FORCIBLE_CHARGE_DISCHARGE_WRITE, 0)
    assert await bridge.set(rn.STORAGE_FORCIBLE_DISCHARGE_POWER, 0)
    assert await bridge.set(rn.STORAGE_FORCED_CHARGING_AND_DISCHARGING_PERIOD, 0)
    assert cycling.override.setpoint_w is None
