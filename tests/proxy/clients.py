"""Client-side helpers: reading a whole register profile the way a third-party client does (its
own register list, batched as huawei-solar batches: a read spans at most 64 registers, with
holes under 16, not with the gateway's planner), exception codes, metric samples."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymodbus.client import AsyncModbusTcpClient

from bessai.modbus.client import ModbusDevice
from bessai.modbus.codec import Value, decode
from bessai.modbus.planner import BoundPoint

MAX_SPAN = 64
MAX_GAP = 16


@dataclass(frozen=True, slots=True)
class Batch:
    start: int
    count: int
    points: tuple[BoundPoint, ...]


def batches(device: ModbusDevice) -> list[Batch]:
    """Every point the gateway polls, in huawei-solar's batches, never across a block edge."""
    points = sorted(device.bound_points(), key=lambda bp: bp.point.address)
    groups: list[list[BoundPoint]] = [[points[0]]]
    for bp in points[1:]:
        current = groups[-1]
        same_block = device.address_map.block_of(bp.point) == device.address_map.block_of(
            current[0].point
        )
        if (
            same_block
            and bp.point.end - current[0].point.address <= MAX_SPAN
            and bp.point.address - current[-1].point.end < MAX_GAP
        ):
            current.append(bp)
        else:
            groups.append([bp])
    result = []
    for group in groups:
        start = group[0].point.address
        end = max(bp.point.end for bp in group)
        result.append(Batch(start, end - start, tuple(group)))
    return result


class ReadFailedError(AssertionError):
    def __init__(self, batch: Batch, code: int) -> None:
        super().__init__(f"read {batch.start} x{batch.count}: exception {code}")
        self.code = code


async def read_batch(client: AsyncModbusTcpClient, batch: Batch, unit: int = 1) -> dict[str, Value]:
    response = await client.read_holding_registers(batch.start, count=batch.count, device_id=unit)
    if response.isError():
        raise ReadFailedError(batch, int(response.exception_code))
    words = list(response.registers)
    values: dict[str, Value] = {}
    for bp in batch.points:
        offset = bp.point.address - batch.start
        values[bp.key] = decode(bp.point, words[offset : offset + bp.point.length]).value
    return values


async def read_profile(
    client: AsyncModbusTcpClient, plan: list[Batch], unit: int = 1
) -> dict[str, Value]:
    values: dict[str, Value] = {}
    for batch in plan:
        values.update(await read_batch(client, batch, unit))
    return values


def code_of(response: Any) -> int | None:
    """The exception code of a pymodbus response, or None for a normal answer."""
    return int(response.exception_code) if response.isError() else None


def sample(registry: Any, name: str, **labels: str) -> float:
    """A metric's value as /metrics would show it (0 when never set)."""
    return float(registry.get_sample_value(name, {"site": "t1", **labels}) or 0.0)


async def wait_for(condition: Callable[[], object], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.05)
