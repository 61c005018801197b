"""MQTT sink (paho-mqtt 2.x driven by asyncio): QoS 1, persistent session, a connection per site.

One connection per site because MQTT allows one last will per connection, and each site has
its own retained status topic `bessai/v1/<site>/status` that must turn `offline` when the
gateway vanishes. The broker's PUBACK is the acknowledgement; a broker acknowledges from
memory, which is exactly why rows stay in our outbox until the ack and not a moment less.

Reconnect races (a half-open TCP connection, a broker that accepted the socket and stalled)
show up as acks that never come: the ack-stall watchdog (`ack_timeout_s`) tears the
connection down, and the forwarder re-sends the batch on a fresh one. Re-sending may create
duplicates; consumers remove them by (site_id, seq).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Sequence

import structlog

from bessai.errors import SinkAuthError, SinkError
from bessai.telemetry.config import MqttSinkConfig
from bessai.telemetry.envelope import SITE_DEVICE
from bessai.telemetry.outbox import OutboxRow
from bessai.telemetry.sinks.base import Sink
from bessai.telemetry.sinks.mqtt_link import LinkError, LinkSettings, MqttLink

log = structlog.get_logger(__name__)

# CONNACK codes (3.1.1: 4, 5; 5.0: 0x86, 0x87, 0x8C) that no amount of retrying will fix.
_AUTH_CODES = {4, 5, 0x86, 0x87, 0x8C}


def topic_for(prefix: str, site_id: str, device_id: str | None, kind: str) -> str:
    """The MQTT topic of an envelope."""
    return f"{prefix}/{site_id}/{device_id or SITE_DEVICE}/{kind}"


def status_topic(prefix: str, site_id: str) -> str:
    """The retained online/offline topic of a site."""
    return f"{prefix}/{site_id}/status"


def _tls_context(cfg: MqttSinkConfig) -> ssl.SSLContext | None:
    if not cfg.tls:
        return None
    context = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
    if cfg.cert_file is not None and cfg.key_file is not None:
        context.load_cert_chain(str(cfg.cert_file), str(cfg.key_file))
    return context


#: Messages kept per site for a re-send (about 11 MB of 540-byte envelopes): the window covers
#: live operation many times over; only a large backlog drain can outgrow it.
RESEND_MAX_MESSAGES = 20_000


class _RecentlyAcked:
    """What the broker acknowledged in the last `window_s`, to send again after a break.

    A broker acknowledges QoS 1 from memory and writes its state to disk later (Mosquitto:
    every `autosave_interval`); killed in between, it forgets what it acknowledged, and the
    outbox has already let those rows go. Sending them again on the next connection closes
    the gap at the price of duplicates, which consumers remove by (site_id, seq)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._items: deque[tuple[float, str, bytes]] = deque()
        self._broke_at: float | None = None

    def acked(self, messages: Sequence[tuple[str, bytes]]) -> None:
        if self.window_s <= 0:
            return
        now = time.monotonic()
        self._items.extend((now, topic, payload) for topic, payload in messages)
        items = self._items
        while items and (now - items[0][0] > self.window_s or len(items) > RESEND_MAX_MESSAGES):
            items.popleft()

    def broke(self, at: float | None) -> None:
        """The connection failed at `at`: the next one re-sends what came before it."""
        if self._broke_at is None:
            self._broke_at = at if at is not None else time.monotonic()

    def to_resend(self) -> list[tuple[str, bytes]]:
        """Messages to send again on a new connection (each break is handled once)."""
        broke_at, self._broke_at = self._broke_at, None
        if broke_at is None:
            return []
        since = broke_at - self.window_s
        return [(topic, payload) for at, topic, payload in self._items if at >= since]


class _SiteConnection:
    """One MQTT session for one site, rebuilt from scratch after any failure."""

    def __init__(self, sink: MqttSink, site_id: str) -> None:
        self.sink = sink
        self.site_id = site_id
        self.link: MqttLink | None = None
        self.status_topic = status_topic(sink.config.topic_prefix, site_id)
        self.recent = _RecentlyAcked(sink.config.resend_window_s)

    def _settings(self) -> LinkSettings:
        cfg = self.sink.config
        return LinkSettings(
            host=cfg.host,
            port=cfg.port,
            client_id=f"{cfg.client_id_prefix}-{self.site_id}",
            protocol_v5=cfg.protocol == "5",
            username=cfg.username,
            password=cfg.password.get_secret_value() if cfg.password else None,
            tls_context=_tls_context(cfg),
            keepalive_s=cfg.keepalive_s,
            connect_timeout_s=cfg.connect_timeout_s,
            inflight_max=cfg.inflight_max,
            will_topic=self.status_topic,
            will_payload=b"offline",
        )

    async def ensure(self) -> MqttLink:
        if self.link is not None:
            return self.link
        cfg = self.sink.config
        self.sink.status.state = "connecting"
        try:
            link = await MqttLink.open(self._settings())
        except LinkError as exc:
            if exc.code in _AUTH_CODES:
                self.sink.status.state = "auth_failed"
                raise SinkAuthError(
                    f"MQTT broker {self.sink.target} refused the credentials of user "
                    f"{cfg.username!r} for site {self.site_id}: {exc}; fix username/password "
                    "in [[telemetry.sinks]]",
                    sink=self.sink.name,
                ) from exc
            self.sink.status.state = "disconnected"
            raise SinkError(
                f"MQTT broker {self.sink.target} refused the connection: {exc}", sink=self.sink.name
            ) from exc
        except (OSError, TimeoutError) as exc:
            self.sink.status.state = "disconnected"
            raise SinkError(
                f"cannot connect to MQTT broker {self.sink.target}: "
                f"{str(exc) or type(exc).__name__}",
                sink=self.sink.name,
            ) from exc
        try:
            async with asyncio.timeout(cfg.ack_timeout_s):
                await link.send([(self.status_topic, b"online")], retain=True)
        except (LinkError, TimeoutError) as exc:
            link.abort()
            raise SinkError(
                f"MQTT broker {self.sink.target} did not acknowledge the status message: "
                f"{str(exc) or type(exc).__name__}",
                sink=self.sink.name,
            ) from exc
        self.link = link
        self.sink.status.state = "connected"
        log.info("mqtt connected", sink=self.sink.name, broker=self.sink.target, site=self.site_id)
        again = self.recent.to_resend()
        if again:
            # Ahead of anything new, on the same ordered connection; a failure fails the
            # batch behind it too, and the next connection sends them again.
            link.send(again)
            log.info(
                "mqtt re-sending what the broker acknowledged just before the break",
                sink=self.sink.name,
                site=self.site_id,
                messages=len(again),
            )
        return link

    def drop(self, link: MqttLink) -> None:
        """Close a failed link (no goodbye: the broker publishes the will); the next send
        opens a new one."""
        link.abort()
        self.recent.broke(link.failed_at)
        if self.link is link:
            self.link = None
            self.sink.status.state = "disconnected"

    async def send(
        self, rows: Sequence[OutboxRow], payloads: Sequence[bytes]
    ) -> asyncio.Task[None]:
        """Queue the rows on this site's connection; the task completes with their PUBACKs."""
        link = await self.ensure()
        prefix = self.sink.config.topic_prefix
        messages = [
            (topic_for(prefix, r.site_id, r.device_id, r.kind), p)
            for r, p in zip(rows, payloads, strict=True)
        ]
        try:
            # paho keeps at most inflight_max messages unacknowledged on the wire and queues
            # the rest in order.
            acked = link.send(messages)
        except LinkError as exc:
            self.drop(link)
            raise SinkError(
                f"publish to {self.sink.target} failed: {exc}", sink=self.sink.name
            ) from exc
        return asyncio.create_task(self._confirm(link, acked, messages))

    async def _confirm(
        self, link: MqttLink, acked: asyncio.Future[None], messages: list[tuple[str, bytes]]
    ) -> None:
        try:
            await acked
        except LinkError as exc:
            self.drop(link)
            raise SinkError(
                f"{len(messages)} messages to {self.sink.target} not acknowledged: {exc}; "
                "reconnecting",
                sink=self.sink.name,
            ) from exc
        except asyncio.CancelledError:
            acked.cancel()
            raise
        self.recent.acked(messages)

    async def close(self) -> None:
        link, self.link = self.link, None
        if link is None:
            return
        # A clean shutdown says offline itself; the will covers the unclean one.
        try:
            async with asyncio.timeout(2.0):
                await link.send([(self.status_topic, b"offline")], retain=True)
        except (LinkError, TimeoutError):
            link.abort()
            return
        await link.close()


class MqttSink(Sink):
    """Publishes envelopes to `<topic_prefix>/<site>/<device or _>/<kind>` with QoS 1."""

    def __init__(self, config: MqttSinkConfig) -> None:
        scheme = "mqtts" if config.tls else "mqtt"
        super().__init__(config.name, "mqtt", f"{scheme}://{config.host}:{config.port}")
        self.config = config
        # Two batches on the wire: the next one is queued while the last acks of the one before
        # come in, so the in-flight window never empties between batches (an empty window
        # waits on the broker's Nagle + our delayed ACK: ~40 ms per batch on Linux).
        self.pipeline_depth = 2
        self.batch_max_rows = 4 * config.inflight_max
        self.backoff_initial_s = config.backoff_initial_s
        self.backoff_max_s = config.backoff_max_s
        self._sites: dict[str, _SiteConnection] = {}

    def _site(self, site_id: str) -> _SiteConnection:
        conn = self._sites.get(site_id)
        if conn is None:
            conn = self._sites[site_id] = _SiteConnection(self, site_id)
        return conn

    async def send(
        self, rows: Sequence[OutboxRow], payloads: Sequence[bytes]
    ) -> asyncio.Future[None]:
        """Queue each site's rows on its connection; the future completes when all are acked."""
        by_site: dict[str, tuple[list[OutboxRow], list[bytes]]] = {}
        for row, payload in zip(rows, payloads, strict=True):
            group = by_site.setdefault(row.site_id, ([], []))
            group[0].append(row)
            group[1].append(payload)
        tasks: list[asyncio.Task[None]] = []
        try:
            for site, (site_rows, site_payloads) in by_site.items():
                tasks.append(await self._site(site).send(site_rows, site_payloads))
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        return asyncio.ensure_future(_all_acked(tasks))

    async def publish(self, rows: Sequence[OutboxRow], payloads: Sequence[bytes]) -> None:
        await (await self.send(rows, payloads))

    async def close(self) -> None:
        for conn in self._sites.values():
            await conn.close()
        self.status.state = "idle"


async def _all_acked(tasks: Sequence[asyncio.Task[None]]) -> None:
    try:
        results = await asyncio.gather(*tasks, return_exceptions=True)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        raise
    for result in results:
        if isinstance(result, BaseException):
            raise result
