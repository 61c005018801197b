"""Lumped RC model of the cell temperature.

One thermal mass C (J/K) at the cell temperature T, heated by the resistive losses of the
current and cooled through a thermal resistance R (K/W) to the ambient and, when fitted, by an
active cooler (HVAC) that removes heat in proportion to how far T is above its setpoint, up to
its capacity::

    C dT/dt = Q(P) - (T - T_amb) / R - P_cool(T)
    Q(P)    = Q_rated * (P / P_rated)^2                 (I^2 R: current scales with power)
    P_cool  = clip(g * (T - T_set), 0, P_cool_max)

Within one cooling regime (off, proportional, saturated) the equation is linear, so each step
uses its exact exponential solution: stable for any step length, which matters because the
environment steps an hour at a time and the simulator a second at a time. The regime is chosen
from the temperature at the start of the step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bessai.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ThermalConfig:
    """Thermal parameters of one battery system (all modules together)."""

    heat_capacity_j_per_k: float
    thermal_resistance_k_per_w: float
    # Heat released inside the pack at rated power (cells and module electronics).
    loss_at_rated_power_w: float
    rated_power_w: float
    cooling_setpoint_c: float = 25.0
    cooling_gain_w_per_k: float = 0.0
    cooling_max_w: float = 0.0
    # Electrical power drawn by the cooler = heat removed / COP.
    cooling_cop: float = 3.0

    def __post_init__(self) -> None:
        for name in (
            "heat_capacity_j_per_k",
            "thermal_resistance_k_per_w",
            "rated_power_w",
            "cooling_cop",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(f"thermal.{name} must be positive, got {getattr(self, name)}")
        for name in ("loss_at_rated_power_w", "cooling_gain_w_per_k", "cooling_max_w"):
            if getattr(self, name) < 0:
                raise ConfigError(f"thermal.{name} must not be negative, got {getattr(self, name)}")


class ThermalModel:
    """Cell temperature state. `step` advances it and returns the cooler's electrical power."""

    __slots__ = ("_cfg", "temp_c")

    def __init__(self, config: ThermalConfig, temp_c: float) -> None:
        self._cfg = config
        self.temp_c = temp_c

    def heat_w(self, power_w: float) -> float:
        cfg = self._cfg
        ratio = power_w / cfg.rated_power_w
        return cfg.loss_at_rated_power_w * ratio * ratio

    def step(self, power_w: float, ambient_c: float, dt_s: float) -> float:
        """Advance by `dt_s` with battery power `power_w` (either sign); return the average
        electrical power of the cooler over the step, in W. Mirrored over arrays in
        `bessai.plant.env_vector` (held equal by tests/plant/test_env_vector.py)."""
        cfg = self._cfg
        q = self.heat_w(power_w)
        t0 = self.temp_c
        c = cfg.heat_capacity_j_per_k
        r = cfg.thermal_resistance_k_per_w
        g = cfg.cooling_gain_w_per_k
        excess = t0 - cfg.cooling_setpoint_c
        if g <= 0.0 or cfg.cooling_max_w <= 0.0 or excess <= 0.0:
            t_eq = ambient_c + q * r
            tau = r * c
        elif g * excess >= cfg.cooling_max_w:
            t_eq = ambient_c + (q - cfg.cooling_max_w) * r
            tau = r * c
        else:
            conductance = 1.0 / r + g
            t_eq = (q + ambient_c / r + g * cfg.cooling_setpoint_c) / conductance
            tau = c / conductance
        decay = math.exp(-dt_s / tau)
        t1 = t_eq + (t0 - t_eq) * decay
        self.temp_c = t1
        if g <= 0.0 or cfg.cooling_max_w <= 0.0:
            return 0.0
        mean_t = 0.5 * (t0 + t1)
        cooling = min(cfg.cooling_max_w, max(0.0, g * (mean_t - cfg.cooling_setpoint_c)))
        return cooling / cfg.cooling_cop
