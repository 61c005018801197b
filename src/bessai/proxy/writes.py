"""Writes from Modbus clients (docs/proxy.md, "Writes").

Nothing a client writes reaches the device as it is, except registers an operator listed for it:

- a client not in `[proxy] writers` is read-only: every write is refused with exception 2, which
  Huawei devices answer to writes without permission (huawei-solar reads it that way too);
- the forcible sequence (`sequence.SEQUENCE`) becomes a manual override from controller
  `proxy:<address>`, after the same verdict the API override asks (`SiteRunner.verdict`), and
  is audited the same way: clamped is accepted (the override holds the clamped setpoint),
  blocked is refused with exception 4 (the value is valid, the site cannot run it now);
  a stop (47100 = 0) ends this client's own override, never another's;
- the power limit settings 47075/47077 (`limits`) go to the device: lowering always (a
  restriction), raising only while the gateway does not hold that direction (exception 4);
- listed `registers` go to the device as they are, checked against the profile;
- a write that leaves a register as it is (huawei-solar's write-permission probe writes the
  time zone back) is accepted without being sent, and the heartbeat 49999 = 1 of a logged-in
  client too.

Values outside a point's profile limits (including live ones: 47249 <= 37048) get exception 3,
as from the device.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from bessai.config import ProxyWriterConfig
from bessai.control.audit import AuditRecord
from bessai.control.safety import GuardDecision, Outcome
from bessai.control.site import CycleRecord, SiteRunner
from bessai.errors import (
    ConfigError,
    DeviceError,
    ModbusExceptionError,
    VerificationError,
    WriteRejectedError,
)
from bessai.modbus.client import ModbusDevice
from bessai.modbus.codec import decode
from bessai.modbus.profile import Point, PointType, Profile
from bessai.proxy.image import Answer, ServedImage
from bessai.proxy.sequence import (
    COMMAND,
    LIMITS,
    SEQUENCE,
    STOP,
    BatteryRequest,
    ClientSequence,
    SequenceError,
    target_reached,
)

log = structlog.get_logger("bessai.proxy")

LUNA = "huawei_luna2000"
HEARTBEAT = 49999
ILLEGAL_ADDRESS, ILLEGAL_VALUE, DEVICE_FAILURE, GATEWAY_NO_RESPONSE = 2, 3, 4, 11


class RefusedError(Exception):
    """A write answered with a Modbus exception code, and why."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Target:
    profile: Profile
    point: Point
    words: list[int]
    kind: str  # "sequence", "limit" or "register"


class ClientWrites:
    """Judges and carries out the writes of the clients allowed to write."""

    def __init__(
        self,
        site: SiteRunner,
        device: ModbusDevice,
        image: ServedImage,
        writers: list[ProxyWriterConfig],
    ) -> None:
        self.site = site
        self.device = device
        self.image = image
        self.writers = [(ipaddress.ip_network(w.client, strict=False), w) for w in writers]
        self.sequences: dict[str, ClientSequence] = {}
        self._points: dict[int, tuple[Profile, Point]] = {
            point.address: (prof, point)
            for prof in device.profiles.values()
            for point in prof.points
        }
        self._tasks: set[asyncio.Task[None]] = set()
        self._check_registers()

    def _check_registers(self) -> None:
        for index, (_, writer) in enumerate(self.writers):
            for address in writer.registers:
                found = self._points.get(address)
                key = f"proxy.writers[{index}].registers"
                if found is None or not found[1].writable:
                    raise ConfigError(f"{key}: {address} is not a writable register")
                if found[1].name in SEQUENCE | LIMITS:
                    raise ConfigError(
                        f"{key}: {address} ({found[1].name}) is dispatch or a battery limit; it "
                        "goes through the safety verdict (forcible = true, limits = true)"
                    )

    def writer(self, client: str) -> ProxyWriterConfig | None:
        """The first `[proxy] writers` entry that names this address."""
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return None
        return next((w for net, w in self.writers if address in net), None)

    # -- one write request ------------------------------------------------------------------

    async def write(self, client: str, address: int, registers: list[int], now: float) -> str:
        """Carry out a client's FC06/FC16 write, or raise `RefusedError` with the answer's code.
        Returns how it was taken: accepted, clamped (by the verdict) or unchanged."""
        if address == HEARTBEAT and registers == [1]:
            return "unchanged"  # keeps a logged-in session alive on the device
        writer = self.writer(client)
        if writer is None:
            raise RefusedError(ILLEGAL_ADDRESS, "this client may not write (not in proxy.writers)")
        targets = self._targets(writer, address, registers)
        if targets is None:
            if self._unchanged(address, registers, now):
                return "unchanged"  # the same words back: nothing to send (permission probes)
            raise RefusedError(
                ILLEGAL_ADDRESS, f"register {address} is not writable for this client"
            )
        values = [await self._value(t) for t in targets]
        sequence = self.sequences.setdefault(client, ClientSequence(client))
        touched: set[str] = set()
        for target, value in zip(targets, values, strict=True):
            if target.kind == "sequence":
                sequence.values[target.point.name] = value
                touched.add(target.point.name)
            else:
                await self._to_device(client, target, value)
        if touched:
            outcome = await self._judge(sequence, command_written=COMMAND in touched)
            if outcome is Outcome.CLAMPED:
                return "clamped"
        return "accepted"

    def _targets(
        self, writer: ProxyWriterConfig, address: int, registers: list[int]
    ) -> list[Target] | None:
        """The whole points the write covers, each one this client may write; else None."""
        end = address + len(registers)
        cursor = address
        targets: list[Target] = []
        while cursor < end:
            found = self._points.get(cursor)
            if found is None or found[1].end > end or not found[1].writable:
                return None
            prof, point = found
            if prof.name == LUNA and point.name in SEQUENCE:
                kind = "sequence" if writer.forcible else ""
            elif prof.name == LUNA and point.name in LIMITS:
                kind = "limit" if writer.limits else ""
            else:
                kind = "register" if point.address in writer.registers else ""
            if not kind:
                return None
            words = registers[cursor - address : point.end - address]
            targets.append(Target(prof, point, words, kind))
            cursor = point.end
        return targets

    def _unchanged(self, address: int, registers: list[int], now: float) -> bool:
        served = self.image.lookup(address, len(registers), now)
        return served.answer is Answer.WORDS and list(served.words) == registers

    async def _value(self, target: Target) -> float:
        """The physical value written, checked against the profile as the device would."""
        point = target.point
        decoded = decode(point, target.words)
        value = decoded.raw if point.type in (PointType.ENUM, PointType.BITFIELD) else decoded.value
        if not isinstance(value, int | float):
            raise RefusedError(ILLEGAL_VALUE, f"{point.name}: {target.words} is not a value")
        try:
            await self.device.check_write(target.profile, point, value)
        except WriteRejectedError as exc:
            raise RefusedError(ILLEGAL_VALUE, str(exc)) from None
        except DeviceError as exc:  # a live limit could not be read
            raise RefusedError(GATEWAY_NO_RESPONSE, str(exc)) from None
        return float(value)

    # -- registers that go to the device ------------------------------------------------------

    async def _to_device(self, client: str, target: Target, value: float) -> None:
        point = target.point
        if target.kind == "limit":
            held = self.site.device.limits_held()
            if point.name in held:
                if value == 0:
                    return  # the gateway holds it at 0 already
                raise RefusedError(
                    DEVICE_FAILURE,
                    f"the gateway holds {point.name} at 0 (a safety block); try again later",
                )
        try:
            result = await self.device.write_point(f"{target.profile.name}.{point.name}", value)
        except WriteRejectedError as exc:
            raise RefusedError(ILLEGAL_VALUE, str(exc)) from None
        except ModbusExceptionError as exc:
            raise RefusedError(exc.code, str(exc)) from None
        except VerificationError as exc:
            raise RefusedError(DEVICE_FAILURE, str(exc)) from None
        except DeviceError as exc:
            raise RefusedError(GATEWAY_NO_RESPONSE, str(exc)) from None
        note = GuardDecision(0.0, 0.0, Outcome.ALLOWED, "a setting, not a setpoint: profile limits")
        await self._audit(
            client,
            f"{target.profile.name}.{point.name} = {value:g} (register {point.address})",
            note,
            [
                {
                    "point": f"{result.profile}.{point.name}",
                    "address": point.address,
                    "value": value,
                    "registers": list(result.registers),
                    "fc": result.function_code,
                    "verified": result.verified,
                }
            ],
        )

    # -- the forcible sequence -----------------------------------------------------------------

    def _device_value(self, name: str) -> float | None:
        reading = self.device.last_values.get(f"{LUNA}.{name}")
        if reading is None or not reading.available or reading.error is not None:
            return None
        raw = reading.raw
        if isinstance(reading.value, str) and isinstance(raw, int):
            return float(raw)  # an enum: its number
        return float(reading.value) if isinstance(reading.value, int | float) else None

    def ours(self, sequence: ClientSequence) -> bool:
        """True while the site's override is one installed for this client (also one restored
        after a restart: its reason names the client)."""
        override = self.site.override
        return (
            override.setpoint_w is not None
            and override.until is not None
            and override.until > datetime.now(UTC)
            and override.reason.endswith(_by(sequence.client))
        )

    async def _judge(self, sequence: ClientSequence, *, command_written: bool) -> Outcome | None:
        """Turn the client's registers into a request: when it writes the command, and when it
        changes a register while its command stands (evcc writes the command first, then the
        mode, the period and the power)."""
        if command_written:
            sequence.armed = int(sequence.values[COMMAND]) != STOP
            if not sequence.armed:
                await self._end(sequence, "stop (47100 = 0)")
                return None
        if not sequence.armed:
            return None  # settings for a later command, as on the device
        try:
            request = sequence.request_from(self._device_value, self.site.override.max_s)
        except SequenceError as exc:
            # Taken, as the device takes it; it runs once the client has written the rest.
            log.debug("client command waits for the rest of its sequence", reason=str(exc))
            return None
        if request is None:
            return None
        return await self._install(sequence, request, self.ours(sequence))

    async def _install(
        self, sequence: ClientSequence, request: BatteryRequest, running: bool
    ) -> Outcome:
        # The same verdict the API override and the cycle ask, on the latest measurements.
        decision = self.site.verdict(request.setpoint_w)
        signature = (
            round(decision.setpoint_w),
            decision.outcome.value,
            request.command,
            request.target_soc_pct,
        )
        changed = signature != sequence.audited or not running
        if decision.outcome is Outcome.BLOCKED:
            if changed:
                await self._audit(sequence.client, request.description, decision, [])
                sequence.audited = signature
            raise RefusedError(DEVICE_FAILURE, f"blocked: {decision.reason}")
        until = await self.site.install_override(
            decision.setpoint_w,
            request.duration_s,
            f"{request.description} {_by(sequence.client)}",
        )
        sequence.request = request
        if changed:
            await self._audit(sequence.client, request.description, decision, [])
            sequence.audited = signature
        else:
            log.debug("client request refreshed", client=sequence.client, until=until)
        return decision.outcome

    async def _end(self, sequence: ClientSequence, why: str) -> None:
        if self.ours(sequence):
            await self.site.clear_override()
            note = GuardDecision(0.0, 0.0, Outcome.ALLOWED, "stopping is always allowed")
            await self._audit(sequence.client, f"override ended: {why}", note, [])
        sequence.armed = False
        sequence.request = None
        sequence.audited = None

    def on_cycle(self, record: CycleRecord) -> None:
        """End SOC-mode requests at their target, as the device would."""
        for sequence in self.sequences.values():
            request = sequence.request
            if request is None or not target_reached(request, record.measurements.soc_pct):
                continue
            if not self.ours(sequence):
                continue
            sequence.request = None  # once
            task = asyncio.get_running_loop().create_task(
                self._end(sequence, f"target SOC {request.target_soc_pct:g} % reached")
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _audit(
        self,
        client: str,
        what: str,
        decision: GuardDecision,
        writes: list[dict[str, object]],
    ) -> None:
        record = AuditRecord(
            ts=datetime.now(UTC),
            site=self.site.id,
            controller=f"proxy:{client}",
            reason=f"{what} (Modbus client {client})",
            requested_w=decision.requested_w,
            setpoint_w=decision.setpoint_w,
            outcome=decision.outcome.value,
            guard_reason=decision.reason,
            binding_limit=decision.binding_limit,
            writes=writes,
            verified=all(bool(w.get("verified", True)) for w in writes),
        )
        await asyncio.to_thread(self.site.audit.append, record)
        log.info("proxy control action", site=self.site.id, client=client, action=what,
                 outcome=decision.outcome.value, setpoint_w=decision.setpoint_w)  # fmt: skip

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _by(client: str) -> str:
    """How an override's reason names the client it was installed for."""
    return f"(by proxy:{client})"
