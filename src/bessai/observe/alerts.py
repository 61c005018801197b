"""Alerts: conditions that a person should know about, fired once, kept while they last,
resolved when they end, each with a severity.

Sources: every cycle's record (safety blocks, latched limits, the device's alarm registers
32008-32010 with Huawei's own texts, SAFE and a lost device), and `report` for features that
live outside the cycle (the telemetry outbox backlog, anomaly scores). An alert is identified by
(site, kind, subject): a condition that holds for a thousand cycles is one alert whose count and
last-seen time move, not a thousand alerts. Fired and resolved alerts go to the API, the
dashboard, `bessai_alerts_active{severity}` and, optionally, a webhook with retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from bessai.config import AlertsConfig
from bessai.control.safety import Outcome, SafetyState

if TYPE_CHECKING:
    from bessai.control.site import CycleRecord, SiteRunner

log = structlog.get_logger("bessai.alerts")


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "critical": 2}[self.value]


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    site: str | None  # None: the gateway as a whole (e.g. the outbox)
    kind: str
    subject: str
    severity: Severity
    message: str
    first_utc: datetime
    last_utc: datetime
    count: int = 1
    resolved_utc: datetime | None = None

    @property
    def active(self) -> bool:
        return self.resolved_utc is None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "site": self.site,
            "kind": self.kind,
            "subject": self.subject,
            "severity": self.severity.value,
            "message": self.message,
            "first_utc": self.first_utc.isoformat(),
            "last_utc": self.last_utc.isoformat(),
            "count": self.count,
            "active": self.active,
            "resolved_utc": None if self.resolved_utc is None else self.resolved_utc.isoformat(),
        }


AlertKey = tuple[str | None, str, str]

#: Huawei alarm texts end in "(<id>, major|minor|warning)".
_HUAWEI_LEVEL = re.compile(r"\((?:\d+), (major|minor|warning)\)\s*$")
_LEVEL_SEVERITY = {"major": Severity.CRITICAL, "minor": Severity.WARNING, "warning": Severity.INFO}
_LATCH_SEVERITY = {
    "temp_high": Severity.CRITICAL,
    "temp_low": Severity.CRITICAL,
    "alarm": Severity.CRITICAL,
    "soc_high": Severity.INFO,  # a full or empty battery is normal operation
    "soc_low": Severity.INFO,
}
#: Cycle-derived kinds; `observe` resolves any of these a cycle no longer shows.
_CYCLE_KINDS = frozenset(
    {
        "safety_block",
        "safety_limit",
        "device_alarm",
        "failsafe",
        "device_offline",
        "tracking",
        "security",
    }
)


class AlertManager:
    def __init__(
        self,
        config: AlertsConfig | None = None,
        registry: CollectorRegistry | None = None,
        webhook: WebhookSender | None = None,
    ) -> None:
        self.config = config or AlertsConfig()
        self._active: dict[AlertKey, Alert] = {}
        self._history: deque[Alert] = deque(maxlen=self.config.history)
        self._ids = itertools.count(1)
        self.webhook = webhook
        self.listeners: list[Callable[[str, Alert], Any]] = []
        self._gauge: Gauge | None = None
        self._fired: Counter | None = None
        if registry is not None:
            self._gauge = Gauge(
                "bessai_alerts_active", "Active alerts by severity", ["severity"], registry=registry
            )
            self._fired = Counter(
                "bessai_alerts_fired", "Alerts fired by severity", ["severity"], registry=registry
            )
            for severity in Severity:
                self._gauge.labels(severity.value).set(0)
                self._fired.labels(severity.value)

    # -- the primitive: fire (or refresh) and resolve --------------------------------------------

    def fire(
        self,
        site: str | None,
        kind: str,
        subject: str,
        severity: Severity,
        message: str,
        now: datetime | None = None,
    ) -> Alert:
        now = now or datetime.now(UTC)
        key = (site, kind, subject)
        current = self._active.get(key)
        if current is not None and current.severity is severity:
            # Same condition still there: one alert, its message shows the latest values.
            updated = replace(current, message=message, last_utc=now, count=current.count + 1)
            self._active[key] = updated
            return updated
        if current is not None:
            self._resolve(key, now)  # severity changed: a new alert so a webhook sees the step
        alert = Alert(next(self._ids), site, kind, subject, severity, message, now, now)
        self._active[key] = alert
        if self._fired is not None:
            self._fired.labels(severity.value).inc()
        self._changed("fired", alert)
        return alert

    def resolve(
        self, site: str | None, kind: str, subject: str, now: datetime | None = None
    ) -> None:
        key = (site, kind, subject)
        if key in self._active:
            self._resolve(key, now or datetime.now(UTC))

    def _resolve(self, key: AlertKey, now: datetime) -> None:
        alert = replace(self._active.pop(key), resolved_utc=now)
        self._history.append(alert)
        self._changed("resolved", alert)

    def _changed(self, event: str, alert: Alert) -> None:
        level = log.warning if alert.severity is not Severity.INFO else log.info
        level(f"alert {event}", site=alert.site, kind=alert.kind, subject=alert.subject,
              severity=alert.severity.value, message=alert.message)  # fmt: skip
        if self._gauge is not None:
            for severity in Severity:
                self._gauge.labels(severity.value).set(
                    sum(1 for a in self._active.values() if a.severity is severity)
                )
        if self.webhook is not None:
            self.webhook.submit(event, alert)
        for listener in self.listeners:
            listener(event, alert)

    def _sync(
        self, site: str | None, kinds: frozenset[str], wanted: dict[tuple[str, str], Any]
    ) -> None:
        """Resolve every active alert of `site` in `kinds` that is not in `wanted`."""
        for key in [k for k in self._active if k[0] == site and k[1] in kinds]:
            if (key[1], key[2]) not in wanted:
                self._resolve(key, datetime.now(UTC))

    # -- sources --------------------------------------------------------------------------------

    def observe(self, site: SiteRunner, record: CycleRecord) -> None:
        """One cycle of one site (a SiteRunner listener)."""
        now = record.ts
        seen: dict[tuple[str, str], Any] = {}

        def hold(kind: str, subject: str, severity: Severity, message: str) -> None:
            seen[(kind, subject)] = True
            self.fire(site.id, kind, subject, severity, message, now)

        failsafe = record.failsafe_reason
        if record.safety_state is SafetyState.SAFE and failsafe is not None:
            operator = failsafe.startswith("operator")
            hold("failsafe", "", Severity.WARNING if operator else Severity.CRITICAL,
                 f"SAFE, dispatch stopped: {failsafe}")  # fmt: skip
        if not record.device_connected:
            reason = record.errors[0] if record.errors else "device not connected"
            hold("device_offline", record.device_name, Severity.CRITICAL, reason)
        tracking = record.tracking
        if tracking is not None and tracking.alert is not None:
            hold("tracking", "", Severity.CRITICAL if tracking.violation else Severity.WARNING,
                 tracking.alert)  # fmt: skip
        decision = record.decision
        if decision.outcome is Outcome.BLOCKED and record.proposal.setpoint_w != 0:
            hold("safety_block", record.proposal.controller, Severity.WARNING,
                 f"{record.proposal.controller} asked for {record.proposal.setpoint_w:.0f} W; "
                 f"blocked: {decision.reason}")  # fmt: skip
        for latch in record.latches:
            name = latch.name
            blocked = " and ".join(
                d for d, on in (("charging", latch.blocks_charge),
                                ("discharging", latch.blocks_discharge)) if on
            )  # fmt: skip
            hold("safety_limit", name, _LATCH_SEVERITY.get(name, Severity.WARNING),
                 f"guard blocks {blocked}: {latch.reason}")  # fmt: skip

        if record.measurements.alarms_known:
            blocking = site.config.safety.blocking_alarms
            for text in record.measurements.alarms:
                match = _HUAWEI_LEVEL.search(text)
                severity = _LEVEL_SEVERITY[match.group(1)] if match else Severity.WARNING
                if any(text.startswith(prefix) for prefix in blocking):
                    severity = Severity.CRITICAL
                hold("device_alarm", text, severity, f"device alarm: {text}")
        else:
            # Unknown is not "cleared": keep device alarms until the registers read good again.
            for key in self._active:
                if key[0] == site.id and key[1] == "device_alarm":
                    seen[(key[1], key[2])] = True
        self._security(site.id, record, hold, seen)
        self._sync(site.id, _CYCLE_KINDS, seen)

    def _security(
        self,
        site_id: str,
        record: CycleRecord,
        hold: Callable[[str, str, Severity, str], None],
        seen: dict[tuple[str, str], Any],
    ) -> None:
        """The security monitor's detections (docs/security-monitor.md): critical when acted
        on; held while the monitor keeps the site in SAFE or readings from the planner."""
        security = record.security
        if security is None:
            return
        for alert in security.alerts:
            severity = Severity.CRITICAL if alert.confidence == "high" else Severity.WARNING
            hold("security", alert.kind, severity, f"{alert.check}: {alert.message}")
        if security.failsafe is not None or security.suspect:
            for key in self._active:
                if key[0] == site_id and key[1] == "security":
                    seen[(key[1], key[2])] = True

    def report(
        self,
        kind: str,
        active: bool,
        message: str = "",
        *,
        site: str | None = None,
        subject: str = "",
        severity: Severity = Severity.WARNING,
    ) -> Alert | None:
        """A condition from outside the cycle: fire it while `active`, resolve it when not."""
        if kind in _CYCLE_KINDS:
            raise ValueError(f"alert kind {kind!r} belongs to the cycle; report another kind")
        if active:
            return self.fire(site, kind, subject, severity, message)
        self.resolve(site, kind, subject)
        return None

    def report_outbox_backlog(self, depth: int, limit: int, site: str | None = None) -> None:
        """The telemetry outbox holds `depth` envelopes; above `limit` the northbound is behind.
        Critical from ten times the limit, where the buffer starts to risk the disk."""
        severity = Severity.CRITICAL if depth >= 10 * limit else Severity.WARNING
        self.report(
            "outbox_backlog",
            depth > limit,
            f"telemetry outbox holds {depth} envelopes (limit {limit})",
            site=site,
            severity=severity,
        )

    def report_telemetry(self, reasons: Sequence[str], storage_state: str = "ok") -> None:
        """The telemetry pipeline's health: one gateway-wide alert while it is degraded (a
        stuck sink, a backlog older than its limit, drops), critical when the outbox itself
        cannot store (error, full): then telemetry is being lost, not only delayed."""
        critical = storage_state in ("error", "full")
        self.report(
            "telemetry",
            bool(reasons),
            "telemetry degraded: " + "; ".join(reasons),
            severity=Severity.CRITICAL if critical else Severity.WARNING,
        )

    def report_anomaly(self, site: str, score: float, threshold: float, what: str = "") -> None:
        """An anomaly detector's score for a site; above the threshold is an alert."""
        self.report(
            "anomaly",
            score > threshold,
            f"anomaly score {score:.3g} above {threshold:.3g}" + (f": {what}" if what else ""),
            site=site,
            subject=what,
            severity=Severity.WARNING,
        )

    # -- views ----------------------------------------------------------------------------------

    def active(self, site: str | None = None) -> list[Alert]:
        alerts = [a for a in self._active.values() if site is None or a.site == site]
        return sorted(alerts, key=lambda a: (-a.severity.rank, a.first_utc))

    def recent(self, limit: int = 50, site: str | None = None) -> list[Alert]:
        """Resolved alerts, newest first."""
        resolved = [a for a in reversed(self._history) if site is None or a.site == site]
        return resolved[:limit]

    async def close(self) -> None:
        if self.webhook is not None:
            await self.webhook.stop()


class WebhookSender:
    """POSTs fired and resolved alerts as JSON to one URL, in order, from a bounded queue;
    retries connection errors, 5xx and 429 with exponential back-off. A full queue drops the
    oldest event (counted and logged) rather than growing without bound while the receiver
    is down. The URL may carry a token, so only its host is ever logged."""

    QUEUE_MAX = 1_000

    def __init__(self, config: AlertsConfig, client: httpx.AsyncClient | None = None) -> None:
        if config.webhook_url is None:
            raise ValueError("WebhookSender needs alerts.webhook_url")
        self.url = config.webhook_url
        self.host = urlsplit(self.url).netloc.rsplit("@", 1)[-1]
        self.config = config
        self.min_severity = Severity(config.webhook_min_severity)
        self._queue: deque[dict[str, Any]] = deque(maxlen=self.QUEUE_MAX)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._client = client
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.failed = 0
        self.dropped = 0

    def submit(self, event: str, alert: Alert) -> None:
        if alert.severity.rank < self.min_severity.rank:
            return
        if len(self._queue) == self.QUEUE_MAX:
            self.dropped += 1
            log.warning("webhook queue full; dropping the oldest alert event", host=self.host)
        self._queue.append({"event": event, "alert": alert.to_json()})
        self._idle.clear()
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="alert-webhook")

    async def stop(self, drain_s: float = 5.0) -> None:
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=drain_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        client = self._client or httpx.AsyncClient(timeout=self.config.webhook_timeout_s)
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    payload = self._queue[0]
                    if await self._deliver(client, payload):
                        self.delivered += 1
                    else:
                        self.failed += 1
                    if self._queue and self._queue[0] is payload:
                        self._queue.popleft()
                self._idle.set()
        finally:
            if self._client is None:
                await client.aclose()

    async def _deliver(self, client: httpx.AsyncClient, payload: dict[str, Any]) -> bool:
        cfg = self.config
        delay_s = cfg.webhook_backoff_s
        for attempt in range(cfg.webhook_retries + 1):
            problem: str
            try:
                response = await client.post(self.url, json=payload)
                if response.status_code < 300:
                    return True
                problem = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    log.error("webhook refused the alert; not retrying", host=self.host,
                              status=response.status_code)  # fmt: skip
                    return False
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            if attempt < cfg.webhook_retries:
                log.warning("webhook delivery failed; retrying", host=self.host, problem=problem,
                            attempt=attempt + 1, retry_in_s=delay_s)  # fmt: skip
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, cfg.webhook_backoff_max_s)
        log.error("webhook delivery gave up", host=self.host, problem=problem,
                  alert=payload["alert"]["kind"])  # fmt: skip
        return False
