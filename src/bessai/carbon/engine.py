"""Carbon accounting of a battery's grid energy: what charging caused, what discharging
avoided, the net, per step and summed per hour, day or year, per site and for a fleet.

Signs: `charging_kg` >= 0 is what the energy drawn to charge emitted; `discharging_kg` >= 0 is
what the energy fed back displaced; `net_kg = charging_kg - discharging_kg` is what the battery
added (> 0) or saved (< 0). With one constant factor f, `net_kg = (charged - discharged) * f`,
which is the battery's losses times f when it ends where it started: a battery saves CO2 only
by moving energy from low-factor to high-factor hours.

One `Account` holds one method (`Method.key`); adding accounts of different methods is refused,
so an average-based and a marginal-based number are never summed into one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import numpy as np
import pandas as pd

from bessai.carbon.factors import Factors, FloatArray, Method
from bessai.errors import DataError

Period = Literal["hour", "day", "month", "year", "total"]
PERIOD_FREQ = {"hour": "h", "day": "D", "month": "MS", "year": "YS"}
COLUMNS = ("charged_kwh", "discharged_kwh", "charging_kg", "discharging_kg", "net_kg")


@dataclass(frozen=True, slots=True)
class Flows:
    """Energy a battery drew from (`charged_kwh`) and fed to (`discharged_kwh`) the grid in
    each step, both >= 0, indexed by the UTC start of the step."""

    start: pd.DatetimeIndex
    step: timedelta
    charged_kwh: FloatArray
    discharged_kwh: FloatArray
    site: str = ""

    def __post_init__(self) -> None:
        n = len(self.start)
        if len(self.charged_kwh) != n or len(self.discharged_kwh) != n:
            raise ValueError("flows: start, charged_kwh and discharged_kwh differ in length")
        if str(self.start.tz) != "UTC":
            raise ValueError("flows: start needs a UTC DatetimeIndex")
        if np.any(self.charged_kwh < 0) or np.any(self.discharged_kwh < 0):
            raise ValueError("flows: energies are magnitudes, >= 0")

    @classmethod
    def from_power(
        cls,
        start: pd.DatetimeIndex,
        step: timedelta,
        battery_kw: Sequence[float] | FloatArray,
        site: str = "",
    ) -> Flows:
        """From the mean battery power of each step (> 0 charging, internal sign)."""
        p = np.asarray(battery_kw, dtype=np.float64)
        step_h = step.total_seconds() / 3600.0
        return cls(start, step, np.clip(p, 0, None) * step_h, np.clip(-p, 0, None) * step_h, site)

    @property
    def losses_kwh(self) -> float:
        """Charged minus discharged: the losses when the battery ends where it started."""
        return float(self.charged_kwh.sum() - self.discharged_kwh.sum())


@dataclass(frozen=True, slots=True)
class Account:
    """Per-step accounting under one method: a frame with `COLUMNS` and `factor_g_kwh`,
    indexed by UTC step start."""

    method: Method
    frame: pd.DataFrame
    site: str = ""

    def totals(self) -> Totals:
        return Totals.of(self.frame, self.method)

    def per(self, period: Period, timezone: str = "UTC") -> pd.DataFrame:
        """Sums per hour, day, month or year (cut in `timezone`, labelled by period start),
        with the energy-weighted factors of charging and discharging."""
        return summarize(self.frame, period, timezone)


@dataclass(frozen=True, slots=True)
class Totals:
    method: Method
    charged_kwh: float
    discharged_kwh: float
    charging_kg: float
    discharging_kg: float

    @classmethod
    def of(cls, frame: pd.DataFrame, method: Method) -> Totals:
        s = frame[list(COLUMNS)].sum()
        return cls(
            method,
            float(s["charged_kwh"]),
            float(s["discharged_kwh"]),
            float(s["charging_kg"]),
            float(s["discharging_kg"]),
        )

    @property
    def net_kg(self) -> float:
        return self.charging_kg - self.discharging_kg

    @property
    def saved_kg(self) -> float:
        """CO2 the battery avoided, net of what its charging caused (< 0: it added CO2)."""
        return -self.net_kg

    @property
    def losses_kwh(self) -> float:
        return self.charged_kwh - self.discharged_kwh

    @property
    def charge_factor_g_kwh(self) -> float | None:
        """Energy-weighted factor of the hours it charged."""
        return 1000.0 * self.charging_kg / self.charged_kwh if self.charged_kwh > 0 else None

    @property
    def discharge_factor_g_kwh(self) -> float | None:
        return (
            1000.0 * self.discharging_kg / self.discharged_kwh if self.discharged_kwh > 0 else None
        )


def account(flows: Flows, factors: Factors) -> Account:
    """Each step's emissions at the factor in force at its start. A step with energy and no
    factor is an error naming the first such time: a gap is never filled with a guess."""
    g_kwh = factors.at(flows.start)
    moving = (flows.charged_kwh > 0) | (flows.discharged_kwh > 0)
    missing = moving & np.isnan(g_kwh)
    if missing.any():
        first = flows.start[np.flatnonzero(missing)[0]]
        raise DataError(
            f"the {factors.method.key} factors ({factors.method.name}) do not cover "
            f"{int(missing.sum())} step(s) with energy, the first at {first.isoformat()}"
        )
    g = np.where(np.isnan(g_kwh), 0.0, g_kwh)
    frame = pd.DataFrame(
        {
            "charged_kwh": flows.charged_kwh,
            "discharged_kwh": flows.discharged_kwh,
            "factor_g_kwh": g_kwh,
            "charging_kg": flows.charged_kwh * g / 1000.0,
            "discharging_kg": flows.discharged_kwh * g / 1000.0,
        },
        index=flows.start,
    )
    frame["net_kg"] = frame["charging_kg"] - frame["discharging_kg"]
    return Account(factors.method, frame, flows.site)


def summarize(frame: pd.DataFrame, period: Period, timezone: str = "UTC") -> pd.DataFrame:
    """Sums of `COLUMNS` per period, plus `losses_kwh`, `saved_kg` and the energy-weighted
    `charge_factor_g_kwh` / `discharge_factor_g_kwh` (NaN where no energy moved)."""
    data = frame[list(COLUMNS)]
    if period == "total":
        sums = data.sum().to_frame().T
        sums.index = pd.Index(["total"], name="period")
    else:
        local = data.tz_convert(timezone)
        sums = local.resample(PERIOD_FREQ[period]).sum()
        sums.index.name = "period"
    sums["losses_kwh"] = sums["charged_kwh"] - sums["discharged_kwh"]
    sums["saved_kg"] = -sums["net_kg"]
    with np.errstate(divide="ignore", invalid="ignore"):
        sums["charge_factor_g_kwh"] = np.where(
            sums["charged_kwh"] > 0, 1000.0 * sums["charging_kg"] / sums["charged_kwh"], np.nan
        )
        sums["discharge_factor_g_kwh"] = np.where(
            sums["discharged_kwh"] > 0,
            1000.0 * sums["discharging_kg"] / sums["discharged_kwh"],
            np.nan,
        )
    return sums


def fleet(accounts: Sequence[Account]) -> Account:
    """The sum of several sites' accounts (same method only), on the union of their steps."""
    if not accounts:
        raise DataError("a fleet needs at least one site's account")
    keys = {a.method.key for a in accounts}
    if len(keys) > 1:
        raise DataError(
            f"cannot add accounts of different methods ({', '.join(sorted(keys))}): "
            "report each method on its own"
        )
    frames = [a.frame[list(COLUMNS)] for a in accounts]
    total = pd.concat(frames).groupby(level=0).sum().sort_index()
    total["factor_g_kwh"] = np.nan  # sites may differ; the weighted ones come from summarize
    return Account(accounts[0].method, total, "fleet")
