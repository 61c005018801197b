"""Back-test figure: what the battery did and why, in one picture. Builds a matplotlib Figure
(Agg, no display); the caller decides where it goes."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from bessai.analysis.result import BacktestResult
from bessai.optimize.plot import ScheduleView, draw_schedule


def _view(result: BacktestResult, days: int) -> ScheduleView:
    """The last ``days`` days of the executed schedule, in local time."""
    steps_per_day = max(1, round(len(result.index) / max(1, len(result.days))))
    window = slice(max(0, len(result.index) - days * steps_per_day), len(result.index))
    step = result.index[1] - result.index[0] if len(result.index) > 1 else None
    label = (
        "week-mean forecast (ranked by the rule)"
        if result.forecaster == "rule"
        else f"forecast ({result.forecaster})"
    )
    return ScheduleView(
        local_starts=result.index.tz_convert(result.timezone)[window].to_pydatetime(),
        step_days=(step.total_seconds() / 86400.0) if step is not None else 1 / 24,
        timezone=result.timezone,
        unit=result.unit,
        prices=result.prices[window],
        forecast=None if result.forecaster == "perfect" else result.forecast[window],
        forecast_label=label,
        charge_kw=result.charge_kw[window],
        discharge_kw=result.discharge_kw[window],
        soc_pct=result.soc_pct[window],
        storage=result.storage,
    )


def figure_backtest(result: BacktestResult, days: int = 14) -> Figure:
    """Four panels: real and forecast prices with charge/discharge steps shaded, battery power,
    SOC (all over the last ``days`` days, in local time), and cumulative net revenue against
    daily perfect foresight over the whole period."""
    fig = Figure(figsize=(13, 10), layout="constrained")
    ax_p, ax_w, ax_s, ax_r = fig.subplots(4, 1, height_ratios=[3, 2, 2, 2])
    draw_schedule(ax_p, ax_w, ax_s, _view(result, days))
    ax_p.set_title(
        f"{result.node}: {result.forecaster}, {result.first_day} .. {result.last_day}\n"
        f"captures {result.capture_daily:.1%} of daily perfect foresight, "
        f"{result.capture_period:.1%} of the whole-period optimum"
    )
    day_x = [d.day for d in result.days]
    ax_r.plot(
        day_x,
        np.cumsum([d.net_revenue for d in result.days]),
        color="tab:blue",
        label=result.forecaster,
    )
    ax_r.plot(
        day_x,
        np.cumsum([d.perfect_net for d in result.days]),
        color="black",
        ls=":",
        label="daily perfect foresight",
    )
    ax_r.set_ylabel(f"cumulative net\n{result.unit.split('/')[0]}")
    ax_r.legend(loc="upper left", fontsize=8)
    ax_r.grid(alpha=0.3)
    return fig
