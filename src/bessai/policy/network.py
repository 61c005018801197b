"""The actor-critic network of the PPO policy (PyTorch, the `[rl]` extra).

The price window is normalised inside the network (minus its mean, over its spread), so one
policy reads a cheap node and a dear one alike and the exported ONNX graph carries the scaling
with it; the window's level and spread stay inputs of their own."""

from __future__ import annotations

import torch
from torch import nn

#: the spread below which a window counts as flat (in price_scale units: 2 USD/MWh)
_FLAT = 0.02


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, hidden),
        nn.Tanh(),
        nn.Linear(hidden, hidden),
        nn.Tanh(),
        nn.Linear(hidden, n_out),
    )


class Features(nn.Module):
    """The observation of `bessai/BESS-v0` turned into what the MLPs read."""

    def __init__(self, forecast_steps: int, use_clock: bool = True) -> None:
        super().__init__()
        self.width = forecast_steps + 1
        #: without the clock the policy must read the day's shape from the forecast alone
        self.use_clock = use_clock
        self.n_out = 2 + self.width + 2 + (2 if use_clock else 0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        soc_temp = obs[:, 0:2]
        window = obs[:, 2 : 2 + self.width]
        clock = obs[:, 2 + self.width :]
        level = window.mean(dim=1, keepdim=True)
        spread = window.std(dim=1, keepdim=True, unbiased=False) + _FLAT
        shape = (window - level) / spread
        parts = [soc_temp, shape, level, torch.log(spread)]
        if self.use_clock:
            parts.append(clock)
        return torch.cat(parts, dim=1)


class ActorCritic(nn.Module):
    """Gaussian policy (mean from the actor, one learned log-std) and a value head."""

    def __init__(self, forecast_steps: int, hidden: int = 64, use_clock: bool = True) -> None:
        super().__init__()
        self.features = Features(forecast_steps, use_clock)
        self.actor = _mlp(self.features.n_out, hidden, 1)
        self.critic = _mlp(self.features.n_out, hidden, 1)
        self.log_std = nn.Parameter(torch.full((1,), -0.5))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.features(obs)
        return self.actor(x), self.critic(x).squeeze(-1)

    def dist(self, obs: torch.Tensor) -> tuple[torch.distributions.Normal, torch.Tensor]:
        mean, value = self(obs)
        return torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean)), value


class Deterministic(nn.Module):
    """What is exported: the actor's mean action, clipped to [-1, 1]."""

    def __init__(self, net: ActorCritic) -> None:
        super().__init__()
        self.features = net.features
        self.actor = net.actor

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.actor(self.features(obs)), -1.0, 1.0)


class MeanAction(nn.Module):
    """An ensemble: the mean of its members' clipped actions. Seeds of the same settings differ
    by as much as settings do; averaging their actions buys that noise down (`bessai policy
    ensemble`)."""

    def __init__(self, members: list[ActorCritic]) -> None:
        super().__init__()
        self.members = nn.ModuleList(Deterministic(m) for m in members)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(obs) for m in self.members]).mean(dim=0)
