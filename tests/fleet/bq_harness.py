"""Start bqemulator without DuckDB's spatial extension, which it downloads at start and a
machine without internet cannot fetch. The export uses no GEOGRAPHY, so nothing is lost.
Run with the Python of a virtualenv holding `bqemulator` (its pins clash with the project's):
    python tests/fleet/bq_harness.py start --rest-port 9050 ..."""

from bqemulator import cli
from bqemulator.storage.engine import DuckDBEngine


def _no_spatial(self: object) -> None:
    return None


DuckDBEngine._load_spatial = _no_spatial  # type: ignore[method-assign]

if __name__ == "__main__":
    cli.main()
