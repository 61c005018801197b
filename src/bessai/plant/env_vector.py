"""Native vectorized `bessai/BESS-v0`: N batteries stepped together with numpy.

`gym.make_vec("bessai/BESS-v0", num_envs=N, prices_usd_mwh=...)` returns this class. It runs
the same task as `BessEnv` (`ArbitrageTask`: spaces, episodes, reward) with the battery and
thermal equations of `BatteryModel.step`, `power_limits_w` and `ThermalModel.step` over arrays,
in the same order of operations, and the same per-battery `DegradationTracker` (rainflow has a
stack per battery and does not vectorize; it costs a few microseconds). A test steps this class
and N scalar `BessEnv`s side by side and requires the same observations and rewards, so a change
to the scalar physics that is not mirrored here fails the suite.

Autoreset is gymnasium's default next-step mode: the step after an episode is truncated resets
that sub-environment, ignores its action and returns reward 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from bessai.plant.battery import J_PER_KWH, SECONDS_PER_MONTH
from bessai.plant.degradation import DegradationTracker
from bessai.plant.env import _EPOCH, _TEMP_OBS_BOUND, ArbitrageTask

F64 = npt.NDArray[np.float64]
ObsBatch = npt.NDArray[np.float32]

_EPOCH_S = _EPOCH.timestamp()


def _trapezoid(t: F64, t_min: float, t_full_low: float, t_full_high: float, t_max: float) -> F64:
    out: F64 = np.where(
        (t <= t_min) | (t >= t_max),
        0.0,
        np.where(
            t < t_full_low,
            (t - t_min) / (t_full_low - t_min),
            np.where(t > t_full_high, (t_max - t) / (t_max - t_full_high), 1.0),
        ),
    )
    return out


class BessVectorEnv(VectorEnv[ObsBatch, ObsBatch, npt.NDArray[Any]]):
    """`num_envs` independent arbitrage episodes on one price series; see the module docstring.
    Keyword arguments are those of `ArbitrageTask`."""

    metadata: dict[str, Any] = {  # noqa: RUF012 - gymnasium's own API
        "autoreset_mode": AutoresetMode.NEXT_STEP,
        "render_modes": [],
    }

    def __init__(
        self,
        num_envs: int = 8,
        prices_usd_mwh: npt.ArrayLike | None = None,
        step_hours: float = 1.0,
        **task: Any,
    ) -> None:
        if prices_usd_mwh is None:
            raise ValueError("prices_usd_mwh is required (a price per step, USD/MWh)")
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self._task = ArbitrageTask(prices_usd_mwh, step_hours, **task)
        self.single_observation_space = self._task.observation_space
        self.single_action_space = self._task.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        n = num_envs
        self._energy = np.zeros(n)
        self._capacity = np.ones(n)
        self._temp = np.zeros(n)
        self._cooling_w = np.zeros(n)
        self._fade = np.zeros(n)
        self._t0 = np.zeros(n, dtype=np.int64)
        self._i = np.zeros(n, dtype=np.int64)
        self._trackers: list[DegradationTracker] = []
        self._needs_reset = np.zeros(n, dtype=bool)

    @property
    def task(self) -> ArbitrageTask:
        return self._task

    def _per_env(self, options: dict[str, Any] | None, j: int) -> dict[str, Any] | None:
        if not options:
            return None
        out: dict[str, Any] = {}
        for key in ("start_step", "initial_soc_pct"):
            if key in options:
                value = options[key]
                is_seq = isinstance(value, Sequence | np.ndarray)
                out[key] = value[j] if is_seq else value
        return out

    def _reset_one(self, j: int, options: dict[str, Any] | None) -> tuple[int, float]:
        task = self._task
        rng = self.np_random
        start = task.start_step(rng, options)
        soc0 = task.initial_soc(rng, options)
        site = task.site_template
        temp0 = site.initial_temp_c if site.initial_temp_c is not None else site.ambient_mean_c
        tracker = DegradationTracker(
            soc0,
            temp0,
            site.aging,
            prior_age_days=site.prior_age_days,
            prior_full_cycles=site.prior_full_cycles,
        )
        soh = tracker.result().soh_pct
        if j < len(self._trackers):
            self._trackers[j] = tracker
        else:
            self._trackers.append(tracker)
        self._capacity[j] = task.battery.usable_energy_kwh * max(soh, 1e-6) / 100.0
        self._energy[j] = self._capacity[j] * soc0 / 100.0
        self._temp[j] = temp0
        self._cooling_w[j] = 0.0
        self._fade[j] = 1.0 - soh / 100.0
        self._t0[j] = start
        self._i[j] = 0
        return start, soc0

    def reset(
        self,
        *,
        seed: int | list[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[ObsBatch, dict[str, Any]]:
        """Reset every sub-environment. `options` values may be scalars or one per env."""
        if isinstance(seed, list):
            seed = seed[0]
        if seed is not None or self._np_random is None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        self._trackers = []
        starts = np.zeros(self.num_envs, dtype=np.int64)
        socs = np.zeros(self.num_envs)
        for j in range(self.num_envs):
            starts[j], socs[j] = self._reset_one(j, self._per_env(options, j))
        self._needs_reset[:] = False
        everyone = np.ones(self.num_envs, dtype=bool)
        info = {
            "start_step": starts,
            "_start_step": everyone,
            "soc_pct": socs,
            "_soc_pct": everyone,
        }
        return self._obs(), info

    def _soc_pct(self) -> F64:
        out: F64 = np.minimum(100.0, np.maximum(0.0, 100.0 * self._energy / self._capacity))
        return out

    def _obs(self) -> ObsBatch:
        task = self._task
        k = self._t0 + self._i
        obs = np.empty((self.num_envs, *(task.observation_space.shape or (0,))), dtype=np.float32)
        obs[:, 0] = np.minimum(1.0, np.maximum(0.0, self._soc_pct() / 100.0))
        obs[:, 1] = np.clip((self._temp - 25.0) / 20.0, -_TEMP_OBS_BOUND, _TEMP_OBS_BOUND)
        obs[:, 2 : 3 + task.forecast_steps] = task.obs_windows[k]
        hours = task.start_hour_of_day + k * task.step_hours
        angle = 2.0 * math.pi * (hours % 24.0) / 24.0
        obs[:, -2] = np.sin(angle)
        obs[:, -1] = np.cos(angle)
        return obs

    def _limits(self, soc: F64, temp: F64) -> tuple[F64, F64]:
        c = self._task.battery
        start = c.taper_charge_start_soc_pct
        end = c.taper_discharge_end_soc_pct
        taper_ch = np.where(
            soc >= 100.0,
            0.0,
            np.where(
                soc <= start,
                1.0,
                np.maximum(c.taper_floor_fraction, (100.0 - soc) / (100.0 - start)),
            ),
        )
        taper_dis = np.where(
            soc <= 0.0,
            0.0,
            np.where(soc >= end, 1.0, np.maximum(c.taper_floor_fraction, soc / end)),
        )
        temp_ch = _trapezoid(
            temp,
            c.charge_temp_min_c,
            c.charge_temp_full_low_c,
            c.charge_temp_full_high_c,
            c.charge_temp_max_c,
        )
        temp_dis = _trapezoid(
            temp,
            c.discharge_temp_min_c,
            c.discharge_temp_full_low_c,
            c.discharge_temp_full_high_c,
            c.discharge_temp_max_c,
        )
        return (
            c.max_charge_w * taper_ch * temp_ch,
            c.max_discharge_w * taper_dis * temp_dis,
        )

    def _battery_step(self, setpoint_w: F64, dt_s: float) -> F64:
        """`BatteryModel.step` over arrays; returns the realised power."""
        cfg = self._task.battery
        max_ch, max_dis = self._limits(self._soc_pct(), self._temp)
        power = np.minimum(max_ch, np.maximum(-max_dis, setpoint_w))
        dt_h = dt_s / 3600.0
        e = self._energy
        cap = self._capacity
        sd_req = e * cfg.self_discharge_pct_per_month / 100.0 * dt_s / SECONDS_PER_MONTH
        aux_req = (cfg.aux_power_w + self._cooling_w) * dt_s / J_PER_KWH
        drain_req = sd_req + aux_req
        eta_c = cfg.charge_efficiency
        eta_d = cfg.discharge_efficiency

        room = np.maximum(0.0, cap - e + drain_req)
        e_in_req = power / 1000.0 * dt_h * eta_c
        clip_in = e_in_req > room
        e_in = np.where(clip_in, room, e_in_req)
        realised_ch = np.where(clip_in, room / eta_c / dt_h * 1000.0, power)
        e_new_ch = e + e_in - np.minimum(drain_req, e + e_in)

        available = np.maximum(0.0, e - drain_req)
        e_out_req = -power / 1000.0 * dt_h / eta_d
        clip_out = e_out_req > available
        e_out = np.where(clip_out, available, e_out_req)
        realised_dis = np.where(clip_out, -available * eta_d / dt_h * 1000.0, power)
        e_new_dis = e - e_out - np.minimum(drain_req, e - e_out)

        charging = power >= 0.0
        self._energy = np.minimum(cap, np.maximum(0.0, np.where(charging, e_new_ch, e_new_dis)))
        realised: F64 = np.where(charging, realised_ch, realised_dis)
        return realised

    def _thermal_step(self, power_w: F64, ambient_c: F64, dt_s: float) -> None:
        """`ThermalModel.step` over arrays; updates temperature and the cooler's power."""
        cfg = self._task.battery.thermal
        ratio = power_w / cfg.rated_power_w
        q = cfg.loss_at_rated_power_w * ratio * ratio
        t0 = self._temp
        c = cfg.heat_capacity_j_per_k
        r = cfg.thermal_resistance_k_per_w
        g = cfg.cooling_gain_w_per_k
        cooled = g > 0.0 and cfg.cooling_max_w > 0.0
        if cooled:
            excess = t0 - cfg.cooling_setpoint_c
            off = excess <= 0.0
            saturated = ~off & (g * excess >= cfg.cooling_max_w)
            conductance = 1.0 / r + g
            t_eq = np.where(
                off,
                ambient_c + q * r,
                np.where(
                    saturated,
                    ambient_c + (q - cfg.cooling_max_w) * r,
                    (q + ambient_c / r + g * cfg.cooling_setpoint_c) / conductance,
                ),
            )
            tau = np.where(off | saturated, r * c, c / conductance)
        else:
            t_eq = ambient_c + q * r
            tau = np.full_like(t0, r * c)
        t1 = t_eq + (t0 - t_eq) * np.exp(-dt_s / tau)
        self._temp = t1
        if cooled:
            mean_t = 0.5 * (t0 + t1)
            cooling = np.minimum(
                cfg.cooling_max_w, np.maximum(0.0, g * (mean_t - cfg.cooling_setpoint_c))
            )
            self._cooling_w = cooling / cfg.cooling_cop
        else:
            self._cooling_w = np.zeros_like(t0)

    def _ambient_c(self, k: npt.NDArray[np.int64]) -> F64:
        task = self._task
        site = task.site_template
        epoch_s = _EPOCH_S + (task.start_hour_of_day + k * task.step_hours) * 3600.0
        solar_h = (epoch_s / 3600.0 + site.longitude_deg / 15.0) % 24.0
        out: F64 = site.ambient_mean_c + site.ambient_daily_amplitude_c * np.cos(
            2.0 * math.pi * (solar_h - 15.0) / 24.0
        )
        return out

    def step(
        self, actions: npt.ArrayLike
    ) -> tuple[ObsBatch, npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any], dict[str, Any]]:
        if not self._trackers:
            raise RuntimeError("call reset() before step()")
        task = self._task
        cfg = task.battery
        a = np.clip(np.asarray(actions, dtype=np.float64).reshape(self.num_envs), -1.0, 1.0)
        setpoint = a * np.where(a >= 0.0, cfg.max_charge_w, cfg.max_discharge_w)
        active = ~self._needs_reset
        # Sub-environments waiting for their autoreset step in place (their k is past the end).
        k = np.minimum(self._t0 + self._i, task.prices_usd_mwh.size - 1)
        dt_s = task.step_hours * 3600.0

        realised = self._battery_step(np.where(active, setpoint, 0.0), dt_s)
        self._thermal_step(realised, self._ambient_c(k), dt_s)
        soc = self._soc_pct()
        fade = self._fade.copy()
        usable = cfg.usable_energy_kwh
        for j in np.flatnonzero(active).tolist():
            tracker = self._trackers[j]
            tracker.update(float(soc[j]), float(self._temp[j]), dt_s)
            soh = tracker.result().soh_pct
            cap = usable * max(soh, 1e-6) / 100.0
            self._capacity[j] = cap
            if self._energy[j] > cap:
                self._energy[j] = cap
            fade[j] = 1.0 - soh / 100.0

        price = task.prices_usd_mwh[k]
        revenue = -realised * task.step_hours / 1000.0 * price / 1000.0
        wear = (fade - self._fade) * task.wear_usd_per_fade
        penalty = np.abs(setpoint - realised) * task.step_hours / 1000.0 * task.penalty_usd_per_kwh
        rewards: F64 = np.where(active, revenue - wear - penalty, 0.0)
        self._fade = fade
        self._i += active
        truncated = active & (self._i >= task.episode_steps)
        terminated = np.zeros(self.num_envs, dtype=bool)
        info: dict[str, Any] = {
            "price_usd_mwh": price,
            "battery_power_w": realised,
            "soc_pct": self._soc_pct(),
            "cell_temp_c": self._temp.copy(),
            "revenue_usd": revenue,
            "wear_usd": wear,
            "penalty_usd": penalty,
        }
        for key in list(info):
            info[f"_{key}"] = active
        for j in np.flatnonzero(~active).tolist():
            self._reset_one(j, None)
        self._needs_reset = truncated
        return self._obs(), rewards, terminated, truncated, info
