"""The fleet database schema, as numbered migrations applied in order under an advisory lock
(several `fleet serve` processes may start at once; one migrates, the others wait).

Envelopes are keyed by (site_id, boot_id, seq): a redelivered or replayed envelope is a
conflict and is skipped, so the tables hold each envelope exactly once. `site_state` and
`site_alarms` hold the newest state per site (newest by source time, then seq); `alarms` and
`commands` are the alarm and command envelopes as rows, for operators and analysts.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import structlog

log = structlog.get_logger("bessai.fleet")

#: pg_advisory_lock key of the migrations ("bessaimg" as a number)
LOCK_KEY = 0x626573736169_6D67


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: applied once, in version order, in one transaction."""

    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "envelopes, latest state, alarms, commands",
        """
        CREATE TABLE envelopes (
            site_id     text        NOT NULL,
            boot_id     text        NOT NULL,
            seq         bigint      NOT NULL,
            ts          timestamptz NOT NULL,
            kind        text        NOT NULL,
            device_id   text,
            historical  boolean     NOT NULL,
            data        jsonb       NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (site_id, boot_id, seq)
        );
        CREATE INDEX envelopes_site_ts ON envelopes (site_id, ts);
        -- Rows arrive roughly in time order: a BRIN index answers time ranges for a few pages.
        CREATE INDEX envelopes_ts_brin ON envelopes USING brin (ts);

        CREATE TABLE site_state (
            site_id         text PRIMARY KEY,
            boot_id         text        NOT NULL,
            seq             bigint      NOT NULL,
            ts              timestamptz NOT NULL,
            received_at     timestamptz NOT NULL DEFAULT now(),
            soc_pct         double precision,
            battery_power_w double precision,
            capacity_kwh    double precision,
            max_charge_w    double precision,
            max_discharge_w double precision,
            safety_state    text,
            mode            text,
            data            jsonb       NOT NULL
        );

        CREATE TABLE site_alarms (
            site_id      text PRIMARY KEY,
            seq          bigint      NOT NULL,
            ts           timestamptz NOT NULL,
            active       text[]      NOT NULL,
            safety_state text
        );

        CREATE TABLE alarms (
            site_id      text        NOT NULL,
            boot_id      text        NOT NULL,
            seq          bigint      NOT NULL,
            ts           timestamptz NOT NULL,
            active       text[]      NOT NULL,
            raised       text[]      NOT NULL,
            cleared      text[]      NOT NULL,
            safety_state text,
            PRIMARY KEY (site_id, boot_id, seq)
        );
        CREATE INDEX alarms_ts ON alarms (ts);

        CREATE TABLE commands (
            site_id      text        NOT NULL,
            boot_id      text        NOT NULL,
            seq          bigint      NOT NULL,
            ts           timestamptz NOT NULL,
            controller   text,
            setpoint_w   double precision,
            guard_outcome text,
            data         jsonb       NOT NULL,
            PRIMARY KEY (site_id, boot_id, seq)
        );
        CREATE INDEX commands_ts ON commands (ts);
        """,
    ),
)

SCHEMA_TABLE = """
CREATE TABLE IF NOT EXISTS fleet_schema (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def applied_versions(conn: asyncpg.Connection) -> set[int]:
    """The versions already in the database (none when it was never migrated)."""
    exists = await conn.fetchval("SELECT to_regclass('fleet_schema') IS NOT NULL")
    if not exists:
        return set()
    return {int(r["version"]) for r in await conn.fetch("SELECT version FROM fleet_schema")}


async def migrate(conn: asyncpg.Connection) -> list[Migration]:
    """Apply what is missing; returns the migrations applied now (empty when up to date)."""
    done: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(SCHEMA_TABLE)
        have = await applied_versions(conn)
        for step in MIGRATIONS:
            if step.version in have:
                continue
            async with conn.transaction():
                await conn.execute(step.sql)
                await conn.execute(
                    "INSERT INTO fleet_schema (version, name) VALUES ($1, $2)",
                    step.version,
                    step.name,
                )
            log.info("fleet migration applied", version=step.version, name=step.name)
            done.append(step)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return done


def latest_version() -> int:
    """The schema version this code expects."""
    return MIGRATIONS[-1].version
