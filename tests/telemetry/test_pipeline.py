"""Forwarder, metrics, health, tracing and config, with in-memory sinks (no broker)."""

from __future__ import annotations

import asyncio
import sqlite3
import tomllib
from collections.abc import Sequence
from pathlib import Path

import pytest
from brokers import wait_until
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from bessai.errors import ConfigError, SinkError
from bessai.observe.metrics import GatewayMetrics
from bessai.telemetry import (
    Record,
    TelemetryConfig,
    TelemetryPipeline,
    load_telemetry_config,
    render,
)
from bessai.telemetry.outbox import OutboxRow
from bessai.telemetry.sinks.base import Sink
from bessai.telemetry.tracing import configure_tracing


class MemorySink(Sink):
    """Records what it is given; fails every `fail_every`-th call."""

    def __init__(self, name: str = "mem", *, fail_every: int = 0, batch: int = 7) -> None:
        super().__init__(name, "memory", "memory")
        self.got: list[tuple[str, int]] = []
        self.payloads: list[bytes] = []
        self.calls = 0
        self.fail_every = fail_every
        self.batch_max_rows = batch
        self.backoff_initial_s = 0.01
        self.backoff_max_s = 0.02

    async def publish(self, rows: Sequence[OutboxRow], payloads: Sequence[bytes]) -> None:
        self.calls += 1
        if self.fail_every and self.calls % self.fail_every == 0:
            raise SinkError("injected failure", sink=self.name)
        self.got.extend((r.site_id, r.seq) for r in rows)
        self.payloads.extend(payloads)

    async def close(self) -> None:
        self.status.state = "idle"


def _config(tmp_path: Path, **over: object) -> TelemetryConfig:
    return TelemetryConfig.model_validate({"outbox_path": tmp_path / "o.sqlite", **over})


async def test_forwarder_delivers_in_order_through_failures(tmp_path: Path) -> None:
    good, flaky = MemorySink("good"), MemorySink("flaky", fail_every=3)
    pipeline = TelemetryPipeline(_config(tmp_path), sinks=[good, flaky])
    await pipeline.start()
    for i in range(50):
        pipeline.emit([Record("a", {"cycle": i}), Record("b", {"cycle": i})])
        if i % 10 == 0:
            await asyncio.sleep(0)
    assert await pipeline.drain(5.0)
    await pipeline.stop()
    for sink in (good, flaky):
        # In outbox order, each row once: a failed batch is re-sent whole, never skipped.
        assert [s for site, s in sink.got if site == "a"] == list(range(50))
        assert len(sink.got) == 100
    assert flaky.status.errors_total > 0
    assert flaky.status.last_error == "injected failure (sink flaky)"


async def test_rows_wait_for_the_slowest_sink_and_a_new_sink_gets_the_backlog(
    tmp_path: Path,
) -> None:
    first = MemorySink("first")
    pipeline = TelemetryPipeline(_config(tmp_path), sinks=[first])
    await pipeline.start()
    pipeline.emit([Record("a", {"x_w": i}) for i in range(5)])
    assert await pipeline.drain(5.0)
    await pipeline.stop()

    # Restart with a second sink that never answers: rows stay for it.
    class Dead(MemorySink):
        async def publish(self, rows: Sequence[OutboxRow], payloads: Sequence[bytes]) -> None:
            raise SinkError("down", sink=self.name)

    first2, dead = MemorySink("first"), Dead("dead")
    pipeline = TelemetryPipeline(_config(tmp_path), sinks=[first2, dead])
    await pipeline.start()
    pipeline.emit([Record("a", {"x_w": 9})])
    await asyncio.sleep(0.3)
    assert first2.got == [("a", 5)]  # the cursor survived the restart: no re-send
    assert pipeline.outbox.stats.rows == 1
    await pipeline.stop()
    late = MemorySink("late")
    pipeline = TelemetryPipeline(_config(tmp_path), sinks=[first, late])
    await pipeline.start()
    assert await pipeline.drain(5.0)
    await pipeline.stop()
    assert late.got == [("a", 5)]  # the dead sink is gone from config; its rows were kept


async def test_lake_style_sink_waits_for_a_worthwhile_batch(tmp_path: Path) -> None:
    slow = MemorySink("slow", batch=100)
    slow.batch_max_delay_s = 0.6
    pipeline = TelemetryPipeline(_config(tmp_path, historical_after_s=0.3), sinks=[slow])
    await pipeline.start()
    for i in range(5):
        pipeline.emit([Record("a", {"cycle": i})])
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    assert slow.got == []  # still durable in the outbox, waiting for the batch
    assert await pipeline.drain(3.0)
    await pipeline.stop()
    assert slow.calls == 1
    assert len(slow.got) == 5
    # Waiting for the batch is by design, not an outage: nothing is flagged historical.
    assert all(b'"historical":false' in p for p in slow.payloads)


async def test_historical_flag_set_for_late_delivery(tmp_path: Path) -> None:
    sink = MemorySink()
    pipeline = TelemetryPipeline(_config(tmp_path, historical_after_s=0.2), sinks=[sink])
    pipeline.emit([Record("a", {"cycle": 0})])
    await asyncio.sleep(0.3)  # stored while the forwarder is not running: an outage
    await pipeline.start()
    pipeline.emit([Record("a", {"cycle": 1})])
    assert await pipeline.drain(5.0)
    await pipeline.stop()
    assert b'"historical":true' in sink.payloads[0]
    assert b'"historical":false' in sink.payloads[1]


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(render(registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_come_from_memory_and_count_drops_exactly(tmp_path: Path) -> None:
    gm = GatewayMetrics()
    registry = gm.registry
    sink = MemorySink()
    pipeline = TelemetryPipeline(_config(tmp_path, max_rows=5), registry=registry, sinks=[sink])
    for i in range(8):
        pipeline.emit([Record("a", {"cycle": i})])
    gm.cycles.labels(site="a").inc()
    gm.values["soc_pct"].labels(site="a").set(55.0)
    gm.cycle_duration.labels(site="a").observe(0.3)
    s = _samples(registry)
    assert s[("bessai_outbox_rows", ())] == 5
    assert s[("bessai_outbox_dropped_total", (("kind", "telemetry"), ("site", "a")))] == 3
    assert s[("bessai_telemetry_emitted_total", (("kind", "telemetry"), ("site", "a")))] == 8
    assert s[("bessai_outbox_storage_state", (("state", "capped"),))] == 1
    assert s[("bessai_sink_state", (("sink", "mem"), ("state", "idle")))] == 1
    assert s[("bessai_cycles_total", (("site", "a"),))] == 1
    assert s[("bessai_soc_pct", (("site", "a"),))] == 55.0
    assert s[("bessai_cycle_duration_seconds_count", (("site", "a"),))] == 1
    # A scrape never touches SQLite: it still works with the database closed.
    pipeline.outbox.close()
    assert _samples(registry)[("bessai_outbox_rows", ())] == 5


async def test_health_names_a_failing_sink_and_recovers(tmp_path: Path) -> None:
    class Down(MemorySink):
        up = False

        async def publish(self, rows: Sequence[OutboxRow], payloads: Sequence[bytes]) -> None:
            if not self.up:
                raise SinkError("cannot connect to broker x: refused", sink=self.name)
            await super().publish(rows, payloads)

    sink = Down()
    pipeline = TelemetryPipeline(_config(tmp_path, sink_stale_after_s=0.2), sinks=[sink])
    await pipeline.start()
    pipeline.emit([Record("a", {"cycle": 0})])
    await asyncio.sleep(0.5)
    health = pipeline.health()
    assert health.http_status == 503
    assert any("sink mem (memory) failing for" in r and "refused" in r for r in health.reasons)
    assert health.sinks["mem"]["last_ack"] is None
    assert health.outbox["rows"] == 1
    sink.up = True
    assert await pipeline.drain(5.0)
    health = pipeline.health()
    assert health.http_status == 200, health.reasons
    assert health.sinks["mem"]["last_ack"] is not None
    assert health.to_dict()["status"] == "ok"
    await pipeline.stop()


async def test_publish_spans_are_recorded(
    tmp_path: Path, span_exporter: InMemorySpanExporter
) -> None:
    exporter = span_exporter
    ok, bad = MemorySink("ok"), MemorySink("bad", fail_every=1)
    pipeline = TelemetryPipeline(_config(tmp_path), sinks=[ok, bad])
    await pipeline.start()
    pipeline.emit([Record("a", {"cycle": 0})])
    await wait_until(lambda: ok.got and bad.calls >= 1, 5.0, "both sinks to publish")
    await pipeline.stop()
    spans = [s for s in exporter.get_finished_spans() if s.name == "telemetry.publish"]
    by_sink = {s.attributes["bessai.sink"]: s for s in spans if s.attributes}
    assert by_sink["ok"].attributes["bessai.first_key"] == "a:0"  # type: ignore[index]
    assert by_sink["ok"].status.is_ok
    assert not by_sink["bad"].status.is_ok


def test_tracing_is_a_noop_without_endpoint() -> None:
    assert configure_tracing(None) is False
    assert configure_tracing("") is False


def test_toml_shape_validates_with_clear_errors(tmp_path: Path) -> None:
    doc = tomllib.loads(
        """
        [telemetry]
        outbox_path = "var/outbox.sqlite"
        max_rows = 100000
        max_bytes = 67108864

        [[telemetry.sinks]]
        type = "mqtt"
        host = "broker.local"
        port = 8883
        tls = true
        username = "site-17"
        password = "s3cret"

        [[telemetry.sinks]]
        type = "nats"
        servers = ["nats://10.0.0.5:4222"]

        [[telemetry.sinks]]
        type = "lake"
        path = "var/lake"
        """
    )
    cfg = load_telemetry_config(doc["telemetry"], source="site.toml")
    assert [s.type for s in cfg.sinks] == ["mqtt", "nats", "lake"]
    assert "s3cret" not in repr(cfg)  # secrets stay out of logs

    bad = {"sinks": [{"type": "mqtt", "port": 0}]}
    with pytest.raises(ConfigError, match=r"site.toml: telemetry.sinks.0.mqtt.port: "):
        load_telemetry_config(bad, source="site.toml")
    with pytest.raises(ConfigError, match=r"sink names must be unique, \['mqtt'\]"):
        load_telemetry_config({"sinks": [{"type": "mqtt"}, {"type": "mqtt"}]})
    with pytest.raises(ConfigError, match=r"telemetry\.sinks\.0: .*'kafka'"):
        load_telemetry_config({"sinks": [{"type": "kafka"}]})
    with pytest.raises(ConfigError, match=r"telemetry\.max_row: Extra inputs"):
        load_telemetry_config({"max_row": 5})
    with pytest.raises(ConfigError, match="tls = false"):
        load_telemetry_config({"sinks": [{"type": "mqtt", "ca_file": "ca.pem"}]})


async def test_outbox_read_errors_do_not_stop_forwarding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = MemorySink()
    pipeline = TelemetryPipeline(_config(tmp_path), sinks=[sink])
    real = pipeline.outbox.read_after
    failures = iter([True, True])

    def flaky_read(after_id: int, limit: int) -> list[OutboxRow]:
        if next(failures, False):
            raise sqlite3.OperationalError("disk I/O error")
        return real(after_id, limit)

    monkeypatch.setattr(pipeline.outbox, "read_after", flaky_read)
    await pipeline.start()
    pipeline.emit([Record("a", {"cycle": 0})])
    assert await pipeline.drain(5.0)
    await pipeline.stop()
    assert sink.got == [("a", 0)]
    assert sink.status.errors_total == 2
    assert "cannot read the outbox: disk I/O error" in (sink.status.last_error or "")


async def test_oldest_age_is_judged_per_sink_with_its_batching_delay(tmp_path: Path) -> None:
    class Dead(MemorySink):
        async def publish(self, rows: Sequence[OutboxRow], payloads: Sequence[bytes]) -> None:
            raise SinkError("down", sink=self.name)

    lake_like = MemorySink("lakeish", batch=100)
    lake_like.batch_max_delay_s = 2.0
    cfg = _config(tmp_path, max_oldest_age_s=0.3, sink_stale_after_s=60)
    pipeline = TelemetryPipeline(cfg, sinks=[lake_like])
    await pipeline.start()
    pipeline.emit([Record("a", {"cycle": 0})])
    await asyncio.sleep(0.8)
    # Waiting for its flush interval is by design: healthy.
    assert pipeline.health().status == "ok", pipeline.health().reasons
    await pipeline.stop()

    dead = Dead("dead")
    pipeline = TelemetryPipeline(cfg, sinks=[dead])
    await pipeline.start()
    await asyncio.sleep(0.8)
    health = pipeline.health()
    await pipeline.stop()
    assert any("sink dead (memory): oldest unsent envelope is" in r for r in health.reasons), (
        health.reasons
    )


async def test_drain_flushes_a_batching_sink_at_once(tmp_path: Path) -> None:
    lake_like = MemorySink("lakeish", batch=100)
    lake_like.batch_max_delay_s = 30.0
    pipeline = TelemetryPipeline(_config(tmp_path), sinks=[lake_like])
    await pipeline.start()
    for i in range(3):
        pipeline.emit([Record("a", {"cycle": i})])
    await asyncio.sleep(0.2)
    assert lake_like.got == []
    assert await pipeline.drain(2.0)  # a graceful stop writes the file now, not in 30 s
    await pipeline.stop()
    assert lake_like.got == [("a", 0), ("a", 1), ("a", 2)]


class PipelinedSink(MemorySink):
    """Keeps up to `depth` batches open and acknowledges them after `delay_s`, in reverse
    order when asked (an earlier batch may complete after a later one); fails the batches
    whose number is in `fail`."""

    def __init__(self, *, depth: int, fail: set[int], reverse: bool = False) -> None:
        super().__init__("piped", batch=5)
        self.pipeline_depth = depth
        self.fail = fail
        self.reverse = reverse
        self.wire: list[list[int]] = []  # seqs of each batch handed over, in order
        self.open: list[asyncio.Future[None]] = []
        self.max_open = 0

    async def send(
        self, rows: Sequence[OutboxRow], payloads: Sequence[bytes]
    ) -> asyncio.Future[None]:
        number = len(self.wire)
        self.wire.append([r.seq for r in rows])
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.open = [f for f in self.open if not f.done()] + [fut]
        self.max_open = max(self.max_open, len(self.open))
        delay_s = 0.05 * (self.pipeline_depth - len(self.open) + 1) if self.reverse else 0.01

        def settle() -> None:
            if fut.done():
                return
            if number in self.fail:
                fut.set_exception(SinkError(f"batch {number} refused", sink=self.name))
            else:
                self.got.extend(("a", r.seq) for r in rows)
                fut.set_result(None)

        asyncio.get_running_loop().call_later(delay_s, settle)
        return fut


@pytest.mark.parametrize("reverse", [False, True])
async def test_pipelined_sink_keeps_order_and_the_cursor_behind_the_first_failure(
    tmp_path: Path, reverse: bool
) -> None:
    sink = PipelinedSink(depth=3, fail={2, 7}, reverse=reverse)
    pipeline = TelemetryPipeline(_config(tmp_path), sinks=[sink])
    for i in range(60):
        pipeline.emit([Record("a", {"cycle": i})])
    await pipeline.start()
    assert await pipeline.drain(10.0)
    await pipeline.stop()
    assert sink.max_open == 3, "batches must overlap up to the sink's depth"
    # Every seq acknowledged, the outbox empty (drain), and rows handed over for the first
    # time strictly in outbox order.
    assert {s for _, s in sink.got} == set(range(60))
    first_seen: list[int] = []
    for batch in sink.wire:
        first_seen.extend(s for s in batch if s not in first_seen)
    assert first_seen == list(range(60))
    # After the failed batch 2 (seqs 10-14), sending starts over at its first row: the
    # cursor never moved past it, whatever completed after it.
    assert sink.wire[2] == [10, 11, 12, 13, 14]
    restarts = [b[0] for prev, b in zip(sink.wire, sink.wire[1:], strict=False) if b[0] <= prev[0]]
    assert restarts[0] == 10, sink.wire[:8]
    assert len(restarts) == 2
    assert sink.status.errors_total == 2


async def test_without_sinks_nothing_is_stored_and_it_is_said(tmp_path: Path) -> None:
    gm = GatewayMetrics()

    # An earlier run with a sink that never got its rows out left 3 in the outbox.
    class Dead(MemorySink):
        async def publish(self, rows: Sequence[OutboxRow], payloads: Sequence[bytes]) -> None:
            raise SinkError("down", sink=self.name)

    earlier = TelemetryPipeline(_config(tmp_path), sinks=[Dead("dead")])
    earlier.emit([Record("a", {"cycle": i}) for i in range(3)])
    await earlier.stop()

    cfg = _config(tmp_path, max_rows=10)
    with capture_logs() as logs:
        pipeline = TelemetryPipeline(cfg, registry=gm.registry)
        await pipeline.start()
    assert not pipeline.keeps_telemetry
    warnings = [e for e in logs if e["event"] == "telemetry is kept nowhere"]
    assert warnings, logs
    assert "no [[telemetry.sinks]] configured" in warnings[0]["reason"]
    assert "3 envelopes stored by an earlier run" in warnings[0]["reason"]
    for i in range(50):  # far past the cap of 10: with nowhere to go, nothing fills up
        result = await pipeline.emit_async(
            [Record("a", {"cycle": i}), Record("a", {"code": i}, kind="alarm")]
        )
        assert result.envelopes == ()
        assert result.dropped == 0
    assert pipeline.outbox.stats.rows == 3  # the earlier rows wait for a sink, untouched
    assert pipeline.outbox.stats.dropped_total == 0
    health = pipeline.health()
    assert health.status == "ok", health.reasons  # a choice, not a fault: never a 503
    assert "telemetry is kept nowhere" in health.to_dict()["notes"][0]
    s = _samples(gm.registry)
    assert s[("bessai_telemetry_sinks", ())] == 0
    assert s[("bessai_telemetry_not_kept_total", (("kind", "telemetry"), ("site", "a")))] == 50
    assert s[("bessai_telemetry_not_kept_total", (("kind", "alarm"), ("site", "a")))] == 50
    await pipeline.stop()

    # A sink configured later gets what the earlier run stored.
    late = MemorySink("late")
    pipeline = TelemetryPipeline(
        _config(tmp_path), sinks=[late], registry=GatewayMetrics().registry
    )
    await pipeline.start()
    assert await pipeline.drain(5.0)
    assert pipeline.health().notes == ()
    await pipeline.stop()
    assert late.got == [("a", 0), ("a", 1), ("a", 2)]
