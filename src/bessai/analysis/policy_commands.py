"""`bessai policy eval`: the learned policy, the optimizer on the same forecast and the rule
engine in the same rolling back-test, side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import TaskID
from rich.table import Table

from bessai.analysis.backtest import backtest
from bessai.analysis.intraday import Replan
from bessai.analysis.result import BacktestResult
from bessai.errors import ConfigError
from bessai.market.options import (
    ColumnOpt,
    FromOpt,
    JsonOpt,
    NodeOpt,
    PricesOpt,
    PriceSource,
    ToOpt,
    day_progress,
    stdout_console,
)
from bessai.optimize.options import CapacityOpt, PowerOpt, WearOpt
from bessai.optimize.storage import StorageSpec
from bessai.plant.degradation import cycle_wear_cost_per_mwh
from bessai.policy.commands import PolicyDirOpt, policy_app


def register() -> None:
    """Add `eval` and `teach` to the `policy` group."""
    policy_app.command("eval")(eval_command)
    policy_app.command("teach")(teach_command)


def teach_command(
    prices: PricesOpt,
    out: Annotated[Path, typer.Option("--out", help="Demonstrations file to write (.npz).")],
    node: NodeOpt = None,
    column: ColumnOpt = None,
    first: FromOpt = None,
    last: ToOpt = None,
    power_kw: PowerOpt = 1000.0,
    capacity_kwh: CapacityOpt = 4000.0,
    forecaster: Annotated[
        str, typer.Option("--forecaster", help="The forecast the LP plans on and the policy reads.")
    ] = "recent-mean-ar",
    lag_h: Annotated[
        float, typer.Option("--lag-h", help="Hours after which a price is published.")
    ] = 1.0,
    replacement_cost: Annotated[
        float,
        typer.Option(
            "--replacement-cost-usd-per-kwh",
            help="New cells' cost: the LP plans with the wear cost the degradation model gives "
            "for it, as a site does (0: no wear cost).",
        ),
    ] = 0.0,
) -> None:
    """Record the LP's dispatch as demonstrations for `policy train --imitate`.

    The LP re-planned every step over the period, as a policy of observation layout 2 would
    have seen it: the SOC, the forecast window and the LP's action at each step."""
    from bessai.analysis.teacher import lp_demonstrations
    from bessai.policy.commands import check_replacement_cost, lag_steps

    check_replacement_cost(replacement_cost)
    wear = cycle_wear_cost_per_mwh(replacement_cost) if replacement_cost > 0 else 0.0
    storage = StorageSpec(
        max_charge_kw=power_kw, capacity_kwh=capacity_kwh, degradation_per_mwh=wear
    )
    try:  # before minutes of LP runs, not after
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create its directory ({exc.strerror})") from None
    err = Console(stderr=True)
    source = PriceSource.from_options(prices, column, node, first, last)
    series = source.load(err)
    lag = lag_steps(lag_h, series) or 0
    with day_progress(err, "LP {task.description}") as progress:
        task = progress.add_task(forecaster, total=None)

        def on_day(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        demos = lp_demonstrations(
            series, forecaster, lag, storage, period=(source.first, source.last), on_day=on_day
        )
    demos.meta["replacement_cost_usd_per_kwh"] = replacement_cost
    demos.save(out)
    stdout_console().print(
        f"wrote {out}: {len(demos.action):,} steps of {demos.meta['teacher']} over "
        f"{demos.meta['period']} (capture {demos.meta['capture_vs_daily_perfect']:.1%})"
    )


def eval_command(
    model: PolicyDirOpt,
    prices: PricesOpt,
    node: NodeOpt = None,
    column: ColumnOpt = None,
    first: FromOpt = None,
    last: ToOpt = None,
    power_kw: PowerOpt = 1000.0,
    capacity_kwh: CapacityOpt = 4000.0,
    degradation: WearOpt = 0.0,
    forecaster: Annotated[
        str, typer.Option("--forecaster", help="The forecast both the policy and the LP read.")
    ] = "week-mean",
    baselines: Annotated[
        bool,
        typer.Option(
            "--baselines/--no-baselines",
            help="Also run the LP on the same forecast and the rule engine (the LP re-planned "
            "every step takes minutes a year), or the policy alone, to compare policies.",
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Back-test the policy beside the LP on the same forecast and the rule engine.

    Capture of the daily perfect foresight, and equivalent full cycles. A policy that reads a
    forecast re-made every step (observation layout 2) is compared with the LP re-planned every
    step on that forecaster with the same publication lag."""
    # onnxruntime loads only for this command, not for every `bessai` start.
    from bessai.analysis.policy_backtest import PolicyBacktest, policy_backtest
    from bessai.policy.runner import OnnxPolicy

    storage = StorageSpec(
        max_charge_kw=power_kw, capacity_kwh=capacity_kwh, degradation_per_mwh=degradation
    )
    policy = OnnxPolicy(model)
    replan = None
    if policy.card.layout == 2 and policy.card.forecaster is not None:
        # The LP gets what the policy reads: the same forecaster, re-made every step.
        forecaster = policy.card.forecaster
        replan = Replan(every_steps=1, lag_steps=policy.card.lag_steps or 0)
    err = Console(stderr=True)
    source = PriceSource.from_options(prices, column, node, first, last)
    series = source.load(err)
    results: list[BacktestResult] = []
    with day_progress(err, "back-test {task.description}") as progress:
        for name in ("ppo", forecaster, "rule") if baselines else ("ppo",):
            task = progress.add_task(name, total=None)

            def on_day(done: int, total: int, task: TaskID = task) -> None:
                progress.update(task, completed=done, total=total)

            if name == "ppo":
                spec = PolicyBacktest(
                    storage, forecaster, first_day=source.first, last_day=source.last
                )
                results.append(policy_backtest(series, policy, spec, on_day))
            else:
                results.append(
                    backtest(series, name, storage, first_day=source.first,
                             last_day=source.last, on_day=on_day,
                             replan=None if name == "rule" else replan)
                )  # fmt: skip
    if as_json:
        summaries = [r.summary() for r in results]
        if replan is not None and baselines:
            summaries[1]["replan"] = replan.to_json()
        typer.echo(json.dumps(summaries, indent=1))
        return
    _table(results, replan)


def _table(results: list[BacktestResult], replan: Replan | None) -> None:
    first = results[0]
    cur = first.unit.split("/")[0]
    table = Table(title=f"{first.node} {first.first_day} .. {first.last_day}")
    for column in ("strategy", f"net revenue ({cur})", "capture vs daily perfect", "EFC"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for r in results:
        name = "LP + " + r.forecaster if r.forecaster not in ("ppo", "rule") else r.forecaster
        if replan is not None and name.startswith("LP"):
            name += f" (re-planned every step, lag {replan.lag_steps})"
        table.add_row(
            name,
            f"{r.net_revenue:,.0f}",
            f"{r.capture_daily:.1%}",
            f"{r.equivalent_full_cycles:.0f}",
        )
    stdout_console().print(table)
