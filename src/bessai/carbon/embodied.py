"""The battery's own footprint: emissions of making it, amortised over the energy it will
deliver in its life, with the life taken from the degradation model.

Embodied emissions per kWh of capacity (cradle-to-gate, battery pack; inverter, enclosure and
transport not included), from the literature (docs/carbon.md lists the sources):
- Peters et al. 2017, Renew. Sustain. Energy Rev. 67, 491-506: 110 kg CO2e/kWh on average;
- Emilsson & Dahllöf 2019, IVL report C 444: 61-106 kg CO2e/kWh (NMC, by electricity mix);
- Aichberger & Jungmeier 2020, Energies 13, 6345: median 120, quartiles 70-175 kg CO2e/kWh.
The default is 100 kg CO2e/kWh; `LITERATURE_RANGE_KG_PER_KWH` is what a report shows beside it.

Life: the capacity-fade model (`bessai.plant.degradation`, Naumann LFP) gives the fade `f` of
a dispatch history of `d` days. Both of its terms grow with the square root of time or
throughput, so repeating that history N times fades by sqrt(N) * f, and the battery reaches
end of life (`end_of_life_fade`, 20 % by default) after N = (eol / f)^2 repetitions: a life of
N * d days, in which it delivers N times the history's discharged energy. The embodied total
divided by that lifetime energy is the footprint of each kWh delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bessai.carbon.factors import FloatArray
from bessai.plant.degradation import capacity_fade

DEFAULT_KG_PER_KWH = 100.0
LITERATURE_RANGE_KG_PER_KWH = (61.0, 175.0)
DEFAULT_END_OF_LIFE_FADE = 0.2
#: A battery is not kept forever even if it barely ages (enclosure, inverter, obsolescence).
MAX_LIFE_YEARS = 25.0


@dataclass(frozen=True, slots=True)
class Life:
    """How long a battery lasts under a given dispatch, and what it delivers meanwhile."""

    history_days: float
    history_fade: float
    life_years: float
    lifetime_discharged_kwh: float
    #: True when `MAX_LIFE_YEARS` bounded the life rather than the fade
    capped: bool


@dataclass(frozen=True, slots=True)
class Embodied:
    capacity_kwh: float
    kg_per_kwh: float = DEFAULT_KG_PER_KWH

    @property
    def total_kg(self) -> float:
        return self.capacity_kwh * self.kg_per_kwh

    def per_kwh_discharged(self, life: Life) -> float:
        """kg CO2e each delivered kWh carries (0 if it never delivers)."""
        if life.lifetime_discharged_kwh <= 0:
            return 0.0
        return self.total_kg / life.lifetime_discharged_kwh

    def share_kg(self, discharged_kwh: float, life: Life) -> float:
        """The part of the embodied total that `discharged_kwh` of delivery uses up."""
        return discharged_kwh * self.per_kwh_discharged(life)


def life_from_history(
    soc_pct: Sequence[float] | FloatArray,
    step_s: float,
    discharged_kwh: float,
    *,
    temp_c: float = 25.0,
    end_of_life_fade: float = DEFAULT_END_OF_LIFE_FADE,
) -> Life:
    """The life of a battery that repeats this SOC history (sampled every `step_s`) in which it
    delivered `discharged_kwh`, until it has lost `end_of_life_fade` of its capacity."""
    soc = np.asarray(soc_pct, dtype=np.float64)
    days = (len(soc) - 1) * step_s / 86_400.0
    if days <= 0:
        raise ValueError("a life needs a history of at least two samples")
    fade = capacity_fade(soc, temp_c, step_s).total_fade
    max_days = MAX_LIFE_YEARS * 365.25
    repeats = (end_of_life_fade / fade) ** 2 if fade > 0 else float("inf")
    capped = repeats * days > max_days
    if capped:
        repeats = max_days / days
    return Life(
        history_days=days,
        history_fade=fade,
        life_years=repeats * days / 365.25,
        lifetime_discharged_kwh=repeats * discharged_kwh,
        capped=capped,
    )
