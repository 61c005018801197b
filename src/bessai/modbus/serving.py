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
                fc, dev_id, transaction_id = _frame_head(buffer, exc)
                buffer = b""
                response = ExceptionResponse(fc, bad_frame_code(fc), dev_id, transaction_id)
                writer.write(framer.buildFrame(response))
                break
            if pdu is None:
                if used:
                    buffer = buffer[used:]
                    continue
                break  # an incomplete frame: wait for the rest
            buffer = buffer[used:]
            yield pdu


def _frame_head(buffer: bytes, exc: ModbusIOException) -> tuple[int, int, int]:
    """Function code, unit id and transaction id of a frame that did not decode. pymodbus
    leaves them unset for a frame its decoder refused (a read of more than 125 registers), so
    they are read from the MBAP header: without them the answer would carry function 0x80 and
    the client could not tell which request failed."""
    fc = exc.fcode or (buffer[7] if len(buffer) > 7 else 0)
    dev_id = exc.dev_id or (buffer[6] if len(buffer) > 6 else 0)
    transaction_id = exc.transaction_id or (int.from_bytes(buffer[0:2]) if len(buffer) > 1 else 0)
    return fc & 0x7F, dev_id, transaction_id


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
