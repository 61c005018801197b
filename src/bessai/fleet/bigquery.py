"""Export the fleet database to BigQuery (extra `bessai[gcp]`, google-cloud-bigquery), one UTC
day at a time, deduplicated by our own key.

A day's envelopes are loaded (load jobs, in chunks) into a fresh staging table, then one MERGE
inserts into the target table only the (site_id, boot_id, seq) it does not hold yet. The
target is partitioned by day on `ts` and clustered by site, so the MERGE reads one partition.
Exporting a day twice, or a day that grew after a late backfill, therefore never duplicates a
row. BigQuery's own insertId de-duplication is best-effort, so the export does not rely on it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bessai.errors import BessaiError

#: (column, BigQuery type, mode); `data` holds the envelope's values as JSON text.
SCHEMA: tuple[tuple[str, str, str], ...] = (
    ("site_id", "STRING", "REQUIRED"),
    ("boot_id", "STRING", "REQUIRED"),
    ("seq", "INT64", "REQUIRED"),
    ("ts", "TIMESTAMP", "REQUIRED"),
    ("kind", "STRING", "REQUIRED"),
    ("device_id", "STRING", "NULLABLE"),
    ("historical", "BOOL", "REQUIRED"),
    ("data", "STRING", "REQUIRED"),
)
COLUMNS = tuple(name for name, _, _ in SCHEMA)
CHUNK_ROWS = 50_000

DAY_SQL = """
SELECT site_id, boot_id, seq, ts, kind, device_id, historical, data::text AS data
FROM envelopes WHERE ts >= $1 AND ts < $2 ORDER BY site_id, boot_id, seq
"""


class ExportError(BessaiError):
    """The export could not reach BigQuery or a job failed."""


@dataclass(frozen=True, slots=True)
class BigQueryTarget:
    """Where the export goes."""

    project: str
    dataset: str = "bessai"
    table: str = "envelopes"
    location: str | None = None
    credentials_file: Path | None = None
    #: an emulator or test server (http://host:port); anonymous credentials
    endpoint: str | None = None
    #: how rows reach the staging table: load jobs (no streaming cost; the default) or the
    #: streaming insertAll API (for servers without multipart uploads, such as bqemulator).
    #: Either way the MERGE, not BigQuery's insertId, is what de-duplicates.
    stage_with: str = "load"

    def ref(self, table: str | None = None) -> str:
        """`project.dataset.table`."""
        return f"{self.project}.{self.dataset}.{table or self.table}"


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What one day's export did."""

    day: date
    rows_read: int
    rows_inserted: int


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[00:00, next 00:00) UTC."""
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def to_json_row(record: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    """One database row as a load-job row (JSON-serialisable)."""
    ts = record["ts"]
    return {
        "site_id": record["site_id"],
        "boot_id": record["boot_id"],
        "seq": int(record["seq"]),
        "ts": ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "kind": record["kind"],
        "device_id": record["device_id"],
        "historical": bool(record["historical"]),
        "data": record["data"],
    }


def merge_sql(target: BigQueryTarget, staging: str) -> str:
    """Insert the staged rows whose key the target lacks; duplicates inside the stage (the
    same envelope loaded twice) collapse to one. Both sides are limited to the day, so the
    target's partition filter prunes to one partition."""
    cols = ", ".join(COLUMNS)
    src = ", ".join(f"S.{c}" for c in COLUMNS)
    return f"""
MERGE `{target.ref()}` T
USING (
  SELECT {cols} FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY site_id, boot_id, seq ORDER BY ts) AS _n
    FROM `{target.ref(staging)}`
  ) WHERE _n = 1
) S
ON T.site_id = S.site_id AND T.boot_id = S.boot_id AND T.seq = S.seq
   AND T.ts >= @day_start AND T.ts < @day_end
WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({src})
"""


def make_client(target: BigQueryTarget) -> Any:
    """A BigQuery client for Google Cloud or an emulator."""
    try:
        from google.cloud import bigquery
    except ImportError:
        raise ExportError(
            "the BigQuery export needs the gcp extra: pip install 'bessai[gcp]'"
        ) from None
    if target.endpoint is not None:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials

        anonymous: Any = AnonymousCredentials  # untyped in google-auth
        return bigquery.Client(
            project=target.project,
            credentials=anonymous(),
            client_options=ClientOptions(api_endpoint=target.endpoint),
            location=target.location,
        )
    if target.credentials_file is not None:
        from_file: Any = bigquery.Client.from_service_account_json  # untyped
        return from_file(
            str(target.credentials_file), project=target.project, location=target.location
        )
    return bigquery.Client(project=target.project, location=target.location)


def _schema() -> list[Any]:
    from google.cloud import bigquery

    return [bigquery.SchemaField(name, kind, mode=mode) for name, kind, mode in SCHEMA]


def ensure_table(client: Any, target: BigQueryTarget) -> None:
    """The dataset and the day-partitioned, site-clustered target table, when missing."""
    from google.cloud import bigquery

    client.create_dataset(f"{target.project}.{target.dataset}", exists_ok=True)
    table = bigquery.Table(target.ref(), schema=_schema())
    table.time_partitioning = bigquery.TimePartitioning(field="ts")
    table.clustering_fields = ["site_id"]
    client.create_table(table, exists_ok=True)


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), CHUNK_ROWS):
        yield rows[i : i + CHUNK_ROWS]


def _stage(client: Any, target: BigQueryTarget, stage_ref: str, rows: list[dict[str, Any]]) -> None:
    from google.cloud import bigquery

    if target.stage_with == "insert":
        # No row ids: insertId de-duplication is best-effort anyway; the MERGE collapses
        # whatever a retried insert doubled.
        errors = client.insert_rows_json(stage_ref, rows, row_ids=[None] * len(rows))
        if errors:
            raise ExportError(f"BigQuery refused staged rows: {str(errors[:3])[:300]}")
        return
    job = client.load_table_from_json(
        rows,
        stage_ref,
        job_config=bigquery.LoadJobConfig(schema=_schema(), write_disposition="WRITE_APPEND"),
    )
    job.result()


def load_and_merge(
    client: Any, target: BigQueryTarget, day: date, rows: list[dict[str, Any]]
) -> int:
    """Stage `rows` with load jobs, MERGE them into the target; returns the rows inserted."""
    from google.cloud import bigquery

    staging = f"{target.table}_stage_{uuid.uuid4().hex[:12]}"
    stage_ref = target.ref(staging)
    start, end = day_bounds(day)
    try:
        client.create_table(bigquery.Table(stage_ref, schema=_schema()))
        for chunk in _chunks(rows):
            _stage(client, target, stage_ref, chunk)
        query = client.query(
            merge_sql(target, staging),
            job_config=bigquery.QueryJobConfig(
                query_parameters=[
                    bigquery.ScalarQueryParameter("day_start", "TIMESTAMP", start),
                    bigquery.ScalarQueryParameter("day_end", "TIMESTAMP", end),
                ]
            ),
        )
        query.result()
        return int(query.num_dml_affected_rows or 0)
    finally:
        client.delete_table(stage_ref, not_found_ok=True)


async def day_rows(pool: asyncpg.Pool, day: date) -> AsyncIterator[dict[str, Any]]:
    """The day's envelopes from the fleet database, streamed with a cursor."""
    start, end = day_bounds(day)
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        async for record in conn.cursor(DAY_SQL, start, end, prefetch=5_000):
            yield to_json_row(record)


async def export_day(pool: asyncpg.Pool, target: BigQueryTarget, day: date) -> ExportResult:
    """Export one UTC day; safe to repeat (replays insert nothing)."""
    import asyncio

    rows = [row async for row in day_rows(pool, day)]
    if not rows:
        return ExportResult(day, 0, 0)

    def work() -> int:
        client = make_client(target)
        try:
            ensure_table(client, target)
            return load_and_merge(client, target, day, rows)
        finally:
            client.close()

    try:
        inserted = await asyncio.to_thread(work)
    except ExportError:
        raise
    except Exception as exc:  # google.api_core errors, auth errors, transport errors
        raise ExportError(
            f"BigQuery export of {day} to {target.ref()} failed: "
            f"{type(exc).__name__}: {str(exc)[:300]}"
        ) from None
    return ExportResult(day, len(rows), inserted)
