"""Async Modbus TCP client for one device (one connection, one lock), with Huawei field habits.

Huawei devices swallow requests sent right after a connect, answer "busy" under load, accept one
TCP client at a time and can be slow (docs/profiles.md, "The client's field habits"). So: wait
after every (re)connect, keep a cooldown between requests, retry timeouts, busy (6) and device
failure (4) with back-off, reconnect with exponential back-off up to a ceiling, and never let a
refused address (2) fail a whole poll: split the read, learn which addresses fail, and remember
that for the session.

A wrong unit id shows up on site as silence on a live connection (or, behind a Modbus gateway, as
exception 10/11). A unit that has never answered is therefore not retried: the first request
fails within one timeout with a message that says to check the unit id.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

import structlog
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from bessai.errors import (
    MODBUS_EXCEPTION_NAMES,
    DeviceConnectionError,
    DeviceError,
    DeviceTimeoutError,
    ModbusExceptionError,
    UnitNotAnsweringError,
    VerificationError,
    WriteRejectedError,
)
from bessai.modbus.cache import RegisterCache
from bessai.modbus.codec import Value, decode, encode, physical_value
from bessai.modbus.planner import (
    AddressMap,
    BoundPoint,
    ReadRequest,
    plan_reads,
    read_request,
    split_request,
)
from bessai.modbus.profile import Point, PollGroup, PresentIf, Profile
from bessai.modbus.results import ClientSettings, ClientStats, PollResult, Reading, WriteResult

log = structlog.get_logger("bessai.modbus")

ILLEGAL_ADDRESS = 2
DEVICE_FAILURE = 4
DEVICE_BUSY = 6
RETRYABLE_EXCEPTIONS = frozenset({DEVICE_FAILURE, DEVICE_BUSY})
#: a Modbus gateway (SDongle, proxy) answering for a unit behind it that does not answer
GATEWAY_EXCEPTIONS = frozenset({10, 11})
UNIT_HINT = "check the unit id (SDongle 1, inverter access point 0)"
_POLL_ORDER = {PollGroup.FAST: 0, PollGroup.SLOW: 1, PollGroup.STATIC: 2}


class _ConnectionLostError(DeviceConnectionError):
    """The device closed or reset an established connection; worth one more try."""


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
        #: the raw words of every successful read, for re-serving (`bessai.proxy`)
        self.raw = RegisterCache()
        self._client: AsyncModbusTcpClient | None = None
        self._lock = asyncio.Lock()
        self._last_request_end = 0.0
        self._next_connect_at = 0.0
        self._reconnect_delay_s = self.settings.reconnect_backoff_s
        #: the unit has answered at least once: a timeout is then a slow device, not a wrong id
        self._unit_answered = False
        #: why the unit is taken to be silent (wrong unit id), until it answers
        self._silent: str | None = None
        #: the whole static group has been read (identification, once per session)
        self._identified = False
        #: verified write read-backs not yet handed to a poll result
        self._read_backs: dict[str, Reading] = {}
        #: told of every write this client sends (address, registers, landed): the security
        #: monitor learns from them which register values are the gateway's own
        self.write_listeners: list[Callable[[int, tuple[int, ...], bool], None]] = []
        #: per point, the points it stands in for where the device does not serve them
        self._fallback_of: dict[tuple[str, str], list[Point]] = {}
        for prof in profiles:
            for point in prof.points:
                if point.fallback is not None:
                    self._fallback_of.setdefault((prof.name, point.fallback), []).append(point)

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
            if self._silent is not None:
                raise UnitNotAnsweringError(self._silent, device=self.name)
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
        # While the unit stays silent every retry connects: say "connected" once, not each time.
        (log.debug if self._silent is not None else log.info)("connected", device=self.name)
        return client

    def _schedule_reconnect(self) -> None:
        self._next_connect_at = time.monotonic() + self._reconnect_delay_s
        self._reconnect_delay_s = min(
            self._reconnect_delay_s * 2, self.settings.reconnect_backoff_max_s
        )

    def _connection_lost(self) -> None:
        # Reconnect at once on the next request; the back-off applies to failed connects only.
        self.stats.connection_drops += 1
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
            except UnitNotAnsweringError:
                raise  # retrying a wrong unit id only delays the message by minutes
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
            if not client.connected or time.monotonic() - started < 0.9 * self.settings.timeout_s:
                # The peer closed the connection under the request (pymodbus reports that as a
                # timeout, early or at the timeout): not a silent device.
                self.stats.connection_resets += 1
            # A late answer would be matched to the next request; start over on a new socket.
            self._connection_lost()
            if not self._unit_answered:
                raise self._unit_silent() from None
            raise DeviceTimeoutError(
                f"no answer within {self.settings.timeout_s:g} s ({exc})",
                device=self.name,
                address=address,
            ) from None
        except (ConnectionException, OSError, asyncio.IncompleteReadError) as exc:
            self.stats.errors += 1
            self.stats.connection_resets += 1
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
            if code in GATEWAY_EXCEPTIONS and not self._unit_answered:
                raise self._unit_silent(code)
            self._unit_answers()
            raise ModbusExceptionError(code, device=self.name, address=address, count=count)
        self._unit_answers()
        if fc == 3:
            registers = list(response.registers)
            if len(registers) != count:
                # Seen on SDongles under load: a short answer is treated like busy (quirk 8).
                raise ModbusExceptionError(
                    DEVICE_BUSY, device=self.name, address=address, count=count
                )
            return registers
        return []

    def _unit_silent(self, gateway_code: int | None = None) -> UnitNotAnsweringError:
        """The error for a unit that has never answered; logged once, backs off reconnects."""
        via = ""
        if gateway_code is not None:
            name = MODBUS_EXCEPTION_NAMES.get(gateway_code, "gateway exception")
            via = f" (the gateway answered exception {gateway_code}, {name})"
        message = f"no answer from unit {self.unit_id} at {self.host}:{self.port}{via}: {UNIT_HINT}"
        if self._silent is None:
            log.warning(message, device=self.name)
        self._silent = message
        self._drop_connection()
        self._schedule_reconnect()
        return UnitNotAnsweringError(message, device=self.name)

    def _unit_answers(self) -> None:
        self._unit_answered = True
        if self._silent is not None:
            self._silent = None
            log.info("unit answers", device=self.name)

    async def read_registers(self, address: int, count: int, *, keep: bool = True) -> list[int]:
        """Read raw holding registers (FC03); the words are kept in `raw` unless `keep` is
        False (a read for someone else, such as the proxy's on-demand reads: the raw cache holds
        what the process image was built from)."""
        registers = await self._request(3, address, count)
        if keep:
            self.raw.store(address, registers, time.monotonic())
        return registers

    # -- reading points ---------------------------------------------------------------------

    def bound_points(
        self, groups: Iterable[PollGroup] | None = None, profile: str | None = None
    ) -> list[BoundPoint]:
        """Readable points polled with the given groups on this device, whose presence
        conditions hold."""
        wanted = set(groups) if groups is not None else set(PollGroup)
        result: list[BoundPoint] = []
        for prof in self.profiles.values():
            if profile is not None and prof.name != profile:
                continue
            for point in prof.points:
                group = self.poll_group(prof.name, point)
                if group in wanted and self._present(prof.name, point):
                    result.append(BoundPoint(prof.name, point, group))
        return result

    def poll_group(self, profile: str, point: Point) -> PollGroup | None:
        """The group a point is read with on this device: the profile's, or fast where its
        `fast_if` holds, or the group of a point it stands in for that the device does not serve
        (its `fallback`)."""
        if point.fast_if is not None and self._holds(profile, point.fast_if):
            return PollGroup.FAST
        groups = [point.group] + [
            replaced.group
            for replaced in self._fallback_of.get((profile, point.name), ())
            if self.address_map.is_unsupported(replaced.address, replaced.end)
        ]
        # The most frequent of its own group and those of the points it replaces.
        return min((g for g in groups if g is not None), key=_POLL_ORDER.__getitem__, default=None)

    def _holds(self, profile: str, cond: PresentIf) -> bool:
        ref = self.last_values.get(f"{profile}.{cond.point}")
        if ref is None or not isinstance(ref.raw, int):
            return True  # unknown yet: ask, and let the device say whether it serves it
        return ref.raw >= cond.min

    def _present(self, profile: str, point: Point) -> bool:
        return point.present_if is None or self._holds(profile, point.present_if)

    def _undecided(self, bp: BoundPoint) -> bool:
        """True while a static point that decides this one's presence or group is unknown."""
        return any(
            cond is not None and f"{bp.profile}.{cond.point}" not in self.last_values
            for cond in (bp.point.present_if, bp.point.fast_if)
        )

    def _deciders(self, points: Iterable[BoundPoint]) -> list[BoundPoint]:
        """The static points that decide the presence or poll group of `points`, not read yet."""
        needed: dict[str, BoundPoint] = {}
        for bp in points:
            for cond in (bp.point.present_if, bp.point.fast_if):
                if cond is None or f"{bp.profile}.{cond.point}" in self.last_values:
                    continue
                decider = BoundPoint(bp.profile, self.profiles[bp.profile].point(cond.point))
                needed.setdefault(decider.key, decider)
        return list(needed.values())

    def plan(self, groups: Iterable[PollGroup] | None = None) -> list[ReadRequest]:
        return plan_reads(self.bound_points(groups), self.address_map)

    async def poll(
        self,
        groups: Iterable[PollGroup] | None = None,
        profile: str | None = None,
        *,
        identify: bool = True,
    ) -> PollResult:
        """Read every point of the given groups (default: all).

        With `identify` (the control cycle), the first poll of a session reads the whole static
        group too. Without it, a static point is read only when the wanted points' presence or
        poll group depends on it (number of PV strings, second battery unit), once per session.
        Either way the conditions are known before the points they decide are read."""
        groups = set(groups) if groups is not None else set(PollGroup)
        started = time.monotonic()
        result = PollResult()
        if identify and not self._identified:
            # One pass for the static group and what does not depend on it.
            first = self.bound_points(groups | {PollGroup.STATIC}, profile)
            await self._read_points([bp for bp in first if not self._undecided(bp)], result)
            self._identified = any(
                r.point.group is PollGroup.STATIC and r.available and r.error is None
                for r in result.readings.values()
            )
        else:
            await self._read_points(self._deciders(self.bound_points(groups, profile)), result)
        # Then what the static values have just decided (or everything, once they are known).
        rest = [bp for bp in self.bound_points(groups, profile) if bp.key not in result.readings]
        await self._read_points(rest, result)
        read_backs, self._read_backs = self._read_backs, {}
        for key, reading in read_backs.items():
            # A verified write's read-back is a reading too: the cycle sees what it wrote.
            result.readings.setdefault(key, reading)
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
                self._store(
                    result, Reading(bp.profile, bp.point, None, None, now, False, group=bp.group)
                )
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
                        result,
                        Reading(bp.profile, bp.point, None, None, now, True, message, bp.group),
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
                self._store(
                    result, Reading(bp.profile, bp.point, None, None, now, False, group=bp.group)
                )
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
            self._store(
                result,
                Reading(bp.profile, bp.point, decoded.value, decoded.raw, now, group=bp.group),
            )
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

    def _tell_write(self, address: int, registers: Sequence[int], *, landed: bool) -> None:
        for listener in self.write_listeners:
            listener(address, tuple(registers), landed)

    async def write_point(self, name: str, value: object, *, verify: bool = True) -> WriteResult:
        """Write one writable point after validation: FC06 for one register, FC16 for more;
        then read it back and compare."""
        profile, point = self.find_point(name)
        registers = await self.check_write(profile, point, value)
        fc = 6 if len(registers) == 1 else 16
        try:
            await self._request(fc, point.address, registers)
        except DeviceError:
            self._tell_write(point.address, registers, landed=False)
            raise
        self._tell_write(point.address, registers, landed=True)
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
            group = self.poll_group(profile.name, point)
            reading = Reading(
                profile.name, point, decoded.value, decoded.raw, datetime.now(UTC), group=group
            )
            self.last_values[reading.key] = reading
            self._read_backs[reading.key] = reading
        return WriteResult(profile.name, point, value, tuple(registers), fc, verified, read_back)


__all__ = [
    "BoundPoint",
    "ClientSettings",
    "ClientStats",
    "DeviceError",
    "ModbusDevice",
    "PollResult",
    "Reading",
    "WriteResult",
    "read_request",
]
