"""NATS JetStream sink: every message is published with an acknowledgement and a
`Nats-Msg-Id` of "<site_id>:<seq>", so the server drops the duplicates our re-sends create
(within the stream's duplicate window).

Stream: when absent and `create_stream` is true, the sink creates `<stream>` over
`<subject_prefix>.>` with file storage and the configured duplicate window. Subjects are
`<subject_prefix>.<site>.<device or _>.<kind>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence

import nats.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import PubAck, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from bessai.errors import SinkAuthError, SinkError
from bessai.telemetry.config import NatsSinkConfig
from bessai.telemetry.envelope import SITE_DEVICE
from bessai.telemetry.outbox import OutboxRow
from bessai.telemetry.sinks.base import Sink

log = structlog.get_logger(__name__)


def subject_for(prefix: str, site_id: str, device_id: str | None, kind: str) -> str:
    """The NATS subject of an envelope."""
    return f"{prefix}.{site_id}.{device_id or SITE_DEVICE}.{kind}"


def stream_config(cfg: NatsSinkConfig) -> StreamConfig:
    """The stream the sink creates when it is absent (documented in docs/telemetry.md)."""
    return StreamConfig(
        name=cfg.stream,
        subjects=[f"{cfg.subject_prefix}.>"],
        storage=StorageType.FILE,
        duplicate_window=cfg.duplicate_window_s,
    )


class NatsSink(Sink):
    """Publishes to JetStream with acks and server-side de-duplication."""

    def __init__(self, config: NatsSinkConfig) -> None:
        super().__init__(config.name, "nats", ",".join(config.servers))
        self.config = config
        self.backoff_initial_s = config.backoff_initial_s
        self.backoff_max_s = config.backoff_max_s
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._last_conn_error: str | None = None
        self.duplicates_total = 0

    async def _on_error(self, exc: Exception) -> None:
        self._last_conn_error = str(exc) or type(exc).__name__

    async def _on_disconnected(self) -> None:
        if self._nc is not None:
            self.status.state = "disconnected"

    async def _on_reconnected(self) -> None:
        self.status.state = "connected"
        log.info("nats reconnected", sink=self.name, servers=self.target)

    async def _ensure(self) -> JetStreamContext:
        if self._js is not None:
            return self._js
        cfg = self.config
        self.status.state = "connecting"
        nc = NatsClient()
        tls: ssl.SSLContext | None = None
        if cfg.tls_ca_file is not None:
            tls = ssl.create_default_context(cafile=str(cfg.tls_ca_file))
        self._last_conn_error = None
        try:
            async with asyncio.timeout(cfg.connect_timeout_s):
                # Reconnecting forever is right once connected (nats-py buffers meanwhile);
                # the first connection is bounded by our timeout so errors surface.
                await nc.connect(
                    servers=cfg.servers,
                    user=cfg.user,
                    password=cfg.password.get_secret_value() if cfg.password else None,
                    token=cfg.token.get_secret_value() if cfg.token else None,
                    tls=tls,
                    name=f"bessai-{cfg.name}",
                    connect_timeout=max(1, int(cfg.connect_timeout_s)),
                    reconnect_time_wait=1,
                    max_reconnect_attempts=-1,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            reason = self._last_conn_error or str(exc) or type(exc).__name__
            if "authorization" in reason.lower() or "authentication" in reason.lower():
                self.status.state = "auth_failed"
                raise SinkAuthError(
                    f"NATS server {self.target} refused the credentials: {reason}; fix "
                    "user/password/token in [[telemetry.sinks]]",
                    sink=self.name,
                ) from exc
            self.status.state = "disconnected"
            raise SinkError(
                f"cannot connect to NATS {self.target}: {reason}", sink=self.name
            ) from exc
        # The in-flight window: nats-py blocks publish_async beyond this many unacked.
        js = nc.jetstream(timeout=cfg.ack_timeout_s, publish_async_max_pending=cfg.inflight_max)
        try:
            await self._ensure_stream(js)
        except BaseException:
            with contextlib.suppress(Exception):
                await nc.close()
            raise
        self._nc, self._js = nc, js
        self.status.state = "connected"
        log.info("nats connected", sink=self.name, servers=self.target, stream=cfg.stream)
        return js

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        cfg = self.config
        try:
            await js.stream_info(cfg.stream)
            return
        except NotFoundError:
            if not cfg.create_stream:
                raise SinkError(
                    f"JetStream stream {cfg.stream!r} does not exist on {self.target} and "
                    "create_stream = false: create it (see docs/telemetry.md)",
                    sink=self.name,
                ) from None
        except (TimeoutError, nats.errors.Error) as exc:
            raise SinkError(
                f"JetStream is not answering on {self.target} (is the server run with -js?): "
                f"{str(exc) or type(exc).__name__}",
                sink=self.name,
            ) from exc
        try:
            await js.add_stream(stream_config(cfg))
        except (TimeoutError, nats.errors.Error) as exc:
            raise SinkError(
                f"cannot create JetStream stream {cfg.stream!r} on {self.target}: {exc}",
                sink=self.name,
            ) from exc
        log.info("nats stream created", sink=self.name, stream=cfg.stream)

    async def publish(self, rows: Sequence[OutboxRow], payloads: Sequence[bytes]) -> None:
        js = await self._ensure()
        cfg = self.config
        futures: list[asyncio.Future[PubAck]] = []
        try:
            async with asyncio.timeout(cfg.ack_timeout_s):
                for row, payload in zip(rows, payloads, strict=True):
                    fut = await js.publish_async(
                        subject_for(cfg.subject_prefix, row.site_id, row.device_id, row.kind),
                        payload,
                        headers={"Nats-Msg-Id": row.key},
                    )
                    futures.append(fut)
                acks = await asyncio.gather(*futures)
        except (TimeoutError, nats.errors.Error) as exc:
            for fut in futures:
                fut.cancel()
            raise SinkError(
                f"JetStream did not acknowledge {len(rows)} messages within "
                f"{cfg.ack_timeout_s:g} s ({str(exc) or type(exc).__name__})",
                sink=self.name,
            ) from exc
        self.duplicates_total += sum(1 for a in acks if a.duplicate)

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
        self.status.state = "idle"
