"""Physics consistency: invariants the plant obeys, as residuals with tolerances learned on
benign operation.

- `dcac_w`: the inverter's AC power against PV minus battery (DC side), converter losses aside.
- `soc_step_pct`, `soc_window_pct`: the SOC change against the integral of the battery power,
  over one cycle and over a sliding window (a slow bias or ramp adds up in the window).
- `temp_rate_c_min`: a battery's thermal mass bounds how fast its temperature moves.
- `track_w`: the battery power against the gateway's own setpoint while it dispatches.
- `frozen`: how long a reading has not changed (a feature of the score only: benign plants
  stand still too, at night or at a steady setpoint).
- ranges: values outside what the device can report at all.

A reading that breaks an invariant is not necessarily the false one, so an alert names the
readings involved and all of them are kept from the planner.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from bessai.devices.base import Measurements

RESIDUALS = ("dcac_w", "soc_step_pct", "soc_window_pct", "temp_rate_c_min", "track_w")
#: residuals judged against a tolerance; `track_w` only feeds the score (the cycle's own
#: tracking, control/tracking.py, already acts on a battery that does not follow)
RULES = ("dcac_w", "soc_step_pct", "soc_window_pct", "temp_rate_c_min")
#: which readings each residual involves (what an alert flags as suspect)
INVOLVED: dict[str, tuple[str, ...]] = {
    "dcac_w": ("battery_power_w", "pv_power_w", "inverter_power_w"),
    "soc_step_pct": ("soc_pct", "battery_power_w"),
    "soc_window_pct": ("soc_pct", "battery_power_w"),
    "temp_rate_c_min": ("battery_temp_c",),
    "track_w": ("battery_power_w",),
    "frozen": (),
    "range": (),
}
#: the least tolerance per residual, whatever training saw (quantisation of the registers)
FLOORS = {
    "dcac_w": 10.0,
    "soc_step_pct": 0.15,
    "soc_window_pct": 0.2,
    "temp_rate_c_min": 0.5,
    "track_w": 200.0,
}
#: signals that move on their own in benign operation (a battery at a steady setpoint, a SOC at
#: rest or an inverter at night stand still legitimately: the residuals cover those)
FROZEN_SIGNALS = ("pv_power_w",)
FROZEN_FLOOR = 6


@dataclass(frozen=True, slots=True)
class Residuals:
    """One cycle's residuals (None: not computable this cycle), frozen runs and range breaks."""

    values: dict[str, float | None]
    frozen: dict[str, int] = field(default_factory=dict)
    out_of_range: tuple[str, ...] = ()

    def vector(self) -> list[float]:
        """The residuals as features (0 where unknown)."""
        out = [self.values.get(n) or 0.0 for n in RESIDUALS]
        return out + [float(self.frozen.get(n, 0)) for n in FROZEN_SIGNALS]


@dataclass(slots=True)
class _Sample:
    t_s: float
    soc_pct: float
    power_w: float


class PhysicsModel:
    """Residuals cycle by cycle from the measurements and a clock (plant time in benchmarks)."""

    def __init__(self, capacity_wh: float, max_power_w: float, window: int = 24) -> None:
        self.capacity_wh = capacity_wh
        self.max_power_w = max_power_w
        self._samples: deque[_Sample] = deque(maxlen=window + 1)
        self._energy_wh: deque[float] = deque(maxlen=window)
        self._last_temp: tuple[float, float] | None = None
        self._last_values: dict[str, float] = {}
        self._runs: dict[str, int] = {}

    def _soc(self, m: Measurements, now_s: float) -> tuple[float | None, float | None]:
        if m.soc_pct is None or m.battery_power_w is None:
            self._samples.clear()
            self._energy_wh.clear()
            return None, None
        sample = _Sample(now_s, m.soc_pct, m.battery_power_w)
        step = window = None
        if self._samples:
            prev = self._samples[-1]
            dt_h = max(0.0, sample.t_s - prev.t_s) / 3600.0
            energy_wh = 0.5 * (prev.power_w + sample.power_w) * dt_h
            self._energy_wh.append(energy_wh)
            step = (sample.soc_pct - prev.soc_pct) - 100.0 * energy_wh / self.capacity_wh
            if len(self._samples) == self._samples.maxlen:
                first = self._samples[1]  # the window's energies start after the oldest sample
                window = (sample.soc_pct - first.soc_pct) - 100.0 * sum(
                    list(self._energy_wh)[1:]
                ) / self.capacity_wh
        self._samples.append(sample)
        return step, window

    def _temp_rate(self, m: Measurements, now_s: float) -> float | None:
        if m.battery_temp_c is None:
            return None
        last, self._last_temp = self._last_temp, (now_s, m.battery_temp_c)
        if last is None or now_s <= last[0]:
            return None
        return (m.battery_temp_c - last[1]) / ((now_s - last[0]) / 60.0)

    def _frozen(self, m: Measurements) -> dict[str, int]:
        for name in FROZEN_SIGNALS:
            value = getattr(m, name)
            if value is None or value == 0:
                self._runs[name] = 0
                continue
            same = self._last_values.get(name) == value
            self._runs[name] = self._runs.get(name, 0) + 1 if same else 0
            self._last_values[name] = value
        return dict(self._runs)

    def _ranges(self, m: Measurements) -> tuple[str, ...]:
        broken = []
        if m.soc_pct is not None and not 0.0 <= m.soc_pct <= 100.0:
            broken.append(f"soc_pct {m.soc_pct:g} outside 0..100")
        limit_w = 1.5 * self.max_power_w
        if m.battery_power_w is not None and abs(m.battery_power_w) > limit_w:
            broken.append(f"battery_power_w {m.battery_power_w:g} beyond {limit_w:g}")
        if m.battery_temp_c is not None and not -40.0 <= m.battery_temp_c <= 90.0:
            broken.append(f"battery_temp_c {m.battery_temp_c:g} outside -40..90")
        return tuple(broken)

    def update(self, m: Measurements, now_s: float, setpoint_w: float | None) -> Residuals:
        """The residuals of this cycle's measurements."""
        dcac = None
        if None not in (m.inverter_power_w, m.pv_power_w, m.battery_power_w):
            dcac = m.inverter_power_w - (m.pv_power_w - m.battery_power_w)  # type: ignore[operator]
        step, window = self._soc(m, now_s)
        track = None
        if (
            setpoint_w is not None
            and m.battery_power_w is not None
            and m.dispatch_command
            in (
                "charge",
                "discharge",
            )
        ):
            track = m.battery_power_w - setpoint_w
        values = {
            "dcac_w": dcac,
            "soc_step_pct": step,
            "soc_window_pct": window,
            "temp_rate_c_min": self._temp_rate(m, now_s),
            "track_w": track,
        }
        return Residuals(values, self._frozen(m), self._ranges(m))


class Tolerances:
    """Per residual, the largest magnitude seen in benign operation, times a margin, above a
    floor; per frozen signal, the longest benign run."""

    def __init__(self, margin: float) -> None:
        self.margin = margin
        self._max: dict[str, float] = dict.fromkeys(RESIDUALS, 0.0)
        self._runs: dict[str, int] = dict.fromkeys(FROZEN_SIGNALS, 0)

    def learn(self, r: Residuals) -> None:
        """Widen the tolerances to cover one benign cycle."""
        for name, value in r.values.items():
            if value is not None and math.isfinite(value):
                self._max[name] = max(self._max[name], abs(value))
        for name, run in r.frozen.items():
            self._runs[name] = max(self._runs[name], run)

    def limit(self, name: str) -> float:
        """The tolerance of one residual."""
        return max(FLOORS[name], self._max[name] * self.margin)

    def run_limit(self, name: str) -> int:
        """The longest run of identical readings accepted for one signal."""
        return max(FROZEN_FLOOR, math.ceil(self._runs[name] * self.margin))

    def broken(self, r: Residuals) -> dict[str, tuple[float, float]]:
        """Residuals beyond their tolerance: name -> (value, limit)."""
        out: dict[str, tuple[float, float]] = {}
        for name in RULES:
            value = r.values.get(name)
            if value is not None and (not math.isfinite(value) or abs(value) > self.limit(name)):
                out[name] = (value, self.limit(name))
        return out

    def as_dict(self) -> dict[str, float]:
        """The learned limits, for the status and the docs."""
        limits: dict[str, float] = {n: round(self.limit(n), 4) for n in RESIDUALS}
        limits.update({f"frozen:{n}": float(self.run_limit(n)) for n in FROZEN_SIGNALS})
        return limits
