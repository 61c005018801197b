"""Emission factors: the shipped country table is the source file, complete and unchanged; the
marginal factor from CMg follows its bands on real Crucero prices; measured series load with
clear errors."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bessai.carbon.factors import (
    Basis,
    Factors,
    Kind,
    Method,
    country,
    country_table,
    load_factor_csv,
    source_intensities,
)
from bessai.carbon.marginal import (
    Band,
    band_factors,
    default_bands,
    fossil_mix_g_kwh,
    load_bands,
)
from bessai.errors import ConfigError, DataError
from bessai.market.prices import load_prices
from tests.conftest import DATA

PACKAGE_DATA = Path(__file__).resolve().parents[2] / "src" / "bessai" / "carbon" / "data"
MEASURED = Method(Kind.MARGINAL, Basis.LOCATION, "test")


@pytest.mark.parametrize(
    "name", ["codecarbon_global_energy_mix.json", "codecarbon_carbon_intensity_per_source.json"]
)
def test_package_copies_are_the_repository_files(name: str) -> None:
    shipped = hashlib.sha256((PACKAGE_DATA / name).read_bytes()).hexdigest()
    assert shipped == hashlib.sha256((DATA / name).read_bytes()).hexdigest()


def test_yearly_factors_cover_200_countries_and_match_the_source() -> None:
    source = json.loads((DATA / "codecarbon_global_energy_mix.json").read_text())
    table = country_table()
    assert len(table) >= 200
    assert set(table) == set(source)
    for code, entry in source.items():
        row = table[code]
        assert row.g_kwh == entry["carbon_intensity"], code
        assert row.year == entry["year"]
        assert row.name == entry["country_name"]
        assert row.total_twh == entry["total_TWh"]
        assert row.mix_twh["coal"] == entry["coal_TWh"]


def test_chile_is_the_documented_figure() -> None:
    chl = country("chl")
    assert (chl.year, chl.g_kwh) == (2023, 291.113)
    factors = chl.factors()
    assert factors.method.key == "location-average"
    assert factors.value_at(datetime(2023, 6, 1, tzinfo=UTC)) == 291.113


def test_unknown_country_names_the_fix() -> None:
    with pytest.raises(ConfigError, match="did you mean DEU"):
        country("germ")


def test_thermal_band_is_chiles_fossil_mix_by_hand() -> None:
    # CHL 2023: coal 13.96, gas 15.49, oil 3.31 TWh; codecarbon: coal 995, gas 743, oil 816.
    by_hand = (13.96 * 995 + 15.49 * 743 + 3.31 * 816) / (13.96 + 15.49 + 3.31)
    g_kwh, _ = fossil_mix_g_kwh("CHL")
    assert g_kwh == pytest.approx(by_hand, rel=1e-12)
    bands = default_bands("CHL")
    assert [b.g_kwh for b in bands] == [0.0, round(by_hand, 3), source_intensities()["petroleum"]]


def test_marginal_factor_follows_the_bands_on_real_crucero_prices() -> None:
    series = load_prices(DATA / "cen_cmg_crucero220_2019-2023.csv")
    p = series.prices.to_numpy()
    bands = default_bands("CHL")
    f = band_factors(p, bands)
    assert np.all(f[p < 5.0] == 0.0)
    assert np.all(f[(p >= 5.0) & (p < 150.0)] == bands[1].g_kwh)
    assert np.all(f[p >= 150.0] == bands[2].g_kwh)
    # 2023 has a third of its hours at CMg 0 (data/README.md): a third at factor 0.
    in_2023 = series.prices.index.year == 2023
    assert 0.30 < np.mean(f[in_2023] == 0.0) < 0.40


def test_bands_must_be_increasing_and_open(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="increase"):
        band_factors(np.array([1.0]), [Band(10, "a", 0), Band(5, "b", 1), Band(math.inf, "c", 2)])
    with pytest.raises(DataError, match="open"):
        band_factors(np.array([1.0]), [Band(10, "a", 0)])
    path = tmp_path / "bands.csv"
    path.write_text("below_usd_mwh,technology,g_kwh\n20,hydro,0\ninf,gas,400\n")
    bands = load_bands(path)
    assert band_factors(np.array([10.0, 20.0, 300.0]), bands).tolist() == [0.0, 400.0, 400.0]


def test_factor_csv_with_offsets_is_read_in_utc(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text(
        "timestamp,kg_mwh\n2023-01-01T00:00:00-03:00,100\n2023-01-01T01:00:00-03:00,200\n"
    )
    factors = load_factor_csv(path, MEASURED)
    assert factors.step == timedelta(hours=1)
    assert factors.value_at(datetime(2023, 1, 1, 3, 30, tzinfo=UTC)) == 100.0
    assert factors.value_at(datetime(2023, 1, 1, 4, 59, tzinfo=UTC)) == 200.0
    assert factors.value_at(datetime(2023, 1, 1, 5, 0, tzinfo=UTC)) is None  # past the end


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timestamp,g_kwh\n2023-01-01 00:00,1\n2023-01-01 01:00,2\n", "has no UTC offset"),
        ("time,g_kwh\n", "no 'timestamp' column"),
        ("timestamp,co2\n2023-01-01T00:00Z,1\n", "exactly one value column"),
        ("timestamp,g_kwh\n2023-01-01T00:00Z,x\n2023-01-01T01:00Z,1\n", ":2: g_kwh 'x'"),
        ("timestamp,g_kwh\n2023-01-01T00:00Z,1\n2023-01-01T00:00Z,2\n", "appears twice"),
    ],
)
def test_bad_factor_csv_names_file_line_and_fix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "f.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        load_factor_csv(path, MEASURED)


def test_series_gaps_stay_gaps() -> None:
    index = pd.DatetimeIndex(["2023-01-01T00:00Z", "2023-01-01T02:00Z"]).tz_convert("UTC")
    factors = Factors.from_series(MEASURED, pd.Series([1.0, 2.0], index=index), timedelta(hours=1))
    times = pd.date_range("2023-01-01T00:30Z", periods=3, freq="h")
    assert np.isnan(factors.at(times)[1])
    assert factors.at(times)[[0, 2]].tolist() == [1.0, 2.0]
