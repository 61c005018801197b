"""From rows read off a price file to a regular series: order, reject duplicates and off-grid
times, fill gaps and report every repair."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from bessai.errors import DataError
from bessai.market.series import LoadIssue, LoadReport, PriceSeries


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


def regularise(raw: RawPrices) -> PriceSeries:
    """Put the rows on a regular grid: reject duplicates and off-grid times, interpolate gaps
    (linearly in time) and report each filled step."""
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
    step = raw.step
    if step is None:
        if len(ts) < 2:
            raise DataError(f"{path}: need at least two rows to know the step length")
        diffs = np.diff(np.array([t.timestamp() for t in ts]))
        step = timedelta(seconds=float(np.min(diffs)))
        if step.total_seconds() <= 0 or (step < timedelta(hours=1) and 3600 % step.total_seconds()):
            raise DataError(f"{path}: step {step} does not divide an hour")
    step_s = step.total_seconds()
    first = ts[0]
    positions = np.array([(t - first).total_seconds() / step_s for t in ts])
    off_grid = np.flatnonzero(np.abs(positions - np.round(positions)) > 1e-9)
    if off_grid.size:
        i = int(off_grid[0])
        raise DataError(
            f"{path}:{lns[i]}: time {ts[i].isoformat()} is not on the {step} grid starting "
            f"{first.isoformat()}"
        )
    n = int(np.round(positions[-1])) + 1
    grid = np.full(n, np.nan)
    grid[np.round(positions).astype(np.int64)] = vals
    index = pd.date_range(pd.Timestamp(first), periods=n, freq=pd.Timedelta(step))
    issues = list(raw.issues)
    holes = np.flatnonzero(np.isnan(grid))
    if holes.size:
        known = np.flatnonzero(~np.isnan(grid))
        grid[holes] = np.interp(holes, known, grid[known])
        for h in holes:
            t = index[int(h)].to_pydatetime()
            issues.append(
                LoadIssue("gap-filled", f"no price for {t.isoformat()}; interpolated", timestamp=t)
            )
    series = pd.Series(grid, index=index, name="price")
    report = LoadReport(str(path), raw.kind, raw.rows, tuple(issues))
    return PriceSeries(series, step, raw.unit, raw.node, raw.timezone, report)
