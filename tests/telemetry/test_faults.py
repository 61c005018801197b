"""Fault tests against real brokers: every committed seq must reach an independent subscriber.

Each test streams envelopes (a cycle every 50 ms instead of 5 s, so outages span hundreds
of cycles), breaks something for real, and then checks, per site, that the subscriber saw
every seq from 0 to the last one committed. Duplicates are counted and reported, never a
failure: delivery is at-least-once by design.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from brokers import (
    MQTT_PASSWORD,
    MQTT_USER,
    BrokerProcess,
    MqttRecorder,
    TcpProxy,
    _mosquitto,
    established_to,
    make_proxy,
    nats_process,
    nats_stream_keys,
    wait_until,
)
from structlog.testing import capture_logs

from bessai.telemetry import Record, TelemetryConfig, TelemetryPipeline

SITES = ("alpha", "beta")
CYCLE_S = 0.05
# After the fault ends, the backlog must be gone within this (stated in docs/telemetry.md).
DRAIN_DEADLINE_S = 15.0


def mqtt_sink(port: int, **over: Any) -> dict[str, Any]:
    return {
        "type": "mqtt",
        "port": port,
        "keepalive_s": 5,
        "connect_timeout_s": 1.0,
        "ack_timeout_s": 2.0,
        "backoff_initial_s": 0.1,
        "backoff_max_s": 1.0,
        **over,
    }


def nats_sink(port: int, **over: Any) -> dict[str, Any]:
    return {
        "type": "nats",
        "servers": [f"nats://127.0.0.1:{port}"],
        "connect_timeout_s": 1.0,
        "ack_timeout_s": 2.0,
        "backoff_initial_s": 0.1,
        "backoff_max_s": 1.0,
        **over,
    }


def config(tmp_path: Path, sinks: list[dict[str, Any]], **over: Any) -> TelemetryConfig:
    return TelemetryConfig.model_validate(
        {
            "outbox_path": tmp_path / "outbox.sqlite",
            "sinks": sinks,
            "historical_after_s": 3.0,
            **over,
        }
    )


@dataclass
class Stream:
    """Emits one cycle (one envelope per site, an alarm now and then) every CYCLE_S."""

    pipeline: TelemetryPipeline
    committed: dict[str, set[int]] = field(default_factory=lambda: {s: set() for s in SITES})
    alarms: set[tuple[str, int]] = field(default_factory=set)
    max_emit_s: float = 0.0
    cycles: int = 0
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            records = [Record(site, {"soc_pct": 50.0, "cycle": self.cycles}) for site in SITES]
            if self.cycles % 25 == 0:
                records.append(Record(SITES[0], {"code": self.cycles}, kind="alarm"))
            t0 = time.monotonic()
            result = await self.pipeline.emit_async(records)
            self.max_emit_s = max(self.max_emit_s, time.monotonic() - t0)
            for env in result.envelopes:
                self.committed[env.site_id].add(env.seq)
                if env.kind == "alarm":
                    self.alarms.add((env.site_id, env.seq))
            self.cycles += 1
            await asyncio.sleep(CYCLE_S)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def backlog_gone_after(pipeline: TelemetryPipeline, t_restore: float) -> float:
    """Seconds from the end of the fault until the outage backlog has left the outbox
    (the stream keeps adding a couple of rows per cycle meanwhile)."""
    await wait_until(
        lambda: pipeline.outbox.stats.rows <= 2 * len(SITES), DRAIN_DEADLINE_S, "backlog drained"
    )
    elapsed = time.monotonic() - t_restore
    print(f"backlog drained {elapsed:.1f} s after the fault ended")
    assert elapsed <= DRAIN_DEADLINE_S
    return elapsed


def assert_all_arrived(stream: Stream, received: list[tuple[str, int]], what: str) -> int:
    """Every committed seq arrived; returns the number of duplicates (reported, not failed)."""
    for site in SITES:
        got = {seq for s, seq in received if s == site}
        committed = stream.committed[site]
        assert committed == set(range(len(committed))), f"{site}: outbox seq has a gap"
        missing = sorted(committed - got)
        assert not missing, f"{what}: {len(missing)} seq of {site} never arrived: {missing[:20]}"
    dupes = len(received) - len(set(received))
    print(f"{what}: {len(set(received))} unique, {dupes} duplicates")
    return dupes


@pytest.mark.slow
async def test_brokers_killed_for_10s_lose_nothing(
    mosquitto: BrokerProcess, nats_server: BrokerProcess, tmp_path: Path
) -> None:
    recorder = MqttRecorder(mosquitto.port)
    pipeline = TelemetryPipeline(
        config(tmp_path, [mqtt_sink(mosquitto.port), nats_sink(nats_server.port)])
    )
    await pipeline.start()
    stream = Stream(pipeline)
    stream.start()
    try:
        await asyncio.sleep(2.0)
        mosquitto.kill()
        nats_server.kill()
        await asyncio.sleep(10.0)
        assert pipeline.outbox.stats.rows > 100, "the outbox should hold the outage backlog"
        t_restore = time.monotonic()
        mosquitto.start()
        nats_server.start()
        await backlog_gone_after(pipeline, t_restore)
        await stream.stop()
        assert await pipeline.drain(DRAIN_DEADLINE_S), "outbox did not drain in time"
        await wait_until(
            lambda: all(len(recorder.unique(s)) >= len(stream.committed[s]) for s in SITES),
            5.0,
            "the MQTT subscriber to catch up",
        )
    finally:
        await pipeline.stop()
        recorder.close()
    assert_all_arrived(stream, recorder.received, "mqtt")
    assert {k for k, kind in recorder.kinds.items() if kind == "alarm"} == stream.alarms
    assert recorder.historical, "envelopes held back by the outage must be flagged historical"
    nats_keys = await nats_stream_keys(nats_server.port)
    # JetStream removes our re-sends by Nats-Msg-Id: the stream holds each key once.
    assert assert_all_arrived(stream, nats_keys, "nats") == 0
    # The cycle only ever waited on its local commit, never on the dead brokers (a blocked
    # emit lasts a publish timeout, 2 s, or the whole outage; the bound leaves room for a
    # loaded machine's scheduling, not for either).
    assert stream.max_emit_s < 1.5


@pytest.mark.slow
async def test_network_cut_for_20s_loses_nothing(
    mosquitto: BrokerProcess,
    nats_server: BrokerProcess,
    tcp_proxy_factory: list[TcpProxy],
    tmp_path: Path,
) -> None:
    recorder = MqttRecorder(mosquitto.port)  # the subscriber is on the broker's side
    mqtt_proxy = await make_proxy(tcp_proxy_factory, mosquitto.port)
    nats_proxy = await make_proxy(tcp_proxy_factory, nats_server.port)
    pipeline = TelemetryPipeline(
        config(
            tmp_path,
            [mqtt_sink(mqtt_proxy.port), nats_sink(nats_proxy.port)],
            sink_stale_after_s=5.0,
        )
    )
    await pipeline.start()
    stream = Stream(pipeline)
    stream.start()
    try:
        await asyncio.sleep(2.0)
        connections_before = mqtt_proxy.connections
        mqtt_proxy.cut()
        nats_proxy.cut()
        await asyncio.sleep(20.0)
        # Each reconnect attempt during the cut opened a socket; failed ones must be closed,
        # or a long outage exhausts file descriptors. (The proxy keeps its side open, so a
        # leaked client socket would stay ESTABLISHED.) At most one attempt per site's
        # connection is in flight at any time.
        attempts = mqtt_proxy.connections - connections_before
        assert attempts >= 2 * len(SITES)
        assert established_to(mqtt_proxy.port) <= len(SITES), f"{attempts} attempts"
        health = pipeline.health()
        assert health.status == "degraded"
        assert any("failing for" in r for r in health.reasons), health.reasons
        t_restore = time.monotonic()
        mqtt_proxy.restore()
        nats_proxy.restore()
        await backlog_gone_after(pipeline, t_restore)
        await stream.stop()
        assert await pipeline.drain(DRAIN_DEADLINE_S), "outbox did not drain in time"
        assert pipeline.health().status == "ok", pipeline.health().reasons
        # The broker saw the dead link (keep-alive): the last will said offline, and the
        # reconnect said online again.
        topic = f"bessai/v1/{SITES[0]}/status"
        assert (topic, b"offline") in recorder.status_history
        assert recorder.status.get(topic) == b"online"
        await wait_until(
            lambda: all(len(recorder.unique(s)) >= len(stream.committed[s]) for s in SITES),
            5.0,
            "the MQTT subscriber to catch up",
        )
    finally:
        await pipeline.stop()
        recorder.close()
    assert_all_arrived(stream, recorder.received, "mqtt")
    assert mqtt_proxy.connections > 1, "the ack-stall watchdog should have reconnected"
    assert assert_all_arrived(stream, await nats_stream_keys(nats_server.port), "nats") == 0
    # Emitting must not wait for a broker: a blocked emit lasts a publish timeout (2 s) or the
    # whole cut; the bound leaves room for a loaded machine's scheduling, not for either.
    assert stream.max_emit_s < 1.5


async def test_wrong_credentials_are_reported_retried_and_lose_nothing(
    mosquitto_auth: BrokerProcess, tmp_path: Path
) -> None:
    # The independent subscriber has the right credentials; only the gateway's are wrong.
    recorder = MqttRecorder(mosquitto_auth.port, username=MQTT_USER, password=MQTT_PASSWORD)
    bad = config(
        tmp_path,
        [mqtt_sink(mosquitto_auth.port, username=MQTT_USER, password="wrong")],
        sink_stale_after_s=1.0,
    )
    with capture_logs() as logs:
        pipeline = TelemetryPipeline(bad)
        await pipeline.start()
        for i in range(20):
            await pipeline.emit_async([Record("alpha", {"cycle": i})])
        await asyncio.sleep(3.0)
        health = pipeline.health()
        status = pipeline.sinks[0].status
        state_before_stop = status.state
        await pipeline.stop()
    assert health.status == "degraded"
    assert any("credentials refused" in r and MQTT_USER in r for r in health.reasons), health
    errors = [e for e in logs if e["event"] == "sink publish failed, will retry"]
    assert errors, logs
    assert "refused the credentials" in errors[0]["error"]
    assert errors[0]["auth"] is True
    # Back-off: 0.1 s doubling to 1 s allows at most ~8 attempts in 3 s (hundreds without).
    assert 2 <= status.errors_total <= 10, status.errors_total
    assert state_before_stop == "auth_failed"

    # The operator fixes the password: everything that waited in the outbox goes out.
    good = config(
        tmp_path, [mqtt_sink(mosquitto_auth.port, username=MQTT_USER, password=MQTT_PASSWORD)]
    )
    pipeline = TelemetryPipeline(good)
    await pipeline.start()
    try:
        assert await pipeline.drain(DRAIN_DEADLINE_S)
        await wait_until(lambda: len(recorder.unique("alpha")) == 20, 5.0, "20 envelopes")
        assert pipeline.health().status == "ok"
    finally:
        await pipeline.stop()
        recorder.close()
    assert recorder.unique("alpha") == set(range(20))


async def test_unreachable_brokers_are_reported_and_caught_up(tmp_path: Path) -> None:
    # The subscriber's persistent session is made first and saved by the broker, so it
    # receives what the gateway sends the moment the broker comes back.
    mqtt_broker = _mosquitto(tmp_path)
    mqtt_broker.start()
    recorder = MqttRecorder(mqtt_broker.port)
    await asyncio.sleep(1.5)  # autosave_interval 1
    mqtt_broker.kill()
    nats_broker = nats_process(tmp_path)  # port chosen, never started yet
    cfg = config(
        tmp_path,
        [mqtt_sink(mqtt_broker.port), nats_sink(nats_broker.port)],
        sink_stale_after_s=1.0,
    )
    with capture_logs() as logs:
        pipeline = TelemetryPipeline(cfg)
        await pipeline.start()
        for i in range(30):
            await pipeline.emit_async([Record("alpha", {"cycle": i})])
        await asyncio.sleep(3.5)  # NATS gives up its first connect after 1 s
        health = pipeline.health()
    try:
        assert health.status == "degraded"
        reasons = " | ".join(health.reasons)
        assert f"cannot connect to MQTT broker mqtt://127.0.0.1:{mqtt_broker.port}" in reasons
        assert f"cannot connect to NATS nats://127.0.0.1:{nats_broker.port}" in reasons
        assert health.outbox["rows"] == 30
        assert health.sinks["mqtt"]["state"] == "disconnected"
        assert health.sinks["mqtt"]["oldest_pending_age_s"] > 3.0
        assert {e["sink"] for e in logs if e["event"] == "sink publish failed, will retry"} == {
            "mqtt",
            "nats",
        }
        mqtt_broker.start()
        nats_broker.start()
        assert await pipeline.drain(DRAIN_DEADLINE_S)
        await wait_until(lambda: len(recorder.unique("alpha")) == 30, 5.0, "30 envelopes")
        assert pipeline.health().status == "ok"
    finally:
        recorder.close()
        await pipeline.stop()
        mqtt_broker.kill()
        nats_broker.kill()
    nats_keys = await _keys_after_restart(nats_broker)
    assert sorted(s for _, s in nats_keys) == list(range(30))


async def _keys_after_restart(broker: BrokerProcess) -> list[tuple[str, int]]:
    broker.start()
    try:
        return await nats_stream_keys(broker.port)
    finally:
        broker.kill()
