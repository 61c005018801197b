"""The forwarder: one asyncio task per sink drains the outbox in order.

Per sink: read the rows after its cursor, publish them, and only when the sink acknowledged
all of them move the cursor (persistently) and let the outbox delete what every sink has.
A failure leaves the cursor where it was, so the same rows are re-sent after a back-off
(exponential with jitter): at-least-once, in order, nothing skipped. SQLite calls run in a
worker thread so a slow disk never stalls the event loop that also runs the control cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
from collections.abc import Sequence

import structlog
from opentelemetry.trace import Status, StatusCode

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
        backoff = sink.backoff_initial_s
        limit = min(self.batch_max_rows, sink.batch_max_rows)
        last_count = 0.0
        while True:
            try:
                rows = await asyncio.to_thread(
                    self.outbox.read_after, self._cursors[sink.name], limit
                )
            except sqlite3.Error as exc:
                # A local disk hiccup must not end forwarding for good: report and retry.
                self._failed(sink, SinkError(f"cannot read the outbox: {exc}", sink=sink.name))
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, sink.backoff_max_s)
                continue
            if not rows:
                sink.status.pending_rows = 0
                sink.status.oldest_pending_ts_us = None
                await self._wait(sink, _POLL_S)
                continue
            sink.status.pending_rows = max(sink.status.pending_rows, len(rows))
            sink.status.oldest_pending_ts_us = rows[0].ts_us
            if sink.batch_max_delay_s > 0 and len(rows) < limit and not self._flushing:
                # Let the batch grow in the outbox (still durable) until it is worth a file;
                # a drain (shutdown) wakes it and writes what there is.
                wait_s = rows[0].ts_us / 1e6 + sink.batch_max_delay_s - time.time()
                if wait_s > 0:
                    await self._wait(sink, min(wait_s, sink.batch_max_delay_s))
                    continue
            try:
                await self._publish(sink, rows)
            except SinkError as exc:
                self._failed(sink, exc)
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, sink.backoff_max_s)
                continue
            backoff = sink.backoff_initial_s
            self._cursors[sink.name] = rows[-1].id
            try:
                await asyncio.to_thread(self.outbox.ack, sink.name, rows[-1].id)
            except Exception as exc:
                # The sink has the rows; the cursor stays in memory and is stored with the
                # next ack. A crash before that re-sends them: a duplicate, never a loss.
                log.error("outbox ack failed", sink=sink.name, error=str(exc))
            status = sink.status
            if status.consecutive_failures:
                log.info(
                    "sink recovered",
                    sink=sink.name,
                    target=status.target,
                    after_failures=status.consecutive_failures,
                )
            status.consecutive_failures = 0
            status.failing_since_us = None
            status.last_ack_us = _now_us()
            status.published_total += len(rows)
            # An exact count scans the backlog; while draining a big one, estimate between
            # counts so the count costs at most a few percent of the drain.
            now = time.monotonic()
            if len(rows) < limit or now - last_count >= _COUNT_EVERY_S:
                with contextlib.suppress(sqlite3.Error):  # a metric; the next batch retries
                    status.pending_rows = await asyncio.to_thread(self._pending, sink)
                last_count = now
            else:
                status.pending_rows = max(len(rows), status.pending_rows - len(rows))

    def _pending(self, sink: Sink) -> int:
        return self.outbox.pending_for(sink.name)[0]

    async def _publish(self, sink: Sink, rows: Sequence[OutboxRow]) -> None:
        now_us = _now_us()
        # A sink that batches on purpose (the lake) delays rows by design, not by an outage.
        late_us = self.historical_after_us + int(sink.batch_max_delay_s * 1e6)
        payloads = [r.payload_at(now_us, late_us) for r in rows]
        with tracer().start_as_current_span(
            "telemetry.publish",
            attributes={
                "bessai.sink": sink.name,
                "bessai.sink.type": sink.status.type,
                "bessai.rows": len(rows),
                "bessai.first_key": rows[0].key,
                "bessai.last_key": rows[-1].key,
            },
        ) as span:
            try:
                await sink.publish(rows, payloads)
            except SinkError as exc:
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                raise
            except Exception as exc:
                # A sink bug must not kill the forwarder task: treat it as a failed batch.
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                raise SinkError(f"unexpected {type(exc).__name__}: {exc}", sink=sink.name) from exc

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
