"""What every sink is to the forwarder: publish a batch in order, return only once all of it
is acknowledged, raise SinkError otherwise. Retrying is the forwarder's job, not the sink's."""

from __future__ import annotations

import abc
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

    def __init__(self, name: str, type_: str, target: str) -> None:
        self.name = name
        self.target = target
        self.status = SinkStatus(name=name, type=type_, target=target)

    @abc.abstractmethod
    async def publish(self, rows: Sequence[OutboxRow], payloads: Sequence[bytes]) -> None:
        """Deliver `rows` (with `payloads`, already flagged historical where late) in order;
        return when every one is acknowledged; raise SinkError on any failure."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; safe to call twice."""
