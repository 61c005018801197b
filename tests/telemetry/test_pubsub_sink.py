"""The Pub/Sub sink with the real google-cloud-pubsub client: against an in-process fake of
the Pub/Sub gRPC Publisher service (errors injected: retried transient ones, a failure the
client gives up on), and against the real Pub/Sub emulator when the Cloud SDK has it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import pytest
from tests.process import LOOPBACK, free_port, wait_for_port

from bessai.errors import SinkError
from bessai.telemetry.config import PubSubSinkConfig
from bessai.telemetry.outbox import OutboxRow

grpc = pytest.importorskip("grpc")
pubsub_types = pytest.importorskip("google.pubsub_v1.types")
from bessai.telemetry.sinks.pubsub import PubSubSink  # noqa: E402

SITES = ("alpha", "beta", "gamma")
EMULATOR = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")


def rows(n_per_site: int, boot: str = "boot1", start: int = 0) -> list[OutboxRow]:
    out = []
    for seq in range(start, start + n_per_site):
        for site in SITES:
            payload = json.dumps(
                {"schema_version": 1, "site_id": site, "device_id": None, "boot_id": boot,
                 "seq": seq, "ts": "2026-01-15T12:00:00.000000Z", "historical": False,
                 "kind": "telemetry", "values": {"soc_pct": 50.0}},
                separators=(",", ":"),
            ).encode()  # fmt: skip
            out.append(OutboxRow(len(out) + 1, site, seq, None, "telemetry", 0, payload))
    return out


class FakePublisher:
    """google.pubsub.v1.Publisher/Publish, in process. `fail` holds the status codes to
    answer the next calls with (one per call), before storing resumes."""

    def __init__(self) -> None:
        self.stored: list[Any] = []
        self.calls = 0
        self.fail: list[Any] = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler(
            "google.pubsub.v1.Publisher",
            {
                "Publish": grpc.unary_unary_rpc_method_handler(
                    self.publish,
                    request_deserializer=pubsub_types.PublishRequest.deserialize,
                    response_serializer=pubsub_types.PublishResponse.serialize,
                )
            },
        )
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port(f"{LOOPBACK}:0")
        self.server.start()

    def publish(self, request: Any, context: Any) -> Any:
        self.calls += 1
        if self.fail:
            context.abort(self.fail.pop(0), "injected by the test")
        ids = []
        for message in request.messages:
            self.stored.append(message)
            ids.append(str(len(self.stored)))
        return pubsub_types.PublishResponse(message_ids=ids)

    def by_site(self) -> dict[str, list[int]]:
        seen: dict[str, list[int]] = {}
        for m in self.stored:
            seen.setdefault(m.ordering_key, []).append(int(m.attributes["seq"]))
        return seen


@pytest.fixture
def fake() -> Iterator[FakePublisher]:
    server = FakePublisher()
    yield server
    server.server.stop(0)


def sink_for(host: str, **extra: Any) -> PubSubSink:
    return PubSubSink(
        PubSubSinkConfig(
            type="pubsub",
            project="bessai-test",
            topic="telemetry",
            emulator_host=host,
            ack_timeout_s=20,
            **extra,
        )
    )


async def test_in_order_with_idempotency_key_through_transient_errors(
    fake: FakePublisher,
) -> None:
    code = grpc.StatusCode
    fake.fail = [code.UNAVAILABLE, code.UNAVAILABLE, code.INTERNAL]
    sink = sink_for(f"{LOOPBACK}:{fake.port}")
    batch = rows(40)
    try:
        await sink.publish(batch, [r.payload for r in batch])
    finally:
        await sink.close()
    assert fake.calls >= 4  # the client retried what the server refused
    assert fake.by_site() == {site: list(range(40)) for site in SITES}
    first = fake.stored[0]
    assert first.attributes["idempotency_key"] == f"{first.ordering_key}:boot1:0"
    assert first.attributes["kind"] == "telemetry"
    assert json.loads(first.data)["seq"] == 0


async def test_a_failed_batch_raises_and_the_resend_keeps_the_order(
    fake: FakePublisher,
) -> None:
    sink = sink_for(f"{LOOPBACK}:{fake.port}")
    try:
        first = rows(5)
        await sink.publish(first, [r.payload for r in first])
        # Not retryable: the client gives up, the sink raises, the forwarder would resend.
        fake.fail = [grpc.StatusCode.PERMISSION_DENIED] * 3
        second = rows(5, start=5)
        with pytest.raises(SinkError, match="not stored"):
            await sink.publish(second, [r.payload for r in second])
        assert sink.status.state == "disconnected"
        fake.fail = []
        await sink.publish(second, [r.payload for r in second])
        assert sink.status.state == "connected"
    finally:
        await sink.close()
    for site, seqs in fake.by_site().items():
        # Each site in seq order; a message stored before the failure may come twice.
        assert sorted(set(seqs)) == list(range(10)), site
        assert seqs == sorted(seqs), site


def test_the_sink_is_configurable_from_toml() -> None:
    from bessai.telemetry.config import TelemetryConfig

    cfg = TelemetryConfig.model_validate(
        {"sinks": [{"type": "pubsub", "project": "my-project", "topic": "bess"}]}
    )
    assert isinstance(cfg.sinks[0], PubSubSinkConfig)
    with pytest.raises(ValueError, match="project"):
        TelemetryConfig.model_validate(
            {"sinks": [{"type": "pubsub", "project": "X", "topic": "t"}]}
        )


# -- the real emulator --------------------------------------------------------------------------


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("cloud-pubsub-emulator") or (str(EMULATOR) if EMULATOR.exists() else None)
    if binary is None or shutil.which("java") is None:
        pytest.skip(
            "the Pub/Sub emulator is not installed (Google Cloud SDK component "
            "'pubsub-emulator' and a Java runtime); the in-process fake covers the sink"
        )
    port = free_port()
    log = (tmp_path / "emulator.log").open("wb")
    proc = subprocess.Popen(
        [binary, f"--host={LOOPBACK}", f"--port={port}"], stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port, timeout_s=60)
        yield f"{LOOPBACK}:{port}"
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(10)
        log.close()


async def test_emulator_delivers_in_order_per_site(
    emulator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.cloud import pubsub_v1

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator)
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic = publisher.topic_path("bessai-test", "telemetry")
    sub = subscriber.subscription_path("bessai-test", "fleet")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(
        request={"name": sub, "topic": topic, "enable_message_ordering": True}
    )
    sink = sink_for(emulator)
    batch = rows(30)
    try:
        await sink.publish(batch, [r.payload for r in batch])
    finally:
        await sink.close()
    seen: dict[str, list[int]] = {}
    keys: set[str] = set()
    deadline = time.monotonic() + 30
    while sum(len(v) for v in seen.values()) < len(batch) and time.monotonic() < deadline:
        response = await asyncio.to_thread(
            subscriber.pull, request={"subscription": sub, "max_messages": 100}, timeout=10
        )
        for received in response.received_messages:
            m = received.message
            seen.setdefault(m.ordering_key, []).append(int(m.attributes["seq"]))
            keys.add(m.attributes["idempotency_key"])
        if response.received_messages:
            subscriber.acknowledge(
                request={"subscription": sub,
                         "ack_ids": [r.ack_id for r in response.received_messages]}
            )  # fmt: skip
    subscriber.close()
    assert seen == {site: list(range(30)) for site in SITES}
    assert keys == {f"{r.site_id}:boot1:{r.seq}" for r in batch}


async def test_pipeline_keeps_rows_until_pubsub_stored_them(
    fake: FakePublisher, tmp_path: Path
) -> None:
    """Outbox -> forwarder -> Pub/Sub: while the service refuses (not retryable), every row
    stays in the outbox; once it accepts, all arrive, each site in seq order."""
    from brokers import wait_until

    from bessai.telemetry import Record, TelemetryConfig, TelemetryPipeline

    fake.fail = [grpc.StatusCode.PERMISSION_DENIED] * 1000
    config = TelemetryConfig.model_validate(
        {
            "outbox_path": tmp_path / "o.sqlite",
            "sinks": [{"type": "pubsub", "project": "bessai-test", "topic": "telemetry",
                       "emulator_host": f"{LOOPBACK}:{fake.port}", "backoff_initial_s": 0.1,
                       "backoff_max_s": 0.2}],
        }
    )  # fmt: skip
    pipeline = TelemetryPipeline(config)
    await pipeline.start()
    try:
        for i in range(20):
            await pipeline.emit_async([Record(site, {"cycle": i}) for site in SITES])
        await wait_until(lambda: fake.calls >= 3, 10.0, "publish attempts")
        assert fake.stored == []
        assert pipeline.outbox.pending_for("pubsub")[0] == 60
        fake.fail = []
        assert await pipeline.drain(20.0)
    finally:
        await pipeline.stop()
    for site, seqs in fake.by_site().items():
        assert sorted(set(seqs)) == list(range(20)), site
        assert seqs == sorted(seqs), site
    boot = pipeline.boot_id
    keys = {m.attributes["idempotency_key"] for m in fake.stored}
    assert keys == {f"{site}:{boot}:{seq}" for site in SITES for seq in range(20)}
