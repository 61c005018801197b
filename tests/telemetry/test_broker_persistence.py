"""What a broker crash does to messages it has acknowledged (docs/telemetry.md, "Running
Mosquitto"). Mosquitto acknowledges QoS 1 from memory and writes a snapshot of its state every
`autosave_interval`; a SIGKILL loses what came after the last snapshot, and the outbox let those
rows go at the PUBACK. With the recommended settings (a snapshot at most a minute old) and the
sink's re-send window (longer than that), every acknowledged message still reaches a persistent
subscriber; without the window, they are lost."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from brokers import BrokerProcess, SeqRecorder, _mosquitto, wait_until
from paho.mqtt.enums import CallbackAPIVersion
from tests.process import LOOPBACK

from bessai.telemetry import Record, TelemetryConfig, TelemetryPipeline

# What docs/telemetry.md recommends: a time-based snapshot at most 60 s old (cheap whatever
# the queue size), queues for offline persistent subscribers not capped at the default 1000.
RECOMMENDED = ("autosave_interval 60", "autosave_on_changes false")
N = 300


class OfflineSubscriber(SeqRecorder):
    """A persistent QoS 1 session that is offline while the gateway publishes."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="fleet-ingest", clean_session=False
        )
        self.client.on_message = lambda _c, _u, msg: self.add(msg.payload)

    def subscribe_once(self) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_: done.set()
        self.client.connect(LOOPBACK, self.port)
        self.client.loop_start()
        self.client.subscribe("bessai/v1/+/+/+", qos=1)
        assert done.wait(10), "subscription not acknowledged"
        self.leave()

    def come_back(self) -> None:
        self.client.connect(LOOPBACK, self.port)  # same id, clean_session false: the queue
        self.client.loop_start()

    def leave(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _config(tmp_path: Path, port: int, resend_window_s: float) -> TelemetryConfig:
    sink: dict[str, Any] = {
        "type": "mqtt",
        "port": port,
        "connect_timeout_s": 1.0,
        "ack_timeout_s": 2.0,
        "backoff_initial_s": 0.1,
        "backoff_max_s": 0.5,
        "resend_window_s": resend_window_s,
    }
    return TelemetryConfig.model_validate(
        {"outbox_path": tmp_path / f"outbox-{resend_window_s:g}.sqlite", "sinks": [sink]}
    )


async def _acked_then_broker_killed(
    tmp_path: Path, resend_window_s: float
) -> tuple[OfflineSubscriber, BrokerProcess]:
    broker = _mosquitto(tmp_path, autosave=RECOMMENDED)
    broker.start()
    subscriber = OfflineSubscriber(broker.port)
    subscriber.subscribe_once()
    broker.stop()  # a clean stop saves: the subscription is in the snapshot, as it would be
    broker.start()  # for any subscriber older than one autosave interval
    pipeline = TelemetryPipeline(_config(tmp_path, broker.port, resend_window_s))
    await pipeline.start()
    try:
        for i in range(N):
            await pipeline.emit_async([Record("alpha", {"cycle": i})])
        assert await pipeline.drain(10.0)
        assert pipeline.outbox.stats.rows == 0  # every row PUBACKed and gone from the outbox
        broker.kill()  # SIGKILL, well before the next snapshot
        broker.start()
        # The cycle goes on: the next envelope finds the broken connection and reconnects.
        await pipeline.emit_async([Record("alpha", {"cycle": N})])
        assert await pipeline.drain(10.0)
    finally:
        await pipeline.stop()
    subscriber.come_back()
    return subscriber, broker


async def test_acknowledged_messages_survive_a_broker_kill_with_the_recommended_setup(
    tmp_path: Path,
) -> None:
    subscriber, broker = await _acked_then_broker_killed(tmp_path, resend_window_s=120)
    try:
        await wait_until(lambda: subscriber.unique("alpha") == set(range(N + 1)), 10.0, "every seq")
    finally:
        subscriber.leave()
        broker.kill()


async def test_without_the_resend_window_a_broker_kill_loses_what_it_acknowledged(
    tmp_path: Path,
) -> None:
    subscriber, broker = await _acked_then_broker_killed(tmp_path, resend_window_s=0)
    try:
        await wait_until(lambda: N in subscriber.unique("alpha"), 10.0, "the envelope after")
        await asyncio.sleep(1.0)
        # The broker's snapshot predates them and the outbox let them go at the PUBACK.
        assert subscriber.unique("alpha") == {N}
    finally:
        subscriber.leave()
        broker.kill()
