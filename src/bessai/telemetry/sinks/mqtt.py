"""MQTT sink (aiomqtt over paho-mqtt 2.x): QoS 1, persistent session, one connection per site.

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
import contextlib
import logging
import math
import ssl
from collections.abc import Sequence

import aiomqtt
import paho.mqtt.client as paho
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bessai.errors import SinkAuthError, SinkError
from bessai.telemetry.config import MqttSinkConfig
from bessai.telemetry.envelope import SITE_DEVICE
from bessai.telemetry.outbox import OutboxRow
from bessai.telemetry.sinks.base import Sink

log = structlog.get_logger(__name__)

# aiomqtt warns once per queued publish beyond ten; a full in-flight window is our normal
# operating point, so only its errors are worth a log line.
_PAHO_LOG = logging.getLogger("bessai.telemetry.mqtt.paho")
_PAHO_LOG.setLevel(logging.ERROR)

# CONNACK codes (3.1.1: 4, 5; 5.0: 0x86, 0x87, 0x8C) that no amount of retrying will fix.
_AUTH_CODES = {4, 5, 0x86, 0x87, 0x8C}


def topic_for(prefix: str, site_id: str, device_id: str | None, kind: str) -> str:
    return f"{prefix}/{site_id}/{device_id or SITE_DEVICE}/{kind}"


def status_topic(prefix: str, site_id: str) -> str:
    return f"{prefix}/{site_id}/status"


def _abandon(client: aiomqtt.Client) -> None:
    """Close the socket of a client whose connect failed or timed out.

    aiomqtt leaves it open in that case; during a long outage every retry would leak a file
    descriptor (and a half-open connection the broker must time out). paho's `_sock_close`
    also unregisters the socket from the event loop before closing it."""
    with contextlib.suppress(Exception):
        client._client._sock_close()


def _rc_value(rc: object) -> int | None:
    value = getattr(rc, "value", rc)
    return value if isinstance(value, int) else None


class _SiteConnection:
    """One MQTT session for one site, rebuilt from scratch after any failure."""

    def __init__(self, sink: MqttSink, site_id: str) -> None:
        self.sink = sink
        self.site_id = site_id
        self.client: aiomqtt.Client | None = None
        self.status_topic = status_topic(sink.config.topic_prefix, site_id)

    def _make_client(self) -> aiomqtt.Client:
        cfg = self.sink.config
        tls_context: ssl.SSLContext | None = None
        if cfg.tls:
            tls_context = ssl.create_default_context(
                cafile=str(cfg.ca_file) if cfg.ca_file else None
            )
            if cfg.cert_file is not None and cfg.key_file is not None:
                tls_context.load_cert_chain(str(cfg.cert_file), str(cfg.key_file))
        v5 = cfg.protocol == "5"
        properties: Properties | None = None
        if v5:
            # MQTT 5 keeps a session only for its expiry interval; an hour covers outages
            # that matter here, and the outbox covers the rest.
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 3600
        return aiomqtt.Client(
            hostname=cfg.host,
            port=cfg.port,
            username=cfg.username,
            password=cfg.password.get_secret_value() if cfg.password else None,
            identifier=f"{cfg.client_id_prefix}-{self.site_id}",
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            will=aiomqtt.Will(self.status_topic, b"offline", qos=1, retain=True),
            clean_session=None if v5 else False,
            clean_start=False if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
            keepalive=cfg.keepalive_s,
            timeout=cfg.connect_timeout_s,
            max_inflight_messages=cfg.inflight_max,
            tls_context=tls_context,
            logger=_PAHO_LOG,
        )

    async def ensure(self) -> aiomqtt.Client:
        if self.client is not None:
            return self.client
        cfg = self.sink.config
        self.sink.status.state = "connecting"
        client = self._make_client()
        try:
            try:
                async with asyncio.timeout(cfg.connect_timeout_s):
                    await client.__aenter__()
            except BaseException:
                _abandon(client)
                raise
        except aiomqtt.MqttCodeError as exc:
            code = _rc_value(exc.rc)
            if code in _AUTH_CODES:
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
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            self.sink.status.state = "disconnected"
            raise SinkError(
                f"cannot connect to MQTT broker {self.sink.target}: "
                f"{str(exc) or type(exc).__name__}",
                sink=self.sink.name,
            ) from exc
        self.client = client
        try:
            await client.publish(
                self.status_topic, b"online", qos=1, retain=True, timeout=cfg.ack_timeout_s
            )
        except (aiomqtt.MqttError, TimeoutError) as exc:
            await self.teardown()
            raise SinkError(
                f"MQTT broker {self.sink.target} did not acknowledge the status message: {exc}",
                sink=self.sink.name,
            ) from exc
        self.sink.status.state = "connected"
        log.info("mqtt connected", sink=self.sink.name, broker=self.sink.target, site=self.site_id)
        return client

    async def teardown(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        # A dead or stalled connection cannot say goodbye politely; do not wait on it.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await client.__aexit__(None, None, None)
        _abandon(client)  # when the polite exit timed out, the socket is still open

    async def publish(self, rows: Sequence[OutboxRow], payloads: Sequence[bytes]) -> None:
        client = await self.ensure()
        cfg = self.sink.config
        try:
            async with asyncio.timeout(cfg.ack_timeout_s):
                # paho keeps at most inflight_max messages unacknowledged on the wire and
                # queues the rest in order; gather waits for every PUBACK.
                await asyncio.gather(
                    *(
                        client.publish(
                            topic_for(cfg.topic_prefix, r.site_id, r.device_id, r.kind),
                            p,
                            qos=1,
                            timeout=math.inf,
                        )
                        for r, p in zip(rows, payloads, strict=True)
                    )
                )
        except TimeoutError as exc:
            await self.teardown()
            self.sink.status.state = "disconnected"
            raise SinkError(
                f"ack stall: {len(rows)} messages to {self.sink.target} not all acknowledged "
                f"within {cfg.ack_timeout_s:g} s; reconnecting",
                sink=self.sink.name,
            ) from exc
        except aiomqtt.MqttError as exc:
            await self.teardown()
            self.sink.status.state = "disconnected"
            raise SinkError(
                f"publish to {self.sink.target} failed: {exc}", sink=self.sink.name
            ) from exc


class MqttSink(Sink):
    """Publishes envelopes to `<topic_prefix>/<site>/<device or _>/<kind>` with QoS 1."""

    def __init__(self, config: MqttSinkConfig) -> None:
        scheme = "mqtts" if config.tls else "mqtt"
        super().__init__(config.name, "mqtt", f"{scheme}://{config.host}:{config.port}")
        self.config = config
        # Batches exceed the in-flight window so it stays full instead of emptying at each
        # batch end (paho sends the rest as PUBACKs free slots); aiomqtt's bookkeeping grows
        # with concurrent publishes, and 4 windows measured best (bench/telemetry.py).
        self.batch_max_rows = 4 * config.inflight_max
        self.backoff_initial_s = config.backoff_initial_s
        self.backoff_max_s = config.backoff_max_s
        self._sites: dict[str, _SiteConnection] = {}

    def _site(self, site_id: str) -> _SiteConnection:
        conn = self._sites.get(site_id)
        if conn is None:
            conn = self._sites[site_id] = _SiteConnection(self, site_id)
        return conn

    async def publish(self, rows: Sequence[OutboxRow], payloads: Sequence[bytes]) -> None:
        by_site: dict[str, tuple[list[OutboxRow], list[bytes]]] = {}
        for row, payload in zip(rows, payloads, strict=True):
            group = by_site.setdefault(row.site_id, ([], []))
            group[0].append(row)
            group[1].append(payload)
        results = await asyncio.gather(
            *(self._site(site).publish(r, p) for site, (r, p) in by_site.items()),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def close(self) -> None:
        for conn in self._sites.values():
            client = conn.client
            if client is not None:
                # A clean shutdown says offline itself; the will covers the unclean one.
                with contextlib.suppress(Exception):
                    await client.publish(
                        conn.status_topic, b"offline", qos=1, retain=True, timeout=2.0
                    )
            await conn.teardown()
        self.status.state = "idle"
