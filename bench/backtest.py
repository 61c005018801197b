"""The back-test table of docs/benchmarks.md: day-ahead rolling back-tests of every baseline
strategy on Crucero 2021-2023 (each year and the three together) and Valdivia 2023, with a
1 MW / 4 MWh battery, 0.95 efficiency each way, SOC 0-100 %, starting at 50 % and ending each
day at >= 50 %. Not in the default `make bench` run (about a minute): run it with
`python -m bench backtest`. Each row equals one `bessai backtest ... --json` call."""

from __future__ import annotations

import time
from datetime import date

from bench import DATA
from bessai.analysis.backtest import STRATEGIES, backtest
from bessai.market.prices import load_prices
from bessai.optimize import StorageSpec

CASES = [
    ("cen_cmg_crucero220_2019-2023.csv", date(2021, 1, 1), date(2021, 12, 31)),
    ("cen_cmg_crucero220_2019-2023.csv", date(2022, 1, 1), date(2022, 12, 31)),
    ("cen_cmg_crucero220_2019-2023.csv", date(2023, 1, 1), date(2023, 12, 31)),
    ("cen_cmg_crucero220_2019-2023.csv", date(2021, 1, 1), date(2023, 12, 31)),
    ("cen_cmg_valdivia220_2023.tsv", date(2023, 1, 1), date(2023, 12, 31)),
]


def run() -> dict[str, object]:
    battery = StorageSpec(
        max_charge_kw=1000, capacity_kwh=4000, eta_charge=0.95, eta_discharge=0.95
    )
    rows: list[dict[str, object]] = []
    for name, first, last in CASES:
        series = load_prices(DATA / name)
        for strategy in STRATEGIES:
            started = time.perf_counter()
            result = backtest(
                series, strategy, battery, soc_initial_pct=50, first_day=first, last_day=last
            )
            row = result.summary()
            row["file"] = name
            row["seconds"] = round(time.perf_counter() - started, 1)
            rows.append(row)
    return {
        "battery": "1 MW / 4 MWh, eta 0.95/0.95, SOC 0-100 %, 50 % start and daily end",
        "rows": rows,
    }
