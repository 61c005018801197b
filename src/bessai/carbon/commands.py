"""`bessai carbon ...`: emission factors and the carbon report of a battery's measured flows."""

from __future__ import annotations

import json
import math
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from bessai.carbon.embodied import (
    DEFAULT_KG_PER_KWH,
    LITERATURE_RANGE_KG_PER_KWH,
    Embodied,
    life_from_history,
)
from bessai.carbon.engine import Account, Period, account
from bessai.carbon.factors import Factors, country, country_table
from bessai.carbon.inputs import (
    Measured,
    flows_from_csv,
    flows_from_lake,
    marginal_from_price_file,
    measured_factors,
)
from bessai.carbon.marginal import (
    DEFAULT_PEAKER_FROM_USD_MWH,
    DEFAULT_RENEWABLE_BELOW_USD_MWH,
    Band,
    default_bands,
    load_bands,
)
from bessai.errors import ConfigError

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
CountryOpt = Annotated[
    str, typer.Option("--country", help="ISO-3 country of the grid (yearly average factor).")
]
BandsOpt = Annotated[
    Path | None,
    typer.Option("--bands", help="CSV of CMg bands: below_usd_mwh,technology,g_kwh."),
]
RenewableOpt = Annotated[
    float,
    typer.Option("--renewable-below", help="CMg (USD/MWh) under which renewables are marginal."),
]
PeakerOpt = Annotated[
    float, typer.Option("--peaker-from", help="CMg (USD/MWh) from which oil peakers are marginal.")
]


class PeriodName(StrEnum):
    hour = "hour"
    day = "day"
    month = "month"
    year = "year"
    total = "total"


def _bands(
    path: Path | None, country_code: str, renewable: float, peaker: float
) -> tuple[Band, ...]:
    if path is not None:
        return load_bands(path)
    return default_bands(
        country_code, renewable_below_usd_mwh=renewable, peaker_from_usd_mwh=peaker
    )


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def register(app: typer.Typer) -> typer.Typer:
    """Add `bessai carbon ...`; returns the group, which the back-test joins from above."""
    carbon = typer.Typer(
        help="Carbon accounting: emission factors and reports.", no_args_is_help=True
    )
    carbon.command("factors")(factors_command)
    carbon.command("marginal")(marginal_command)
    carbon.command("report")(report_command)
    from bessai.carbon.generation import factors_from_generation_command

    carbon.command("factors-from-generation")(factors_from_generation_command)
    app.add_typer(carbon, name="carbon")
    return carbon


def factors_command(
    code: Annotated[str | None, typer.Argument(help="ISO-3 code (or name) of one country.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The yearly location-based average factors (213 countries), or one country in detail
    with the CMg bands its fossil mix gives."""
    if code is None:
        rows = sorted(country_table().values(), key=lambda c: c.iso_code)
        if as_json:
            typer.echo(
                json.dumps(
                    [
                        {"iso_code": c.iso_code, "name": c.name, "year": c.year, "g_kwh": c.g_kwh}
                        for c in rows
                    ],
                    indent=1,
                )
            )
            return
        table = Table("code", "country", "year", "gCO2e/kWh", title=f"{len(rows)} countries")
        for c in rows:
            table.add_row(c.iso_code, c.name, str(c.year), f"{c.g_kwh:.1f}")
        Console().print(table)
        return
    entry = country(code)
    doc: dict[str, Any] = {
        "iso_code": entry.iso_code,
        "name": entry.name,
        "year": entry.year,
        "average_g_kwh": entry.g_kwh,
        "total_twh": entry.total_twh,
        "mix_twh": dict(entry.mix_twh),
    }
    try:
        doc["cmg_bands"] = [
            {
                "below_usd_mwh": b.below_usd_mwh if math.isfinite(b.below_usd_mwh) else None,
                "technology": b.technology,
                "g_kwh": b.g_kwh,
            }
            for b in default_bands(entry.iso_code)
        ]
    except Exception:  # a country without fossil generation has no thermal band
        doc["cmg_bands"] = None
    if as_json:
        typer.echo(json.dumps(doc, indent=1))
        return
    console = Console()
    console.print(
        f"{entry.name} ({entry.iso_code}) {entry.year}: {entry.g_kwh:g} gCO2e/kWh "
        f"(yearly average, lifecycle), {entry.total_twh:g} TWh",
        markup=False,
    )
    mix = ", ".join(f"{k} {v:g}" for k, v in entry.mix_twh.items() if v)
    console.print(f"mix (TWh): {mix}", markup=False)
    for band in doc["cmg_bands"] or []:
        bound = band["below_usd_mwh"]
        where = f"CMg < {bound:g} USD/MWh" if bound is not None else "above"
        console.print(
            f"  marginal {where}: {band['g_kwh']:g} g/kWh ({band['technology']})", markup=False
        )


def marginal_command(
    prices: Annotated[Path, typer.Option("--prices", help="CMg price file (USD/MWh).")],
    column: Annotated[str | None, typer.Option(help="Price column of the file.")] = None,
    node: Annotated[str | None, typer.Option(help="Bus of a file with several.")] = None,
    country_code: CountryOpt = "CHL",
    bands: BandsOpt = None,
    renewable_below: RenewableOpt = DEFAULT_RENEWABLE_BELOW_USD_MWH,
    peaker_from: PeakerOpt = DEFAULT_PEAKER_FROM_USD_MWH,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write timestamp,g_kwh rows (UTC step start).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Derive the hourly marginal emission factor from a marginal-cost series."""
    chosen = _bands(bands, country_code, renewable_below, peaker_from)
    factors = marginal_from_price_file(prices, chosen, column=column, node=node)
    series = factors.series
    if out is not None:
        frame = pd.DataFrame(
            {
                "timestamp": pd.DatetimeIndex(series.index).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "g_kwh": series.to_numpy(),
            }
        )
        frame.to_csv(out, index=False)
    shares = [
        {
            "technology": b.technology,
            "g_kwh": b.g_kwh,
            "share_pct": round(100.0 * float(np.mean(series.to_numpy() == b.g_kwh)), 2),
        }
        for b in chosen
    ]
    doc = {
        "method": factors.method.key,
        "description": factors.method.description,
        "steps": len(series),
        "mean_g_kwh": _round(float(series.mean())),
        "bands": shares,
        "out": str(out) if out is not None else None,
    }
    if as_json:
        typer.echo(json.dumps(doc, indent=1))
        return
    console = Console()
    console.print(
        f"{factors.method.name}: {len(series)} steps, mean {doc['mean_g_kwh']} g/kWh", markup=False
    )
    for s in shares:
        console.print(
            f"  {s['share_pct']:6.2f} % of steps at {s['g_kwh']:g} g/kWh: {s['technology']}",
            markup=False,
        )
    if out is not None:
        console.print(f"wrote {out}", markup=False)


def _methods(
    country_code: str,
    marginal_prices: Path | None,
    bands: tuple[Band, ...],
    factors_csv: Path | None,
    kind: str,
    basis: str,
    timezone: str | None,
) -> list[Factors]:
    methods = [country(country_code).factors()]
    if marginal_prices is not None:
        methods.append(marginal_from_price_file(marginal_prices, bands))
    if factors_csv is not None:
        methods.append(measured_factors(factors_csv, kind, basis, timezone))
    keys = [m.method.key for m in methods]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"two factor series of the same method ({', '.join(keys)}): give one")
    return methods


def _account_doc(acc: Account, period: Period, timezone: str) -> dict[str, Any]:
    totals = acc.totals()
    rows = acc.per(period, timezone) if period != "total" else None
    doc: dict[str, Any] = {
        "method": acc.method.key,
        "name": acc.method.name,
        "description": acc.method.description,
        "charged_kwh": _round(totals.charged_kwh),
        "discharged_kwh": _round(totals.discharged_kwh),
        "losses_kwh": _round(totals.losses_kwh),
        "charging_kg": _round(totals.charging_kg),
        "discharging_kg": _round(totals.discharging_kg),
        "net_kg": _round(totals.net_kg),
        "saved_kg": _round(totals.saved_kg),
        "charge_factor_g_kwh": _round(totals.charge_factor_g_kwh),
        "discharge_factor_g_kwh": _round(totals.discharge_factor_g_kwh),
    }
    if rows is not None:
        doc["per"] = [
            {"period": str(index), **{k: _round(float(v)) for k, v in row.items()}}
            for index, row in rows.iterrows()
        ]
    return doc


def _embodied_doc(measured: Measured, capacity_kwh: float, kg_per_kwh: float) -> dict[str, Any]:
    if measured.soc_pct is None:
        raise ConfigError("--capacity-kwh needs the SOC history (soc_pct) to know the life")
    flows = measured.flows
    life = life_from_history(
        measured.soc_pct, flows.step.total_seconds(), float(flows.discharged_kwh.sum())
    )
    embodied = Embodied(capacity_kwh, kg_per_kwh)
    return {
        "kg_per_kwh_capacity": kg_per_kwh,
        "literature_range_kg_per_kwh": list(LITERATURE_RANGE_KG_PER_KWH),
        "total_kg": _round(embodied.total_kg),
        "life_years": _round(life.life_years, 2),
        "life_capped": life.capped,
        "lifetime_discharged_kwh": _round(life.lifetime_discharged_kwh, 1),
        "kg_per_kwh_discharged": _round(embodied.per_kwh_discharged(life), 5),
        "share_kg": _round(embodied.share_kg(float(flows.discharged_kwh.sum()), life)),
    }


def report_command(
    lake: Annotated[Path | None, typer.Option("--lake", help="Telemetry lake directory.")] = None,
    site: Annotated[str | None, typer.Option("--site", help="Site id in the lake.")] = None,
    flows: Annotated[
        Path | None,
        typer.Option("--flows", help="CSV: timestamp, battery_kw (> 0 charging) [, soc_pct]."),
    ] = None,
    country_code: CountryOpt = "CHL",
    marginal_prices: Annotated[
        Path | None,
        typer.Option(
            "--marginal-prices", help="CMg file: add the marginal factor derived from it."
        ),
    ] = None,
    bands: BandsOpt = None,
    factors_csv: Annotated[
        Path | None, typer.Option("--factors", help="Measured factor CSV (timestamp, g_kwh).")
    ] = None,
    kind: Annotated[str, typer.Option(help="Kind of --factors: average or marginal.")] = "marginal",
    basis: Annotated[
        str, typer.Option(help="Scope 2 basis of --factors: location or market.")
    ] = "location",
    timezone: Annotated[
        str, typer.Option(help="Zone that cuts days and years; also of naive --factors times.")
    ] = "America/Santiago",
    per: Annotated[PeriodName, typer.Option(help="Sum per hour, day, month, year or total.")] = (
        PeriodName.total
    ),
    capacity_kwh: Annotated[
        float | None,
        typer.Option("--capacity-kwh", help="Battery capacity: adds the embodied share."),
    ] = None,
    embodied_kg_per_kwh: Annotated[
        float, typer.Option("--embodied-kg-per-kwh", help="Embodied kg CO2e per kWh of capacity.")
    ] = DEFAULT_KG_PER_KWH,
    as_json: JsonOpt = False,
) -> None:
    """CO2 a battery caused by charging, avoided by discharging, and the net, for each factor
    method on its own (never mixed), with the embodied share when the capacity is given."""
    if kind not in ("average", "marginal") or basis not in ("location", "market"):
        raise ConfigError("--kind is average or marginal; --basis is location or market")
    if (lake is None) == (flows is None):
        raise ConfigError(
            "give the battery's flows with either --lake DIR --site ID or --flows CSV"
        )
    if lake is not None and site is None:
        raise ConfigError("--lake needs --site")
    if lake is not None:
        measured = flows_from_lake(lake, str(site))
    else:
        assert flows is not None
        measured = flows_from_csv(flows, site or "")
    chosen = _bands(
        bands, country_code, DEFAULT_RENEWABLE_BELOW_USD_MWH, DEFAULT_PEAKER_FROM_USD_MWH
    )
    methods = _methods(country_code, marginal_prices, chosen, factors_csv, kind, basis, timezone)
    docs = [_account_doc(account(measured.flows, m), per.value, timezone) for m in methods]
    doc: dict[str, Any] = {
        "site": measured.flows.site,
        "from_utc": measured.flows.start[0].isoformat(),
        "to_utc": (measured.flows.start[-1] + measured.flows.step).isoformat(),
        "methods": docs,
    }
    if capacity_kwh is not None:
        doc["embodied"] = _embodied_doc(measured, capacity_kwh, embodied_kg_per_kwh)
    if as_json:
        typer.echo(json.dumps(doc, indent=1))
        return
    _print_report(doc)


def _print_report(doc: dict[str, Any]) -> None:
    console = Console()
    console.print(f"site {doc['site']}: {doc['from_utc']} .. {doc['to_utc']}", markup=False)
    table = Table(
        "method",
        "charged kWh",
        "discharged kWh",
        "charging kg",
        "discharging kg",
        "net kg (> 0 added)",
        "charge g/kWh",
        "discharge g/kWh",
    )
    for m in doc["methods"]:
        table.add_row(
            m["method"],
            *(
                str(m[k])
                for k in (
                    "charged_kwh",
                    "discharged_kwh",
                    "charging_kg",
                    "discharging_kg",
                    "net_kg",
                    "charge_factor_g_kwh",
                    "discharge_factor_g_kwh",
                )
            ),
        )
    console.print(table)
    for m in doc["methods"]:
        console.print(f"{m['method']}: {m['description']}", markup=False, soft_wrap=True)
        if m.get("per"):
            per = Table("period", "charged kWh", "discharged kWh", "net kg", title=m["method"])
            for row in m["per"]:
                per.add_row(
                    row["period"][:19],
                    *(str(row[k]) for k in ("charged_kwh", "discharged_kwh", "net_kg")),
                )
            console.print(per)
    embodied = doc.get("embodied")
    if embodied:
        console.print(
            f"embodied: {embodied['total_kg']} kg ({embodied['kg_per_kwh_capacity']} kg/kWh, "
            f"literature {embodied['literature_range_kg_per_kwh']}); life "
            f"{embodied['life_years']} years at this dispatch; "
            f"{embodied['kg_per_kwh_discharged']} kg per kWh delivered; share of this period "
            f"{embodied['share_kg']} kg",
            markup=False,
            soft_wrap=True,
        )
