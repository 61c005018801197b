"""The telemetry pipeline: what the gateway cycle talks to.

    pipeline = TelemetryPipeline(config.telemetry, registry=registry)
    await pipeline.start()                      # opens sinks, starts the forwarder tasks
    ...
    # once per cycle, per site (alarms/commands of the cycle in the same call):
    await pipeline.emit_async([Record(site_id, values, device_id=...), ...])
    ...
    pipeline.health()                           # TelemetryHealth for /health
    await pipeline.stop()

`emit_async` runs the SQLite commit (fsync included) in a worker thread, so the event loop
keeps running other sites and the forwarder meanwhile; `emit` is the same call done inline.
Neither ever waits on the network.

Without any sink there is nothing to keep telemetry for: `emit` stores nothing (the outbox would
only fill to its cap and then drop, degraded), counts what it did not keep, and start-up, health
and `bessai config check` say so. Rows an earlier run stored stay for a sink configured later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from types import TracebackType

import structlog
from prometheus_client import CollectorRegistry

from bessai.telemetry.config import (
    LakeSinkConfig,
    MqttSinkConfig,
    NatsSinkConfig,
    PubSubSinkConfig,
    TelemetryConfig,
    no_sinks_note,
)
from bessai.telemetry.envelope import Record
from bessai.telemetry.forwarder import Forwarder
from bessai.telemetry.health import TelemetryHealth, telemetry_health
from bessai.telemetry.metrics import TelemetryCollector
from bessai.telemetry.outbox import AppendResult, Outbox
from bessai.telemetry.sinks.base import Sink, SinkStatus
from bessai.telemetry.sinks.lake import LakeSink
from bessai.telemetry.sinks.mqtt import MqttSink
from bessai.telemetry.sinks.nats import NatsSink
from bessai.telemetry.tracing import configure_tracing

log = structlog.get_logger(__name__)


def build_sinks(config: TelemetryConfig) -> list[Sink]:
    """The sinks the telemetry configuration lists, constructed but not started."""
    sinks: list[Sink] = []
    for cfg in config.sinks:
        if isinstance(cfg, MqttSinkConfig):
            sinks.append(MqttSink(cfg))
        elif isinstance(cfg, NatsSinkConfig):
            sinks.append(NatsSink(cfg))
        elif isinstance(cfg, LakeSinkConfig):
            sinks.append(LakeSink(cfg))
        elif isinstance(cfg, PubSubSinkConfig):
            from bessai.telemetry.sinks.pubsub import PubSubSink  # needs the gcp extra

            sinks.append(PubSubSink(cfg))
    return sinks


class TelemetryPipeline:
    """Outbox + forwarder + sinks + metrics + health, from one `TelemetryConfig`."""

    def __init__(
        self,
        config: TelemetryConfig,
        *,
        registry: CollectorRegistry | None = None,
        sinks: Sequence[Sink] | None = None,
        boot_id: str | None = None,
    ) -> None:
        self.config = config
        self.outbox = Outbox(
            config.outbox_path,
            max_rows=config.max_rows,
            max_bytes=config.max_bytes,
            boot_id=boot_id,
        )
        self.sinks: tuple[Sink, ...] = tuple(sinks if sinks is not None else build_sinks(config))
        self.forwarder = Forwarder(
            self.outbox,
            self.sinks,
            historical_after_s=config.historical_after_s,
            batch_max_rows=config.batch_max_rows,
        )
        self._emitted: dict[tuple[str, str], int] = {}
        self._not_kept: dict[tuple[str, str], int] = {}
        self._started = False
        if registry is not None:
            registry.register(
                TelemetryCollector(
                    lambda: self.outbox.stats,
                    self.sink_statuses,
                    lambda: dict(self._emitted),
                    lambda: dict(self._not_kept),
                )
            )

    @property
    def keeps_telemetry(self) -> bool:
        """False without sinks: envelopes are then neither stored nor sent."""
        return bool(self.sinks)

    def _note(self) -> str | None:
        if self.keeps_telemetry:
            return None
        note = no_sinks_note(self.config) or "no sinks: telemetry is kept nowhere"
        rows = self.outbox.stats.rows
        if rows:
            note += f"; {rows} envelopes stored by an earlier run wait in the outbox for a sink"
        return note

    @property
    def boot_id(self) -> str:
        return self.outbox.boot_id

    async def start(self) -> None:
        configure_tracing(self.config.otlp_endpoint)
        await self.forwarder.start()
        self._started = True
        log.info(
            "telemetry started",
            outbox=str(self.config.outbox_path),
            sinks=[s.name for s in self.sinks],
            boot_id=self.boot_id,
        )
        note = self._note()
        if note is not None:
            log.warning("telemetry is kept nowhere", reason=note)

    def emit(self, records: Sequence[Record]) -> AppendResult:
        """Commit one cycle's envelopes (one transaction). Call from the event-loop thread."""
        if not self.keeps_telemetry:
            return self._not_keeping(records)
        result = self.outbox.append(records)
        self._after_append(result)
        return result

    async def emit_async(self, records: Sequence[Record]) -> AppendResult:
        """Same as `emit`, with the commit in a worker thread."""
        if not self.keeps_telemetry:
            return self._not_keeping(records)
        result = await asyncio.to_thread(self.outbox.append, records)
        self._after_append(result)
        return result

    def _not_keeping(self, records: Sequence[Record]) -> AppendResult:
        for rec in records:
            key = (rec.site_id, rec.kind)
            self._not_kept[key] = self._not_kept.get(key, 0) + 1
        stats = self.outbox.stats
        return AppendResult((), 0, stats.held_in_memory, stats.storage_state)

    def _after_append(self, result: AppendResult) -> None:
        for env in result.envelopes:
            key = (env.site_id, env.kind)
            self._emitted[key] = self._emitted.get(key, 0) + 1
        if self._started:
            self.forwarder.notify()

    def sink_statuses(self) -> list[SinkStatus]:
        return [s.status for s in self.sinks]

    def health(self) -> TelemetryHealth:
        return telemetry_health(
            self.outbox.stats,
            self.sink_statuses(),
            max_oldest_age_s=self.config.max_oldest_age_s,
            sink_stale_after_s=self.config.sink_stale_after_s,
            drop_hold_s=self.config.drop_hold_s,
            outbox_path=str(self.config.outbox_path),
            now_us=time.time_ns() // 1000,
            notes=[n for n in (self._note(),) if n is not None],
        )

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every sink acknowledged every stored envelope (False on timeout)."""
        return await self.forwarder.drain(timeout_s)

    async def stop(self, *, drain_timeout_s: float = 0.0) -> None:
        """Stop the forwarder (after draining up to `drain_timeout_s`) and close the outbox.

        Undelivered rows stay in the outbox and go out after the next start."""
        if self._started and drain_timeout_s > 0:
            await self.drain(drain_timeout_s)
        await self.forwarder.stop()
        self._started = False
        self.outbox.close()

    async def __aenter__(self) -> TelemetryPipeline:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
