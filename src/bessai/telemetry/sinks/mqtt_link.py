"""One paho-mqtt client driven by the running asyncio loop, for a publisher that waits on PUBACKs.

paho does the protocol (packets, the in-flight window, keep-alive); this module only connects
its socket to the event loop (paho's socket callbacks -> `add_reader`/`add_writer`, a periodic
`loop_misc` tick for keep-alive) and maps each message id to the batch it belongs to, so a
publish and its ack cost O(1). aiomqtt, which the sink used before, creates an asyncio task
per publish and scans every pending message id on each one; at a full window that bookkeeping
cost more than the protocol itself (measured in docs/benchmarks.md).

A batch's future completes when all its PUBACKs are in. Several batches may be on their way at
once: they go out in order on the one connection, so the window never empties between them.

A link is used once: after any failure (connection lost, a stalled ack, a refused message) the
owner drops it and opens a new one. Nothing is re-sent by the link itself: the outbox re-sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

# MQTT 5 keeps a session only for its expiry interval; an hour covers the outages that matter
# here, and the outbox covers the rest.
SESSION_EXPIRY_S = 3600


class LinkError(Exception):
    """The connection failed or broke; `code` is the broker's reason code when it gave one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """Everything a connection needs; one per (sink, site)."""

    host: str
    port: int
    client_id: str
    protocol_v5: bool = False
    username: str | None = None
    password: str | None = None
    tls_context: ssl.SSLContext | None = None
    keepalive_s: int = 30
    connect_timeout_s: float = 10.0
    #: Messages waiting while no PUBACK came for this long: the connection is stalled.
    ack_timeout_s: float = 15.0
    inflight_max: int = 100
    will_topic: str | None = None
    will_payload: bytes = b""


def _make_client(settings: LinkSettings) -> paho.Client:
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=settings.client_id,
        # A persistent session (3.1.1 clean_session = false; 5: clean_start = false at
        # connect, with an expiry interval).
        clean_session=None if settings.protocol_v5 else False,
        protocol=paho.MQTTv5 if settings.protocol_v5 else paho.MQTTv311,
        reconnect_on_failure=False,
    )
    client.connect_timeout = settings.connect_timeout_s
    client.max_inflight_messages_set(settings.inflight_max)
    client.max_queued_messages_set(0)  # the forwarder bounds what it hands over
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls_context is not None:
        client.tls_set_context(settings.tls_context)
    if settings.will_topic is not None:
        client.will_set(settings.will_topic, settings.will_payload, qos=1, retain=True)
    return client


class _Batch:
    """The messages of one `send`; its future completes with the last PUBACK."""

    __slots__ = ("future", "rejected", "remaining")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future
        self.remaining = 0
        self.rejected: str | None = None


def _retrieve(fut: asyncio.Future[None]) -> None:
    # Whoever waits reads the outcome; one nobody waits for any more must not be logged.
    if not fut.cancelled():
        fut.exception()


class MqttLink:
    """A connected paho client on the running loop. Create with `await MqttLink.open(...)`."""

    def __init__(self, settings: LinkSettings) -> None:
        self.settings = settings
        self._loop = asyncio.get_running_loop()
        self._client = _make_client(settings)
        self._fd: int | None = None
        self._pending: dict[int, _Batch] = {}
        self._batches: set[_Batch] = set()
        self._last_progress = time.monotonic()
        self._error: LinkError | None = None
        #: time.monotonic() of the first failure (None while the link works).
        self.failed_at: float | None = None
        self._closed = asyncio.Event()
        self._connack: asyncio.Future[ReasonCode] = self._loop.create_future()
        self._tick: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, settings: LinkSettings) -> MqttLink:
        """Connect (TCP, TLS, CONNECT) and wait for a successful CONNACK.

        Raises LinkError (with the broker's reason code when it refused), OSError or
        TimeoutError; a failed attempt leaves no socket open."""
        link = cls(settings)
        try:
            async with asyncio.timeout(settings.connect_timeout_s):
                await link._connect()
        except BaseException:
            link.abort()
            raise
        return link

    async def _connect(self) -> None:
        s = self.settings
        properties: Properties | None = None
        if s.protocol_v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
        # paho's connect blocks (DNS, TCP, TLS handshake, each bounded by connect_timeout),
        # so it runs in a worker thread before any socket callback is installed: from then
        # on only the event-loop thread touches the client.
        connecting = self._loop.run_in_executor(
            None,
            lambda: self._client.connect(
                s.host,
                s.port,
                s.keepalive_s,
                clean_start=False if s.protocol_v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
                properties=properties,
            ),
        )
        try:
            await asyncio.shield(connecting)
        except asyncio.CancelledError:
            # The thread still finishes its connect; close whatever socket it opened then.
            connecting.add_done_callback(lambda _f: self.abort())
            raise
        self._attach()
        reason = await self._connack
        if reason.is_failure:
            raise LinkError(f"connection refused: {reason}", code=reason.value)

    def _attach(self) -> None:
        client = self._client
        sock = client.socket()
        if sock is None:
            raise LinkError("connection closed while connecting")
        self._fd = sock.fileno()
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        self._loop.add_reader(self._fd, self._on_readable)
        if client.want_write():
            self._loop.add_writer(self._fd, self._on_writable)
        self._tick = self._loop.create_task(self._watch(), name=f"mqtt-{self.settings.client_id}")

    # -- paho callbacks (event-loop thread) ------------------------------------------------------

    def _on_readable(self) -> None:
        client = self._client
        # A TLS socket may hold decrypted bytes that select() does not report.
        while client.loop_read() == MQTTErrorCode.MQTT_ERR_SUCCESS:
            sock = client.socket()
            if not isinstance(sock, ssl.SSLSocket) or sock.pending() == 0:
                break

    def _on_writable(self) -> None:
        self._client.loop_write()

    def _on_register_write(self, _c: paho.Client, _u: object, _sock: object) -> None:
        if self._fd is not None:
            self._loop.add_writer(self._fd, self._on_writable)

    def _on_unregister_write(self, _c: paho.Client, _u: object, _sock: object) -> None:
        if self._fd is not None:
            self._loop.remove_writer(self._fd)

    def _on_socket_close(self, _c: paho.Client, _u: object, _sock: object) -> None:
        self._detach()

    def _on_connect(
        self, _c: paho.Client, _u: object, _f: object, reason: ReasonCode, _p: object
    ) -> None:
        if not self._connack.done():
            self._connack.set_result(reason)

    def _on_disconnect(
        self, _c: paho.Client, _u: object, _f: object, reason: ReasonCode, _p: object
    ) -> None:
        self._fail(LinkError(f"connection lost: {reason}", code=reason.value))

    def _on_publish(
        self, _c: paho.Client, _u: object, mid: int, reason: ReasonCode, _p: object
    ) -> None:
        batch = self._pending.pop(mid, None)
        if batch is None:
            return
        self._last_progress = time.monotonic()
        if reason.is_failure and batch.rejected is None:
            # MQTT 5 brokers may refuse a message (not authorised, quota exceeded): it is
            # not stored, so its batch must not count as delivered.
            batch.rejected = str(reason)
        batch.remaining -= 1
        if batch.remaining == 0:
            self._finish(batch)

    # -- internals -------------------------------------------------------------------------------

    def _finish(self, batch: _Batch) -> None:
        self._batches.discard(batch)
        if batch.future.done():
            return
        if batch.rejected is not None:
            batch.future.set_exception(LinkError(f"the broker refused a message: {batch.rejected}"))
        else:
            batch.future.set_result(None)

    def _fail(self, error: LinkError) -> None:
        if self._error is None:
            self._error = error
            self.failed_at = time.monotonic()
        if not self._connack.done():
            self._connack.set_exception(error)
            self._connack.exception()  # retrieved: nobody may be awaiting it any more
        batches, self._batches = self._batches, set()
        self._pending.clear()
        for batch in batches:
            if not batch.future.done():
                batch.future.set_exception(self._error)

    def _detach(self) -> None:
        self._closed.set()
        fd, self._fd = self._fd, None
        if fd is not None:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
        if self._tick is not None and self._tick is not asyncio.current_task(self._loop):
            self._tick.cancel()

    async def _watch(self) -> None:
        """Keep-alive (paho sends PINGREQ when due and drops a connection whose PINGRESP is
        overdue) and the ack-stall watchdog: messages waiting and no PUBACK for
        `ack_timeout_s` is a half-open connection or a stalled broker."""
        period_s = min(1.0, self.settings.ack_timeout_s / 4)
        while True:
            if self._client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._fail(LinkError("keep-alive timed out"))
                return
            stalled_s = time.monotonic() - self._last_progress
            if self._pending and stalled_s >= self.settings.ack_timeout_s:
                self._fail(
                    LinkError(
                        f"ack stall: {len(self._pending)} messages without an acknowledgement "
                        f"for {stalled_s:.1f} s"
                    )
                )
                self.abort()
                return
            await asyncio.sleep(period_s)

    # -- the publisher's interface ---------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Messages published and not yet acknowledged."""
        return len(self._pending)

    def send(
        self, messages: Iterable[tuple[str, bytes]], *, retain: bool = False
    ) -> asyncio.Future[None]:
        """Queue `messages` (QoS 1, in order, after everything sent before) and return a
        future that completes when every one is acknowledged. It fails with LinkError when
        the connection breaks or stalls first, or when the broker refused one of them."""
        if self._error is not None:
            raise self._error
        batch = _Batch(self._loop.create_future())
        batch.future.add_done_callback(_retrieve)
        if not self._pending:
            self._last_progress = time.monotonic()
        self._batches.add(batch)
        for topic, payload in messages:
            info = self._client.publish(topic, payload, qos=1, retain=retain)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                error = LinkError(f"publish failed: {paho.error_string(info.rc)}")
                self._fail(error)
                raise error
            self._pending[info.mid] = batch
            batch.remaining += 1
        if batch.remaining == 0:
            self._finish(batch)
        return batch.future

    async def close(self, timeout_s: float = 1.0) -> None:
        """Say DISCONNECT (no last will) when the connection still works, then close."""
        if self._error is None and self._fd is not None:
            # paho closes the socket once DISCONNECT is written (-> _detach sets _closed).
            self._client.disconnect()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._closed.wait()
        self.abort()

    def abort(self) -> None:
        """Close the socket now, without a goodbye: the broker publishes the last will."""
        self._fail(LinkError("connection closed"))
        self._detach()
        client = self._client
        # paho closes its socket again when the client is garbage-collected: it must not
        # call back into a link (and maybe an event loop) that is gone by then.
        client.on_socket_close = None
        client.on_socket_register_write = None
        client.on_socket_unregister_write = None
        client.on_disconnect = None
        sock = client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
