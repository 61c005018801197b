"""Huawei SUN2000 + LUNA2000 + meter as one hybrid device.

Reading: the process image becomes `Measurements` in the product's conventions (battery > 0
charging, grid > 0 importing: the meter's 37113 is > 0 for export, so it is negated here, once).

Acting: a battery setpoint becomes the forcible sequence used in the field (reference §2.9):
power in 47247 (charge) or 47249 (discharge), a short period in 47083, mode 47246 = time, command
47100; re-written before the period expires while the setpoint holds, stopped with 47100 = 0.
The device-side period means a dead gateway stops dispatching by itself within minutes. Only
what changed or is due is written, and every write is verified by read-back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from enum import IntEnum

import structlog

from bessai.config import DispatchConfig
from bessai.control.image import PointValue, ProcessImage, Quality
from bessai.errors import DeviceError
from bessai.modbus.client import ModbusDevice, WriteResult

log = structlog.get_logger("bessai.devices")

SUN = "huawei_sun2000"
LUNA = "huawei_luna2000"
METER = "huawei_dtsu666"


class Forcible(IntEnum):
    STOP = 0
    CHARGE = 1
    DISCHARGE = 2


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
    max_charge_w: float | None = None
    max_discharge_w: float | None = None
    charge_limit_setting_w: float | None = None
    discharge_limit_setting_w: float | None = None
    capacity_wh: float | None = None
    alarms: tuple[str, ...] = ()
    device_status: str | None = None
    battery_status: str | None = None
    meter_online: bool | None = None
    forcible_command: int | None = None


def _number(image: ProcessImage, profile: str, name: str) -> float | None:
    return image.number(f"{profile}.{name}")


def _system(image: ProcessImage, ess: str, unit1: str) -> PointValue | None:
    """A storage-system value, when good. With one battery unit its ESS register equals unit 1's,
    and unit 1's is the one read every cycle (docs/profiles.md, "Poll groups and requests per
    cycle"); the ESS register stands in only where unit 1's is not served and was read as
    recently."""
    model = image.get(f"{LUNA}.unit2_product_model")
    system = image.get(f"{LUNA}.{ess}")
    system_good = system is not None and system.quality is Quality.GOOD
    if model is None or model.raw != 0:  # a second unit (or not known): only the ESS register
        return system if system_good else None
    unit = image.get(f"{LUNA}.{unit1}")
    if unit is not None and unit.quality is not Quality.INVALID:
        return unit if unit.quality is Quality.GOOD else None
    if system is None or not system_good:
        return None
    if unit is not None and unit.ts is not None and (system.ts is None or system.ts < unit.ts):
        return None
    return system


def _system_number(image: ProcessImage, ess: str, unit1: str) -> float | None:
    point = _system(image, ess, unit1)
    value = None if point is None else point.value
    return float(value) if isinstance(value, int | float) else None


def measurements(image: ProcessImage) -> Measurements:
    """Site values from the process image of a Huawei hybrid."""
    meter_status = image.good(f"{METER}.meter_status")
    meter_online = None if meter_status is None else meter_status == "normal"
    meter_w = _number(image, METER, "active_power_w") if meter_online else None
    grid_w = -meter_w if meter_w is not None else None
    inverter_w = _number(image, SUN, "active_power_w")
    temps = [
        t
        for t in (_number(image, LUNA, "unit1_temp_c"), _number(image, LUNA, "unit2_temp_c"))
        if t is not None
    ]
    alarms: list[str] = []
    for name in ("alarm_1", "alarm_2", "alarm_3"):
        value = image.good(f"{SUN}.{name}")
        if isinstance(value, tuple):
            alarms.extend(value)
    status = _system(image, "running_status", "unit1_running_status")
    battery_status = None if status is None else status.value
    device_status = image.good(f"{SUN}.device_status")
    command = image.get(f"{LUNA}.forcible_command")
    command_raw = command.raw if command is not None and isinstance(command.raw, int) else None
    return Measurements(
        soc_pct=_system_number(image, "soc_pct", "unit1_soc_pct"),
        battery_power_w=_system_number(image, "power_w", "unit1_power_w"),
        battery_temp_c=max(temps) if temps else None,
        pv_power_w=_number(image, SUN, "input_power_w"),
        grid_power_w=grid_w,
        # What the house draws: grid import plus what the inverter puts out on AC.
        load_power_w=grid_w + inverter_w if grid_w is not None and inverter_w is not None else None,
        inverter_power_w=inverter_w,
        max_charge_w=_number(image, LUNA, "max_charge_power_w"),
        max_discharge_w=_number(image, LUNA, "max_discharge_power_w"),
        charge_limit_setting_w=_number(image, LUNA, "max_charge_power_setting_w"),
        discharge_limit_setting_w=_number(image, LUNA, "max_discharge_power_setting_w"),
        capacity_wh=_number(image, LUNA, "rated_capacity_wh"),
        alarms=tuple(alarms),
        device_status=str(device_status) if device_status is not None else None,
        battery_status=str(battery_status) if battery_status is not None else None,
        meter_online=meter_online,
        forcible_command=command_raw,
    )


@dataclass(frozen=True, slots=True)
class ControlState:
    """What the device's forcible registers hold, as last read or written."""

    command: int | None = None
    mode: int | None = None
    period_min: int | None = None
    charge_w: float | None = None
    discharge_w: float | None = None
    charge_from_grid: int | None = None
    refreshed_at: float = field(default=0.0)  # monotonic time of the last command write


@dataclass(frozen=True, slots=True)
class ActResult:
    target: Forcible
    power_w: float
    writes: tuple[WriteResult, ...]


class HuaweiDispatcher:
    """Turns guarded setpoints into forcible charge/discharge writes on one hybrid device."""

    def __init__(self, device: ModbusDevice, config: DispatchConfig) -> None:
        self.device = device
        self.config = config
        self.state = ControlState()
        self._grid_refused = False

    def _value(self, name: str) -> float | None:
        reading = self.device.last_values.get(f"{LUNA}.{name}")
        if reading is None or reading.value is None or not reading.available:
            return None
        value = reading.value
        if isinstance(value, str) and isinstance(reading.raw, int):
            return float(reading.raw)  # an enum: the register's number, not its label
        return float(value) if isinstance(value, int | float) else None

    def sync_from_device(self) -> ControlState:
        """Take the control registers from the device's last read (start-up, slow polls)."""

        def as_int(name: str) -> int | None:
            value = self._value(name)
            return None if value is None else int(value)

        self.state = replace(
            self.state,
            command=as_int("forcible_command"),
            mode=as_int("forcible_mode"),
            period_min=as_int("forcible_period_min"),
            charge_w=self._value("forcible_charge_power_w"),
            discharge_w=self._value("forcible_discharge_power_w"),
            charge_from_grid=as_int("charge_from_grid"),
        )
        return self.state

    async def _write(self, name: str, value: float | int) -> WriteResult:
        result = await self.device.write_point(f"{LUNA}.{name}", value)
        return result

    async def align_cutoffs(self, soc_min_pct: float, soc_max_pct: float) -> list[WriteResult]:
        """Make the inverter's own cutoffs match the safety limits, within what it accepts
        (47081: 90-100 %, 47082: 0-20 %), so its self-consumption mode respects them too."""
        writes = []
        wanted = {
            "charge_cutoff_soc_pct": min(100.0, max(90.0, soc_max_pct)),
            "discharge_cutoff_soc_pct": min(20.0, max(0.0, soc_min_pct)),
        }
        for name, value in wanted.items():
            current = self._value(name)
            if current is None or abs(current - value) > 0.05:
                writes.append(await self._write(name, value))
        return writes

    def target_of(self, setpoint_w: float) -> Forcible:
        if abs(setpoint_w) < max(self.config.deadband_w, 1.0):
            return Forcible.STOP
        return Forcible.CHARGE if setpoint_w > 0 else Forcible.DISCHARGE

    async def stop(self) -> list[WriteResult]:
        """47100 = 0 unless the device is known to be stopped already."""
        if self.state.command == Forcible.STOP:
            return []
        result = await self._write("forcible_command", int(Forcible.STOP))
        self.state = replace(self.state, command=int(Forcible.STOP))
        return [result]

    async def apply(self, setpoint_w: float, now_s: float | None = None) -> ActResult:
        """Write what the setpoint needs that the device does not already hold."""
        now_s = time.monotonic() if now_s is None else now_s
        target = self.target_of(setpoint_w)
        if target is Forcible.STOP:
            return ActResult(target, 0.0, tuple(await self.stop()))
        power_w = float(round(abs(setpoint_w)))
        writes: list[WriteResult] = []
        state = self.state
        power_name = (
            "forcible_charge_power_w" if target is Forcible.CHARGE else "forcible_discharge_power_w"
        )
        current_w = state.charge_w if target is Forcible.CHARGE else state.discharge_w
        if current_w is None or abs(current_w - power_w) >= self.config.deadband_w:
            writes.append(await self._write(power_name, power_w))
            state = (
                replace(state, charge_w=power_w)
                if target is Forcible.CHARGE
                else replace(state, discharge_w=power_w)
            )
        if target is Forcible.CHARGE and state.charge_from_grid != 1 and not self._grid_refused:
            # A forcible charge draws on the grid when PV is short (evcc does the same). Some
            # firmware refuses this write (exception 4 seen in the field, evcc #30620): then the
            # charge still runs, from PV only, and the refusal is not repeated every cycle.
            try:
                writes.append(await self._write("charge_from_grid", 1))
                state = replace(state, charge_from_grid=1)
            except DeviceError as exc:
                self._grid_refused = True
                log.warning(
                    "charge from grid (47087) refused; charging from PV only", error=str(exc)
                )
        if state.mode != 0:
            writes.append(await self._write("forcible_mode", 0))
            state = replace(state, mode=0)
        due = (
            state.command != int(target)
            or state.period_min != self.config.forcible_period_min
            or now_s - state.refreshed_at >= self.config.refresh_s
        )
        if due:
            # Period first, then the command: rewriting either restarts the device-side timer.
            writes.append(await self._write("forcible_period_min", self.config.forcible_period_min))
            writes.append(await self._write("forcible_command", int(target)))
            state = replace(
                state,
                period_min=self.config.forcible_period_min,
                command=int(target),
                refreshed_at=now_s,
            )
        self.state = state
        return ActResult(target, power_w, tuple(writes))
