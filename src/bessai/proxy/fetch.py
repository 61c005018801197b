"""Reads on demand: registers the gateway does not poll, fetched through the gateway's one
connection to the device, so that they cost the device as little as possible and never crowd out
the control cycle.

- one read at a time, at least `interval_s` apart (the cycle's own reads queue behind at most
  one of them on the client's lock);
- a read that would wait longer than `max_wait_s` in the queue is not sent: the client is told
  busy (exception 6) and asks again, as it would a busy device;
- clients asking for the same span, or one inside a span being read, share that read;
- a span the device refused with exception 2 is not asked again for `refused_for_s`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from bessai.errors import DeviceError, ModbusExceptionError
from bessai.modbus.client import ModbusDevice

log = structlog.get_logger("bessai.proxy")

ILLEGAL_ADDRESS = 2
DEVICE_BUSY = 6
#: what a Modbus gateway answers when the device behind it does not
GATEWAY_NO_RESPONSE = 11

#: registers, or the exception code to answer
Result = list[int] | int


class OnDemandReader:
    """Coalesced, rate-limited reads through the gateway's Modbus client."""

    def __init__(
        self,
        device: ModbusDevice,
        interval_s: float,
        max_wait_s: float,
        refused_for_s: float,
        on_read: Callable[[int, list[int], float], None] | None = None,
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        self.device = device
        self.interval_s = interval_s
        self.max_wait_s = max_wait_s
        self.refused_for_s = refused_for_s
        #: called with the words of every read that succeeded, and for every read sent
        self.on_read = on_read
        self.on_sent = on_sent
        #: reads sent to the device (each one request, plus the client's own retries)
        self.reads = 0
        self._lock = asyncio.Lock()
        self._next_at = 0.0
        self._inflight: dict[tuple[int, int], asyncio.Task[Result]] = {}
        self._refused: dict[tuple[int, int], float] = {}

    async def read(self, start: int, count: int) -> Result:
        """The device's answer for the span: its registers, or an exception code."""
        now = time.monotonic()
        end = start + count
        for (s, c), until in list(self._refused.items()):
            if until <= now:
                del self._refused[(s, c)]
            elif start <= s and s + c <= end:
                return ILLEGAL_ADDRESS  # the device refuses a part, so it refuses the whole
        for (s, c), task in self._inflight.items():
            if s <= start and end <= s + c:
                return _slice(await asyncio.shield(task), start - s, count)
        if (len(self._inflight) + 1) * self.interval_s > self.max_wait_s:
            return DEVICE_BUSY
        task = asyncio.create_task(self._fetch(start, count), name=f"proxy-read-{start}")
        self._inflight[(start, count)] = task
        task.add_done_callback(lambda _t: self._inflight.pop((start, count), None))
        return await asyncio.shield(task)

    async def _fetch(self, start: int, count: int) -> Result:
        async with self._lock:
            wait_s = self._next_at - time.monotonic()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            self.reads += 1
            if self.on_sent is not None:
                self.on_sent()
            try:
                registers = await self.device.read_registers(start, count, keep=False)
            except ModbusExceptionError as exc:
                if exc.code == ILLEGAL_ADDRESS:
                    self._refused[(start, count)] = time.monotonic() + self.refused_for_s
                return exc.code
            except DeviceError as exc:
                log.info("on-demand read failed", start=start, count=count, error=str(exc))
                return GATEWAY_NO_RESPONSE
            finally:
                self._next_at = time.monotonic() + self.interval_s
        if self.on_read is not None:
            self.on_read(start, registers, time.monotonic())
        return registers

    async def close(self) -> None:
        """Cancel reads still waiting (the server stops)."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _slice(result: Result, offset: int, count: int) -> Result:
    if isinstance(result, int):
        return result
    return result[offset : offset + count]
