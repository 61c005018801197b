"""Battery electrical model: stored energy, efficiencies, power limits, self-discharge, auxiliaries.

State is the stored energy E (kWh, DC side) and the usable capacity
E_cap = nameplate * usable_fraction * SOH. SOC = 100 * E / E_cap. Over a step of dt with realised
AC power P (W, > 0 charging)::

    E' = E + eta_c * P+ * dt - P- * dt / eta_d - E * r_sd * dt - P_aux * dt

so the energy balance charged * eta_c - discharged / eta_d - self_discharge - aux = dE holds by
construction, and every term has a counter. The realised power is the setpoint clipped to the
power limits and then to what the stored energy allows, so E stays in [0, E_cap] and SOC in
[0, 100] for any setpoint and any step length.

Power limits are the rated powers times two factors:
- SOC taper: charge power falls linearly above `taper_charge_start_soc_pct` to
  `taper_floor_fraction` at 100 % (the constant-voltage phase of a real charger), discharge power
  likewise below `taper_discharge_end_soc_pct`; both are zero at the bound itself.
- temperature: a trapezoid, 1 between the "full" temperatures, falling to 0 at the min/max
  (LFP must not be charged below 0 °C; both directions stop when the cells are too hot).

Auxiliary consumption (BMS, module electronics, and the cooler's electrical power) is drawn from
the stored energy; an empty pack goes to sleep and draws nothing, as a LUNA2000 does.
"""

from __future__ import annotations

from dataclasses import dataclass

from bessai.errors import ConfigError
from bessai.plant.thermal import ThermalConfig

SECONDS_PER_HOUR = 3600.0
J_PER_KWH = 3.6e6
SECONDS_PER_MONTH = 30.0 * 86400.0


@dataclass(frozen=True, slots=True)
class BatteryParams:
    """A battery system as the grid sees it; powers are AC-side, energies DC-side."""

    name: str
    nameplate_energy_kwh: float
    max_charge_w: float
    max_discharge_w: float
    thermal: ThermalConfig
    usable_fraction: float = 1.0
    charge_efficiency: float = 0.975
    discharge_efficiency: float = 0.975
    taper_charge_start_soc_pct: float = 90.0
    taper_discharge_end_soc_pct: float = 10.0
    taper_floor_fraction: float = 0.1
    charge_temp_min_c: float = 0.0
    charge_temp_full_low_c: float = 10.0
    charge_temp_full_high_c: float = 50.0
    charge_temp_max_c: float = 60.0
    discharge_temp_min_c: float = -20.0
    discharge_temp_full_low_c: float = -10.0
    discharge_temp_full_high_c: float = 50.0
    discharge_temp_max_c: float = 60.0
    self_discharge_pct_per_month: float = 2.0
    aux_power_w: float = 0.0
    # Informational (register maps report per-module values); the figures above are totals.
    modules: int = 1

    def __post_init__(self) -> None:
        positive = ("nameplate_energy_kwh", "max_charge_w", "max_discharge_w")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"battery.{name} must be positive, got {getattr(self, name)}")
        for name in ("usable_fraction", "charge_efficiency", "discharge_efficiency"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigError(f"battery.{name} must be in (0, 1], got {value}")
        if not 0 <= self.taper_floor_fraction <= 1:
            raise ConfigError(
                f"battery.taper_floor_fraction must be in [0, 1], got {self.taper_floor_fraction}"
            )
        if not 0 < self.taper_charge_start_soc_pct < 100:
            raise ConfigError("battery.taper_charge_start_soc_pct must be in (0, 100)")
        if not 0 < self.taper_discharge_end_soc_pct < 100:
            raise ConfigError("battery.taper_discharge_end_soc_pct must be in (0, 100)")
        for prefix in ("charge", "discharge"):
            temps = [
                getattr(self, f"{prefix}_temp_{k}_c")
                for k in ("min", "full_low", "full_high", "max")
            ]
            if temps != sorted(temps) or temps[0] == temps[1] or temps[2] == temps[3]:
                raise ConfigError(
                    f"battery.{prefix}_temp_* must rise strictly min < full_low <= full_high < max,"
                    f" got {temps}"
                )
        if self.self_discharge_pct_per_month < 0 or self.aux_power_w < 0:
            raise ConfigError("battery self-discharge and aux power must not be negative")

    @property
    def usable_energy_kwh(self) -> float:
        """Usable energy when new (SOH 100 %)."""
        return self.nameplate_energy_kwh * self.usable_fraction


def luna2000(modules: int = 3) -> BatteryParams:
    """Huawei LUNA2000-class stack: 5 kWh and 2.5 kW per module, 1 to 3 modules per stack per
    the datasheet, more for parallel stacks. Thermal figures are per module, scaled: ~40 kJ/K of
    cells and housing, 2.5 % of rated power released as heat inside the pack (cells and the
    module's DC/DC), natural convection only (0.3 K/W per module). These are engineering
    estimates, not datasheet values; with them a pack cycled at full power on a 35 °C day passes
    45 °C in about three hours, the over-temperature case the safety tests need."""
    if modules < 1:
        raise ConfigError(f"luna2000 needs at least one module, got {modules}")
    rated_w = 2500.0 * modules
    return BatteryParams(
        name=f"LUNA2000 {5 * modules} kWh ({modules} x 5 kWh)",
        nameplate_energy_kwh=5.0 * modules,
        max_charge_w=rated_w,
        max_discharge_w=rated_w,
        charge_efficiency=0.975,
        discharge_efficiency=0.975,
        self_discharge_pct_per_month=2.0,
        aux_power_w=4.0 * modules,
        modules=modules,
        thermal=ThermalConfig(
            heat_capacity_j_per_k=40_000.0 * modules,
            thermal_resistance_k_per_w=0.3 / modules,
            loss_at_rated_power_w=0.025 * rated_w,
            rated_power_w=rated_w,
        ),
    )


def ci_container_1mw_4mwh() -> BatteryParams:
    """C&I / utility container: 1 MW, 4 MWh usable (0.25C), PCS included in the efficiencies.
    ~25 t of cells (2.5e7 J/K), 1 % of rated power as cell heat, an insulated container
    (0.004 K/W) and an HVAC holding 25 °C with up to 30 kW of cooling at COP 3; 3 kW of base
    auxiliaries (BMS, fire system, controls)."""
    rated_w = 1_000_000.0
    return BatteryParams(
        name="C&I container 1 MW / 4 MWh",
        nameplate_energy_kwh=4000.0,
        max_charge_w=rated_w,
        max_discharge_w=rated_w,
        charge_efficiency=0.96,
        discharge_efficiency=0.96,
        self_discharge_pct_per_month=2.0,
        aux_power_w=3000.0,
        modules=1,
        thermal=ThermalConfig(
            heat_capacity_j_per_k=2.5e7,
            thermal_resistance_k_per_w=0.004,
            loss_at_rated_power_w=0.01 * rated_w,
            rated_power_w=rated_w,
            cooling_setpoint_c=25.0,
            cooling_gain_w_per_k=20_000.0,
            cooling_max_w=30_000.0,
            cooling_cop=3.0,
        ),
    )


def _trapezoid(
    t: float, t_min: float, t_full_low: float, t_full_high: float, t_max: float
) -> float:
    if t <= t_min or t >= t_max:
        return 0.0
    if t < t_full_low:
        return (t - t_min) / (t_full_low - t_min)
    if t > t_full_high:
        return (t_max - t) / (t_max - t_full_high)
    return 1.0


def power_limits_w(config: BatteryParams, soc_pct: float, temp_c: float) -> tuple[float, float]:
    """(max charge W, max discharge W), both >= 0, at this SOC and cell temperature."""
    c = config
    start = c.taper_charge_start_soc_pct
    if soc_pct >= 100.0:
        taper_ch = 0.0
    elif soc_pct <= start:
        taper_ch = 1.0
    else:
        taper_ch = max(c.taper_floor_fraction, (100.0 - soc_pct) / (100.0 - start))
    end = c.taper_discharge_end_soc_pct
    if soc_pct <= 0.0:
        taper_dis = 0.0
    elif soc_pct >= end:
        taper_dis = 1.0
    else:
        taper_dis = max(c.taper_floor_fraction, soc_pct / end)
    temp_ch = _trapezoid(
        temp_c,
        c.charge_temp_min_c,
        c.charge_temp_full_low_c,
        c.charge_temp_full_high_c,
        c.charge_temp_max_c,
    )
    temp_dis = _trapezoid(
        temp_c,
        c.discharge_temp_min_c,
        c.discharge_temp_full_low_c,
        c.discharge_temp_full_high_c,
        c.discharge_temp_max_c,
    )
    return c.max_charge_w * taper_ch * temp_ch, c.max_discharge_w * taper_dis * temp_dis


class BatteryModel:
    """Mutable electrical state of one battery system, with cumulative energy counters (kWh)."""

    __slots__ = (
        "aux_kwh",
        "capacity_kwh",
        "charged_kwh",
        "config",
        "discharged_kwh",
        "energy_kwh",
        "fade_clip_kwh",
        "self_discharge_kwh",
    )

    def __init__(
        self, config: BatteryParams, soc_pct: float = 50.0, soh_pct: float = 100.0
    ) -> None:
        if not 0.0 <= soc_pct <= 100.0:
            raise ConfigError(f"initial SOC must be in [0, 100] %, got {soc_pct}")
        if not 0.0 < soh_pct <= 100.0:
            raise ConfigError(f"SOH must be in (0, 100] %, got {soh_pct}")
        self.config = config
        self.capacity_kwh = config.usable_energy_kwh * soh_pct / 100.0
        self.energy_kwh = self.capacity_kwh * soc_pct / 100.0
        self.charged_kwh = 0.0
        self.discharged_kwh = 0.0
        self.self_discharge_kwh = 0.0
        self.aux_kwh = 0.0
        self.fade_clip_kwh = 0.0

    @property
    def soc_pct(self) -> float:
        return min(100.0, max(0.0, 100.0 * self.energy_kwh / self.capacity_kwh))

    def limits_w(self, temp_c: float) -> tuple[float, float]:
        return power_limits_w(self.config, self.soc_pct, temp_c)

    def set_soh(self, soh_pct: float) -> None:
        """Shrink the usable capacity to `soh_pct`; energy above it is lost (and counted)."""
        self.capacity_kwh = self.config.usable_energy_kwh * max(soh_pct, 1e-6) / 100.0
        if self.energy_kwh > self.capacity_kwh:
            self.fade_clip_kwh += self.energy_kwh - self.capacity_kwh
            self.energy_kwh = self.capacity_kwh

    def step(
        self, setpoint_w: float, dt_s: float, temp_c: float, extra_aux_w: float = 0.0
    ) -> float:
        """Apply `setpoint_w` (> 0 charge) for `dt_s` seconds; return the realised power in W.

        `bessai.plant.env_vector` repeats this over arrays; tests/plant/test_env_vector.py
        fails until a change here is mirrored there."""
        if not dt_s > 0.0:
            raise ValueError(f"dt_s must be positive, got {dt_s}")
        cfg = self.config
        max_ch, max_dis = power_limits_w(cfg, self.soc_pct, temp_c)
        power = min(max_ch, max(-max_dis, setpoint_w))
        dt_h = dt_s / SECONDS_PER_HOUR
        e = self.energy_kwh
        cap = self.capacity_kwh
        sd_req = e * cfg.self_discharge_pct_per_month / 100.0 * dt_s / SECONDS_PER_MONTH
        aux_req = (cfg.aux_power_w + extra_aux_w) * dt_s / J_PER_KWH
        drain_req = sd_req + aux_req
        if power >= 0.0:
            room = max(0.0, cap - e + drain_req)
            e_in = power / 1000.0 * dt_h * cfg.charge_efficiency
            realised = power
            if e_in > room:
                e_in = room
                realised = room / cfg.charge_efficiency / dt_h * 1000.0
            drain = min(drain_req, e + e_in)
            self.charged_kwh += realised / 1000.0 * dt_h
            e_new = e + e_in - drain
        else:
            available = max(0.0, e - drain_req)
            e_out = -power / 1000.0 * dt_h / cfg.discharge_efficiency
            realised = power
            if e_out > available:
                e_out = available
                realised = -available * cfg.discharge_efficiency / dt_h * 1000.0
            drain = min(drain_req, e - e_out)
            self.discharged_kwh += -realised / 1000.0 * dt_h
            e_new = e - e_out - drain
        if drain_req > 0.0:
            self.self_discharge_kwh += drain * sd_req / drain_req
            self.aux_kwh += drain * aux_req / drain_req
        # Rounding can leave e_new a few ulps outside [0, cap]; the counters carry the exact sum.
        self.energy_kwh = min(cap, max(0.0, e_new))
        return realised
