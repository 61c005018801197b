"""What every sink is to the forwarder: publish a batch in order, return only once all of it
is acknowledged, raise SinkError otherwise. Retrying is the forwarder's job, not the sink's.

A sink that can keep several batches on the wire (MQTT: one ordered connection per site)
sets `pipeline_depth` > 1 and overrides `send`, which hands a batch over and returns a future
for its acknowledgement; the forwarder then sends the next batch while it waits.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bessai.telemetry.outbox import OutboxRow

SinkState = Literal["idle", "connecting", "connected", "disconnected", "auth_failed"]

SINK_STATES: tuple[SinkState, ...] = (
    "idle",
    "connecting",
    "connected",
    "disconnected",
    "auth_failed",
)


@dataclass(slots=True)
class SinkStatus:
    """Mutable in-memory status of one sink, read by metrics and health (never by I/O)."""

    name: str
    type: str
    target: str
    state: SinkState = "idle"
    last_ack_us: int | None = None
    last_error: str | None = None
    last_error_us: int | None = None
    consecutive_failures: int = 0
    failing_since_us: int | None = None
    started_us: int | None = None
    published_total: int = 0
    errors_total: int = 0
    pending_rows: int = 0
    oldest_pending_ts_us: int | None = None
    # How long rows wait for this sink by design (the lake's flush interval).
    expected_delay_s: float = 0.0


class Sink(abc.ABC):
    """A destination for outbox rows."""

    #: Largest batch the forwarder hands over (the sink's in-flight window).
    batch_max_rows: int = 500
    #: Let rows accumulate in the outbox until the oldest waited this long (lake files).
    batch_max_delay_s: float = 0.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    #: Batches handed over and not yet acknowledged at most (1: send, wait, send the next).
    pipeline_depth: int = 1

    def __init__(self, name: str, type_: str, target: str) -> None:
        self.name = name
        self.target = target
        self.status = SinkStatus(name=name, type=type_, target=target)

    @abc.abstractmethod
    async def publish(self, rows: Sequence[OutboxRow], payloads: Sequence[bytes]) -> None:
        """Deliver `rows` (with `payloads`, already flagged historical where late) in order;
        return when every one is acknowledged; raise SinkError on any failure."""

    async def send(
        self, rows: Sequence[OutboxRow], payloads: Sequence[bytes]
    ) -> asyncio.Future[None]:
        """Hand `rows` over after everything sent before; the future completes when every one
        is acknowledged and fails with SinkError otherwise (the forwarder cancels it when an
        earlier batch failed). The default publishes and waits right here."""
        await self.publish(rows, payloads)
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        acked.set_result(None)
        return acked

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; safe to call twice."""
