"""Foreign-write detection: re-read the control registers the gateway owns and flag any value it
did not write.

The gateway's own writes are learned from the Modbus client itself (`write_listeners`), so a
write by the cycle, the take-over, the direction hold or a proxy client the gateway let through
is "ours". Everything else that changes one of these registers is foreign, whoever sent it and
whether or not we saw their traffic. The first value read of a register that the gateway has not
written is trusted (the operator's setting at start).

Cost: the control points sit in two address blocks (47075-47102 and 47246-47250); one block is
re-read per cycle in turn, one request a cycle, so every register is seen at least every second
cycle.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bessai.control.watch import SecurityAlert
from bessai.devices.base import WriteRecord
from bessai.devices.huawei import LUNA, write_record
from bessai.errors import DeviceError
from bessai.modbus.client import ModbusDevice
from bessai.modbus.codec import decode, raw_to_registers
from bessai.modbus.planner import BoundPoint
from bessai.modbus.profile import Point

#: The registers the gateway owns (docs/profiles.md, "Storage control"), by block.
CONTROL_BLOCKS: tuple[tuple[str, ...], ...] = (
    (
        "max_charge_power_setting_w",
        "max_discharge_power_setting_w",
        "charge_cutoff_soc_pct",
        "discharge_cutoff_soc_pct",
        "forcible_period_min",
        "working_mode_setting",
        "charge_from_grid",
        "grid_charge_cutoff_soc_pct",
        "forcible_command",
        "forcible_target_soc_pct",
        "backup_power_soc_pct",
    ),
    ("forcible_mode", "forcible_charge_power_w", "forcible_discharge_power_w"),
)

#: Values the device itself sets: a forcible command ends on its own (period or target SOC).
DEVICE_SET = {"forcible_command": frozenset({0})}


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A control register holding a value the gateway did not write."""

    point: Point
    expected_raw: int
    seen_raw: int

    def alert(self) -> SecurityAlert:
        """The operator's view of this mismatch."""
        expected = decode(self.point, raw_to_registers(self.expected_raw, self.point.length))
        seen = decode(self.point, raw_to_registers(self.seen_raw, self.point.length))
        return SecurityAlert(
            kind="foreign_write",
            check="control register re-read",
            message=(
                f"{self.point.name} ({self.point.address}) holds {seen.value!r}, "
                f"the gateway wrote {expected.value!r}: written by another client"
            ),
            evidence={
                "register": self.point.address,
                "point": f"{LUNA}.{self.point.name}",
                "expected": expected.value,
                "seen": seen.value,
            },
            confidence="high",
        )


class ForeignWriteWatch:
    """Expected values of the gateway's control registers, and the scheduled re-reads that
    compare them with the device."""

    def __init__(self, modbus: ModbusDevice, reread_every: int = 1) -> None:
        self.modbus = modbus
        self.reread_every = reread_every
        luna = modbus.profiles[LUNA]
        self.blocks = [[BoundPoint(LUNA, luna.point(name)) for name in b] for b in CONTROL_BLOCKS]
        self._by_address = {bp.point.address: bp.point for b in self.blocks for bp in b}
        #: point name -> the raw value the gateway wrote (or found at start)
        self.expected: dict[str, int] = {}
        self._turn = 0
        self.rereads = 0
        #: how long the last re-read took (I/O), for the benchmark's cost split
        self.last_reread_s = 0.0
        self.last_reread_cpu_s = 0.0
        modbus.write_listeners.append(self._on_write)

    def _on_write(self, address: int, registers: tuple[int, ...], landed: bool) -> None:
        point = self._by_address.get(address)
        if point is None:
            return
        if landed:
            self.expected[point.name] = int(decode(point, list(registers)).raw or 0)
        else:
            # The write may or may not have landed: learn the register again at the next read.
            self.expected.pop(point.name, None)

    async def check(self, cycle: int) -> list[Mismatch]:
        """Re-read the block due this cycle (if any) and return what differs from ours. When
        one block shows a foreign value, the others are read at once too: an injection usually
        spans both (power, then command), and the restore must be whole."""
        if cycle % self.reread_every:
            return []
        started, started_cpu = time.perf_counter(), time.thread_time()
        try:
            return await self._check()
        finally:
            self.last_reread_s = time.perf_counter() - started
            self.last_reread_cpu_s = time.thread_time() - started_cpu

    async def _check(self) -> list[Mismatch]:
        turn = self._turn % len(self.blocks)
        self._turn += 1
        mismatches = await self._read_block(self.blocks[turn])
        if mismatches:
            for other, block in enumerate(self.blocks):
                if other != turn:
                    mismatches.extend(await self._read_block(block))
        return mismatches

    async def _read_block(self, block: list[BoundPoint]) -> list[Mismatch]:
        try:
            result = await self.modbus.read_points(block)
        except DeviceError:
            return []  # an unanswered re-read is the protocol checks' business
        self.rereads += 1
        mismatches = []
        for bp in block:
            reading = result.readings.get(bp.key)
            if reading is None or reading.error is not None or not isinstance(reading.raw, int):
                continue
            seen = reading.raw
            expected = self.expected.setdefault(bp.point.name, seen)
            if seen == expected:
                continue
            if seen in DEVICE_SET.get(bp.point.name, frozenset()):
                self.expected[bp.point.name] = seen  # the device's own doing
                continue
            mismatches.append(Mismatch(bp.point, expected, seen))
        return mismatches

    async def restore(self, mismatches: list[Mismatch]) -> tuple[list[WriteRecord], list[str]]:
        """Write the gateway's values back, each verified by read-back. Returns the writes and
        the errors of those that failed."""
        writes: list[WriteRecord] = []
        errors: list[str] = []
        for mismatch in mismatches:
            point = mismatch.point
            value = decode(point, raw_to_registers(mismatch.expected_raw, point.length)).value
            try:
                result = await self.modbus.write_point(f"{LUNA}.{point.name}", value)
            except DeviceError as exc:
                errors.append(f"restoring {point.name}: {exc}")
                continue
            writes.append(write_record(result))
        return writes, errors
