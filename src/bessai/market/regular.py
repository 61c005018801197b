"""From rows read off a price file to a regular series: order, reject duplicates and off-grid
times, fill short gaps, leave long ones out, and report every repair.

Gap policy: a run of missing steps up to ``max_gap_h`` hours long (default
:data:`DEFAULT_MAX_GAP_H`) is interpolated linearly in time and each filled step is reported
(``gap-filled``). A longer run is not invented: its steps stay without a price (NaN), the gap is
reported once (``gap-left-out``), and the market days it touches are left out of everything
scored on the series (back-tests, forecast evaluation, training rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from bessai.errors import ConfigError, DataError
from bessai.market.series import LoadIssue, LoadReport, PriceSeries

#: The longest run of missing prices the loader fills by interpolation, hours. Longer gaps are
#: left out: a straight line over hours of a marginal price would be an invented price.
DEFAULT_MAX_GAP_H = 3.0


@dataclass(slots=True)
class RawPrices:
    """What a reader collected from a file: each price with its UTC start and its line, what
    it noticed on the way, and what the file says about itself."""

    path: Path
    kind: str
    unit: str
    node: str
    timezone: str
    step: timedelta | None  # None: infer it from the times
    rows: int = 0
    starts: list[datetime] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    issues: list[LoadIssue] = field(default_factory=list)

    def add(self, start: datetime, value: float, line: int) -> None:
        self.starts.append(start)
        self.values.append(value)
        self.lines.append(line)


def check_max_gap(max_gap_h: float) -> float:
    """The largest gap (h) the price repair may fill; a ConfigError when negative or NaN."""
    if not max_gap_h >= 0:
        raise ConfigError(f"max_gap_h must be >= 0 hours, not {max_gap_h:g}")
    return float(max_gap_h)


def _dominant_step(path: Path, seconds: npt.NDArray[np.float64]) -> timedelta:
    """The most common distance between consecutive times (the smaller on a tie): one stray
    time does not turn an hourly file into a 30-minute one."""
    if len(seconds) < 2:
        raise DataError(f"{path}: need at least two rows to know the step length")
    diffs, counts = np.unique(np.round(np.diff(seconds), 6), return_counts=True)
    step = timedelta(seconds=float(diffs[np.argmax(counts)]))
    if step.total_seconds() <= 0 or (step < timedelta(hours=1) and 3600 % step.total_seconds()):
        raise DataError(f"{path}: step {step} does not divide an hour")
    return step


def _grid_positions(
    raw: RawPrices, ts: list[datetime], lines: list[int], step: timedelta
) -> tuple[npt.NDArray[np.int64], datetime]:
    """Each row's position on the step grid, and the grid's first time. The grid's phase is the
    one most rows share; a row off it is refused, naming its line and time."""
    seconds = np.array([t.timestamp() for t in ts])
    step_s = step.total_seconds()
    phase = np.round(np.mod(seconds, step_s), 6)
    values, counts = np.unique(phase, return_counts=True)
    off = np.flatnonzero(phase != values[np.argmax(counts)])
    on = np.flatnonzero(phase == values[np.argmax(counts)])
    first = ts[int(on[0])]
    if off.size:
        i = int(off[0])
        more = f" ({off.size - 1} more rows are off the grid)" if off.size > 1 else ""
        raise DataError(
            f"{raw.path}:{lines[i]}: time {ts[i].isoformat()} is not on the {step} grid of "
            f"the other rows (starting {first.isoformat()}){more}"
        )
    return np.round((seconds - seconds[int(on[0])]) / step_s).astype(np.int64), first


def _runs(missing: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(first, end) of every run of True."""
    edges = np.diff(np.concatenate([[0], missing.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _fill_gaps(
    grid: npt.NDArray[np.float64], index: pd.DatetimeIndex, step: timedelta, max_gap_h: float
) -> list[LoadIssue]:
    """Interpolate the runs of missing steps up to ``max_gap_h`` long (in place); report every
    filled step and every gap left out."""
    issues: list[LoadIssue] = []
    known = np.flatnonzero(~np.isnan(grid))
    step_h = step.total_seconds() / 3600.0
    for lo, hi in _runs(np.isnan(grid)):
        start = index[int(lo)].to_pydatetime()
        end = index[int(hi - 1)].to_pydatetime() + step
        hours = (hi - lo) * step_h
        if hours > max_gap_h + 1e-9:
            issues.append(
                LoadIssue(
                    "gap-left-out",
                    f"no price from {start.isoformat()} to {end.isoformat()} ({hours:g} h): "
                    f"longer than the {max_gap_h:g} h the loader fills; left out",
                    timestamp=start,
                    until=end,
                )
            )
            continue
        holes = np.arange(lo, hi)
        grid[holes] = np.interp(holes, known, grid[known])
        for h in holes:
            t = index[int(h)].to_pydatetime()
            issues.append(
                LoadIssue("gap-filled", f"no price for {t.isoformat()}; interpolated", timestamp=t)
            )
    return issues


def regularise(raw: RawPrices, max_gap_h: float = DEFAULT_MAX_GAP_H) -> PriceSeries:
    """Put the rows on a regular grid: reject duplicates and off-grid times, interpolate gaps
    of up to ``max_gap_h`` hours (linearly in time), leave longer ones without a price, and
    report each."""
    path = raw.path
    if not raw.starts:
        raise DataError(f"{path}: no price rows")
    order = np.argsort(np.array([s.timestamp() for s in raw.starts]), kind="stable")
    ts = [raw.starts[i] for i in order]
    vals = np.array([raw.values[i] for i in order], dtype=np.float64)
    lns = [raw.lines[i] for i in order]
    for a, b in zip(range(len(ts) - 1), range(1, len(ts)), strict=True):
        if ts[a] == ts[b]:
            raise DataError(
                f"{path}:{lns[b]}: time {ts[b].isoformat()} repeats line {lns[a]} (duplicate row)"
            )
    step = raw.step or _dominant_step(path, np.array([t.timestamp() for t in ts]))
    positions, first = _grid_positions(raw, ts, lns, step)
    grid = np.full(int(positions[-1]) + 1, np.nan)
    grid[positions] = vals
    index = pd.date_range(pd.Timestamp(first), periods=len(grid), freq=pd.Timedelta(step))
    issues = list(raw.issues) + _fill_gaps(grid, index, step, check_max_gap(max_gap_h))
    series = pd.Series(grid, index=index, name="price")
    report = LoadReport(str(path), raw.kind, raw.rows, tuple(issues))
    return PriceSeries(series, step, raw.unit, raw.node, raw.timezone, report)
