"""The batch writer against a real PostgreSQL: duplicates skipped, newest state kept, alarm
and command rows derived, migrations idempotent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from bessai.fleet.migrations import migrate
from bessai.fleet.rows import BadEnvelopeError, parse_envelope
from bessai.fleet.store import DbOptions, FleetDatabaseError, check_schema, open_pool, write_batch

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def envelope(
    site: str, seq: int, *, kind: str = "telemetry", boot: str = "b1", **values: object
) -> bytes:
    return json.dumps(
        {
            "schema_version": 1,
            "site_id": site,
            "device_id": None,
            "boot_id": boot,
            "seq": seq,
            "ts": (T0 + timedelta(seconds=seq)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "historical": False,
            "kind": kind,
            "values": values,
        }
    ).encode()


async def test_write_is_idempotent_and_keeps_newest_state(fleet_dsn: str) -> None:
    conn = await asyncpg.connect(fleet_dsn)
    assert [m.version for m in await migrate(conn)] == [1]
    assert await migrate(conn) == []
    await check_schema(conn)
    pool = await open_pool(DbOptions(fleet_dsn))
    try:
        first = [
            parse_envelope(envelope("a", s, soc_pct=50.0 + s, capacity_kwh=15.0)) for s in range(5)
        ]
        assert await write_batch(pool, first) == 5
        # A replay with two new ones and an older state in the same batch.
        again = first[2:] + [parse_envelope(envelope("a", s, soc_pct=50.0 + s)) for s in (5, 6)]
        assert await write_batch(pool, again + again) == 2
        alarm = parse_envelope(
            envelope(
                "a",
                7,
                kind="alarm",
                active="Overtemperature; Grid Loss",
                raised="Grid Loss",
                cleared="",
                safety_state="safe",
            )
        )
        cmd = parse_envelope(
            envelope("a", 8, kind="command", controller="manual", setpoint_w=1000.0)
        )
        assert await write_batch(pool, [alarm, cmd, alarm]) == 2
        assert await conn.fetchval("SELECT count(*) FROM envelopes") == 9
        state = await conn.fetchrow("SELECT seq, soc_pct FROM site_state WHERE site_id = 'a'")
        assert (state["seq"], state["soc_pct"]) == (6, 56.0)
        # An old envelope arriving late does not roll the state back.
        assert (
            await write_batch(pool, [parse_envelope(envelope("a", 1, boot="b0", soc_pct=1.0))]) == 1
        )
        assert await conn.fetchval("SELECT soc_pct FROM site_state") == 56.0
        row = await conn.fetchrow("SELECT active, raised, cleared FROM alarms")
        assert row["active"] == ["Overtemperature", "Grid Loss"]
        assert row["raised"] == ["Grid Loss"]
        assert row["cleared"] == []
        assert await conn.fetchval("SELECT active FROM site_alarms") == [
            "Overtemperature",
            "Grid Loss",
        ]
        assert await conn.fetchval("SELECT setpoint_w FROM commands") == 1000.0
    finally:
        await pool.close()
        await conn.close()


async def test_unmigrated_database_is_refused(fleet_dsn: str) -> None:
    conn = await asyncpg.connect(fleet_dsn)
    try:
        with pytest.raises(FleetDatabaseError, match="fleet migrate"):
            await check_schema(conn)
    finally:
        await conn.close()


async def test_unreachable_database_is_one_line() -> None:
    with pytest.raises(
        FleetDatabaseError,
        match=r"cannot connect to the fleet database postgresql://u@127\.0\.0\.1:1/x",
    ):
        await open_pool(DbOptions("postgresql://u:secret@127.0.0.1:1/x", connect_timeout_s=2))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (envelope("a", 1).replace(b'"seq": 1', b'"seq": -1'), "seq"),
        (envelope("a/b", 1), "site_id"),
        (envelope("a", 1).replace(b'"telemetry"', b'"other"'), "kind"),
        (envelope("a", 1).replace(b'Z"', b'"'), "time zone"),
        (envelope("a", 1, soc_pct=float("nan")), "NaN"),
    ],
)
def test_bad_envelopes_are_named(body: bytes, problem: str) -> None:
    with pytest.raises(BadEnvelopeError, match=problem):
        parse_envelope(body)
