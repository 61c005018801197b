"""Training a tiny policy end to end (only where PyTorch is installed: the `[rl]` extra)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bessai.cli import app
from bessai.errors import ConfigError, PolicyError
from bessai.policy.card import CARD_FILE, WEIGHTS_FILE, load_card
from bessai.policy.runner import OnnxPolicy
from tests.conftest import DATA

torch = pytest.importorskip("torch")


def test_train_export_check_eval(tmp_path: Path) -> None:
    out = tmp_path / "policy"
    runner = CliRunner()
    prices = str(DATA / "cen_cmg_crucero220_2019-2023.csv")
    trained = runner.invoke(
        app,
        ["policy", "train", "--prices", prices, "--from", "2022-01-01", "--to", "2022-02-28",
         "--out", str(out), "--steps", "700", "--num-envs", "2", "--seed", "3"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert "trained" in trained.output
    card = load_card(out)
    assert card.training["seed"] == 3
    assert card.training["steps"] == 2 * 2 * 168
    assert "2022-01-09" in card.training["prices"]  # a week of history before the first day
    assert (out / "learning_curve.png").stat().st_size > 1000
    OnnxPolicy(out)

    checked = runner.invoke(app, ["policy", "check", "--model", str(out)])
    assert checked.exit_code == 0, checked.output
    assert "ONNX equals the training-time network" in checked.output

    evaluated = runner.invoke(
        app,
        ["policy", "eval", "--model", str(out), "--prices", prices, "--from", "2023-03-01",
         "--to", "2023-03-03", "--json"],
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    rows = json.loads(evaluated.stdout)
    assert [r["forecaster"] for r in rows] == ["ppo", "week-mean", "rule"]
    assert all(r["days"] == 3 for r in rows)


def test_check_finds_a_graph_that_is_not_the_network(tmp_path: Path) -> None:
    from bessai.policy.export import ExportInfo, check_policy, export_policy
    from bessai.policy.network import ActorCritic

    out = tmp_path / "p"
    export_policy(ActorCritic(24, hidden=8), ExportInfo(24, 1.0, 100.0, 4.0), out, None)
    assert check_policy(out) < 1e-4
    clockless = tmp_path / "clockless"
    net = ActorCritic(24, hidden=8, use_clock=False)
    export_policy(net, ExportInfo(24, 1.0, 100.0, 4.0), clockless, None)
    assert check_policy(clockless) < 1e-4
    other = ActorCritic(24, hidden=8)
    saved = torch.load(out / WEIGHTS_FILE, weights_only=True)
    saved["state_dict"] = other.state_dict()
    torch.save(saved, out / WEIGHTS_FILE)
    with pytest.raises(PolicyError, match="differs from"):
        check_policy(out)
    assert json.loads((out / CARD_FILE).read_text())["format"] == "bessai-policy/1"


def test_a_policy_on_the_re_made_forecast_is_judged_beside_the_lp_re_planned(
    tmp_path: Path,
) -> None:
    out = tmp_path / "hourly"
    runner = CliRunner()
    prices = str(DATA / "cen_cmg_crucero220_2019-2023.csv")
    trained = runner.invoke(
        app,
        ["policy", "train", "--prices", prices, "--from", "2022-01-01", "--to", "2022-01-31",
         "--out", str(out), "--steps", "300", "--num-envs", "2", "--forecaster",
         "recent-mean-ar", "--lag-h", "1", "--no-clock", "--price-scales", "0.5,2",
         "--reward-per-spread", "--hidden", "16"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    card = load_card(out)
    assert (card.layout, card.forecaster, card.lag_steps) == (2, "recent-mean-ar", 1)
    assert card.training["price_scales"] == [0.5, 2.0]
    assert card.training["settings"]["reward_per_spread"] is True
    assert card.training["settings"]["hidden"] == 16
    evaluated = runner.invoke(
        app,
        ["policy", "eval", "--model", str(out), "--prices", prices, "--from", "2023-03-01",
         "--to", "2023-03-02", "--json"],
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    rows = json.loads(evaluated.stdout)
    assert [r["forecaster"] for r in rows] == ["ppo", "recent-mean-ar", "rule"]
    assert rows[1]["replan"] == {"every_steps": 1, "lag_steps": 1, "scenario_days": 0}
    bad = runner.invoke(
        app,
        ["policy", "train", "--prices", prices, "--out", str(tmp_path / "x"), "--lag-h", "0.5"],
    )  # fmt: skip
    assert isinstance(bad.exception, ConfigError)
    assert str(bad.exception) == "--lag-h 0.5: a whole number of 1 h steps, >= 0"
    bad = runner.invoke(
        app,
        ["policy", "train", "--prices", prices, "--out", str(tmp_path / "x"),
         "--price-scales", "1,-2"],
    )  # fmt: skip
    assert "--price-scales '1,-2': positive numbers" in str(bad.exception)


def test_per_spread_rewards_weigh_a_calm_week_as_a_wild_one() -> None:
    import numpy as np

    from bessai.plant.env_vector import BessVectorEnv
    from bessai.policy.ppo import SPREAD_FLOOR_USD_MWH, _episode_scales

    week = 24 * 7
    calm = 50.0 + 20.0 * np.sin(np.arange(week) * 2 * np.pi / 24)
    prices = np.concatenate([calm, 5.0 * calm, np.full(week, 50.0)])
    venv = BessVectorEnv(3, prices, 1.0, episode_days=7)
    starts = np.array([0, week, 2 * week])
    per_spread = _episode_scales(venv, starts, 1.0, per_spread=True).numpy()
    # reward_scale 1.0 at 100 USD/MWh: each episode divided by its spread / 100
    assert per_spread[1] == pytest.approx(5.0 * per_spread[0], rel=1e-5)
    assert per_spread[0] == pytest.approx(np.std(calm) / 100.0, rel=1e-5)
    assert per_spread[2] == pytest.approx(SPREAD_FLOOR_USD_MWH / 100.0)
    assert _episode_scales(venv, starts, 1.0, per_spread=False).tolist() == [1.0, 1.0, 1.0]


def test_an_ensemble_acts_the_mean_of_its_members(tmp_path: Path) -> None:
    from bessai.policy.export import ExportInfo, check_policy, export_policy
    from bessai.policy.network import ActorCritic

    info = ExportInfo(24, 1.0, 100.0, 4.0, layout=2, forecaster="recent-mean-ar", lag_steps=1)
    members = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        export_policy(ActorCritic(24, hidden=8), info, tmp_path / f"s{seed}", None)
        members.append(tmp_path / f"s{seed}")
    out = tmp_path / "mean"
    runner = CliRunner()
    args = ["policy", "ensemble", "--out", str(out)]
    for m in members:
        args += ["--model", str(m)]
    made = runner.invoke(app, args)
    assert made.exit_code == 0, made.output
    assert "mean action of 3 policies" in made.output
    card = load_card(out)
    assert (card.layout, card.forecaster, card.lag_steps) == (2, "recent-mean-ar", 1)
    assert [m["directory"] for m in card.training["members"]] == ["s0", "s1", "s2"]
    assert check_policy(out) < 1e-4

    from bessai.policy.export import sample_observations

    obs = sample_observations(card.n_obs, 50, 7)
    alone = [[OnnxPolicy(m).act(o)[0] for o in obs] for m in members]
    together = [OnnxPolicy(out).act(o)[0] for o in obs]
    assert np.abs(np.asarray(together) - np.mean(alone, axis=0)).max() < 1e-5
    assert np.std(alone, axis=0).max() > 0.01  # the members differ, so the mean means something


def test_an_ensemble_refuses_members_that_read_another_observation(tmp_path: Path) -> None:
    from bessai.policy.ensemble import ensemble_policy
    from bessai.policy.export import ExportInfo, export_policy
    from bessai.policy.network import ActorCritic

    export_policy(ActorCritic(24, hidden=8), ExportInfo(24, 1.0, 100.0, 4.0), tmp_path / "a", None)
    other = ExportInfo(24, 1.0, 100.0, 4.0, layout=2, forecaster="recent-mean-ar", lag_steps=1)
    export_policy(ActorCritic(24, hidden=8), other, tmp_path / "b", None)
    with pytest.raises(PolicyError, match=r"b: layout is 2, .*a has 1"):
        ensemble_policy([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    with pytest.raises(PolicyError, match="at least two"):
        ensemble_policy([tmp_path / "a"], tmp_path / "out")
    with pytest.raises(PolicyError, match="one of the members"):
        ensemble_policy([tmp_path / "a", tmp_path / "a"], tmp_path / "a")


def test_a_policy_warm_started_on_the_lps_demonstrations(tmp_path: Path) -> None:
    runner = CliRunner()
    prices = str(DATA / "cen_cmg_crucero220_2019-2023.csv")
    demos = tmp_path / "demos.npz"
    taught = runner.invoke(
        app,
        ["policy", "teach", "--prices", prices, "--from", "2022-02-01", "--to", "2022-02-14",
         "--out", str(demos)],
    )  # fmt: skip
    assert taught.exit_code == 0, taught.output
    base = ["policy", "train", "--prices", prices, "--from", "2022-01-20", "--to",
            "2022-02-28", "--forecaster", "recent-mean-ar", "--no-clock", "--num-envs", "2",
            "--seed", "1"]  # fmt: skip
    only = runner.invoke(
        app,
        [*base, "--lag-h", "1", "--out", str(tmp_path / "only"), "--imitate", str(demos),
         "--steps", "0", "--imitate-epochs", "60"],
    )  # fmt: skip
    assert only.exit_code == 0, only.output
    only_card = load_card(tmp_path / "only")
    assert only_card.training["algorithm"].endswith("(no PPO)")
    imitation = only_card.training["imitation"]
    assert imitation["pairs"] == 14 * 24
    # It learned the LP's mapping, far closer than an actor that idles.
    assert imitation["mse"] < 0.5 * imitation["mse_if_idle"]
    tuned = runner.invoke(
        app,
        [*base, "--lag-h", "1", "--out", str(tmp_path / "tuned"), "--imitate", str(demos),
         "--steps", "1400", "--critic-warmup", "2", "--log-std", "-1.5"],
    )  # fmt: skip
    assert tuned.exit_code == 0, tuned.output
    card = load_card(tmp_path / "tuned")
    assert "warm-started by behaviour cloning" in card.training["algorithm"]
    assert card.training["steps"] == 4 * 2 * 168
    assert card.training["settings"]["log_std_init"] == -1.5
    checked = runner.invoke(app, ["policy", "check", "--model", str(tmp_path / "tuned")])
    assert checked.exit_code == 0, checked.output

    wrong_lag = runner.invoke(
        app, [*base, "--lag-h", "6", "--out", str(tmp_path / "x"), "--imitate", str(demos)]
    )
    assert isinstance(wrong_lag.exception, ConfigError)
    assert "lag_steps is 1, the policy being trained has 6" in str(wrong_lag.exception)
    no_lag = runner.invoke(app, [*base, "--out", str(tmp_path / "y"), "--imitate", str(demos)])
    assert isinstance(no_lag.exception, ConfigError)
    assert "give --lag-h" in str(no_lag.exception)
