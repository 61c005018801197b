"""`bessai optimize`: the only place in this package that does I/O."""

from __future__ import annotations

import json
import math

import typer
from rich.console import Console
from rich.table import Table

from bessai.errors import ConfigError
from bessai.market.days import describe, scorable_days
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
    stdout_console,
)
from bessai.market.prices import DEFAULT_MAX_GAP_H, PriceSeries
from bessai.optimize.options import (
    CapacityOpt,
    CyclesOpt,
    EtaCOpt,
    EtaDOpt,
    PowerOpt,
    SocFinalOpt,
    SocInitOpt,
    SocMaxOpt,
    SocMinOpt,
    SocPlan,
    WearOpt,
)
from bessai.optimize.schedule import Schedule
from bessai.optimize.solve import optimize
from bessai.optimize.storage import StorageSpec


def register(app: typer.Typer) -> None:
    """Add `bessai optimize`."""
    app.command("optimize")(optimize_command)


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
    tz: TzOpt = None,
    max_gap_h: MaxGapOpt = DEFAULT_MAX_GAP_H,
) -> None:
    """Optimise the battery over the prices in FILE and print the schedule and revenue."""
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
    source = PriceSource.from_options(prices, column, node, first, last, tz=tz, max_gap_h=max_gap_h)
    run_optimize(source, storage, SocPlan(soc_initial, soc_final), as_json=as_json)


def run_optimize(source: PriceSource, storage: StorageSpec, soc: SocPlan, *, as_json: bool) -> None:
    """Plan ``storage`` over the prices of ``source`` and print the plan (a table or JSON)."""
    series = source.load_window(Console(stderr=True))
    if series.has_gaps:
        # A plan across steps without prices would need invented ones.
        _, excluded = scorable_days(series, history_h=0)
        raise ConfigError(
            f"{source.path}: the period has no prices on {describe(excluded)}; choose "
            "--from/--to around them (or raise --max-gap-h to interpolate)"
        )
    schedule = optimize(
        series.values,
        series.step_h,
        storage,
        soc_initial_pct=soc.initial_pct,
        soc_final_pct=soc.final_pct,
    )
    if as_json:
        typer.echo(json.dumps(schedule_json(schedule, series), indent=1))
    else:
        print_schedule(schedule, series)


def schedule_json(schedule: Schedule, series: PriceSeries) -> dict[str, object]:
    """The plan as the `--json` document (docs/optimizer.md, "CLI")."""
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


def print_schedule(schedule: Schedule, series: PriceSeries) -> None:
    """The plan as a table, then its status, revenue, violations and notes."""
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
