"""The BigQuery export: the rows and the MERGE it sends, and, where the BigQuery emulator
(`bqemulator`, PyPI) is installed, a day exported twice with the real google-cloud-bigquery
client lands once."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from bessai.fleet.bigquery import (
    COLUMNS,
    BigQueryTarget,
    day_bounds,
    export_day,
    make_client,
    merge_sql,
    to_json_row,
)
from bessai.fleet.migrations import migrate
from bessai.fleet.rows import parse_envelope
from bessai.fleet.store import DbOptions, open_pool, write_batch
from tests.fleet.test_store import envelope
from tests.process import LOOPBACK, free_port, wait_for_port

pytest.importorskip("google.cloud.bigquery")


def test_rows_and_merge() -> None:
    start, end = day_bounds(date(2026, 1, 15))
    assert start == datetime(2026, 1, 15, tzinfo=UTC)
    assert end - start == timedelta(days=1)
    row = to_json_row(
        {"site_id": "a", "boot_id": "b", "seq": 3, "ts": start, "kind": "telemetry",
         "device_id": None, "historical": False, "data": '{"soc_pct": 5}'}
    )  # fmt: skip
    assert row["ts"] == "2026-01-15T00:00:00.000000Z"
    assert tuple(row) == COLUMNS
    sql = merge_sql(BigQueryTarget("proj-1", "ds", "env"), "env_stage_x")
    assert "MERGE `proj-1.ds.env` T" in sql
    assert "FROM `proj-1.ds.env_stage_x`" in sql
    assert "T.site_id = S.site_id AND T.boot_id = S.boot_id AND T.seq = S.seq" in sql
    assert "WHEN NOT MATCHED THEN INSERT" in sql
    assert "WHEN MATCHED" not in sql  # never rewrites what BigQuery holds


HARNESS = Path(__file__).with_name("bq_harness.py")


def _bqemulator_python() -> str | None:
    """A Python that can import bqemulator: BQEMULATOR_PYTHON, or the one of a `bqemulator`
    on PATH (its pins clash with the project's venv, so it lives in its own)."""
    explicit = os.environ.get("BQEMULATOR_PYTHON")
    if explicit:
        return explicit
    script = shutil.which("bqemulator")
    if script is None:
        return None
    python = Path(script).with_name("python")
    return str(python) if python.exists() else None


@pytest.fixture
def bq_endpoint(tmp_path: Path) -> Iterator[str]:
    python = _bqemulator_python()
    if python is None:
        pytest.skip(
            "bqemulator is not installed (PyPI `bqemulator`; its pins clash with this venv, "
            "so install it in a venv of its own and set BQEMULATOR_PYTHON to its python)"
        )
    port = free_port()
    log = (tmp_path / "bq.log").open("wb")
    proc = subprocess.Popen(
        [python, str(HARNESS), "start", "--rest-host", LOOPBACK, "--rest-port", str(port),
         "--grpc-host", LOOPBACK, "--grpc-port", str(free_port()), "--ephemeral",
         "--project", "bessai-test", "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port, timeout_s=60)
        yield f"http://{LOOPBACK}:{port}"
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(10)
        log.close()


async def test_a_replayed_day_is_deduplicated(fleet_dsn: str, bq_endpoint: str) -> None:
    conn = await asyncpg.connect(fleet_dsn)
    await migrate(conn)
    await conn.close()
    pool = await open_pool(DbOptions(fleet_dsn))
    day = date(2026, 1, 15)
    try:
        await write_batch(pool, [parse_envelope(envelope(s, q, soc_pct=1.0))
                                 for s in ("a", "b") for q in range(20)])  # fmt: skip
        # bqemulator has no multipart upload (load jobs): stage with insertAll instead.
        target = BigQueryTarget(
            "bessai-test", "fleet", "envelopes", endpoint=bq_endpoint, stage_with="insert"
        )
        first = await export_day(pool, target, day)
        assert (first.rows_read, first.rows_inserted) == (40, 40)
        again = await export_day(pool, target, day)
        assert (again.rows_read, again.rows_inserted) == (40, 0)
        # A late backfill adds to the day: only the new envelopes go in.
        await write_batch(pool, [parse_envelope(envelope("c", q)) for q in range(5)])
        third = await export_day(pool, target, day)
        assert (third.rows_read, third.rows_inserted) == (45, 5)
    finally:
        await pool.close()

    def count() -> int:
        client = make_client(target)
        rows = list(client.query(f"SELECT count(*) AS n FROM `{target.ref()}`").result())
        client.close()
        return int(rows[0]["n"])

    assert await asyncio.to_thread(count) == 45
