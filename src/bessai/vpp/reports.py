"""What the battery did during an event interval, measured from the cycle records, and the
OpenADR report that says it: the request, the measured demand, the baseline (the site without
its battery), the flexibility left, and whether the site complied (and why not)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bessai.vpp.events import EXPORT_LIMIT, IMPORT_LIMIT, Interval
from bessai.vpp.times import format_datetime, format_duration

COMPLIED = "COMPLIED"
CANNOT_COMPLY = "CANNOT_COMPLY"
OPTED_OUT = "OPTED_OUT"
NOT_SUPPORTED = "NOT_SUPPORTED"
NO_DATA = "NO_DATA"
#: a capacity limit counts as kept within this much (one cycle's load change)
LIMIT_TOLERANCE_W = 100.0

#: private payload types (3.1.0 allows them): the outcome and the request echoed
COMPLIANCE = "X_BESSAI_COMPLIANCE"
REQUESTED = "X_BESSAI_REQUESTED"

_DESCRIBED = (
    ("DEMAND", "AVERAGE", "KW"),
    ("X_BESSAI_PEAK_DEMAND", "PEAK", "KW"),
    ("BASELINE", "AVERAGE", "KW"),
    ("USAGE", "SUMMED", "KWH"),
    ("STORAGE_CHARGE_LEVEL", "DIRECT_READ", "PERCENT"),
    ("STORAGE_MAX_DISCHARGE_POWER", "DIRECT_READ", "KW"),
    ("STORAGE_MAX_CHARGE_POWER", "DIRECT_READ", "KW"),
    ("STORAGE_USABLE_CAPACITY", "DIRECT_READ", "KWH"),
)
DESCRIPTORS = [
    {"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": p, "readingType": r, "units": u}
    for p, r, u in _DESCRIBED
]


@dataclass
class IntervalStats:
    """The cycles of one interval, summed as they come."""

    cycles: int = 0
    grid_sum_w: float = 0.0
    grid_max_w: float | None = None
    grid_min_w: float | None = None
    battery_sum_w: float = 0.0
    baseline_sum_w: float = 0.0
    soc_pct: float | None = None
    flex_up_w: float | None = None
    flex_down_w: float | None = None
    usable_kwh: float | None = None
    #: cycles after the first whose meter broke the limit, and why the site could not help it
    breaches: int = 0
    reasons: list[str] = field(default_factory=list)

    def add(self, grid_w: float, battery_w: float, counted: bool) -> None:
        """One cycle's meter and battery; `counted`: judged against the limit."""
        self.cycles += 1
        self.grid_sum_w += grid_w
        self.battery_sum_w += battery_w
        self.baseline_sum_w += grid_w - battery_w
        if counted:
            self.grid_max_w = grid_w if self.grid_max_w is None else max(self.grid_max_w, grid_w)
            self.grid_min_w = grid_w if self.grid_min_w is None else min(self.grid_min_w, grid_w)

    def note(self, reason: str) -> None:
        """A reason the site did not do what the event asked (kept once)."""
        if reason and reason not in self.reasons and len(self.reasons) < 5:
            self.reasons.append(reason)

    def mean_w(self, total: float) -> float:
        """A sum over the cycles as a mean."""
        return total / self.cycles if self.cycles else 0.0


def judge(
    interval: Interval, stats: IntervalStats | None, unit_w: dict[str, float]
) -> tuple[str, str]:
    """The interval's outcome and why, from what was measured."""
    unsupported = [t for t in interval.payloads if t not in unit_w]
    if stats is None or stats.cycles == 0:
        return NO_DATA, "no cycle of the site fell in this interval"
    limit = interval.payloads.get(IMPORT_LIMIT)
    if limit and stats.grid_max_w is not None:
        cap_w = float(limit[0]) * unit_w[IMPORT_LIMIT]
        if stats.grid_max_w > cap_w + LIMIT_TOLERANCE_W:
            why = "; ".join(stats.reasons) or "the battery could not cover the site's load"
            return CANNOT_COMPLY, f"import peaked at {stats.grid_max_w / 1000:.2f} kW: {why}"
    limit = interval.payloads.get(EXPORT_LIMIT)
    if limit and stats.grid_min_w is not None:
        cap_w = float(limit[0]) * unit_w[EXPORT_LIMIT]
        if -stats.grid_min_w > cap_w + LIMIT_TOLERANCE_W:
            why = "; ".join(stats.reasons) or "the battery could not absorb the surplus"
            return CANNOT_COMPLY, f"export peaked at {-stats.grid_min_w / 1000:.2f} kW: {why}"
    if stats.reasons:
        return CANNOT_COMPLY, "; ".join(stats.reasons)
    if unsupported:
        return NOT_SUPPORTED, f"payload types not acted on: {', '.join(sorted(unsupported))}"
    return COMPLIED, "measured at the meter"


def interval_report(
    interval: Interval, stats: IntervalStats | None, outcome: tuple[str, str]
) -> dict[str, Any]:
    """One report interval: the event's interval id and period, measured payloads."""
    payloads: list[dict[str, Any]] = [
        {"type": COMPLIANCE, "values": list(outcome)},
        {
            "type": REQUESTED,
            "values": [f"{k}={v[0] if v else ''}" for k, v in interval.payloads.items()],
        },
    ]
    if stats is not None and stats.cycles:
        hours = (interval.end - interval.start).total_seconds() / 3600.0
        demand_kw = stats.mean_w(stats.grid_sum_w) / 1000.0
        payloads += [
            {"type": "DEMAND", "values": [round(demand_kw, 3)]},
            {"type": "BASELINE", "values": [round(stats.mean_w(stats.baseline_sum_w) / 1000.0, 3)]},
            {"type": "USAGE", "values": [round(demand_kw * hours, 4)]},
        ]
        if stats.grid_max_w is not None:
            peak_kw = round(stats.grid_max_w / 1000.0, 3)
            payloads.append({"type": "X_BESSAI_PEAK_DEMAND", "values": [peak_kw]})
        for kind, value, digits in (
            ("STORAGE_CHARGE_LEVEL", stats.soc_pct, 1),
            ("STORAGE_MAX_DISCHARGE_POWER", _kw(stats.flex_up_w), 3),
            ("STORAGE_MAX_CHARGE_POWER", _kw(stats.flex_down_w), 3),
            ("STORAGE_USABLE_CAPACITY", stats.usable_kwh, 3),
        ):
            if value is not None:
                payloads.append({"type": kind, "values": [round(value, digits)]})
    return {
        "id": interval.interval_id,
        "intervalPeriod": {
            "start": format_datetime(interval.start),
            "duration": format_duration(interval.end - interval.start),
        },
        "payloads": payloads,
    }


def _kw(value_w: float | None) -> float | None:
    return None if value_w is None else value_w / 1000.0


def report_body(
    event_id: str, client_name: str, resource_name: str, intervals: list[dict[str, Any]]
) -> dict[str, Any]:
    """A reportRequest of the 3.1.0 document."""
    return {
        "eventID": event_id,
        "clientName": client_name,
        "reportName": f"{client_name} {event_id}",
        "payloadDescriptors": DESCRIPTORS,
        "resources": [{"resourceName": resource_name, "intervals": intervals}],
    }


def now_text(now: datetime) -> str:
    """For log lines."""
    return format_datetime(now)
