"""`bessai plant ...`: the plant model from the command line, for integrators sizing a system."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import typer
from rich.console import Console
from rich.table import Table

from bessai.errors import ConfigError


def _cycling_soc_pct(
    days: int, cycles_per_day: float, depth_pct: float, center_soc_pct: float, c_rate: float
) -> npt.NDArray[np.float64]:
    """15-min SOC trace: `cycles_per_day` triangular cycles a day of `depth_pct` around
    `center_soc_pct`, each half at `c_rate`, resting at the bottom in between (as a battery
    that charges only to discharge again the same day does)."""
    steps_per_day = 96
    half_steps = max(1, round(depth_pct / 100.0 / c_rate * 4))
    up = np.linspace(center_soc_pct - depth_pct / 2, center_soc_pct + depth_pct / 2, half_steps + 1)
    cycle = np.concatenate([up[:-1], up[::-1][:-1]])
    n = days * steps_per_day
    period = steps_per_day / cycles_per_day
    if period < cycle.size:
        raise ConfigError(
            f"{cycles_per_day} cycles a day of {depth_pct} % at {c_rate}C do not fit in a day"
        )
    t = np.arange(n)
    phase = np.floor(t % period).astype(np.int64)
    soc = np.full(n, up[0])
    inside = phase < cycle.size
    soc[inside] = cycle[phase[inside]]
    return soc


def register(app: typer.Typer) -> None:
    """Add `bessai plant` (simulate the battery physics offline)."""
    plant = typer.Typer(help="Plant model: battery wear and behaviour.", no_args_is_help=True)

    @plant.command("wear")
    def wear(
        years: int = typer.Option(10, min=1, max=30, help="Years to simulate."),
        cycles_per_day: float = typer.Option(1.0, min=0.0, help="Full or partial cycles a day."),
        depth_pct: float = typer.Option(80.0, min=0.0, max=100.0, help="Depth of each cycle."),
        center_soc_pct: float = typer.Option(
            50.0, min=0.0, max=100.0, help="SOC at the middle of each cycle."
        ),
        c_rate: float = typer.Option(0.5, min=0.01, max=2.0, help="Charge/discharge C-rate."),
        temp_c: float = typer.Option(25.0, min=-20.0, max=60.0, help="Cell temperature."),
    ) -> None:
        """Capacity fade year by year for a regular cycling pattern (Naumann LFP model)."""
        from bessai.plant.degradation import capacity_fade

        if center_soc_pct - depth_pct / 2 < 0 or center_soc_pct + depth_pct / 2 > 100:
            raise ConfigError(
                f"a {depth_pct} % cycle around {center_soc_pct} % SOC leaves the 0..100 % range"
            )
        if cycles_per_day == 0:
            depth_pct = 0.0
        soc = _cycling_soc_pct(
            years * 365, max(cycles_per_day, 1e-9), depth_pct, center_soc_pct, c_rate
        )
        table = Table(title="Capacity fade, Sony/Murata LFP (Naumann 2018/2020)")
        for col in ("year", "EFC", "calendar %", "cycle %", "SOH %"):
            table.add_column(col, justify="right")
        for year in range(1, years + 1):
            fade = capacity_fade(soc[: year * 365 * 96 + 1], temp_c, 900.0)
            table.add_row(
                str(year),
                f"{fade.equivalent_full_cycles:.0f}",
                f"{100 * fade.calendar_fade:.2f}",
                f"{100 * fade.cycle_fade:.2f}",
                f"{fade.soh_pct:.2f}",
            )
        Console().print(table)

    app.add_typer(plant, name="plant")
