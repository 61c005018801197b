"""The plant behind the simulated inverter: the interface the device image drives, and its
implementation over the physics model (`bessai.plant.site.Site`: battery with taper and
temperature derating, thermal RC, ageing, clear-sky PV and a house load)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bessai.plant.battery import BatteryParams, luna2000
from bessai.plant.load import LoadConfig
from bessai.plant.pv import PvConfig
from bessai.plant.site import SiteModel, SiteModelConfig, SiteState


@dataclass(frozen=True, slots=True)
class PlantState:
    """SiteModel state after a step. Signs: battery > 0 charging; grid > 0 importing."""

    pv_power_w: float
    load_power_w: float
    battery_power_w: float
    grid_power_w: float
    soc_pct: float
    battery_temp_c: float
    ambient_temp_c: float
    max_charge_w: float
    max_discharge_w: float
    pv_energy_kwh: float
    charged_kwh: float
    discharged_kwh: float
    imported_kwh: float
    exported_kwh: float


class PlantModel(Protocol):
    """What the simulated device needs from a plant."""

    @property
    def state(self) -> PlantState: ...

    @property
    def capacity_wh(self) -> float: ...

    def step(self, setpoint_w: float, dt_s: float, now: datetime) -> PlantState:
        """Advance by dt_s with the battery asked for `setpoint_w` (> 0 charge); the realised
        battery power respects the plant's own limits."""
        ...

    def set_state(
        self,
        *,
        soc_pct: float | None = None,
        temp_c: float | None = None,
        ambient_c: float | None = None,
    ) -> None:
        """Force SOC, battery temperature or a fixed ambient temperature (scenarios)."""
        ...


@dataclass(frozen=True, slots=True)
class PlantConfig:
    """The simulated site: a LUNA2000-class battery (or one sized to the gateway's site
    config), clear-sky PV at Santiago and a residential load, all reproducible from `seed`."""

    capacity_kwh: float = 15.0
    max_charge_w: float = 5_000.0
    max_discharge_w: float = 5_000.0
    pv_peak_w: float = 8_000.0
    load_mean_w: float = 800.0
    ambient_mean_c: float = 20.0
    initial_soc_pct: float = 50.0
    seed: int = 1

    def battery(self) -> BatteryParams:
        # LUNA2000 modules are 5 kWh; the thermal mass scales with the number of modules.
        modules = max(1, round(self.capacity_kwh / 5.0))
        return dataclasses.replace(
            luna2000(modules),
            name=f"simulated {self.capacity_kwh:g} kWh",
            nameplate_energy_kwh=self.capacity_kwh,
            max_charge_w=self.max_charge_w,
            max_discharge_w=self.max_discharge_w,
        )


def _to_plant_state(s: SiteState, battery: BatteryParams) -> PlantState:
    return PlantState(
        pv_power_w=s.pv_power_w,
        load_power_w=s.load_power_w,
        battery_power_w=s.battery_power_w,
        grid_power_w=s.grid_power_w,
        soc_pct=s.soc_pct,
        battery_temp_c=s.cell_temp_c,
        ambient_temp_c=s.ambient_temp_c,
        # 37046/37048 report the rating; taper and derating act inside the plant.
        max_charge_w=battery.max_charge_w,
        max_discharge_w=battery.max_discharge_w,
        pv_energy_kwh=s.pv_kwh,
        charged_kwh=s.charged_kwh,
        discharged_kwh=s.discharged_kwh,
        imported_kwh=s.import_kwh,
        exported_kwh=s.export_kwh,
    )


class PhysicsPlant:
    """`PlantModel` over the physics site model."""

    def __init__(self, config: PlantConfig | None = None, now: datetime | None = None) -> None:
        self.config = config or PlantConfig()
        c = self.config
        self._battery = c.battery()
        self.site = SiteModel(
            SiteModelConfig(
                battery=self._battery,
                pv=PvConfig(peak_power_w=c.pv_peak_w) if c.pv_peak_w > 0 else None,
                load=LoadConfig(mean_power_w=c.load_mean_w) if c.load_mean_w > 0 else None,
                initial_soc_pct=c.initial_soc_pct,
                ambient_mean_c=c.ambient_mean_c,
            ),
            seed=c.seed,
        )
        self._ambient_c: float | None = None
        if now is not None:
            self.site.step(0.0, 0.0, now)
        self._state = _to_plant_state(self.site.state, self._battery)

    @property
    def state(self) -> PlantState:
        return self._state

    @property
    def capacity_wh(self) -> float:
        return self._battery.nameplate_energy_kwh * 1000.0

    def step(self, setpoint_w: float, dt_s: float, now: datetime) -> PlantState:
        state = self.site.step(setpoint_w, dt_s, now, ambient_temp_c=self._ambient_c)
        self._state = _to_plant_state(state, self._battery)
        return self._state

    def set_state(
        self,
        *,
        soc_pct: float | None = None,
        temp_c: float | None = None,
        ambient_c: float | None = None,
    ) -> None:
        self.site.force_state(soc_pct=soc_pct, temp_c=temp_c)
        if ambient_c is not None:
            self._ambient_c = ambient_c
        self._state = _to_plant_state(self.site.state, self._battery)
