"""The gateway's HTTP server: the versioned API under /api/v1 (OpenAPI at
/api/v1/openapi.json), the dashboard at /, and /health and /metrics for supervisors and
scrapers.

Control routes never touch a device: an override becomes the site's manual override, which the
next cycle passes through the same SafetyGuard as every other request. The answer the caller
gets is that guard's verdict on the latest measurements, so "clamped to 5000 W because of
battery.max_charge_w" is what the device will be asked for, not a promise the cycle may break.
"""

# No `from __future__ import annotations` here: the routes' Annotated[...] parameters name
# objects local to create_app (dependencies, the configured page cap), which FastAPI can only
# resolve when annotations are evaluated where the routes are defined.

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bessai import __version__
from bessai.api import models
from bessai.api.carbon import carbon_router
from bessai.api.history import history_router
from bessai.api.keys import KeyStore, Principal, Role
from bessai.api.security import Authorizer, BodyLimit, SecurityHeaders
from bessai.config import Config, is_loopback
from bessai.control.audit import AuditRecord
from bessai.control.planner import SchedulePlanner
from bessai.control.safety import GuardDecision, Outcome
from bessai.control.site import SiteMode, SiteRunner
from bessai.errors import ConfigError
from bessai.observe.alerts import Alert
from bessai.observe.health import health
from bessai.observe.history import RecentHistory
from bessai.observe.monitor import Monitor
from bessai.optimize import Bands
from bessai.optimize.follow import current_slot

log = structlog.get_logger("bessai.api")

STATIC_DIR = Path(str(files("bessai.api").joinpath("static")))
STREAM_MIN_INTERVAL_S = 0.5
STREAM_KEEPALIVE_S = 15.0


def check_bind(config: Config, host: str) -> None:
    """Refuse to serve a key-less API on anything but loopback, whatever set the host."""
    if config.api.dev_mode and not is_loopback(host):
        raise ConfigError(
            f"api.dev_mode serves the API without keys; it binds to loopback only, "
            f"not {host!r}. Turn dev_mode off and add keys with `bessai keys add`."
        )


class EventHub:
    """Wakes the live streams when any site finishes a cycle or an alert changes."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self, *_: object) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout=timeout_s)
            return True
        return False


# -- views of the gateway's state ---------------------------------------------------------------


def site_status(site: SiteRunner, now: datetime) -> models.SiteStatus:
    until = site.override.until
    setpoint = site.override.setpoint_w
    override = (
        models.OverrideState(setpoint_w=setpoint, until_utc=until)
        if until is not None and setpoint is not None and until > now
        else None
    )
    status = models.SiteStatus(
        site=site.id,
        name=site.config.name,
        timezone=site.config.timezone,
        capacity_kwh=site.config.battery.capacity_kwh,
        mode=site.mode.value,
        override=override,
    )
    record = site.last
    if record is None:
        return status
    m = record.measurements
    status.cycle = record.cycle
    status.ts_utc = record.ts
    status.data_age_s = None if record.data_age_s is None else round(record.data_age_s, 3)
    status.device_connected = record.device_connected
    status.soc_pct = m.soc_pct
    status.battery_power_w = m.battery_power_w
    status.pv_power_w = m.pv_power_w
    status.grid_power_w = m.grid_power_w
    status.load_power_w = m.load_power_w
    status.battery_temp_c = m.battery_temp_c
    status.alarms = list(m.alarms)
    status.safety = models.Safety(
        state=record.safety_state.value, reasons=list(record.safety_reasons)
    )
    status.controller = models.ActiveController(
        name=record.proposal.controller,
        reason=record.proposal.reason,
        requested_w=record.proposal.setpoint_w,
    )
    d = record.decision
    status.decision = models.Decision(
        outcome=d.outcome.value, setpoint_w=d.setpoint_w, reason=d.reason,
        binding_limit=d.binding_limit,
    )  # fmt: skip
    return status


def alert_out(alert: Alert) -> models.AlertOut:
    return models.AlertOut.model_validate(alert.to_json())


def schedule_view(
    site: SiteRunner, now: datetime, planner: SchedulePlanner | None
) -> models.Schedule:
    ctl = site.schedule
    plan, plan_start = ctl.schedule, ctl.plan_start
    view = models.Schedule(
        site=site.id,
        following=False,
        why="no plan: the optimizer is not enabled for this site or has not planned yet",
        max_age_s=ctl.max_age.total_seconds(),
        slots=[],
    )
    if plan is None or plan_start is None:
        return view
    index, why = current_slot(plan, plan_start, now, max_age=ctl.max_age, created_at=ctl.created_at)
    view.following = index is not None
    view.why = why
    view.created_utc = ctl.created_at
    view.status = plan.status
    view.revenue = round(plan.revenue, 4)
    view.net_revenue = round(plan.net_revenue, 4)
    if planner is not None:
        view.price_unit = planner.prices.unit
    step = timedelta(hours=plan.step_h)
    net_kw = plan.net_kw
    view.slots = [
        models.ScheduleSlot(
            start_utc=plan_start + i * step,
            end_utc=plan_start + (i + 1) * step,
            setpoint_w=round(float(net_kw[i]) * 1000.0, 3),
            action=plan.actions[i],
            reason=plan.reasons[i],
            price=float(plan.prices[i]),
            soc_pct=round(float(plan.soc_pct[i]), 3),
            active=i == index,
        )
        for i in range(len(plan))
    ]
    # A probabilistic forecaster hangs its quantile bands (one per plan step) on the
    # controller beside the plan; point forecasts have none, and then there is no field.
    bands = getattr(ctl, "bands", None)
    if isinstance(bands, Bands) and len(bands.p50) == len(plan):
        view.forecast = [
            models.ForecastBand(
                start_utc=plan_start + i * step,
                p10=float(bands.p10[i]),
                p50=float(bands.p50[i]),
                p90=float(bands.p90[i]),
            )
            for i in range(len(plan))
        ]
    return view


def _unknown_site(site_id: str, known: Iterable[str]) -> HTTPException:
    return HTTPException(404, f"unknown site {site_id!r}; sites: {', '.join(sorted(known))}")


# -- the app ------------------------------------------------------------------------------------


def create_app(monitor: Monitor) -> FastAPI:
    gateway = monitor.gateway
    config = gateway.config
    api_cfg = config.api
    store = KeyStore(config.keys_file)
    auth = Authorizer(api_cfg, store)
    hub = EventHub()
    history = RecentHistory({s.id: s.config.cycle_s for s in gateway.sites.values()})
    for runner in gateway.sites.values():
        runner.listeners.append(hub.notify)
        runner.listeners.append(history.observe)
    monitor.alerts.listeners.append(hub.notify)
    streams = {"open": 0}

    app = FastAPI(
        title="open-bess-edge gateway",
        version=__version__,
        description=(
            "Status, alerts, audit and control of the sites this gateway runs. Every route "
            "needs an API key in a header (read, control or admin role); every control request "
            "passes the site's SafetyGuard."
        ),
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.keys = store
    app.state.auth = auth
    app.state.hub = hub

    reader = Depends(auth.require(Role.READ))
    controller = Depends(auth.require(Role.CONTROL))
    problems: dict[int | str, dict[str, Any]] = {
        401: {"model": models.Problem, "description": "no or unknown API key"},
        403: {"model": models.Problem, "description": "the key's role is too low"},
        429: {"model": models.Problem, "description": "too many failed authentications"},
    }
    api = APIRouter(prefix="/api/v1", responses=problems)

    def site_of(site_id: str) -> SiteRunner:
        site = gateway.sites.get(site_id)
        if site is None:
            raise _unknown_site(site_id, gateway.sites)
        return site

    not_found: dict[int | str, dict[str, Any]] = {
        404: {"model": models.Problem, "description": "unknown site"}
    }

    @api.get("/version", response_model=models.Version, dependencies=[reader])
    async def get_version() -> models.Version:
        return models.Version(version=__version__)

    @api.get("/me", response_model=models.Me)
    async def get_me(who: Annotated[Principal, reader]) -> models.Me:
        """The calling key's name and role (what the dashboard shows after login)."""
        return models.Me(name=who.name, role=who.role.value)

    @api.get("/health", dependencies=[reader])
    async def get_api_health() -> dict[str, Any]:
        """The health report. Always 200: a degraded gateway is a fact to read here, not a
        failed request; probes that want the verdict in the status code use /health."""
        return health(monitor)[1]

    @api.get("/status", response_model=models.StatusList, dependencies=[reader])
    async def get_status() -> models.StatusList:
        now = datetime.now(UTC)
        return models.StatusList(sites=[site_status(s, now) for s in gateway.sites.values()])

    @api.get(
        "/sites/{site_id}/status",
        response_model=models.SiteStatus,
        dependencies=[reader],
        responses=not_found,
    )
    async def get_site_status(site_id: str) -> models.SiteStatus:
        return site_status(site_of(site_id), datetime.now(UTC))

    @api.get("/fleet", response_model=models.Fleet, dependencies=[reader])
    async def get_fleet() -> models.Fleet:
        view = gateway.fleet()
        return models.Fleet(
            sites=view.sites,
            sites_safe=view.sites_safe,
            capacity_kwh=view.capacity_kwh,
            weighted_soc_pct=view.weighted_soc_pct,
            available_charge_w=view.available_charge_w,
            available_discharge_w=view.available_discharge_w,
            alarms={k: list(v) for k, v in view.alarms.items()},
        )

    @api.get(
        "/sites/{site_id}/schedule",
        response_model=models.Schedule,
        response_model_exclude_none=True,
        dependencies=[reader],
        responses=not_found,
    )
    async def get_schedule(site_id: str) -> models.Schedule:
        return schedule_view(site_of(site_id), datetime.now(UTC), gateway.planners.get(site_id))

    @api.get("/alerts", response_model=models.Alerts, dependencies=[reader])
    async def get_alerts(
        site: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=api_cfg.max_page_size)] = 50,
    ) -> models.Alerts:
        manager = monitor.alerts
        return models.Alerts(
            active=[alert_out(a) for a in manager.active(site)],
            recent=[alert_out(a) for a in manager.recent(limit, site)],
        )

    @api.get("/audit", response_model=models.AuditPage, dependencies=[reader])
    async def get_audit(
        site: Annotated[str | None, Query(max_length=64)] = None,
        outcome: models.OutcomeName | None = None,
        since: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=api_cfg.max_page_size)] = 50,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> models.AuditPage:
        if since is not None:
            # The audit stores UTC ISO text and compares it as text: a bare time means UTC,
            # any other offset is converted.
            since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
        rows = await asyncio.to_thread(gateway.audit.query, site, limit + 1, offset, since, outcome)
        more = len(rows) > limit
        return models.AuditPage(
            items=[models.AuditRow.model_validate(r) for r in rows[:limit]],
            limit=limit,
            offset=offset,
            next_offset=offset + limit if more else None,
        )

    @api.get(
        "/events",
        dependencies=[reader],
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "server-sent events"},
            503: {"model": models.Problem, "description": "too many live streams"},
        },
    )
    async def get_events(request: Request) -> StreamingResponse:
        """Server-sent events: a `status` event (every site, active alerts) after each cycle,
        at most every 0.5 s; a comment every 15 s keeps proxies from closing the stream."""
        if streams["open"] >= api_cfg.max_streams:
            raise HTTPException(503, f"{api_cfg.max_streams} live streams already open")
        return StreamingResponse(
            _stream(request),
            media_type="text/event-stream",
            headers={"X-Accel-Buffering": "no"},  # no-store comes with every /api/ answer
        )

    async def _stream(request: Request) -> AsyncIterator[str]:
        # Counted inside the generator, so the count drops exactly when the stream ends.
        streams["open"] += 1
        try:
            yield "retry: 2000\n\n"
            while not gateway.stop_event.is_set():
                now = datetime.now(UTC)
                payload = {
                    "sites": [
                        site_status(s, now).model_dump(mode="json")
                        for s in gateway.sites.values()
                    ],
                    "alerts": [alert_out(a).model_dump(mode="json")
                               for a in monitor.alerts.active()],
                }  # fmt: skip
                yield f"event: status\ndata: {json.dumps(payload)}\n\n"
                await asyncio.sleep(STREAM_MIN_INTERVAL_S)
                # Wait for the next cycle in short steps, so a stopping gateway (no more
                # cycles) or a gone client ends the stream within a second.
                quiet_s = 0.0
                while not await hub.wait(1.0):
                    if gateway.stop_event.is_set() or await request.is_disconnected():
                        return
                    quiet_s += 1.0
                    if quiet_s >= STREAM_KEEPALIVE_S:
                        yield ": keepalive\n\n"
                        quiet_s = 0.0
                if await request.is_disconnected():
                    return
        finally:
            streams["open"] -= 1

    # -- control ------------------------------------------------------------------------------

    async def audit_action(
        site: SiteRunner, who: Principal, reason: str, decision: GuardDecision
    ) -> None:
        record = AuditRecord(
            ts=datetime.now(UTC),
            site=site.id,
            controller="api",
            reason=f"{reason} (key '{who.name}')",
            requested_w=decision.requested_w,
            setpoint_w=decision.setpoint_w,
            outcome=decision.outcome.value,
            guard_reason=decision.reason,
            binding_limit=decision.binding_limit,
            writes=[],
            verified=True,
        )
        await asyncio.to_thread(gateway.audit.append, record)
        log.info("control action", site=site.id, key=who.name, action=reason,
                 outcome=decision.outcome.value)  # fmt: skip

    @api.post(
        "/sites/{site_id}/override",
        response_model=models.OverrideResult,
        responses={
            **not_found,
            409: {"model": models.OverrideResult, "description": "blocked by the guard"},
            413: {"model": models.Problem, "description": "body too large"},
        },
    )
    async def post_override(
        site_id: str, body: models.OverrideIn, who: Annotated[Principal, controller]
    ) -> JSONResponse:
        """Set a manual setpoint that expires by itself. The guard's verdict on the latest
        measurements comes back (allowed, clamped with the binding limit, or blocked with the
        reason); a blocked request is not installed (409). What is installed is the guarded
        setpoint, and the cycle passes it through the guard again before any write."""
        site = site_of(site_id)
        limit_s = site.override.max_s
        duration_s = site.override.default_s if body.duration_s is None else body.duration_s
        if duration_s > limit_s:
            # The same shape as every other validation error, so clients parse one format.
            raise RequestValidationError(
                [
                    {
                        "type": "less_than_equal",
                        "loc": ("body", "duration_s"),
                        "msg": f"duration_s {duration_s:g} exceeds "
                        f"controllers.manual_override_max_s ({limit_s:g} s) of site {site.id!r}",
                        "input": duration_s,
                        "ctx": {"le": limit_s},
                    }
                ]
            )
        requested = body.setpoint_w
        # The same verdict the cycle asks before every write, on the latest measurements.
        decision = site.verdict(requested)
        action = f"override {requested:g} W for {duration_s:g} s" + (
            f": {body.reason}" if body.reason else ""
        )
        until = None
        if decision.outcome is not Outcome.BLOCKED:
            until = await site.install_override(
                decision.setpoint_w,
                duration_s,
                f"{body.reason or 'manual override'} (by {who.name})",
            )
        await audit_action(site, who, action, decision)
        result = models.OverrideResult(
            site=site.id,
            applied=until is not None,
            outcome=decision.outcome.value,
            requested_w=requested,
            setpoint_w=decision.setpoint_w,
            reason=decision.reason,
            binding_limit=decision.binding_limit,
            until_utc=until,
            mode=site.mode.value,
        )
        return JSONResponse(
            result.model_dump(mode="json"), status_code=409 if until is None else 200
        )

    @api.delete("/sites/{site_id}/override", response_model=models.Cleared, responses=not_found)
    async def delete_override(
        site_id: str, who: Annotated[Principal, controller]
    ) -> models.Cleared:
        site = site_of(site_id)
        had = await site.clear_override()
        note = GuardDecision(0, 0, Outcome.ALLOWED, "clearing an override only removes a request")
        await audit_action(site, who, "override cleared", note)
        return models.Cleared(site=site.id, cleared=had)

    @api.post("/sites/{site_id}/mode", response_model=models.ModeOut, responses=not_found)
    async def post_mode(
        site_id: str, body: models.ModeIn, who: Annotated[Principal, controller]
    ) -> models.ModeOut:
        """auto: the controllers decide; manual: only the manual override dispatches; safe:
        dispatch stops until the mode is changed back."""
        site = site_of(site_id)
        previous = await site.set_mode(SiteMode(body.mode))
        note = GuardDecision(0.0, 0.0, Outcome.ALLOWED, "a mode change writes nothing itself")
        await audit_action(site, who, f"mode {previous.value} -> {site.mode.value}", note)
        return models.ModeOut(site=site.id, mode=site.mode.value, previous=previous.value)

    api.include_router(history_router(gateway, history, reader))
    api.include_router(carbon_router(monitor, reader))
    app.include_router(api)

    # -- outside the API: supervisors, scrapers and the dashboard -------------------------------

    @app.get("/health", include_in_schema=False)
    def get_health() -> JSONResponse:
        healthy, body = health(monitor)
        return JSONResponse(body, status_code=200 if healthy else 503)

    metrics_deps = [] if api_cfg.public_metrics else [reader]

    @app.get("/metrics", include_in_schema=False, dependencies=metrics_deps)
    def get_metrics() -> Response:
        return Response(generate_latest(monitor.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def get_dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    if api_cfg.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=api_cfg.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
            max_age=600,
        )
    app.add_middleware(BodyLimit, max_bytes=api_cfg.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app
