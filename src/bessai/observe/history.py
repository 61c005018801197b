"""The last hour of each site's key values, in memory, for the dashboard's charts.

Fed by the sites' cycle records (one listener per site), read by
`GET /api/v1/sites/{id}/history`, so a reloaded page shows the recent minutes at once instead of
starting an empty chart. Memory is bounded: at most `max_points + 1` points per site. A site
that cycles faster than `window_s / max_points` is downsampled to the first point of each such
time bucket, plus any point whose safety state differs from the last kept one, so a short SAFE
is not lost. The buffer lives and dies with the process; the durable history is the telemetry.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bessai.control.site import CycleRecord

WINDOW_S = 3600.0
MAX_POINTS = 3600


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One cycle's key values (battery power > 0 charging, grid power > 0 importing)."""

    ts: datetime
    soc_pct: float | None
    battery_power_w: float | None
    pv_power_w: float | None
    grid_power_w: float | None
    load_power_w: float | None
    setpoint_w: float
    safety_state: str

    @classmethod
    def of(cls, record: CycleRecord) -> HistoryPoint:
        m = record.measurements
        return cls(
            ts=record.ts,
            soc_pct=m.soc_pct,
            battery_power_w=m.battery_power_w,
            pv_power_w=m.pv_power_w,
            grid_power_w=m.grid_power_w,
            load_power_w=m.load_power_w,
            setpoint_w=record.decision.setpoint_w,
            safety_state=record.safety_state.value,
        )


class SiteHistory:
    """A ring buffer of one site's points, oldest first, at most `maxlen` long; with
    `bucket_s`, one point per bucket of that many seconds (and every safety-state change)."""

    def __init__(self, resolution_s: float, maxlen: int, bucket_s: float | None = None) -> None:
        self.resolution_s = resolution_s
        self.bucket_s = bucket_s
        self._points: deque[HistoryPoint] = deque(maxlen=maxlen)

    def __len__(self) -> int:
        return len(self._points)

    def add(self, point: HistoryPoint) -> bool:
        """Keep the point unless it is out of order or downsampled away; True when kept."""
        if self._points:
            last = self._points[-1]
            if point.ts <= last.ts:
                return False  # a clock step back: keep the series ordered
            if (
                self.bucket_s is not None
                and point.safety_state == last.safety_state
                and self._bucket(point) == self._bucket(last)
            ):
                return False
        self._points.append(point)
        return True

    def _bucket(self, point: HistoryPoint) -> int:
        assert self.bucket_s is not None
        # Buckets on the epoch, not on the last kept point: whatever the cycle's jitter, a
        # bucket holds one point, so maxlen points always span the whole window.
        return math.floor(point.ts.timestamp() / self.bucket_s)

    def since(self, start: datetime) -> list[HistoryPoint]:
        """The points at or after `start`, oldest first."""
        points = list(self._points)
        first = bisect.bisect_left(points, start, key=lambda p: p.ts)
        return points[first:]


class RecentHistory:
    """Every site's `SiteHistory`; `observe` is the cycle listener that fills them."""

    def __init__(
        self,
        cycle_s_by_site: Mapping[str, float],
        window_s: float = WINDOW_S,
        max_points: int = MAX_POINTS,
    ) -> None:
        if window_s <= 0 or max_points < 2:
            raise ValueError("the history needs a positive window and at least two points")
        self.window_s = window_s
        self.sites: dict[str, SiteHistory] = {}
        bucket_s = window_s / max_points
        for site_id, cycle_s in cycle_s_by_site.items():
            fast = cycle_s < bucket_s
            resolution_s = bucket_s if fast else cycle_s
            # One more than the window holds, so a full window's span is always covered.
            maxlen = math.ceil(window_s / resolution_s) + 1
            self.sites[site_id] = SiteHistory(resolution_s, maxlen, bucket_s if fast else None)

    def observe(self, record: CycleRecord) -> None:
        """Cycle listener: keep this record's key values."""
        site = self.sites.get(record.site_id)
        if site is not None:
            site.add(HistoryPoint.of(record))

    def recent(self, site_id: str, minutes: float, now: datetime) -> list[HistoryPoint]:
        """The site's points of the last `minutes` before `now` (KeyError: unknown site)."""
        return self.sites[site_id].since(now - timedelta(minutes=minutes))
