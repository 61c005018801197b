"""Health of the telemetry path, computed from in-memory snapshots for the gateway's `/health`.

Degraded (HTTP 503 in the gateway) when:
- the outbox storage is full, or the cap is dropping telemetry, or either happened within
  the last `drop_hold_s` (a full disk frees a chunk and then fits for a while: health must
  not flap back to ok between two drops);
- the oldest envelope a sink has not acknowledged is older than `max_oldest_age_s` (plus the
  sink's own batching delay: the lake's flush interval);
- a sink refused our credentials (at once: retrying alone will not fix it);
- a sink has been failing for longer than `sink_stale_after_s`;
- the outbox file was damaged and replaced at start, within the last `drop_hold_s`.
Each reason is a sentence an operator can act on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from bessai.telemetry.envelope import format_ts
from bessai.telemetry.outbox import OutboxStats
from bessai.telemetry.sinks.base import SinkStatus

HealthState = Literal["ok", "degraded"]


def _iso(us: int | None) -> str | None:
    return None if us is None else format_ts(datetime.fromtimestamp(us / 1e6, UTC))


@dataclass(frozen=True, slots=True)
class TelemetryHealth:
    status: HealthState
    reasons: tuple[str, ...]
    outbox: dict[str, Any] = field(default_factory=dict)
    sinks: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Facts worth an operator's eye that are not faults (no sink configured).
    notes: tuple[str, ...] = ()

    @property
    def http_status(self) -> int:
        return 200 if self.status == "ok" else 503

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reasons": list(self.reasons),
            "outbox": self.outbox,
            "sinks": self.sinks,
            "notes": list(self.notes),
        }


def telemetry_health(
    stats: OutboxStats,
    sinks: Sequence[SinkStatus],
    *,
    max_oldest_age_s: float,
    sink_stale_after_s: float,
    drop_hold_s: float = 300.0,
    outbox_path: str = "",
    now_us: int | None = None,
    notes: Sequence[str] = (),
) -> TelemetryHealth:
    """Judge the outbox and every sink: `degraded` with the reasons, or `ok`."""
    now = now_us if now_us is not None else time.time_ns() // 1000
    reasons = _outbox_reasons(stats, now, drop_hold_s)
    notes = list(notes)
    if stats.repaired is not None and stats.repaired_us is not None:
        # Loud for drop_hold_s (an alert fires), then a standing note until the restart.
        if (now - stats.repaired_us) / 1e6 <= drop_hold_s:
            reasons.append(stats.repaired)
        else:
            notes.append(stats.repaired)
    sink_docs: dict[str, dict[str, Any]] = {}
    for s in sinks:
        reasons.extend(_sink_reasons(s, now, max_oldest_age_s, sink_stale_after_s))
        sink_docs[s.name] = _sink_doc(s, now)
    outbox_doc: dict[str, Any] = {
        "path": outbox_path,
        "rows": stats.rows,
        "bytes": stats.bytes,
        "oldest_age_s": stats.oldest_age_s(now),
        "storage": stats.storage_state,
        "storage_error": stats.storage_error,
        "dropped_total": stats.dropped_total,
        "held_in_memory": stats.held_in_memory,
    }
    return TelemetryHealth(
        status="degraded" if reasons else "ok",
        reasons=tuple(reasons),
        outbox=outbox_doc,
        sinks=sink_docs,
        notes=tuple(notes),
    )


def _outbox_reasons(stats: OutboxStats, now: int, drop_hold_s: float) -> list[str]:
    recent_drop = stats.last_drop_us is not None and (now - stats.last_drop_us) / 1e6 <= drop_hold_s
    if stats.storage_state == "error":
        return [
            f"outbox cannot be written ({stats.storage_error}); "
            f"{stats.held_in_memory} envelopes held in memory"
        ]
    if stats.storage_state == "full":
        return [
            f"outbox storage is full ({stats.storage_error}); dropping oldest telemetry, "
            f"{stats.held_in_memory} alarms/commands held in memory"
        ]
    if stats.storage_state == "capped":
        return [
            f"outbox cap reached: dropping oldest telemetry ({stats.dropped_total} dropped so far)"
        ]
    if recent_drop and stats.last_drop_us is not None:
        return [
            f"outbox dropped telemetry {(now - stats.last_drop_us) / 1e6:.0f} s ago "
            f"({stats.dropped_total} dropped so far; storage full or cap reached)"
        ]
    return []


def _sink_reasons(
    s: SinkStatus, now: int, max_oldest_age_s: float, sink_stale_after_s: float
) -> list[str]:
    reasons: list[str] = []
    # Judged per sink: the lake holds rows for its flush interval by design, which must not
    # read as a stuck uplink.
    if s.oldest_pending_ts_us is not None:
        pending_age = (now - s.oldest_pending_ts_us) / 1e6
        limit = max_oldest_age_s + s.expected_delay_s
        if pending_age > limit:
            reasons.append(
                f"sink {s.name} ({s.target}): oldest unsent envelope is "
                f"{pending_age:.0f} s old (limit {limit:g} s)"
            )
    if s.state == "auth_failed":
        reasons.append(f"sink {s.name} ({s.target}): credentials refused: {s.last_error}")
    elif s.failing_since_us is not None and (now - s.failing_since_us) / 1e6 > sink_stale_after_s:
        failing_s = (now - s.failing_since_us) / 1e6
        reasons.append(f"sink {s.name} ({s.target}) failing for {failing_s:.0f} s: {s.last_error}")
    return reasons


def _sink_doc(s: SinkStatus, now: int) -> dict[str, Any]:
    return {
        "type": s.type,
        "target": s.target,
        "state": s.state,
        "last_ack": _iso(s.last_ack_us),
        "last_ack_age_s": None if s.last_ack_us is None else (now - s.last_ack_us) / 1e6,
        "pending_rows": s.pending_rows,
        "oldest_pending_age_s": None
        if s.oldest_pending_ts_us is None
        else max(0.0, (now - s.oldest_pending_ts_us) / 1e6),
        "consecutive_failures": s.consecutive_failures,
        "last_error": s.last_error,
        "last_error_at": _iso(s.last_error_us),
    }
