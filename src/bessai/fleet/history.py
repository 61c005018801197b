"""Per-site history from the envelopes table, downsampled in the database: the time range is
cut into buckets of `step_s` (date_bin) and each numeric value is averaged per bucket, so a
day of 5-second cycles comes back as a few hundred points."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from bessai.telemetry.envelope import VALUE_NAME_PATTERN

DEFAULT_FIELDS = ("soc_pct", "battery_power_w", "grid_power_w", "pv_power_w")
MAX_POINTS = 2_000
MAX_FIELDS = 8
_NAME_RE = re.compile(VALUE_NAME_PATTERN)


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """One site's values between `start` and `end`, `step_s` per point."""

    site_id: str
    start: datetime
    end: datetime
    step_s: int
    fields: tuple[str, ...]


def plan(
    site_id: str,
    start: datetime | None,
    end: datetime | None,
    step_s: int | None,
    fields: str | None,
    now: datetime,
) -> HistoryQuery:
    """Defaults (the last 24 h, at most 500 points) and checks; ValueError says what is wrong."""
    end = end or now
    start = start or end - timedelta(hours=24)
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end need a time zone (e.g. 2026-01-15T12:00:00Z)")
    if start >= end:
        raise ValueError(f"start {start.isoformat()} is not before end {end.isoformat()}")
    span_s = (end - start).total_seconds()
    if step_s is None:
        step_s = max(1, math.ceil(span_s / 500))
    if span_s / step_s > MAX_POINTS:
        raise ValueError(
            f"{span_s / step_s:.0f} points asked for; at most {MAX_POINTS}: raise step_s"
        )
    names = tuple(f.strip() for f in fields.split(",") if f.strip()) if fields else DEFAULT_FIELDS
    if not names or len(names) > MAX_FIELDS:
        raise ValueError(f"fields: name 1 to {MAX_FIELDS} values, comma-separated")
    for name in names:
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"fields: {name!r} is not a value name (lower snake case)")
    return HistoryQuery(site_id, start, end, step_s, names)


def _sql(n_fields: int) -> str:
    # Field names travel as parameters ($5, $6, ...), never as SQL text; non-numbers are NULL.
    averages = ", ".join(
        f"avg(CASE WHEN jsonb_typeof(data->${i + 5}) = 'number' "
        f"THEN (data->>${i + 5})::double precision END)"
        for i in range(n_fields)
    )
    return f"""
        SELECT date_bin(make_interval(secs => $2), ts, TIMESTAMPTZ '2000-01-01') AS t,
               count(*) AS n, {averages}
        FROM envelopes
        WHERE site_id = $1 AND kind = 'telemetry' AND ts >= $3 AND ts < $4
        GROUP BY 1 ORDER BY 1
    """


async def site_history(
    pool: asyncpg.Pool, q: HistoryQuery
) -> list[tuple[datetime, int, dict[str, float | None]]]:
    """(bucket start, envelopes in it, {field: average}) per bucket that has data."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            _sql(len(q.fields)), q.site_id, float(q.step_s), q.start, q.end, *q.fields
        )
    return [(r[0], int(r[1]), {name: r[i + 2] for i, name in enumerate(q.fields)}) for r in rows]


async def site_known(pool: asyncpg.Pool, site_id: str) -> bool:
    """Whether the fleet has ever heard from the site."""
    async with pool.acquire() as conn:
        found: bool = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM site_state WHERE site_id = $1)", site_id
        )
        return found
