"""OpenADR 3 events as times and values: the intervals of an event placed in time (the User
Guide's rules: an interval's own period overrides the event's; intervals without a start follow
each other), and the payload types a battery can honour translated into control requests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bessai.vpp.times import FOREVER, parse_datetime, parse_duration

#: payload types this VEN acts on (docs/vpp.md, "Payload types")
IMPORT_LIMIT = "IMPORT_CAPACITY_LIMIT"
EXPORT_LIMIT = "EXPORT_CAPACITY_LIMIT"
PRICE = "PRICE"
DISPATCH = "DISPATCH_SETPOINT"
SIMPLE = "SIMPLE"
SUPPORTED = (IMPORT_LIMIT, EXPORT_LIMIT, PRICE, DISPATCH, SIMPLE)
_UNIT_W = {"W": 1.0, "KW": 1_000.0, "MW": 1_000_000.0}


@dataclass(frozen=True, slots=True)
class Interval:
    """One interval of an event, placed in time, with its payloads by type."""

    event_id: str
    interval_id: int
    start: datetime
    end: datetime
    payloads: dict[str, tuple[Any, ...]]


def intervals(event: dict[str, Any], now: datetime) -> list[Interval]:
    """The event's intervals in time order. An event without any start starts `now`."""
    period = event.get("intervalPeriod") or {}
    cursor = parse_datetime(period["start"], now) if "start" in period else now
    default = _duration(period.get("duration"))
    out = []
    for item in event.get("intervals") or []:
        own = item.get("intervalPeriod") or {}
        start = parse_datetime(own["start"], now) if "start" in own else cursor
        length = _duration(own.get("duration")) if "duration" in own else default
        end = _later(start, length)
        payloads = {p["type"]: tuple(p.get("values") or ()) for p in item.get("payloads") or []}
        out.append(Interval(str(event.get("id", "")), int(item["id"]), start, end, payloads))
        cursor = end
    return out


#: the end of an interval without one ("P9999Y"): the latest time Python can hold
END_OF_TIME = datetime.max.replace(tzinfo=UTC)


def _later(start: datetime, length: timedelta) -> datetime:
    try:
        return start + length
    except OverflowError:
        return END_OF_TIME


def _duration(text: str | None) -> timedelta:
    if text is None:
        return FOREVER
    value = parse_duration(text)
    # "P9999Y" and the like: no end. A zero duration means "until further notice" too.
    return FOREVER if value >= FOREVER or value <= timedelta(0) else value


def event_end(event: dict[str, Any], now: datetime) -> datetime | None:
    """When the event's last interval ends (None: no intervals)."""
    found = intervals(event, now)
    return max((i.end for i in found), default=None)


def units_w(event: dict[str, Any], payload_type: str) -> float:
    """Watts per unit of a power payload: its descriptor's units (W, KW, MW); KW by default."""
    for d in event.get("payloadDescriptors") or []:
        if d.get("payloadType") == payload_type and d.get("units"):
            return _UNIT_W.get(str(d["units"]).upper(), 1_000.0)
    return 1_000.0


def first_number(values: tuple[Any, ...]) -> float | None:
    """The payload's value, when it is a number."""
    if values and isinstance(values[0], int | float) and not isinstance(values[0], bool):
        return float(values[0])
    return None
