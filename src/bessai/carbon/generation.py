"""Hourly average emission factors from CEN's generation by technology.

``bessai market fetch --dataset generation`` gives the energy each technology generated every
hour (``timestamp,key,value``, MWh). The hour's location-based average factor is the
generation-weighted mean of each technology's lifecycle intensity (the package's per-source
table, :func:`bessai.carbon.factors.source_intensities`)::

    g_kWh(h) = sum_tech MWh(h, tech) * g_kWh(tech) / sum_tech MWh(h, tech)

written as ``timestamp,g_kwh``, the measured-series CSV the carbon engine reads
(:func:`bessai.carbon.factors.load_factor_csv`; ``bessai carbon report --factors F --kind
average`` takes such a file). CEN names technologies in Spanish: the
mapping below folds them onto the table's sources; an unknown name is an error naming it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from bessai.carbon.factors import source_intensities
from bessai.errors import DataError
from bessai.market.datasets import load_dataset_csv

#: Words in CEN technology names -> the per-source table's key (checked in this order).
TECHNOLOGY_SOURCES: tuple[tuple[str, str], ...] = (
    ("solar", "solar"),
    ("fotovoltaic", "solar"),
    ("eolic", "wind"),
    ("hidro", "hydroelectricity"),
    ("hidraulic", "hydroelectricity"),
    ("pasada", "hydroelectricity"),
    ("embalse", "hydroelectricity"),
    ("geotermic", "geothermal"),
    ("biomasa", "biomass"),
    ("biogas", "biomass"),
    ("carbon", "coal"),
    ("gas", "natural_gas"),
    ("gnl", "natural_gas"),
    ("diesel", "petroleum"),
    ("petroleo", "petroleum"),
    ("fuel", "petroleum"),
    ("cogeneracion", "fossil"),
    ("termic", "fossil"),
)


def _plain(name: str) -> str:
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return text.casefold()


def source_of(technology: str) -> str:
    """The per-source key of a CEN technology name (``Eólica`` -> ``wind``)."""
    plain = _plain(technology)
    for word, source in TECHNOLOGY_SOURCES:
        if word in plain:
            return source
    raise DataError(
        f"technology {technology!r}: no emission source known for it; known words: "
        + ", ".join(w for w, _ in TECHNOLOGY_SOURCES)
    )


def hourly_factors(
    generation: pd.DataFrame, intensities: Mapping[str, float] | None = None
) -> pd.Series:
    """g/kWh per hour from generation by technology (one column per technology, MWh). An hour
    with no generation at all has no factor (NaN)."""
    table = dict(source_intensities() if intensities is None else intensities)
    weights = np.array([table[source_of(str(c))] for c in generation.columns], dtype=np.float64)
    mwh = generation.fillna(0.0).clip(lower=0.0).to_numpy(dtype=np.float64)
    total = mwh.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        g_kwh = np.where(total > 0, mwh @ weights / total, np.nan)
    return pd.Series(g_kwh, index=generation.index, name="g_kwh")


def factors_from_generation_command(
    generation_csv: Annotated[
        Path, typer.Argument(help="A `bessai market fetch --dataset generation` CSV.")
    ],
    out: Annotated[Path, typer.Option("--out", help="CSV to write (timestamp,g_kwh).")],
) -> None:
    """Hourly average emission factors from CEN's generation by technology."""
    series = hourly_factors(load_dataset_csv(generation_csv)).dropna()
    lines = ["timestamp,g_kwh"]
    lines += [f"{ts:%Y-%m-%dT%H:%M:%SZ},{v:.3f}" for ts, v in series.items()]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    typer.echo(f"{out}: {len(series)} hours")
