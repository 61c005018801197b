"""The stream consumer: a durable JetStream pull consumer, shared by every `fleet serve`
process that names it (JetStream hands each message to one of them), explicit acks after the
database commit, at most `max_ack_pending` messages in flight, redelivery after `ack_wait_s`.

Backpressure is the pull itself: a process fetches its next batch only when the last one is
committed, so a slow database slows consumption and the stream keeps what waits. A database
error keeps the batch and retries it (unacked messages are redelivered elsewhere if this
process dies); the (site_id, boot_id, seq) key makes every retry and redelivery harmless."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field

import asyncpg
import nats
import nats.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from bessai.config import FleetConfig
from bessai.errors import BessaiError
from bessai.fleet.puller import Puller
from bessai.fleet.rows import BadEnvelopeError, StageRow, parse_envelope
from bessai.fleet.store import write_batch
from bessai.telemetry.config import NatsSinkConfig
from bessai.telemetry.sinks.nats import stream_config

log = structlog.get_logger("bessai.fleet")

#: Seconds a fetch waits for messages before it returns empty-handed.
FETCH_WAIT_S = 1.0
#: Fetched batches waiting for the writer (each holds up to `batch_size` unacked messages).
PREFETCH_BATCHES = 2
#: Seconds between two refreshes of the consumer's lag.
LAG_EVERY_S = 2.0
#: Back-off of a failed database write or NATS call.
RETRY_INITIAL_S = 0.2
RETRY_MAX_S = 5.0

NATS_ERRORS = (TimeoutError, OSError, nats.errors.Error)
DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(slots=True)
class ConsumerStats:
    """What the consumer has done, for /metrics and `fleet status`."""

    written_total: int = 0
    duplicates_total: int = 0
    rejected_total: int = 0
    batches_total: int = 0
    db_errors_total: int = 0
    lag_messages: int | None = None
    connected: bool = False
    rejected_reasons: dict[str, int] = field(default_factory=dict)


def consumer_config(config: FleetConfig) -> ConsumerConfig:
    """The durable consumer every `fleet serve` process binds to."""
    return ConsumerConfig(
        durable_name=config.consumer,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=config.ack_wait_s,
        max_ack_pending=config.max_ack_pending,
        max_deliver=-1,
        filter_subject=f"{config.subject_prefix}.>",
    )


async def connect_nats(config: FleetConfig) -> NatsClient:
    """A NATS connection that reconnects forever once up; the first attempt is bounded."""
    tls = None
    if config.nats_tls_ca_file is not None:
        tls = ssl.create_default_context(cafile=str(config.nats_tls_ca_file))
    servers = [s.strip() for s in config.nats_url.split(",") if s.strip()]
    try:
        nc: NatsClient = await nats.connect(
            servers=servers,
            user=config.nats_user,
            password=config.nats_password.get_secret_value() if config.nats_password else None,
            token=config.nats_token.get_secret_value() if config.nats_token else None,
            tls=tls,
            name=f"bessai-fleet-{config.consumer}",
            connect_timeout=5,
            reconnect_time_wait=0.5,
            max_reconnect_attempts=-1,
            allow_reconnect=True,
            error_cb=_on_error,
            disconnected_cb=_on_disconnected,
            reconnected_cb=_on_reconnected,
        )
    except NATS_ERRORS as exc:
        raise BessaiError(
            f"cannot connect to NATS {config.nats_url} (fleet.nats_url): "
            f"{str(exc) or type(exc).__name__}"
        ) from None
    return nc


async def _on_error(exc: Exception) -> None:
    # nats-py's default prints a traceback per failed reconnect attempt: one line instead.
    log.info("nats error", error=str(exc) or type(exc).__name__)


async def _on_disconnected() -> None:
    log.warning("nats disconnected; reconnecting")


async def _on_reconnected() -> None:
    log.info("nats reconnected")


async def ensure_stream(js: JetStreamContext, config: FleetConfig) -> None:
    """Create the telemetry stream when no gateway has yet (same settings as the NATS sink)."""
    try:
        await js.stream_info(config.stream)
    except NotFoundError:
        sink = NatsSinkConfig(
            type="nats", stream=config.stream, subject_prefix=config.subject_prefix
        )
        with contextlib.suppress(nats.js.errors.BadRequestError):
            await js.add_stream(stream_config(sink))


async def ensure_consumer(js: JetStreamContext, config: FleetConfig) -> None:
    """Create the durable consumer unless it exists (then bind to it as it is: another
    process may have created it, with the same settings)."""
    try:
        await js.consumer_info(config.stream, config.consumer)
    except NotFoundError:
        # Two processes starting at once both create it: the same config is accepted twice,
        # and a refusal means another process's settings won, which this one then shares.
        try:
            await js.add_consumer(config.stream, consumer_config(config))
        except nats.js.errors.BadRequestError as exc:
            log.warning("fleet consumer exists with other settings", error=str(exc))


class FleetConsumer:
    """Fetch, parse, write, ack: one batch at a time, for as long as `stop` is not set."""

    def __init__(self, config: FleetConfig, pool: asyncpg.Pool) -> None:
        self.config = config
        self.pool = pool
        self.stats = ConsumerStats()
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._puller: Puller | None = None

    async def start(self) -> None:
        """Connect and bind to the durable consumer (created when absent)."""
        self._nc = await connect_nats(self.config)
        js = self._nc.jetstream(timeout=10)
        try:
            await ensure_stream(js, self.config)
            await ensure_consumer(js, self.config)
            puller = Puller(self._nc, self.config.stream, self.config.consumer)
            await puller.start()
        except NATS_ERRORS as exc:
            await self.close()
            raise BessaiError(
                f"cannot bind the JetStream consumer {self.config.consumer!r} on stream "
                f"{self.config.stream!r} at {self.config.nats_url}: "
                f"{str(exc) or type(exc).__name__}"
            ) from None
        self._js, self._puller = js, puller
        self.stats.connected = True
        log.info("fleet consumer bound", stream=self.config.stream, consumer=self.config.consumer)

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch batches while the writer stores the previous ones: the database works on
        one batch while this process fetches and parses the next (at most PREFETCH_BATCHES
        wait), and the lag poller runs beside both."""
        queue: asyncio.Queue[list[Msg] | None] = asyncio.Queue(maxsize=PREFETCH_BATCHES)
        writer = asyncio.create_task(self._writer(queue, stop), name="fleet-writer")
        lag = asyncio.create_task(self._poll_lag(stop), name="fleet-lag")
        try:
            await self._fetch_loop(queue, stop, writer)
        finally:
            lag.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lag
            if not writer.done():
                await queue.put(None)
                await writer

    async def _fetch_loop(
        self,
        queue: asyncio.Queue[list[Msg] | None],
        stop: asyncio.Event,
        writer: asyncio.Task[None],
    ) -> None:
        backoff = RETRY_INITIAL_S
        while not stop.is_set() and not writer.done():
            try:
                msgs = await self._fetch()
            except NATS_ERRORS as exc:
                self.stats.connected = False
                log.info("fleet fetch failed; retrying", error=str(exc) or type(exc).__name__)
                await _sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, RETRY_MAX_S)
                continue
            self.stats.connected = True
            backoff = RETRY_INITIAL_S
            if msgs:
                await queue.put(msgs)

    async def _writer(self, queue: asyncio.Queue[list[Msg] | None], stop: asyncio.Event) -> None:
        while (msgs := await queue.get()) is not None:
            await self.handle(msgs, stop)

    async def _fetch(self) -> list[Msg]:
        assert self._puller is not None
        return await self._puller.fetch(self.config.batch_size, FETCH_WAIT_S)

    async def handle(self, msgs: list[Msg], stop: asyncio.Event) -> None:
        """Store one fetched batch, then ack it; poison messages are terminated."""
        rows: list[StageRow] = []
        good: list[Msg] = []
        for msg in msgs:
            try:
                rows.append(parse_envelope(msg.data))
                good.append(msg)
            except BadEnvelopeError as exc:
                await self._reject(msg, exc)
        if rows and not await self._store(rows, good, stop):
            return  # stopping before the write succeeded: the stream redelivers
        for msg in good:
            with contextlib.suppress(*NATS_ERRORS):
                await msg.ack()

    async def _store(self, rows: list[StageRow], msgs: list[Msg], stop: asyncio.Event) -> bool:
        """Write the rows; a value the database refuses (a \\u0000 in a string, a number
        jsonb cannot hold) would fail its batch forever, so the batch is split until the
        refused messages are alone, and those are rejected. False when stopped first."""
        try:
            new = await self._write(rows, stop)
        except asyncpg.DataError as exc:
            if len(rows) == 1:
                await self._reject(msgs[0], BadEnvelopeError(f"refused by the database: {exc}"))
                return True
            half = len(rows) // 2
            return await self._store(rows[:half], msgs[:half], stop) and await self._store(
                rows[half:], msgs[half:], stop
            )
        if new is None:
            return False
        self.stats.written_total += new
        self.stats.duplicates_total += len(rows) - new
        self.stats.batches_total += 1
        return True

    async def _write(self, rows: list[StageRow], stop: asyncio.Event) -> int | None:
        backoff = RETRY_INITIAL_S
        while True:
            try:
                return await write_batch(self.pool, rows)
            except asyncpg.DataError:
                raise
            except DB_ERRORS as exc:
                self.stats.db_errors_total += 1
                log.warning("fleet database write failed; retrying the batch", error=str(exc))
                if await _sleep_or_stop(stop, backoff):
                    return None
                backoff = min(backoff * 2, RETRY_MAX_S)

    async def _reject(self, msg: Msg, exc: BadEnvelopeError) -> None:
        reason = str(exc).split(":", 1)[0][:60]
        first = reason not in self.stats.rejected_reasons
        self.stats.rejected_reasons[reason] = self.stats.rejected_reasons.get(reason, 0) + 1
        self.stats.rejected_total += 1
        if first:
            log.warning("fleet rejected a message", subject=msg.subject, reason=str(exc))
        with contextlib.suppress(*NATS_ERRORS):
            await msg.term()

    async def _poll_lag(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(*NATS_ERRORS):
                if self._js is not None:
                    info = await self._js.consumer_info(self.config.stream, self.config.consumer)
                    self.stats.lag_messages = int(info.num_pending or 0) + int(
                        info.num_ack_pending or 0
                    )
            await _sleep_or_stop(stop, LAG_EVERY_S)

    async def close(self) -> None:
        """Leave the consumer to the other processes (unacked messages are redelivered)."""
        nc, puller = self._nc, self._puller
        self._nc, self._js, self._puller = None, None, None
        if puller is not None:
            with contextlib.suppress(Exception):
                await puller.close()
        self.stats.connected = False
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds` or until stopped; True when stopped."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
