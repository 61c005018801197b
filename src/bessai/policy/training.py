"""`bessai policy train` as a function: real prices and their day-ahead forecast windows, the
vector environment, PPO, then the exported policy with its card and learning curve."""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bessai.errors import ConfigError
from bessai.market.prices import PriceSeries
from bessai.plant.battery import BatteryParams, ci_container_1mw_4mwh
from bessai.plant.env_vector import BessVectorEnv
from bessai.policy.card import LAYOUTS
from bessai.policy.demonstrations import Demonstrations
from bessai.policy.export import ExportInfo, export_policy
from bessai.policy.imitation import clone_actor
from bessai.policy.network import ActorCritic
from bessai.policy.ppo import Curve, PpoSettings, train_ppo
from bessai.policy.windows import scaled_copies, training_series


@dataclass(frozen=True, slots=True)
class TrainSpec:
    """What is trained: the observation, episode and battery shape, and PPO's settings."""

    forecaster: str = "week-mean"
    #: None: the day-ahead forecast (layout 1); else the forecast re-made at every step from
    #: the prices published this many steps late (layout 2)
    lag_steps: int | None = None
    #: the training prices repeated at each of these factors (domain randomisation)
    price_scales: tuple[float, ...] = (1.0,)
    forecast_steps: int = 24
    episode_days: int = 7
    duration_h: float = 4.0
    efficiency: float = 0.95
    price_scale_usd_mwh: float = 100.0
    replacement_cost_usd_per_kwh: float = 0.0
    #: epochs of behaviour cloning on the demonstrations before PPO (with demonstrations only)
    imitate_epochs: int = 30
    ppo: PpoSettings = dataclasses.field(default_factory=PpoSettings)


def training_battery(duration_h: float, efficiency: float) -> BatteryParams:
    """The battery trained on: the 1 MW container with `duration_h` hours of energy, the
    back-test's efficiencies and no auxiliaries (sites meter those apart from arbitrage)."""
    return dataclasses.replace(
        ci_container_1mw_4mwh(),
        name=f"training 1 MW / {duration_h:g} h",
        nameplate_energy_kwh=1000.0 * duration_h,
        charge_efficiency=efficiency,
        discharge_efficiency=efficiency,
        aux_power_w=0.0,
    )


def _algorithm(imitated: bool, ppo: bool) -> str:
    ppo_name = "PPO (bessai.policy.ppo, clipped surrogate, GAE)"
    if not imitated:
        return ppo_name
    if not ppo:
        return "behaviour cloning of the LP's demonstrations (no PPO)"
    return f"{ppo_name} warm-started by behaviour cloning of the LP's demonstrations"


def train_policy(
    series: PriceSeries,
    spec: TrainSpec,
    out: Path,
    on_iteration: Callable[[int, float], None] | None = None,
    demonstrations: Demonstrations | None = None,
) -> Curve:
    """Train on `series` and export to `out` (policy.onnx, card.json, network.pt and
    learning_curve.png); with `demonstrations`, the actor first imitates them
    (:mod:`bessai.policy.imitation`), then PPO continues from there."""
    data = training_series(series, spec.forecaster, spec.forecast_steps, spec.lag_steps)
    layout = 1 if spec.lag_steps is None else 2
    step_h = series.step.total_seconds() / 3600.0
    prices, windows = data.prices_usd_mwh, data.windows_usd_mwh
    if spec.price_scales != (1.0,):
        prices, windows = scaled_copies(data, spec.price_scales, max(1, round(24.0 / step_h)))
    battery = training_battery(spec.duration_h, spec.efficiency)
    try:
        venv = BessVectorEnv(
            spec.ppo.num_envs,
            prices,
            step_h,
            battery=battery,
            episode_days=spec.episode_days,
            forecast_steps=spec.forecast_steps,
            start_hour_of_day=data.start_hour_utc,
            replacement_cost_usd_per_kwh=spec.replacement_cost_usd_per_kwh,
            price_scale_usd_mwh=spec.price_scale_usd_mwh,
            observed_prices_usd_mwh=windows,
        )
    except ValueError as exc:  # too short a period for one episode, and the like
        raise ConfigError(f"training prices {data.first} .. {data.last}: {exc}") from None
    reward_scale = battery.max_charge_w / 1e6 * spec.price_scale_usd_mwh
    init, cloned = None, None
    if demonstrations is not None:
        init = ActorCritic(spec.forecast_steps, spec.ppo.hidden, spec.ppo.use_clock)
        cloned = clone_actor(
            init,
            demonstrations,
            spec.price_scale_usd_mwh,
            spec.price_scales,
            spec.imitate_epochs,
            spec.ppo.seed,
        )
    net, curve = train_ppo(venv, spec.ppo, reward_scale, on_iteration, init)
    training = {
        "algorithm": _algorithm(demonstrations is not None, bool(curve.steps)),
        "prices": f"{series.node} {data.first} .. {data.last} ({series.unit})",
        "forecaster": spec.forecaster,
        "observation_prices": LAYOUTS[layout],
        "price_scales": list(spec.price_scales),
        "episode_days": spec.episode_days,
        "battery": battery.name,
        "efficiency": spec.efficiency,
        "replacement_cost_usd_per_kwh": spec.replacement_cost_usd_per_kwh,
        "seed": spec.ppo.seed,
        "num_envs": spec.ppo.num_envs,
        "steps": curve.steps[-1] if curve.steps else 0,
        "wall_s": round(curve.wall_s, 1),
        "machine": f"{platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}",
        "settings": dataclasses.asdict(spec.ppo),
    }
    if demonstrations is not None and cloned is not None:
        training["imitation"] = {
            "teacher": demonstrations.meta.get("teacher"),
            "periods": demonstrations.meta.get("periods"),
            "pairs": cloned.pairs,
            "epochs": cloned.epochs,
            "mse": round(cloned.mse, 4),
            "mse_if_idle": round(cloned.mse_idle, 4),
        }
    score = {"train_usd_per_day_last": round(curve.usd_per_day[-1], 2)} if curve.steps else {}
    info = ExportInfo(
        forecast_steps=spec.forecast_steps,
        step_hours=series.step.total_seconds() / 3600.0,
        price_scale_usd_mwh=spec.price_scale_usd_mwh,
        duration_h=spec.duration_h,
        layout=layout,
        forecaster=None if layout == 1 else spec.forecaster,
        lag_steps=spec.lag_steps,
        training=training,
        score=score,
    )
    export_policy(net, info, out, curve)
    return curve
