"""One site's side of the federation: its training rows, and the sums it answers with.

The rows are the centralised forecaster's own (:func:`bessai.market.training.training_set`:
same features, same issue times, same gap rules, Ridge's residual target over the week-mean
forecast), built from the site's price file. They stay in this process: every answer below is
a sum over them (:mod:`.stats`) or a histogram of errors, never a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from rich.console import Console

from bessai.errors import DataError
from bessai.federated.stats import (
    FloatArray,
    Gram,
    Moments,
    PointModel,
    error_histogram,
)
from bessai.market.features import baseline_point, feature_names, hour_of, spread_of
from bessai.market.options import PriceSource
from bessai.market.prices import PriceSeries
from bessai.market.training import TrainSpec, training_set

#: The training settings every site uses: the centralised Ridge's (`bessai forecast train
#: --kind ridge`), so that a federated model and a centralised one are the same model.
FEDERATED_SPEC = TrainSpec(model="ridge")


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """What a site says about its data besides sums: enough to refuse a site whose rows would
    not fit the others' (another unit, step, time zone or feature set)."""

    site: str
    unit: str
    timezone: str
    step_s: float
    features: tuple[str, ...]
    first_day: str
    last_day: str


@dataclass(frozen=True, slots=True)
class SiteRows:
    """A site's training rows: features ``x``, the residual target ``y`` (price minus the
    week-mean forecast), and what the band calibration reads off each row."""

    info: SiteInfo
    x: npt.NDArray[np.float32]
    y: FloatArray
    hour: FloatArray
    spread: FloatArray
    price: FloatArray  # the price itself, for the loss in price units

    @classmethod
    def from_series(
        cls, site: str, series: PriceSeries, spec: TrainSpec = FEDERATED_SPEC
    ) -> SiteRows:
        """The rows of ``series`` under ``spec``."""
        data = training_set(series.values, series.index, series.timezone, spec)
        local = series.index.tz_convert(series.timezone)
        info = SiteInfo(
            site,
            series.unit,
            series.timezone,
            series.step.total_seconds(),
            feature_names(spec.exog_names),
            str(local[0].date()),
            str(local[-1].date()),
        )
        base = baseline_point("week-mean", data.x)
        return cls(
            info,
            data.x,
            data.y - base,
            hour_of(data.x),
            spread_of(data.x),
            data.y,
        )

    @property
    def n(self) -> int:
        """Training rows."""
        return len(self.y)

    def moments(self) -> Moments:
        """Round 1: row count and column sums."""
        return Moments.of(self.x, self.y)

    def gram(self, mean_x: FloatArray, mean_y: float) -> Gram:
        """Round 2: cross-products centred on the pooled means."""
        return Gram.of(self.x, self.y, mean_x, mean_y)

    def residual_histogram(self, model: PointModel, floor: float) -> tuple[FloatArray, float]:
        """Round 3: per local hour, the histogram of the model's errors in units of the week's
        spread (floored like :func:`bessai.market.bands.fit_calibration`), and the sum of
        squared errors in price units (the train loss)."""
        err = self.y - model.predict(self.x)
        unit = np.maximum(self.spread, floor)
        return error_histogram(err / unit, self.hour), float(np.sum(err**2))


def load_site(site: str, source: PriceSource, err: Console | None = None) -> SiteRows:
    """The training rows of the site ``site`` from its price file (window and options in
    ``source``)."""
    console = err if err is not None else Console(stderr=True, quiet=True)
    series = source.load_window(console)
    if series.has_gaps and not np.isfinite(series.values).any():
        raise DataError(f"{source.path}: no price to train on")
    return SiteRows.from_series(site, series)


def site_source(path: str | Path, *, first: str | None = None, last: str | None = None,
                column: str | None = None, node: str | None = None) -> PriceSource:  # fmt: skip
    """The price source of a site from plain values (the SuperNode's node config)."""
    return PriceSource.from_options(Path(path), column, node, first, last)
