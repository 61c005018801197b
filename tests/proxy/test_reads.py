"""Reads through the proxy, with pymodbus clients on loopback against a real site cycling on the
simulator: the whole profile as the process image holds it, the device's load independent of the
number of clients, busy instead of old values, registers the gateway does not poll read on
demand once for everyone, and the device's unit ids and identification."""

from __future__ import annotations

import asyncio
import struct
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from bessai.control.site import SiteRunner
from bessai.devices.huawei import HuaweiHybrid
from bessai.modbus.profile import PollGroup
from bessai.proxy import ProxyServer
from bessai.simulator.server import SimulatorServer

from .clients import (
    ReadFailedError,
    batches,
    code_of,
    read_batch,
    read_profile,
    sample,
)

READ = 3
BUSY = 6
SLOW_EVERY = 12


def modbus_of(runner: SiteRunner) -> Any:
    device = runner.device
    assert isinstance(device, HuaweiHybrid)
    return device.modbus


async def test_a_client_reads_the_whole_profile_as_the_process_image_holds_it(
    runner: SiteRunner, make_proxy: Callable[..., Any], connect: Callable[..., Any]
) -> None:
    proxy = await make_proxy(runner)
    client = await connect(proxy)
    for _ in range(3):
        record = await runner.step()
    plan = batches(modbus_of(runner))  # known once the PV string count is read
    assert not record.writes  # the start-up writes were in the first cycle
    values = await read_profile(client, plan)
    image = record.image
    compared = 0
    for key, value in values.items():
        held = image.get(key)
        assert held is not None, key
        assert value == held.value, key
        compared += 1
    assert compared == sum(len(b.points) for b in plan) > 100
    assert proxy.reader.reads == 0  # nothing read on demand: all of it was the cycle's


@pytest.mark.parametrize("clients", [1, 5, 20])
async def test_device_requests_per_cycle_do_not_depend_on_the_number_of_clients(
    clients: int,
    sim: SimulatorServer,
    make_runner: Callable[..., SiteRunner],
    make_proxy: Callable[..., Any],
    connect: Callable[..., Any],
) -> None:
    runner = make_runner(slow_every=SLOW_EVERY, cycle_s=0.1)
    proxy = await make_proxy(runner, client_requests_per_s=10_000)
    device = modbus_of(runner)
    await runner.step()  # a client learns the PV string count before it reads the strings
    plan = batches(device)
    received: list[Counter[int]] = []
    runner.listeners.append(lambda _r: received.append(sim.requests_received.copy()))
    stop = asyncio.Event()
    cycling = asyncio.create_task(runner.run(stop))
    reads: list[int] = [0] * clients
    failed: list[tuple[int, bool]] = []  # busy is fine only before the first cycle
    compared: list[int] = [0] * clients

    async def poll(index: int, client: AsyncModbusTcpClient) -> None:
        while not stop.is_set():
            for batch in plan:
                before = runner.last
                try:
                    values = await read_batch(client, batch)
                except ReadFailedError as exc:
                    failed.append((exc.code, before is None))
                    continue
                reads[index] += 1
                after = runner.last
                # Between two cycles a client reads what the last image was made of.
                if before is not None and before is after and not after.writes:
                    for key, value in values.items():
                        held = after.image.get(key)
                        assert held is not None, key
                        assert value == held.value, key
                    compared[index] += 1

    cycles = 2 * SLOW_EVERY
    done = asyncio.Event()
    runner.listeners.append(lambda _r: done.set() if len(received) > 1 + cycles else None)
    pollers = [asyncio.create_task(poll(i, await connect(proxy))) for i in range(clients)]
    await asyncio.wait_for(done.wait(), timeout=60)
    stop.set()
    await asyncio.gather(cycling, *pollers)
    # From the end of the first cycle (identification, start-up writes) over `cycles` cycles.
    on_wire = received[1 + cycles] - received[1]
    fast = len(device.plan({PollGroup.FAST}))
    slow = len(device.plan({PollGroup.FAST, PollGroup.SLOW}))
    assert on_wire.total() == on_wire[READ]  # no writes while idle
    assert on_wire[READ] / cycles == ((SLOW_EVERY - 1) * fast + slow) / SLOW_EVERY == 3.75
    assert proxy.reader.reads == 0
    assert all(count > len(plan) for count in reads), reads  # every client read the profile
    assert all(count > 0 for count in compared), compared
    assert all(code == BUSY and early for code, early in failed), failed


async def test_stale_values_answer_busy_never_an_old_value(
    runner: SiteRunner, make_proxy: Callable[..., Any], connect: Callable[..., Any]
) -> None:
    proxy = await make_proxy(runner, fast_max_age_s=0.3, slow_max_age_s=30)
    client = await connect(proxy)
    device = modbus_of(runner)
    await runner.step()
    fast_block = device.plan({PollGroup.FAST})[0]
    fresh = await client.read_holding_registers(
        fast_block.start, count=fast_block.count, device_id=1
    )
    assert not fresh.isError()
    await asyncio.sleep(0.4)  # no cycle: the fast values are now older than 0.3 s
    stale = await client.read_holding_registers(
        fast_block.start, count=fast_block.count, device_id=1
    )
    assert code_of(stale) == BUSY
    # One stale register makes the whole read busy, even inside a span that is otherwise static.
    model = await client.read_holding_registers(30000, count=15, device_id=1)
    assert not model.isError()  # static: identification does not age
    slow = await client.read_holding_registers(47075, count=4, device_id=1)
    assert not slow.isError()  # slow values have their own window (30 s here)
    await runner.step()
    again = await client.read_holding_registers(
        fast_block.start, count=fast_block.count, device_id=1
    )
    assert not again.isError()
    assert proxy.reader.reads == 0  # busy means "ask again", never a read of our own


async def test_a_silent_device_makes_the_proxy_busy_not_old(
    sim: SimulatorServer,
    runner: SiteRunner,
    make_proxy: Callable[..., Any],
    connect: Callable[..., Any],
) -> None:
    proxy = await make_proxy(runner, fast_max_age_s=0.5)
    client = await connect(proxy)
    await runner.step()
    sim.faults.silence_until = time.monotonic() + 60
    started = time.monotonic()
    while time.monotonic() - started < 1.0:
        record = await runner.step()
    assert record.errors  # the gateway did not get its reads
    answer = await client.read_holding_registers(37000, count=23, device_id=1)
    assert code_of(answer) == BUSY
    assert sample(proxy.metrics.registry, "bessai_proxy_requests_total", answer="busy") >= 1


async def test_registers_the_gateway_does_not_poll_are_read_once_for_all_clients(
    sim: SimulatorServer,
    runner: SiteRunner,
    make_proxy: Callable[..., Any],
    connect: Callable[..., Any],
) -> None:
    # The second battery unit's registers: served by the device, not polled (no second unit).
    proxy = await make_proxy(runner, on_demand_max_age_s=30, on_demand_interval_s=0.0)
    await runner.step()
    device = modbus_of(runner)
    polled = {bp.point.address for bp in device.bound_points()}
    assert not polled & set(range(37738, 37753))
    clients = [await connect(proxy) for _ in range(10)]
    before = sim.requests_received[READ]
    answers = await asyncio.gather(
        *(c.read_holding_registers(37738, count=15, device_id=1) for c in clients)
    )
    assert all(not a.isError() for a in answers)
    assert len({tuple(a.registers) for a in answers}) == 1
    assert sim.requests_received[READ] - before == 1  # one read on demand, shared
    assert proxy.reader.reads == 1
    again = await clients[0].read_holding_registers(37740, count=5, device_id=1)
    assert code_of(again) is None
    assert list(again.registers) == list(answers[0].registers[2:7])
    assert sim.requests_received[READ] - before == 1  # within its age: from the proxy
    assert sample(proxy.metrics.registry, "bessai_proxy_device_reads_total") == 1


async def test_a_span_the_device_refuses_is_refused_and_not_asked_again(
    sim: SimulatorServer,
    runner: SiteRunner,
    make_proxy: Callable[..., Any],
    connect: Callable[..., Any],
) -> None:
    proxy = await make_proxy(runner, on_demand_interval_s=0.0)
    await runner.step()
    client = await connect(proxy)
    before = sim.requests_received[READ]
    for _ in range(3):  # 37200: number of optimizers, not served by this device
        answer = await client.read_holding_registers(37200, count=1, device_id=1)
        assert code_of(answer) == 2
    assert sim.requests_received[READ] - before == 1


async def test_points_the_device_refused_are_refused_without_asking(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner], make_proxy: Callable[..., Any],
    connect: Callable[..., Any],
) -> None:  # fmt: skip
    sim.device.unsupported.update({37001, 37002})  # firmware without unit 1's power (evcc #31630)
    runner = make_runner()
    proxy = await make_proxy(runner)
    await runner.step()
    client = await connect(proxy)
    before = sim.requests_received[READ]
    answer = await client.read_holding_registers(37000, count=10, device_id=1)
    assert code_of(answer) == 2  # as the device answers it
    ok = await client.read_holding_registers(37004, count=1, device_id=1)
    assert not ok.isError()
    assert sim.requests_received[READ] == before
    assert proxy.reader.reads == 0


async def test_unit_ids_as_on_the_device(
    runner: SiteRunner, make_proxy: Callable[..., Any], connect: Callable[..., Any]
) -> None:
    proxy = await make_proxy(runner, unit_ids=[1])
    await runner.step()
    client = await connect(proxy, timeout_s=0.5)
    served = await client.read_holding_registers(30000, count=15, device_id=1)
    assert not served.isError()
    # Another unit id gets no answer, as from an SDongle or inverter that has no such unit.
    from pymodbus.exceptions import ModbusIOException

    with pytest.raises(ModbusIOException):
        await client.read_holding_registers(30000, count=15, device_id=100)


async def test_device_identification_as_the_device_answers_it(
    runner: SiteRunner, make_proxy: Callable[..., Any], connect: Callable[..., Any]
) -> None:
    proxy = await make_proxy(runner)
    client = await connect(proxy)
    early = await client.read_device_information(read_code=1, device_id=1)
    assert code_of(early) == BUSY  # the identity is not read yet
    await runner.step()
    basic = await client.read_device_information(read_code=1, device_id=1)
    assert basic.information == {0: b"HUAWEI", 1: b"SUN2000-10KTL-M1", 2: b"V100R001C00SPC141"}
    listing = await client.read_device_information(read_code=3, object_id=0x87, device_id=0)
    assert listing.information[0x87] == b"\x01"
    entry = dict(item.split("=") for item in listing.information[0x88].decode().split(";"))
    assert entry == {
        "1": "SUN2000-10KTL-M1",
        "2": "V100R001C00SPC141",
        "3": "2",
        "4": "HV2150012345",
        "5": "0",
    }
    assert proxy.reader.reads == 0


async def test_only_allowed_addresses_connect_and_at_most_max_clients(
    runner: SiteRunner, make_proxy: Callable[..., Any]
) -> None:
    closed = await make_proxy(runner, allowed_clients=["10.0.0.0/8"])
    reader, writer = await asyncio.open_connection("127.0.0.1", closed.port)
    assert await asyncio.wait_for(reader.read(), timeout=2) == b""  # closed at once
    writer.close()
    refused = sample(
        closed.metrics.registry, "bessai_proxy_connections_refused_total", reason="not_allowed"
    )
    assert refused == 1

    few = await make_proxy(runner, max_clients=2)
    first = AsyncModbusTcpClient("127.0.0.1", port=few.port, timeout=1, retries=0)
    second = AsyncModbusTcpClient("127.0.0.1", port=few.port, timeout=1, retries=0)
    assert await first.connect()
    assert await second.connect()
    await asyncio.sleep(0.05)
    reader, writer = await asyncio.open_connection("127.0.0.1", few.port)
    assert await asyncio.wait_for(reader.read(), timeout=2) == b""
    writer.close()
    assert len(few.connections) == 2
    first.close()
    second.close()


async def test_metrics_count_cache_and_forwarded_answers(
    runner: SiteRunner, make_proxy: Callable[..., Any], connect: Callable[..., Any]
) -> None:
    proxy: ProxyServer = await make_proxy(runner, on_demand_interval_s=0.0)
    client = await connect(proxy)
    await runner.step()
    await client.read_holding_registers(32000, count=10, device_id=1)
    await client.read_holding_registers(37700, count=5, device_id=1)
    await client.read_holding_registers(37700, count=5, device_id=1)
    registry = proxy.metrics.registry
    assert sample(registry, "bessai_proxy_requests_total", answer="cache") == 2
    assert sample(registry, "bessai_proxy_requests_total", answer="forwarded") == 1
    assert sample(registry, "bessai_proxy_clients") == 1


async def test_a_read_of_more_than_125_registers_is_an_illegal_value_as_on_the_device(
    runner: SiteRunner, make_proxy: Callable[..., Any]
) -> None:
    # pymodbus's own client refuses to send such a read, so the frame is written by hand.
    proxy = await make_proxy(runner)
    await runner.step()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    pdu = struct.pack(">BHH", READ, 37000, 126)
    writer.write(struct.pack(">HHHB", 41, 0, len(pdu) + 1, 1) + pdu)
    await writer.drain()
    answer = await asyncio.wait_for(reader.readexactly(9), 5)
    writer.close()
    transaction_id, _, _, unit, fc, code = struct.unpack(">HHHBBB", answer)
    assert (transaction_id, unit, fc, code) == (41, 1, 0x80 | READ, 3)
