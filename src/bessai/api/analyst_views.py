"""The analyst routes' bodies and answers (as the OpenAPI spec publishes them), and the pure
functions that turn a back-test into them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bessai.analysis.analyst import (
    Models,
    Outcome,
    Progress,
    Size,
    Study,
    day_plan,
    kpis,
    mean_confidence,
    run_study,
    sweep,
)
from bessai.analysis.result import BacktestResult
from bessai.api.analyst import SeriesEntry
from bessai.optimize import StorageSpec

#: Ranges up to this many days carry their slots (a chart of price, forecast and SOC).
MAX_SLOT_DAYS = 62


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BatteryIn(_In):
    """The battery, as `bessai backtest` options (same defaults)."""

    power_kw: float = Field(default=1000.0, gt=0, le=1e7, description="--power-kw")
    capacity_kwh: float = Field(default=4000.0, gt=0, le=1e8, description="--capacity-kwh")
    eta_charge: float = Field(default=0.95, gt=0, le=1)
    eta_discharge: float = Field(default=0.95, gt=0, le=1)
    soc_min_pct: float = Field(default=0.0, ge=0, le=100)
    soc_max_pct: float = Field(default=100.0, ge=0, le=100)
    soc_initial_pct: float = Field(default=50.0, ge=0, le=100)
    soc_final_pct: float | None = Field(default=None, ge=0, le=100, description="None: initial")
    degradation_per_mwh: float = Field(
        default=0.0, ge=0, le=1e6, description="wear cost per MWh of cell throughput"
    )
    cycles_per_day: float | None = Field(default=None, gt=0, le=100)

    def storage(self) -> StorageSpec:
        return StorageSpec(
            max_charge_kw=self.power_kw,
            capacity_kwh=self.capacity_kwh,
            eta_charge=self.eta_charge,
            eta_discharge=self.eta_discharge,
            soc_min_pct=self.soc_min_pct,
            soc_max_pct=self.soc_max_pct,
            degradation_per_mwh=self.degradation_per_mwh,
            cycles_per_day=self.cycles_per_day,
        )


class StudyIn(_In):
    series: str = Field(description="a series id from GET /analyst/catalog")
    forecaster: str = Field(
        default="week-mean", description="perfect, week-mean, persistence, rule or model:NAME"
    )
    battery: BatteryIn = Field(default_factory=BatteryIn)
    settlement: Literal["plant", "ideal"] = "plant"


class DayIn(StudyIn):
    day: date = Field(description="the market day (local date of the series)")

    def study(self) -> Study:
        b = self.battery
        return Study(self.forecaster, b.storage(), self.day, self.day, b.soc_initial_pct,
                     b.soc_final_pct, self.settlement)  # fmt: skip


class RangeIn(StudyIn):
    first_day: date
    last_day: date

    def study(self) -> Study:
        b = self.battery
        return Study(self.forecaster, b.storage(), self.first_day, self.last_day,
                     b.soc_initial_pct, b.soc_final_pct, self.settlement)  # fmt: skip


class SizeIn(_In):
    power_kw: float = Field(gt=0, le=1e7)
    capacity_kwh: float = Field(gt=0, le=1e8)


class SweepIn(RangeIn):
    sizes: list[SizeIn] = Field(min_length=1, max_length=24)


class UploadIn(_In):
    name: str = Field(min_length=1, max_length=200, description="file name (.csv or .tsv)")
    content: str = Field(description="the file's text (CEN TSV/CSV, SMARD, timestamp,price)")
    node: str | None = Field(default=None, max_length=200)
    tz: str | None = Field(default=None, max_length=64)


class Kpis(BaseModel):
    days: int
    revenue: float = Field(description="settled at the real prices")
    wear_cost: float
    net_revenue: float
    perfect_daily_net: float = Field(description="perfect foresight, day by day, same protocol")
    whole_period_net: float
    capture_vs_daily_perfect: float | None
    spread_captured: float | None = Field(
        description="energy-weighted real price sold at minus bought at (per MWh)"
    )
    active_hours: float
    equivalent_full_cycles: float
    charged_kwh: float
    discharged_kwh: float
    mean_confidence: float | None = Field(description="forecast bands' mean confidence (0..1)")


class SeriesOut(BaseModel):
    id: str
    source: Literal["shipped", "file", "upload"]
    name: str
    node: str
    unit: str
    timezone: str
    step_min: float
    first_day: date
    last_day: date


class CatalogOut(BaseModel):
    gateway: bool = Field(description="served by a gateway (its live dashboard is at /)")
    series: list[SeriesOut]
    forecasters: list[str]
    settlements: list[str]


class SlotOut(BaseModel):
    start_utc: datetime
    price: float = Field(description="the real price")
    forecast: float | None = Field(description="the price the plan was made on")
    p10: float | None = None
    p50: float | None = None
    p90: float | None = None
    net_kw: float = Field(description="settled battery power, > 0 charging")
    soc_pct: float = Field(description="settled SOC at the end of the slot")


class PlanSlotOut(SlotOut):
    planned_kw: float = Field(description="the plan's battery power, > 0 charging")
    planned_soc_pct: float
    action: str = Field(description="charge, discharge or idle")
    reason: str


class DayOut(BaseModel):
    series: str
    node: str
    unit: str
    timezone: str
    day: date
    forecaster: str
    plan_status: str
    plan_revenue: float = Field(description="the plan's revenue at the prices it was made on")
    kpis: Kpis
    slots: list[PlanSlotOut]


class DayPoint(BaseModel):
    day: date
    net_revenue: float
    perfect_net: float
    cumulative_net: float
    cumulative_perfect: float


class RangeOut(BaseModel):
    series: str
    node: str
    unit: str
    timezone: str
    forecaster: str
    first_day: date
    last_day: date
    excluded: list[str] = Field(description="days left out for gaps in the prices")
    kpis: Kpis
    curve: list[DayPoint]
    slots: list[SlotOut] | None = Field(description=f"only for ranges up to {MAX_SLOT_DAYS} days")


class SweepPoint(BaseModel):
    power_kw: float
    capacity_kwh: float
    duration_h: float
    kpis: Kpis
    net_per_kwh: float = Field(description="net revenue per kWh of capacity")


class SweepOut(BaseModel):
    series: str
    forecaster: str
    first_day: date
    last_day: date
    unit: str
    points: list[SweepPoint]


class JobOut(BaseModel):
    id: str
    kind: Literal["backtest", "sweep"]
    state: Literal["queued", "running", "done", "failed"]
    done: int = Field(description="days back-tested so far (over all sizes for a sweep)")
    total: int
    cached: bool = Field(description="answered from the cache of earlier results")
    elapsed_s: float
    error: str | None = None
    result: RangeOut | SweepOut | None = None


def series_out(entry: SeriesEntry) -> SeriesOut:
    """A price series as the API lists it."""
    s = entry.series
    return SeriesOut(
        id=entry.id, source=entry.source, name=entry.name, node=s.node, unit=s.unit,
        timezone=s.timezone, step_min=s.step.total_seconds() / 60, first_day=entry.first_day,
        last_day=entry.last_day,
    )  # fmt: skip


def kpis_out(outcome: Outcome) -> Kpis:
    """The KPIs of an outcome, with the mean confidence of its forecast."""
    return Kpis(**kpis(outcome.result), mean_confidence=mean_confidence(outcome))


def _num(v: float) -> float | None:
    return None if not np.isfinite(v) else round(float(v), 4)


def _slots(result: BacktestResult, bands: Outcome) -> list[dict[str, object]]:
    """Per slot: the real price, the forecast and its band, the settled power and SOC."""
    n = len(result.prices)
    q = np.full((n, 4), np.nan)
    if bands.bands:
        starts = {ts: i for i, ts in enumerate(result.index)}
        for steps, day in bands.bands:
            i = starts.get(steps[0])
            if i is not None:
                q[i : i + len(steps)] = day
    net = result.charge_kw - result.discharge_kw
    return [
        {
            "start_utc": result.index[t].to_pydatetime(),
            "price": round(float(result.prices[t]), 4),
            "forecast": _num(result.forecast[t]),
            "p10": _num(q[t, 0]),
            "p50": _num(q[t, 1]),
            "p90": _num(q[t, 2]),
            "net_kw": round(float(net[t]), 3),
            "soc_pct": round(float(result.soc_pct[t]), 3),
        }
        for t in range(n)
    ]


def day_view(entry: SeriesEntry, body: DayIn, models: Models) -> DayOut:
    """One market day: the forecast with its band, the plan with its reasons, what the plant
    did and the day's KPIs (`bessai backtest --from DAY --to DAY`)."""
    study = body.study()
    outcome = run_study(entry.series, study, models)
    plan = day_plan(entry.series, study, outcome)
    r = outcome.result
    slots = [
        PlanSlotOut(
            **slot,
            planned_kw=round(float(plan.net_kw[t]), 3),
            planned_soc_pct=round(float(plan.soc_pct[t]), 3),
            action=plan.actions[t],
            reason=plan.reasons[t],
        )
        for t, slot in enumerate(_slots(r, outcome)[: len(plan)])
    ]
    return DayOut(
        series=entry.id, node=r.node, unit=r.unit, timezone=r.timezone, day=r.first_day,
        forecaster=study.forecaster, plan_status=plan.status,
        plan_revenue=round(plan.revenue, 2), kpis=kpis_out(outcome), slots=slots,
    )  # fmt: skip


def range_view(entry: SeriesEntry, body: RangeIn, models: Models, on_day: Progress) -> RangeOut:
    """A range of days: the back-test's KPIs and its daily curve beside perfect foresight."""
    study = body.study()
    # The band is shown (and costs twice the forecast) only where the slots are.
    outcome = run_study(entry.series, study, models, on_day, bands=study.days <= MAX_SLOT_DAYS)
    r = outcome.result
    cum = np.cumsum([d.net_revenue for d in r.days])
    cum_perfect = np.cumsum([d.perfect_net for d in r.days])
    curve = [
        DayPoint(
            day=d.day,
            net_revenue=round(d.net_revenue, 2),
            perfect_net=round(d.perfect_net, 2),
            cumulative_net=round(float(cum[i]), 2),
            cumulative_perfect=round(float(cum_perfect[i]), 2),
        )
        for i, d in enumerate(r.days)
    ]
    slots = None
    if study.days <= MAX_SLOT_DAYS:
        slots = [SlotOut.model_validate(s) for s in _slots(r, outcome)]
    return RangeOut(
        series=entry.id, node=r.node, unit=r.unit, timezone=r.timezone,
        forecaster=study.forecaster, first_day=r.first_day, last_day=r.last_day,
        excluded=[f"{x.first}..{x.last}: {x.reason}" for x in r.excluded],
        kpis=kpis_out(outcome), curve=curve, slots=slots,
    )  # fmt: skip


def sweep_view(entry: SeriesEntry, body: SweepIn, models: Models, on_day: Progress) -> SweepOut:
    """The range's back-test at each size: revenue and capture against size."""
    sizes = [Size(s.power_kw, s.capacity_kwh) for s in body.sizes]
    runs = sweep(entry.series, body.study(), sizes, models, on_day)
    points = []
    for size, result in runs:
        k = Kpis(**kpis(result), mean_confidence=None)
        points.append(
            SweepPoint(
                power_kw=size.power_kw,
                capacity_kwh=size.capacity_kwh,
                duration_h=round(size.capacity_kwh / size.power_kw, 3),
                kpis=k,
                net_per_kwh=round(result.net_revenue / size.capacity_kwh, 4),
            )
        )
    return SweepOut(
        series=entry.id, forecaster=body.forecaster, first_day=body.first_day,
        last_day=body.last_day, unit=entry.series.unit, points=points,
    )  # fmt: skip
