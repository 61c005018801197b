"""Three sites from the shipped price files (data/): Crucero, Valdivia and a third series,
Crucero two years earlier standing in for another northern bus (the only other USD/MWh CEN
series shipped). Short windows, so the rows build in a second."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from bessai.federated.site import SiteRows, load_site, site_source
from tests.conftest import DATA


@dataclass(frozen=True)
class SiteSpec:
    """A site of the tests: name, price file and training window."""

    site: str
    prices: Path
    first: str
    last: str


SITES = (
    SiteSpec("crucero", DATA / "cen_cmg_crucero220_2019-2023.csv", "2023-01-01", "2023-03-31"),
    SiteSpec("valdivia", DATA / "cen_cmg_valdivia220_2023.tsv", "2023-01-01", "2023-02-28"),
    SiteSpec("norte-2021", DATA / "cen_cmg_crucero220_2019-2023.csv", "2021-05-01", "2021-07-31"),
)


def rows_of(spec: SiteSpec) -> SiteRows:
    """The training rows of a test site."""
    return load_site(spec.site, site_source(spec.prices, first=spec.first, last=spec.last))


@pytest.fixture(scope="session")
def site_rows() -> list[SiteRows]:
    """The three sites' rows."""
    return [rows_of(s) for s in SITES]
