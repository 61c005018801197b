"""The fleet API's answers, as published in its OpenAPI spec."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class FleetSite(_Out):
    """One site as the fleet last heard it."""

    site_id: str
    last_seen: datetime = Field(description="source time of the newest telemetry envelope")
    age_s: float = Field(description="seconds since last_seen")
    stale: bool = Field(description="not heard from within fleet.stale_after_s")
    boot_id: str
    seq: int
    soc_pct: float | None
    battery_power_w: float | None = Field(description="> 0 charging")
    capacity_kwh: float | None
    safety_state: str | None = Field(description="normal, limited or safe")
    mode: str | None
    alarms: list[str] = Field(description="active alarms and safety conditions")
    charge_flex_kw: float
    charge_flex_kwh: float
    discharge_flex_kw: float
    discharge_flex_kwh: float


class FleetTotalsOut(_Out):
    """Totals over the online sites (stale ones count only in `sites` and `sites_stale`)."""

    sites: int
    sites_online: int
    sites_stale: int
    sites_safe: int = Field(description="online sites in SAFE (no dispatch)")
    sites_alarmed: int
    capacity_kwh: float
    soc_pct: float | None = Field(description="capacity-weighted state of charge")
    charge_flex_kw: float = Field(description="charge power the fleet can hold over the horizon")
    charge_flex_kwh: float
    discharge_flex_kw: float
    discharge_flex_kwh: float
    horizon_h: float


class Fleet(_Out):
    """`GET /api/v1/fleet`."""

    at: datetime
    stale_after_s: float
    totals: FleetTotalsOut
    sites: list[FleetSite]


class HistoryPoint(BaseModel):
    """One time bucket: its start, how many envelopes it averages, and the averages."""

    t: datetime
    n: int
    values: dict[str, float | None]


class SiteHistory(BaseModel):
    """`GET /api/v1/fleet/sites/{site_id}/history`."""

    site_id: str
    start: datetime
    end: datetime
    step_s: int
    fields: list[str]
    points: list[HistoryPoint]


class FleetHealth(BaseModel):
    """`GET /health` of the fleet service."""

    status: str
    database: bool
    nats: bool
    lag_messages: int | None
    written_total: int
    duplicates_total: int
    rejected_total: int
