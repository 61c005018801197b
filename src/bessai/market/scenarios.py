"""Price scenarios from the days before: the uncertainty a scenario plan optimises over.

Scenario j is the price path ``j + 1`` days before each target step (the most recent such
price that is known: a step whose price is not published yet reaches one day further back),
moved so that the scenarios' mean is the point forecast: ``point + (day_j - mean_j day_j)``
(floored at the lowest price seen, which moves the mean up where the floor binds).
They keep what a point forecast averages away (on which hour of the evening the spike lands,
whether the solar trough is at zero), and their mean is the point, so a plan fixed over the
whole horizon is the same on the scenarios as on the point. Numpy and pandas only: this runs
on the gateway's planning path.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from bessai.errors import DataError

FloatArray = npt.NDArray[np.float64]

#: How far back a day may reach for a known price: the requested days plus this many.
_SPARE_DAYS = 3


def days_back(history: pd.Series, target: pd.DatetimeIndex, days: int) -> FloatArray:
    """(days, n): for each target step, the known prices 24 h, 48 h, ... before it, most
    recent first; a price not (yet) in the history is skipped for the next day back. Early in
    a series fewer days may be found: NaN fills the rest; a step with none at all takes the
    latest known price."""
    day_ns = 24 * 3600 * 10**9
    reach = days + _SPARE_DAYS
    # Only the last `reach` days (and a little) of the history can hold them.
    first_ns = int(target[0].as_unit("ns").value) - (reach + 1) * day_ns
    index = history.index
    assert isinstance(index, pd.DatetimeIndex)
    at_ns = index.as_unit("ns").asi8
    tail = int(np.searchsorted(at_ns, first_ns))
    at_ns = at_ns[tail:]
    values = history.to_numpy(dtype=np.float64)[tail:]
    want = target.as_unit("ns").asi8[None, :] - np.arange(1, reach + 1)[:, None] * day_ns
    pos = np.clip(np.searchsorted(at_ns, want), 0, max(len(at_ns) - 1, 0))
    stack = np.full(want.shape, np.nan)
    if len(at_ns):
        hit = at_ns[pos] == want
        stack[hit] = values[pos[hit]]
    found = np.isfinite(stack)
    # The rank of each known price among those of its step, most recent first.
    rank = np.cumsum(found, axis=0) - 1
    out = np.full((days, len(target)), np.nan)
    rows_i, cols_i = np.nonzero(found & (rank < days))
    out[rank[rows_i, cols_i], cols_i] = stack[rows_i, cols_i]
    empty = np.isnan(out[0])
    if empty.any():
        # The start of a series: no day back is known yet for these steps; the latest known
        # price stands in (the only information there is).
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise DataError(f"forecast: no known price before {target[0]}")
        out[0, empty] = finite[-1]
    return out


def empirical_scenarios(
    history: pd.Series, target: pd.DatetimeIndex, point: FloatArray, days: int
) -> FloatArray:
    """(days, n) equally likely price paths around ``point`` (see the module docstring)."""
    back = days_back(history, target, days)
    back = back[np.isfinite(back).all(axis=1)]  # the days known for every step
    p = np.asarray(point, dtype=np.float64)
    paths = p[None, :] + (back - back.mean(axis=0))
    # Never below the lowest price the days and the point show (the CMg floors at zero; a
    # shape moved under it would invent negative prices).
    floor = min(float(back.min()), float(p.min()))
    return np.asarray(np.maximum(paths, floor), dtype=np.float64)
