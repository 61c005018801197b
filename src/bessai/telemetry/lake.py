"""Query the Parquet lake with DuckDB.

Two views over every file under the lake directory:
- `telemetry_raw`: every row of every file (a crash between writing a file and the outbox
  ack can leave the same envelope in two files);
- `telemetry`: one row per (site_id, seq), the one to use unless you are auditing.
Partition columns `site` and `date` come from the directory names and prune files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from bessai.errors import TelemetryError


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def connect_lake(lake: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the `telemetry` and `telemetry_raw` views."""
    if not lake.is_dir():
        raise TelemetryError(
            f"lake directory {lake} does not exist: give --lake DIR or --config FILE "
            "(the lake sink writes its first file after flush_interval_s)"
        )
    if not any(lake.glob("site=*/date=*/*.parquet")):
        raise TelemetryError(
            f"no Parquet files under {lake} (expected site=<id>/date=<YYYY-MM-DD>/*.parquet)"
        )
    glob = str(lake / "site=*" / "date=*" / "*.parquet").replace("'", "''")
    conn = duckdb.connect(":memory:")
    conn.execute(
        "CREATE VIEW telemetry_raw AS SELECT * FROM read_parquet("
        f"'{glob}', hive_partitioning = true, union_by_name = true)"
    )
    conn.execute(
        "CREATE VIEW telemetry AS SELECT * FROM telemetry_raw "
        "QUALIFY row_number() OVER (PARTITION BY site_id, seq ORDER BY ts) = 1"
    )
    return conn


def query_lake(lake: Path, sql: str) -> QueryResult:
    """Run `sql` over the lake; a SQL error names the query problem, not a traceback."""
    conn = connect_lake(lake)
    try:
        cur = conn.execute(sql)
        columns = [d[0] for d in cur.description or []]
        return QueryResult(columns, cur.fetchall())
    except duckdb.Error as exc:
        raise TelemetryError(f"lake query failed: {exc}") from exc
    finally:
        conn.close()
