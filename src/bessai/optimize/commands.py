"""`bessai optimize` and `bessai backtest`: the only place in this package that does I/O."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bessai.market.prices import PriceSeries
from bessai.optimize.backtest import (
    SETTLEMENTS,
    STRATEGIES,
    BacktestResult,
    backtest,
)
from bessai.optimize.model import Battery, Schedule, optimize
from bessai.price_cli import (
    ColumnOpt,
    ConservativeOpt,
    FromOpt,
    JsonOpt,
    MinConfidenceOpt,
    MinSpreadOpt,
    NodeOpt,
    PricesOpt,
    ToOpt,
    day_progress,
    load_price_file,
    market_day_window,
    parse_day,
    risk_from_options,
    stdout_console,
)

PowerOpt = Annotated[float, typer.Option("--power-kw", help="Charge/discharge power limit.")]
CapacityOpt = Annotated[float, typer.Option("--capacity-kwh", help="Energy capacity.")]
EtaCOpt = Annotated[float, typer.Option("--eta-charge", help="Charge efficiency (0..1].")]
EtaDOpt = Annotated[float, typer.Option("--eta-discharge", help="Discharge efficiency (0..1].")]
SocMinOpt = Annotated[float, typer.Option("--soc-min", help="Minimum SOC, %.")]
SocMaxOpt = Annotated[float, typer.Option("--soc-max", help="Maximum SOC, %.")]
SocInitOpt = Annotated[float, typer.Option("--soc-initial", help="SOC at the start, %.")]
SocFinalOpt = Annotated[
    float | None,
    typer.Option("--soc-final", help="Minimum SOC at the end of each plan, % [initial SOC]."),
]
WearOpt = Annotated[
    float,
    typer.Option(
        "--degradation-usd-mwh",
        help="Wear cost per MWh of cell throughput, in the price file's currency.",
    ),
]
CyclesOpt = Annotated[
    float | None, typer.Option("--cycles-per-day", help="Cap on full cycles per day.")
]


def register(app: typer.Typer) -> None:
    app.command("optimize")(optimize_command)
    app.command("backtest")(backtest_command)


def _battery(
    power_kw: float,
    capacity_kwh: float,
    eta_charge: float,
    eta_discharge: float,
    soc_min: float,
    soc_max: float,
    degradation: float,
    cycles: float | None,
) -> Battery:
    return Battery(
        power_kw=power_kw,
        capacity_kwh=capacity_kwh,
        eta_charge=eta_charge,
        eta_discharge=eta_discharge,
        soc_min_pct=soc_min,
        soc_max_pct=soc_max,
        degradation_per_mwh=degradation,
        cycles_per_day=cycles,
    )


def _schedule_json(schedule: Schedule, series: PriceSeries) -> dict[str, object]:
    stamps = series.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "status": schedule.status,
        "revenue": round(schedule.revenue, 6),
        "currency": series.currency,
        "degradation_cost": round(schedule.degradation_cost, 6),
        "messages": list(schedule.messages),
        "violations": [
            {"step": v.step, "kind": v.kind, "amount": round(v.amount, 6), "message": v.message}
            for v in schedule.violations
        ],
        "schedule": [
            {
                "timestamp": stamps[t],
                "charge_kw": round(float(schedule.charge_kw[t]), 3),
                "discharge_kw": round(float(schedule.discharge_kw[t]), 3),
                "soc_pct": round(float(schedule.soc_pct[t]), 3),
                "reason": schedule.reasons[t],
            }
            for t in range(len(schedule))
        ],
    }


def optimize_command(
    prices: PricesOpt,
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
) -> None:
    """Optimise the battery over the prices in FILE and print the schedule and revenue."""
    err = Console(stderr=True)
    battery = _battery(
        power_kw,
        capacity_kwh,
        eta_charge,
        eta_discharge,
        soc_min,
        soc_max,
        degradation,
        cycles_per_day,
    )
    series = market_day_window(
        load_price_file(prices, column, node, err),
        parse_day(first, "--from"),
        parse_day(last, "--to"),
    )
    schedule = optimize(
        series.values,
        series.step_h,
        battery,
        soc_initial_pct=soc_initial,
        soc_final_pct=soc_final,
    )
    if as_json:
        typer.echo(json.dumps(_schedule_json(schedule, series), indent=1))
        return
    out = stdout_console()
    table = Table(title=f"{series.node} ({series.unit})", show_lines=False)
    for name, justify in [
        ("start (UTC)", "left"),
        ("price", "right"),
        ("charge kW", "right"),
        ("discharge kW", "right"),
        ("SOC %", "right"),
        ("value/MWh", "right"),
        ("why", "left"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for t, ts in enumerate(series.index.strftime("%Y-%m-%d %H:%M")):
        value = schedule.energy_value_per_mwh[t]
        table.add_row(
            ts,
            f"{schedule.prices[t]:.2f}",
            f"{schedule.charge_kw[t]:.0f}" if schedule.charge_kw[t] else "",
            f"{schedule.discharge_kw[t]:.0f}" if schedule.discharge_kw[t] else "",
            f"{schedule.soc_pct[t]:.1f}",
            "" if math.isnan(value) else f"{value:.2f}",
            schedule.reasons[t],
        )
    out.print(table)
    cur = series.currency
    out.print(
        f"status [bold]{schedule.status}[/] ({schedule.solver}, {schedule.solve_time_s * 1000:.0f}"
        f" ms); revenue [bold]{schedule.revenue:,.2f} {cur}[/], wear "
        f"{schedule.degradation_cost:,.2f} {cur}, net {schedule.net_revenue:,.2f} {cur}"
    )
    for v in schedule.violations:
        out.print(f"[yellow]violation[/] at step {v.step}: {v.message}")
    for message in schedule.messages:
        out.print(f"[yellow]note[/]: {message}")


def backtest_command(
    prices: PricesOpt,
    forecaster: Annotated[
        str, typer.Option("--forecaster", help=f"One of: {', '.join(STRATEGIES)}.")
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
) -> None:
    """Day-ahead rolling back-test on real prices, against perfect foresight.

    Each day: forecast, plan from the carried SOC, run the plant model, settle at real prices."""
    err = Console(stderr=True)
    battery = _battery(
        power_kw,
        capacity_kwh,
        eta_charge,
        eta_discharge,
        soc_min,
        soc_max,
        degradation,
        cycles_per_day,
    )
    if settlement not in SETTLEMENTS:
        raise typer.BadParameter(
            f"{settlement!r}; choose one of {', '.join(SETTLEMENTS)}", param_hint="--settle"
        )
    series = load_price_file(prices, column, node, err)
    risk = risk_from_options(min_spread, min_confidence, conservative)
    with day_progress(err, "back-test {task.description}") as progress:
        task = progress.add_task(forecaster, total=None)

        def on_day(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = backtest(
            series,
            forecaster,
            battery,
            soc_initial_pct=soc_initial,
            soc_final_pct=soc_final,
            first_day=parse_day(first, "--from"),
            last_day=parse_day(last, "--to"),
            on_day=on_day,
            risk=risk,
            settle=SETTLEMENTS[settlement],
        )
    if plot is not None:
        from bessai.optimize.plot import figure_backtest

        figure_backtest(result, days=plot_days).savefig(plot, dpi=110)
        err.print(f"[dim]plot written to {plot}[/]")
    if as_json:
        typer.echo(json.dumps(result.summary(), indent=1))
        return
    _print_result(result)


def _print_result(result: BacktestResult) -> None:
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
