"""Warm start by imitation: the actor first learns to act as the LP did on the same observations
(behaviour cloning on `bessai policy teach` demonstrations), then PPO improves on it in the
environment. PPO from scratch spends millions of steps finding what an LP already knows about
the forecast; starting from the LP's mapping, it only has to learn where that mapping is wrong
for a policy that has no terminal SOC target and sees one day ahead. PyTorch: the `[rl]` extra."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bessai.policy.demonstrations import Demonstrations
from bessai.policy.network import ActorCritic


@dataclass(frozen=True, slots=True)
class Cloned:
    """How well the actor learned to act as the teacher: the mean squared difference between
    its clipped action and the teacher's over the demonstrations (all price scales)."""

    pairs: int
    epochs: int
    mse: float
    mse_idle: float  # the same for an actor that always idles, for scale


def clone_actor(
    net: ActorCritic,
    demos: Demonstrations,
    price_scale_usd_mwh: float,
    price_scales: tuple[float, ...],
    epochs: int,
    seed: int = 0,
) -> Cloned:
    """Fit `net`'s actor to the demonstrations, once per price factor (the LP's dispatch does
    not change when every price is multiplied by the same positive factor, so each copy keeps
    the teacher's actions)."""
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    obs = torch.as_tensor(
        np.concatenate([demos.observations(price_scale_usd_mwh, k) for k in price_scales])
    )
    target = torch.as_tensor(np.tile(demos.action, len(price_scales)), dtype=torch.float32).reshape(
        -1, 1
    )
    opt = torch.optim.Adam(net.actor.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    for _ in range(epochs):
        for idx in torch.randperm(len(obs)).split(512):
            loss = (net.actor(net.features(obs[idx])) - target[idx]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        schedule.step()
    with torch.no_grad():
        acted = torch.clamp(net.actor(net.features(obs)), -1.0, 1.0)
        mse = float((acted - target).pow(2).mean())
    return Cloned(len(obs), epochs, mse, float(target.pow(2).mean()))
