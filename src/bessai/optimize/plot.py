"""Back-test figure: what the battery did and why, in one picture. Builds a matplotlib Figure
(Agg, no display); the caller decides where it goes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from zoneinfo import ZoneInfo

import matplotlib.dates as mdates
import numpy as np
from matplotlib.figure import Figure

from bessai.optimize.backtest import BacktestResult


def figure_backtest(result: BacktestResult, days: int = 14) -> Figure:
    """Four panels: real and forecast prices with charge/discharge steps shaded, battery power,
    SOC (all over the last ``days`` days, in local time), and cumulative net revenue against
    daily perfect foresight over the whole period."""
    steps_per_day = max(1, round(len(result.index) / max(1, len(result.days))))
    window = slice(max(0, len(result.index) - days * steps_per_day), len(result.index))
    local = result.index.tz_convert(result.timezone)
    x = local[window].to_pydatetime()
    step = result.index[1] - result.index[0] if len(result.index) > 1 else None
    width = (step.total_seconds() / 86400.0) if step is not None else 1 / 24
    currency = result.unit

    fig = Figure(figsize=(13, 10), layout="constrained")
    ax_p, ax_w, ax_s, ax_r = fig.subplots(4, 1, height_ratios=[3, 2, 2, 2])
    prices = result.prices[window]
    ax_p.step(x, prices, where="post", color="black", lw=1.2, label="real price")
    if result.forecaster != "perfect":
        ax_p.step(
            x,
            result.forecast[window],
            where="post",
            color="tab:blue",
            lw=1,
            ls="--",
            label=(
                "week-mean forecast (ranked by the rule)"
                if result.forecaster == "rule"
                else f"forecast ({result.forecaster})"
            ),
        )
    charging = result.charge_kw[window] > 0
    discharging = result.discharge_kw[window] > 0
    lo, hi = float(np.min(prices)), float(np.max(prices))
    pad = 0.05 * (hi - lo or 1.0)
    ax_p.fill_between(
        x,
        lo - pad,
        hi + pad,
        where=charging,
        step="post",
        color="tab:green",
        alpha=0.15,
        label="charging",
    )
    ax_p.fill_between(
        x,
        lo - pad,
        hi + pad,
        where=discharging,
        step="post",
        color="tab:red",
        alpha=0.15,
        label="discharging",
    )
    ax_p.set_ylabel(currency)
    ax_w.set_xlabel("")
    ax_s.set_xlabel(f"local time ({result.timezone})")
    ax_p.set_title(
        f"{result.node}: {result.forecaster}, {result.first_day} .. {result.last_day}\n"
        f"captures {result.capture_daily:.1%} of daily perfect foresight, "
        f"{result.capture_period:.1%} of the whole-period optimum"
    )
    ax_p.legend(loc="upper left", ncol=4, fontsize=8)

    power = result.charge_kw[window] - result.discharge_kw[window]
    colors = np.where(power >= 0, "tab:green", "tab:red")
    ax_w.bar(x, power, width=width, align="edge", color=colors)
    ax_w.axhline(0, color="grey", lw=0.5)
    ax_w.set_ylabel("battery kW\n(+ charge)")

    ax_s.step(x, result.soc_pct[window], where="post", color="tab:purple")
    b = result.battery
    ax_s.axhspan(b.soc_min_pct, b.soc_max_pct, color="tab:purple", alpha=0.05)
    ax_s.set_ylim(-2, 102)
    ax_s.set_ylabel("SOC % (end of step)")
    zone = ZoneInfo(result.timezone)
    for ax in (ax_p, ax_w, ax_s):
        ax.grid(alpha=0.3)
        locator = mdates.AutoDateLocator(tz=zone)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        formatter = mdates.ConciseDateFormatter(locator, tz=zone)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(formatter)

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
    ax_r.set_ylabel(f"cumulative net\n{currency.split('/')[0]}")
    ax_r.legend(loc="upper left", fontsize=8)
    ax_r.grid(alpha=0.3)
    return fig
