"""The regular price series every loader returns, its load report, and price units."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

_ENERGY_FACTOR = {"MWh": 1.0, "kWh": 1000.0}  # how many of the unit make one MWh


@dataclass(frozen=True, slots=True)
class LoadIssue:
    """One thing the loader repaired or noticed; ``line`` is 1-based in the file (header = 1)."""

    kind: Literal[
        "gap-filled",
        "gap-left-out",
        "dst-repeated-hour",
        "dst-missing-hour",
        "zone-change",
        "missing-value",
    ]
    message: str
    line: int | None = None
    timestamp: datetime | None = None
    until: datetime | None = None  # gap-left-out: the UTC end of the gap (exclusive)


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What the loader read and what it had to do to get a regular series."""

    path: str
    format: str
    rows: int
    issues: tuple[LoadIssue, ...] = ()

    def of_kind(self, kind: str) -> tuple[LoadIssue, ...]:
        return tuple(i for i in self.issues if i.kind == kind)

    @property
    def filled(self) -> tuple[datetime, ...]:
        """UTC start of every step whose price was interpolated, not read."""
        return tuple(i.timestamp for i in self.of_kind("gap-filled") if i.timestamp is not None)

    @property
    def left_out(self) -> tuple[tuple[datetime, datetime], ...]:
        """UTC start and end of every gap too long to fill: its steps have no price (NaN)."""
        return tuple(
            (i.timestamp, i.until)
            for i in self.of_kind("gap-left-out")
            if i.timestamp is not None and i.until is not None
        )


@dataclass(frozen=True, slots=True)
class PriceSeries:
    """A regular price series: ``prices`` indexed by the UTC start of each step.

    ``unit`` is ``"<currency>/<MWh|kWh>"`` (``"USD/MWh"``, ``"CLP/kWh"``, ``"EUR/MWh"``);
    ``timezone`` is the market's local zone, used to cut the series into market days. A step
    inside a gap longer than the loader fills has no price (NaN; ``report.left_out``): the
    days it touches are not market days (:func:`market_days`) and nothing is scored on them.
    """

    prices: pd.Series
    step: timedelta
    unit: str
    node: str
    timezone: str = "UTC"
    report: LoadReport = field(default_factory=lambda: LoadReport("", "", 0))

    def __post_init__(self) -> None:
        index = self.prices.index
        if not isinstance(index, pd.DatetimeIndex) or str(index.tz) != "UTC":
            raise ValueError("PriceSeries needs a UTC DatetimeIndex")
        if len(index) > 1 and not (np.diff(index.as_unit("ns").asi8) == _step_ns(self.step)).all():
            raise ValueError(f"PriceSeries index is not regular with step {self.step}")
        parse_unit(self.unit)

    def __len__(self) -> int:
        return len(self.prices)

    @property
    def index(self) -> pd.DatetimeIndex:
        index = self.prices.index
        assert isinstance(index, pd.DatetimeIndex)
        return index

    @property
    def has_gaps(self) -> bool:
        """Whether some step has no price (a gap too long to fill)."""
        return bool(self.prices.isna().any())

    @property
    def values(self) -> npt.NDArray[np.float64]:
        return self.prices.to_numpy(dtype=np.float64, copy=True)

    @property
    def currency(self) -> str:
        return parse_unit(self.unit)[0]

    @property
    def step_h(self) -> float:
        return self.step.total_seconds() / 3600.0

    @property
    def start(self) -> datetime:
        return self.index[0].to_pydatetime()

    @property
    def end(self) -> datetime:
        """The UTC end of the last step."""
        return self.index[-1].to_pydatetime() + self.step

    def published(self, step: int, lag_steps: int) -> pd.Series:
        """The prices known at the start of step ``step`` when each is published ``lag_steps``
        steps after its own step starts: what a re-plan, or a policy's re-made forecast, may
        read there (the same cut for both, so they are judged on the same information)."""
        return self.prices.iloc[: max(step - lag_steps, 0)]

    def between(self, start: datetime | None = None, end: datetime | None = None) -> PriceSeries:
        """The steps starting in ``[start, end)``."""
        index = self.index
        mask = np.ones(len(index), dtype=bool)
        if start is not None:
            mask &= index >= pd.Timestamp(start)
        if end is not None:
            mask &= index < pd.Timestamp(end)
        return PriceSeries(
            self.prices[mask], self.step, self.unit, self.node, self.timezone, self.report
        )

    def to_unit(self, unit: str, *, clp_per_usd: float | None = None) -> PriceSeries:
        """The same series in another unit. Changing currency needs ``clp_per_usd`` and is only
        defined between CLP and USD (the pair CEN publishes)."""
        factor = conversion_factor(self.unit, unit, clp_per_usd=clp_per_usd)
        return PriceSeries(
            self.prices * factor, self.step, unit, self.node, self.timezone, self.report
        )

    def resample(self, step: timedelta) -> PriceSeries:
        """Upsample to a step that divides the current one, each price held over its sub-steps
        (a 15-minute series of an hourly market pays the hourly price in every quarter)."""
        ratio = self.step / step
        if ratio < 1 or ratio != int(ratio):
            raise ValueError(f"can only upsample {self.step} to a step that divides it")
        n = int(ratio)
        values = np.repeat(self.prices.to_numpy(dtype=np.float64), n)
        index = pd.date_range(self.index[0], periods=len(values), freq=pd.Timedelta(step))
        return PriceSeries(
            pd.Series(values, index=index), step, self.unit, self.node, self.timezone, self.report
        )


def _step_ns(step: timedelta) -> int:
    return int(step.total_seconds() * 1e9)


def parse_unit(unit: str) -> tuple[str, str]:
    """Currency and energy unit of a price column header such as `USD/MWh`."""
    currency, sep, energy = unit.partition("/")
    if not sep or energy not in _ENERGY_FACTOR or not currency.isalpha():
        raise ValueError(f"price unit {unit!r} is not '<currency>/MWh' or '<currency>/kWh'")
    return currency.upper(), energy


def conversion_factor(src: str, dst: str, *, clp_per_usd: float | None = None) -> float:
    """The factor that turns a price in ``src`` into ``dst`` (e.g. CLP/kWh -> USD/MWh is
    ``1000 / clp_per_usd``)."""
    src_cur, src_energy = parse_unit(src)
    dst_cur, dst_energy = parse_unit(dst)
    # price per MWh = price per kWh * 1000
    factor = _ENERGY_FACTOR[src_energy] / _ENERGY_FACTOR[dst_energy]
    if src_cur == dst_cur:
        return factor
    if {src_cur, dst_cur} != {"CLP", "USD"}:
        raise ValueError(f"no exchange rate known for {src_cur} -> {dst_cur}")
    if clp_per_usd is None or not clp_per_usd > 0:
        raise ValueError(f"converting {src} to {dst} needs a positive clp_per_usd rate")
    return factor / clp_per_usd if src_cur == "CLP" else factor * clp_per_usd
