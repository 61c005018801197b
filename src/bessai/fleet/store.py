"""The fleet database: a connection pool, the batch writer and the reads behind the fleet
view. One batch is one transaction: COPY into a temporary stage table, then one statement
inserts the new envelopes (a (site_id, boot_id, seq) seen before is skipped) and, from exactly
those new rows, the alarm and command rows and the newest state per site. The consumer acks
the batch only after the commit, so a crash anywhere redelivers and the key deduplicates."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from bessai.errors import BessaiError
from bessai.fleet.migrations import applied_versions, latest_version
from bessai.fleet.rows import StageRow

log = structlog.get_logger("bessai.fleet")

STAGE_COLUMNS = ("site_id", "boot_id", "seq", "ts", "kind", "device_id", "historical", "data")

STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS fleet_stage (
    site_id text, boot_id text, seq bigint, ts timestamptz, kind text,
    device_id text, historical boolean, data jsonb
) ON COMMIT DELETE ROWS
"""

# Locks are taken in key order (ORDER BY), so two consumers writing overlapping batches wait
# for each other instead of deadlocking.
WRITE_SQL = """
WITH ins AS (
    INSERT INTO envelopes (site_id, boot_id, seq, ts, kind, device_id, historical, data)
    SELECT DISTINCT ON (site_id, boot_id, seq)
           site_id, boot_id, seq, ts, kind, device_id, historical, data->'values'
    FROM fleet_stage ORDER BY site_id, boot_id, seq
    ON CONFLICT DO NOTHING
    RETURNING site_id, boot_id, seq, ts, kind, data
), alarm_rows AS (
    INSERT INTO alarms (site_id, boot_id, seq, ts, active, raised, cleared, safety_state)
    SELECT site_id, boot_id, seq, ts,
           coalesce(string_to_array(nullif(data->>'active', ''), '; '), '{}'),
           coalesce(string_to_array(nullif(data->>'raised', ''), '; '), '{}'),
           coalesce(string_to_array(nullif(data->>'cleared', ''), '; '), '{}'),
           data->>'safety_state'
    FROM ins WHERE kind = 'alarm'
    ON CONFLICT DO NOTHING
    RETURNING site_id, seq, ts, active, safety_state
), alarm_now AS (
    INSERT INTO site_alarms (site_id, seq, ts, active, safety_state)
    SELECT DISTINCT ON (site_id) site_id, seq, ts, active, safety_state
    FROM alarm_rows ORDER BY site_id, ts DESC, seq DESC
    ON CONFLICT (site_id) DO UPDATE SET
        seq = EXCLUDED.seq, ts = EXCLUDED.ts, active = EXCLUDED.active,
        safety_state = EXCLUDED.safety_state
    WHERE (EXCLUDED.ts, EXCLUDED.seq) > (site_alarms.ts, site_alarms.seq)
), command_rows AS (
    INSERT INTO commands (site_id, boot_id, seq, ts, controller, setpoint_w, guard_outcome, data)
    SELECT site_id, boot_id, seq, ts, data->>'controller',
           (data->>'setpoint_w')::double precision, data->>'guard_outcome', data
    FROM ins WHERE kind = 'command'
    ON CONFLICT DO NOTHING
), state AS (
    INSERT INTO site_state (site_id, boot_id, seq, ts, soc_pct, battery_power_w,
                            capacity_kwh, max_charge_w, max_discharge_w, safety_state, mode, data)
    SELECT DISTINCT ON (site_id) site_id, boot_id, seq, ts,
           (data->>'soc_pct')::double precision, (data->>'battery_power_w')::double precision,
           (data->>'capacity_kwh')::double precision, (data->>'max_charge_w')::double precision,
           (data->>'max_discharge_w')::double precision, data->>'safety_state',
           data->>'mode', data
    FROM ins WHERE kind = 'telemetry' ORDER BY site_id, ts DESC, seq DESC
    ON CONFLICT (site_id) DO UPDATE SET
        boot_id = EXCLUDED.boot_id, seq = EXCLUDED.seq, ts = EXCLUDED.ts,
        received_at = now(), soc_pct = EXCLUDED.soc_pct,
        battery_power_w = EXCLUDED.battery_power_w, capacity_kwh = EXCLUDED.capacity_kwh,
        max_charge_w = EXCLUDED.max_charge_w, max_discharge_w = EXCLUDED.max_discharge_w,
        safety_state = EXCLUDED.safety_state, mode = EXCLUDED.mode, data = EXCLUDED.data
    WHERE (EXCLUDED.ts, EXCLUDED.seq) > (site_state.ts, site_state.seq)
)
SELECT count(*) FROM ins
"""

#: SQLSTATEs worth retrying the whole batch for: deadlock, serialization failure.
RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


class FleetDatabaseError(BessaiError):
    """The fleet database cannot be reached or is not at the expected schema."""


@dataclass(frozen=True, slots=True)
class DbOptions:
    """How to reach PostgreSQL."""

    dsn: str
    tls_ca_file: Path | None = None
    min_size: int = 1
    max_size: int = 4
    connect_timeout_s: float = 10.0


def tls_context(ca_file: Path | None) -> ssl.SSLContext | None:
    """Verify the server against `ca_file` (host name included); None: the DSN's sslmode."""
    if ca_file is None:
        return None
    return ssl.create_default_context(cafile=str(ca_file))


def redact(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    if "@" not in dsn or "://" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.execute(STAGE_DDL)


async def open_pool(options: DbOptions) -> asyncpg.Pool:
    """A pool whose connections each have the stage table; a clear error when unreachable."""
    try:
        pool = await asyncpg.create_pool(
            options.dsn,
            min_size=options.min_size,
            max_size=options.max_size,
            ssl=tls_context(options.tls_ca_file),
            timeout=options.connect_timeout_s,
            init=_init_connection,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise FleetDatabaseError(
            f"cannot connect to the fleet database {redact(options.dsn)}: "
            f"{str(exc) or type(exc).__name__}"
        ) from None
    assert pool is not None
    return pool


async def connect(options: DbOptions) -> asyncpg.Connection:
    """One connection (migrations, queries)."""
    try:
        conn: asyncpg.Connection = await asyncpg.connect(
            options.dsn,
            ssl=tls_context(options.tls_ca_file),
            timeout=options.connect_timeout_s,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise FleetDatabaseError(
            f"cannot connect to the fleet database {redact(options.dsn)}: "
            f"{str(exc) or type(exc).__name__}"
        ) from None
    return conn


async def check_schema(conn: asyncpg.Connection) -> None:
    """Refuse to run on a database that `bessai fleet migrate` has not brought up to date."""
    have = await applied_versions(conn)
    want = latest_version()
    if want not in have:
        newest = max(have, default=0)
        raise FleetDatabaseError(
            f"the fleet database is at schema version {newest}, this bessai needs {want}: "
            "run `bessai fleet migrate --config FILE`"
        )


async def write_batch(pool: asyncpg.Pool, rows: Sequence[StageRow]) -> int:
    """Store a batch in one transaction; returns how many envelopes were new (the rest were
    duplicates). Retries a deadlock or serialization failure; other errors propagate."""
    for attempt in range(5):
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.copy_records_to_table("fleet_stage", records=rows, columns=STAGE_COLUMNS)
                new: int = await conn.fetchval(WRITE_SQL)
                return new
        except RETRYABLE:
            log.info("fleet batch retried after a lock conflict", attempt=attempt + 1)
            await asyncio.sleep(0.05 * (attempt + 1))
    async with pool.acquire() as conn, conn.transaction():
        await conn.copy_records_to_table("fleet_stage", records=rows, columns=STAGE_COLUMNS)
        last: int = await conn.fetchval(WRITE_SQL)
        return last


async def fetch_all(pool: asyncpg.Pool, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Rows of a read."""
    async with pool.acquire() as conn:
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        return rows
