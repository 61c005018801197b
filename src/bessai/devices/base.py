"""The vendor-neutral device interface: what the control cycle needs from a hybrid inverter with
a battery and a grid meter, whatever its make or protocol.

The cycle, the guard and the controllers depend on this module only; a vendor module (Huawei
today) implements `HybridDevice`. Adding a second vendor means a module beside `huawei.py` and a
line in `registry.py`, never a change in `bessai.control`.

Signs everywhere on this side of the interface: battery power > 0 = charging, grid power > 0 =
import. A device converts its own conventions once, in its implementation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from bessai.modbus.image import PointValue, ProcessImage, Quality

__all__ = [
    "HOLD_BOTH",
    "NO_BLOCK",
    "Acquisition",
    "Actuation",
    "DeviceStats",
    "Direction",
    "DirectionBlock",
    "HybridDevice",
    "Measurements",
    "PointValue",
    "ProcessImage",
    "Quality",
    "TakeOver",
    "WriteRecord",
]


class Direction(StrEnum):
    CHARGE = "charge"
    DISCHARGE = "discharge"


@dataclass(frozen=True, slots=True)
class Measurements:
    """One cycle's site values in internal conventions; None when not known with good quality."""

    soc_pct: float | None = None
    battery_power_w: float | None = None
    battery_temp_c: float | None = None
    pv_power_w: float | None = None
    grid_power_w: float | None = None
    load_power_w: float | None = None
    inverter_power_w: float | None = None
    #: what the battery can take or give now (the device's capability)
    max_charge_w: float | None = None
    max_discharge_w: float | None = None
    #: the operator's power limit settings on the device (not the gateway's own block)
    charge_limit_setting_w: float | None = None
    discharge_limit_setting_w: float | None = None
    capacity_wh: float | None = None
    alarms: tuple[str, ...] = ()
    #: False while the alarm registers have not been read with good quality: no alarms known
    alarms_known: bool = False
    device_status: str | None = None
    battery_status: str | None = None
    meter_online: bool | None = None
    #: the forcible command the device reports: None unknown, else a `Direction` or "stop"
    dispatch_command: str | None = None
    #: how the device names each limit above, for the guard's reasons ("device capability 37046")
    limit_sources: Mapping[str, str] = field(default_factory=dict)

    def source(self, name: str) -> str:
        """The device's name for a limit field, or a generic one."""
        return self.limit_sources.get(name, f"device {name}")


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """One write to a device, for the audit, telemetry and tests."""

    point: str  # "<profile>.<point>" or the vendor's own name
    address: int | None
    value: object
    registers: tuple[int, ...]
    function_code: int | None
    verified: bool
    readable: bool = True

    @property
    def confirmed(self) -> bool:
        """Verified by read-back, or a write-only register that cannot be read back."""
        return self.verified or not self.readable


@dataclass(frozen=True, slots=True)
class Acquisition:
    """One cycle's read: the frozen image, the measurements made from it, what went wrong, and
    whether the device answered at all (a device that does not answer takes no writes)."""

    image: ProcessImage
    measurements: Measurements
    errors: tuple[str, ...]
    answering: bool


@dataclass(frozen=True, slots=True)
class DirectionBlock:
    """Directions the battery must not move in, whatever the inverter's own working mode."""

    charge: bool = False
    discharge: bool = False

    @property
    def any(self) -> bool:
        return self.charge or self.discharge

    def blocks(self, setpoint_w: float) -> bool:
        return (setpoint_w > 0 and self.charge) or (setpoint_w < 0 and self.discharge)


NO_BLOCK = DirectionBlock()
HOLD_BOTH = DirectionBlock(charge=True, discharge=True)


@dataclass(frozen=True, slots=True)
class Actuation:
    """What one `apply` or `stop` call wrote; `stopped` when it ended a dispatch command."""

    writes: tuple[WriteRecord, ...] = ()
    stopped: bool = False


@dataclass(frozen=True, slots=True)
class TakeOver:
    """What the device held when the gateway first saw it: a dispatch command left running by
    someone (a previous gateway, another tool), and the writes that aligned its settings."""

    found_command: Direction | None
    writes: tuple[WriteRecord, ...] = ()


class DeviceStats(Protocol):
    """Request counters a device keeps, for metrics and health."""

    @property
    def requests(self) -> int: ...

    @property
    def errors(self) -> int: ...

    @property
    def timeouts(self) -> int: ...

    @property
    def reconnects(self) -> int: ...

    @property
    def last_latency_s(self) -> float: ...

    @property
    def exceptions_by_code(self) -> Mapping[int, int]:
        """Protocol exception answers by code (Modbus exception codes for Modbus devices)."""
        ...


class HybridDevice(Protocol):
    """A hybrid inverter with a battery and a grid meter, as the control cycle sees it."""

    @property
    def name(self) -> str:
        """A stable name for logs, metrics and health (e.g. 'site/host:port/unit')."""
        ...

    @property
    def connected(self) -> bool: ...

    @property
    def stats(self) -> DeviceStats: ...

    async def acquire(self, cycle: int, slow: bool) -> Acquisition:
        """Read what the cycle needs (`slow`: the rarely changing values too) and freeze it."""
        ...

    async def take_over(self, soc_min_pct: float, soc_max_pct: float) -> TakeOver:
        """Once, after the first good read: learn what the device holds and align its own
        SOC cutoffs with the gateway's limits where it can."""
        ...

    async def apply(self, setpoint_w: float, block: DirectionBlock) -> Actuation:
        """Make the battery follow `setpoint_w` (> 0 charge), already judged by the safety
        verdict, and keep it from moving in a blocked direction whatever the device's working
        mode. Writes only what changed or is due, verified by read-back."""
        ...

    async def stop(self, block: DirectionBlock = NO_BLOCK) -> Actuation:
        """End any dispatch command (and hold the blocked directions)."""
        ...

    def limits_held(self) -> Mapping[str, float]:
        """The device's own settings the gateway has overwritten to block a direction, with
        the values to restore: persisted by the caller, so a restart can restore them."""
        ...

    def restore_memory(self, held: Mapping[str, float]) -> None:
        """Give back what `limits_held` returned before a restart."""
        ...

    async def close(self) -> None: ...
