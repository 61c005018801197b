"""`bessai tail`: subscribe to MQTT or NATS, print envelopes, and check seq continuity.

The check is what an operator runs to prove nothing went missing: per site it follows
`seq` from the first one seen, records every gap, fills a gap when a late (re-sent) message
arrives, and counts duplicates. At-least-once delivery means duplicates are expected and
harmless; a gap that is never filled is a lost message (or a counted cap drop).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
import nats
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.js.api import DeliverPolicy

from bessai.errors import TelemetryError
from bessai.telemetry.envelope import Envelope


class Gaps:
    """Missing seq numbers as sorted, disjoint [first, last] ranges: a jump of a billion
    (a replaced outbox continuing from a time floor) costs one range, not a billion ints."""

    __slots__ = ("_firsts", "_lasts")

    def __init__(self) -> None:
        self._firsts: list[int] = []
        self._lasts: list[int] = []

    def add(self, first: int, last: int) -> None:
        """Record first..last (inclusive) as missing; callers add ranges above all others."""
        self._firsts.append(first)
        self._lasts.append(last)

    def fill(self, seq: int) -> bool:
        """Remove `seq`; False when it was not missing."""
        i = bisect.bisect_right(self._firsts, seq) - 1
        if i < 0 or seq > self._lasts[i]:
            return False
        first, last = self._firsts[i], self._lasts[i]
        del self._firsts[i], self._lasts[i]
        if seq + 1 <= last:
            self._firsts.insert(i, seq + 1)
            self._lasts.insert(i, last)
        if first <= seq - 1:
            self._firsts.insert(i, first)
            self._lasts.insert(i, seq - 1)
        return True

    def __len__(self) -> int:
        return sum(b - a + 1 for a, b in zip(self._firsts, self._lasts, strict=True))

    def __bool__(self) -> bool:
        return bool(self._firsts)

    def ranges(self) -> list[str]:
        return [
            f"{a}" if a == b else f"{a}-{b}" for a, b in zip(self._firsts, self._lasts, strict=True)
        ]


@dataclass(slots=True)
class SiteSeq:
    first: int
    next: int
    received: int = 1
    duplicates: int = 0
    late: int = 0
    missing: Gaps = field(default_factory=Gaps)


class SeqChecker:
    """Per-site seq continuity: gaps, late fills and duplicates."""

    def __init__(self) -> None:
        self.sites: dict[str, SiteSeq] = {}

    def add(self, site_id: str, seq: int) -> str | None:
        """Record one message; returns a short note when it is not the next expected."""
        st = self.sites.get(site_id)
        if st is None:
            self.sites[site_id] = SiteSeq(first=seq, next=seq + 1)
            return None
        st.received += 1
        if seq == st.next:
            st.next += 1
            return None
        if seq > st.next:
            st.missing.add(st.next, seq - 1)
            note = f"gap: {site_id} seq {st.next}..{seq - 1} missing"
            st.next = seq + 1
            return note
        if st.missing.fill(seq):
            st.late += 1
            return None
        if seq < st.first:
            # Older than where we joined the stream: a re-send from before we subscribed.
            st.late += 1
            return None
        st.duplicates += 1
        return f"duplicate: {site_id} seq {seq}"

    @property
    def ok(self) -> bool:
        return all(not st.missing for st in self.sites.values())

    def report(self) -> dict[str, Any]:
        return {
            site: {
                "first_seq": st.first,
                "last_seq": st.next - 1,
                "received": st.received,
                "duplicates": st.duplicates,
                "late": st.late,
                "missing": len(st.missing),
                "missing_ranges": st.missing.ranges()[:50],
            }
            for site, st in sorted(self.sites.items())
        }


def format_envelope(env: Envelope) -> str:
    """One line per envelope for a terminal."""
    values = " ".join(f"{k}={v}" for k, v in env.values.items())
    flag = " historical" if env.historical else ""
    return (
        f"{env.ts.isoformat(timespec='milliseconds')} {env.site_id}/{env.device_id or '_'} "
        f"{env.kind} seq={env.seq}{flag} {values}"
    )


Handler = Callable[[str, bytes], None]


@dataclass(frozen=True, slots=True)
class TailTarget:
    kind: str  # "mqtt" or "nats"
    url: str


#: Connection attempts before a tail gives up (1 s apart), unless told to keep retrying.
CONNECT_ATTEMPTS = 3


def _where(url: str) -> str:
    """The URL without credentials, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


async def _mqtt_client(url: str, *, retry: bool) -> tuple[aiomqtt.Client, str]:
    """A connected aiomqtt client (entered), after up to CONNECT_ATTEMPTS tries or forever."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise TelemetryError(f"--mqtt {url!r}: expected mqtt://[user:pass@]host[:port]")
    tls = ssl.create_default_context() if parts.scheme == "mqtts" else None
    port = parts.port or (8883 if tls else 1883)
    where = f"{parts.scheme}://{parts.hostname}:{port}"
    attempt = 0
    while True:
        attempt += 1
        client = aiomqtt.Client(
            hostname=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls_context=tls,
            timeout=5,
        )
        try:
            await client.__aenter__()
            return client, where
        except aiomqtt.MqttCodeError as exc:
            # The broker answered with a refusal (credentials): retrying will not help.
            raise TelemetryError(f"MQTT broker at {where} refused the connection: {exc}") from None
        except aiomqtt.MqttError as exc:
            # aiomqtt keeps the OSError only as the context of its own error.
            cause = exc.__context__
            reason = _reason(cause) if isinstance(cause, OSError) else str(exc)
            if not retry and attempt >= CONNECT_ATTEMPTS:
                raise TelemetryError(f"cannot reach MQTT broker at {where}: {reason}") from None
        await asyncio.sleep(1.0)


async def tail_mqtt(
    url: str,
    handler: Handler,
    *,
    topic_prefix: str,
    stop: asyncio.Event,
    on_ready: Callable[[str], None],
    retry: bool = False,
) -> None:
    """Subscribe to the MQTT topics and feed each envelope to `handle` until stopped."""
    client, where = await _mqtt_client(url, retry=retry)
    try:
        await client.subscribe(f"{topic_prefix}/+/+/+", qos=1)
        on_ready(f"subscribed to {topic_prefix}/+/+/+ on {where}")

        async def consume() -> None:
            async for msg in client.messages:
                payload = msg.payload if isinstance(msg.payload, bytes) else b""
                handler(str(msg.topic), payload)

        consumer = asyncio.create_task(consume())
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
        consumer.cancel()
        stopper.cancel()
        if consumer in done:
            consumer.result()  # the connection broke: surface why
    except aiomqtt.MqttError as exc:
        raise TelemetryError(f"lost the MQTT broker at {where}: {exc}") from exc
    finally:
        with contextlib.suppress(Exception):
            await client.__aexit__(None, None, None)


async def _nats_client(
    url: str, *, retry: bool, lost: asyncio.Event
) -> tuple[NatsClient, list[BaseException]]:
    """A connected nats-py client: up to CONNECT_ATTEMPTS tries (1 s apart) or, with `retry`,
    until the server answers. nats-py logs a traceback for every failed attempt by default;
    the errors are kept for one line instead."""
    errors: list[BaseException] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    async def on_closed() -> None:
        lost.set()

    try:
        nc = await nats.connect(
            url,
            connect_timeout=5,
            reconnect_time_wait=1,
            # nats-py counts attempts after the first, and treats 0 as "forever".
            max_reconnect_attempts=-1 if retry else max(1, CONNECT_ATTEMPTS - 1),
            error_cb=on_error,
            closed_cb=on_closed,
        )
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        reason = _reason(errors[-1] if errors else exc)
        raise TelemetryError(f"cannot reach NATS at {_where(url)}: {reason}") from None
    return nc, errors


async def tail_nats(
    url: str,
    handler: Handler,
    *,
    subject_prefix: str,
    stream: str | None,
    stop: asyncio.Event,
    on_ready: Callable[[str], None],
    retry: bool = False,
) -> None:
    """Subscribe to (or replay) the NATS subjects and feed each envelope to `handle`."""
    if not url.startswith(("nats://", "tls://")):
        raise TelemetryError(f"--nats {url!r}: expected nats://[user:pass@]host[:port]")
    lost = asyncio.Event()
    nc, errors = await _nats_client(url, retry=retry, lost=lost)

    async def on_msg(msg: Any) -> None:
        handler(str(msg.subject), bytes(msg.data))

    try:
        if stream:
            # An ordered consumer replays the whole stream, then follows it.
            js = nc.jetstream()
            await js.subscribe(
                f"{subject_prefix}.>",
                stream=stream,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.ALL,
                cb=on_msg,
            )
        else:
            await nc.subscribe(f"{subject_prefix}.>", cb=on_msg)
        # A round trip: the server has the subscription before we say so (core NATS keeps
        # nothing for a subscription it has not seen yet).
        await nc.flush(timeout=5)
        on_ready(
            f"subscribed to {subject_prefix}.> on {_where(url)}"
            + (f" (stream {stream})" if stream else "")
        )
        stopping = asyncio.create_task(stop.wait())
        closing = asyncio.create_task(lost.wait())
        await asyncio.wait({stopping, closing}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        closing.cancel()
        if lost.is_set() and not stop.is_set():
            reason = _reason(errors[-1]) if errors else "closed"
            raise TelemetryError(f"lost NATS at {_where(url)}: {reason}")
    except (TimeoutError, nats.errors.Error) as exc:
        raise TelemetryError(f"NATS at {_where(url)}: {_reason(exc)}") from None
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


async def run_tail(
    target: TailTarget,
    *,
    check: bool,
    count: int | None = None,
    duration_s: float | None = None,
    as_json: bool = False,
    echo: Callable[[str], None] = print,
    topic_prefix: str = "bessai/v1",
    subject_prefix: str = "bessai.v1",
    stream: str | None = None,
    on_ready: Callable[[str], None] = lambda _msg: None,
    retry: bool = False,
) -> SeqChecker:
    """Print envelopes until `count` messages or `duration_s` seconds; returns the checker."""
    checker = SeqChecker()
    stop = asyncio.Event()
    seen = 0
    started = time.monotonic()

    def handle(where: str, payload: bytes) -> None:
        nonlocal seen
        try:
            env = Envelope.from_json(payload, where=where)
        except TelemetryError as exc:
            echo(f"invalid: {exc}")
            return
        seen += 1
        echo(payload.decode() if as_json else format_envelope(env))
        if check:
            note = checker.add(env.site_id, env.seq)
            if note:
                echo(f"# {note}")
        if count is not None and seen >= count:
            stop.set()

    async def timer() -> None:
        if duration_s is not None:
            await asyncio.sleep(max(0.0, duration_s - (time.monotonic() - started)))
            stop.set()

    timer_task = asyncio.create_task(timer())
    try:
        if target.kind == "mqtt":
            await tail_mqtt(
                target.url,
                handle,
                topic_prefix=topic_prefix,
                stop=stop,
                on_ready=on_ready,
                retry=retry,
            )
        else:
            await tail_nats(
                target.url,
                handle,
                subject_prefix=subject_prefix,
                stream=stream,
                stop=stop,
                on_ready=on_ready,
                retry=retry,
            )
    finally:
        timer_task.cancel()
    return checker


def report_json(checker: SeqChecker) -> str:
    """The seq-continuity report as JSON."""
    return json.dumps({"ok": checker.ok, "sites": checker.report()}, indent=2)
