"""An hourly marginal emission factor for Chile's grid, derived from the marginal cost (CMg).

No open hourly CEN emission series is available offline, so the factor is inferred from what
the price says about the unit on the margin (docs/carbon.md, "The marginal factor from CMg"):

- CMg below `renewable_below_usd_mwh` (default 5 USD/MWh; CEN's CMg is exactly 0 in up to a
  third of 2023's hours): solar, wind or run-of-river is being curtailed and sets the price.
  One more kWh drawn is curtailed energy not spilled; one kWh fed in spills more. Marginal
  factor 0 (the plants exist either way; their lifecycle emissions are not marginal).
- CMg up to `peaker_from_usd_mwh` (default 150 USD/MWh): a thermal unit (coal, LNG combined
  cycle, or reservoir hydro at its water value, which stands for thermal energy displaced
  later) sets the price. Which fuel cannot be told from the price alone (coal and LNG variable
  costs overlap and moved with fuel prices in 2019-2023), so the factor is the country's
  fossil mix: the generation-weighted mean of the coal, gas and oil lifecycle factors, with
  the country's own yearly coal/gas/oil generation (Chile 2023: 858 g/kWh).
- Above it: diesel/fuel-oil peakers (the oil lifecycle factor, 816 g/kWh).

The bands are data (`Band`), so a user with better knowledge of the node loads their own
(`load_bands`), and a measured hourly series replaces the whole method (`load_factor_csv`).
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from bessai.carbon.factors import (
    Basis,
    Factors,
    FloatArray,
    Kind,
    Method,
    country,
    source_intensities,
)
from bessai.errors import DataError

DEFAULT_RENEWABLE_BELOW_USD_MWH = 5.0
DEFAULT_PEAKER_FROM_USD_MWH = 150.0
#: The country mix fields of the table and the technology factors they take.
FOSSIL_SOURCES = {"coal": "coal", "gas": "natural_gas", "oil": "petroleum"}


@dataclass(frozen=True, slots=True)
class Band:
    """Prices below `below_usd_mwh` (and at or above the previous band's bound) mean
    `technology` is on the margin, emitting `g_kwh`."""

    below_usd_mwh: float
    technology: str
    g_kwh: float


def fossil_mix_g_kwh(country_code: str = "CHL") -> tuple[float, str]:
    """The generation-weighted lifecycle factor of a country's coal, gas and oil fleet, and a
    line that says how it was made."""
    entry = country(country_code)
    per_source = source_intensities()
    twh = {name: entry.mix_twh.get(name, 0.0) for name in FOSSIL_SOURCES}
    total = sum(twh.values())
    if total <= 0:
        raise DataError(f"{entry.name} has no coal, gas or oil generation in the table")
    g_kwh = sum(twh[n] * per_source[src] for n, src in FOSSIL_SOURCES.items()) / total
    parts = ", ".join(
        f"{n} {100 * twh[n] / total:.0f} % x {per_source[src]:g}"
        for n, src in FOSSIL_SOURCES.items()
    )
    return g_kwh, f"{entry.iso_code} {entry.year} fossil mix ({parts} g/kWh)"


def default_bands(
    country_code: str = "CHL",
    *,
    renewable_below_usd_mwh: float = DEFAULT_RENEWABLE_BELOW_USD_MWH,
    peaker_from_usd_mwh: float = DEFAULT_PEAKER_FROM_USD_MWH,
) -> tuple[Band, ...]:
    """The three bands of the module docstring."""
    if not 0 <= renewable_below_usd_mwh < peaker_from_usd_mwh:
        raise DataError("need 0 <= renewable bound < peaker bound (USD/MWh)")
    thermal_g_kwh, how = fossil_mix_g_kwh(country_code)
    return (
        Band(renewable_below_usd_mwh, "renewable surplus (curtailed solar/wind/hydro)", 0.0),
        Band(peaker_from_usd_mwh, f"thermal: {how}", round(thermal_g_kwh, 3)),
        Band(math.inf, "oil/diesel peakers", source_intensities()["petroleum"]),
    )


def check_bands(bands: Sequence[Band], where: str = "bands") -> None:
    """A DataError naming `where` unless the bands exist, rise and end unbounded."""
    if not bands:
        raise DataError(f"{where}: no bands")
    bounds = [b.below_usd_mwh for b in bands]
    if any(b2 <= b1 for b1, b2 in itertools.pairwise(bounds)):
        raise DataError(f"{where}: below_usd_mwh must increase from band to band")
    if not math.isinf(bounds[-1]):
        raise DataError(f"{where}: the last band must be open (below_usd_mwh = inf)")
    for band in bands:
        if not math.isfinite(band.g_kwh) or band.g_kwh < 0:
            raise DataError(f"{where}: band {band.technology!r} has factor {band.g_kwh}")


def band_factors(prices_usd_mwh: FloatArray, bands: Sequence[Band]) -> FloatArray:
    """The factor of each price's band (NaN price -> NaN factor)."""
    check_bands(bands)
    bounds = np.array([b.below_usd_mwh for b in bands])
    g_kwh = np.array([b.g_kwh for b in bands])
    p = np.asarray(prices_usd_mwh, dtype=np.float64)
    which = np.searchsorted(bounds, p, side="right")
    out = g_kwh[np.minimum(which, len(bands) - 1)]
    return np.asarray(np.where(np.isnan(p), np.nan, out), dtype=np.float64)


def marginal_method(bands: Sequence[Band], node: str) -> Method:
    """The marginal-factor method of a node's bands, for the report."""
    text = "; ".join(
        f"< {b.below_usd_mwh:g}: {b.technology} {b.g_kwh:g}"
        if math.isfinite(b.below_usd_mwh)
        else f"above: {b.technology} {b.g_kwh:g}"
        for b in bands
    )
    return Method(
        Kind.MARGINAL,
        Basis.LOCATION,
        f"marginal from CMg at {node}" if node else "marginal from CMg",
        f"unit on the margin inferred from the marginal cost (USD/MWh bands, g/kWh): {text}",
    )


def marginal_from_prices(
    prices_usd_mwh: pd.Series, step: timedelta, bands: Sequence[Band], *, node: str = ""
) -> Factors:
    """The marginal factor series of a CMg series (UTC step starts, USD/MWh)."""
    values = band_factors(prices_usd_mwh.to_numpy(dtype=np.float64), bands)
    series = pd.Series(values, index=prices_usd_mwh.index)
    return Factors.from_series(marginal_method(bands, node), series, step)


def load_bands(path: Path) -> tuple[Band, ...]:
    """Bands from a CSV with columns `below_usd_mwh,technology,g_kwh` (last bound `inf`)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise DataError(f"cannot read bands file {path}: {exc.strerror}") from None
    bands: list[Band] = []
    for line, row in enumerate(rows, start=2):
        try:
            bands.append(
                Band(float(row["below_usd_mwh"]), row["technology"].strip(), float(row["g_kwh"]))
            )
        except KeyError as exc:
            raise DataError(
                f"{path}: no column {exc} (need below_usd_mwh,technology,g_kwh)"
            ) from None
        except (TypeError, ValueError):
            raise DataError(f"{path}:{line}: below_usd_mwh and g_kwh must be numbers") from None
    check_bands(bands, str(path))
    return tuple(bands)
