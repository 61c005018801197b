"""The plant behind the simulated inverter: the interface the device image drives, and a
simple, reproducible model (PV by time of day, house load, battery SOC with efficiency, a
first-order battery temperature). The physics package can replace it through `PlantModel`."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

SITE_TZ = ZoneInfo("America/Santiago")


@dataclass(frozen=True, slots=True)
class PlantState:
    """Site state after a step. Signs: battery > 0 charging; grid > 0 importing."""

    pv_power_w: float
    load_power_w: float
    battery_power_w: float
    grid_power_w: float
    soc_pct: float
    battery_temp_c: float
    ambient_temp_c: float
    max_charge_power_w: float
    max_discharge_power_w: float
    pv_energy_kwh: float
    charged_kwh: float
    discharged_kwh: float
    imported_kwh: float
    exported_kwh: float


class PlantModel(Protocol):
    """What the simulated device needs from a plant."""

    @property
    def state(self) -> PlantState: ...

    def step(self, setpoint_w: float, dt_s: float, now: datetime) -> PlantState:
        """Advance by dt_s with the battery asked for `setpoint_w` (> 0 charge); the realised
        battery power respects the plant's own limits."""
        ...

    def set_state(self, *, soc_pct: float | None = None, temp_c: float | None = None) -> None:
        """Force SOC or battery temperature (scenarios)."""
        ...


@dataclass(frozen=True, slots=True)
class SimplePlantConfig:
    capacity_wh: float = 15_000.0
    max_charge_power_w: float = 5_000.0
    max_discharge_power_w: float = 5_000.0
    eta_charge: float = 0.95
    eta_discharge: float = 0.95
    pv_peak_w: float = 8_000.0
    load_base_w: float = 500.0
    ambient_temp_c: float = 25.0
    initial_soc_pct: float = 50.0
    #: first-order thermal model: steady-state rise per kW of battery power and time constant
    temp_rise_c_per_kw: float = 3.0
    thermal_time_constant_s: float = 1800.0
    seed: int = 1


class SimplePlant:
    """Good enough to exercise the device layer; deliberately simple and deterministic."""

    def __init__(self, config: SimplePlantConfig | None = None) -> None:
        self.config = config or SimplePlantConfig()
        self._rng = random.Random(self.config.seed)
        c = self.config
        self._state = PlantState(
            pv_power_w=0.0,
            load_power_w=c.load_base_w,
            battery_power_w=0.0,
            grid_power_w=c.load_base_w,
            soc_pct=c.initial_soc_pct,
            battery_temp_c=c.ambient_temp_c,
            ambient_temp_c=c.ambient_temp_c,
            max_charge_power_w=c.max_charge_power_w,
            max_discharge_power_w=c.max_discharge_power_w,
            pv_energy_kwh=0.0,
            charged_kwh=0.0,
            discharged_kwh=0.0,
            imported_kwh=0.0,
            exported_kwh=0.0,
        )

    @property
    def state(self) -> PlantState:
        return self._state

    def set_state(self, *, soc_pct: float | None = None, temp_c: float | None = None) -> None:
        if soc_pct is not None:
            self._state = replace(self._state, soc_pct=min(100.0, max(0.0, soc_pct)))
        if temp_c is not None:
            self._state = replace(self._state, battery_temp_c=temp_c)

    def _pv_w(self, now: datetime) -> float:
        local = now.astimezone(SITE_TZ)
        hour = local.hour + local.minute / 60 + local.second / 3600
        # Daylight 06:30-19:30 local, a clear-sky-like sine with a slow cloud factor.
        elevation = math.sin(math.pi * (hour - 6.5) / 13.0)
        if elevation <= 0:
            return 0.0
        clouds = 0.85 + 0.15 * math.sin(now.timestamp() / 900.0)
        return float(self.config.pv_peak_w * elevation**1.3 * clouds)

    def _load_w(self, now: datetime) -> float:
        local = now.astimezone(SITE_TZ)
        hour = local.hour + local.minute / 60
        morning = 900.0 * math.exp(-(((hour - 7.5) / 1.2) ** 2))
        evening = 1600.0 * math.exp(-(((hour - 20.0) / 2.0) ** 2))
        return self.config.load_base_w + morning + evening + self._rng.uniform(-50.0, 50.0)

    def step(self, setpoint_w: float, dt_s: float, now: datetime) -> PlantState:
        c = self.config
        s = self._state
        dt_h = dt_s / 3600.0
        energy_wh = s.soc_pct / 100.0 * c.capacity_wh
        # Limits: capability, and the energy that is actually there (or room to fill).
        room_w = (c.capacity_wh - energy_wh) / (dt_h * c.eta_charge) if dt_h > 0 else 0.0
        avail_w = energy_wh * c.eta_discharge / dt_h if dt_h > 0 else 0.0
        if setpoint_w >= 0:
            battery_w = min(setpoint_w, c.max_charge_power_w, room_w)
            energy_wh += battery_w * dt_h * c.eta_charge
        else:
            battery_w = -min(-setpoint_w, c.max_discharge_power_w, avail_w)
            energy_wh += battery_w * dt_h / c.eta_discharge
        soc_pct = min(100.0, max(0.0, 100.0 * energy_wh / c.capacity_wh))
        pv_w = self._pv_w(now)
        load_w = self._load_w(now)
        grid_w = load_w - pv_w + battery_w
        target_c = c.ambient_temp_c + c.temp_rise_c_per_kw * abs(battery_w) / 1000.0
        alpha = 1.0 - math.exp(-dt_s / c.thermal_time_constant_s)
        temp_c = s.battery_temp_c + (target_c - s.battery_temp_c) * alpha
        self._state = PlantState(
            pv_power_w=pv_w,
            load_power_w=load_w,
            battery_power_w=battery_w,
            grid_power_w=grid_w,
            soc_pct=soc_pct,
            battery_temp_c=temp_c,
            ambient_temp_c=c.ambient_temp_c,
            max_charge_power_w=c.max_charge_power_w,
            max_discharge_power_w=c.max_discharge_power_w,
            pv_energy_kwh=s.pv_energy_kwh + pv_w * dt_h / 1000.0,
            charged_kwh=s.charged_kwh + max(battery_w, 0.0) * dt_h / 1000.0,
            discharged_kwh=s.discharged_kwh + max(-battery_w, 0.0) * dt_h / 1000.0,
            imported_kwh=s.imported_kwh + max(grid_w, 0.0) * dt_h / 1000.0,
            exported_kwh=s.exported_kwh + max(-grid_w, 0.0) * dt_h / 1000.0,
        )
        return self._state
