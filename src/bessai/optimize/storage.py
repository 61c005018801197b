"""What the optimizer knows about the hardware: the storage and the site's grid connection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bessai.errors import ConfigError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class StorageSpec:
    """The storage as the optimizer models it; powers in kW at the AC terminals, ``soc_*`` in
    percent of capacity. ``max_discharge_kw`` defaults to ``max_charge_kw``."""

    max_charge_kw: float = 1000.0
    capacity_kwh: float = 4000.0
    eta_charge: float = 0.95
    eta_discharge: float = 0.95
    soc_min_pct: float = 0.0
    soc_max_pct: float = 100.0
    degradation_per_mwh: float = 0.0
    cycles_per_day: float | None = None
    max_discharge_kw: float | None = None

    def __post_init__(self) -> None:
        checks = [
            (self.max_charge_kw > 0, "max_charge_kw must be > 0"),
            (self.capacity_kwh > 0, "capacity_kwh must be > 0"),
            (0 < self.eta_charge <= 1, "eta_charge must be in (0, 1]"),
            (0 < self.eta_discharge <= 1, "eta_discharge must be in (0, 1]"),
            (
                0 <= self.soc_min_pct <= self.soc_max_pct <= 100,
                "need 0 <= soc_min_pct <= soc_max_pct <= 100",
            ),
            (self.degradation_per_mwh >= 0, "degradation_per_mwh must be >= 0"),
            (
                self.cycles_per_day is None or self.cycles_per_day > 0,
                "cycles_per_day must be > 0",
            ),
            (
                self.max_discharge_kw is None or self.max_discharge_kw > 0,
                "max_discharge_kw must be > 0",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"storage: {message}")

    @property
    def charge_limit_kw(self) -> float:
        return self.max_charge_kw

    @property
    def discharge_limit_kw(self) -> float:
        """``max_discharge_kw``, or the charge limit when it is not given."""
        return self.max_charge_kw if self.max_discharge_kw is None else self.max_discharge_kw

    def energy_kwh(self, soc_pct: float) -> float:
        return soc_pct / 100.0 * self.capacity_kwh

    @property
    def e_min_kwh(self) -> float:
        return self.energy_kwh(self.soc_min_pct)

    @property
    def e_max_kwh(self) -> float:
        return self.energy_kwh(self.soc_max_pct)


@dataclass(frozen=True, slots=True)
class GridConnection:
    """The site behind the grid connection: the storage optimises the net grid flow
    ``load - pv + charge - discharge`` (kW, > 0 = import) within optional limits."""

    load_kw: Sequence[float] | None = None
    pv_kw: Sequence[float] | None = None
    import_limit_kw: float | None = None
    export_limit_kw: float | None = None

    def base_kw(self, n: int) -> FloatArray:
        """Net grid flow without the storage, per step: ``load - pv``."""
        load = np.zeros(n) if self.load_kw is None else np.asarray(self.load_kw, dtype=np.float64)
        pv = np.zeros(n) if self.pv_kw is None else np.asarray(self.pv_kw, dtype=np.float64)
        if len(load) != n or len(pv) != n:
            raise ConfigError("optimize: site load/pv profiles must have one value per price step")
        return load - pv

    @property
    def limited(self) -> bool:
        return self.import_limit_kw is not None or self.export_limit_kw is not None


def cell_throughput_kwh(
    charge_kw: FloatArray, discharge_kw: FloatArray, step_h: float, storage: StorageSpec
) -> float:
    """Energy into plus energy out of the cells (the basis of wear and of full cycles)."""
    return float(
        np.sum(
            charge_kw * storage.eta_charge * step_h + discharge_kw * step_h / storage.eta_discharge
        )
    )
