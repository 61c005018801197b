"""The fleet service's Prometheus metrics: gauges set from the fleet view each refresh, and
the consumer's counters read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from bessai.fleet.consumer import ConsumerStats
from bessai.fleet.view import FleetView


class _ConsumerCollector(Collector):
    def __init__(self, stats: ConsumerStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self.stats
        lag = GaugeMetricFamily(
            "fleet_consumer_lag_messages",
            "Messages of the stream this consumer group has not acknowledged yet",
        )
        lag.add_metric([], float(s.lag_messages) if s.lag_messages is not None else float("nan"))
        yield lag
        for name, value, doc in (
            ("fleet_envelopes_written", s.written_total, "Envelopes stored (new keys)"),
            ("fleet_envelopes_duplicate", s.duplicates_total, "Redelivered envelopes skipped"),
            ("fleet_envelopes_rejected", s.rejected_total, "Messages that are no envelope"),
            ("fleet_db_errors", s.db_errors_total, "Failed batch writes (retried)"),
        ):
            counter = CounterMetricFamily(name, doc)
            counter.add_metric([], float(value))
            yield counter
        up = GaugeMetricFamily("fleet_nats_connected", "1 while the consumer reaches NATS")
        up.add_metric([], 1.0 if s.connected else 0.0)
        yield up


class FleetMetrics:
    """One registry per service (tests run several in one process)."""

    def __init__(self, stats: ConsumerStats) -> None:
        self.registry = CollectorRegistry()
        self.sites_active = Gauge(
            "fleet_sites_active", "Sites heard from within stale_after_s", registry=self.registry
        )
        self.sites_total = Gauge("fleet_sites", "Sites known to the fleet", registry=self.registry)
        self.sites_safe = Gauge(
            "fleet_sites_safe", "Online sites in SAFE (no dispatch)", registry=self.registry
        )
        self.capacity_kwh = Gauge(
            "fleet_total_capacity_kwh",
            "Battery capacity of the online sites",
            registry=self.registry,
        )
        self.soc_pct = Gauge(
            "fleet_soc_pct", "Capacity-weighted SOC of the online sites", registry=self.registry
        )
        self.flex_kwh = Gauge(
            "fleet_flexibility_kwh",
            "Energy the fleet can absorb or give over the horizon",
            ["direction"],
            registry=self.registry,
        )
        self.registry.register(_ConsumerCollector(stats))

    def update(self, view: FleetView) -> None:
        """Set the gauges from a fresh view."""
        t = view.totals
        self.sites_active.set(t.sites_online)
        self.sites_total.set(t.sites)
        self.sites_safe.set(t.sites_safe)
        self.capacity_kwh.set(t.capacity_kwh)
        self.soc_pct.set(t.soc_pct if t.soc_pct is not None else float("nan"))
        self.flex_kwh.labels("charge").set(t.charge_flex_kwh)
        self.flex_kwh.labels("discharge").set(t.discharge_flex_kwh)
