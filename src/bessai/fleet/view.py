"""The fleet view: every site's newest state with its online/stale flag and active alarms,
and the fleet totals, computed from the database's latest-state tables. The API, the
dashboard page, `bessai fleet status` and the metrics all use this one function.

Flexibility over the horizon (default one hour) is what a site can still absorb or give:
charge = min(max charge power x horizon, energy up to the SOC ceiling), discharge = min(max
discharge power x horizon, energy down to the SOC floor). Stale sites, and sites in SAFE, offer
none: nobody can count on a battery the fleet cannot see or the site will not move."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

SITES_SQL = """
SELECT s.site_id, s.boot_id, s.seq, s.ts, s.received_at, s.soc_pct, s.battery_power_w,
       s.capacity_kwh, s.max_charge_w, s.max_discharge_w, s.safety_state, s.mode,
       coalesce(a.active, '{}') AS alarms
FROM site_state s LEFT JOIN site_alarms a USING (site_id)
ORDER BY s.site_id
"""


@dataclass(frozen=True, slots=True)
class FlexLimits:
    """How the totals are computed (from `[fleet]`)."""

    stale_after_s: float = 60.0
    horizon_h: float = 1.0
    soc_min_pct: float = 5.0
    soc_max_pct: float = 98.0


@dataclass(frozen=True, slots=True)
class SiteView:
    """One site as the fleet last heard it."""

    site_id: str
    last_seen: datetime
    age_s: float
    stale: bool
    boot_id: str
    seq: int
    soc_pct: float | None
    battery_power_w: float | None
    capacity_kwh: float | None
    safety_state: str | None
    mode: str | None
    alarms: tuple[str, ...]
    charge_flex_kw: float
    charge_flex_kwh: float
    discharge_flex_kw: float
    discharge_flex_kwh: float


@dataclass(frozen=True, slots=True)
class FleetTotals:
    """What the fleet adds up to, over the sites that are online."""

    sites: int
    sites_online: int
    sites_stale: int
    sites_safe: int
    sites_alarmed: int
    capacity_kwh: float
    soc_pct: float | None
    charge_flex_kw: float
    charge_flex_kwh: float
    discharge_flex_kw: float
    discharge_flex_kwh: float
    horizon_h: float


@dataclass(frozen=True, slots=True)
class FleetView:
    """The sites and their totals at one instant."""

    at: datetime
    sites: tuple[SiteView, ...]
    totals: FleetTotals


def _flex(
    row: Mapping[str, Any], limits: FlexLimits, usable: bool
) -> tuple[float, float, float, float]:
    """(charge kW, charge kWh, discharge kW, discharge kWh) of one site over the horizon."""
    soc, cap = row["soc_pct"], row["capacity_kwh"]
    if not usable or not isinstance(soc, float) or not isinstance(cap, float):
        return 0.0, 0.0, 0.0, 0.0
    charge_kw = max(0.0, float(row["max_charge_w"] or 0.0)) / 1000
    discharge_kw = max(0.0, float(row["max_discharge_w"] or 0.0)) / 1000
    room_kwh = max(0.0, cap * (limits.soc_max_pct - soc) / 100)
    stored_kwh = max(0.0, cap * (soc - limits.soc_min_pct) / 100)
    charge_kwh = min(charge_kw * limits.horizon_h, room_kwh)
    discharge_kwh = min(discharge_kw * limits.horizon_h, stored_kwh)
    # The power a site can hold for the whole horizon: less when the energy runs out first.
    return (
        charge_kwh / limits.horizon_h,
        charge_kwh,
        discharge_kwh / limits.horizon_h,
        discharge_kwh,
    )


def site_view(row: Mapping[str, Any], now: datetime, limits: FlexLimits) -> SiteView:
    """One row of SITES_SQL as a site."""
    last_seen = row["ts"]
    assert isinstance(last_seen, datetime)
    age_s = max(0.0, (now - last_seen).total_seconds())
    stale = age_s > limits.stale_after_s
    safety = row["safety_state"]
    usable = not stale and safety != "safe"
    ckw, ckwh, dkw, dkwh = _flex(row, limits, usable)
    alarms = row["alarms"]
    return SiteView(
        site_id=str(row["site_id"]),
        last_seen=last_seen,
        age_s=round(age_s, 3),
        stale=stale,
        boot_id=str(row["boot_id"]),
        seq=int(row["seq"]),
        soc_pct=row["soc_pct"],
        battery_power_w=row["battery_power_w"],
        capacity_kwh=row["capacity_kwh"],
        safety_state=safety if isinstance(safety, str) else None,
        mode=row["mode"],
        alarms=tuple(alarms) if isinstance(alarms, list | tuple) else (),
        charge_flex_kw=round(ckw, 3),
        charge_flex_kwh=round(ckwh, 3),
        discharge_flex_kw=round(dkw, 3),
        discharge_flex_kwh=round(dkwh, 3),
    )


def totals(sites: tuple[SiteView, ...], limits: FlexLimits) -> FleetTotals:
    """Fleet totals; the SOC is weighted by capacity over the online sites that report both."""
    online = [s for s in sites if not s.stale]
    weighted = [
        (s.soc_pct, s.capacity_kwh) for s in online if s.soc_pct is not None and s.capacity_kwh
    ]
    cap_weighted = sum(c for _, c in weighted)
    soc = sum(p * c for p, c in weighted) / cap_weighted if cap_weighted > 0 else None
    return FleetTotals(
        sites=len(sites),
        sites_online=len(online),
        sites_stale=len(sites) - len(online),
        sites_safe=sum(1 for s in online if s.safety_state == "safe"),
        sites_alarmed=sum(1 for s in online if s.alarms),
        capacity_kwh=round(sum(s.capacity_kwh or 0.0 for s in online), 3),
        soc_pct=round(soc, 3) if soc is not None else None,
        charge_flex_kw=round(sum(s.charge_flex_kw for s in sites), 3),
        charge_flex_kwh=round(sum(s.charge_flex_kwh for s in sites), 3),
        discharge_flex_kw=round(sum(s.discharge_flex_kw for s in sites), 3),
        discharge_flex_kwh=round(sum(s.discharge_flex_kwh for s in sites), 3),
        horizon_h=limits.horizon_h,
    )


def build_view(rows: Sequence[Mapping[str, Any]], now: datetime, limits: FlexLimits) -> FleetView:
    """The fleet from the rows of SITES_SQL."""
    sites = tuple(site_view(r, now, limits) for r in rows)
    return FleetView(at=now, sites=sites, totals=totals(sites, limits))


async def load_view(pool: asyncpg.Pool, now: datetime, limits: FlexLimits) -> FleetView:
    """Read the latest-state tables and build the view."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(SITES_SQL)
    return build_view(rows, now, limits)
