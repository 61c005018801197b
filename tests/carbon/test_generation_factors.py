"""Hourly average factors from CEN generation by technology (bessai market fetch --dataset
generation), in the CSV the carbon engine reads."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bessai.carbon.factors import Basis, Kind, Method, load_factor_csv, source_intensities
from bessai.carbon.generation import hourly_factors, source_of
from bessai.cli import app
from bessai.errors import DataError
from bessai.market.datasets import load_dataset_csv

CSV = """timestamp,key,value
2023-03-01T03:00:00Z,Solar Fotovoltaica,0.0
2023-03-01T03:00:00Z,Carbón,300.0
2023-03-01T03:00:00Z,Eólica,100.0
2023-03-01T15:00:00Z,Solar Fotovoltaica,900.0
2023-03-01T15:00:00Z,Carbón,100.0
2023-03-01T16:00:00Z,Solar Fotovoltaica,0.0
"""


def test_names_fold_onto_the_sources() -> None:
    assert source_of("Eólica") == "wind"
    assert source_of("Hidráulica de Embalse") == "hydroelectricity"
    assert source_of("Gas Natural Licuado") == "natural_gas"
    with pytest.raises(DataError, match="'Fusion'"):
        source_of("Fusion")


def test_generation_weighted_factor(tmp_path: Path) -> None:
    path = tmp_path / "gen.csv"
    path.write_text(CSV, encoding="utf-8")
    g = source_intensities()
    f = hourly_factors(load_dataset_csv(path))
    night = (300 * g["coal"] + 100 * g["wind"]) / 400
    noon = (900 * g["solar"] + 100 * g["coal"]) / 1000
    assert f.iloc[0] == pytest.approx(night)
    assert f.iloc[1] == pytest.approx(noon)
    assert pd.isna(f.iloc[2])  # nothing generated: no factor


def test_cli_writes_what_the_engine_reads(tmp_path: Path) -> None:
    path = tmp_path / "gen.csv"
    path.write_text(CSV, encoding="utf-8")
    out = tmp_path / "factors.csv"
    result = CliRunner().invoke(
        app, ["carbon", "factors-from-generation", str(path), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    factors = load_factor_csv(out, Method(Kind.AVERAGE, Basis.LOCATION, "CEN generation"))
    assert len(factors.series) == 2
