"""Huawei SUN2000 + LUNA2000 + meter as one hybrid device (the first `HybridDevice`).

Reading: the process image becomes `Measurements` in the product's conventions (battery > 0
charging, grid > 0 importing: the meter's 37113 is > 0 for export, so it is negated here, once).

Acting: a battery setpoint becomes the forcible sequence used in the field (docs/profiles.md,
"Storage control"): power in 47247 (charge) or 47249 (discharge), a short period in 47083, mode
47246 = time, command 47100; re-written before the period expires while the setpoint holds,
stopped with 47100 = 0. The device-side period means a dead gateway stops dispatching by itself
within minutes. Only what changed or is due is written, and every write is verified by read-back.

Blocking a direction: the forcible command is not the only thing that moves the battery; in its
default working mode (maximise self-consumption) the inverter charges from surplus PV and
discharges into the house load by itself. So a blocked direction also sets the device's own
maximum charge (47075) or discharge (47077) power to 0, as evcc's "hold" mode does, and restores
the operator's value when the block ends. The values to restore are handed to the caller to
persist (`limits_held`), so a restart in between still restores them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import IntEnum

import structlog

from bessai.config import DeviceConfig, DispatchConfig
from bessai.devices.base import (
    NO_BLOCK,
    Acquisition,
    Actuation,
    Direction,
    DirectionBlock,
    Measurements,
    TakeOver,
    WriteRecord,
)
from bessai.errors import DeviceError
from bessai.modbus.client import ClientSettings, ClientStats, ModbusDevice, WriteResult
from bessai.modbus.image import ImageBuilder, PointValue, ProcessImage, Quality
from bessai.modbus.profile import PollGroup, load_profile

log = structlog.get_logger("bessai.devices")

SUN = "huawei_sun2000"
LUNA = "huawei_luna2000"
METER = "huawei_dtsu666"


class Forcible(IntEnum):
    STOP = 0
    CHARGE = 1
    DISCHARGE = 2


def _number(image: ProcessImage, profile: str, name: str) -> float | None:
    return image.number(f"{profile}.{name}")


#: How the guard names the device's limits in its reasons (the registers behind them).
LIMIT_SOURCES = {
    "max_charge_w": "device capability 37046",
    "max_discharge_w": "device capability 37048",
    "charge_limit_setting_w": "device setting 47075",
    "discharge_limit_setting_w": "device setting 47077",
}
_COMMAND_NAMES = {
    Forcible.STOP: "stop",
    Forcible.CHARGE: Direction.CHARGE,
    Forcible.DISCHARGE: Direction.DISCHARGE,
}


def _command_name(raw: int | None) -> str | None:
    if raw is None or raw not in set(Forcible):
        return None
    return _COMMAND_NAMES[Forcible(raw)]


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
        alarms_known=image.good(f"{SUN}.alarm_1") is not None,
        device_status=str(device_status) if device_status is not None else None,
        battery_status=str(battery_status) if battery_status is not None else None,
        meter_online=meter_online,
        dispatch_command=_command_name(command_raw),
        limit_sources=LIMIT_SOURCES,
    )


def write_record(result: WriteResult) -> WriteRecord:
    """A Modbus write in the device-neutral form the audit and telemetry keep."""
    return WriteRecord(
        point=f"{result.profile}.{result.point.name}",
        address=result.point.address,
        value=result.value,
        registers=result.registers,
        function_code=result.function_code,
        verified=result.verified,
        readable=result.point.readable,
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

    async def _write(self, name: str, value: float | int) -> WriteRecord:
        return write_record(await self.device.write_point(f"{LUNA}.{name}", value))

    async def align_cutoffs(self, soc_min_pct: float, soc_max_pct: float) -> list[WriteRecord]:
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

    async def stop(self) -> list[WriteRecord]:
        """47100 = 0 unless the device is known to be stopped already."""
        if self.state.command == Forcible.STOP:
            return []
        result = await self._write("forcible_command", int(Forcible.STOP))
        self.state = replace(self.state, command=int(Forcible.STOP))
        return [result]

    async def apply(self, setpoint_w: float, now_s: float | None = None) -> list[WriteRecord]:
        """Write what the setpoint needs that the device does not already hold."""
        now_s = time.monotonic() if now_s is None else now_s
        target = self.target_of(setpoint_w)
        if target is Forcible.STOP:
            return await self.stop()
        power_w = float(round(abs(setpoint_w)))
        writes: list[WriteRecord] = []
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
        return writes


#: The device's own power limit setting per direction (what a direction block sets to 0).
LIMIT_SETTINGS = {
    Direction.CHARGE: "max_charge_power_setting_w",
    Direction.DISCHARGE: "max_discharge_power_setting_w",
}


class DirectionHold:
    """Holds a direction at the device by setting its maximum power (47075/47077) to 0, and
    gives the operator's value back when the block ends. Restoring is retried every cycle until
    it succeeds (a refused restore was seen in the field, evcc #30620): while it fails, the
    battery stays blocked, which is the safe side."""

    def __init__(self, device: ModbusDevice) -> None:
        self.device = device
        #: setting name -> the operator's value to restore
        self.held: dict[str, float] = {}

    def _setting(self, name: str) -> float | None:
        reading = self.device.last_values.get(f"{LUNA}.{name}")
        if reading is None or not reading.available or reading.error is not None:
            return None
        return float(reading.value) if isinstance(reading.value, int | float) else None

    async def _current(self, name: str) -> float:
        value = self._setting(name)
        if value is None:
            points = self.device.bound_points(profile=LUNA)
            await self.device.read_points([bp for bp in points if bp.point.name == name])
            value = self._setting(name)
        if value is None:
            raise DeviceError(
                f"cannot read {LUNA}.{name} to hold a direction", device=self.device.name
            )
        return value

    async def enforce(self, block: DirectionBlock) -> list[WriteRecord]:
        """Set or release the hold of each direction as `block` says."""
        writes: list[WriteRecord] = []
        for direction, name in LIMIT_SETTINGS.items():
            blocked = block.charge if direction is Direction.CHARGE else block.discharge
            if blocked and name not in self.held:
                current = await self._current(name)
                if current != 0.0:
                    self.held[name] = current
                    writes.append(await self._write(name, 0))
                    log.warning("direction held at the device", device=self.device.name,
                                direction=direction.value, setting=name, saved=current)  # fmt: skip
            elif blocked and self._setting(name) not in (0.0, None):
                # Someone raised it while we hold it (another client, the app): hold again.
                writes.append(await self._write(name, 0))
            elif not blocked and name in self.held:
                writes.append(await self._write(name, self.held[name]))
                log.info("direction released at the device", device=self.device.name,
                         direction=direction.value, restored=self.held[name])  # fmt: skip
                del self.held[name]
        return writes

    async def _write(self, name: str, value: float) -> WriteRecord:
        return write_record(await self.device.write_point(f"{LUNA}.{name}", value))

    def operator_value(self, name: str) -> float | None:
        """The operator's setting while the gateway holds it at 0, else None."""
        return self.held.get(name)


def device_settings(config: DeviceConfig) -> ClientSettings:
    """The Modbus client's connection habits from a device's configuration."""
    return ClientSettings(
        wait_after_connect_s=config.wait_after_connect_s,
        cooldown_s=config.cooldown_s,
        timeout_s=config.timeout_s,
        retries=config.retries,
        reconnect_backoff_max_s=config.reconnect_backoff_max_s,
    )


class HuaweiHybrid:
    """SUN2000 + LUNA2000 + DTSU666 behind one Modbus TCP unit, as a `HybridDevice`."""

    def __init__(
        self,
        config: DeviceConfig,
        dispatch: DispatchConfig,
        *,
        name: str,
        stale_after_s: float,
        slow_stale_after_s: float | None = None,
        settings: ClientSettings | None = None,
    ) -> None:
        self.modbus = ModbusDevice(
            config.host,
            config.port,
            config.unit_id,
            [load_profile(profile) for profile in config.profiles],
            settings or device_settings(config),
            name=name,
        )
        self.dispatcher = HuaweiDispatcher(self.modbus, dispatch)
        self.hold = DirectionHold(self.modbus)
        # Slow values are read once every `slow_every` cycles: they age on their own clock.
        self._builder = ImageBuilder(name, stale_after_s, slow_stale_after_s)

    @property
    def name(self) -> str:
        return self.modbus.name

    @property
    def connected(self) -> bool:
        return self.modbus.connected

    @property
    def stats(self) -> ClientStats:
        return self.modbus.stats

    async def acquire(self, cycle: int, slow: bool) -> Acquisition:
        groups = {PollGroup.FAST, PollGroup.SLOW} if slow else {PollGroup.FAST}
        errors: list[str] = []
        answering = True
        try:
            result = await self.modbus.poll(groups)
        except DeviceError as exc:
            errors.append(str(exc))
            answering = False
        else:
            self._builder.update(result)
            errors.extend(result.errors)
            if slow:
                self.dispatcher.sync_from_device()
        # The snapshot is taken after the read: a slow or failed read ages the data it kept.
        image = self._builder.freeze(cycle, datetime.now(UTC))
        m = measurements(image)
        # While the gateway holds a direction at 0, the guard must still see the operator's
        # limit, or releasing the block would be clamped to the gateway's own 0.
        held_charge_w = self.hold.operator_value("max_charge_power_setting_w")
        held_discharge_w = self.hold.operator_value("max_discharge_power_setting_w")
        m = replace(
            m,
            charge_limit_setting_w=m.charge_limit_setting_w
            if held_charge_w is None
            else held_charge_w,
            discharge_limit_setting_w=m.discharge_limit_setting_w
            if held_discharge_w is None
            else held_discharge_w,
        )
        return Acquisition(image, m, tuple(errors), answering)

    async def take_over(self, soc_min_pct: float, soc_max_pct: float) -> TakeOver:
        self.dispatcher.sync_from_device()
        found = _command_name(self.dispatcher.state.command)
        writes = await self.dispatcher.align_cutoffs(soc_min_pct, soc_max_pct)
        return TakeOver(found if isinstance(found, Direction) else None, tuple(writes))

    async def apply(self, setpoint_w: float, block: DirectionBlock) -> Actuation:
        if block.blocks(setpoint_w):
            raise ValueError(f"setpoint {setpoint_w:g} W is in a blocked direction")
        # The hold first: a block must take hold even when the command write fails next.
        writes = await self.hold.enforce(block)
        dispatched = await self.dispatcher.apply(setpoint_w)
        # Towards a stop, the dispatcher writes nothing but the stop command itself.
        stopped = self.dispatcher.target_of(setpoint_w) is Forcible.STOP and bool(dispatched)
        return Actuation(tuple(writes + dispatched), stopped)

    async def stop(self, block: DirectionBlock = NO_BLOCK) -> Actuation:
        stop_writes = await self.dispatcher.stop()
        writes = stop_writes + await self.hold.enforce(block)
        return Actuation(tuple(writes), bool(stop_writes))

    def limits_held(self) -> dict[str, float]:
        return dict(self.hold.held)

    def restore_memory(self, held: Mapping[str, float]) -> None:
        known = set(LIMIT_SETTINGS.values())
        self.hold.held.update({k: float(v) for k, v in held.items() if k in known})

    async def close(self) -> None:
        await self.modbus.close()
