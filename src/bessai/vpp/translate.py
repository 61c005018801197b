"""Event intervals into control requests: capacity limits into `GridLimit`s (constraints on
what the controllers below propose), dispatch, load-shed level and price response into
`TimedSetpoint`s. What cannot be acted on is said, so it is reported (docs/vpp.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bessai.config import SiteConfig
from bessai.control.controllers import GridLimit, TimedSetpoint
from bessai.vpp.events import (
    DISPATCH,
    EXPORT_LIMIT,
    IMPORT_LIMIT,
    PRICE,
    SIMPLE,
    Interval,
    first_number,
)


@dataclass
class Requests:
    """What one interval asks of the site."""

    setpoints: list[TimedSetpoint] = field(default_factory=list)
    limits: list[GridLimit] = field(default_factory=list)
    #: payload types present but not acted on, with why
    ignored: dict[str, str] = field(default_factory=dict)


def translate(
    interval: Interval, site: SiteConfig, unit_w: dict[str, float], label: str
) -> Requests:
    """The control requests of one interval. `unit_w`: watts per unit of each power type."""
    out = Requests()
    battery, vpp = site.battery, site.vpp
    start, end = interval.start, interval.end
    for kind, values in interval.payloads.items():
        value = first_number(values)
        if value is None:
            out.ignored[kind] = "no numeric value"
            continue
        why = f"{label}: {kind} {value:g}"
        if kind in (IMPORT_LIMIT, EXPORT_LIMIT):
            cap_w = max(0.0, value * unit_w[kind])
            out.limits.append(
                GridLimit(start, end, cap_w if kind == IMPORT_LIMIT else None,
                          cap_w if kind == EXPORT_LIMIT else None, why)
            )  # fmt: skip
        elif kind == DISPATCH:
            # Generator convention: a positive dispatch is power delivered to the grid.
            out.setpoints.append(TimedSetpoint(start, end, -value * unit_w[kind], why))
        elif kind == SIMPLE:
            level = max(0, min(3, round(value)))
            if level:
                share = level / 3.0
                out.setpoints.append(
                    TimedSetpoint(start, end, -share * battery.max_discharge_w, why)
                )
        elif kind == PRICE:
            low, high = vpp.price_charge_below, vpp.price_discharge_above
            if low is None and high is None:
                out.ignored[kind] = "no price thresholds configured ([sites.vpp] price_*)"
            elif high is not None and value >= high:
                out.setpoints.append(TimedSetpoint(start, end, -battery.max_discharge_w, why))
            elif low is not None and value <= low:
                out.setpoints.append(TimedSetpoint(start, end, battery.max_charge_w, why))
        else:
            out.ignored[kind] = "payload type not supported"
    return out
