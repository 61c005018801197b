"""A schedule in pictures: prices with the charging and discharging steps shaded, battery power
and SOC, on matplotlib axes the caller owns (Agg, no display)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from dataclasses import dataclass
from zoneinfo import ZoneInfo

import matplotlib.dates as mdates
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes

from bessai.optimize.storage import FloatArray, StorageSpec


@dataclass(frozen=True, slots=True)
class ScheduleView:
    """What is drawn: local step starts and, per step, prices, the forecast planned on (None:
    the plan saw the real prices), what the battery did and its SOC at the end of the step."""

    local_starts: npt.NDArray[np.object_]  # datetimes
    step_days: float  # width of a step in days, for the power bars
    timezone: str
    unit: str
    prices: FloatArray
    forecast: FloatArray | None
    forecast_label: str
    charge_kw: FloatArray
    discharge_kw: FloatArray
    soc_pct: FloatArray
    storage: StorageSpec


def _prices_panel(ax: Axes, v: ScheduleView) -> None:
    x = v.local_starts
    ax.step(x, v.prices, where="post", color="black", lw=1.2, label="real price")
    if v.forecast is not None:
        ax.step(
            x, v.forecast, where="post", color="tab:blue", lw=1, ls="--", label=v.forecast_label
        )
    lo, hi = float(np.nanmin(v.prices)), float(np.nanmax(v.prices))
    pad = 0.05 * (hi - lo or 1.0)
    for mask, color, label in (
        (v.charge_kw > 0, "tab:green", "charging"),
        (v.discharge_kw > 0, "tab:red", "discharging"),
    ):
        ax.fill_between(
            x, lo - pad, hi + pad, where=mask, step="post", color=color, alpha=0.15, label=label
        )
    ax.set_ylabel(v.unit)
    ax.legend(loc="upper left", ncol=4, fontsize=8)


def draw_schedule(ax_prices: Axes, ax_power: Axes, ax_soc: Axes, v: ScheduleView) -> None:
    """Prices (and forecast) with trades shaded, battery power (+ = charging), SOC."""
    _prices_panel(ax_prices, v)
    power = v.charge_kw - v.discharge_kw
    colors = np.where(power >= 0, "tab:green", "tab:red")
    ax_power.bar(v.local_starts, power, width=v.step_days, align="edge", color=colors)
    ax_power.axhline(0, color="grey", lw=0.5)
    ax_power.set_ylabel("battery kW\n(+ charge)")
    ax_power.set_xlabel("")
    ax_soc.step(v.local_starts, v.soc_pct, where="post", color="tab:purple")
    ax_soc.axhspan(v.storage.soc_min_pct, v.storage.soc_max_pct, color="tab:purple", alpha=0.05)
    ax_soc.set_ylim(-2, 102)
    ax_soc.set_ylabel("SOC % (end of step)")
    ax_soc.set_xlabel(f"local time ({v.timezone})")
    zone = ZoneInfo(v.timezone)
    for ax in (ax_prices, ax_power, ax_soc):
        ax.grid(alpha=0.3)
        locator = mdates.AutoDateLocator(tz=zone)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        formatter = mdates.ConciseDateFormatter(locator, tz=zone)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(formatter)
