"""The server side of Modbus TCP framing (bessai.modbus.serving), over a real loopback socket:
frames split or packed in one segment, and a frame that does not decode."""

from __future__ import annotations

import asyncio
import struct

from pymodbus.framer import FramerSocket
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU

from bessai.modbus.serving import client_requests, send_answer


def read_frame(transaction_id: int, address: int, count: int, unit: int = 1) -> bytes:
    """A raw Modbus TCP request: read `count` holding registers at `address`."""
    pdu = struct.pack(">BHH", 3, address, count)
    return struct.pack(">HHHB", transaction_id, 0, len(pdu) + 1, unit) + pdu


async def serve_once(chunks: list[bytes], answers: int) -> tuple[list[ModbusPDU], list[int], bytes]:
    """Send `chunks` to a server built on client_requests: what it decoded, the function codes
    of the frames that did not decode, and the bytes that came back."""
    seen: list[ModbusPDU] = []
    bad: list[int] = []

    def bad_frame_code(function_code: int) -> int:
        bad.append(function_code)
        return 0x0B

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = FramerSocket(DecodePDU(True))
        async for pdu in client_requests(reader, writer, framer, bad_frame_code):
            seen.append(pdu)
            answer = ExceptionResponse(pdu.function_code, 2, pdu.dev_id, pdu.transaction_id)
            await send_answer(writer, framer, answer)
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for chunk in chunks:
        writer.write(chunk)
        await writer.drain()
        await asyncio.sleep(0.05)
    received = b""
    while received.count(b"\x00\x00\x00\x03") < answers:  # protocol 0, length 3: one answer
        received += await asyncio.wait_for(reader.read(1024), 5)
    writer.close()
    server.close()
    await server.wait_closed()
    return seen, bad, received


async def test_a_frame_split_over_two_segments_and_two_in_one_are_each_one_request() -> None:
    first, second, third = read_frame(1, 100, 2), read_frame(2, 200, 3), read_frame(3, 300, 4)
    seen, bad, received = await serve_once([first[:5], first[5:] + second + third], answers=3)
    assert [(p.transaction_id, p.address, p.count) for p in seen] == [
        (1, 100, 2),
        (2, 200, 3),
        (3, 300, 4),
    ]
    assert bad == []
    assert len(received) == 3 * 9  # three exception answers of 9 bytes


async def test_a_frame_that_does_not_decode_gets_the_chosen_exception_code() -> None:
    # A count beyond 125 registers does not decode: the server answers at once with the code
    # the caller chose for the frame's function code (read from its header: pymodbus reports
    # none), echoing its transaction id, and the next good frame is served again.
    seen, bad, received = await serve_once([read_frame(7, 0, 200), read_frame(8, 0, 1)], answers=2)
    assert [p.transaction_id for p in seen] == [8]
    transaction_id, _, _, _, fc, code = struct.unpack(">HHHBBB", received[:9])
    assert bad == [3]
    assert (transaction_id, fc, code) == (7, 0x83, 0x0B)
