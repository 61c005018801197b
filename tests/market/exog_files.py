"""Dataset files as `bessai market fetch --dataset` writes them (`timestamp,key,value`), made
from the real Valdivia prices for the exogenous-input tests (tests/market/test_exog.py,
tests/control/test_planner_exog.py). Their values are the price plus noise: something a model
can read, not a claim about the real programmed CMg."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bessai.market.prices import PriceSeries

BUS = "VALDIVIA_______220"
OTHER_BUS = "CRUCERO_______220"


def write_dataset(path: Path, stamps: pd.DatetimeIndex, columns: dict[str, np.ndarray]) -> Path:
    """A long `timestamp,key,value` CSV as the fetcher writes it."""
    lines = ["timestamp,key,value"]
    for i, t in enumerate(stamps):
        for key, values in columns.items():
            lines.append(f"{t:%Y-%m-%dT%H:%M:%SZ},{key},{float(values[i])!r}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def programmed_file(valdivia: PriceSeries, out_dir: Path, last_day: str = "2023-04-14") -> Path:
    """A programmed CMg for Valdivia and a second bus from 2023-01-01 to ``last_day`` (local),
    named as `bessai market fetch --dataset cmg-programmed` names it."""
    end = pd.Timestamp(last_day).tz_localize("America/Santiago") + pd.Timedelta(days=1)
    cut = valdivia.between(pd.Timestamp("2023-01-01 03:00", tz="UTC"), end.tz_convert("UTC"))
    rng = np.random.default_rng(4)
    real = np.nan_to_num(cut.values, nan=float(np.nanmean(cut.values)))
    prog = real + rng.normal(0, 5, len(real))
    return write_dataset(
        out_dir / f"cen_cmg_programmed_2023-01-01_{last_day}.csv",
        cut.index,
        {BUS: prog, OTHER_BUS: prog * 0.9},
    )
