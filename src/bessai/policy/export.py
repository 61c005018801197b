"""Export a trained network to ONNX with its card, and check that the ONNX graph computes what
the training-time network computes (`bessai policy check`). PyTorch: the `[rl]` extra."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bessai.errors import PolicyError
from bessai.policy.card import (
    CARD_FILE,
    MODEL_FILE,
    WEIGHTS_FILE,
    PolicyCard,
    load_card,
    observation_names,
    sha256_of,
)
from bessai.policy.network import ActorCritic, Deterministic, MeanAction
from bessai.policy.ppo import Curve
from bessai.policy.runner import OnnxPolicy

#: ONNX and PyTorch may differ by float32 rounding, not more
CHECK_TOLERANCE = 1e-4


@dataclass(frozen=True, slots=True)
class ExportInfo:
    """What the card says beside the graph."""

    forecast_steps: int
    step_hours: float
    price_scale_usd_mwh: float
    duration_h: float
    layout: int = 1
    forecaster: str | None = None
    lag_steps: int | None = None
    training: dict[str, Any] = field(default_factory=dict)
    score: dict[str, Any] = field(default_factory=dict)


def _weights(net: ActorCritic) -> dict[str, Any]:
    return {
        "state_dict": net.state_dict(),
        "forecast_steps": net.features.width - 1,
        "hidden": net.actor[0].out_features,
        "use_clock": net.features.use_clock,
    }


def export_policy(
    net: ActorCritic | list[ActorCritic], info: ExportInfo, out: Path, curve: Curve | None
) -> PolicyCard:
    """Write policy.onnx (the deterministic actor, or with a list of networks the mean of
    their actions), network.pt, card.json and, with a curve, learning_curve.png into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    actor: nn.Module
    if isinstance(net, list):
        actor = MeanAction(net).eval()
        saved: dict[str, Any] = {"members": [_weights(m) for m in net]}
    else:
        actor = Deterministic(net).eval()
        saved = _weights(net)
    n_obs = info.forecast_steps + 5
    with warnings.catch_warnings():
        # The TorchScript exporter writes a small static graph without onnxscript.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            actor,
            (torch.zeros(1, n_obs),),
            str(out / MODEL_FILE),
            input_names=["obs"],
            output_names=["action"],
            dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    torch.save(saved, out / WEIGHTS_FILE)
    card = PolicyCard(
        forecast_steps=info.forecast_steps,
        step_hours=info.step_hours,
        price_scale_usd_mwh=info.price_scale_usd_mwh,
        duration_h=info.duration_h,
        model_sha256=sha256_of(out / MODEL_FILE),
        observation=observation_names(info.forecast_steps),
        training=info.training,
        score=info.score,
        layout=info.layout,
        forecaster=info.forecaster,
        lag_steps=info.lag_steps,
    )
    (out / CARD_FILE).write_text(card.to_json() + "\n", encoding="utf-8")
    if curve is not None and curve.steps:
        _plot(curve, out / "learning_curve.png")
    return card


def _plot(curve: Curve, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(np.asarray(curve.steps) / 1e3, curve.usd_per_day)
    ax.set_xlabel("environment steps (thousands)")
    ax.set_ylabel("episode reward, USD per day")
    ax.set_title("PPO on bessai/BESS-v0 (sampled actions)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _network(saved: dict[str, Any]) -> ActorCritic:
    use_clock = bool(saved.get("use_clock", True))
    net = ActorCritic(int(saved["forecast_steps"]), int(saved["hidden"]), use_clock)
    net.load_state_dict(saved["state_dict"])
    return net.eval()


def load_networks(directory: Path) -> list[ActorCritic]:
    """The training-time network(s) saved beside the ONNX graph: one, or an ensemble's
    members."""
    path = directory / WEIGHTS_FILE
    if not path.is_file():
        raise PolicyError(f"{path} is missing: nothing to check the ONNX graph against")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if "members" in saved:
        return [_network(m) for m in saved["members"]]
    return [_network(saved)]


def exported_actor(networks: list[ActorCritic]) -> nn.Module:
    """What policy.onnx computes, in PyTorch: the clipped mean action of one network, or the
    mean of an ensemble's."""
    if len(networks) == 1:
        return Deterministic(networks[0]).eval()
    return MeanAction(networks).eval()


def sample_observations(n_obs: int, count: int, seed: int) -> np.ndarray:
    """Plausible observations: any SOC, temperatures around 25 °C, prices 0..300 USD/MWh with a
    daily shape, any hour."""
    rng = np.random.default_rng(seed)
    obs = np.empty((count, n_obs), dtype=np.float32)
    obs[:, 0] = rng.uniform(0, 1, count)
    obs[:, 1] = rng.normal(0, 0.3, count)
    width = n_obs - 4
    level = rng.uniform(0.0, 2.0, (count, 1))
    swing = rng.uniform(0.0, 1.0, (count, 1))
    phase = rng.uniform(0, 2 * math.pi, (count, 1))
    steps = np.arange(width)[None, :]
    obs[:, 2 : 2 + width] = level + swing * np.sin(2 * math.pi * steps / 24 + phase)
    angle = rng.uniform(0, 2 * math.pi, count)
    obs[:, -2], obs[:, -1] = np.sin(angle), np.cos(angle)
    return obs


def check_policy(directory: Path, count: int = 1000, seed: int = 0) -> float:
    """The largest difference between the ONNX graph and the training-time network over
    `count` sampled observations; `PolicyError` when above `CHECK_TOLERANCE`."""
    card = load_card(directory)
    actor = exported_actor(load_networks(directory))
    onnx_policy = OnnxPolicy(directory)
    obs = sample_observations(card.n_obs, count, seed)
    with torch.no_grad():
        expected = actor(torch.as_tensor(obs)).numpy().ravel()
    got = np.array([onnx_policy.act(o)[0] for o in obs])
    worst = float(np.max(np.abs(got - expected)))
    if not worst <= CHECK_TOLERANCE:
        raise PolicyError(
            f"{directory / MODEL_FILE} differs from {directory / WEIGHTS_FILE} by {worst:.3g} "
            f"(tolerance {CHECK_TOLERANCE:g})"
        )
    return worst
