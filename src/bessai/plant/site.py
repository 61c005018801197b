"""The whole site in one step: PV, load, battery (electrical, thermal, wear) and the grid meter.

API (what the simulator, the back-test and the Gymnasium environment call)::

    from bessai.plant.site import SiteModel, SiteModelConfig
    from bessai.plant.battery import luna2000
    from bessai.plant.pv import PvConfig
    from bessai.plant.load import LoadConfig

    site = SiteModel(SiteModelConfig(battery=luna2000(3), pv=PvConfig(peak_power_w=10_000),
                           load=LoadConfig(mean_power_w=800)), seed=1)
    limits = site.limits()                 # PowerLimits(max_charge_w, max_discharge_w), now
    state = site.step(setpoint_w=3000.0, dt_s=5.0, now=datetime.now(UTC))
    state.battery_power_w, state.grid_power_w, state.soc_pct, state.cell_temp_c, ...

`SiteModel.step(setpoint_w, dt_s, now, *, ambient_temp_c=None) -> SiteState`
    Advances the site over the interval [now, now + dt_s). `setpoint_w` is the requested battery
    power at the AC side, > 0 charging, < 0 discharging. The battery realises the setpoint
    clipped to its limits at the start of the step and to its stored energy. PV and load are
    evaluated at `now` and held over the step. `ambient_temp_c` overrides the configured daily
    ambient cycle (for a "hot day" scenario). `dt_s` may be 0: nothing advances, and the state
    describes `now` (useful to fill registers before the first write).
`SiteModel.limits() -> PowerLimits`
    Charge and discharge power the battery accepts right now (SOC taper and temperature).
`SiteModel.state -> SiteState`
    The last state returned by `step`; before the first step, the initial state with time
    1970-01-01 UTC (call `step(0.0, 0.0, now)` for a state stamped `now`).

`SiteState` fields (frozen): time (end of the step), dt_s, setpoint_w, battery_power_w
(realised), grid_power_w, pv_power_w, load_power_w, soc_pct, energy_kwh, capacity_kwh, soh_pct,
cell_temp_c, ambient_temp_c, max_charge_w and max_discharge_w (limits for the next
step), and cumulative counters charged_kwh, discharged_kwh (AC side), import_kwh, export_kwh,
pv_kwh, load_kwh, self_discharge_kwh, aux_kwh, fade_loss_kwh, equivalent_full_cycles; property
`limited` (setpoint not delivered).

Sign conventions: battery power > 0 = charging; grid power > 0 = import, and
grid = load - pv + battery (the battery's auxiliaries are drawn from its own stored energy).
Counters are cumulative since construction, in kWh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from bessai.errors import ConfigError
from bessai.plant.battery import BatteryModel, BatteryParams, luna2000
from bessai.plant.degradation import NAUMANN_SONY_LFP, AgingParams, DegradationTracker
from bessai.plant.load import LoadConfig, ProfileLoad
from bessai.plant.pv import SANTIAGO_LON_DEG, ClearSkyPv, PvConfig
from bessai.plant.series import PowerSource, SeriesProfile, epoch_s
from bessai.plant.thermal import ThermalModel

J_PER_KWH = 3.6e6
# `SiteModel.state` before any step: the physical values are real, the time is a placeholder.
_BEFORE_FIRST_STEP = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SiteModelConfig:
    """Everything that defines a simulated site. PV and load are optional (None = absent)."""

    battery: BatteryParams = field(default_factory=luna2000)
    pv: PvConfig | SeriesProfile | None = None
    load: LoadConfig | SeriesProfile | None = None
    initial_soc_pct: float = 50.0
    # A battery already in service: calendar age and full cycles at reference conditions
    # (see DegradationTracker); the initial SOH follows from them.
    prior_age_days: float = 0.0
    prior_full_cycles: float = 0.0
    # None: start at the ambient mean.
    initial_temp_c: float | None = None
    ambient_mean_c: float = 20.0
    # Half the day-night swing; the maximum is at 15:00 local solar time.
    ambient_daily_amplitude_c: float = 6.0
    longitude_deg: float = SANTIAGO_LON_DEG
    aging: AgingParams = NAUMANN_SONY_LFP
    aging_enabled: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.initial_soc_pct <= 100.0:
            raise ConfigError(
                f"site.initial_soc_pct must be in [0, 100], got {self.initial_soc_pct}"
            )
        if self.prior_age_days < 0 or self.prior_full_cycles < 0:
            raise ConfigError("site.prior_age_days and prior_full_cycles must not be negative")
        if self.ambient_daily_amplitude_c < 0:
            raise ConfigError("site.ambient_daily_amplitude_c must not be negative")


@dataclass(frozen=True, slots=True)
class PowerLimits:
    max_charge_w: float
    max_discharge_w: float


@dataclass(frozen=True, slots=True)
class SiteState:
    """The site at `time` (the end of the step), with the powers held over the step."""

    time: datetime
    dt_s: float
    setpoint_w: float
    battery_power_w: float
    grid_power_w: float
    pv_power_w: float
    load_power_w: float
    soc_pct: float
    energy_kwh: float
    capacity_kwh: float
    soh_pct: float
    cell_temp_c: float
    ambient_temp_c: float
    # Limits for the next step (after this one's SOC and temperature changes).
    max_charge_w: float
    max_discharge_w: float
    charged_kwh: float
    discharged_kwh: float
    import_kwh: float
    export_kwh: float
    pv_kwh: float
    load_kwh: float
    self_discharge_kwh: float
    aux_kwh: float
    # Stored energy lost when fade shrank the capacity below it (only ever near full).
    fade_loss_kwh: float
    equivalent_full_cycles: float

    @property
    def limited(self) -> bool:
        """True when the battery did not deliver the setpoint (limits or energy)."""
        return abs(self.setpoint_w - self.battery_power_w) > 1e-6 * max(1.0, abs(self.setpoint_w))


def _source(cfg: PvConfig | LoadConfig | SeriesProfile | None, seed: int) -> PowerSource | None:
    if cfg is None or isinstance(cfg, SeriesProfile):
        return cfg
    if isinstance(cfg, PvConfig):
        return ClearSkyPv(cfg, seed)
    return ProfileLoad(cfg, seed)


class SiteModel:
    """One simulated site. Not thread-safe: one caller steps it."""

    __slots__ = (
        "_battery",
        "_cooling_w",
        "_counters",
        "_efc",
        "_load",
        "_pv",
        "_soh_pct",
        "_state",
        "_thermal",
        "_tracker",
        "config",
    )

    def __init__(self, config: SiteModelConfig | None = None, seed: int = 0) -> None:
        cfg = config if config is not None else SiteModelConfig()
        self.config = cfg
        # Distinct streams so PV weather and load noise do not move together.
        self._pv = _source(cfg.pv, seed * 2 + 1)
        self._load = _source(cfg.load, seed * 2 + 2)
        temp0 = cfg.initial_temp_c if cfg.initial_temp_c is not None else cfg.ambient_mean_c
        self._thermal = ThermalModel(cfg.battery.thermal, temp0)
        self._tracker = DegradationTracker(
            cfg.initial_soc_pct,
            temp0,
            cfg.aging,
            prior_age_days=cfg.prior_age_days,
            prior_full_cycles=cfg.prior_full_cycles,
        )
        fade = self._tracker.result()
        self._soh_pct = fade.soh_pct
        self._efc = fade.equivalent_full_cycles
        self._battery = BatteryModel(cfg.battery, cfg.initial_soc_pct, max(self._soh_pct, 1e-6))
        self._cooling_w = 0.0
        # import, export, pv, load (kWh)
        self._counters = [0.0, 0.0, 0.0, 0.0]
        max_ch, max_dis = self._battery.limits_w(temp0)
        self._state = SiteState(
            time=_BEFORE_FIRST_STEP,
            dt_s=0.0,
            setpoint_w=0.0,
            battery_power_w=0.0,
            grid_power_w=0.0,
            pv_power_w=0.0,
            load_power_w=0.0,
            soc_pct=self._battery.soc_pct,
            energy_kwh=self._battery.energy_kwh,
            capacity_kwh=self._battery.capacity_kwh,
            soh_pct=self._soh_pct,
            cell_temp_c=temp0,
            ambient_temp_c=cfg.ambient_mean_c,
            max_charge_w=max_ch,
            max_discharge_w=max_dis,
            charged_kwh=0.0,
            discharged_kwh=0.0,
            import_kwh=0.0,
            export_kwh=0.0,
            pv_kwh=0.0,
            load_kwh=0.0,
            self_discharge_kwh=0.0,
            aux_kwh=0.0,
            fade_loss_kwh=0.0,
            equivalent_full_cycles=self._efc,
        )

    @property
    def state(self) -> SiteState:
        return self._state

    @property
    def battery_config(self) -> BatteryParams:
        return self.config.battery

    def limits(self) -> PowerLimits:
        max_ch, max_dis = self._battery.limits_w(self._thermal.temp_c)
        return PowerLimits(max_charge_w=max_ch, max_discharge_w=max_dis)

    def force_state(self, *, soc_pct: float | None = None, temp_c: float | None = None) -> None:
        """Set SOC or cell temperature directly (simulator scenarios); counters are kept."""
        if soc_pct is not None:
            if not 0.0 <= soc_pct <= 100.0:
                raise ValueError(f"soc_pct must be in [0, 100], got {soc_pct}")
            self._battery.energy_kwh = self._battery.capacity_kwh * soc_pct / 100.0
            self._tracker.rebase(soc_pct)
        if temp_c is not None:
            self._thermal.temp_c = temp_c
        max_ch, max_dis = self._battery.limits_w(self._thermal.temp_c)
        self._state = replace(
            self._state,
            soc_pct=self._battery.soc_pct,
            energy_kwh=self._battery.energy_kwh,
            cell_temp_c=self._thermal.temp_c,
            max_charge_w=max_ch,
            max_discharge_w=max_dis,
        )

    def ambient_c(self, now: datetime) -> float:
        cfg = self.config
        solar_h = (epoch_s(now) / 3600.0 + cfg.longitude_deg / 15.0) % 24.0
        return cfg.ambient_mean_c + cfg.ambient_daily_amplitude_c * math.cos(
            2.0 * math.pi * (solar_h - 15.0) / 24.0
        )

    def step(
        self,
        setpoint_w: float,
        dt_s: float,
        now: datetime,
        *,
        ambient_temp_c: float | None = None,
    ) -> SiteState:
        """Advance the site by `dt_s` seconds from `now` with battery setpoint `setpoint_w`."""
        if not dt_s >= 0.0 or not math.isfinite(dt_s):
            raise ValueError(f"dt_s must be a finite number >= 0, got {dt_s}")
        if not math.isfinite(setpoint_w):
            raise ValueError(f"setpoint_w must be finite, got {setpoint_w}")
        ambient = ambient_temp_c if ambient_temp_c is not None else self.ambient_c(now)
        pv_w = self._pv.power_w(now) if self._pv is not None else 0.0
        load_w = self._load.power_w(now) if self._load is not None else 0.0
        battery = self._battery
        thermal = self._thermal

        if dt_s == 0.0:
            max_ch, max_dis = battery.limits_w(thermal.temp_c)
            battery_w = min(max_ch, max(-max_dis, setpoint_w))
        else:
            # The cooler's consumption is known only after the thermal step; charging it to the
            # battery one step late keeps the step explicit and the error is one step of aux.
            battery_w = battery.step(setpoint_w, dt_s, thermal.temp_c, extra_aux_w=self._cooling_w)
            self._cooling_w = thermal.step(battery_w, ambient, dt_s)
            if self.config.aging_enabled:
                self._tracker.update(battery.soc_pct, thermal.temp_c, dt_s)
                fade = self._tracker.result()
                self._efc = fade.equivalent_full_cycles
                self._soh_pct = fade.soh_pct
                battery.set_soh(self._soh_pct)

        grid_w = load_w - pv_w + battery_w
        dt_h = dt_s / 3600.0
        counters = self._counters
        if grid_w >= 0.0:
            counters[0] += grid_w * dt_h / 1000.0
        else:
            counters[1] -= grid_w * dt_h / 1000.0
        counters[2] += pv_w * dt_h / 1000.0
        counters[3] += load_w * dt_h / 1000.0
        max_ch, max_dis = battery.limits_w(thermal.temp_c)
        self._state = SiteState(
            time=now + timedelta(seconds=dt_s),
            dt_s=dt_s,
            setpoint_w=setpoint_w,
            battery_power_w=battery_w,
            grid_power_w=grid_w,
            pv_power_w=pv_w,
            load_power_w=load_w,
            soc_pct=battery.soc_pct,
            energy_kwh=battery.energy_kwh,
            capacity_kwh=battery.capacity_kwh,
            soh_pct=self._soh_pct,
            cell_temp_c=thermal.temp_c,
            ambient_temp_c=ambient,
            max_charge_w=max_ch,
            max_discharge_w=max_dis,
            charged_kwh=battery.charged_kwh,
            discharged_kwh=battery.discharged_kwh,
            import_kwh=counters[0],
            export_kwh=counters[1],
            pv_kwh=counters[2],
            load_kwh=counters[3],
            self_discharge_kwh=battery.self_discharge_kwh,
            aux_kwh=battery.aux_kwh,
            fade_loss_kwh=battery.fade_clip_kwh,
            equivalent_full_cycles=self._efc,
        )
        return self._state
