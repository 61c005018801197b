"""Benchmarks: `make bench` runs every module listed here and prints one JSON document."""

import os
from pathlib import Path

#: The repository's real-data folder (see data/README.md); BESSAI_REPO_DATA points elsewhere.
DATA = Path(os.environ.get("BESSAI_REPO_DATA", Path(__file__).resolve().parents[1] / "data"))
