"""The OpenADR 3.1 VEN of one gateway site.

Every `poll_s` it makes sure its VEN and resource exist at the VTN, reads the programs and the
events aimed at it, and installs them into the site's grid-event slot (capacity limits as
constraints, setpoints as proposals). Every cycle it measures each active interval from the
site's cycle record; when an interval ends, the report (request, measured demand, baseline,
flexibility, outcome) is queued and sent. The events and the unsent reports are kept in a
cache file, so a VTN outage or a gateway restart changes nothing: cached events are honoured to
their end and reports go out once the VTN answers again (docs/vpp.md)."""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from bessai.config import VppConfig
from bessai.control.controllers import GridLimit, TimedSetpoint
from bessai.control.safety import Outcome
from bessai.control.site import CycleRecord, SiteMode, SiteRunner
from bessai.devices.base import Measurements
from bessai.vpp.events import (
    DISPATCH,
    EXPORT_LIMIT,
    IMPORT_LIMIT,
    PRICE,
    SIMPLE,
    Interval,
    event_end,
    intervals,
    units_w,
)
from bessai.vpp.metrics import VppMetrics
from bessai.vpp.reports import (
    OPTED_OUT,
    IntervalStats,
    interval_report,
    judge,
    report_body,
)
from bessai.vpp.session import VtnRefusedError, VtnSession, VtnUnavailableError
from bessai.vpp.times import OadrFormatError
from bessai.vpp.translate import translate

log = structlog.get_logger("bessai.vpp")
PAGE = 50
NO_PRIORITY = 2**31


@dataclass
class PendingReport:
    """The report of one event: its intervals so far, the VTN's id once created."""

    event_id: str
    intervals: list[dict[str, Any]]
    report_id: str | None = None
    sent: bool = False


@dataclass
class VenStatus:
    """What the API shows about the VEN."""

    vtn_up: bool = False
    last_poll: datetime | None = None
    last_error: str | None = None
    ven_id: str | None = None
    resource_id: str | None = None
    subscription_id: str | None = None
    events_received: int = 0
    reports_sent: int = 0


class Ven:
    """One site's VEN."""

    def __init__(
        self,
        site: SiteRunner,
        cache_path: Path,
        metrics: VppMetrics | None = None,
        session: VtnSession | None = None,
    ) -> None:
        self.site = site
        self.config: VppConfig = site.config.vpp
        self.ven_name = self.config.ven_name or site.id
        self.session = session or VtnSession(self.config)
        self.cache_path = cache_path
        self.metrics = metrics
        self.status = VenStatus()
        #: cached events by id (the VTN's JSON), honoured while the VTN is away
        self.events: dict[str, dict[str, Any]] = {}
        self.opted_out: set[str] = set()
        self.reports: dict[str, PendingReport] = {}
        self.stats: dict[tuple[str, int], IntervalStats] = {}
        #: (event id, interval id) already reported
        self.closed: set[tuple[str, int]] = set()
        self._ven_targets: set[str] = set()
        self._placed: dict[str, list[Interval]] = {}
        #: what the VTN must send with a webhook notification (kept in the cache)
        self.notify_token = secrets.token_urlsafe(24)
        self._wake = asyncio.Event()
        site.grid_event.margin_w = self.config.limit_margin_w
        self._load()

    # -- the cache ---------------------------------------------------------------------------

    def _load(self) -> None:
        try:
            data = json.loads(self.cache_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.error(
                "VEN cache unreadable; starting empty", path=str(self.cache_path), error=str(exc)
            )
            return
        self.events = dict(data.get("events", {}))
        self.opted_out = set(data.get("opted_out", []))
        self.notify_token = str(data.get("notify_token") or self.notify_token)
        self.closed = {(e, int(i)) for e, i in data.get("closed", [])}
        self.reports = {
            r["event_id"]: PendingReport(
                r["event_id"], r["intervals"], r.get("report_id"), r.get("sent", False)
            )
            for r in data.get("reports", [])
        }
        self._place_all()
        self.install(datetime.now(UTC))

    def _save(self) -> None:
        data = {
            "events": self.events,
            "opted_out": sorted(self.opted_out),
            "notify_token": self.notify_token,
            "closed": sorted([e, i] for e, i in self.closed),
            "reports": [r.__dict__ for r in self.reports.values()],
        }
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.cache_path)

    # -- events into control -----------------------------------------------------------------

    def _place_all(self) -> None:
        now = datetime.now(UTC)
        placed: dict[str, list[Interval]] = {}
        for event_id, event in self.events.items():
            try:
                placed[event_id] = intervals(event, now)
            except (OadrFormatError, KeyError, ValueError, TypeError) as exc:
                log.error("event unreadable; not acted on", event_id=event_id, error=str(exc))
                placed[event_id] = []
        self._placed = placed

    def _unit_w(self, event: dict[str, Any]) -> dict[str, float]:
        return {k: units_w(event, k) for k in (IMPORT_LIMIT, EXPORT_LIMIT, DISPATCH)} | {
            SIMPLE: 1.0,
            PRICE: 1.0,
        }

    def install(self, now: datetime) -> None:
        """Put the cached events' requests into the site's grid-event slot (in priority order:
        a lower OpenADR priority number first)."""
        ranked: list[tuple[int, TimedSetpoint]] = []
        limits: list[GridLimit] = []
        for event_id, event in self.events.items():
            if event_id in self.opted_out:
                continue
            priority = event.get("priority")
            rank = priority if isinstance(priority, int) and priority >= 0 else NO_PRIORITY
            label = event.get("eventName") or event_id
            for interval in self._placed.get(event_id, []):
                if interval.end <= now:
                    continue
                wanted = translate(interval, self.site.config, self._unit_w(event), str(label))
                ranked += [(rank, s) for s in wanted.setpoints]
                limits += wanted.limits
        ranked.sort(key=lambda x: (x[0], x[1].start))
        self.site.grid_event.replace([s for _, s in ranked], limits)
        if self.metrics is not None:
            active = sum(1 for e in self._placed.values() if any(i.start <= now < i.end for i in e))
            self.metrics.active.labels(self.site.id).set(active)

    def active(self, now: datetime) -> list[Interval]:
        """The intervals in force now, of events not opted out."""
        return [
            i
            for event_id, found in self._placed.items()
            if event_id not in self.opted_out
            for i in found
            if i.start <= now < i.end
        ]

    # -- measuring ---------------------------------------------------------------------------

    def flex(self, m: Measurements | None) -> tuple[float, float] | None:
        """Power the battery can still shift from where it is now, (up, down) in W: up toward
        discharge (less import), down toward charge. Charging 3 kW with 5 kW of discharge
        allowed leaves 8 kW up. None without data or in SAFE."""
        if m is None or m.soc_pct is None or self.site.failsafe_reason is not None:
            return None
        battery_w = m.battery_power_w or 0.0
        up_w = self.site.guard.power_limit_w(m, charging=False)[0] + battery_w
        down_w = self.site.guard.power_limit_w(m, charging=True)[0] - battery_w
        return max(0.0, up_w), max(0.0, down_w)

    def on_cycle(self, record: CycleRecord) -> None:
        """Every cycle: flexibility, and each active interval's measured values. Called inside
        the control cycle: a fault here is logged, never raised into the cycle."""
        try:
            self._measure(record)
        except Exception:
            log.exception("VEN could not measure this cycle", site=self.site.id)

    def _measure(self, record: CycleRecord) -> None:
        m = record.measurements
        flex = self.flex(m) if record.failsafe_reason is None else None
        flex_up_w, flex_down_w = flex if flex is not None else (None, None)
        if self.metrics is not None and flex is not None:
            self.metrics.flex_kw.labels(self.site.id, "up").set(flex[0] / 1000.0)
            self.metrics.flex_kw.labels(self.site.id, "down").set(flex[1] / 1000.0)
        if m.grid_power_w is None or m.battery_power_w is None:
            return
        for interval in self.active(record.ts):
            key = (interval.event_id, interval.interval_id)
            stats = self.stats.setdefault(key, IntervalStats())
            stats.add(m.grid_power_w, m.battery_power_w, counted=stats.cycles > 0)
            stats.soc_pct = m.soc_pct
            stats.flex_up_w = _lower(stats.flex_up_w, flex_up_w)
            stats.flex_down_w = _lower(stats.flex_down_w, flex_down_w)
            capacity_kwh = self.site.config.battery.capacity_kwh
            if m.soc_pct is not None:
                floor = self.site.config.safety.soc_min_pct
                stats.usable_kwh = max(0.0, (m.soc_pct - floor) / 100.0 * capacity_kwh)
            stats.note(self._shortfall(record))

    def _shortfall(self, record: CycleRecord) -> str:
        """Why this cycle may not have done what the event asked ('': nothing in the way)."""
        if record.mode is not SiteMode.AUTO:
            return f"site in {record.mode.value} mode"
        if record.failsafe_reason is not None:
            return f"site in SAFE: {record.failsafe_reason}"
        if record.proposal.controller == "manual":
            return "a manual override had priority"
        if (
            record.proposal.controller == "grid_event"
            and record.decision.outcome is not Outcome.ALLOWED
        ):
            return f"safety {record.decision.outcome.value}: {record.decision.reason}"
        return ""

    # -- reports -----------------------------------------------------------------------------

    def close_intervals(self, now: datetime) -> bool:
        """Queue the report of every interval that has ended; True when something was queued."""
        queued = False
        for event_id, found in self._placed.items():
            event = self.events[event_id]
            for interval in found:
                key = (event_id, interval.interval_id)
                if interval.end > now or key in self.closed:
                    continue
                self.closed.add(key)
                stats = self.stats.pop(key, None)
                outcome = (
                    (OPTED_OUT, "the operator opted out")
                    if event_id in self.opted_out
                    else judge(interval, stats, self._unit_w(event))
                )
                log.info("event interval ended", site=self.site.id, event_id=event_id,
                         interval=interval.interval_id, outcome=outcome)  # fmt: skip
                pending = self.reports.setdefault(event_id, PendingReport(event_id, []))
                pending.intervals.append(interval_report(interval, stats, outcome))
                pending.sent = False
                queued = True
        return queued

    async def flush_reports(self) -> None:
        """Send every report not yet accepted (create, then update as intervals are added)."""
        for pending in list(self.reports.values()):
            if pending.sent:
                continue
            body = report_body(
                pending.event_id, self.ven_name, self.config.resource_name, pending.intervals
            )
            try:
                if pending.report_id is None:
                    answer = await self.session.request("POST", "/reports", body=body)
                    pending.report_id = str(answer["id"])
                else:
                    await self.session.request("PUT", f"/reports/{pending.report_id}", body=body)
            except VtnRefusedError as exc:
                log.error(
                    "VTN refused a report; dropping it", event_id=pending.event_id, error=str(exc)
                )
                pending.sent = True  # a 4xx will not heal by retrying the same body
                continue
            pending.sent = True
            self.status.reports_sent += 1
            if self.metrics is not None:
                self.metrics.reports.labels(self.site.id).inc()

    def forget_finished(self, now: datetime) -> None:
        """Drop events whose intervals all ended and were reported, and their sent reports."""
        for event_id, event in list(self.events.items()):
            try:
                end = event_end(event, now)
            except (OadrFormatError, KeyError, ValueError, TypeError):
                end = None
            report = self.reports.get(event_id)
            if (end is None or end <= now) and (report is None or report.sent):
                self.events.pop(event_id)
                self.reports.pop(event_id, None)
                self.opted_out.discard(event_id)
                self.closed = {k for k in self.closed if k[0] != event_id}
        for event_id in [i for i, r in self.reports.items() if r.sent and i not in self.events]:
            del self.reports[event_id]
        self._place_all()

    # -- talking to the VTN ------------------------------------------------------------------

    async def _register(self) -> None:
        if self.status.ven_id is None:
            found = await self.session.request("GET", "/vens", params={"venName": self.ven_name})
            ven = (
                found[0]
                if found
                else await self.session.request(
                    "POST",
                    "/vens",
                    body={"objectType": "VEN_VEN_REQUEST", "venName": self.ven_name},
                )
            )
            self.status.ven_id = str(ven["id"])
            self._ven_targets = set(ven.get("targets") or [])
            log.info(
                "VEN registered", site=self.site.id, ven=self.ven_name, ven_id=self.status.ven_id
            )
        if self.status.resource_id is None:
            name = self.config.resource_name
            query = {"venID": self.status.ven_id, "resourceName": name}
            found = await self.session.request("GET", "/resources", params=query)
            battery = self.site.config.battery
            attributes = [
                {"type": "MAX_POWER_CONSUMPTION", "values": [battery.max_charge_w / 1000.0]},
                {"type": "MAX_POWER_EXPORT", "values": [battery.max_discharge_w / 1000.0]},
            ]
            body = {"objectType": "VEN_RESOURCE_REQUEST", "resourceName": name,
                    "venID": self.status.ven_id, "attributes": attributes}  # fmt: skip
            resource = (
                found[0] if found else await self.session.request("POST", "/resources", body=body)
            )
            self.status.resource_id = str(resource["id"])

    async def _subscribe(self) -> None:
        """With a callback URL: one webhook subscription to events (ours replaces any earlier
        one of this VEN with the same URL, so restarts do not pile them up)."""
        url = self.config.callback_url
        if not url or self.status.subscription_id is not None:
            return
        for old in await self._pages("/subscriptions", {"clientName": self.ven_name}):
            urls = {op.get("callbackUrl") for op in old.get("objectOperations", [])}
            if url in urls:
                await self.session.request("DELETE", f"/subscriptions/{old['id']}")
        operations = [
            {
                "objects": ["EVENT", "PROGRAM"],
                "operations": ["CREATE", "UPDATE", "DELETE"],
                "callbackUrl": url,
                "bearerToken": self.notify_token,
            }
        ]
        body = {"clientName": self.ven_name, "objectOperations": operations}
        made = await self.session.request("POST", "/subscriptions", body=body)
        self.status.subscription_id = str(made["id"])
        log.info("subscribed by webhook", site=self.site.id, callback=url)

    def wake(self, token: str) -> bool:
        """A webhook notification with our token: poll now. The notification's content is not
        trusted; the poll reads the VTN itself."""
        if not hmac.compare_digest(token.encode(), self.notify_token.encode()):
            return False
        self._wake.set()
        return True

    async def _pages(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = await self.session.request(
                "GET", path, params={**params, "skip": len(out), "limit": PAGE}
            )
            out += page
            if len(page) < PAGE:
                return out

    async def _program_ids(self) -> set[str] | None:
        if not self.config.programs:
            return None
        programs = await self._pages("/programs", {})
        return {p["id"] for p in programs if p.get("programName") in self.config.programs}

    def _aimed_at_me(self, event: dict[str, Any]) -> bool:
        targets = set(event.get("targets") or [])
        mine = {self.ven_name, self.config.resource_name} | self._ven_targets
        return not targets or bool(targets & mine)

    async def poll(self) -> None:
        """Register (once), read programs and events, replace the cached events."""
        await self._register()
        # The business logic may put the VEN in groups (its targets) at any time.
        ven = await self.session.request("GET", f"/vens/{self.status.ven_id}")
        self._ven_targets = set(ven.get("targets") or [])
        await self._subscribe()
        program_ids = await self._program_ids()
        events = await self._pages("/events", {})
        fresh = {
            e["id"]: e
            for e in events
            if self._aimed_at_me(e) and (program_ids is None or e.get("programID") in program_ids)
        }
        now = datetime.now(UTC)
        changed = [
            event_id
            for event_id, event in fresh.items()
            if event_id not in self.events
            or self.events[event_id].get("modificationDateTime")
            != event.get("modificationDateTime")
        ]
        for event_id in self.events.keys() - fresh.keys():
            # Gone from the VTN: cancelled. Reports already queued still go out.
            log.warning("event withdrawn by the VTN", site=self.site.id, event_id=event_id)
        self.events = fresh
        if changed:
            self.status.events_received += len(changed)
            if self.metrics is not None:
                self.metrics.events.labels(self.site.id).inc(len(changed))
            log.info("events received", site=self.site.id, events=changed)
        self._place_all()
        self.install(now)

    async def cycle(self) -> None:
        """One round: poll, (re)install, close ended intervals, send reports, save the cache."""
        now = datetime.now(UTC)
        try:
            await self.poll()
            self._up(True, None)
        except VtnUnavailableError as exc:
            self._up(False, str(exc))
        except VtnRefusedError as exc:
            self._up(False, str(exc))
            log.error("VTN refused the VEN", site=self.site.id, error=str(exc))
        self.install(now)
        self.close_intervals(now)
        if self.status.vtn_up:
            try:
                await self.flush_reports()
            except VtnUnavailableError as exc:
                self._up(False, str(exc))
        self.forget_finished(now)
        await asyncio.to_thread(self._save)

    def _up(self, up: bool, error: str | None) -> None:
        if up != self.status.vtn_up:
            log.warning("VTN reachable" if up else "VTN unreachable; honouring cached events",
                        site=self.site.id, error=error)  # fmt: skip
        self.status.vtn_up = up
        self.status.last_error = error
        if up:
            self.status.last_poll = datetime.now(UTC)
        if self.metrics is not None:
            self.metrics.vtn_up.labels(self.site.id).set(1 if up else 0)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set; a crash in one round is logged and the next one tried."""
        while not stop.is_set():
            try:
                await self.cycle()
            except Exception:
                log.exception("VEN round failed", site=self.site.id)
            await self._sleep(stop)

    async def _sleep(self, stop: asyncio.Event) -> None:
        """Until the next poll: `poll_s`, a webhook notification or the stop."""
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(
                waits, timeout=self.config.poll_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in waits:
                task.cancel()
        self._wake.clear()

    async def opt_out(self, event_id: str) -> bool:
        """The operator declines an event: it stops acting now and is reported as OPTED_OUT."""
        if event_id not in self.events:
            return False
        self.opted_out.add(event_id)
        self.install(datetime.now(UTC))
        await asyncio.to_thread(self._save)
        return True

    async def close(self) -> None:
        """Save the cache, close the session, leave the slot empty."""
        self.site.grid_event.replace([], [])
        await asyncio.to_thread(self._save)
        await self.session.close()


def _lower(current: float | None, value: float | None) -> float | None:
    if value is None:
        return current
    return value if current is None else min(current, value)
