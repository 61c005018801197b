"""Prometheus metrics of the telemetry path, ready for the gateway's `/metrics`.

The cycle's own instruments are `bessai.observe.metrics.GatewayMetrics`, on the same registry.
`TelemetryCollector` reports the outbox and the sinks from in-memory snapshots, so a scrape
never touches SQLite, a broker or a device: it only serialises what is already in memory.

    registry = CollectorRegistry()
    pipeline = TelemetryPipeline(config, registry=registry)
    body = render(registry)  # bytes for the HTTP response, content type CONTENT_TYPE
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from bessai.telemetry.outbox import STORAGE_STATES, OutboxStats
from bessai.telemetry.sinks.base import SINK_STATES, SinkStatus

CONTENT_TYPE = CONTENT_TYPE_LATEST


class TelemetryCollector(Collector):
    """Outbox and sink metrics from in-memory snapshots (no I/O at scrape time)."""

    def __init__(
        self,
        stats: Callable[[], OutboxStats],
        sinks: Callable[[], Sequence[SinkStatus]],
        emitted: Callable[[], dict[tuple[str, str], int]],
        not_kept: Callable[[], dict[tuple[str, str], int]] = dict,
    ) -> None:
        self._stats = stats
        self._sinks = sinks
        self._emitted = emitted
        self._not_kept = not_kept

    def collect(self) -> Iterable[Metric]:
        """The outbox, emission and sink families, read fresh on every scrape."""
        yield from self._outbox_families()
        yield from self._emission_families()
        yield from self._sink_families()

    def _outbox_families(self) -> Iterable[Metric]:
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
        emitted_counts = self._emitted()
        # 0 for every (site, kind) emitted so far rather than no sample until the first drop:
        # `increase()` then sees the first drop, and a dashboard shows 0, not "no data".
        for (site, kind), n in sorted((dict.fromkeys(emitted_counts, 0) | stats.dropped).items()):
            drops.add_metric([site, kind], float(n))
        yield drops

    def _emission_families(self) -> Iterable[Metric]:
        emitted = CounterMetricFamily(
            "bessai_telemetry_emitted",
            "Envelopes committed to the outbox.",
            labels=["site", "kind"],
        )
        for (site, kind), n in sorted(self._emitted().items()):
            emitted.add_metric([site, kind], float(n))
        yield emitted
        not_kept = CounterMetricFamily(
            "bessai_telemetry_not_kept",
            "Envelopes neither stored nor sent because no sink is configured.",
            labels=["site", "kind"],
        )
        for (site, kind), n in sorted(self._not_kept().items()):
            not_kept.add_metric([site, kind], float(n))
        yield not_kept

    def _sink_families(self) -> Iterable[Metric]:
        sinks = list(self._sinks())
        yield GaugeMetricFamily(
            "bessai_telemetry_sinks",
            "Configured telemetry sinks (0: telemetry is kept nowhere).",
            len(sinks),
        )
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
