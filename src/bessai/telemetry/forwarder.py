"""The forwarder: one asyncio task per sink drains the outbox in order.

Per sink: read the rows after its cursor, publish them, and only when the sink acknowledged
all of them move the cursor (persistently) and let the outbox delete what every sink has.
A sink with `pipeline_depth` > 1 (MQTT) gets the next batch while the previous one waits for
its acknowledgement; the cursor still moves batch by batch, in order. A failure leaves the
cursor where it was and drops whatever is on its way, so the same rows are re-sent after a
back-off (exponential with jitter): at-least-once, in order, nothing skipped. SQLite calls run
in a worker thread so a slow disk never stalls the event loop that also runs the control cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import sqlite3
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from opentelemetry.trace import Span, Status, StatusCode

from bessai.errors import SinkAuthError, SinkError
from bessai.telemetry.outbox import Outbox, OutboxRow
from bessai.telemetry.sinks.base import Sink
from bessai.telemetry.tracing import tracer

log = structlog.get_logger(__name__)

_POLL_S = 1.0
_COUNT_EVERY_S = 2.0


def _now_us() -> int:
    return time.time_ns() // 1000


class Forwarder:
    """Drains `outbox` to every sink; `notify()` after an append wakes it without waiting."""

    def __init__(
        self,
        outbox: Outbox,
        sinks: Sequence[Sink],
        *,
        historical_after_s: float = 15.0,
        batch_max_rows: int = 500,
    ) -> None:
        self.outbox = outbox
        self.sinks = tuple(sinks)
        self.historical_after_us = int(historical_after_s * 1e6)
        self.batch_max_rows = batch_max_rows
        self._wake: dict[str, asyncio.Event] = {s.name: asyncio.Event() for s in self.sinks}
        self._tasks: list[asyncio.Task[None]] = []
        self._cursors: dict[str, int] = {}
        self._flushing = False

    async def start(self) -> None:
        await asyncio.to_thread(self.outbox.set_sinks, [s.name for s in self.sinks])
        for sink in self.sinks:
            self._cursors[sink.name] = await asyncio.to_thread(self.outbox.cursor, sink.name)
            sink.status.started_us = _now_us()
            sink.status.expected_delay_s = sink.batch_max_delay_s
            self._tasks.append(asyncio.create_task(self._run(sink), name=f"forward-{sink.name}"))

    def notify(self) -> None:
        for event in self._wake.values():
            event.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for sink in self.sinks:
            with contextlib.suppress(Exception):
                await sink.close()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every sink has acknowledged every stored row; False on timeout."""
        if not self.sinks:
            return True
        self._flushing = True
        try:
            return await self._drain(timeout_s)
        finally:
            self._flushing = False

    async def _drain(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for task in self._tasks:
                exc = task.exception() if task.done() and not task.cancelled() else None
                if exc is not None:
                    raise exc
            # Rows leave the outbox only when every sink acknowledged them.
            if self.outbox.stats.rows == 0:
                return True
            self.notify()
            await asyncio.sleep(0.05)
        return False

    async def _wait(self, sink: Sink, timeout_s: float) -> None:
        event = self._wake[sink.name]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await event.wait()
        event.clear()

    async def _run(self, sink: Sink) -> None:
        await _SinkWorker(self, sink).run()

    def _pending(self, sink: Sink) -> int:
        return self.outbox.pending_for(sink.name)[0]

    async def _send(self, sink: Sink, rows: Sequence[OutboxRow]) -> _Batch:
        """Hand `rows` to the sink; the batch's span lasts until its acknowledgement."""
        now_us = _now_us()
        # A sink that batches on purpose (the lake) delays rows by design, not by an outage.
        late_us = self.historical_after_us + int(sink.batch_max_delay_s * 1e6)
        payloads = [r.payload_at(now_us, late_us) for r in rows]
        span = tracer().start_span(
            "telemetry.publish",
            attributes={
                "bessai.sink": sink.name,
                "bessai.sink.type": sink.status.type,
                "bessai.rows": len(rows),
                "bessai.first_key": rows[0].key,
                "bessai.last_key": rows[-1].key,
            },
        )
        try:
            acked = await sink.send(rows, payloads)
        except BaseException as exc:
            _end_span(span, exc)
            raise _as_sink_error(sink, exc) from exc
        return _Batch(rows, acked, span)

    async def _confirm(self, sink: Sink, batch: _Batch) -> None:
        """Wait for the batch's acknowledgement; SinkError when it failed."""
        try:
            await batch.acked
        except BaseException as exc:
            _end_span(batch.span, exc)
            raise _as_sink_error(sink, exc) from exc
        _end_span(batch.span, None)

    def _failed(self, sink: Sink, exc: SinkError) -> None:
        status = sink.status
        now = _now_us()
        status.consecutive_failures += 1
        status.errors_total += 1
        status.last_error = str(exc)
        status.last_error_us = now
        if status.failing_since_us is None:
            status.failing_since_us = now
        if status.state == "connected":
            status.state = "disconnected"
        # Log the first failure and then every 10th so an outage does not flood the log.
        if status.consecutive_failures == 1 or status.consecutive_failures % 10 == 0:
            log.error(
                "sink publish failed, will retry",
                sink=sink.name,
                target=status.target,
                error=str(exc),
                auth=isinstance(exc, SinkAuthError),
                failures=status.consecutive_failures,
            )


@dataclass(slots=True)
class _Batch:
    rows: Sequence[OutboxRow]
    acked: asyncio.Future[None]
    span: Span


def _end_span(span: Span, exc: BaseException | None) -> None:
    if isinstance(exc, SinkError):
        span.set_status(Status(StatusCode.ERROR, str(exc)))
    elif exc is not None and not isinstance(exc, asyncio.CancelledError):
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, str(exc)))
    span.end()


def _end_span_when_done(span: Span, fut: asyncio.Future[None]) -> None:
    _end_span(span, asyncio.CancelledError() if fut.cancelled() else fut.exception())


def _as_sink_error(sink: Sink, exc: BaseException) -> BaseException:
    """A sink bug must not kill the forwarder task: treat it as a failed batch."""
    if isinstance(exc, SinkError) or not isinstance(exc, Exception):
        return exc  # SinkError as is; cancellation goes through
    return SinkError(f"unexpected {type(exc).__name__}: {exc}", sink=sink.name)


class _SinkWorker:
    """The forwarding loop of one sink: up to `pipeline_depth` batches on their way, the
    cursor moved (in order) only past batches the sink acknowledged."""

    def __init__(self, forwarder: Forwarder, sink: Sink) -> None:
        self.fw = forwarder
        self.sink = sink
        self.limit = min(forwarder.batch_max_rows, sink.batch_max_rows)
        self.depth = max(1, sink.pipeline_depth)
        self.in_flight: deque[_Batch] = deque()
        self.sent_through = forwarder._cursors[sink.name]
        self.backoff = sink.backoff_initial_s
        self.last_count = 0.0
        self.stored_cursor = self.sent_through
        self.storing: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            while True:
                try:
                    if len(self.in_flight) < self.depth and await self._fill():
                        continue
                    if self.in_flight:
                        await self._complete_oldest()
                except SinkError as exc:
                    await self._recover(exc)
        finally:
            self._abandon_in_flight()
            if self.storing is not None:
                # Let the last cursor reach the disk: fewer re-sends after the restart.
                with contextlib.suppress(BaseException):
                    await asyncio.shield(self.storing)

    async def _fill(self) -> bool:
        """Send the next batch when there is one worth sending; False when there is none."""
        sink, fw = self.sink, self.fw
        try:
            rows = await asyncio.to_thread(fw.outbox.read_after, self.sent_through, self.limit)
        except sqlite3.Error as exc:
            # A local disk hiccup must not end forwarding for good: report and retry.
            raise SinkError(f"cannot read the outbox: {exc}", sink=sink.name) from exc
        if not rows:
            if not self.in_flight:
                sink.status.pending_rows = 0
                sink.status.oldest_pending_ts_us = None
                await fw._wait(sink, _POLL_S)
            return False
        sink.status.pending_rows = max(sink.status.pending_rows, len(rows))
        if not self.in_flight:
            sink.status.oldest_pending_ts_us = rows[0].ts_us
        if sink.batch_max_delay_s > 0 and len(rows) < self.limit and not fw._flushing:
            # Let the batch grow in the outbox (still durable) until it is worth a file;
            # a drain (shutdown) wakes it and writes what there is.
            wait_s = rows[0].ts_us / 1e6 + sink.batch_max_delay_s - time.time()
            if wait_s > 0 and not self.in_flight:
                await fw._wait(sink, min(wait_s, sink.batch_max_delay_s))
                return True
            if wait_s > 0:
                return False
        self.in_flight.append(await fw._send(sink, rows))
        self.sent_through = rows[-1].id
        return True

    async def _complete_oldest(self) -> None:
        batch = self.in_flight.popleft()
        await self.fw._confirm(self.sink, batch)
        self.backoff = self.sink.backoff_initial_s
        self.fw._cursors[self.sink.name] = batch.rows[-1].id
        if self.storing is None or self.storing.done():
            self.storing = asyncio.create_task(self._store_cursor())
        await self._account(len(batch.rows))

    async def _store_cursor(self) -> None:
        """Persist the cursor (and delete what every sink has) beside the publishing: the
        commit's fsync then never leaves the wire idle. One store at a time, always the
        latest cursor."""
        name = self.sink.name
        while self.stored_cursor < self.fw._cursors[name]:
            target = self.fw._cursors[name]
            try:
                await asyncio.to_thread(self.fw.outbox.ack, name, target)
            except Exception as exc:
                # The sink has the rows; the cursor stays in memory and is stored with the
                # next ack. A crash before that re-sends them: a duplicate, never a loss.
                log.error("outbox ack failed", sink=name, error=str(exc))
                return
            self.stored_cursor = target

    async def _account(self, n_rows: int) -> None:
        status = self.sink.status
        if status.consecutive_failures:
            log.info(
                "sink recovered",
                sink=self.sink.name,
                target=status.target,
                after_failures=status.consecutive_failures,
            )
        status.consecutive_failures = 0
        status.failing_since_us = None
        status.last_ack_us = _now_us()
        status.published_total += n_rows
        # An exact count scans the backlog; while draining a big one, estimate between
        # counts so the count costs at most a few percent of the drain.
        now = time.monotonic()
        if n_rows < self.limit or now - self.last_count >= _COUNT_EVERY_S:
            with contextlib.suppress(sqlite3.Error):  # a metric; the next batch retries
                status.pending_rows = await asyncio.to_thread(self.fw._pending, self.sink)
            self.last_count = now
        else:
            status.pending_rows = max(n_rows, status.pending_rows - n_rows)

    async def _recover(self, exc: SinkError) -> None:
        """A batch failed: drop what is on its way, back off, re-send from the cursor."""
        self._abandon_in_flight()
        self.sent_through = self.fw._cursors[self.sink.name]
        self.fw._failed(self.sink, exc)
        await asyncio.sleep(self.backoff * random.uniform(0.5, 1.0))
        self.backoff = min(self.backoff * 2, self.sink.backoff_max_s)

    def _abandon_in_flight(self) -> None:
        """Forget the batches on their way; they are re-sent from the cursor (duplicates at
        worst). Nothing here awaits, so a stop can never be swallowed."""
        batches, self.in_flight = list(self.in_flight), deque()
        for batch in batches:
            batch.acked.cancel()
            batch.acked.add_done_callback(functools.partial(_end_span_when_done, batch.span))
