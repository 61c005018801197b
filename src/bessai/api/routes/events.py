"""The live stream: server-sent events after each cycle (the dashboard reads it with fetch)."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from bessai.api.deps import READ, ApiContext, AuthFirstRoute, Ctx
from bessai.api.responses import KEYED, problem
from bessai.api.views import alert_out, site_status

STREAM_MIN_INTERVAL_S = 0.5
STREAM_KEEPALIVE_S = 15.0

router = APIRouter(route_class=AuthFirstRoute, responses=KEYED, dependencies=[READ])


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "server-sent events"},
        503: problem("too many live streams, or the API keys file is damaged"),
    },
)
async def get_events(request: Request, ctx: Ctx) -> StreamingResponse:
    """Server-sent events: a `status` event (every site, active alerts) after each cycle,
    at most every 0.5 s; a comment every 15 s keeps proxies from closing the stream."""
    if ctx.open_streams >= ctx.config.max_streams:
        raise HTTPException(503, f"{ctx.config.max_streams} live streams already open")
    return StreamingResponse(
        _stream(request, ctx),
        media_type="text/event-stream",
        headers={"X-Accel-Buffering": "no"},  # no-store comes with every /api/ answer
    )


def _status_event(ctx: ApiContext) -> str:
    now = datetime.now(UTC)
    payload = {
        "sites": [site_status(s, now).model_dump(mode="json") for s in ctx.gateway.sites.values()],
        "alerts": [alert_out(a).model_dump(mode="json") for a in ctx.monitor.alerts.active()],
    }
    return f"event: status\ndata: {json.dumps(payload)}\n\n"


async def _stream(request: Request, ctx: ApiContext) -> AsyncIterator[str]:
    # Counted inside the generator, so the count drops exactly when the stream ends.
    ctx.open_streams += 1
    stop = ctx.gateway.stop_event
    try:
        yield "retry: 2000\n\n"
        while not stop.is_set():
            sent = ctx.hub.generation
            yield _status_event(ctx)
            await asyncio.sleep(STREAM_MIN_INTERVAL_S)
            # Wait for a cycle after the one just sent (one that ended during the pause
            # counts), in short steps, so a stopping gateway or a gone client ends the stream
            # within a second.
            quiet_s = 0.0
            while not await ctx.hub.wait(sent, 1.0):
                if stop.is_set() or await request.is_disconnected():
                    return
                quiet_s += 1.0
                if quiet_s >= STREAM_KEEPALIVE_S:
                    yield ": keepalive\n\n"
                    quiet_s = 0.0
            if await request.is_disconnected():
                return
    finally:
        ctx.open_streams -= 1
