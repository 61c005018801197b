"""The repository's data/ folder stays documented and unedited: every file has a section in
data/README.md with its origin, licence and SHA-256, and the demo's packaged price sample is an
unchanged slice of the Crucero series."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

REPO_DATA = Path(__file__).resolve().parents[1] / "data"
README = REPO_DATA / "README.md"
#: The folder's own description and its git attributes (no line-ending conversion).
NOT_DATA = {"README.md", ".gitattributes"}
PACKAGE_SAMPLE = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "bessai"
    / "market"
    / "data"
    / "cen_cmg_crucero220_2022-12_2023.csv"
)


def _sections() -> dict[str, str]:
    """README sections keyed by their `## ` heading (a file name)."""
    parts = re.split(r"^## +", README.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {part.split("\n", 1)[0].strip(): part for part in parts[1:]}


def _field(section: str, name: str) -> str:
    match = re.search(rf"^- \*\*{re.escape(name)}:\*\* *(\S.*)$", section, flags=re.MULTILINE)
    return match.group(1) if match else ""


def _data_files() -> list[str]:
    names = (p.relative_to(REPO_DATA).as_posix() for p in REPO_DATA.rglob("*") if p.is_file())
    return sorted(name for name in names if name not in NOT_DATA)


def test_the_folder_holds_the_files_the_suite_reads() -> None:
    assert set(_data_files()) >= {
        "cen_cmg_crucero220_2019-2023.csv",
        "cen_cmg_valdivia220_2023.tsv",
        "smard_day_ahead_prices_2018.csv",
        "codecarbon_global_energy_mix.json",
        "codecarbon_carbon_intensity_per_source.json",
    }


@pytest.mark.parametrize("name", _data_files())
def test_every_file_is_described_with_origin_licence_and_checksum(name: str) -> None:
    sections = _sections()
    assert name in sections, f"data/{name} has no '## {name}' section in data/README.md"
    section = sections[name]
    assert _field(section, "Origin"), f"data/README.md: {name} has no **Origin:** line"
    assert _field(section, "License"), f"data/README.md: {name} has no **License:** line"
    listed = re.fullmatch(r"`([0-9a-f]{64})`", _field(section, "SHA-256"))
    assert listed, f"data/README.md: {name} has no **SHA-256:** line with a hex digest"
    actual = hashlib.sha256((REPO_DATA / name).read_bytes()).hexdigest()
    assert actual == listed.group(1), f"data/{name} differs from the copy data/README.md describes"


def test_every_section_names_a_file_that_exists() -> None:
    stale = sorted(set(_sections()) - set(_data_files()))
    assert not stale, f"data/README.md describes files that are not in data/: {stale}"


def test_the_packaged_demo_sample_is_an_unchanged_slice_of_crucero() -> None:
    full = (REPO_DATA / "cen_cmg_crucero220_2019-2023.csv").read_text(encoding="utf-8").splitlines()
    sample = PACKAGE_SAMPLE.read_text(encoding="utf-8").splitlines()
    assert sample[0] == full[0]  # same header
    start = full.index(sample[1])
    assert sample[1:] == full[start : start + len(sample) - 1]
    assert sample[1].startswith("2022-12-01 01:00:00")
    assert sample[-1].startswith("2024-01-01 00:00:00")
