"""Market days: the local days of a price series, which of them can be scored, and why the
others are left out.

A day is scored (planned in a back-test, judged in an evaluation) only when every step of it has
a price and the history its forecast reads (:data:`FORECAST_HISTORY_H`, the trained model's lag
window) has no gap either: a day right after a gap left out by the loader would be forecast
from prices that do not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from bessai.market.series import PriceSeries

#: History a forecast for one day reads, hours: the longest lag (a week) from the last step of
#: the day, i.e. a week and a day before it starts.
FORECAST_HISTORY_H = 192

Day = tuple[date, int, int]  # local date, first step, end step


@dataclass(frozen=True, slots=True)
class Excluded:
    """Consecutive local days left out for the same reason."""

    first: date
    last: date
    reason: str

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def __str__(self) -> str:
        span = f"{self.first}" if self.first == self.last else f"{self.first} .. {self.last}"
        return f"{span} ({self.days} day{'s' if self.days > 1 else ''}): {self.reason}"

    def to_json(self) -> dict[str, object]:
        return {
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "days": self.days,
            "reason": self.reason,
        }


def _local_days(series: PriceSeries) -> list[Day]:
    """(local date, first step, end step) of every local day the series touches."""
    local_dates = series.index.tz_convert(series.timezone).date
    codes, uniques = pd.factorize(local_dates)
    bounds = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(codes)]])
    return [(uniques[codes[s]], int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def _steps_in_day(day: date, tz: ZoneInfo, step: timedelta) -> int:
    start = datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp()
    return round((end - start) / step.total_seconds())


def market_days(series: PriceSeries) -> list[Day]:
    """(local date, first step, end step) of every complete local day in the series: every
    step of the day present and priced (a day touched by a gap left out is not complete)."""
    tz = ZoneInfo(series.timezone)
    priced = np.isfinite(series.prices.to_numpy(dtype=np.float64))
    return [
        (d, s, e)
        for d, s, e in _local_days(series)
        if e - s == _steps_in_day(d, tz, series.step) and priced[s:e].all()
    ]


def _ranges(days: list[tuple[date, str]]) -> list[Excluded]:
    """Consecutive dates with the same reason, merged."""
    out: list[Excluded] = []
    for d, reason in sorted(days):
        last = out[-1] if out else None
        if last is not None and last.reason == reason and d == last.last + timedelta(days=1):
            out[-1] = Excluded(last.first, d, reason)
        else:
            out.append(Excluded(d, d, reason))
    return out


def scorable_days(
    series: PriceSeries, *, history_h: float = FORECAST_HISTORY_H
) -> tuple[list[Day], list[Excluded]]:
    """The complete days whose last ``history_h`` hours before them have a price at every step,
    and the days left out (touched by a gap, or right after one) with the reason."""
    priced = np.isfinite(series.prices.to_numpy(dtype=np.float64))
    missing = np.concatenate([[0], np.cumsum(~priced)])
    history = round(history_h * 3600.0 / series.step.total_seconds())
    complete = {d for d, _, _ in market_days(series)}
    left_out: list[tuple[date, str]] = []
    kept: list[Day] = []
    for d, s, e in _local_days(series):
        if not priced[s:e].all():
            left_out.append((d, "no price for some steps (a gap longer than --max-gap-h)"))
        elif d not in complete:
            continue  # a partial first or last day: not a market day, not an exclusion
        elif missing[s] - missing[max(0, s - history)] > 0:
            reason = f"the {history_h:g} h of history its forecast reads have a gap"
            left_out.append((d, reason))
        else:
            kept.append((d, s, e))
    return kept, _ranges(left_out)


def describe(excluded: list[Excluded], limit: int = 5) -> str:
    """The excluded ranges in one line (the first ``limit``, then how many more)."""
    shown = "; ".join(str(x) for x in excluded[:limit])
    more = len(excluded) - limit
    return shown + (f"; and {more} more ranges" if more > 0 else "")
