"""Gymnasium environment for battery arbitrage on real prices: `bessai/BESS-v0`.

    import bessai, gymnasium as gym
    env = gym.make("bessai/BESS-v0", prices_usd_mwh=prices, step_hours=1.0)
    venv = gym.make_vec("bessai/BESS-v0", num_envs=64, prices_usd_mwh=prices, step_hours=1.0)

`make_vec` gives the native `bessai.plant.env_vector.BessVectorEnv` (numpy-batched physics,
several times faster); `vectorization_mode="sync"` gives gymnasium's SyncVectorEnv of `BessEnv`.

The plant is a `bessai.plant.site.Site` with no PV and no load, so the grid meter sees the
battery alone and the revenue is pure arbitrage.

Action: Box(-1, 1, shape=(1,)), the battery setpoint as a fraction of rated power
    (> 0 charge at `a * max_charge_w`, < 0 discharge at `a * max_discharge_w`).
Observation (float32):
    [0] SOC (0..1), [1] (cell temperature - 25 °C) / 20 K, [2] price now / price_scale,
    [3 : 3+F] the next F prices / price_scale (perfect foresight; the last price repeats past
    the end of the series), [-2:] sin and cos of the hour of day.
    With `observed_prices_usd_mwh` (one row of F+1 prices per step, e.g. a day-ahead forecast)
    [2 : 3+F] is that row instead: the agent plans on what a forecaster knew, not on the future.
Reward per step, in USD:
    revenue      = -E_battery_kWh * price_USD/kWh             (selling what is discharged)
    - wear       = delta(capacity fade) / end_of_life_fade * replacement cost of the usable kWh
    - penalty    = |setpoint - realised| kWh * penalty_usd_per_kwh   (asking beyond the limits)
Episodes: `episode_days` whole days starting at a random day of the series (or at
`options={"start_step": i}`), with a random initial SOC unless one is given (argument
`initial_soc_pct` or `options={"initial_soc_pct": x}`); truncated at the end. The battery
starts in service (one year old, 300 cycles by default) so the marginal wear is that of a
working battery, not of a fresh cell's first hours.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from bessai.plant.battery import BatteryParams, luna2000
from bessai.plant.site import SiteModel, SiteModelConfig

ObsArray = npt.NDArray[np.float32]

_EPOCH = datetime(2019, 1, 1, tzinfo=UTC)
# -65 °C .. 115 °C: beyond the cells' survival range both ways.
_TEMP_OBS_BOUND = 4.5


class ArbitrageTask:
    """What an episode is about, shared by `BessEnv` and the vectorized `BessVectorEnv`: the
    price series, step length, episode layout, plant template, reward terms and spaces."""

    __slots__ = (
        "action_space",
        "battery",
        "episode_steps",
        "first_midnight",
        "forecast_steps",
        "initial_soc_pct",
        "n_days",
        "obs_windows",
        "observation_space",
        "penalty_usd_per_kwh",
        "price_scale_usd_mwh",
        "prices_usd_mwh",
        "site_template",
        "start_hour_of_day",
        "step_hours",
        "steps_per_day",
        "wear_usd_per_fade",
    )

    def __init__(
        self,
        prices_usd_mwh: npt.ArrayLike,
        step_hours: float = 1.0,
        *,
        battery: BatteryParams | None = None,
        episode_days: int = 1,
        forecast_steps: int = 24,
        start_hour_of_day: float = 0.0,
        initial_soc_pct: float | None = None,
        replacement_cost_usd_per_kwh: float = 150.0,
        end_of_life_fade: float = 0.2,
        penalty_usd_per_kwh: float = 0.05,
        price_scale_usd_mwh: float = 100.0,
        ambient_mean_c: float = 20.0,
        ambient_daily_amplitude_c: float = 6.0,
        prior_age_days: float = 365.0,
        prior_full_cycles: float = 300.0,
        observed_prices_usd_mwh: npt.ArrayLike | None = None,
    ) -> None:
        prices = np.asarray(prices_usd_mwh, dtype=np.float64).ravel()
        if not step_hours > 0:
            raise ValueError(f"step_hours must be positive, got {step_hours}")
        steps_per_day = round(24.0 / step_hours)
        if not math.isclose(steps_per_day * step_hours, 24.0):
            raise ValueError(f"step_hours must divide a day, got {step_hours}")
        if episode_days < 1 or forecast_steps < 0:
            raise ValueError("episode_days must be >= 1 and forecast_steps >= 0")
        self.episode_steps = steps_per_day * episode_days
        # Episodes start at midnight: the first one in the series is this many steps in.
        self.first_midnight = round(((24.0 - start_hour_of_day) % 24.0) / step_hours)
        if prices.size < self.first_midnight + self.episode_steps or not np.all(
            np.isfinite(prices)
        ):
            raise ValueError(
                f"need at least {self.first_midnight + self.episode_steps} finite prices"
                f" for one episode from midnight, got {prices.size}"
            )
        if initial_soc_pct is not None and not 0 <= initial_soc_pct <= 100:
            raise ValueError(f"initial_soc_pct must be in [0, 100], got {initial_soc_pct}")
        if not end_of_life_fade > 0:
            raise ValueError(f"end_of_life_fade must be positive, got {end_of_life_fade}")
        self.prices_usd_mwh = prices
        self.step_hours = float(step_hours)
        self.steps_per_day = steps_per_day
        self.n_days = (prices.size - self.first_midnight - self.episode_steps) // steps_per_day + 1
        self.forecast_steps = forecast_steps
        self.price_scale_usd_mwh = float(price_scale_usd_mwh)
        self.start_hour_of_day = start_hour_of_day
        self.initial_soc_pct = initial_soc_pct
        self.battery = battery if battery is not None else luna2000(3)
        self.penalty_usd_per_kwh = penalty_usd_per_kwh
        self.wear_usd_per_fade = (
            replacement_cost_usd_per_kwh * self.battery.usable_energy_kwh / end_of_life_fade
        )
        self.site_template = SiteModelConfig(
            battery=self.battery,
            ambient_mean_c=ambient_mean_c,
            ambient_daily_amplitude_c=ambient_daily_amplitude_c,
            prior_age_days=prior_age_days,
            prior_full_cycles=prior_full_cycles,
        )
        self.obs_windows = _obs_windows(
            prices, forecast_steps, price_scale_usd_mwh, observed_prices_usd_mwh
        )

        n_obs = 3 + forecast_steps + 2
        low = np.full(n_obs, float(self.obs_windows.min()), dtype=np.float32)
        high = np.full(n_obs, float(self.obs_windows.max()), dtype=np.float32)
        low[0], high[0] = 0.0, 1.0
        low[1], high[1] = -_TEMP_OBS_BOUND, _TEMP_OBS_BOUND
        low[-2:], high[-2:] = -1.0, 1.0
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    def start_step(self, rng: np.random.Generator, options: dict[str, Any] | None) -> int:
        """Where an episode starts: `options["start_step"]` if given, else a random midnight."""
        if options and "start_step" in options:
            start = int(options["start_step"])
            if not 0 <= start <= self.prices_usd_mwh.size - self.episode_steps:
                raise ValueError(f"start_step {start} leaves no full episode in the series")
            return start
        return self.first_midnight + int(rng.integers(self.n_days)) * self.steps_per_day

    def initial_soc(self, rng: np.random.Generator, options: dict[str, Any] | None) -> float:
        """`options["initial_soc_pct"]`, else the task's fixed value, else random 10..90 %."""
        if options and "initial_soc_pct" in options:
            soc = float(options["initial_soc_pct"])
            if not 0 <= soc <= 100:
                raise ValueError(f"initial_soc_pct must be in [0, 100], got {soc}")
            return soc
        if self.initial_soc_pct is not None:
            return float(self.initial_soc_pct)
        return float(rng.uniform(10.0, 90.0))

    def hours_since_epoch(self, k: int) -> float:
        return self.start_hour_of_day + k * self.step_hours

    def now(self, k: int) -> datetime:
        return _EPOCH + timedelta(hours=self.hours_since_epoch(k))

    def setpoint_w(self, action: float) -> float:
        """Action in [-1, 1] (clipped) to a setpoint in W, > 0 charging."""
        a = min(1.0, max(-1.0, action))
        cfg = self.battery
        return a * (cfg.max_charge_w if a >= 0 else cfg.max_discharge_w)


def _obs_windows(
    prices: npt.NDArray[np.float64],
    forecast_steps: int,
    price_scale_usd_mwh: float,
    observed: npt.ArrayLike | None,
) -> npt.NDArray[np.float32]:
    """The price window the agent sees at each step (one row per step, and one more for the
    observation after the last step), scaled. Without `observed`: the real prices from the
    step on, the last one repeated past the end."""
    n, width = prices.size, forecast_steps + 1
    if observed is None:
        padded = np.concatenate([prices, np.full(width, prices[-1])])
        rows = np.lib.stride_tricks.sliding_window_view(padded, width)[: n + 1]
    else:
        rows = np.asarray(observed, dtype=np.float64)
        if rows.shape != (n, width) or not np.all(np.isfinite(rows)):
            raise ValueError(
                f"observed_prices_usd_mwh must be {n} rows of {width} finite prices (one window"
                f" per step), got shape {rows.shape}"
            )
        rows = np.concatenate([rows, rows[-1:]])
    out: npt.NDArray[np.float32] = (rows / price_scale_usd_mwh).astype(np.float32)
    return out


class BessEnv(gym.Env[ObsArray, ObsArray]):
    """Battery arbitrage against a price series; see the module docstring. Keyword arguments
    are those of `ArbitrageTask`."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium's own API

    def __init__(self, prices_usd_mwh: npt.ArrayLike, step_hours: float = 1.0, **task: Any) -> None:
        self._task = ArbitrageTask(prices_usd_mwh, step_hours, **task)
        self.observation_space = self._task.observation_space
        self.action_space = self._task.action_space
        self._site: SiteModel | None = None
        self._t0 = 0
        self._i = 0
        self._fade = 0.0

    @property
    def task(self) -> ArbitrageTask:
        return self._task

    @property
    def episode_steps(self) -> int:
        return self._task.episode_steps

    def _obs(self) -> ObsArray:
        assert self._site is not None
        task = self._task
        st = self._site.state
        k = self._t0 + self._i
        obs = np.empty(task.observation_space.shape or (0,), dtype=np.float32)
        obs[0] = min(1.0, max(0.0, st.soc_pct / 100.0))
        obs[1] = min(_TEMP_OBS_BOUND, max(-_TEMP_OBS_BOUND, (st.cell_temp_c - 25.0) / 20.0))
        obs[2 : 3 + task.forecast_steps] = task.obs_windows[k]
        angle = 2.0 * math.pi * (task.hours_since_epoch(k) % 24.0) / 24.0
        obs[-2] = math.sin(angle)
        obs[-1] = math.cos(angle)
        return obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsArray, dict[str, Any]]:
        super().reset(seed=seed)
        rng = self.np_random
        start = self._task.start_step(rng, options)
        soc0 = self._task.initial_soc(rng, options)
        self._t0 = start
        self._i = 0
        self._site = SiteModel(replace(self._task.site_template, initial_soc_pct=soc0))
        self._fade = 1.0 - self._site.state.soh_pct / 100.0
        return self._obs(), {"start_step": start, "soc_pct": soc0}

    def step(self, action: ObsArray) -> tuple[ObsArray, float, bool, bool, dict[str, Any]]:
        if self._site is None:
            raise RuntimeError("call reset() before step()")
        task = self._task
        setpoint_w = task.setpoint_w(float(np.asarray(action, dtype=np.float64).reshape(-1)[0]))
        k = self._t0 + self._i
        price = float(task.prices_usd_mwh[k])
        st = self._site.step(setpoint_w, task.step_hours * 3600.0, task.now(k))
        revenue = -st.battery_power_w * task.step_hours / 1000.0 * price / 1000.0
        fade = 1.0 - st.soh_pct / 100.0
        wear = (fade - self._fade) * task.wear_usd_per_fade
        self._fade = fade
        excess_kwh = abs(setpoint_w - st.battery_power_w) * task.step_hours / 1000.0
        penalty = excess_kwh * task.penalty_usd_per_kwh
        reward = revenue - wear - penalty
        self._i += 1
        truncated = self._i >= task.episode_steps
        info = {
            "price_usd_mwh": price,
            "battery_power_w": st.battery_power_w,
            "soc_pct": st.soc_pct,
            "cell_temp_c": st.cell_temp_c,
            "revenue_usd": revenue,
            "wear_usd": wear,
            "penalty_usd": penalty,
        }
        return self._obs(), reward, False, truncated, info
