"""The values the outbox hands out: a stored row, a statistics snapshot, one append's result."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from bessai.telemetry.envelope import Envelope

StorageState = Literal["ok", "capped", "full", "error"]
STORAGE_STATES: tuple[StorageState, ...] = ("ok", "capped", "full", "error")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One stored envelope as the forwarder sees it."""

    id: int
    site_id: str
    seq: int
    device_id: str | None
    kind: str
    ts_us: int
    payload: bytes

    @property
    def key(self) -> str:
        return f"{self.site_id}:{self.seq}"

    def payload_at(self, now_us: int, historical_after_us: int) -> bytes:
        """The payload to publish now: flagged historical when it is late.

        The stored JSON always carries `"historical":false` before `values`; value names
        cannot be `historical` and strings are escaped, so the first match is the field."""
        if now_us - self.ts_us > historical_after_us:
            return self.payload.replace(b'"historical":false', b'"historical":true', 1)
        return self.payload


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """A snapshot of the outbox, cheap to read from any thread (metrics, health)."""

    rows: int = 0
    bytes: int = 0
    oldest_ts_us: int | None = None
    dropped: dict[tuple[str, str], int] = field(default_factory=dict)
    storage_state: StorageState = "ok"
    storage_error: str | None = None
    held_in_memory: int = 0
    last_drop_us: int | None = None
    updated_us: int = 0
    #: Set when a damaged outbox file was replaced at open (what happened, and when).
    repaired: str | None = None
    repaired_us: int | None = None

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def oldest_age_s(self, now_us: int | None = None) -> float | None:
        if self.oldest_ts_us is None:
            return None
        now = now_us if now_us is not None else wall_clock_us()
        return max(0.0, (now - self.oldest_ts_us) / 1e6)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What one cycle's append did."""

    envelopes: tuple[Envelope, ...]
    dropped: int
    held: int
    storage_state: StorageState


def wall_clock_us() -> int:
    """Wall-clock time in integer microseconds since the epoch (the stored timestamps)."""
    return time.time_ns() // 1000
