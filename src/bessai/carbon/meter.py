"""Measured battery power -> energy per fixed interval (15 min by default, aligned to UTC).

Each sample's power holds until the next sample (zero-order hold; the inverter's power register
is itself an average over its update period). A hold longer than `max_gap_s`, or one that
starts from a missing sample, is a gap: not counted, and the interval's `covered_s` says how
much of it was measured. An interval closes when a sample at or after its end arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DEFAULT_INTERVAL_S = 900.0
DEFAULT_MAX_GAP_S = 60.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Interval:
    site: str
    start: datetime
    end: datetime
    charged_kwh: float
    discharged_kwh: float
    covered_s: float

    @property
    def empty(self) -> bool:
        return self.covered_s <= 0


class EnergyMeter:
    """Integrates one site's (time, power) samples; `add` returns the intervals it closed."""

    def __init__(
        self,
        site: str,
        interval_s: float = DEFAULT_INTERVAL_S,
        max_gap_s: float = DEFAULT_MAX_GAP_S,
        *,
        not_before: datetime | None = None,
    ) -> None:
        """`not_before`: measure nothing earlier (the end of what was already minted, so a
        restart inside an interval does not count its first part twice)."""
        if interval_s <= 0 or max_gap_s <= 0:
            raise ValueError("interval_s and max_gap_s must be > 0")
        self.site = site
        self.interval = timedelta(seconds=interval_s)
        self.max_gap_s = max_gap_s
        self._last: tuple[datetime, float | None] | None = None
        self._start: datetime | None = None
        self._charged_kwh = 0.0
        self._discharged_kwh = 0.0
        self._covered_s = 0.0
        self.not_before = None if not_before is None else not_before.astimezone(UTC)

    def _floor(self, ts: datetime) -> datetime:
        return EPOCH + ((ts - EPOCH) // self.interval) * self.interval

    @property
    def pending_kwh(self) -> tuple[float, float]:
        """(charged, discharged) measured in the open interval."""
        return self._charged_kwh, self._discharged_kwh

    @property
    def open_start(self) -> datetime | None:
        return self._start

    def add(self, ts: datetime, power_w: float | None) -> list[Interval]:
        """A sample (battery power > 0 charging, None when not known with good quality)."""
        ts = ts.astimezone(UTC)
        closed: list[Interval] = []
        if self._last is None:
            if self.not_before is not None and ts < self.not_before:
                return closed
            self._last = (ts, power_w)
            self._start = self._floor(ts)
            if self.not_before is not None:
                self._start = max(self._start, self.not_before)
            return closed
        t0, p0 = self._last
        if ts <= t0:
            return closed  # a repeated or late sample adds nothing
        counted = p0 is not None and (ts - t0).total_seconds() <= self.max_gap_s
        t = t0
        while True:
            assert self._start is not None
            end = self._floor(self._start) + self.interval  # a resumed start is unaligned
            upto = min(ts, end)
            if counted and p0 is not None:
                self._hold(p0, (upto - t).total_seconds())
            t = upto
            if ts < end:
                break
            closed.append(self._close(end))
        self._last = (ts, power_w)
        return [c for c in closed if not c.empty]

    def _hold(self, power_w: float, seconds: float) -> None:
        kwh = power_w * seconds / 3.6e6
        if kwh >= 0:
            self._charged_kwh += kwh
        else:
            self._discharged_kwh -= kwh
        self._covered_s += seconds

    def _close(self, end: datetime) -> Interval:
        assert self._start is not None
        done = Interval(
            self.site, self._start, end, self._charged_kwh, self._discharged_kwh, self._covered_s
        )
        self._start = end
        self._charged_kwh = self._discharged_kwh = self._covered_s = 0.0
        return done

    def flush(self) -> Interval | None:
        """Close the open interval at the last sample, cut to the whole second (at shutdown):
        a partial interval, so a restart never measures the same time twice."""
        if self._last is None or self._start is None:
            return None
        last_ts = self._last[0].replace(microsecond=0)
        if last_ts <= self._start:
            self.not_before = self._start
            self._start = self._last = None
            return None
        done = Interval(
            self.site,
            self._start,
            last_ts,
            self._charged_kwh,
            self._discharged_kwh,
            self._covered_s,
        )
        self._start = None
        self._last = None
        self.not_before = last_ts
        self._charged_kwh = self._discharged_kwh = self._covered_s = 0.0
        return None if done.empty else done
