"""The command audit: what was asked, what the guard said, what was written."""

import asyncio
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from bessai.api import models
from bessai.api.deps import READ, AuthFirstRoute, Ctx, PageLimit
from bessai.api.responses import KEYED

router = APIRouter(route_class=AuthFirstRoute, responses=KEYED, dependencies=[READ])


@router.get("/audit", response_model=models.AuditPage)
async def get_audit(
    ctx: Ctx,
    limit: PageLimit,
    site: Annotated[str | None, Query(max_length=64)] = None,
    outcome: models.OutcomeName | None = None,
    since: datetime | None = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> models.AuditPage:
    """Audit log entries (every command and its verdict), newest first."""
    if since is not None:
        # The audit stores UTC ISO text and compares it as text: a bare time means UTC,
        # any other offset is converted.
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
    audit = ctx.gateway.audit
    rows = await asyncio.to_thread(audit.query, site, limit + 1, offset, since, outcome)
    more = len(rows) > limit
    return models.AuditPage(
        items=[models.AuditRow.model_validate(r) for r in rows[:limit]],
        limit=limit,
        offset=offset,
        next_offset=offset + limit if more else None,
    )
