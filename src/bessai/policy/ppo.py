"""A compact PPO (clipped surrogate, GAE) on the native vector environment, in PyTorch.

Each iteration runs every sub-environment through one whole episode (they all start and end
together, so the vector is reset by hand between rollouts and no autoreset step needs masking),
bootstraps the value of the truncated state, and updates for a few epochs of minibatches.
Rewards are scaled by the battery's full-power revenue at `price_scale` so the value targets
stay near one."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch

from bessai.plant.env_vector import BessVectorEnv
from bessai.policy.network import ActorCritic

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class PpoSettings:
    """PPO's knobs; the defaults are the ones the shipped policy was trained with."""

    total_steps: int = 1_000_000
    num_envs: int = 32
    seed: int = 0
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    epochs: int = 6
    minibatch: int = 1024
    entropy_coef: float = 0.0
    value_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: int = 64
    #: read the hour of day (the observation's sin/cos) or only the forecast's shape
    use_clock: bool = True
    #: stop after this much wall time even if fewer steps ran (the machine may be shared)
    max_wall_s: float | None = None
    #: divide each episode's rewards by its real prices' spread (standard deviation, at least
    #: `SPREAD_FLOOR_USD_MWH`) instead of the fixed price scale: a calm week weighs as much as
    #: a wild one, so the policy learns to trade the shape, not the level
    reward_per_spread: bool = False
    #: the log standard deviation of the actions explored at the start (a policy warm-started
    #: from demonstrations explores less, or the noise undoes what it learned)
    log_std_init: float = -0.5
    #: iterations at the start in which only the critic learns (a warm-started actor waits for
    #: a critic that knows its returns; an untrained critic's advantages would push it anywhere)
    critic_warmup_iterations: int = 0


#: below this spread (USD/MWh) an episode's rewards are not scaled up further
SPREAD_FLOOR_USD_MWH = 10.0


@dataclass(slots=True)
class Curve:
    """Per iteration: env steps so far and the mean episode return (USD per day)."""

    steps: list[int] = field(default_factory=list)
    usd_per_day: list[float] = field(default_factory=list)
    wall_s: float = 0.0


def _gae(
    rewards: torch.Tensor, values: torch.Tensor, last_value: torch.Tensor, s: PpoSettings
) -> torch.Tensor:
    """Advantages over a rollout of T steps x N envs, bootstrapping the truncated end."""
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(last_value)
    next_value = last_value
    for t in range(rewards.shape[0] - 1, -1, -1):
        delta = rewards[t] + s.gamma * next_value - values[t]
        running = delta + s.gamma * s.gae_lambda * running
        adv[t] = running
        next_value = values[t]
    return adv


@dataclass(slots=True)
class _Rollout:
    obs: torch.Tensor
    actions: torch.Tensor
    logp: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    last_value: torch.Tensor
    #: what each environment's rewards were divided by
    scales: torch.Tensor


def _episode_scales(
    venv: BessVectorEnv, starts: npt.NDArray[np.int64], reward_scale: float, per_spread: bool
) -> torch.Tensor:
    """What each environment's rewards are divided by this episode (see `reward_per_spread`)."""
    n = venv.num_envs
    if not per_spread:
        return torch.full((n,), reward_scale)
    prices, steps = venv.task.prices_usd_mwh, venv.task.episode_steps
    spread = np.array([np.std(prices[t : t + steps]) for t in starts])
    # reward_scale is the full-power revenue at the price scale: keep its power, swap the price
    per_usd_mwh = reward_scale / venv.task.price_scale_usd_mwh
    return torch.as_tensor(
        per_usd_mwh * np.maximum(spread, SPREAD_FLOOR_USD_MWH), dtype=torch.float32
    )


def _rollout(
    venv: BessVectorEnv, net: ActorCritic, seed: int, reward_scale: float, per_spread: bool
) -> _Rollout:
    steps, n = venv.task.episode_steps, venv.num_envs
    obs_np, info = venv.reset(seed=seed)
    scales = _episode_scales(venv, info["start_step"], reward_scale, per_spread)
    n_obs = obs_np.shape[1]
    obs = torch.zeros(steps, n, n_obs)
    actions = torch.zeros(steps, n, 1)
    logp = torch.zeros(steps, n)
    values = torch.zeros(steps, n)
    rewards = torch.zeros(steps, n)
    with torch.no_grad():
        for t in range(steps):
            o = torch.as_tensor(obs_np)
            dist, value = net.dist(o)
            a = dist.sample()
            obs[t], actions[t], values[t] = o, a, value
            logp[t] = dist.log_prob(a).sum(-1)
            obs_np, r, _, _, _ = venv.step(a.numpy().clip(-1.0, 1.0))
            rewards[t] = torch.as_tensor(r, dtype=torch.float32) / scales
        _, last_value = net(torch.as_tensor(obs_np))
    return _Rollout(obs, actions, logp, values, rewards, last_value, scales)


def _update(
    net: ActorCritic, opt: torch.optim.Optimizer, ro: _Rollout, s: PpoSettings, actor: bool
) -> None:
    adv = _gae(ro.rewards, ro.values, ro.last_value, s)
    returns = (adv + ro.values).reshape(-1)
    obs = ro.obs.reshape(-1, ro.obs.shape[-1])
    actions = ro.actions.reshape(-1, 1)
    old_logp = ro.logp.reshape(-1)
    adv = adv.reshape(-1)
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    total = obs.shape[0]
    for _ in range(s.epochs):
        for idx in torch.randperm(total).split(s.minibatch):
            dist, value = net.dist(obs[idx])
            logp = dist.log_prob(actions[idx]).sum(-1)
            ratio = (logp - old_logp[idx]).exp()
            a = adv[idx]
            policy_loss = -torch.min(ratio * a, ratio.clamp(1 - s.clip, 1 + s.clip) * a).mean()
            value_loss = (value - returns[idx]).pow(2).mean()
            entropy = dist.entropy().sum(-1).mean()
            loss = s.value_coef * value_loss
            if actor:
                loss = loss + policy_loss - s.entropy_coef * entropy
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), s.max_grad_norm)
            opt.step()


def train_ppo(
    venv: BessVectorEnv,
    settings: PpoSettings,
    reward_scale: float,
    on_iteration: Callable[[int, float], None] | None = None,
    init: ActorCritic | None = None,
) -> tuple[ActorCritic, Curve]:
    """Train a policy on `venv` for about `settings.total_steps` env steps (whole rollouts),
    from `init` (a warm start) or from scratch. `on_iteration(steps_done, usd_per_day)`
    reports progress."""
    torch.manual_seed(settings.seed)
    np.random.seed(settings.seed)
    torch.set_num_threads(1)
    net = (
        init
        if init is not None
        else ActorCritic(venv.task.forecast_steps, settings.hidden, settings.use_clock)
    )
    with torch.no_grad():
        net.log_std.fill_(settings.log_std_init)
    opt = torch.optim.Adam(net.parameters(), lr=settings.learning_rate)
    per_iteration = venv.task.episode_steps * venv.num_envs
    iterations = settings.total_steps // per_iteration
    if init is None:
        iterations = max(1, iterations)
    days = venv.task.episode_steps / venv.task.steps_per_day
    curve = Curve()
    started = time.perf_counter()
    for it in range(iterations):
        elapsed_s = time.perf_counter() - started
        if settings.max_wall_s is not None and it > 0 and elapsed_s > settings.max_wall_s:
            break
        done = it / iterations
        if settings.max_wall_s is not None:
            done = max(done, elapsed_s / settings.max_wall_s)
        frac = max(0.05, 1.0 - done)
        for group in opt.param_groups:
            group["lr"] = settings.learning_rate * frac
        ro = _rollout(
            venv, net, settings.seed * 100_003 + it, reward_scale, settings.reward_per_spread
        )
        _update(net, opt, ro, settings, actor=it >= settings.critic_warmup_iterations)
        usd_per_day = float((ro.rewards * ro.scales).sum(0).mean()) / days
        curve.steps.append((it + 1) * per_iteration)
        curve.usd_per_day.append(usd_per_day)
        if on_iteration is not None:
            on_iteration(curve.steps[-1], usd_per_day)
    curve.wall_s = time.perf_counter() - started
    return net, curve
