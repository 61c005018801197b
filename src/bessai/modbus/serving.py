"""The server side of Modbus TCP, shared by the simulator and the proxy: the request frames a
client sends, the answers written back to it, and the answers both servers build alike."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable

from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerSocket
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.register_message import (
    WriteMultipleRegistersResponse,
    WriteSingleRegisterResponse,
)


async def client_requests(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    framer: FramerSocket,
    bad_frame_code: Callable[[int], int],
) -> AsyncGenerator[ModbusPDU, None]:
    """Each request the client sends, in order, until it disconnects. A frame that does not
    decode is answered at once with the exception ``bad_frame_code(function code)`` and the
    rest of what was received is dropped, as a device does."""
    buffer = b""
    while True:
        try:
            chunk = await reader.read(1024)
        except (ConnectionError, OSError):
            return
        if not chunk:
            return
        buffer += chunk
        while buffer:
            try:
                used, pdu = framer.handleFrame(buffer, 0, 0)
            except ModbusIOException as exc:
                buffer = b""
                fc = exc.fcode or 0
                response = ExceptionResponse(
                    fc, bad_frame_code(fc), exc.dev_id or 0, exc.transaction_id or 0
                )
                writer.write(framer.buildFrame(response))
                break
            if pdu is None:
                if used:
                    buffer = buffer[used:]
                    continue
                break  # an incomplete frame: wait for the rest
            buffer = buffer[used:]
            yield pdu


async def send_answer(
    writer: asyncio.StreamWriter, framer: FramerSocket, answer: ModbusPDU
) -> None:
    """Write one answer frame; a client gone meanwhile is not an error of the server."""
    writer.write(framer.buildFrame(answer))
    with contextlib.suppress(ConnectionError):
        await writer.drain()


def exception_answer(request: ModbusPDU, code: int) -> ModbusPDU:
    """The exception response with ``code`` to ``request``."""
    return ExceptionResponse(request.function_code, code, request.dev_id, request.transaction_id)


def write_answer(request: ModbusPDU, registers: list[int]) -> ModbusPDU:
    """The response to an accepted write of ``registers`` (function 6 or 16)."""
    if request.function_code == 6:
        return WriteSingleRegisterResponse(
            address=request.address,
            registers=registers,
            dev_id=request.dev_id,
            transaction_id=request.transaction_id,
        )
    return WriteMultipleRegistersResponse(
        address=request.address,
        count=len(registers),
        dev_id=request.dev_id,
        transaction_id=request.transaction_id,
    )
