"""Plant benchmarks: Gymnasium environment steps per second (single, gymnasium's sync vector
env, and the native numpy-batched vector env at several widths; a vector step of N envs counts
N environment steps), site
steps per second as the simulator drives them, and rainflow + fade on a year of 15-min data."""

from __future__ import annotations

import csv
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from bench import DATA


def _crucero_prices() -> npt.NDArray[np.float64]:
    with (DATA / "cen_cmg_crucero220_2019-2023.csv").open(newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["timestamp"])
    return np.asarray([float(r["costo_usd"]) for r in rows], dtype=np.float64)


def _best_of(repeats: int, fn: object) -> float:
    assert callable(fn)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _env_single(prices: npt.NDArray[np.float64], steps: int) -> float:
    from bessai.plant.env import BessEnv

    env = BessEnv(prices, 1.0)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(steps)]
    t0 = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - t0)


def _env_vector(
    prices: npt.NDArray[np.float64], num_envs: int, steps: int, mode: str | None
) -> float:
    import gymnasium as gym

    import bessai  # noqa: F401 - registers the environment

    envs = gym.make_vec(
        "bessai/BESS-v0", num_envs=num_envs, vectorization_mode=mode, prices_usd_mwh=prices
    )
    envs.reset(seed=0)
    envs.action_space.seed(0)
    actions = [envs.action_space.sample() for _ in range(steps)]
    t0 = time.perf_counter()
    for a in actions:
        envs.step(a)
    elapsed = time.perf_counter() - t0
    envs.close()
    return num_envs * steps / elapsed


def _site_steps(steps: int) -> float:
    from bessai.plant.battery import luna2000
    from bessai.plant.load import LoadConfig
    from bessai.plant.pv import PvConfig
    from bessai.plant.site import SiteModel, SiteModelConfig

    site = SiteModel(
        SiteModelConfig(battery=luna2000(3), pv=PvConfig(10_000.0), load=LoadConfig(900.0)), seed=1
    )
    now = datetime(2024, 1, 1, tzinfo=UTC)
    dt = timedelta(seconds=5)
    t0 = time.perf_counter()
    for i in range(steps):
        site.step(5000.0 if (i // 720) % 2 == 0 else -5000.0, 5.0, now)
        now += dt
    return steps / (time.perf_counter() - t0)


def run() -> dict[str, object]:
    from bessai.plant.degradation import capacity_fade, count_cycles

    prices = _crucero_prices()
    rng = np.random.default_rng(0)
    n = 365 * 96
    # Worst case for rainflow: independent SOC every step, two reversals in three points.
    noise = rng.uniform(0.0, 100.0, size=n)
    daily = 50 + 40 * np.sin(2 * np.pi * np.arange(n) / 96)
    return {
        "env_steps_per_s_single": round(_env_single(prices, 20_000)),
        "env_steps_per_s_vector_sync_8": round(_env_vector(prices, 8, 3_000, "sync")),
        "env_steps_per_s_vector_native_8": round(_env_vector(prices, 8, 3_000, None)),
        "env_steps_per_s_vector_native_64": round(_env_vector(prices, 64, 1_000, None)),
        "env_steps_per_s_vector_native_256": round(_env_vector(prices, 256, 300, None)),
        "site_steps_per_s_with_pv_load": round(_site_steps(20_000)),
        "rainflow_year_15min_white_noise_s": round(_best_of(5, lambda: count_cycles(noise)), 4),
        "fade_year_15min_white_noise_s": round(
            _best_of(5, lambda: capacity_fade(noise, 25.0, 900.0)), 4
        ),
        "fade_year_15min_daily_cycling_s": round(
            _best_of(5, lambda: capacity_fade(daily, 25.0, 900.0)), 4
        ),
        "year_points": n,
    }
