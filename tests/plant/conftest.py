"""Shared fixtures: real CEN prices read with the stdlib (the product's loader lives in
bessai.market; these tests only need the hourly column)."""

from __future__ import annotations

import csv

import numpy as np
import numpy.typing as npt
import pytest

from tests.conftest import DATA

CRUCERO_CSV = "cen_cmg_crucero220_2019-2023.csv"


def load_crucero_usd_mwh(year: int | None = None) -> npt.NDArray[np.float64]:
    """Hourly CMg at Crucero 220 kV in USD/MWh, in timestamp order (hour ending 01:00 first)."""
    path = DATA / CRUCERO_CSV
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: the plant tests read real prices from the repository's data/"
            " folder (or the folder BESSAI_REPO_DATA names)"
        )
    with path.open(newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["timestamp"])
    # The timestamp is the end of the hour, so hour ending 00:00 on Jan 1 belongs to the
    # previous year: select by the start of the hour.
    values = [
        float(r["costo_usd"]) for r in rows if year is None or _start_year(r["timestamp"]) == year
    ]
    return np.asarray(values, dtype=np.float64)


def _start_year(timestamp: str) -> int:
    year = int(timestamp[:4])
    return year - 1 if timestamp[5:] == "01-01 00:00:00" else year


@pytest.fixture(scope="session")
def crucero_2023() -> npt.NDArray[np.float64]:
    prices = load_crucero_usd_mwh(2023)
    assert prices.size == 8760
    return prices
