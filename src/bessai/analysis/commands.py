"""`bessai backtest` and `bessai forecast eval`: the back-test and the forecast evaluation as a
user runs them. `eval` joins the `forecast` group that :mod:`bessai.market.commands` creates."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bessai.analysis.backtest import STRATEGIES, backtest
from bessai.analysis.forecast_eval import eval_command
from bessai.analysis.intraday import Replan
from bessai.analysis.learned import LEARNED, REFITS, LearnedSpec, learned_forecasters
from bessai.analysis.result import BacktestResult
from bessai.analysis.settle import SETTLEMENTS, Settle
from bessai.errors import ConfigError
from bessai.market.baselines import Forecaster
from bessai.market.commands import forecast_app
from bessai.market.days import describe
from bessai.market.options import (
    ColumnOpt,
    FromOpt,
    JsonOpt,
    MaxGapOpt,
    NodeOpt,
    PricesOpt,
    PriceSource,
    ToOpt,
    TzOpt,
    day_progress,
    stdout_console,
)
from bessai.market.prices import DEFAULT_MAX_GAP_H
from bessai.market.training import TrainSpec, need_training_stack
from bessai.optimize.options import (
    CapacityOpt,
    ConservativeOpt,
    CyclesOpt,
    EtaCOpt,
    EtaDOpt,
    MinConfidenceOpt,
    MinSpreadOpt,
    PowerOpt,
    SocFinalOpt,
    SocInitOpt,
    SocMaxOpt,
    SocMinOpt,
    SocPlan,
    WearOpt,
    risk_from_options,
)
from bessai.optimize.problem import Risk
from bessai.optimize.storage import StorageSpec


@dataclass(frozen=True, slots=True)
class BacktestRun:
    """What is back-tested: the strategy, the storage, its SOC plan, the risk mode (None:
    plain) and who executes the plans."""

    forecaster: str
    storage: StorageSpec
    soc: SocPlan
    risk: Risk | None
    settle: Settle
    replan: ReplanHours | None = None
    learned: LearnedOptions | None = None


@dataclass(frozen=True, slots=True)
class LearnedOptions:
    """``--refit`` and ``--issue-every-h`` of the learned forecasters (``lgbm``,
    ``lgbm-blend``)."""

    refit: str = "once"
    issue_every_h: int = 3

    def forecasters(self) -> dict[str, Forecaster]:
        """Fresh walk-forward models (:mod:`bessai.analysis.learned`)."""
        need_training_stack("backtest --forecaster lgbm")
        spec = LearnedSpec(TrainSpec(issue_every_h=self.issue_every_h, n_jobs=1), self.refit)
        return learned_forecasters(spec)


@dataclass(frozen=True, slots=True)
class ReplanHours:
    """``--replan-every-h``, ``--lag-h`` and ``--scenario-days`` as given (hours and days)."""

    every_h: float
    lag_h: float
    scenario_days: int

    def steps(self, step_h: float) -> Replan:
        """In steps of the loaded prices; a period or lag off the step grid is an error."""
        every, lag = self.every_h / step_h, self.lag_h / step_h
        for name, v in (("--replan-every-h", every), ("--lag-h", lag)):
            if abs(v - round(v)) > 1e-9:
                raise ConfigError(f"{name}: not a whole number of {step_h * 60:g}-minute steps")
        return Replan(round(every), round(lag), self.scenario_days)


@dataclass(frozen=True, slots=True)
class BacktestOutput:
    """How the result is shown: JSON or a table, and an optional PNG."""

    as_json: bool = False
    plot: Path | None = None
    plot_days: int = 14


def register(app: typer.Typer) -> None:
    """Add `bessai backtest` and `bessai forecast eval`."""
    app.command("backtest")(backtest_command)
    forecast_app.command("eval")(eval_command)


_ReplanOpt = Annotated[
    float | None,
    typer.Option(
        "--replan-every-h",
        help="Re-plan during the day every this many hours, as the gateway does "
        "(default: one plan a day).",
    ),
]
_LagOpt = Annotated[
    float, typer.Option("--lag-h", help="With --replan-every-h: hours before a price is known.")
]
_ScenarioDaysOpt = Annotated[
    int,
    typer.Option(
        "--scenario-days",
        help="With --replan-every-h: plan on the shapes of this many past days as "
        "scenarios, with recourse after the next re-plan (0: on the point forecast).",
    ),
]


_RefitOpt = Annotated[
    str,
    typer.Option(
        "--refit",
        help=f"With --forecaster {' or '.join(LEARNED)}: fit on the complete days published "
        "before the first plan (once) or again each month (monthly, expanding window).",
    ),
]
_IssueEveryOpt = Annotated[
    int,
    typer.Option(
        "--issue-every-h",
        help=f"With --forecaster {' or '.join(LEARNED)}: train on issue times every this many "
        "hours of the day (a divisor of 24; re-planned during the day, use a few hours).",
    ),
]


def backtest_command(
    prices: PricesOpt,
    forecaster: Annotated[
        str,
        typer.Option(
            "--forecaster",
            help=f"One of: {', '.join(STRATEGIES)}, week-mean-ar, recent-mean, "
            f"recent-mean-ar, {', '.join(LEARNED)} (LightGBM, needs the \\[train] extra).",
        ),
    ],
    column: ColumnOpt = None,
    node: NodeOpt = None,
    first: FromOpt = None,
    last: ToOpt = None,
    power_kw: PowerOpt = 1000.0,
    capacity_kwh: CapacityOpt = 4000.0,
    eta_charge: EtaCOpt = 0.95,
    eta_discharge: EtaDOpt = 0.95,
    soc_min: SocMinOpt = 0.0,
    soc_max: SocMaxOpt = 100.0,
    soc_initial: SocInitOpt = 50.0,
    soc_final: SocFinalOpt = None,
    degradation: WearOpt = 0.0,
    cycles_per_day: CyclesOpt = None,
    as_json: JsonOpt = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG of prices, schedule and SOC.")
    ] = None,
    plot_days: Annotated[int, typer.Option("--plot-days", help="Days shown in detail.")] = 14,
    min_spread: MinSpreadOpt = None,
    min_confidence: MinConfidenceOpt = None,
    conservative: ConservativeOpt = False,
    settlement: Annotated[
        str,
        typer.Option(
            "--settle",
            help="Who executes the plan: 'plant' (battery model with taper and self-discharge) "
            "or 'ideal' (the optimizer's own model).",
        ),
    ] = "plant",
    tz: TzOpt = None,
    max_gap_h: MaxGapOpt = DEFAULT_MAX_GAP_H,
    replan_every_h: _ReplanOpt = None,
    lag_h: _LagOpt = 1.0,
    scenario_days: _ScenarioDaysOpt = 0,
    refit: _RefitOpt = "once",
    issue_every_h: _IssueEveryOpt = 3,
) -> None:
    """Day-ahead rolling back-test on real prices, against perfect foresight.

    Each day: forecast, plan from the carried SOC, run the plant model, settle at real prices.
    With --replan-every-h the day is re-planned as the gateway does, from the prices known
    --lag-h hours before each re-plan. The LightGBM forecasters are fitted walk-forward on
    the prices before the day (--refit)."""
    storage = StorageSpec(
        max_charge_kw=power_kw,
        capacity_kwh=capacity_kwh,
        eta_charge=eta_charge,
        eta_discharge=eta_discharge,
        soc_min_pct=soc_min,
        soc_max_pct=soc_max,
        degradation_per_mwh=degradation,
        cycles_per_day=cycles_per_day,
    )
    if settlement not in SETTLEMENTS:
        raise ConfigError(f"--settle: {settlement!r}; choose one of {', '.join(SETTLEMENTS)}")
    run = BacktestRun(
        forecaster,
        storage,
        SocPlan(soc_initial, soc_final),
        risk_from_options(min_spread, min_confidence, conservative),
        SETTLEMENTS[settlement],
        None if replan_every_h is None else ReplanHours(replan_every_h, lag_h, scenario_days),
        _learned_options(forecaster, refit, issue_every_h),
    )
    source = PriceSource.from_options(prices, column, node, first, last, tz=tz, max_gap_h=max_gap_h)
    run_backtest(source, run, BacktestOutput(as_json, plot, plot_days))


def _learned_options(forecaster: str, refit: str, issue_every_h: int) -> LearnedOptions | None:
    """The learned forecaster's options, checked (None for the other forecasters)."""
    if refit not in REFITS:
        raise ConfigError(f"--refit: {refit!r}; choose one of {', '.join(REFITS)}")
    if issue_every_h < 1 or 24 % issue_every_h:
        raise ConfigError(f"--issue-every-h: {issue_every_h} does not divide 24")
    return LearnedOptions(refit, issue_every_h) if forecaster in LEARNED else None


def run_backtest(source: PriceSource, run: BacktestRun, output: BacktestOutput) -> None:
    """Back-test ``run`` on the prices of ``source`` with a progress bar, then show it."""
    err = Console(stderr=True)
    series = source.load(err)
    with day_progress(err, "back-test {task.description}") as progress:
        task = progress.add_task(run.forecaster, total=None)

        def on_day(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = backtest(
            series,
            run.forecaster,
            run.storage,
            soc_initial_pct=run.soc.initial_pct,
            soc_final_pct=run.soc.final_pct,
            first_day=source.first,
            last_day=source.last,
            on_day=on_day,
            risk=run.risk,
            settle=run.settle,
            replan=None if run.replan is None else run.replan.steps(series.step_h),
            forecasters=None if run.learned is None else run.learned.forecasters(),
        )
    if result.excluded:
        err.print(
            f"[yellow]left out {sum(x.days for x in result.excluded)} days: "
            f"{escape(describe(list(result.excluded)))}[/]",
            highlight=False,
            soft_wrap=True,
        )
    if output.plot is not None:
        from bessai.analysis.plot import figure_backtest

        figure_backtest(result, days=output.plot_days).savefig(output.plot, dpi=110)
        err.print(f"[dim]plot written to {output.plot}[/]")
    if output.as_json:
        summary = result.summary()
        if run.replan is not None:
            summary["replan"] = run.replan.steps(series.step_h).to_json()
        typer.echo(json.dumps(summary, indent=1))
        return
    print_result(result)


def print_result(result: BacktestResult) -> None:
    """The back-test's figures as a two-column table."""
    cur = result.unit.split("/")[0]
    table = Table(title=f"back-test {result.forecaster} on {result.node}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [
        ("period", f"{result.first_day} .. {result.last_day} ({len(result.days)} days)"),
        ("revenue", f"{result.revenue:,.2f} {cur}"),
        ("degradation cost", f"{result.degradation_cost:,.2f} {cur}"),
        ("net revenue", f"{result.net_revenue:,.2f} {cur}"),
        ("daily perfect foresight (net)", f"{result.perfect_daily_net:,.2f} {cur}"),
        ("whole-period optimum (net)", f"{result.whole_period_net:,.2f} {cur}"),
        ("capture vs daily perfect", f"{result.capture_daily:.1%}"),
        ("capture vs whole period", f"{result.capture_period:.1%}"),
        ("equivalent full cycles", f"{result.equivalent_full_cycles:,.1f}"),
    ]
    for what, value in rows:
        table.add_row(what, value)
    stdout_console().print(table)
