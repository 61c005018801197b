"""The Gymnasium environment on real CEN prices."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import numpy.typing as npt
import pytest
from gymnasium.utils.env_checker import check_env

import bessai  # noqa: F401 - registers bessai/BESS-v0
from bessai.plant.env import BessEnv


@pytest.fixture
def prices(crucero_2023: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return crucero_2023[: 60 * 24]


def test_check_env_passes(prices: npt.NDArray[np.float64]) -> None:
    check_env(BessEnv(prices, 1.0), skip_render_check=True)
    check_env(BessEnv(np.repeat(prices[:240], 4), 0.25, episode_days=2), skip_render_check=True)


def test_registered_on_import_without_loading_the_model() -> None:
    code = (
        "import sys, bessai, gymnasium\n"
        "assert 'bessai/BESS-v0' in gymnasium.registry\n"
        "assert 'bessai.plant.env' not in sys.modules\n"
        "assert 'bessai.plant.site' not in sys.modules\n"
        "assert 'bessai.plant.env_vector' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_random_policy_runs_an_episode(prices: npt.NDArray[np.float64]) -> None:
    env = gym.make("bessai/BESS-v0", prices_usd_mwh=prices, step_hours=1.0, episode_days=2)
    obs, info = env.reset(seed=3)
    env.action_space.seed(3)
    assert env.observation_space.contains(obs)
    steps = 0
    total = 0.0
    parts = 0.0
    while True:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        assert reward == pytest.approx(info["revenue_usd"] - info["wear_usd"] - info["penalty_usd"])
        total += float(reward)
        parts += info["revenue_usd"] - info["wear_usd"] - info["penalty_usd"]
        steps += 1
        if terminated or truncated:
            break
    assert steps == 48
    assert total == pytest.approx(parts)
    env.close()


def test_reward_is_arbitrage_revenue_minus_wear_and_penalty(
    prices: npt.NDArray[np.float64],
) -> None:
    env = BessEnv(prices, 1.0, initial_soc_pct=50.0, ambient_daily_amplitude_c=0.0)
    env.reset(seed=0, options={"start_step": 0})
    price = prices[0]
    _, reward, _, _, info = env.step(np.array([-0.5], dtype=np.float32))
    # 3.75 kW for one hour sold at the hour's price.
    assert info["battery_power_w"] == pytest.approx(-3750.0)
    assert info["revenue_usd"] == pytest.approx(3.75 * price / 1000.0)
    assert info["wear_usd"] > 0.0
    assert info["penalty_usd"] == 0.0
    # Asking an empty battery for power it does not have is penalised, not paid.
    env = BessEnv(prices, 1.0, initial_soc_pct=0.0)
    env.reset(seed=0, options={"start_step": 0})
    _, reward, _, _, info = env.step(np.array([-1.0], dtype=np.float32))
    assert info["battery_power_w"] == 0.0
    assert info["penalty_usd"] == pytest.approx(7.5 * 0.05)
    assert reward < 0.0


def test_observation_shows_prices_and_time(prices: npt.NDArray[np.float64]) -> None:
    env = BessEnv(prices, 1.0, forecast_steps=6, price_scale_usd_mwh=100.0)
    obs, _ = env.reset(seed=0, options={"start_step": 48})
    np.testing.assert_allclose(obs[2:9], prices[48:55] / 100.0, rtol=1e-6)
    assert obs[-1] == pytest.approx(1.0)  # midnight: cos(0)


def test_episodes_start_on_real_days(prices: npt.NDArray[np.float64]) -> None:
    env = BessEnv(prices, 1.0)
    starts = {env.reset(seed=s)[1]["start_step"] for s in range(30)}
    assert all(s % 24 == 0 for s in starts)
    assert len(starts) > 10
    # A series that starts at 18:00 has its first midnight 6 steps in.
    late = BessEnv(prices, 1.0, start_hour_of_day=18.0)
    starts = {late.reset(seed=s)[1]["start_step"] for s in range(30)}
    assert all(s % 24 == 6 for s in starts)
    obs, _ = late.reset(seed=0)
    assert obs[-1] == pytest.approx(1.0)  # cos of hour 0


def test_vectorized(prices: npt.NDArray[np.float64]) -> None:
    envs = gym.make_vec(
        "bessai/BESS-v0", num_envs=4, vectorization_mode="sync", prices_usd_mwh=prices
    )
    obs, _ = envs.reset(seed=1)
    assert obs.shape == (4, 29)
    ended = np.zeros(4, dtype=bool)
    for _ in range(30):
        obs, rewards, _, truncated, _ = envs.step(envs.action_space.sample())
        ended |= truncated
    assert rewards.shape == (4,)
    assert obs.shape == (4, 29)
    assert ended.all()  # every 24-step episode ended (and was reset)
    envs.close()


def test_rejects_bad_price_series() -> None:
    with pytest.raises(ValueError, match="prices"):
        BessEnv(np.ones(10), 1.0)
    with pytest.raises(ValueError, match="divide a day"):
        BessEnv(np.ones(100), 0.7)
