"""Writes through the proxy: a client's forcible sequence becomes a manual override from
`proxy:<address>`, judged by the same verdict as the API override and audited with the client's
address; refused writes get the device's exception codes; nothing else reaches the device unless
an operator allowed it for that client."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymodbus.client import AsyncModbusTcpClient

from bessai.api.app import create_app
from bessai.config import Config
from bessai.control.site import SiteRunner
from bessai.errors import ConfigError
from bessai.runtime.service import Runtime
from bessai.simulator.server import SimulatorServer
from tests.control.conftest import site_config

from .clients import code_of, sample, wait_for

WRITER = {"writers": [{"client": "127.0.0.1"}]}
WRITE_SINGLE, WRITE_MULTIPLE = 6, 16


def proxy_rows(runner: SiteRunner) -> list[dict[str, Any]]:
    return [r for r in runner.audit.query(limit=100) if r["controller"].startswith("proxy:")][::-1]


async def forcible(
    client: AsyncModbusTcpClient, command: int, power_w: int, period_min: int = 30
) -> list[int | None]:
    """Home Assistant's huawei_solar sequence: power, period, mode (time), command."""
    power_register = 47247 if command == 1 else 47249
    answers = [
        await client.write_registers(power_register, [power_w >> 16, power_w & 0xFFFF]),
        await client.write_register(47083, period_min),
        await client.write_register(47246, 0),
        await client.write_register(47100, command),
    ]
    return [code_of(a) for a in answers]


# -- the same verdict as the API, through a running gateway -----------------------------------


@pytest.fixture
async def gateway(sim: SimulatorServer, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    runtimes: list[Runtime] = []

    async def start(proxy: dict[str, Any], **site: Any) -> Runtime:
        data_dir = tmp_path / f"gw{len(runtimes)}"
        config = Config.model_validate(
            {
                "gateway": {"data_dir": str(data_dir)},
                "telemetry": {"outbox_path": str(data_dir / "outbox.sqlite")},
                "api": {"dev_mode": True},
                "proxy": {"enabled": True, "port": 0, **proxy},
                "sites": [site_config(sim.port, **site).model_dump()],
            }
        )
        runtime = Runtime(config)
        runtimes.append(runtime)
        await runtime.start()
        cycled = asyncio.Event()
        runtime.gateway.sites["t1"].listeners.append(lambda _r: cycled.set())
        await asyncio.wait_for(cycled.wait(), timeout=10)
        return runtime

    yield start
    for runtime in runtimes:
        await runtime.stop()


async def _api_override(runtime: Runtime, setpoint_w: float, duration_s: float) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(runtime.monitor))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as api:
        return await api.post(
            "/api/v1/sites/t1/override", json={"setpoint_w": setpoint_w, "duration_s": duration_s}
        )


def _judged(row: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("requested_w", "setpoint_w", "outcome", "guard_reason", "binding_limit")
    return tuple(row[k] for k in keys)


async def test_a_clients_discharge_beyond_a_limit_is_clamped_as_the_api_override_is(
    sim: SimulatorServer, gateway: Callable[..., Any]
) -> None:
    runtime = await gateway(WRITER, battery={"max_discharge_w": 3000})
    runner = runtime.gateway.sites["t1"]
    assert runtime.proxy is not None
    client = AsyncModbusTcpClient("127.0.0.1", port=runtime.proxy.port, timeout=2, retries=0)
    assert await client.connect()
    try:
        assert await forcible(client, command=2, power_w=4500, period_min=30) == [None] * 4
    finally:
        client.close()
    assert runner.override.setpoint_w == -3000
    (row,) = proxy_rows(runner)
    assert row["controller"] == "proxy:127.0.0.1"
    assert "127.0.0.1" in row["reason"]
    assert row["reason"].startswith("forcible discharge 4500 W for 30 min")

    response = await _api_override(runtime, -4500, 1800)
    assert response.status_code == 200
    api_row = next(r for r in runner.audit.query(limit=10) if r["controller"] == "api")
    assert _judged(row) == _judged(api_row)
    assert _judged(row) == (-4500, -3000, "clamped", row["guard_reason"], row["binding_limit"])
    assert row["binding_limit"] == "battery.max_discharge_w = 3000 W"
    assert response.json()["setpoint_w"] == runner.override.setpoint_w == -3000
    # The clamped setpoint is what reaches the device, on the next cycles.
    await wait_for(lambda: sim.device.get("forcible_command") == "discharge")
    assert sim.device.get("forcible_discharge_power_w") == 3000


async def test_a_blocked_discharge_is_refused_with_exception_4_as_the_api_refuses_it(
    gateway: Callable[..., Any],
) -> None:
    runtime = await gateway(WRITER, safety={"soc_min_pct": 60.0, "stale_after_s": 1.0})
    runner = runtime.gateway.sites["t1"]
    assert runtime.proxy is not None
    client = AsyncModbusTcpClient("127.0.0.1", port=runtime.proxy.port, timeout=2, retries=0)
    assert await client.connect()
    try:
        answers = await forcible(client, command=2, power_w=2000)
    finally:
        client.close()
    # The settings are taken as on the device; the command is what the site cannot run now.
    assert answers == [None, None, None, 4]
    assert runner.override.setpoint_w is None
    (row,) = proxy_rows(runner)
    response = await _api_override(runtime, -2000, 1800)
    assert response.status_code == 409
    api_row = next(r for r in runner.audit.query(limit=10) if r["controller"] == "api")
    assert _judged(row) == _judged(api_row)
    assert row["outcome"] == "blocked"
    assert "SOC" in row["guard_reason"]
    assert runner.override.setpoint_w is None
    registry = runtime.metrics.registry
    assert sample(registry, "bessai_proxy_writes_total", outcome="refused", code="4") == 1


# -- lighter: a site stepped by the test, the proxy in front --------------------------------


async def test_a_read_only_client_writes_nothing(
    sim: SimulatorServer,
    runner: SiteRunner,
    make_proxy: Callable[..., Any],
    connect: Callable[..., Any],
) -> None:
    proxy = await make_proxy(runner)
    client = await connect(proxy)
    await runner.step()
    writes = sim.requests_received[WRITE_SINGLE] + sim.requests_received[WRITE_MULTIPLE]
    assert await forcible(client, command=2, power_w=2000) == [2, 2, 2, 2]
    tz = await client.read_holding_registers(43006, count=1, device_id=1)
    probe = await client.write_register(43006, tz.registers[0], device_id=1)
    assert code_of(probe) == 2  # huawei-solar's write probe: "no permission", as on the device
    assert code_of(await client.write_register(49999, 1, device_id=1)) is None  # heartbeat
    assert runner.override.setpoint_w is None
    assert proxy_rows(runner) == []
    assert sim.requests_received[WRITE_SINGLE] + sim.requests_received[WRITE_MULTIPLE] == writes
    registry = proxy.metrics.registry
    assert sample(registry, "bessai_proxy_writes_total", outcome="refused", code="2") == 5


async def test_the_write_permission_probe_passes_for_a_writer_without_writing(
    sim: SimulatorServer,
    runner: SiteRunner,
    make_proxy: Callable[..., Any],
    connect: Callable[..., Any],
) -> None:
    proxy = await make_proxy(runner, **WRITER)
    client = await connect(proxy)
    await runner.step()
    writes = sim.requests_received[WRITE_SINGLE]
    tz = await client.read_holding_registers(43006, count=1, device_id=1)
    assert code_of(await client.write_register(43006, tz.registers[0], device_id=1)) is None
    assert code_of(await client.write_register(43006, tz.registers[0] + 60, device_id=1)) == 2
    assert sim.requests_received[WRITE_SINGLE] == writes


async def test_beyond_the_device_capability_is_an_illegal_value_as_on_the_device(
    runner: SiteRunner, make_proxy: Callable[..., Any], connect: Callable[..., Any]
) -> None:
    proxy = await make_proxy(runner, **WRITER)
    client = await connect(proxy)
    await runner.step()
    # 37048 (what the battery can give) is 5000 W: the device refuses more with exception 3.
    assert await forcible(client, command=2, power_w=9000) == [3, None, None, None]
    assert await client.write_register(47100, 7, device_id=1) is not None
    assert code_of(await client.write_register(47100, 7, device_id=1)) == 3  # not an enum value


async def test_a_stop_ends_the_clients_own_override_never_anothers(
    sim: SimulatorServer,
    runner: SiteRunner,
    make_proxy: Callable[..., Any],
    connect: Callable[..., Any],
) -> None:
    proxy = await make_proxy(runner, writers=[{"client": "127.0.0.0/8"}])
    first = await connect(proxy)
    second = AsyncModbusTcpClient(
        "127.0.0.1", port=proxy.port, timeout=2, retries=0, source_address=("127.0.0.2", 0)
    )
    assert await second.connect()
    try:
        await runner.step()
        assert await forcible(first, command=1, power_w=2000) == [None] * 4
        assert runner.override.setpoint_w == 2000
        # Another client's stop does not end it: it is not that client's override.
        assert code_of(await second.write_register(47100, 0, device_id=1)) is None
        assert runner.override.setpoint_w == 2000
        # Last writer wins: the second client's command replaces the first one's.
        assert await forcible(second, command=2, power_w=1500) == [None] * 4
        assert runner.override.setpoint_w == -1500
        assert code_of(await first.write_register(47100, 0, device_id=1)) is None
        assert runner.override.setpoint_w == -1500
        assert code_of(await second.write_register(47100, 0, device_id=1)) is None
        assert runner.override.setpoint_w is None
        # An operator's override is never ended by a client's stop either.
        await runner.install_override(1000, 60, "manual override (by key ops)")
        assert code_of(await first.write_register(47100, 0, device_id=1)) is None
        assert runner.override.setpoint_w == 1000
    finally:
        second.close()
    rows = proxy_rows(runner)
    assert [(r["controller"], r["setpoint_w"]) for r in rows] == [
        ("proxy:127.0.0.1", 2000),
        ("proxy:127.0.0.2", -1500),
        ("proxy:127.0.0.2", 0),
    ]
    assert rows[-1]["reason"].startswith("override ended: stop (47100 = 0)")


async def test_evcc_order_and_watchdog_re_writes_are_one_request_audited_once(
    sim: SimulatorServer,
    runner: SiteRunner,
    make_proxy: Callable[..., Any],
    connect: Callable[..., Any],
) -> None:
    proxy = await make_proxy(runner, **WRITER)
    client = await connect(proxy)
    await runner.step()
    untils = []
    for _ in range(3):  # evcc's charge mode: the command first, then mode, period and power
        assert code_of(await client.write_register(47087, 1, device_id=1)) is None
        assert code_of(await client.write_register(47100, 1, device_id=1)) is None
        assert code_of(await client.write_register(47246, 0, device_id=1)) is None
        assert code_of(await client.write_register(47083, 2, device_id=1)) is None
        assert code_of(await client.write_registers(47247, [0, 4000], device_id=1)) is None
        assert runner.override.setpoint_w == 4000
        untils.append(runner.override.until)
        await asyncio.sleep(0.05)
    assert untils == sorted(untils)
    assert untils[0] is not None
    assert untils[-1] is not None
    assert untils[-1] > untils[0]  # each watchdog round pushes the expiry: 2 min from now
    rows = proxy_rows(runner)
    # The device's 47247 (0 W) until evcc writes its power, then 4000 W; re-writes: no rows.
    assert [r["setpoint_w"] for r in rows] == [0, 4000]
    record = await runner.step()
    assert record.proposal.controller == "manual"
    assert "(by proxy:127.0.0.1)" in record.proposal.reason
    assert sim.device.get("forcible_command") == "charge"
    # evcc's normal mode: stop, and 47087 = 0 (accepted, the gateway sets it as it needs).
    assert code_of(await client.write_register(47100, 0, device_id=1)) is None
    assert code_of(await client.write_register(47087, 0, device_id=1)) is None
    assert runner.override.setpoint_w is None


async def test_soc_mode_runs_until_the_target_as_on_the_device(
    sim: SimulatorServer,
    runner: SiteRunner,
    make_proxy: Callable[..., Any],
    connect: Callable[..., Any],
) -> None:
    proxy = await make_proxy(runner, **WRITER)
    client = await connect(proxy)
    record = await runner.step()
    soc = record.measurements.soc_pct
    assert soc is not None
    target_pct = round(soc + 0.3, 1)
    assert code_of(await client.write_register(47101, round(target_pct * 10), device_id=1)) is None
    assert code_of(await client.write_register(47246, 1, device_id=1)) is None
    assert code_of(await client.write_registers(47247, [0, 5000], device_id=1)) is None
    assert code_of(await client.write_register(47100, 1, device_id=1)) is None
    assert runner.override.setpoint_w == 5000
    sim.speed = 100.0  # 0.3 % of 15 kWh at 5 kW: about 30 s of plant time
    for _ in range(100):
        record = await runner.step()
        await asyncio.sleep(0.05)
        if runner.override.setpoint_w is None:
            break
    assert runner.override.setpoint_w is None
    assert record.measurements.soc_pct is not None
    assert record.measurements.soc_pct >= target_pct - 0.1
    rows = proxy_rows(runner)
    assert rows[0]["reason"].startswith(f"forcible charge 5000 W until SOC {target_pct:g} %")
    assert rows[-1]["reason"].startswith(f"override ended: target SOC {target_pct:g} % reached")


async def test_power_limit_settings_go_to_the_device_unless_the_gateway_holds_them(
    sim: SimulatorServer,
    make_runner: Callable[..., SiteRunner],
    make_proxy: Callable[..., Any],
    connect: Callable[..., Any],
) -> None:
    runner = make_runner()
    proxy = await make_proxy(runner, writers=[{"client": "127.0.0.1", "limits": True}])
    client = await connect(proxy)
    await runner.step()
    # evcc's hold mode: the battery must not discharge (47077 = 0), then normal again.
    assert code_of(await client.write_registers(47077, [0, 0], device_id=1)) is None
    assert sim.device.get("max_discharge_power_setting_w") == 0
    assert code_of(await client.write_registers(47077, [0, 5000], device_id=1)) is None
    assert sim.device.get("max_discharge_power_setting_w") == 5000
    rows = proxy_rows(runner)
    assert [r["writes"][0]["value"] for r in rows] == [0, 5000]
    assert all(r["writes"][0]["verified"] for r in rows)
    # While the gateway holds a direction for safety, raising its limit is refused.
    runner.guard.safety = runner.guard.safety.model_copy(update={"soc_min_pct": 60.0})
    await runner.step()
    assert sim.device.get("max_discharge_power_setting_w") == 0  # held by the gateway
    assert code_of(await client.write_registers(47077, [0, 5000], device_id=1)) == 4
    assert code_of(await client.write_registers(47077, [0, 0], device_id=1)) is None
    assert sim.device.get("max_discharge_power_setting_w") == 0
    # A writer without `limits` may not touch them.
    other = await make_proxy(runner, **WRITER)
    plain = await connect(other)
    assert code_of(await plain.write_registers(47075, [0, 0], device_id=1)) == 2


async def test_listed_registers_pass_to_the_device_and_only_those(
    sim: SimulatorServer,
    runner: SiteRunner,
    make_proxy: Callable[..., Any],
    connect: Callable[..., Any],
) -> None:
    proxy = await make_proxy(runner, writers=[{"client": "127.0.0.1", "registers": [47086]}])
    client = await connect(proxy)
    await runner.step()
    assert code_of(await client.write_register(47086, 5, device_id=1)) is None
    assert sim.device.get("working_mode_setting") == "TOU (LUNA2000)"
    assert code_of(await client.write_register(47086, 9, device_id=1)) == 3
    assert code_of(await client.write_register(47088, 500, device_id=1)) == 2
    (row,) = proxy_rows(runner)
    assert row["reason"].startswith("huawei_luna2000.working_mode_setting = 5 (register 47086)")
    assert row["writes"][0]["verified"] is True


@pytest.mark.parametrize(
    ("registers", "message"),
    [
        ([47100], "47100 (forcible_command) is dispatch or a battery limit"),
        ([47077], "47077 (max_discharge_power_setting_w) is dispatch or a battery limit"),
        ([37765], "37765 is not a writable register"),
    ],
)
async def test_dispatch_registers_cannot_be_listed_to_pass_the_verdict(
    runner: SiteRunner, make_proxy: Callable[..., Any], registers: list[int], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"proxy.writers[0].registers: {message}")):
        await make_proxy(runner, writers=[{"client": "127.0.0.1", "registers": registers}])


async def test_a_clients_override_is_still_its_own_after_the_proxy_restarts(
    runner: SiteRunner, make_proxy: Callable[..., Any], connect: Callable[..., Any]
) -> None:
    first = await make_proxy(runner, **WRITER)
    client = await connect(first)
    await runner.step()
    assert await forcible(client, command=2, power_w=1000) == [None] * 4
    await first.stop()  # a restart: the new proxy knows nothing of the client's writes
    second = await make_proxy(runner, **WRITER)
    again = await connect(second)
    assert runner.override.setpoint_w == -1000
    assert code_of(await again.write_register(47100, 0, device_id=1)) is None
    assert runner.override.setpoint_w is None
