"""The observation of `bessai/BESS-v0`, built from what the gateway knows: the measured SOC and
cell temperature, the forecast the planner made, and the clock. The same layout as the
environment's (`bessai.plant.env`), so a policy trained there reads the site the same way."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from bessai.policy.card import PolicyCard

ObsArray = npt.NDArray[np.float32]
_TEMP_OBS_BOUND = 4.5  # as in bessai.plant.env


@dataclass(frozen=True, slots=True)
class SiteView:
    """What one decision reads: SOC, cell temperature, a forecast (USD/MWh, one price per step)
    whose step `first` is the current one, and the time."""

    soc_pct: float
    cell_temp_c: float
    forecast_usd_mwh: tuple[float, ...]
    now: datetime
    first: int = 0


def price_window(
    forecast: tuple[float, ...], first: int, width: int, steps_per_day: int
) -> list[float]:
    """`width` prices of the forecast from step `first`; past the forecast's end a step takes
    the price of the same time of day in the forecast (a daily profile, as the day-ahead
    forecasters give), or the last price when the forecast holds no such step."""
    n = len(forecast)
    if not 0 <= first < n:
        raise ValueError(f"step {first} is outside a forecast of {n} steps")
    out = []
    for x in range(first, first + width):
        while x >= n:
            x -= steps_per_day
        out.append(forecast[x] if x >= 0 else forecast[-1])
    return out


def observation(view: SiteView, card: PolicyCard) -> ObsArray:
    """The policy's input for `view`, laid out as the card says."""
    width = card.forecast_steps + 1
    steps_per_day = max(1, round(24.0 / card.step_hours))
    window = price_window(view.forecast_usd_mwh, view.first, width, steps_per_day)
    obs = np.empty(card.n_obs, dtype=np.float32)
    obs[0] = min(1.0, max(0.0, view.soc_pct / 100.0))
    obs[1] = min(_TEMP_OBS_BOUND, max(-_TEMP_OBS_BOUND, (view.cell_temp_c - 25.0) / 20.0))
    obs[2 : 2 + width] = np.asarray(window, dtype=np.float64) / card.price_scale_usd_mwh
    hour = view.now.hour + view.now.minute / 60.0 + view.now.second / 3600.0
    angle = 2.0 * math.pi * hour / 24.0
    obs[-2] = math.sin(angle)
    obs[-1] = math.cos(angle)
    return obs
