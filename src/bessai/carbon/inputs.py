"""What a carbon report reads: a battery's measured flows (the telemetry lake or a CSV) and
the factor series a user asks for. The only module of the package that opens files besides
the factor and band loaders."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from bessai.carbon.engine import Flows
from bessai.carbon.factors import Basis, Factors, FloatArray, Kind, Method, load_factor_csv
from bessai.carbon.marginal import Band, marginal_from_prices
from bessai.carbon.meter import DEFAULT_INTERVAL_S, EnergyMeter
from bessai.errors import DataError


@dataclass(frozen=True, slots=True)
class Measured:
    """Flows per step, and the SOC at each step start when known (for the battery's life)."""

    flows: Flows
    soc_pct: FloatArray | None


def flows_from_lake(lake: Path, site: str, interval_s: float = DEFAULT_INTERVAL_S) -> Measured:
    """Integrate a site's measured battery power from the telemetry lake into intervals."""
    from bessai.telemetry.lake import query_lake  # DuckDB: loaded only by the command using it

    quoted = site.replace("'", "''")
    result = query_lake(
        lake,
        "SELECT ts, battery_power_w, soc_pct FROM telemetry "
        f"WHERE site_id = '{quoted}' AND kind = 'telemetry' ORDER BY ts",
    )
    if not result.rows:
        raise DataError(f"no telemetry of site {site!r} in {lake}")
    meter = EnergyMeter(site, interval_s)
    starts, charged, discharged = [], [], []
    soc_at: dict[pd.Timestamp, float] = {}
    for ts, power_w, soc in result.rows:
        stamp = pd.Timestamp(ts).tz_convert("UTC")
        for interval in meter.add(stamp.to_pydatetime(), _number(power_w)):
            starts.append(pd.Timestamp(interval.start))
            charged.append(interval.charged_kwh)
            discharged.append(interval.discharged_kwh)
        if soc is not None:
            soc_at.setdefault(stamp.floor(f"{int(interval_s)}s"), float(soc))
    if not starts:
        raise DataError(f"site {site!r}: the lake holds less than one {interval_s:g} s interval")
    return _regular(starts, charged, discharged, soc_at, timedelta(seconds=interval_s), site)


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _regular(
    starts: list[pd.Timestamp],
    charged: list[float],
    discharged: list[float],
    soc_at: dict[pd.Timestamp, float],
    step: timedelta,
    site: str,
) -> Measured:
    """Put intervals on a regular index (missing intervals: no energy) with the SOC."""
    index = pd.date_range(starts[0], starts[-1], freq=step, tz="UTC")
    frame = pd.DataFrame({"c": charged, "d": discharged}, index=pd.DatetimeIndex(starts))
    frame = frame.groupby(level=0).sum().reindex(index, fill_value=0.0)
    soc = pd.Series(soc_at, dtype=np.float64).reindex(index).ffill().bfill()
    flows = Flows(index, step, frame["c"].to_numpy(), frame["d"].to_numpy(), site)
    soc_values: FloatArray | None = None
    if soc.notna().all():
        soc_values = np.asarray(soc.to_numpy(), dtype=np.float64)
    return Measured(flows, soc_values)


def flows_from_csv(path: Path, site: str = "") -> Measured:
    """`timestamp` (step start, with a UTC offset) and either `battery_kw` (> 0 charging) or
    `charge_kw` and `discharge_kw` (both >= 0), optionally `soc_pct`; a regular step."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read flows file {path}: {exc}") from None
    if "timestamp" not in frame.columns:
        raise DataError(f"{path}: no 'timestamp' column (have: {', '.join(frame.columns)})")
    try:
        index = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], utc=False))
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: timestamps: {exc}") from None
    if index.tz is None:
        raise DataError(f"{path}: timestamps need a UTC offset (2023-01-01T00:00:00Z)")
    index = index.tz_convert("UTC")
    if len(index) < 2:
        raise DataError(f"{path}: need at least two rows")
    steps = np.unique(np.diff(index.as_unit("ns").asi8))
    if len(steps) != 1 or steps[0] <= 0:
        raise DataError(f"{path}: timestamps must be increasing with one regular step")
    step = timedelta(microseconds=int(steps[0]) // 1000)
    if "battery_kw" in frame.columns:
        kw = _column(frame, "battery_kw", path)
    elif {"charge_kw", "discharge_kw"} <= set(frame.columns):
        kw = _column(frame, "charge_kw", path) - _column(frame, "discharge_kw", path)
    else:
        raise DataError(f"{path}: need a battery_kw column, or charge_kw and discharge_kw")
    soc = _column(frame, "soc_pct", path) if "soc_pct" in frame.columns else None
    return Measured(Flows.from_power(index, step, kw, site or path.stem), soc)


def _column(frame: pd.DataFrame, name: str, path: Path) -> FloatArray:
    values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(f"{path}: {name} in data row {int(bad[0]) + 1} is not a number")
    return values


def marginal_from_price_file(
    path: Path, bands: tuple[Band, ...], *, column: str | None = None, node: str | None = None
) -> Factors:
    """The CMg method applied to a price file (CEN formats, or any file `load_prices` reads)
    whose unit is USD/MWh."""
    from bessai.market.prices import load_prices  # pandas-heavy: loaded only when used

    series = load_prices(path, column=column, node=node)
    if series.unit != "USD/MWh":
        raise DataError(
            f"{path}: prices are in {series.unit}; the CMg bands are in USD/MWh "
            "(pick the USD column with --column)"
        )
    return marginal_from_prices(series.prices, series.step, bands, node=series.node)


def measured_factors(path: Path, kind: str, basis: str, timezone: str | None) -> Factors:
    """A measured factor CSV, labelled with the kind and basis the user states."""
    method = Method(
        Kind(kind),
        Basis(basis),
        f"measured series {path.name}",
        f"{kind} factors ({basis}-based) read from {path}",
    )
    return load_factor_csv(path, method, timezone=timezone)
