"""A device without Modbus: a battery that follows its setpoint within its limits, honours held
directions like a real inverter in self-consumption mode, and reports what it was told. It
implements `HybridDevice`, so the cycle runs on it exactly as on the Huawei device."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType

from bessai.devices.base import (
    NO_BLOCK,
    Acquisition,
    Actuation,
    DirectionBlock,
    Measurements,
    ProcessImage,
    TakeOver,
    WriteRecord,
)


@dataclass(slots=True)
class FakeStats:
    requests: int = 0
    errors: int = 0
    timeouts: int = 0
    reconnects: int = 0
    last_latency_s: float = 0.0
    exceptions_by_code: dict[int, int] = field(default_factory=dict)


class FakeDevice:
    """`measurements` is what the next read returns; `battery_power_w` there follows the
    command (or the house load in self-consumption) unless a test pins it."""

    def __init__(self, name: str = "fake", measurements: Measurements | None = None) -> None:
        self._name = name
        self.measurements = measurements or Measurements(
            soc_pct=50.0, battery_power_w=0.0, battery_temp_c=25.0, grid_power_w=0.0,
            alarms_known=True,
        )  # fmt: skip
        self.house_load_w = 0.0
        self.setpoint_w = 0.0
        self.block = NO_BLOCK
        self.answering = True
        self.follow = True
        self.applied: list[tuple[float, DirectionBlock]] = []
        self.held: dict[str, float] = {}
        self._stats = FakeStats()
        self.closed = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def connected(self) -> bool:
        return self.answering

    @property
    def stats(self) -> FakeStats:
        return self._stats

    def _battery_w(self) -> float:
        power_w = self.setpoint_w if self.setpoint_w else -self.house_load_w
        if (power_w > 0 and self.block.charge) or (power_w < 0 and self.block.discharge):
            return 0.0
        return power_w

    async def acquire(self, cycle: int, slow: bool) -> Acquisition:
        self._stats.requests += 1
        now = datetime.now(UTC)
        if not self.answering:
            return Acquisition(ProcessImage(self._name, cycle, now, MappingProxyType({})),
                               Measurements(), ("no answer",), False)  # fmt: skip
        m = self.measurements
        if self.follow:
            m = replace(m, battery_power_w=self._battery_w())
        return Acquisition(ProcessImage(self._name, cycle, now, MappingProxyType({})), m, (), True)

    async def take_over(self, soc_min_pct: float, soc_max_pct: float) -> TakeOver:
        return TakeOver(found_command=None)

    def _write(self, setpoint_w: float, block: DirectionBlock) -> WriteRecord:
        self.applied.append((setpoint_w, block))
        return WriteRecord("fake.setpoint_w", None, setpoint_w, (), None, verified=True)

    async def apply(self, setpoint_w: float, block: DirectionBlock) -> Actuation:
        if block.blocks(setpoint_w):
            raise AssertionError(f"{setpoint_w} W sent in a blocked direction")
        changed = (setpoint_w, block) != (self.setpoint_w, self.block)
        self.setpoint_w, self.block = setpoint_w, block
        return Actuation((self._write(setpoint_w, block),) if changed else ())

    async def stop(self, block: DirectionBlock = NO_BLOCK) -> Actuation:
        stopped = self.setpoint_w != 0
        self.setpoint_w, self.block = 0.0, block
        return Actuation((self._write(0.0, block),), stopped=stopped)

    def limits_held(self) -> Mapping[str, float]:
        return dict(self.held)

    def restore_memory(self, held: Mapping[str, float]) -> None:
        self.held.update(held)

    async def close(self) -> None:
        self.closed = True
