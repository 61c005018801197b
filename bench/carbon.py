"""The carbon table of docs/benchmarks.md: a year of Crucero (2023) day-ahead back-tests,
revenue-only (CO2 price 0) against carbon-aware plans, with perfect foresight and the
week-mean forecaster; the reference battery of the back-test table (1 MW / 4 MWh, 0.95 each
way, SOC 0-100 %, 50 % start and daily end, plant settlement). Emissions under the marginal
factor derived from the CMg (location-based) and under Chile's yearly average, each on its own,
and the embodied share over the life the degradation model gives this dispatch. Not in the
default `make bench` run (about two minutes): `python -m bench carbon`. Each row equals one
`bessai carbon backtest ... --json` run."""

from __future__ import annotations

import time
from datetime import date

from bench import DATA
from bessai.analysis.carbon import carbon_backtests
from bessai.market.prices import load_prices
from bessai.optimize import StorageSpec

CO2_PRICES = (0.0, 25.0, 50.0, 100.0, 200.0)
STRATEGIES = ("perfect", "week-mean")


def run() -> dict[str, object]:
    series = load_prices(DATA / "cen_cmg_crucero220_2019-2023.csv")
    storage = StorageSpec(
        max_charge_kw=1000, capacity_kwh=4000, eta_charge=0.95, eta_discharge=0.95
    )
    rows: list[dict[str, object]] = []
    for strategy in STRATEGIES:
        started = time.perf_counter()
        outcomes = carbon_backtests(
            series,
            strategy,
            storage,
            CO2_PRICES,
            soc_initial_pct=50,
            first_day=date(2023, 1, 1),
            last_day=date(2023, 12, 31),
        )
        seconds = round((time.perf_counter() - started) / len(outcomes), 1)
        rows += [{**o.summary(), "seconds": seconds} for o in outcomes]
    return {
        "battery": "1 MW / 4 MWh, eta 0.95/0.95, SOC 0-100 %, 50 % start and daily end",
        "rows": rows,
    }
