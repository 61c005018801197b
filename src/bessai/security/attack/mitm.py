"""A man-in-the-middle between the gateway and the (simulated) device that falsifies readings:
bias, scale, ramp, stuck value, replay of a recorded window, and a stealthy bias on the one
reading no invariant ties (the grid meter).

It relays Modbus TCP frames both ways, remembers each read request by transaction id, and
rewrites the registers of the targeted point in the answers. Loopback only (`check_loopback`).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bessai.modbus.codec import decode, encode
from bessai.modbus.profile import Point, load_builtin
from bessai.security.attack.rogue import check_loopback

#: readings an attacker would falsify, by short name: (profile, point)
TARGETS: dict[str, tuple[str, str]] = {
    "soc": ("huawei_luna2000", "unit1_soc_pct"),
    "battery_power": ("huawei_luna2000", "unit1_power_w"),
    "pv_power": ("huawei_sun2000", "input_power_w"),
    "grid_power": ("huawei_dtsu666", "active_power_w"),
}
KINDS = ("bias", "scale", "ramp", "stuck", "replay")
MBAP = struct.Struct(">HHHB")


@dataclass(slots=True)
class Falsification:
    """What the proxy does to the answers while it is active."""

    kind: str  # bias | scale | ramp | stuck | replay | none
    target: str = "soc"
    amount: float = 0.0  # bias: added; scale: factor; ramp: added per second
    started_s: float = 0.0
    stuck_value: float | None = None


@dataclass(slots=True)
class _Recorder:
    """The last answers per read request, for replay."""

    size: int
    answers: dict[tuple[int, int], deque[bytes]] = field(default_factory=dict)
    cursor: dict[tuple[int, int], int] = field(default_factory=dict)

    def keep(self, key: tuple[int, int], data: bytes) -> None:
        self.answers.setdefault(key, deque(maxlen=self.size)).append(data)

    def replay(self, key: tuple[int, int]) -> bytes | None:
        recorded = self.answers.get(key)
        if not recorded:
            return None
        i = self.cursor.get(key, 0)
        self.cursor[key] = i + 1
        return recorded[i % len(recorded)]


class MitmProxy:
    """Relays one gateway connection at a time to the device, falsifying reads on demand."""

    def __init__(
        self,
        upstream: tuple[str, int],
        listen_port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        replay_window: int = 60,
    ) -> None:
        check_loopback(upstream[0])
        self.upstream = upstream
        self.port = listen_port
        self.clock = clock
        self.active = Falsification("none")
        self.recorder = _Recorder(replay_window)
        self._points = {
            name: load_builtin(profile).point(point) for name, (profile, point) in TARGETS.items()
        }
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.frames_altered = 0
        #: the largest |falsified - true| of the current attack's target (its impact)
        self.max_deviation = 0.0

    def start_attack(self, kind: str, target: str, amount: float = 0.0) -> None:
        """Falsify `target` from now on (replay: every read block, from the recording)."""
        if kind not in KINDS:
            raise ValueError(f"unknown falsification {kind!r} ({', '.join(KINDS)})")
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r} ({', '.join(TARGETS)})")
        self.recorder.cursor.clear()
        self.max_deviation = 0.0
        self.active = Falsification(kind, target, amount, self.clock())

    def stop_attack(self) -> None:
        """Pass answers through unchanged again."""
        self.active = Falsification("none")

    async def start(self) -> None:
        """Listen on loopback."""
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Close the listener and every relayed connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        pending: dict[int, tuple[int, int]] = {}
        try:
            await asyncio.gather(
                self._relay(reader, up_writer, pending, answers=False),
                self._relay(up_reader, writer, pending, answers=True),
            )
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            # One side closed: close the other, as a device that drops us would be seen.
            writer.close()
            up_writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pending: dict[int, tuple[int, int]],
        *,
        answers: bool,
    ) -> None:
        while True:
            header = await reader.readexactly(MBAP.size)
            tid, proto, length, unit = MBAP.unpack(header)
            pdu = await reader.readexactly(length - 1)
            if not answers and pdu[:1] == b"\x03" and len(pdu) >= 5:
                address, count = struct.unpack(">HH", pdu[1:5])
                pending[tid] = (address, count)
            elif answers and pdu[:1] == b"\x03" and tid in pending:
                pdu = self._falsify(pending.pop(tid), pdu)
            elif answers:
                pending.pop(tid, None)
            writer.write(MBAP.pack(tid, proto, len(pdu) + 1, unit) + pdu)
            await writer.drain()
            if writer.is_closing():
                return

    def _falsify(self, request: tuple[int, int], pdu: bytes) -> bytes:
        a = self.active
        if a.kind == "replay":
            replayed = self.recorder.replay(request)
            if replayed is not None and len(replayed) == len(pdu):
                self.frames_altered += 1
                return replayed
            return pdu
        if a.kind == "none":
            self.recorder.keep(request, pdu)
            return pdu
        point = self._points[a.target]
        start, count = request
        offset = point.address - start
        if offset < 0 or offset + point.length > count:
            return pdu
        words = list(struct.unpack(f">{count}H", pdu[2 : 2 + 2 * count]))
        raw = words[offset : offset + point.length]
        value = decode(point, raw).value
        if not isinstance(value, int | float):
            return pdu
        new = _clip(point, self._new_value(point, float(value)))
        self.max_deviation = max(self.max_deviation, abs(new - float(value)))
        words[offset : offset + point.length] = encode(point, new)
        self.frames_altered += 1
        return pdu[:2] + struct.pack(f">{count}H", *words)

    def _new_value(self, point: Point, value: float) -> float:
        a = self.active
        if a.kind == "bias":
            return value + a.amount
        if a.kind == "scale":
            return value * a.amount
        if a.kind == "ramp":
            return value + a.amount * (self.clock() - a.started_s)
        if a.stuck_value is None:  # stuck: the first value seen from now on
            a.stuck_value = value
        return a.stuck_value


def _clip(point: Point, value: float) -> float:
    """Keep a falsified value encodable (an attacker sends what the type can carry)."""
    if point.name.endswith("soc_pct"):
        return min(100.0, max(0.0, value))
    if point.type.value.startswith("U"):
        return max(0.0, value)
    return value
