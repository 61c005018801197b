"""Emission factors: the CO2e one kWh drawn from or fed to the grid stands for, in g/kWh.

Every factor series carries its `Method`: the *kind* (the grid's average intensity, or the
marginal one: what one more or one less kWh changes) and the GHG Protocol Scope 2 *basis*
(location-based: the grid where the energy flows; market-based: what contracts say). The engine
refuses to add numbers of different methods, so a report never mixes them.

Sources shipped with the package (`bessai/carbon/data/`, see its README):
- yearly location-based averages of 213 countries (codecarbon's copy of Our World in Data /
  Ember figures, lifecycle basis, mostly 2022-2023);
- lifecycle intensities per technology (coal, gas, oil, ...), used by the marginal method of
  `bessai.carbon.marginal`.
A measured series (hourly or finer, either kind) is read from a CSV by `load_factor_csv`.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from bessai.errors import ConfigError, DataError

FloatArray = npt.NDArray[np.float64]

COUNTRY_FILE = "codecarbon_global_energy_mix.json"
SOURCE_FILE = "codecarbon_carbon_intensity_per_source.json"

#: Value columns a factor CSV may use, and what each is multiplied by to give g/kWh.
CSV_UNITS = {"g_kwh": 1.0, "kg_mwh": 1.0, "t_mwh": 1000.0}


class Kind(StrEnum):
    AVERAGE = "average"
    MARGINAL = "marginal"


class Basis(StrEnum):
    """GHG Protocol Scope 2 basis."""

    LOCATION = "location"
    MARKET = "market"


@dataclass(frozen=True, slots=True)
class Method:
    """How a factor series was made: its kind, its basis, and words for a report."""

    kind: Kind
    basis: Basis
    name: str
    description: str = ""

    @property
    def key(self) -> str:
        """`location-marginal`, `market-average`, ...: the label metrics and reports use."""
        return f"{self.basis.value}-{self.kind.value}"


@dataclass(frozen=True, slots=True)
class Factors:
    """A factor in g/kWh: one constant, or a series indexed by the UTC start of each step
    (each value holds for `step` from its start). Times a series does not cover have no
    factor (NaN from `at`), never a guessed one."""

    method: Method
    constant_g_kwh: float | None = None
    series: pd.Series = field(default_factory=lambda: pd.Series(dtype=np.float64))
    step: timedelta | None = None

    def __post_init__(self) -> None:
        if self.constant_g_kwh is None:
            index = self.series.index
            if not isinstance(index, pd.DatetimeIndex) or str(index.tz) != "UTC":
                raise ValueError("a factor series needs a UTC DatetimeIndex")
            if self.step is None or self.step <= timedelta(0):
                raise ValueError("a factor series needs a positive step")
            if not index.is_monotonic_increasing or index.has_duplicates:
                raise ValueError("a factor series needs increasing, unique times")

    @classmethod
    def constant(cls, method: Method, g_kwh: float) -> Factors:
        if not math.isfinite(g_kwh):
            raise ValueError(f"factor {g_kwh} is not a number")
        return cls(method, constant_g_kwh=float(g_kwh))

    @classmethod
    def from_series(cls, method: Method, g_kwh: pd.Series, step: timedelta) -> Factors:
        return cls(method, series=g_kwh.astype(np.float64), step=step)

    @property
    def is_constant(self) -> bool:
        return self.constant_g_kwh is not None

    def at(self, times: pd.DatetimeIndex) -> FloatArray:
        """The factor in force at each time (NaN where the series has no value)."""
        if self.constant_g_kwh is not None:
            return np.full(len(times), self.constant_g_kwh)
        assert self.step is not None
        index = self.series.index
        values = self.series.to_numpy(dtype=np.float64)
        if len(index) == 0:
            return np.full(len(times), np.nan)
        t = pd.DatetimeIndex(times).tz_convert("UTC").as_unit("ns").asi8
        starts = pd.DatetimeIndex(index).as_unit("ns").asi8
        pos = np.searchsorted(starts, t, side="right") - 1
        ok = pos >= 0
        safe = np.where(ok, pos, 0)
        ok &= t < starts[safe] + int(self.step.total_seconds() * 1e9)
        out = np.where(ok, values[safe], np.nan)
        return np.asarray(out, dtype=np.float64)

    def value_at(self, ts: datetime) -> float | None:
        """The factor in force at one time, or None."""
        value = float(self.at(pd.DatetimeIndex([pd.Timestamp(ts)]))[0])
        return None if math.isnan(value) else value


# -- the country table ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CountryFactor:
    """One country's yearly location-based average, as the source file gives it."""

    iso_code: str
    name: str
    year: int
    g_kwh: float
    total_twh: float
    #: generation per source in TWh (`coal`, `gas`, `oil`, `solar`, ...)
    mix_twh: Mapping[str, float]

    def factors(self) -> Factors:
        return Factors.constant(
            Method(
                Kind.AVERAGE,
                Basis.LOCATION,
                f"{self.iso_code} {self.year} yearly average",
                f"{self.name}'s {self.year} grid carbon intensity, {self.g_kwh:g} gCO2e/kWh "
                "(lifecycle, Our World in Data / Ember via codecarbon 3.3.2)",
            ),
            self.g_kwh,
        )


def _package_json(name: str) -> Any:
    text = resources.files("bessai.carbon").joinpath("data", name).read_text(encoding="utf-8")
    return json.loads(text)


@cache
def country_table() -> Mapping[str, CountryFactor]:
    """Every country of the shipped table, keyed by ISO 3166-1 alpha-3 code."""
    raw: dict[str, dict[str, Any]] = _package_json(COUNTRY_FILE)
    table: dict[str, CountryFactor] = {}
    for code, entry in raw.items():
        mix = {
            key.removesuffix("_TWh"): float(value)
            for key, value in entry.items()
            if key.endswith("_TWh") and key != "total_TWh"
        }
        table[code] = CountryFactor(
            iso_code=str(entry["iso_code"]),
            name=str(entry["country_name"]),
            year=int(entry["year"]),
            g_kwh=float(entry["carbon_intensity"]),
            total_twh=float(entry["total_TWh"]),
            mix_twh=mix,
        )
    return table


def country(code: str) -> CountryFactor:
    """A country by ISO-3 code (any case) or exact name; a miss suggests close names."""
    table = country_table()
    key = code.strip().upper()
    if key in table:
        return table[key]
    by_name = {c.name.lower(): c for c in table.values()}
    if code.strip().lower() in by_name:
        return by_name[code.strip().lower()]
    near = sorted(c.iso_code for c in table.values() if code.strip().lower() in c.name.lower())
    hint = f"; did you mean {', '.join(near[:5])}?" if near else ""
    raise ConfigError(
        f"unknown country {code!r}: use an ISO 3166-1 alpha-3 code such as CHL "
        f"(`bessai carbon factors` lists {len(table)}){hint}"
    )


@cache
def source_intensities() -> Mapping[str, float]:
    """Lifecycle gCO2e/kWh per technology (`coal`, `natural_gas`, `petroleum`, ...)."""
    raw: dict[str, Any] = _package_json(SOURCE_FILE)
    return {
        key: float(value)
        for key, value in raw.items()
        if isinstance(value, int | float) and not key.endswith("_source")
    }


# -- a measured series from a CSV ---------------------------------------------------------------


def load_factor_csv(path: Path, method: Method, *, timezone: str | None = None) -> Factors:
    """Read `timestamp,<unit>` rows (unit one of g_kwh, kg_mwh, t_mwh) into a factor series.

    `timestamp` is the start of the step the value holds for, with a UTC offset
    (`2023-01-01T00:00:00Z`, `2023-01-01 00:00:00-03:00`); naive times need `timezone`. The
    step is the most common spacing of the rows; gaps stay gaps."""
    rows = _read_rows(path)
    header, body = rows[0], rows[1:]
    if "timestamp" not in header:
        raise DataError(f"{path}: no 'timestamp' column (have: {', '.join(header)})")
    units = [name for name in header if name in CSV_UNITS]
    if len(units) != 1:
        raise DataError(
            f"{path}: need exactly one value column out of {', '.join(CSV_UNITS)} "
            f"(have: {', '.join(header)})"
        )
    t_col, v_col, scale = header.index("timestamp"), header.index(units[0]), CSV_UNITS[units[0]]
    times: list[pd.Timestamp] = []
    values: list[float] = []
    for line, row in enumerate(body, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        times.append(_parse_time(path, line, row[t_col] if t_col < len(row) else "", timezone))
        values.append(_parse_value(path, line, row[v_col] if v_col < len(row) else "", units[0]))
        values[-1] *= scale
    if not times:
        raise DataError(f"{path}: no rows")
    index = pd.DatetimeIndex(times).tz_convert("UTC")
    order = np.argsort(index.asi8, kind="stable")
    index, vals = index[order], np.asarray(values)[order]
    if index.has_duplicates:
        dup = index[index.duplicated()][0]
        raise DataError(f"{path}: time {dup.isoformat()} appears twice")
    step = _common_step(path, index)
    return Factors.from_series(method, pd.Series(vals, index=index), step)


def _read_rows(path: Path) -> list[list[str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = [[cell.strip() for cell in row] for row in csv.reader(handle)]
    except OSError as exc:
        raise DataError(f"cannot read factor file {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path} is not a UTF-8 CSV file: {exc}") from None
    if not rows:
        raise DataError(f"{path} is empty")
    rows[0] = [name.lower() for name in rows[0]]
    return rows


def _parse_time(path: Path, line: int, text: str, timezone: str | None) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(text.replace("Z", "+00:00"))
    except (ValueError, TypeError):
        raise DataError(f"{path}:{line}: timestamp {text!r} is not a date and time") from None
    if pd.isna(ts):
        raise DataError(f"{path}:{line}: timestamp is empty")
    if ts.tzinfo is None:
        if timezone is None:
            raise DataError(
                f"{path}:{line}: timestamp {text!r} has no UTC offset; write it as "
                "2023-01-01T00:00:00Z (or +HH:MM), or give the file's time zone"
            )
        try:
            ts = ts.tz_localize(timezone, ambiguous="raise", nonexistent="raise")
        except Exception as exc:  # pytz/zoneinfo raise several types for DST gaps and unknown zones
            raise DataError(f"{path}:{line}: {text!r} in {timezone}: {exc}") from None
    return ts


def _parse_value(path: Path, line: int, text: str, unit: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}:{line}: {unit} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{path}:{line}: {unit} {text!r} is not a finite number")
    return value


def _common_step(path: Path, index: pd.DatetimeIndex) -> timedelta:
    if len(index) < 2:
        raise DataError(f"{path}: need at least two rows to know the step")
    gaps = np.diff(index.as_unit("ns").asi8)
    values, counts = np.unique(gaps, return_counts=True)
    return timedelta(microseconds=int(values[np.argmax(counts)]) // 1000)


def describe(factors: Iterable[Factors]) -> list[dict[str, Any]]:
    """The methods in use, for reports and the API."""
    return [
        {
            "method": f.method.key,
            "kind": f.method.kind.value,
            "basis": f.method.basis.value,
            "name": f.method.name,
            "description": f.method.description,
        }
        for f in factors
    ]
