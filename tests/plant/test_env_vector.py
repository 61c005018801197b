"""The native vectorized environment must be the scalar environment, N times."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
import pytest

import bessai  # noqa: F401 - registers bessai/BESS-v0
from bessai.plant.battery import ci_container_1mw_4mwh, luna2000
from bessai.plant.env import BessEnv
from bessai.plant.env_vector import BessVectorEnv

STARTS = [0, 24, 48, 240, 2400]
SOCS = [0.0, 10.0, 50.0, 90.0, 100.0]


@pytest.mark.parametrize(
    "task",
    [
        {},
        # Hot: cells above 50 °C, where the temperature derating acts.
        {"ambient_mean_c": 48.0, "ambient_daily_amplitude_c": 4.0},
        # Freezing: no charging below 0 °C.
        {"ambient_mean_c": -5.0, "ambient_daily_amplitude_c": 2.0},
        # The container: HVAC regimes and the cooler's consumption.
        {"battery": ci_container_1mw_4mwh(), "ambient_mean_c": 35.0},
        {"battery": luna2000(1), "episode_days": 2, "forecast_steps": 3},
    ],
    ids=["default", "hot", "freezing", "container", "small"],
)
def test_same_observations_and_rewards_as_scalar_envs(
    crucero_2023: npt.NDArray[np.float64], task: dict[str, Any]
) -> None:
    prices = crucero_2023[: 120 * 24]
    n = len(STARTS)
    vec = BessVectorEnv(n, prices, 1.0, **task)
    scalars = [BessEnv(prices, 1.0, **task) for _ in range(n)]
    obs_v, _ = vec.reset(seed=0, options={"start_step": STARTS, "initial_soc_pct": SOCS})
    obs_s = np.stack(
        [
            env.reset(seed=0, options={"start_step": s, "initial_soc_pct": c})[0]
            for env, s, c in zip(scalars, STARTS, SOCS, strict=True)
        ]
    )
    np.testing.assert_array_equal(obs_v, obs_s)
    rng = np.random.default_rng(1)
    for _ in range(vec.task.episode_steps):
        # Beyond +-1 on purpose: the action clip must match as well.
        actions = rng.uniform(-1.3, 1.3, size=(n, 1)).astype(np.float32)
        obs_v, rew_v, term_v, trunc_v, info_v = vec.step(actions)
        results = [env.step(actions[j]) for j, env in enumerate(scalars)]
        np.testing.assert_allclose(obs_v, np.stack([r[0] for r in results]), rtol=1e-6, atol=0)
        np.testing.assert_allclose(rew_v, [r[1] for r in results], rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(trunc_v, [r[3] for r in results])
        np.testing.assert_allclose(
            info_v["soc_pct"], [r[4]["soc_pct"] for r in results], rtol=1e-9, atol=1e-12
        )
        assert not term_v.any()
    assert trunc_v.all()


def test_next_step_autoreset(crucero_2023: npt.NDArray[np.float64]) -> None:
    vec = BessVectorEnv(3, crucero_2023[:2400], 1.0, initial_soc_pct=50.0)
    vec.reset(seed=4)
    for _ in range(24):
        _, _, _, truncated, _ = vec.step(np.full((3, 1), -1.0, dtype=np.float32))
    assert truncated.all()
    obs, rewards, _, truncated, info = vec.step(np.full((3, 1), -1.0, dtype=np.float32))
    # The step after the end resets: action ignored, reward 0, fresh SOC.
    np.testing.assert_array_equal(rewards, 0.0)
    assert not truncated.any()
    assert not info["_revenue_usd"].any()
    np.testing.assert_allclose(obs[:, 0], 0.5)
    _, rewards, _, _, info = vec.step(np.full((3, 1), -1.0, dtype=np.float32))
    assert (rewards != 0).all()
    assert info["_revenue_usd"].all()


def test_make_vec_gives_the_native_env_and_sync_still_works(
    crucero_2023: npt.NDArray[np.float64],
) -> None:
    prices = crucero_2023[:2400]
    native = gym.make_vec("bessai/BESS-v0", num_envs=16, prices_usd_mwh=prices)
    assert isinstance(native, BessVectorEnv)
    obs, _ = native.reset(seed=0)
    assert native.observation_space.contains(obs)
    native.action_space.seed(0)
    for _ in range(50):
        obs, rewards, _, _, _ = native.step(native.action_space.sample())
        assert native.observation_space.contains(obs)
        assert np.isfinite(rewards).all()
    sync = gym.make_vec(
        "bessai/BESS-v0", num_envs=2, vectorization_mode="sync", prices_usd_mwh=prices
    )
    assert sync.reset(seed=0)[0].shape == (2, 29)
    with pytest.raises(ValueError, match="prices"):
        BessVectorEnv(2)
