"""The simulated hybrid inverter: a register image built from the three profiles, kept in step
with a plant model, and the storage control behaviour of a real SUN2000 (forcible charge or
discharge that ends on its own, power limits, cutoff SOCs, working mode).

Reads and writes here work on raw registers and answer like the device: a span outside the
served blocks gives exception 2, a value outside a writable point's limits exception 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bessai.modbus.codec import decode, encode
from bessai.modbus.profile import Access, Block, Point, Profile, load_builtin
from bessai.simulator.plant import PhysicsPlant, PlantModel, PlantState

#: Huawei registers carry the inverter's local time; the simulated site is in Santiago.
SITE_TZ = ZoneInfo("America/Santiago")

ILLEGAL_ADDRESS = 2
ILLEGAL_VALUE = 3
DEVICE_FAILURE = 4

FORCIBLE_STOP, FORCIBLE_CHARGE, FORCIBLE_DISCHARGE = 0, 1, 2
MODE_TIME, MODE_SOC = 0, 1
WORKING_MODE_SELF_CONSUMPTION = 2
WORKING_MODE_FULLY_FED = 4
#: 47086 working mode setting -> 37006 working mode B read-back
WORKING_MODE_READBACK = {0: 4, 1: 3, 2: 4, 3: 2, 4: 5, 5: 6}


@dataclass(frozen=True, slots=True)
class Identity:
    """What the identity block (30000...) of the simulated inverter says."""

    model_name: str = "SUN2000-10KTL-M1"
    serial_number: str = "HV2150012345"
    part_number: str = "01074226-016"
    firmware_version: str = "V100R001C00"
    software_version: str = "V100R001C00SPC141"
    modbus_protocol_version: int = 2
    model_id: int = 428
    pv_string_count: int = 2
    mppt_count: int = 2
    rated_power_w: int = 10_000
    max_active_power_w: int = 11_000
    max_apparent_power_va: int = 11_000
    max_reactive_power_var: int = 6_600
    battery_serial_number: str = "HV2230098765"
    battery_dcdc_version: str = "V100R002C00"
    battery_bms_version: str = "V100R002C00"


class SimulatedHybrid:
    """Register image of SUN2000 + LUNA2000 + DTSU666 behind one Modbus unit."""

    def __init__(
        self,
        plant: PlantModel | None = None,
        identity: Identity | None = None,
        profiles: list[Profile] | None = None,
        start: datetime | None = None,
    ) -> None:
        self.now = start or datetime.now(UTC)
        self.plant = plant or PhysicsPlant(now=self.now)
        self.identity = identity or Identity()
        self.profiles = profiles or [
            load_builtin("huawei_sun2000"),
            load_builtin("huawei_luna2000"),
            load_builtin("huawei_dtsu666"),
        ]
        self.blocks: list[Block] = sorted(
            (b for p in self.profiles for b in p.blocks), key=lambda b: b.start
        )
        self.points: dict[str, Point] = {}
        self._by_address: dict[int, Point] = {}
        self._write_only: set[int] = set()
        short_names: dict[str, list[Point]] = {}
        for profile in self.profiles:
            for point in profile.points:
                short_names.setdefault(point.name, []).append(point)
                self.points[f"{profile.name}.{point.name}"] = point
                self._by_address[point.address] = point
                if point.access is Access.W:
                    self._write_only.update(range(point.address, point.end))
        # A bare name works where it is unique (inverter and meter both have active_power_w).
        self.points.update({name: pts[0] for name, pts in short_names.items() if len(pts) == 1})
        self.capacity_wh = self.plant.capacity_wh
        self.registers: dict[int, int] = {}
        for block in self.blocks:
            for address in range(block.start, block.end):
                self.registers[address] = block.fill
        #: addresses this "firmware" refuses (exception 2), to emulate field variants
        self.unsupported: set[int] = set()
        #: addresses whose writes this "firmware" answers with exception 4 (evcc #30620)
        self.refused_writes: set[int] = set()
        #: point values pinned by a scenario (name -> physical value), re-applied every tick
        self.overrides: dict[str, object] = {}
        #: a misbehaving battery: "ignore" accepts forcible commands and goes on in its working
        #: mode, "invert" runs them the wrong way round (what the gateway's tracking must catch)
        self.dispatch_fault: str | None = None
        self._started = self.now
        self._forcible_started: datetime | None = None
        self._day = self.now.astimezone(SITE_TZ).date()
        self._day_base = self.plant.state
        self._write_static()
        self._write_settings_defaults()
        self._update_live(self.plant.state)

    # -- point access ---------------------------------------------------------------------

    def point(self, name: str) -> Point:
        try:
            return self.points[name]
        except KeyError:
            raise KeyError(
                f"the simulator has no point named {name!r} (use profile.point where a name "
                "exists in several profiles)"
            ) from None

    def set(self, name: str, value: object) -> None:
        point = self.point(name)
        for offset, word in enumerate(encode(point, value)):
            self.registers[point.address + offset] = word

    def get(self, name: str) -> object:
        point = self.point(name)
        raw = [self.registers[point.address + i] for i in range(point.length)]
        return decode(point, raw).value

    def raw(self, name: str) -> int:
        point = self.point(name)
        value = 0
        for i in range(point.length):
            value = (value << 16) | self.registers[point.address + i]
        return value

    # -- Modbus-facing ----------------------------------------------------------------------

    def _served(self, address: int, count: int) -> bool:
        end = address + count
        if not any(b.start <= address and end <= b.end for b in self.blocks):
            return False
        return not any(a in self.unsupported for a in range(address, end))

    def read(self, address: int, count: int) -> list[int] | int:
        """Registers, or a Modbus exception code."""
        if not self._served(address, count):
            return ILLEGAL_ADDRESS
        if any(a in self._write_only for a in range(address, address + count)):
            return ILLEGAL_ADDRESS
        return [self.registers[a] for a in range(address, address + count)]

    def write(self, address: int, values: list[int]) -> int | None:
        """Apply a write like the device: whole writable points only, values within limits.
        Returns a Modbus exception code, or None on success."""
        if not self._served(address, len(values)):
            return ILLEGAL_ADDRESS
        end = address + len(values)
        if any(a in self.refused_writes for a in range(address, end)):
            return DEVICE_FAILURE
        cursor = address
        targets: list[tuple[Point, list[int]]] = []
        while cursor < end:
            point = self._by_address.get(cursor)
            if point is None or point.access is Access.R or point.end > end:
                return ILLEGAL_ADDRESS
            targets.append((point, values[cursor - address : point.end - address]))
            cursor = point.end
        for point, words in targets:
            if not self._value_allowed(point, words):
                return ILLEGAL_VALUE
        for point, words in targets:
            for offset, word in enumerate(words):
                self.registers[point.address + offset] = word
            self._on_write(point)
        return None

    def _value_allowed(self, point: Point, words: list[int]) -> bool:
        value = decode(point, words)
        if point.enum is not None:
            return isinstance(value.raw, int) and value.raw in point.enum
        if not isinstance(value.value, int | float):
            return value.value is None and not point.invalid_raw
        high = point.max
        if point.max_point is not None:
            live = self.get(point.max_point)
            if isinstance(live, int | float):
                high = live if high is None else min(high, live)
        if point.min is not None and value.value < point.min:
            return False
        return not (high is not None and value.value > high)

    def _on_write(self, point: Point) -> None:
        if point.name in ("forcible_command", "forcible_period_min", "forcible_mode"):
            # A rewrite of the command or the period restarts the device-side timer, which is
            # how a gateway's watchdog keeps a forcible command alive.
            if self.raw("forcible_command") in (FORCIBLE_CHARGE, FORCIBLE_DISCHARGE):
                self._forcible_started = self.now
            else:
                self._forcible_started = None

    # -- behaviour --------------------------------------------------------------------------

    @property
    def forcible_active(self) -> bool:
        return self.raw("forcible_command") in (FORCIBLE_CHARGE, FORCIBLE_DISCHARGE)

    def forcible_remaining_s(self) -> float | None:
        if not self.forcible_active or self._forcible_started is None:
            return None
        if self.raw("forcible_mode") != MODE_TIME:
            return None
        period_s = 60.0 * self.raw("forcible_period_min")
        return max(0.0, period_s - (self.now - self._forcible_started).total_seconds())

    def _stop_forcible(self) -> None:
        self.set("forcible_command", FORCIBLE_STOP)
        self._forcible_started = None

    def _battery_setpoint_w(self, state: PlantState) -> float:
        charge_limit_w = min(float(self.raw("max_charge_power_setting_w")), state.max_charge_w)
        discharge_limit_w = min(
            float(self.raw("max_discharge_power_setting_w")), state.max_discharge_w
        )
        command = self.raw("forcible_command")
        if command in (FORCIBLE_CHARGE, FORCIBLE_DISCHARGE):
            if self.raw("forcible_mode") == MODE_TIME:
                remaining = self.forcible_remaining_s()
                if remaining is not None and remaining <= 0:
                    self._stop_forcible()
                    command = FORCIBLE_STOP
            else:
                target = self.raw("forcible_target_soc_pct") / 10.0
                reached = (
                    state.soc_pct >= target
                    if command == FORCIBLE_CHARGE
                    else state.soc_pct <= target
                )
                if reached:
                    self._stop_forcible()
                    command = FORCIBLE_STOP
        if self.dispatch_fault == "ignore":
            command = FORCIBLE_STOP
        if command == FORCIBLE_CHARGE:
            setpoint = min(float(self.raw("forcible_charge_power_w")), charge_limit_w)
        elif command == FORCIBLE_DISCHARGE:
            setpoint = -min(float(self.raw("forcible_discharge_power_w")), discharge_limit_w)
        elif self.raw("working_mode_setting") == WORKING_MODE_FULLY_FED:
            setpoint = 0.0
        else:
            # Maximise self-consumption (and adaptive): store surplus PV, cover the deficit.
            surplus_w = state.pv_power_w - state.load_power_w
            setpoint = max(-discharge_limit_w, min(charge_limit_w, surplus_w))
        if self.dispatch_fault == "invert" and command in (FORCIBLE_CHARGE, FORCIBLE_DISCHARGE):
            setpoint = -setpoint
        if setpoint > 0 and state.soc_pct >= self.raw("charge_cutoff_soc_pct") / 10.0:
            setpoint = 0.0
        if setpoint < 0 and state.soc_pct <= self.raw("discharge_cutoff_soc_pct") / 10.0:
            setpoint = 0.0
        return setpoint

    def advance(self, now: datetime) -> PlantState:
        """Step the plant to `now` (plant time) and refresh every live register."""
        dt_s = (now - self.now).total_seconds()
        if dt_s <= 0:
            return self.plant.state
        setpoint_w = self._battery_setpoint_w(self.plant.state)
        self.now = now
        state = self.plant.step(setpoint_w, dt_s, now)
        # A forcible period can end between two steps; re-check so the read-back is current.
        self._battery_setpoint_w(state)
        self._update_live(state)
        return state

    # -- register image ---------------------------------------------------------------------

    def _local_epoch(self, when: datetime) -> int:
        local = when.astimezone(SITE_TZ)
        offset = local.utcoffset() or timedelta(0)
        return int(when.timestamp() + offset.total_seconds())

    def _write_static(self) -> None:
        ident = self.identity
        state = self.plant.state
        for name, value in {
            "model_name": ident.model_name,
            "serial_number": ident.serial_number,
            "part_number": ident.part_number,
            "firmware_version": ident.firmware_version,
            "software_version": ident.software_version,
            "modbus_protocol_version": ident.modbus_protocol_version,
            "model_id": ident.model_id,
            "pv_string_count": ident.pv_string_count,
            "mppt_count": ident.mppt_count,
            "rated_power_w": ident.rated_power_w,
            "max_active_power_w": ident.max_active_power_w,
            "max_apparent_power_va": ident.max_apparent_power_va,
            "max_reactive_power_export_var": ident.max_reactive_power_var,
            "max_reactive_power_absorb_var": -ident.max_reactive_power_var,
            "max_active_power_real_w": ident.rated_power_w,
            "max_apparent_power_real_va": ident.max_apparent_power_va,
            "startup_time_local_s": self._local_epoch(self._started),
            "unit1_product_model": 2,
            "unit2_product_model": 0,
            "unit1_serial_number": ident.battery_serial_number,
            "unit1_dcdc_version": ident.battery_dcdc_version,
            "unit1_bms_version": ident.battery_bms_version,
            "unit1_rated_charge_power_w": round(state.max_charge_w),
            "unit1_rated_discharge_power_w": round(state.max_discharge_w),
            "rated_capacity_wh": round(self.capacity_wh),
            "meter_type": 1,
            "meter_type_check": 1,
            "meter_status": 1,
        }.items():
            self.set(name, value)
        # Strings beyond the device's count and the absent second unit read as "no value".
        for n in range(ident.pv_string_count + 1, 25):
            self.set(f"pv{n}_voltage_v", 0)
            self.set(f"pv{n}_current_a", 0)
        self.set("shutdown_time_local_s", 0)
        self.registers[self.point("shutdown_time_local_s").address] = 0xFFFF
        self.registers[self.point("shutdown_time_local_s").address + 1] = 0xFFFF

    def _write_settings_defaults(self) -> None:
        state = self.plant.state
        for name, value in {
            "max_charge_power_setting_w": round(state.max_charge_w),
            "max_discharge_power_setting_w": round(state.max_discharge_w),
            "charge_cutoff_soc_pct": 100.0,
            "discharge_cutoff_soc_pct": 5.0,
            "forcible_period_min": 0,
            "working_mode_setting": WORKING_MODE_SELF_CONSUMPTION,
            "charge_from_grid": 0,
            "grid_charge_cutoff_soc_pct": 100.0,
            "forcible_command": FORCIBLE_STOP,
            "forcible_target_soc_pct": 100.0,
            "backup_power_soc_pct": 15.0,
            "forcible_mode": MODE_TIME,
            "forcible_charge_power_w": 0,
            "forcible_discharge_power_w": 0,
        }.items():
            self.set(name, value)

    def _update_live(self, s: PlantState) -> None:
        if (today := self.now.astimezone(SITE_TZ).date()) != self._day:
            self._day, self._day_base = today, s
        values = {**self._inverter_values(s), **self._battery_values(s)}
        values.update(self._pv_string_values(s.pv_power_w))
        values.update({f"huawei_dtsu666.{k}": v for k, v in _meter_values(s).items()})
        values.update(self.overrides)
        for name, value in values.items():
            self.set(name, value)

    def _pv_string_values(self, pv_w: float) -> dict[str, object]:
        ident = self.identity
        strings = ident.pv_string_count
        string_v = (
            360.0 + 80.0 * min(1.0, pv_w / max(1.0, float(ident.rated_power_w)))
            if pv_w > 0
            else 0.0
        )
        string_a = pv_w / strings / string_v if string_v > 0 else 0.0
        values: dict[str, object] = {}
        for n in range(1, strings + 1):
            values[f"pv{n}_voltage_v"] = round(string_v, 1)
            values[f"pv{n}_current_a"] = round(string_a, 2)
        return values

    def _inverter_values(self, s: PlantState) -> dict[str, object]:
        day = self._day_base
        pv_w = s.pv_power_w
        ac_w = pv_w - s.battery_power_w
        phase_a = ac_w / 3.0 / 230.0
        local_now = self.now.astimezone(SITE_TZ)
        return {
            "state_1": 0b110,
            "state_2": 0b101 | (0b010 if pv_w > 0 else 0),
            "state_3": 0,
            "alarm_1": 0,
            "alarm_2": 0,
            "alarm_3": 0,
            "input_power_w": round(pv_w),
            "huawei_sun2000.line_voltage_ab_v": 400.0,
            "huawei_sun2000.line_voltage_bc_v": 400.0,
            "huawei_sun2000.line_voltage_ca_v": 400.0,
            "huawei_sun2000.phase_a_voltage_v": 230.0,
            "huawei_sun2000.phase_b_voltage_v": 230.0,
            "huawei_sun2000.phase_c_voltage_v": 230.0,
            "huawei_sun2000.phase_a_current_a": round(phase_a, 3),
            "huawei_sun2000.phase_b_current_a": round(phase_a, 3),
            "huawei_sun2000.phase_c_current_a": round(phase_a, 3),
            "huawei_sun2000.active_power_w": round(ac_w),
            "active_power_fast_w": round(ac_w),
            "huawei_sun2000.reactive_power_var": 0,
            "huawei_sun2000.power_factor": 1.0,
            "huawei_sun2000.grid_frequency_hz": 50.0,
            "efficiency_pct": 98.0 if pv_w > 0 else 0.0,
            "internal_temp_c": round(s.ambient_temp_c + 5.0 + abs(ac_w) / 1000.0, 1),
            "insulation_resistance_mohm": 3.0,
            "device_status": 0x0200,
            "fault_code": 0,
            "accumulated_yield_kwh": round(s.pv_energy_kwh, 2),
            "total_dc_input_energy_kwh": round(s.pv_energy_kwh, 2),
            "daily_yield_kwh": round(s.pv_energy_kwh - day.pv_energy_kwh, 2),
            "hourly_yield_kwh": 0.0,
            "monthly_yield_kwh": round(s.pv_energy_kwh, 2),
            "yearly_yield_kwh": round(s.pv_energy_kwh, 2),
            "generation_stats_time_local_s": self._local_epoch(self.now),
            "system_time_local_s": self._local_epoch(self.now),
            "time_zone_min": round((local_now.utcoffset() or timedelta(0)).total_seconds() / 60),
            "dst_enabled": 1 if (local_now.dst() or timedelta(0)) else 0,
        }

    def _battery_values(self, s: PlantState) -> dict[str, object]:
        day = self._day_base
        battery_w = s.battery_power_w
        forcible = self.raw("forcible_command")
        forcible_w = 0.0
        if forcible == FORCIBLE_CHARGE:
            forcible_w = float(self.raw("forcible_charge_power_w"))
        elif forcible == FORCIBLE_DISCHARGE:
            forcible_w = -float(self.raw("forcible_discharge_power_w"))
        remaining_min = 0
        if battery_w > 1:
            remaining_min = round((100 - s.soc_pct) / 100 * self.capacity_wh / battery_w * 60)
        elif battery_w < -1:
            remaining_min = round(s.soc_pct / 100 * self.capacity_wh / -battery_w * 60)
        running = 2 if abs(battery_w) > 1 else 1
        return {
            "soc_pct": round(s.soc_pct, 1),
            "running_status": running,
            "bus_voltage_v": 450.0,
            "bus_current_a": round(battery_w / 450.0, 1),
            "huawei_luna2000.power_w": round(battery_w),
            "total_charge_kwh": round(s.charged_kwh, 2),
            "total_discharge_kwh": round(s.discharged_kwh, 2),
            "day_charge_kwh": round(s.charged_kwh - day.charged_kwh, 2),
            "day_discharge_kwh": round(s.discharged_kwh - day.discharged_kwh, 2),
            "unit1_running_status": running,
            "unit1_power_w": round(battery_w),
            "unit1_bus_voltage_v": 450.0,
            "unit1_soc_pct": round(s.soc_pct, 1),
            "unit1_working_mode_b": 1
            if forcible
            else WORKING_MODE_READBACK.get(self.raw("working_mode_setting"), 4),
            "unit1_fault_id": 0,
            "unit1_day_charge_kwh": round(s.charged_kwh - day.charged_kwh, 2),
            "unit1_day_discharge_kwh": round(s.discharged_kwh - day.discharged_kwh, 2),
            "unit1_bus_current_a": round(battery_w / 450.0, 1),
            "unit1_temp_c": round(s.battery_temp_c, 1),
            "unit1_remaining_time_min": min(remaining_min, 0xFFFE),
            "unit1_total_charge_kwh": round(s.charged_kwh, 2),
            "unit1_total_discharge_kwh": round(s.discharged_kwh, 2),
            "max_charge_power_w": round(s.max_charge_w),
            "max_discharge_power_w": round(s.max_discharge_w),
            "forcible_power_w": round(forcible_w),
        }


def _meter_values(s: PlantState) -> dict[str, object]:
    """The DTSU666 meter's registers (Huawei sign: > 0 export)."""
    meter_w = -s.grid_power_w
    meter_phase_a = meter_w / 3.0 / 230.0
    return {
        "phase_a_voltage_v": 230.0,
        "phase_b_voltage_v": 230.0,
        "phase_c_voltage_v": 230.0,
        "phase_a_current_a": round(meter_phase_a, 2),
        "phase_b_current_a": round(meter_phase_a, 2),
        "phase_c_current_a": round(meter_phase_a, 2),
        "active_power_w": round(meter_w),
        "reactive_power_var": 0,
        "power_factor": 1.0,
        "grid_frequency_hz": 50.0,
        "exported_energy_kwh": round(s.exported_kwh, 2),
        "imported_energy_kwh": round(s.imported_kwh, 2),
        "reactive_energy_kvarh": 0.0,
        "line_voltage_ab_v": 400.0,
        "line_voltage_bc_v": 400.0,
        "line_voltage_ca_v": 400.0,
        "phase_a_active_power_w": round(meter_w / 3),
        "phase_b_active_power_w": round(meter_w / 3),
        "phase_c_active_power_w": round(meter_w / 3),
    }
