"""Modbus TCP front end of the simulator, with the connection habits of a real Huawei device.

The transport is our own (asyncio streams) so that faults can be injected where they happen on
site: a dropped connection, "busy" answers, added latency, silence. Frames and PDUs are encoded
and decoded by pymodbus. Like the real device it accepts one TCP client at a time (a new client
closes the previous connection) and ignores unit ids it does not answer to.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from pymodbus.framer import FramerSocket
from pymodbus.pdu import DecodePDU, ModbusPDU
from pymodbus.pdu.mei_message import ReadDeviceInformationResponse
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
)

from bessai.modbus.serving import client_requests, exception_answer, send_answer, write_answer
from bessai.simulator.device import SimulatedHybrid

log = structlog.get_logger("bessai.simulator")

ILLEGAL_FUNCTION = 1
DEVICE_BUSY = 6


@dataclass(slots=True)
class Faults:
    """Wire-level faults in force, each until a monotonic deadline."""

    busy_until: float = 0.0
    silence_until: float = 0.0
    drop_until: float = 0.0
    latency_until: float = 0.0
    latency_s: float = 0.0
    exception_until: float = 0.0
    exception_code: int = 4

    def active(self, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        names = []
        for name in ("busy", "silence", "drop", "latency", "exception"):
            if getattr(self, f"{name}_until") > now:
                names.append(name)
        return names


class SimulatorServer:
    def __init__(
        self,
        device: SimulatedHybrid | None = None,
        host: str = "127.0.0.1",
        port: int = 5020,
        unit_ids: tuple[int, ...] = (0, 1),
        *,
        speed: float = 1.0,
        tick_s: float = 0.2,
        single_client: bool = True,
    ) -> None:
        self.device = device or SimulatedHybrid()
        self.host = host
        self.port = port
        self.unit_ids = frozenset(unit_ids)
        self._speed = speed
        self.tick_s = tick_s
        self.single_client = single_client
        self.faults = Faults()
        #: every request that arrived, answered or not (wrong unit id, silence), by function code:
        #: what a client costs the device, counted on the wire
        self.requests_received: Counter[int] = Counter()
        self.requests_served = 0
        self.connections_accepted = 0
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._plant_start = self.device.now
        self._mono_start = time.monotonic()

    # -- clock --------------------------------------------------------------------------------

    def plant_now(self) -> datetime:
        """Plant time runs `speed` times faster than wall time."""
        elapsed_s = (time.monotonic() - self._mono_start) * self._speed
        return self._plant_start + timedelta(seconds=elapsed_s)

    def plant_seconds(self) -> float:
        """Plant time as seconds since the epoch (a clock for consumers that integrate)."""
        return self.plant_now().timestamp()

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        """Change the pace from now on (0 freezes the plant); plant time never jumps."""
        self._plant_start = self.plant_now()
        self._mono_start = time.monotonic()
        self._speed = value

    def advance(self) -> None:
        self.device.advance(self.plant_now())

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._plant_start = self.device.now
        self._mono_start = time.monotonic()
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port)
        sockets = list(self._server.sockets)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self._ticker = asyncio.create_task(self._tick_forever(), name="sim-ticker")
        log.info("simulator listening", host=self.host, port=self.port, speed=self.speed)

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._server is not None:
            self._server.close()
        # Closing the sockets ends each handler at its next read; no task is cancelled, so the
        # stream machinery never sees a cancelled connection callback.
        self.drop_connections()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=2.0)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> SimulatorServer:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def _tick_forever(self) -> None:
        while True:
            self.advance()
            await asyncio.sleep(self.tick_s)

    def drop_connections(self) -> None:
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    # -- connections --------------------------------------------------------------------------

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            if self.faults.drop_until > time.monotonic():
                writer.close()
                return
            if self.single_client:
                # The device keeps one client: a new connection closes the one before.
                self.drop_connections()
            self.connections_accepted += 1
            self._writers.add(writer)
            await self._serve(reader, writer)
        finally:
            self._writers.discard(writer)
            writer.close()
            if task is not None:
                self._handlers.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = FramerSocket(DecodePDU(True))
        # A frame we cannot decode: answer "illegal function" like a device would.
        requests = client_requests(reader, writer, framer, lambda fc: ILLEGAL_FUNCTION)
        async with contextlib.aclosing(requests):
            async for pdu in requests:
                answer = await self._answer(pdu)
                if answer is None:
                    continue
                if writer.is_closing():
                    return
                await send_answer(writer, framer, answer)

    async def _answer(self, request: ModbusPDU) -> ModbusPDU | None:
        self.requests_received[request.function_code] += 1
        if request.dev_id not in self.unit_ids:
            return None  # a wrong unit id shows up as a timeout on site, not as an error
        now = time.monotonic()
        if self.faults.silence_until > now:
            return None
        if self.faults.latency_until > now:
            await asyncio.sleep(self.faults.latency_s)
        self.requests_served += 1
        if self.faults.busy_until > now:
            return exception_answer(request, DEVICE_BUSY)
        if self.faults.exception_until > now:
            return exception_answer(request, self.faults.exception_code)
        self.advance()
        device = self.device
        fc = request.function_code
        if fc == 3:
            values = device.read(request.address, request.count)
            if isinstance(values, int):
                return exception_answer(request, values)
            return ReadHoldingRegistersResponse(
                registers=values, dev_id=request.dev_id, transaction_id=request.transaction_id
            )
        if fc in (6, 16):
            registers = list(request.registers)
            code = device.write(request.address, registers)
            if code is not None:
                return exception_answer(request, code)
            log.info("register write", address=request.address, registers=registers)
            return write_answer(request, registers)
        if fc == 0x2B:
            ident = device.identity
            return ReadDeviceInformationResponse(
                read_code=getattr(request, "read_code", 1),
                information={
                    0: b"HUAWEI",
                    1: ident.model_name.encode(),
                    2: ident.software_version.encode(),
                },
                dev_id=request.dev_id,
                transaction_id=request.transaction_id,
            )
        return exception_answer(request, ILLEGAL_FUNCTION)
