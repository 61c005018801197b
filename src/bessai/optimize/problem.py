"""Everything one solve needs, checked once: the prices and what they decide on, the storage,
the grid connection, the forecast bands, the risk options and an optional price on CO2."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bessai.errors import ConfigError
from bessai.market.bands import Bands
from bessai.optimize.storage import FloatArray, GridConnection, StorageSpec

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Risk:
    """Risk-aware options for a forecast with bands.

    ``min_spread``: a trade must earn at least this (price unit) between the discharge and the
    charge price on top of losses and wear; it enters as a hurdle of half of it on each side.
    ``min_confidence``: steps whose band confidence is lower are held idle.
    ``conservative``: optimise against charge at p90 and discharge at p10 instead of p50.
    """

    min_spread: float = 0.0
    min_confidence: float = 0.0
    conservative: bool = False


@dataclass(frozen=True, slots=True)
class CarbonPrice:
    """A price on the grid's CO2 in the objective (the carbon-aware option): each step's
    energy costs ``price_per_t`` (price-unit currency per tonne CO2e) times the step's emission
    factor ``g_kwh`` more, for what the battery draws and less for what it feeds back. Revenue
    is still booked at the market prices; this only moves the decisions (docs/carbon.md)."""

    price_per_t: float
    g_kwh: FloatArray

    def cost_per_mwh(self) -> FloatArray:
        """The CO2 cost added to each step's price: g/kWh is kg/MWh, so t/MWh x price/t."""
        return self.price_per_t * np.asarray(self.g_kwh, dtype=np.float64) / 1000.0


@dataclass(frozen=True, slots=True)
class Problem:
    """One optimisation, validated. ``prices`` are what revenue is booked at (the point
    forecast with bands); ``price_charge``/``price_discharge`` what decisions are made on (p90
    and p10 in the conservative mode, else the prices); ``held`` the steps the confidence filter
    keeps idle; ``soc_final_pct`` the terminal minimum, already inside the SOC bounds; with
    ``carbon``, both decision prices include its cost per MWh."""

    prices: FloatArray
    step_h: float
    storage: StorageSpec
    soc_initial_pct: float
    soc_final_pct: float
    grid: GridConnection | None
    bands: Bands | None
    risk: Risk
    price_charge: FloatArray
    price_discharge: FloatArray
    held: BoolArray
    confidence: FloatArray
    time_limit_s: float = 30.0
    messages: tuple[str, ...] = ()
    carbon: CarbonPrice | None = None

    @property
    def n(self) -> int:
        return len(self.prices)

    @classmethod
    def create(
        cls,
        prices: Sequence[float] | FloatArray,
        step_h: float,
        storage: StorageSpec,
        *,
        soc_initial_pct: float,
        soc_final_pct: float | None = None,
        grid: GridConnection | None = None,
        bands: Bands | None = None,
        risk: Risk | None = None,
        time_limit_s: float = 30.0,
        carbon: CarbonPrice | None = None,
    ) -> Problem:
        """Check the inputs (a :class:`ConfigError` names the first wrong one) and derive the
        decision prices and the held steps."""
        p = np.asarray(prices, dtype=np.float64)
        _check_inputs(p, step_h, soc_initial_pct, grid, bands)
        _check_carbon(carbon, len(p))
        risk = risk or Risk()
        wanted = soc_initial_pct if soc_final_pct is None else soc_final_pct
        # A target outside the SOC bounds would make the terminal and the SOC slack fight each
        # other; plan for the nearest bound and say so.
        soc_final = min(max(wanted, storage.soc_min_pct), storage.soc_max_pct)
        messages: tuple[str, ...] = ()
        if soc_final != wanted:
            messages = (
                f"final SOC target {wanted:g} % is outside the SOC bounds; planned for "
                f"{soc_final:g} %",
            )
        price_c, price_d = p.copy(), p.copy()
        if bands is not None and risk.conservative:
            price_c = np.asarray(bands.p90, dtype=np.float64)
            price_d = np.asarray(bands.p10, dtype=np.float64)
        if carbon is not None:
            price_c = price_c + carbon.cost_per_mwh()
            price_d = price_d + carbon.cost_per_mwh()
        confidence = bands.confidence() if bands is not None else np.ones(len(p))
        held = np.zeros(len(p), dtype=bool)
        if bands is not None and risk.min_confidence > 0:
            held = confidence < risk.min_confidence
        return cls(
            prices=p,
            step_h=step_h,
            storage=storage,
            soc_initial_pct=soc_initial_pct,
            soc_final_pct=soc_final,
            grid=grid,
            bands=bands,
            risk=risk,
            price_charge=price_c,
            price_discharge=price_d,
            held=held,
            confidence=confidence,
            time_limit_s=time_limit_s,
            messages=messages,
            carbon=carbon,
        )


def _check_carbon(carbon: CarbonPrice | None, n: int) -> None:
    if carbon is None:
        return
    if not (math.isfinite(carbon.price_per_t) and carbon.price_per_t >= 0):
        raise ConfigError("optimize: the CO2 price must be a number >= 0")
    g = np.asarray(carbon.g_kwh, dtype=np.float64)
    if g.shape != (n,):
        raise ConfigError(f"optimize: {g.size} emission factors for {n} price steps")
    if not np.all(np.isfinite(g)):
        raise ConfigError("optimize: emission factors contain NaN or infinite values")


def _check_inputs(
    p: FloatArray,
    step_h: float,
    soc_initial_pct: float,
    grid: GridConnection | None,
    bands: Bands | None,
) -> None:
    n = len(p)
    if n == 0:
        raise ConfigError("optimize: the price horizon is empty")
    if not np.all(np.isfinite(p)):
        raise ConfigError("optimize: prices contain NaN or infinite values")
    if not step_h > 0:
        raise ConfigError("optimize: step_h must be > 0")
    if grid is not None:
        grid.base_kw(n)  # rejects profiles of the wrong length before any solve
    if bands is not None:
        for name in ("p10", "p50", "p90"):
            if len(getattr(bands, name)) != n:
                raise ConfigError(f"optimize: bands.{name} has a different length than prices")
    if not math.isfinite(soc_initial_pct):
        raise ConfigError("optimize: soc_initial_pct must be a number")
