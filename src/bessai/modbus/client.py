"""Async Modbus TCP client for one device (one connection, one lock), with Huawei field habits.

Huawei devices swallow requests sent right after a connect, answer "busy" under load, accept one
TCP client at a time and can be slow (reference §3). So: wait after every (re)connect, keep a
cooldown between requests, retry timeouts, busy (6) and device failure (4) with back-off,
reconnect with exponential back-off up to a ceiling, and never let a refused address (2) fail a
whole poll: split the read, learn which addresses fail, and remember that for the session.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from bessai.errors import (
    DeviceConnectionError,
    DeviceError,
    DeviceTimeoutError,
    ModbusExceptionError,
    VerificationError,
    WriteRejectedError,
)
from bessai.modbus.codec import Value, decode, encode, physical_value
from bessai.modbus.planner import (
    AddressMap,
    BoundPoint,
    ReadRequest,
    plan_reads,
    read_request,
    split_request,
)
from bessai.modbus.profile import Point, PollGroup, Profile

log = structlog.get_logger("bessai.modbus")

ILLEGAL_ADDRESS = 2
DEVICE_FAILURE = 4
DEVICE_BUSY = 6
RETRYABLE_EXCEPTIONS = frozenset({DEVICE_FAILURE, DEVICE_BUSY})


class _ConnectionLostError(DeviceConnectionError):
    """The device closed or reset an established connection; worth one more try."""


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Connection habits; the defaults are the values used in the field (reference §3)."""

    wait_after_connect_s: float = 1.0
    cooldown_s: float = 0.05
    timeout_s: float = 5.0
    retries: int = 3
    retry_backoff_s: float = 0.5
    retry_backoff_max_s: float = 10.0
    reconnect_backoff_s: float = 1.0
    reconnect_backoff_max_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Reading:
    """A decoded point. `available` is False when the device does not serve the point."""

    profile: str
    point: Point
    value: Value
    raw: int | str | None
    ts: datetime
    available: bool = True
    error: str | None = None

    @property
    def key(self) -> str:
        return f"{self.profile}.{self.point.name}"


@dataclass(slots=True)
class PollResult:
    readings: dict[str, Reading] = field(default_factory=dict)
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def value(self, profile: str, name: str) -> Value:
        reading = self.readings.get(f"{profile}.{name}")
        return None if reading is None else reading.value


@dataclass(frozen=True, slots=True)
class WriteResult:
    profile: str
    point: Point
    value: object
    registers: tuple[int, ...]
    function_code: int
    verified: bool
    read_back: Value


@dataclass(slots=True)
class ClientStats:
    requests: int = 0
    errors: int = 0
    timeouts: int = 0
    reconnects: int = 0
    exceptions_by_code: dict[int, int] = field(default_factory=dict)
    last_latency_s: float = 0.0


class ModbusDevice:
    """One Modbus TCP device (host, port, unit id) serving one or more register profiles."""

    def __init__(
        self,
        host: str,
        port: int,
        unit_id: int,
        profiles: Sequence[Profile],
        settings: ClientSettings | None = None,
        name: str | None = None,
    ) -> None:
        if not profiles:
            raise ValueError("a device needs at least one profile")
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.profiles = {p.name: p for p in profiles}
        self.settings = settings or ClientSettings()
        self.name = name or f"{host}:{port}/unit {unit_id}"
        self.address_map = AddressMap.for_profiles(profiles)
        self.stats = ClientStats()
        self.last_values: dict[str, Reading] = {}
        self._client: AsyncModbusTcpClient | None = None
        self._lock = asyncio.Lock()
        self._last_request_end = 0.0
        self._next_connect_at = 0.0
        self._reconnect_delay_s = self.settings.reconnect_backoff_s

    # -- connection -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def connect(self) -> None:
        """Connect now (unless connected), honouring the reconnect back-off."""
        async with self._lock:
            await self._ensure_connected()

    async def close(self) -> None:
        async with self._lock:
            self._drop_connection()

    async def __aenter__(self) -> ModbusDevice:
        await self.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def _drop_connection(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _ensure_connected(self) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        self._drop_connection()
        wait_s = self._next_connect_at - time.monotonic()
        if wait_s > 0:
            raise DeviceConnectionError(
                f"not connected; next reconnect attempt in {wait_s:.1f} s", device=self.name
            )
        # pymodbus' own reconnect and retry loops are off: the back-off policy lives here.
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            timeout=self.settings.timeout_s,
            retries=0,
            reconnect_delay=0,
            name=self.name,
        )
        try:
            ok = await client.connect()
        except (OSError, ModbusException) as exc:
            ok = False
            log.debug("connect failed", device=self.name, error=str(exc))
        if not ok:
            client.close()
            self._schedule_reconnect()
            raise DeviceConnectionError(
                f"cannot connect to {self.host}:{self.port}", device=self.name
            )
        self.stats.reconnects += 1
        self._reconnect_delay_s = self.settings.reconnect_backoff_s
        # Requests sent right after a connect are swallowed by the device (quirk 3).
        await asyncio.sleep(self.settings.wait_after_connect_s)
        self._client = client
        self._last_request_end = time.monotonic()
        log.info("connected", device=self.name)
        return client

    def _schedule_reconnect(self) -> None:
        self._next_connect_at = time.monotonic() + self._reconnect_delay_s
        self._reconnect_delay_s = min(
            self._reconnect_delay_s * 2, self.settings.reconnect_backoff_max_s
        )

    def _connection_lost(self) -> None:
        # Reconnect at once on the next request; the back-off applies to failed connects only.
        self._drop_connection()

    # -- one request, with retries ----------------------------------------------------------

    async def _request(self, fc: int, address: int, payload: Sequence[int] | int) -> list[int]:
        """Send one request under the lock; retry what is worth retrying. Returns registers."""
        delay_s = self.settings.retry_backoff_s
        attempt = 0
        while True:
            try:
                async with self._lock:
                    return await self._request_once(fc, address, payload)
            except ModbusExceptionError as exc:
                if exc.code not in RETRYABLE_EXCEPTIONS or attempt >= self.settings.retries:
                    raise
            except (DeviceTimeoutError, _ConnectionLostError):
                if attempt >= self.settings.retries:
                    raise
            attempt += 1
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, self.settings.retry_backoff_max_s)

    async def _request_once(self, fc: int, address: int, payload: Sequence[int] | int) -> list[int]:
        client = await self._ensure_connected()
        pause_s = self._last_request_end + self.settings.cooldown_s - time.monotonic()
        if pause_s > 0:
            await asyncio.sleep(pause_s)
        count = payload if isinstance(payload, int) else len(payload)
        started = time.monotonic()
        self.stats.requests += 1
        try:
            if fc == 3:
                assert isinstance(payload, int)
                response = await client.read_holding_registers(
                    address, count=payload, device_id=self.unit_id
                )
            elif fc == 6:
                assert not isinstance(payload, int)
                response = await client.write_register(address, payload[0], device_id=self.unit_id)
            else:
                assert not isinstance(payload, int)
                response = await client.write_registers(
                    address, list(payload), device_id=self.unit_id
                )
        except ModbusIOException as exc:
            self.stats.errors += 1
            self.stats.timeouts += 1
            # A late answer would be matched to the next request; start over on a new socket.
            self._connection_lost()
            raise DeviceTimeoutError(
                f"no answer within {self.settings.timeout_s:g} s ({exc})",
                device=self.name,
                address=address,
            ) from None
        except (ConnectionException, OSError, asyncio.IncompleteReadError) as exc:
            self.stats.errors += 1
            self._connection_lost()
            raise _ConnectionLostError(
                f"connection lost ({exc or type(exc).__name__})",
                device=self.name,
                address=address,
            ) from None
        finally:
            self._last_request_end = time.monotonic()
            self.stats.last_latency_s = self._last_request_end - started
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            self.stats.errors += 1
            self.stats.exceptions_by_code[code] = self.stats.exceptions_by_code.get(code, 0) + 1
            raise ModbusExceptionError(code, device=self.name, address=address, count=count)
        if fc == 3:
            registers = list(response.registers)
            if len(registers) != count:
                # Seen on SDongles under load: a short answer is treated like busy (quirk 8).
                raise ModbusExceptionError(
                    DEVICE_BUSY, device=self.name, address=address, count=count
                )
            return registers
        return []

    async def read_registers(self, address: int, count: int) -> list[int]:
        """Read raw holding registers (FC03)."""
        return await self._request(3, address, count)

    # -- reading points ---------------------------------------------------------------------

    def bound_points(
        self, groups: Iterable[PollGroup] | None = None, profile: str | None = None
    ) -> list[BoundPoint]:
        """Readable points in the given poll groups whose presence conditions hold."""
        wanted = set(groups) if groups is not None else set(PollGroup)
        result: list[BoundPoint] = []
        for prof in self.profiles.values():
            if profile is not None and prof.name != profile:
                continue
            for point in prof.points:
                if point.group in wanted and self._present(prof.name, point):
                    result.append(BoundPoint(prof.name, point))
        return result

    def _present(self, profile: str, point: Point) -> bool:
        cond = point.present_if
        if cond is None:
            return True
        ref = self.last_values.get(f"{profile}.{cond.point}")
        if ref is None or not isinstance(ref.raw, int):
            return True  # unknown yet: ask, and let the device say whether it serves it
        return ref.raw >= cond.min

    def plan(self, groups: Iterable[PollGroup] | None = None) -> list[ReadRequest]:
        return plan_reads(self.bound_points(groups), self.address_map)

    async def poll(
        self, groups: Iterable[PollGroup] | None = None, profile: str | None = None
    ) -> PollResult:
        """Read every due point. Static points are read with the first poll of a session,
        because other points' presence depends on them (number of PV strings, second unit)."""
        groups = set(groups) if groups is not None else set(PollGroup)
        started = time.monotonic()
        result = PollResult()
        static_known = any(
            r.point.group is PollGroup.STATIC for r in self.last_values.values() if r.available
        )
        if static_known:
            await self._read_points(self.bound_points(groups, profile), result)
        else:
            # First poll of a session: everything unconditional (static included) in one pass,
            # then the points whose presence the static values have just decided.
            wanted = self.bound_points(groups | {PollGroup.STATIC}, profile)
            await self._read_points([bp for bp in wanted if bp.point.present_if is None], result)
            conditional = [
                bp for bp in self.bound_points(groups, profile) if bp.point.present_if is not None
            ]
            await self._read_points(conditional, result)
        result.duration_s = time.monotonic() - started
        return result

    async def read_points(self, points: Sequence[BoundPoint]) -> PollResult:
        result = PollResult()
        started = time.monotonic()
        await self._read_points(points, result)
        result.duration_s = time.monotonic() - started
        return result

    async def _read_points(self, points: Sequence[BoundPoint], result: PollResult) -> None:
        now = datetime.now(UTC)
        planned = plan_reads(points, self.address_map)
        covered = {bp.key for req in planned for bp in req.points}
        for bp in points:
            if bp.key not in covered and bp.point.readable:
                self._store(result, Reading(bp.profile, bp.point, None, None, now, False))
        for request in planned:
            await self._read_request(request, result)

    def _store(self, result: PollResult, reading: Reading) -> None:
        result.readings[reading.key] = reading
        self.last_values[reading.key] = reading

    async def _read_request(self, request: ReadRequest, result: PollResult) -> bool:
        """Read one block; on exception 2 split it until the refused addresses are found.
        Returns True when the whole request was served."""
        result.requests += 1
        try:
            registers = await self.read_registers(request.start, request.count)
        except ModbusExceptionError as exc:
            now = datetime.now(UTC)
            if exc.code != ILLEGAL_ADDRESS:
                message = str(exc)
                result.errors.append(message)
                for bp in request.points:
                    self._store(
                        result, Reading(bp.profile, bp.point, None, None, now, True, message)
                    )
                return False
            if len(request.points) == 1:
                bp = request.points[0]
                self.address_map.learn_unsupported(bp.point.address, bp.point.end)
                log.info(
                    "device does not serve point; skipped for this session",
                    device=self.name,
                    address=bp.point.address,
                    point=bp.key,
                )
                self._store(result, Reading(bp.profile, bp.point, None, None, now, False))
                return False
            left, right = split_request(request)
            left_ok = await self._read_request(left, result)
            right_ok = await self._read_request(right, result)
            if left_ok and right_ok:
                # Both halves are served, so the refused addresses are in the hole between them.
                self.address_map.learn_unsupported(left.end, right.start)
            return False
        now = datetime.now(UTC)
        for bp in request.points:
            offset = bp.point.address - request.start
            decoded = decode(bp.point, registers[offset : offset + bp.point.length])
            self._store(result, Reading(bp.profile, bp.point, decoded.value, decoded.raw, now))
        return True

    # -- writing ----------------------------------------------------------------------------

    def find_point(self, name: str) -> tuple[Profile, Point]:
        """A point by name (`point` or `profile.point`) or by address."""
        profile_name, _, point_name = name.rpartition(".")
        matches: list[tuple[Profile, Point]] = []
        for prof in self.profiles.values():
            if profile_name and prof.name != profile_name:
                continue
            for point in prof.points:
                if point.name == point_name or (
                    point_name.isdigit() and point.address == int(point_name)
                ):
                    matches.append((prof, point))
        if not matches:
            raise WriteRejectedError(f"no point named {name!r} in {', '.join(self.profiles)}")
        if len(matches) > 1:
            options = ", ".join(f"{p.name}.{pt.name}" for p, pt in matches)
            raise WriteRejectedError(f"point {name!r} is ambiguous; use one of {options}")
        return matches[0]

    async def _limit_value(self, profile: Profile, ref: str | None) -> float | None:
        if ref is None:
            return None
        key = f"{profile.name}.{ref}"
        reading = self.last_values.get(key)
        if reading is None:
            await self.read_points([BoundPoint(profile.name, profile.point(ref))])
            reading = self.last_values.get(key)
        if reading is None or not isinstance(reading.value, int | float):
            return None
        return float(reading.value)

    async def check_write(self, profile: Profile, point: Point, value: object) -> list[int]:
        """Validate a write against the profile; returns the registers to send."""
        if not point.writable:
            raise WriteRejectedError(
                f"{profile.name}.{point.name} is read-only (access {point.access})",
                device=self.name,
                address=point.address,
            )
        registers = encode(point, value)
        if point.enum is not None:
            numeric = physical_value(point, value)
            if int(numeric) not in point.enum:
                choices = ", ".join(f"{k}={v!r}" for k, v in sorted(point.enum.items()))
                raise WriteRejectedError(
                    f"{value!r} is not a defined value of {point.name} ({choices})",
                    device=self.name,
                    address=point.address,
                )
        if point.min is not None or point.max is not None:
            numeric = physical_value(point, value)
            low = point.min
            high = point.max
            live_high = await self._limit_value(profile, point.max_point)
            live_low = await self._limit_value(profile, point.min_point)
            if live_high is not None:
                high = live_high if high is None else min(high, live_high)
            if live_low is not None:
                low = live_low if low is None else max(low, live_low)
            if (low is not None and numeric < low) or (high is not None and numeric > high):
                bound = f" (bounded by {point.max_point})" if live_high is not None else ""
                raise WriteRejectedError(
                    f"{value!r} {point.unit or ''} is outside the limits of {point.name}: "
                    f"{low:g}..{high:g}{bound}".replace("  ", " "),
                    device=self.name,
                    address=point.address,
                )
        return registers

    async def write_point(self, name: str, value: object, *, verify: bool = True) -> WriteResult:
        """Write one writable point after validation: FC06 for one register, FC16 for more;
        then read it back and compare."""
        profile, point = self.find_point(name)
        registers = await self.check_write(profile, point, value)
        fc = 6 if len(registers) == 1 else 16
        await self._request(fc, point.address, registers)
        log.info(
            "wrote point",
            device=self.name,
            point=f"{profile.name}.{point.name}",
            address=point.address,
            value=value,
            registers=registers,
        )
        read_back: Value = None
        verified = False
        if verify and point.readable:
            back = await self.read_registers(point.address, point.length)
            decoded = decode(point, back)
            read_back = decoded.value
            if back != registers:
                raise VerificationError(
                    f"read-back {back} differs from written {registers}",
                    device=self.name,
                    address=point.address,
                )
            verified = True
            self.last_values[f"{profile.name}.{point.name}"] = Reading(
                profile.name, point, decoded.value, decoded.raw, datetime.now(UTC)
            )
        return WriteResult(profile.name, point, value, tuple(registers), fc, verified, read_back)


__all__ = [
    "BoundPoint",
    "ClientSettings",
    "DeviceError",
    "ModbusDevice",
    "PollResult",
    "Reading",
    "WriteResult",
    "read_request",
]
