"""The entry points `gymnasium.make("bessai/BESS-v0")` and `make_vec` resolve to. Without a
price series they use the real CEN prices shipped with the package (Crucero 220 kV, Dec 2022 to
Dec 2023), as gymnasium users and RL libraries expect an environment to make with no arguments.
The plant layer holds the environment; loading a price file is the market layer's job, so the
defaults are filled in here, above both."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bessai.market.prices import load_prices
from bessai.plant.env import BessEnv
from bessai.plant.env_vector import BessVectorEnv

SHIPPED_PRICES = "cen_cmg_crucero220_2022-12_2023.csv"


@dataclass(frozen=True, slots=True)
class ShippedPrices:
    """The shipped hourly series (USD/MWh) and the UTC hour of its first step."""

    prices_usd_mwh: npt.NDArray[np.float64]
    start_hour_utc: float


@cache
def shipped_prices() -> ShippedPrices:
    """The shipped Crucero sample, loaded once per process; steps without a price (a gap longer
    than the loader fills) take the previous price, so the environment sees a finite series."""
    path = Path(str(resources.files("bessai.market").joinpath("data", SHIPPED_PRICES)))
    series = load_prices(path)
    values = series.prices.ffill().bfill().to_numpy(dtype=np.float64)
    first = series.index[0]
    return ShippedPrices(values, first.hour + first.minute / 60.0)


def _with_defaults(prices_usd_mwh: npt.ArrayLike | None, task: dict[str, Any]) -> npt.ArrayLike:
    if prices_usd_mwh is not None:
        return prices_usd_mwh
    shipped = shipped_prices()
    task.setdefault("start_hour_of_day", shipped.start_hour_utc)
    return shipped.prices_usd_mwh


def make_env(
    prices_usd_mwh: npt.ArrayLike | None = None, step_hours: float = 1.0, **task: Any
) -> BessEnv:
    """`BessEnv` on the given prices, or on the shipped CEN sample when none are given."""
    prices = _with_defaults(prices_usd_mwh, task)
    return BessEnv(prices, step_hours, **task)


def make_vector_env(
    num_envs: int = 8,
    prices_usd_mwh: npt.ArrayLike | None = None,
    step_hours: float = 1.0,
    **task: Any,
) -> BessVectorEnv:
    """`BessVectorEnv` on the given prices, or on the shipped CEN sample when none are given."""
    prices = _with_defaults(prices_usd_mwh, task)
    return BessVectorEnv(num_envs, prices, step_hours, **task)
