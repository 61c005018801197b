"""The process image: every point's last value with its timestamp and quality, frozen per cycle.

A value can be missing or old; nothing downstream may assume otherwise. Quality is `good` when
read within the staleness window, `stale` when older, `invalid` when the device does not serve
the point or reports its "no value" sentinel. The window follows how often the point is read:
`stale_after_s` for the fast group, `slow_stale_after_s` for the slow group (read every N cycles,
so its window is N cycles longer), none for the static group (identification does not age).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from bessai.modbus.client import PollResult, Reading
from bessai.modbus.codec import Value
from bessai.modbus.profile import PollGroup


class Quality(StrEnum):
    GOOD = "good"
    STALE = "stale"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class PointValue:
    value: Value
    ts: datetime | None
    quality: Quality
    #: the register's raw number (enums: the code behind the label), text for strings
    raw: int | str | None = None


@dataclass(frozen=True, slots=True)
class ProcessImage:
    site_id: str
    cycle: int
    ts: datetime
    points: Mapping[str, PointValue]

    def get(self, key: str) -> PointValue | None:
        return self.points.get(key)

    def good(self, key: str) -> Value:
        """The value when its quality is good, else None."""
        point = self.points.get(key)
        return point.value if point is not None and point.quality is Quality.GOOD else None

    def number(self, key: str) -> float | None:
        value = self.good(key)
        return float(value) if isinstance(value, int | float) else None

    def age_s(self, key: str) -> float | None:
        point = self.points.get(key)
        if point is None or point.ts is None:
            return None
        return (self.ts - point.ts).total_seconds()


class ImageBuilder:
    """Keeps the last reading of every point and freezes an image per cycle."""

    def __init__(
        self, site_id: str, stale_after_s: float, slow_stale_after_s: float | None = None
    ) -> None:
        self.site_id = site_id
        self.stale_after_s = stale_after_s
        self.slow_stale_after_s = max(stale_after_s, slow_stale_after_s or 0.0)
        self._last: dict[str, Reading] = {}

    def _window_s(self, reading: Reading) -> float:
        group = reading.poll_group
        if group is PollGroup.STATIC:
            return float("inf")
        return self.slow_stale_after_s if group is PollGroup.SLOW else self.stale_after_s

    def update(self, result: PollResult) -> None:
        for key, reading in result.readings.items():
            if reading.error is not None and key in self._last:
                continue  # a failed read keeps the previous value, which ages into stale
            self._last[key] = reading

    def freeze(self, cycle: int, now: datetime) -> ProcessImage:
        points: dict[str, PointValue] = {}
        for key, reading in self._last.items():
            if not reading.available or reading.value is None or reading.error is not None:
                quality = Quality.INVALID
            elif (now - reading.ts).total_seconds() > self._window_s(reading):
                quality = Quality.STALE
            else:
                quality = Quality.GOOD
            points[key] = PointValue(reading.value, reading.ts, quality, reading.raw)
        return ProcessImage(self.site_id, cycle, now, MappingProxyType(points))
