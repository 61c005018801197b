"""Prometheus metrics, ready for the gateway's `/metrics`.

`GatewayMetrics` holds the cycle's instruments (the cycle sets them from its snapshot).
`TelemetryCollector` reports the outbox and the sinks from in-memory snapshots, so a scrape
never touches SQLite, a broker or a device: it only serialises what is already in memory.

    registry = CollectorRegistry()
    gm = GatewayMetrics(registry)
    pipeline = TelemetryPipeline(config, registry=registry)
    body = render(registry)  # bytes for the HTTP response, content type CONTENT_TYPE
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from bessai.telemetry.outbox import STORAGE_STATES, OutboxStats
from bessai.telemetry.sinks.base import SINK_STATES, SinkStatus

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Huawei devices answer in 50-500 ms; a cycle is 5 s: buckets span both.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_CYCLE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0)


class GatewayMetrics:
    """The cycle's metrics, labelled by site (and device for Modbus)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.cycles = Counter("bessai_cycles", "Control cycles run.", ["site"], registry=registry)
        self.cycle_overruns = Counter(
            "bessai_cycle_overruns",
            "Cycles that exceeded their period.",
            ["site"],
            registry=registry,
        )
        self.cycle_duration = Histogram(
            "bessai_cycle_duration_seconds",
            "Duration of one control cycle.",
            ["site"],
            buckets=_CYCLE_BUCKETS,
            registry=registry,
        )
        self.safety_blocks = Counter(
            "bessai_safety_blocks",
            "Setpoint requests the safety guard blocked or clamped.",
            ["site", "reason"],
            registry=registry,
        )
        self.soc = Gauge("bessai_soc_pct", "Battery state of charge.", ["site"], registry=registry)
        self.battery_power = Gauge(
            "bessai_battery_power_w", "Battery power, > 0 charging.", ["site"], registry=registry
        )
        self.pv_power = Gauge("bessai_pv_power_w", "PV power.", ["site"], registry=registry)
        self.grid_power = Gauge(
            "bessai_grid_power_w", "Grid power, > 0 import.", ["site"], registry=registry
        )
        self.modbus_requests = Counter(
            "bessai_modbus_requests",
            "Modbus requests sent.",
            ["site", "device"],
            registry=registry,
        )
        self.modbus_errors = Counter(
            "bessai_modbus_errors",
            "Modbus requests that failed.",
            ["site", "device", "error"],
            registry=registry,
        )
        self.modbus_latency = Histogram(
            "bessai_modbus_request_duration_seconds",
            "Modbus request round trip.",
            ["site", "device"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )


class TelemetryCollector(Collector):
    """Outbox and sink metrics from in-memory snapshots (no I/O at scrape time)."""

    def __init__(
        self,
        stats: Callable[[], OutboxStats],
        sinks: Callable[[], Sequence[SinkStatus]],
        emitted: Callable[[], dict[tuple[str, str], int]],
    ) -> None:
        self._stats = stats
        self._sinks = sinks
        self._emitted = emitted

    def collect(self) -> Iterable[Metric]:
        now_us = time.time_ns() // 1000
        stats = self._stats()
        yield GaugeMetricFamily(
            "bessai_outbox_rows", "Envelopes waiting in the outbox.", stats.rows
        )
        yield GaugeMetricFamily(
            "bessai_outbox_bytes", "Payload bytes waiting in the outbox.", stats.bytes
        )
        yield GaugeMetricFamily(
            "bessai_outbox_oldest_age_seconds",
            "Age (by source time) of the oldest envelope not yet acknowledged by every sink.",
            stats.oldest_age_s(now_us) or 0.0,
        )
        yield GaugeMetricFamily(
            "bessai_outbox_held_in_memory",
            "Alarms/commands held in memory because the disk is full.",
            stats.held_in_memory,
        )
        state = GaugeMetricFamily(
            "bessai_outbox_storage_state", "1 for the current storage state.", labels=["state"]
        )
        for name in STORAGE_STATES:
            state.add_metric([name], 1.0 if stats.storage_state == name else 0.0)
        yield state
        drops = CounterMetricFamily(
            "bessai_outbox_dropped",
            "Envelopes dropped by the cap or a full disk (telemetry only).",
            labels=["site", "kind"],
        )
        for (site, kind), n in sorted(stats.dropped.items()):
            drops.add_metric([site, kind], float(n))
        yield drops
        emitted = CounterMetricFamily(
            "bessai_telemetry_emitted",
            "Envelopes committed to the outbox.",
            labels=["site", "kind"],
        )
        for (site, kind), n in sorted(self._emitted().items()):
            emitted.add_metric([site, kind], float(n))
        yield emitted

        sinks = list(self._sinks())
        sink_state = GaugeMetricFamily(
            "bessai_sink_state", "1 for the current state of each sink.", labels=["sink", "state"]
        )
        published = CounterMetricFamily(
            "bessai_sink_published", "Envelopes acknowledged by the sink.", labels=["sink"]
        )
        errors = CounterMetricFamily(
            "bessai_sink_publish_errors", "Failed publish attempts (batches).", labels=["sink"]
        )
        pending = GaugeMetricFamily(
            "bessai_sink_pending_rows", "Envelopes the sink has not acknowledged.", labels=["sink"]
        )
        last_ack = GaugeMetricFamily(
            "bessai_sink_last_ack_timestamp_seconds",
            "Unix time of the sink's last acknowledged batch (0: none yet).",
            labels=["sink"],
        )
        for s in sinks:
            for sink_state_name in SINK_STATES:
                sink_state.add_metric(
                    [s.name, sink_state_name], 1.0 if s.state == sink_state_name else 0.0
                )
            published.add_metric([s.name], float(s.published_total))
            errors.add_metric([s.name], float(s.errors_total))
            pending.add_metric([s.name], float(s.pending_rows))
            last_ack.add_metric([s.name], (s.last_ack_us or 0) / 1e6)
        yield from (sink_state, published, errors, pending, last_ack)


def render(registry: CollectorRegistry) -> bytes:
    """The `/metrics` body (Prometheus text format, content type `CONTENT_TYPE`)."""
    return generate_latest(registry)
