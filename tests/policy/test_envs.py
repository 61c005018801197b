"""`gymnasium.make("bessai/BESS-v0")` with no arguments, and forecast windows as observation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import bessai  # noqa: F401 - registers bessai/BESS-v0
from bessai.plant.env import BessEnv
from bessai.plant.env_vector import BessVectorEnv
from bessai.policy.envs import shipped_prices


def test_make_with_no_arguments_runs_on_the_shipped_prices() -> None:
    env = gym.make("bessai/BESS-v0")
    obs, info = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    shipped = shipped_prices()
    assert shipped.prices_usd_mwh.size > 365 * 24
    assert np.all(np.isfinite(shipped.prices_usd_mwh))
    unwrapped = env.unwrapped
    assert isinstance(unwrapped, BessEnv)
    start = info["start_step"]
    # Episodes start at UTC midnight and the clock features say so.
    assert unwrapped.task.hours_since_epoch(start) % 24 == pytest.approx(0.0)
    assert obs[-1] == pytest.approx(1.0)
    assert obs[2] == pytest.approx(shipped.prices_usd_mwh[start] / 100.0, rel=1e-6)
    _, reward, _, _, _ = env.step(np.array([0.5], dtype=np.float32))
    assert np.isfinite(reward)


def test_make_vec_with_no_arguments() -> None:
    venv = gym.make_vec("bessai/BESS-v0", num_envs=3)
    assert isinstance(venv, BessVectorEnv)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (3, 29)
    obs, rewards, _, _, _ = venv.step(np.zeros((3, 1), dtype=np.float32))
    assert rewards.shape == (3,)


def test_given_prices_still_win_over_the_default() -> None:
    prices = np.linspace(42.0, 60.0, 24 * 3)
    env = gym.make("bessai/BESS-v0", prices_usd_mwh=prices, initial_soc_pct=50.0)
    obs, _ = env.reset(seed=0, options={"start_step": 0})
    assert obs[2] == pytest.approx(0.42)


def test_observed_windows_replace_the_future_in_both_envs() -> None:
    n, f = 24 * 4, 6
    prices = 50.0 + 10.0 * np.sin(np.arange(n) / 3.0)
    windows = np.tile(np.arange(f + 1, dtype=np.float64), (n, 1)) + np.arange(n)[:, None] * 100
    kwargs = {"forecast_steps": f, "observed_prices_usd_mwh": windows, "initial_soc_pct": 50.0}
    env = BessEnv(prices, 1.0, **kwargs)
    venv = BessVectorEnv(2, prices, 1.0, **kwargs)
    obs, _ = env.reset(seed=0, options={"start_step": 5})
    vobs, _ = venv.reset(seed=0, options={"start_step": 5})
    np.testing.assert_allclose(obs[2 : 3 + f], windows[5] / 100.0, rtol=1e-6)
    np.testing.assert_allclose(vobs[0], obs)
    obs, reward, *_ = env.step(np.array([0.3], dtype=np.float32))
    vobs, vrewards, *_ = venv.step(np.full((2, 1), 0.3, dtype=np.float32))
    np.testing.assert_allclose(obs[2 : 3 + f], windows[6] / 100.0, rtol=1e-6)
    np.testing.assert_allclose(vobs[0], obs, rtol=1e-6)
    # The reward is booked at the real price, not at the observed one.
    assert vrewards[0] == pytest.approx(reward)


def test_windows_of_the_wrong_shape_are_named() -> None:
    prices = np.full(48, 40.0)
    with pytest.raises(ValueError, match="observed_prices_usd_mwh must be 48 rows of 25"):
        BessEnv(prices, 1.0, observed_prices_usd_mwh=np.zeros((48, 24)))


def test_the_default_env_passes_gymnasiums_checker() -> None:
    check_env(gym.make("bessai/BESS-v0").unwrapped, skip_render_check=True)
