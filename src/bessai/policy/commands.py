"""`bessai policy train` and `bessai policy check` (PyTorch, the `[rl]` extra); `eval` joins
the group from :mod:`bessai.analysis.policy_commands`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bessai.errors import ConfigError
from bessai.market.baselines import FORECASTERS
from bessai.market.options import (
    ColumnOpt,
    FromOpt,
    MaxGapOpt,
    NodeOpt,
    PricesOpt,
    PriceSource,
    ToOpt,
    stdout_console,
)
from bessai.market.prices import DEFAULT_MAX_GAP_H, PriceSeries
from bessai.policy.demonstrations import joined

policy_app = typer.Typer(
    name="policy",
    help="Learned dispatch: teach, train, combine and check a PPO policy, judge it.",
    no_args_is_help=True,
)

PolicyDirOpt = Annotated[Path, typer.Option("--model", help="Exported policy directory.")]


def register(app: typer.Typer) -> None:
    """Add the `policy` group to the `bessai` command."""
    app.add_typer(policy_app)


def need_torch(command: str) -> None:
    """One line instead of an ImportError when the `[rl]` extra is missing."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"{command} needs PyTorch: pip install 'bessai[rl]' (the CPU build: pip install "
            "torch --index-url https://download.pytorch.org/whl/cpu)"
        ) from None


@policy_app.command("train")
def train_command(
    prices: PricesOpt,
    out: Annotated[Path, typer.Option("--out", help="Policy directory to write.")],
    node: NodeOpt = None,
    column: ColumnOpt = None,
    first: FromOpt = None,
    last: ToOpt = None,
    steps: Annotated[int, typer.Option("--steps", help="Environment steps to train.")] = 1_500_000,
    max_minutes: Annotated[
        float | None, typer.Option("--max-minutes", help="Stop after this much wall time.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    num_envs: Annotated[int, typer.Option("--num-envs", help="Batteries stepped together.")] = 32,
    forecaster: Annotated[
        str,
        typer.Option(
            "--forecaster",
            help=f"The forecast the policy sees: {', '.join(FORECASTERS)}.",
        ),
    ] = "week-mean",
    duration_h: Annotated[
        float, typer.Option("--duration-h", help="Battery hours at full power.")
    ] = 4.0,
    clock: Annotated[
        bool,
        typer.Option(
            "--clock/--no-clock",
            help="Let the network read the hour of day, or only the forecast's shape.",
        ),
    ] = True,
    lag_h: Annotated[
        float | None,
        typer.Option(
            "--lag-h",
            help="Observe the forecast re-made every step from the prices published this many "
            "hours late (observation layout 2); without it, the day-ahead forecast (layout 1).",
        ),
    ] = None,
    price_scales: Annotated[
        str,
        typer.Option(
            "--price-scales",
            help="Train on the prices repeated at these factors, comma-separated (domain "
            "randomisation for nodes dearer or cheaper than the training one).",
        ),
    ] = "1",
    reward_per_spread: Annotated[
        bool,
        typer.Option(
            "--reward-per-spread/--reward-absolute",
            help="Weigh each episode's rewards by its prices' spread, or in USD.",
        ),
    ] = False,
    hidden: Annotated[
        int, typer.Option("--hidden", help="Units per hidden layer of actor and critic.")
    ] = 64,
    replacement_cost: Annotated[
        float,
        typer.Option(
            "--replacement-cost-usd-per-kwh",
            help="New cells' cost: the environment charges the capacity each step wears away "
            "(0: trained as if wear were free; a site counting wear is warned).",
        ),
    ] = 0.0,
    imitate: Annotated[
        list[Path] | None,
        typer.Option(
            "--imitate",
            help="Demonstrations of `bessai policy teach` (repeatable): the actor first learns "
            "to act as the LP did, then PPO continues (needs --lag-h; --steps 0: imitation only).",
        ),
    ] = None,
    imitate_epochs: Annotated[
        int, typer.Option("--imitate-epochs", help="Epochs of imitation before PPO.")
    ] = 30,
    log_std: Annotated[
        float,
        typer.Option("--log-std", help="Log standard deviation of the exploration at the start."),
    ] = -0.5,
    learning_rate: Annotated[
        float, typer.Option("--learning-rate", help="PPO's Adam step size (decays linearly).")
    ] = 3e-4,
    critic_warmup: Annotated[
        int,
        typer.Option(
            "--critic-warmup", help="PPO iterations at the start in which only the critic learns."
        ),
    ] = 0,
    max_gap_h: MaxGapOpt = DEFAULT_MAX_GAP_H,
) -> None:
    """Train a PPO policy on bessai/BESS-v0 over real prices and export it.

    The observation holds the day-ahead forecast (or with --lag-h the forecast re-made every
    step); with --imitate the actor first learns to act as the LP did. Writes policy.onnx,
    card.json, network.pt and learning_curve.png."""
    need_torch("policy train")
    from bessai.policy.ppo import PpoSettings
    from bessai.policy.training import TrainSpec, train_policy

    if steps < (0 if imitate else 1) or num_envs < 1 or hidden < 1:
        raise ConfigError("--steps (0 only with --imitate), --num-envs and --hidden must be >= 1")
    check_replacement_cost(replacement_cost)
    if imitate_epochs < 0 or critic_warmup < 0 or not learning_rate > 0:
        raise ConfigError("--imitate-epochs, --critic-warmup >= 0 and --learning-rate > 0")
    if imitate and lag_h is None:
        raise ConfigError(
            "--imitate: the demonstrations hold the forecast re-made every step; give --lag-h"
        )
    err = Console(stderr=True)
    source = PriceSource.from_options(prices, column, node, first, last, max_gap_h=max_gap_h)
    series = source.load_window(err)
    ppo = PpoSettings(
        total_steps=steps,
        num_envs=num_envs,
        seed=seed,
        max_wall_s=None if max_minutes is None else max_minutes * 60.0,
        use_clock=clock,
        reward_per_spread=reward_per_spread,
        hidden=hidden,
        log_std_init=log_std,
        learning_rate=learning_rate,
        critic_warmup_iterations=critic_warmup,
    )
    spec = TrainSpec(
        forecaster=forecaster,
        duration_h=duration_h,
        ppo=ppo,
        lag_steps=lag_steps(lag_h, series),
        price_scales=scale_factors(price_scales),
        imitate_epochs=imitate_epochs,
        replacement_cost_usd_per_kwh=replacement_cost,
    )
    demos = None
    if imitate:
        expect = {
            "forecaster": forecaster,
            "lag_steps": spec.lag_steps,
            "forecast_steps": spec.forecast_steps,
            "step_hours": series.step_h,
            "duration_h": duration_h,
            "unit": series.unit,
            "replacement_cost_usd_per_kwh": replacement_cost,
        }
        demos = joined(imitate, expect)
    started = time.perf_counter()
    with Progress(
        TextColumn("PPO {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=steps)

        def on_iteration(done: int, usd_per_day: float) -> None:
            progress.update(task, completed=done, description=f"{usd_per_day:8.1f} USD/day")

        curve = train_policy(series, spec, out, on_iteration, demos)
    last = f"last episode reward {curve.usd_per_day[-1]:.1f} USD/day" if curve.steps else "no PPO"
    stdout_console().print(
        f"trained {curve.steps[-1] if curve.steps else 0:,} steps in "
        f"{time.perf_counter() - started:.0f} s ({last}); wrote {out}"
    )


def scale_factors(text: str) -> tuple[float, ...]:
    """`--price-scales` as positive factors."""
    try:
        factors = tuple(float(x) for x in text.split(","))
    except ValueError:
        factors = ()
    if not factors or not all(0 < k < 1e3 for k in factors):
        raise ConfigError(f"--price-scales {text!r}: positive numbers separated by commas")
    return factors


def check_replacement_cost(usd_per_kwh: float) -> None:
    """`--replacement-cost-usd-per-kwh` of `train` and `teach`: 0 (no wear) up to 1e5."""
    if not 0 <= usd_per_kwh < 1e5:
        raise ConfigError(f"--replacement-cost-usd-per-kwh {usd_per_kwh:g}: 0 .. 1e5")


def lag_steps(lag_h: float | None, series: PriceSeries) -> int | None:
    """`--lag-h` in steps of the prices (None stays None); off the step grid is an error."""
    if lag_h is None:
        return None
    steps = lag_h / series.step_h
    if lag_h < 0 or abs(steps - round(steps)) > 1e-9:
        raise ConfigError(f"--lag-h {lag_h:g}: a whole number of {series.step_h:g} h steps, >= 0")
    return round(steps)


@policy_app.command("ensemble")
def ensemble_command(
    models: Annotated[
        list[Path],
        typer.Option("--model", help="A trained policy directory (give two or more)."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Policy directory to write.")],
) -> None:
    """Write one policy acting the mean of several policies' actions.

    For seeds of the same settings; the card holds each member's training record."""
    need_torch("policy ensemble")
    from bessai.policy.ensemble import ensemble_policy

    card = ensemble_policy(models, out)
    stdout_console().print(
        f"wrote {out}: the {card.training['algorithm']} (observation layout {card.layout})"
    )


@policy_app.command("check")
def check_command(model: PolicyDirOpt) -> None:
    """Verify that policy.onnx computes what the training-time network (network.pt) does."""
    need_torch("policy check")
    from bessai.policy.export import CHECK_TOLERANCE, check_policy

    worst = check_policy(model)
    stdout_console().print(
        f"{model}: ONNX equals the training-time network (largest difference {worst:.2g}, "
        f"tolerance {CHECK_TOLERANCE:g})"
    )
