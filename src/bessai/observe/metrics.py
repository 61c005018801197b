"""Prometheus metrics of the gateway, each labelled by site. Updated from the cycle's snapshot
(`GatewayMetrics.observe` subscribes to every site's cycle records); a scrape only serializes
memory, it never touches a device."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bessai.control.watch import ALERT_KINDS
from bessai.devices.base import DeviceStats

if TYPE_CHECKING:
    from bessai.control.site import CycleRecord

CYCLE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SAFETY_STATE_VALUE = {"normal": 0, "limited": 1, "safe": 2}


class _DeviceStatsCollector(Collector):
    """Request and error counts per device, read from the devices' counters."""

    def __init__(self, source: Callable[[], Iterable[tuple[str, str, DeviceStats]]]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "bessai_modbus_requests", "Modbus requests sent", labels=["site", "device"]
        )
        errors = CounterMetricFamily(
            "bessai_modbus_errors", "Modbus requests that failed", labels=["site", "device"]
        )
        timeouts = CounterMetricFamily(
            "bessai_modbus_timeouts", "Modbus requests that timed out", labels=["site", "device"]
        )
        exceptions = CounterMetricFamily(
            "bessai_modbus_exceptions",
            "Modbus exception answers by code",
            labels=["site", "device", "code"],
        )
        latency = GaugeMetricFamily(
            "bessai_modbus_last_latency_seconds",
            "Latency of the last Modbus request",
            labels=["site", "device"],
        )
        reconnects = CounterMetricFamily(
            "bessai_modbus_connects", "TCP connections made", labels=["site", "device"]
        )
        for site, device, stats in self._source():
            requests.add_metric([site, device], stats.requests)
            errors.add_metric([site, device], stats.errors)
            timeouts.add_metric([site, device], stats.timeouts)
            reconnects.add_metric([site, device], stats.reconnects)
            latency.add_metric([site, device], stats.last_latency_s)
            for code, count in stats.exceptions_by_code.items():
                exceptions.add_metric([site, device, str(code)], count)
        yield from (requests, errors, timeouts, exceptions, latency, reconnects)


class _RestartsCollector(Collector):
    def __init__(self, source: Callable[[], Iterable[tuple[str, int]]]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        restarts = CounterMetricFamily(
            "bessai_site_restarts", "Site tasks restarted after a crash", labels=["site"]
        )
        for site, count in self._source():
            restarts.add_metric([site], count)
        yield restarts


class GatewayMetrics:
    """The cycle's Prometheus instruments, labelled by site, on the gateway's one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.cycles = Counter("bessai_cycles", "Control cycles run", ["site"], registry=r)
        self.cycle_duration = Histogram(
            "bessai_cycle_duration_seconds",
            "Duration of one control cycle",
            ["site"],
            buckets=CYCLE_BUCKETS_S,
            registry=r,
        )
        self.cycle_overruns = Counter(
            "bessai_cycle_overruns", "Cycles that took longer than the period", ["site"], registry=r
        )
        self.safety_blocks = Counter(
            "bessai_safety_blocks", "Requests the safety guard blocked", ["site"], registry=r
        )
        self.safety_clamps = Counter(
            "bessai_safety_clamps", "Requests the safety guard clamped", ["site"], registry=r
        )
        self.safety_state = Gauge(
            "bessai_safety_state", "0 normal, 1 limited, 2 safe (fail-safe)", ["site"], registry=r
        )
        self.commands = Counter(
            "bessai_device_writes", "Registers written to devices", ["site"], registry=r
        )
        self.data_age = Gauge(
            "bessai_data_age_seconds", "Age of the newest good battery data", ["site"], registry=r
        )
        self.values = {
            name: Gauge(f"bessai_{name}", help_text, ["site"], registry=r)
            for name, help_text in (
                ("soc_pct", "Battery state of charge"),
                ("battery_power_w", "Battery power, > 0 charging"),
                ("pv_power_w", "PV power"),
                ("grid_power_w", "Grid power, > 0 importing"),
                ("load_power_w", "Site load"),
                ("battery_temp_c", "Battery temperature"),
                ("setpoint_w", "Battery setpoint after the safety guard"),
            )
        }
        self.ids_alerts = Counter(
            "ids_alerts", "Security monitor alerts by kind", ["site", "kind"], registry=r
        )
        self.ids_anomaly_score = Gauge(
            "ids_anomaly_score",
            "Security monitor anomaly score (higher = stranger)",
            ["site"],
            registry=r,
        )
        self._overruns_seen: dict[str, int] = {}
        self._ids_sites: set[str] = set()

    def watch_restarts(self, source: Callable[[], Iterable[tuple[str, int]]]) -> None:
        """Site task restarts, read from the gateway's counters at each scrape (a site that
        crashes before finishing a cycle still shows)."""
        self.registry.register(_RestartsCollector(source))

    def watch_devices(self, source: Callable[[], Iterable[tuple[str, str, DeviceStats]]]) -> None:
        self.registry.register(_DeviceStatsCollector(source))

    def _first_sight(self, site: str) -> None:
        """A site's event counters start at 0 rather than at their first event, so `rate()`
        and `increase()` see the first block, clamp or overrun, and dashboards show 0 instead
        of no data."""
        for counter in (self.cycle_overruns, self.safety_blocks, self.safety_clamps, self.commands):
            counter.labels(site)

    def observe(self, record: CycleRecord) -> None:
        """One cycle of one site (a SiteRunner listener)."""
        site = record.site_id
        if site not in self._overruns_seen:
            self._first_sight(site)
        self.cycles.labels(site).inc()
        self.cycle_duration.labels(site).observe(record.duration_s)
        overruns = record.overruns - self._overruns_seen.get(site, 0)
        if overruns > 0:
            self.cycle_overruns.labels(site).inc(overruns)
        self._overruns_seen[site] = record.overruns
        outcome = record.decision.outcome.value
        if outcome == "blocked":
            self.safety_blocks.labels(site).inc()
        elif outcome == "clamped":
            self.safety_clamps.labels(site).inc()
        self.safety_state.labels(site).set(SAFETY_STATE_VALUE[record.safety_state.value])
        self.commands.labels(site).inc(len(record.writes))
        if record.data_age_s is not None:
            self.data_age.labels(site).set(record.data_age_s)
        m = record.measurements
        for name, value in (
            ("soc_pct", m.soc_pct),
            ("battery_power_w", m.battery_power_w),
            ("pv_power_w", m.pv_power_w),
            ("grid_power_w", m.grid_power_w),
            ("load_power_w", m.load_power_w),
            ("battery_temp_c", m.battery_temp_c),
            ("setpoint_w", record.decision.setpoint_w),
        ):
            if value is not None:
                self.values[name].labels(site).set(value)
        security = record.security
        if security is not None:
            if site not in self._ids_sites:
                # Every kind from 0, so increase() and rate() have a series before the first alert.
                self._ids_sites.add(site)
                for kind in ALERT_KINDS:
                    self.ids_alerts.labels(site, kind)
            for alert in security.alerts:
                self.ids_alerts.labels(site, alert.kind).inc()
            # NaN while the monitor is still learning: no score yet, and no alert on one.
            score = security.score if security.score is not None else math.nan
            self.ids_anomaly_score.labels(site).set(score)
