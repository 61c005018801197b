"""The client keeps the raw words of every successful read (for the proxy), with when each was
read; a refused read leaves nothing behind."""

from __future__ import annotations

import time

import pytest

from bessai.errors import ModbusExceptionError
from bessai.modbus.client import ModbusDevice
from bessai.modbus.profile import PollGroup


async def test_every_read_leaves_its_words_with_their_time(device: ModbusDevice) -> None:
    await device.poll({PollGroup.FAST})  # the first poll identifies the device too
    before = time.monotonic()
    result = await device.poll({PollGroup.FAST})
    after = time.monotonic()
    assert result.requests == len(device.plan({PollGroup.FAST})) == 3
    for request in device.plan({PollGroup.FAST}):
        words = [device.raw.get(a) for a in range(request.start, request.end)]
        assert all(w is not None for w in words)
        assert all(before <= w[1] <= after for w in words if w is not None)
    direct = await device.read_registers(32000, 10)
    assert [device.raw.get(32000 + i) for i in range(10)] == [
        (word, device.raw.get(32000 + i)[1])  # type: ignore[index]
        for i, word in enumerate(direct)
    ]
    copy = device.raw.snapshot()
    await device.read_registers(30000, 2)
    assert 30000 not in copy or copy[30000] != device.raw.get(30000)


async def test_a_refused_read_stores_nothing(device: ModbusDevice) -> None:
    with pytest.raises(ModbusExceptionError):
        await device.read_registers(37200, 1)  # not served by the device
    assert device.raw.get(37200) is None
    assert len(device.raw) == 0
