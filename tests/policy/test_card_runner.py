"""The exported policy: card checks, onnxruntime inference, the observation the gateway builds."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from bessai.errors import PolicyError
from bessai.plant.env import BessEnv
from bessai.policy.card import CARD_FILE, MODEL_FILE, PolicyCard, load_card
from bessai.policy.observation import SiteView, observation, price_window
from bessai.policy.runner import OnnxPolicy
from tests.policy.conftest import POLICY, write_graph_policy


def test_the_committed_policy_loads_and_answers_in_range(trained_card: PolicyCard) -> None:
    policy = OnnxPolicy(POLICY)
    assert trained_card.n_obs == 29
    assert trained_card.training["steps"] > 0
    assert trained_card.training["wall_s"] > 0
    view = SiteView(50.0, 25.0, tuple(np.linspace(20, 120, 25)), datetime.now(UTC))
    action, elapsed_ms = policy.act(observation(view, trained_card))
    assert -1.0 <= action <= 1.0
    assert elapsed_ms >= 0


def test_cheap_now_dear_later_charges_and_the_reverse_discharges(
    trained_card: PolicyCard,
) -> None:
    policy = OnnxPolicy(POLICY)
    noon = datetime(2023, 6, 1, 15, tzinfo=UTC)
    rising = tuple([10.0] * 4 + [150.0] * 6 + [60.0] * 15)
    falling = tuple([150.0] * 4 + [10.0] * 6 + [60.0] * 15)
    charge, _ = policy.act(observation(SiteView(20.0, 25.0, rising, noon), trained_card))
    discharge, _ = policy.act(observation(SiteView(80.0, 25.0, falling, noon), trained_card))
    assert charge > 0.2
    assert discharge < -0.2


def test_the_observation_is_the_environments(trained_card: PolicyCard) -> None:
    """The gateway's observation equals the environment's for the same SOC, window and hour."""
    n = 24 * 3
    prices = 40.0 + 30.0 * np.sin(np.arange(n) / 4.0)
    windows = np.stack([np.roll(prices, -k)[:25] for k in range(n)])
    env = BessEnv(prices, 1.0, observed_prices_usd_mwh=windows, initial_soc_pct=37.0)
    obs, _ = env.reset(seed=0, options={"start_step": 7})
    temp_c = 25.0 + 20.0 * float(obs[1])
    now = env.task.now(7)
    built = observation(SiteView(37.0, temp_c, tuple(windows[7]), now), trained_card)
    np.testing.assert_allclose(built, obs, atol=1e-6)


def test_a_short_forecast_repeats_the_day_before() -> None:
    day = tuple(float(h) for h in range(24))
    assert price_window(day, 5, 25, 24)[-7:] == [23.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert price_window((7.0, 8.0), 1, 4, 24) == [8.0, 8.0, 8.0, 8.0]


def test_a_nan_answer_raises(tmp_path: Path, trained_card: PolicyCard) -> None:
    policy = OnnxPolicy(write_graph_policy(tmp_path / "nan", trained_card, math.nan))
    with pytest.raises(PolicyError, match="not a number"):
        policy.act(np.zeros(trained_card.n_obs, dtype=np.float32))


def test_card_problems_are_one_line(tmp_path: Path, policy_copy: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        load_card(tmp_path / "nowhere")
    (policy_copy / MODEL_FILE).write_bytes(b"not onnx")
    with pytest.raises(PolicyError, match="SHA-256 differs"):
        load_card(policy_copy)
    card = json.loads((policy_copy / CARD_FILE).read_text())
    card["colour"] = "blue"
    (policy_copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(PolicyError, match="unknown card keys colour"):
        load_card(policy_copy)
    (policy_copy / CARD_FILE).write_text("{")
    with pytest.raises(PolicyError, match="unreadable card"):
        load_card(policy_copy)
    (policy_copy / CARD_FILE).unlink()
    with pytest.raises(PolicyError, match=r"card\.json is missing"):
        load_card(policy_copy)


def test_card_mismatch_names_what_differs(trained_card: PolicyCard) -> None:
    assert trained_card.mismatch(1.0, "USD/MWh", 3.0) is None
    assert "0.25 h" in str(trained_card.mismatch(0.25, "USD/MWh", 4.0))
    assert "CLP/kWh" in str(trained_card.mismatch(1.0, "CLP/kWh", 4.0))
    assert "1 h" in str(trained_card.mismatch(1.0, "USD/MWh", 1.0))


def test_a_layout_this_runtime_cannot_build_is_refused(policy_copy: Path) -> None:
    card = json.loads((policy_copy / CARD_FILE).read_text())
    card["layout"] = 3
    (policy_copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(PolicyError, match="observation layout 3; this runtime builds layouts 1, 2"):
        load_card(policy_copy)
    card["layout"], card["forecaster"] = 2, None
    (policy_copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(PolicyError, match="layout 2 needs forecaster and lag_steps"):
        load_card(policy_copy)


def test_a_re_made_forecast_policy_needs_the_sites_forecaster(trained_card: PolicyCard) -> None:
    card = replace(trained_card, layout=2, forecaster="recent-mean-ar", lag_steps=1)
    assert card.mismatch(1.0, "USD/MWh", 4.0, "recent-mean-ar") is None
    assert "optimizer forecasts with week-mean" in str(
        card.mismatch(1.0, "USD/MWh", 4.0, "week-mean")
    )
    # A day-ahead (layout 1) policy reads whatever forecast the planner makes.
    daily = replace(trained_card, layout=1, forecaster=None, lag_steps=None)
    assert daily.mismatch(1.0, "USD/MWh", 4.0, "week-mean") is None
