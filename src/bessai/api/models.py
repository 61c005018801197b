"""Request and response bodies of /api/v1: what the OpenAPI spec publishes and what the
dashboard and integrators read. Units are in the names; battery power > 0 is charging, grid
power > 0 is importing. A field the gateway has no value for is null; a feature the gateway
does not have (anomaly score, forecast) is absent."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["read", "control", "admin"]
OutcomeName = Literal["allowed", "clamped", "blocked"]
ModeName = Literal["auto", "manual", "safe"]
SeverityName = Literal["info", "warning", "critical"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Version(_Out):
    version: str
    api: str = "v1"


class Me(_Out):
    name: str
    role: Role


class Safety(_Out):
    state: Literal["normal", "limited", "safe"]
    reasons: list[str]


class ActiveController(_Out):
    name: str
    reason: str
    requested_w: float


class Decision(_Out):
    outcome: OutcomeName
    setpoint_w: float
    reason: str
    binding_limit: str | None = None


class OverrideState(_Out):
    setpoint_w: float
    until_utc: datetime


class SecurityStatus(_Out):
    """The security monitor of a site (docs/security-monitor.md)."""

    learning: bool = Field(description="true until the learned checks are armed")
    learned_cycles: int
    anomaly_score: float | None = Field(default=None, description="higher = stranger")
    threshold: float | None = Field(default=None, description="from the false-alarm budget")
    suspect: list[str] = Field(default_factory=list, description="readings kept from the plan")
    alerts_by_kind: dict[str, int] = Field(default_factory=dict)
    tolerances: dict[str, float] | None = None
    recent: list[dict[str, Any]] = Field(
        default_factory=list, description="the last alerts: cycle, ts, kind, check, evidence"
    )


class SiteStatus(_Out):
    site: str
    name: str
    timezone: str = Field(description="the site's IANA zone (configuration `timezone`)")
    capacity_kwh: float
    mode: ModeName
    override: OverrideState | None = None
    cycle: int | None = None
    ts_utc: datetime | None = None
    data_age_s: float | None = None
    device_connected: bool | None = None
    soc_pct: float | None = None
    battery_power_w: float | None = None
    pv_power_w: float | None = None
    grid_power_w: float | None = None
    load_power_w: float | None = None
    battery_temp_c: float | None = None
    alarms: list[str] = Field(default_factory=list)
    safety: Safety | None = None
    controller: ActiveController | None = None
    decision: Decision | None = None
    security: SecurityStatus | None = None


class StatusList(_Out):
    sites: list[SiteStatus]


class Fleet(_Out):
    sites: int
    sites_safe: int
    capacity_kwh: float
    weighted_soc_pct: float | None
    available_charge_w: float
    available_discharge_w: float
    alarms: dict[str, list[str]]


class ScheduleSlot(_Out):
    start_utc: datetime
    end_utc: datetime
    setpoint_w: float = Field(description="> 0 charge, < 0 discharge")
    action: str
    reason: str
    price: float = Field(description="the price the plan was optimised on (price_unit)")
    soc_pct: float = Field(description="planned SOC at the end of the slot")
    active: bool


class ForecastBand(_Out):
    start_utc: datetime
    p10: float
    p50: float
    p90: float


class Schedule(_Out):
    site: str
    following: bool = Field(description="the schedule controller follows the plan now")
    why: str = Field(description="the current slot's reason, or why the plan does not apply")
    max_age_s: float
    created_utc: datetime | None = None
    status: str | None = None
    revenue: float | None = None
    net_revenue: float | None = None
    price_unit: str | None = None
    forecaster: str | None = Field(
        default=None, description="the forecaster the plan was made on (the configured one, or "
        "optimizer.fallback_forecaster)",
    )  # fmt: skip
    forecaster_note: str | None = Field(
        default=None, description="why the plan is on the fallback forecaster (none: it is not)"
    )
    slots: list[ScheduleSlot]
    forecast: list[ForecastBand] | None = None


class AlertOut(_Out):
    id: int
    site: str | None
    kind: str
    subject: str
    severity: SeverityName
    message: str
    first_utc: datetime
    last_utc: datetime
    count: int
    active: bool
    resolved_utc: datetime | None


class Alerts(_Out):
    active: list[AlertOut]
    recent: list[AlertOut]


class AuditRow(_Out):
    id: int
    ts: datetime
    site: str
    controller: str
    reason: str
    requested_w: float
    setpoint_w: float
    outcome: str
    guard_reason: str
    binding_limit: str | None
    writes: list[dict[str, Any]]
    verified: bool
    error: str | None


class AuditPage(_Out):
    items: list[AuditRow]
    limit: int
    offset: int
    next_offset: int | None


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    setpoint_w: float = Field(
        ge=-1e8, le=1e8, allow_inf_nan=False, description="> 0 charge, < 0 discharge, 0 stop"
    )
    duration_s: float | None = Field(
        default=None,
        gt=0,
        le=86_400,
        allow_inf_nan=False,
        description="default controllers.manual_override_default_s",
    )
    reason: str = Field(default="", max_length=200)


class OverrideResult(_Out):
    site: str
    applied: bool
    outcome: OutcomeName
    requested_w: float
    setpoint_w: float
    reason: str
    binding_limit: str | None = None
    until_utc: datetime | None = None
    mode: ModeName


class Cleared(_Out):
    site: str
    cleared: bool


class ModeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: ModeName


class ModeOut(_Out):
    site: str
    mode: ModeName
    previous: ModeName


class Problem(_Out):
    detail: str


class VppEvent(BaseModel):
    """One interval of an OpenADR event in force at a site."""

    event_id: str
    name: str | None
    program_id: str
    interval_id: int
    start: datetime
    end: datetime
    payloads: dict[str, list[Any]]


class VppReport(BaseModel):
    """A report of one event: how many intervals, sent or waiting for the VTN."""

    event_id: str
    report_id: str | None
    sent: bool
    intervals: int
    last: dict[str, Any] | None


class VppSite(BaseModel):
    """One site's VEN."""

    site_id: str
    ven_name: str
    vtn_url: str
    vtn_up: bool
    last_poll: str | None
    last_error: str | None
    ven_id: str | None
    events_received: int
    reports_sent: int
    active_events: list[VppEvent]
    opted_out: list[str]
    import_max_w: float | None
    export_max_w: float | None
    flex_up_kw: float | None
    flex_down_kw: float | None
    last_reports: list[VppReport]


class VppView(BaseModel):
    """The sites that run an OpenADR VEN."""

    sites: list[VppSite]
