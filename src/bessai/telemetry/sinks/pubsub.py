"""Google Cloud Pub/Sub sink (extra `bessai[gcp]`, google-cloud-pubsub).

One Pub/Sub message per envelope, published with message ordering: the ordering key is the
site, so a subscriber with ordering enabled gets each site's envelopes in seq order. Each
message carries the attributes `idempotency_key` = "<site_id>:<boot_id>:<seq>", `site_id`,
`kind` and `seq`, because Pub/Sub delivers at least once and our own re-sends after a failure
publish again. A batch counts as sent only when every publish future has resolved (the server
stored the message). The client library retries transient errors (UNAVAILABLE, ...) itself. A
failure it gives up on fails the batch: the ordering key is resumed and the forwarder resends
the batch from the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from typing import Any

import structlog

from bessai.errors import SinkError
from bessai.telemetry.config import PubSubSinkConfig
from bessai.telemetry.outbox import OutboxRow
from bessai.telemetry.sinks.base import Sink

log = structlog.get_logger(__name__)

# The stored payload always has "boot_id":"..." (the envelope's own JSON, no spaces).
_BOOT_RE = re.compile(rb'"boot_id":"([^"]*)"')


def idempotency_key(row: OutboxRow) -> str:
    """ "<site_id>:<boot_id>:<seq>": the fleet's key of an envelope."""
    found = _BOOT_RE.search(row.payload)
    boot = found.group(1).decode() if found else ""
    return f"{row.site_id}:{boot}:{row.seq}"


def make_publisher(config: PubSubSinkConfig) -> Any:
    """A PublisherClient with message ordering, for Google Cloud or an emulator."""
    try:
        import google.cloud.pubsub_v1 as pubsub_v1
    except ImportError:
        raise SinkError(
            "the pubsub sink needs the gcp extra: pip install 'bessai[gcp]'", sink=config.name
        ) from None
    options = pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    # Batches leave at once: the forwarder already batches, and waits for the acks.
    batching = pubsub_v1.types.BatchSettings(max_messages=1000, max_latency=0.005)
    if config.emulator_host is not None:
        import grpc
        from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

        channel = grpc.insecure_channel(config.emulator_host)
        transport = PublisherGrpcTransport(channel=channel)
        return pubsub_v1.PublisherClient(
            batch_settings=batching, publisher_options=options, transport=transport
        )
    if config.credentials_file is not None:
        return pubsub_v1.PublisherClient.from_service_account_file(
            str(config.credentials_file), batch_settings=batching, publisher_options=options
        )
    return pubsub_v1.PublisherClient(batch_settings=batching, publisher_options=options)


class PubSubSink(Sink):
    """Publishes each batch in order per site and returns once every message is stored."""

    def __init__(self, config: PubSubSinkConfig) -> None:
        target = config.emulator_host or "pubsub.googleapis.com"
        super().__init__(config.name, "pubsub", f"{target}/{config.project}/{config.topic}")
        self.config = config
        self.backoff_initial_s = config.backoff_initial_s
        self.backoff_max_s = config.backoff_max_s
        self.topic_path = f"projects/{config.project}/topics/{config.topic}"
        self._client: Any = None

    def _publisher(self) -> Any:
        if self._client is None:
            self.status.state = "connecting"
            self._client = make_publisher(self.config)
        return self._client

    async def publish(self, rows: Sequence[OutboxRow], payloads: Sequence[bytes]) -> None:
        client = self._publisher()
        futures: list[tuple[str, asyncio.Future[Any]]] = []
        for row, payload in zip(rows, payloads, strict=True):
            fut = client.publish(
                self.topic_path,
                payload,
                ordering_key=row.site_id,
                idempotency_key=idempotency_key(row),
                site_id=row.site_id,
                kind=row.kind,
                seq=str(row.seq),
            )
            futures.append((row.site_id, asyncio.wrap_future(fut)))
        try:
            async with asyncio.timeout(self.config.ack_timeout_s):
                results = await asyncio.gather(*(f for _, f in futures), return_exceptions=True)
        except TimeoutError:
            results = [TimeoutError("no answer")]
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            # After a failure the client refuses the key's later messages until resumed; the
            # forwarder resends this batch, so the order per site is kept.
            for key in {site for site, _ in futures}:
                with contextlib.suppress(Exception):
                    client.resume_publish(self.topic_path, key)
            self.status.state = "disconnected"
            first = failures[0]
            raise SinkError(
                f"Pub/Sub {self.topic_path}: {len(failures)} of {len(rows)} messages not "
                f"stored ({type(first).__name__}: {str(first)[:200]})",
                sink=self.name,
            )
        self.status.state = "connected"

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(client.stop)
        self.status.state = "idle"
