"""Settlement: who executes a plan, and what it earns at the real prices.

By default the plan is executed by the plant's battery model (:func:`settle_plant`: charge
taper near full, discharge taper near empty, self-discharge, the optimizer's efficiencies), so
revenue accounts for what a real battery delivers; :func:`settle_ideal` executes it on an ideal
battery with the optimizer's own model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bessai.optimize.storage import FloatArray, StorageSpec, cell_throughput_kwh
from bessai.plant.battery import BatteryModel, BatteryParams, ci_container_1mw_4mwh, luna2000


@dataclass(frozen=True, slots=True)
class Settlement:
    """What the battery actually did with a plan, booked at real prices."""

    charge_kw: FloatArray
    discharge_kw: FloatArray
    soc_pct: FloatArray  # end of each step
    revenue: float
    degradation_cost: float
    cell_throughput_kwh: float

    @property
    def soc_end_pct(self) -> float:
        return float(self.soc_pct[-1])


class Settle(Protocol):
    def __call__(
        self,
        charge_kw: FloatArray,
        discharge_kw: FloatArray,
        prices: FloatArray,
        step_h: float,
        storage: StorageSpec,
        soc_initial_pct: float,
    ) -> Settlement: ...


def _book(
    charge_kw: FloatArray,
    discharge_kw: FloatArray,
    soc_pct: FloatArray,
    prices: FloatArray,
    step_h: float,
    storage: StorageSpec,
) -> Settlement:
    """Book what the battery did at the real prices, with its wear."""
    cells = cell_throughput_kwh(charge_kw, discharge_kw, step_h, storage)
    return Settlement(
        charge_kw=charge_kw,
        discharge_kw=discharge_kw,
        soc_pct=soc_pct,
        revenue=float(np.sum(prices * (discharge_kw - charge_kw)) * step_h / 1000.0),
        degradation_cost=storage.degradation_per_mwh * cells / 1000.0,
        cell_throughput_kwh=cells,
    )


def settle_ideal(
    charge_kw: FloatArray,
    discharge_kw: FloatArray,
    prices: FloatArray,
    step_h: float,
    storage: StorageSpec,
    soc_initial_pct: float,
) -> Settlement:
    """An ideal battery with the optimizer's efficiencies executes the plan, each step cut to
    the power limits and to what the SOC limits allow (as the safety guard would)."""
    b = storage
    e_min, e_max = b.energy_kwh(b.soc_min_pct), b.energy_kwh(b.soc_max_pct)
    n = len(prices)
    c = np.zeros(n)
    d = np.zeros(n)
    soc = np.zeros(n)
    level = b.energy_kwh(soc_initial_pct)
    for t in range(n):
        want_c = min(max(float(charge_kw[t]), 0.0), b.charge_limit_kw)
        want_d = min(max(float(discharge_kw[t]), 0.0), b.discharge_limit_kw)
        if want_c > 0:
            c[t] = min(want_c, max(0.0, e_max - level) / (b.eta_charge * step_h))
        elif want_d > 0:
            d[t] = min(want_d, max(0.0, level - e_min) * b.eta_discharge / step_h)
        level += c[t] * b.eta_charge * step_h - d[t] * step_h / b.eta_discharge
        soc[t] = level / b.capacity_kwh * 100.0
    return _book(c, d, soc, prices, step_h, b)


#: Cell temperature assumed in settlement: a conditioned container or a sheltered home pack.
SETTLE_TEMP_C = 25.0


def plant_battery_config(storage: StorageSpec) -> BatteryParams:
    """The plant model of a battery of this size: the container preset for C&I sizes, the
    LUNA2000 preset for home sizes, with the optimizer's capacity, powers and efficiencies.
    Auxiliary consumption is left out: sites meter it apart from the arbitrage."""
    if storage.capacity_kwh >= 100.0:
        base = ci_container_1mw_4mwh()
    else:
        base = luna2000(max(1, round(storage.capacity_kwh / 5.0)))
    return dataclasses.replace(
        base,
        name=f"back-test {storage.capacity_kwh:g} kWh",
        nameplate_energy_kwh=storage.capacity_kwh,
        usable_fraction=1.0,
        max_charge_w=storage.charge_limit_kw * 1000.0,
        max_discharge_w=storage.discharge_limit_kw * 1000.0,
        charge_efficiency=storage.eta_charge,
        discharge_efficiency=storage.eta_discharge,
        aux_power_w=0.0,
    )


def settle_plant(
    charge_kw: FloatArray,
    discharge_kw: FloatArray,
    prices: FloatArray,
    step_h: float,
    storage: StorageSpec,
    soc_initial_pct: float,
) -> Settlement:
    """The plant's battery model executes the plan: power tapers near full and near empty, the
    cells self-discharge, and each step is cut to the SOC limits as the safety guard would."""
    b = storage
    cell = BatteryModel(plant_battery_config(b), soc_initial_pct)
    dt_s = step_h * 3600.0
    n = len(prices)
    c = np.zeros(n)
    d = np.zeros(n)
    soc = np.zeros(n)
    for t in range(n):
        want_kw = float(charge_kw[t]) - float(discharge_kw[t])
        level_kwh = cell.energy_kwh
        if want_kw > 0:
            room_kwh = max(0.0, b.energy_kwh(b.soc_max_pct) - level_kwh)
            want_kw = min(want_kw, room_kwh / (b.eta_charge * step_h))
        elif want_kw < 0:
            room_kwh = max(0.0, level_kwh - b.energy_kwh(b.soc_min_pct))
            want_kw = -min(-want_kw, room_kwh * b.eta_discharge / step_h)
        power_kw = cell.step(want_kw * 1000.0, dt_s, SETTLE_TEMP_C) / 1000.0
        c[t] = max(power_kw, 0.0)
        d[t] = max(-power_kw, 0.0)
        soc[t] = cell.soc_pct
    return _book(c, d, soc, prices, step_h, b)


SETTLEMENTS: dict[str, Settle] = {"plant": settle_plant, "ideal": settle_ideal}
