"""`bessai carbon backtest`: revenue-only against carbon-aware plans on real prices. It joins
the `carbon` group that :mod:`bessai.carbon.commands` creates (the back-test lives here,
above the carbon package)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bessai.analysis.backtest import STRATEGIES
from bessai.analysis.carbon import CarbonOutcome, carbon_backtests
from bessai.analysis.settle import SETTLEMENTS
from bessai.carbon.embodied import DEFAULT_KG_PER_KWH
from bessai.errors import ConfigError
from bessai.market.options import (
    ColumnOpt,
    FromOpt,
    JsonOpt,
    NodeOpt,
    PricesOpt,
    PriceSource,
    ToOpt,
    stdout_console,
)
from bessai.optimize.options import (
    CapacityOpt,
    CyclesOpt,
    EtaCOpt,
    EtaDOpt,
    PowerOpt,
    SocInitOpt,
    SocMaxOpt,
    SocMinOpt,
    WearOpt,
)
from bessai.optimize.storage import StorageSpec

MARGINAL, AVERAGE = "location-marginal", "location-average"


def register(carbon_app: typer.Typer) -> None:
    """Add `bessai carbon backtest` to the carbon command group."""
    carbon_app.command("backtest")(carbon_backtest_command)


def carbon_backtest_command(
    prices: PricesOpt,
    forecaster: Annotated[
        str, typer.Option("--forecaster", help=f"One of: {', '.join(STRATEGIES)}.")
    ] = "perfect",
    co2_price: Annotated[
        list[float] | None,
        typer.Option(
            "--co2-price",
            help="CO2 price per tonne (price-file currency); repeat. 0 = revenue-only. "
            "[0, 50, 100]",
        ),
    ] = None,
    column: ColumnOpt = None,
    node: NodeOpt = None,
    first: FromOpt = None,
    last: ToOpt = None,
    country_code: Annotated[
        str, typer.Option("--country", help="ISO-3 grid: average factor and fossil mix.")
    ] = "CHL",
    power_kw: PowerOpt = 1000.0,
    capacity_kwh: CapacityOpt = 4000.0,
    eta_charge: EtaCOpt = 0.95,
    eta_discharge: EtaDOpt = 0.95,
    soc_min: SocMinOpt = 0.0,
    soc_max: SocMaxOpt = 100.0,
    soc_initial: SocInitOpt = 50.0,
    degradation: WearOpt = 0.0,
    cycles_per_day: CyclesOpt = None,
    settlement: Annotated[str, typer.Option("--settle", help="'plant' or 'ideal'.")] = "plant",
    embodied_kg_per_kwh: Annotated[
        float, typer.Option("--embodied-kg-per-kwh", help="Embodied kg CO2e per kWh capacity.")
    ] = DEFAULT_KG_PER_KWH,
    as_json: JsonOpt = False,
) -> None:
    """Back-test revenue-only against carbon-aware plans (a CO2 price times the CMg-derived
    marginal factor added to the energy cost): revenue and net CO2 of each, per method."""
    prices_per_t = co2_price if co2_price else [0.0, 50.0, 100.0]
    if any(p < 0 for p in prices_per_t):
        raise ConfigError("--co2-price: prices are >= 0")
    if settlement not in SETTLEMENTS:
        raise ConfigError(f"--settle: {settlement!r}; choose one of {', '.join(SETTLEMENTS)}")
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
    source = PriceSource.from_options(prices, column, node, first, last)
    err = Console(stderr=True)
    series = source.load(err)
    if series.unit != "USD/MWh":
        raise ConfigError(f"{prices}: prices in {series.unit}; the CMg bands need USD/MWh")
    outcomes = carbon_backtests(
        series,
        forecaster,
        storage,
        prices_per_t,
        country_code=country_code,
        soc_initial_pct=soc_initial,
        first_day=source.first,
        last_day=source.last,
        settle=SETTLEMENTS[settlement],
        embodied_kg_per_kwh=embodied_kg_per_kwh,
        on_run=lambda p: err.print(f"[dim]back-test at {p:g} per t CO2 ...[/]"),
    )
    if as_json:
        typer.echo(json.dumps([o.summary() for o in outcomes], indent=1))
        return
    print_outcomes(outcomes)


def print_outcomes(outcomes: list[CarbonOutcome]) -> None:
    """Print one row per CO2 price: revenue, CO2 avoided and what each tonne cost."""
    first = outcomes[0].result
    cur = first.unit.split("/")[0]
    table = Table(
        title=f"{first.forecaster} on {first.node}, {first.first_day} .. {first.last_day}; "
        "net CO2 > 0: the battery added it",
    )
    for name in (
        f"CO2 price ({cur}/t)",
        f"revenue ({cur})",
        "EFC",
        "net CO2, marginal (t)",
        "net CO2, average (t)",
        "embodied share (t)",
        f"abatement cost ({cur}/t)",
    ):
        table.add_column(name, justify="right")
    base = outcomes[0]
    for o in outcomes:
        saved = base.totals[MARGINAL].net_kg - o.totals[MARGINAL].net_kg
        lost = base.result.net_revenue - o.result.net_revenue
        cost = f"{1000.0 * lost / saved:,.1f}" if o is not base and saved > 0 else "–"
        table.add_row(
            f"{o.co2_price_per_t:g}",
            f"{o.result.revenue:,.0f}",
            f"{o.result.equivalent_full_cycles:,.0f}",
            f"{o.totals[MARGINAL].net_kg / 1000.0:,.1f}",
            f"{o.totals[AVERAGE].net_kg / 1000.0:,.1f}",
            f"{o.embodied_kg / 1000.0:,.1f}",
            cost,
        )
    stdout_console().print(table)
