"""Closing the gap to perfect foresight: daily plan vs intraday re-plan, point vs scenario
plan, per forecaster, on Crucero and Valdivia (docs/benchmarks.md, "Closing the gap").

Not in `make bench` (it is a study, not a timing): ``python -m bench.value [OUT] [--stage
selection|test|all]`` runs the back-tests on two worker processes, keeps every row's JSON in
OUT (default ./value-results) and prints the protocol and the Markdown table. Each row equals
one ``bessai backtest ... --json`` call (printed beside it), except the selection rows that
vary the anomaly decay (the Python API: ``anomaly_decay(decay)``).

Protocol (printed by the script): nothing is chosen on 2023.

1. **selection**: Crucero 2022 (the forecasters read only prices before each plan; they have
   no trained parameters, so "train up to Y-2" is empty here): the window of ``recent-mean``
   (daily plans), the anomaly decay and the window of the ``-ar`` forecasters (re-planned
   hourly with a 1 h lag) are chosen on Crucero 2022;
2. **test**: Crucero 2023 and Valdivia 2023 (from 2023-01-02, the first day with history), run
   once with those settings. Valdivia has no earlier year in the repository: its settings are
   Crucero 2022's.

The LightGBM rows (``lgbm``, ``lgbm-blend``) fit their models walk-forward inside each row
(:mod:`bessai.analysis.learned`): Crucero once on the complete days before the period (2019 to
2021 for the selection, to 2022 for the test), Valdivia each month within 2023 from February.
The fits are kept in OUT/models and shared by the rows fitted on the same days.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from multiprocessing import Pool
from pathlib import Path

from bench import DATA

CRUCERO = "cen_cmg_crucero220_2019-2023.csv"
VALDIVIA = "cen_cmg_valdivia220_2023.tsv"
WORKERS = 2
LEARNED = ("lgbm", "lgbm-blend")
#: The learned forecasters' training issue times: every 3 h of the day (every hour would
#: triple the rows and the fitting time on the loaded 2-core machine).
ISSUE_EVERY_H = 3

PROTOCOL = """\
battery 1 MW / 4 MWh, eta 0.95 each way, SOC 0-100 %, 50 % at the start and >= 50 % at the end
of every market day (America/Santiago); plans executed by the plant battery model and settled
at the real CMg; capture = net revenue / daily perfect foresight (same constraints).
daily: one plan at midnight from the prices up to midnight.
intraday: re-plan every hour to the end of the day from the SOC reached, with the prices
published LAG hours before (lag 1 h: CEN's online CMg; 6 h; 24 h: no more than the daily plan);
only the hour up to the next re-plan is executed; same planning step as the gateway
(bessai.optimize.horizon.plan_horizon).
scenario: the two-stage LP on the last 7 days' shapes around the point (recourse after the
committed hour); on a daily plan (everything committed) it equals the point plan on the mean.
forecasters: persistence, week-mean (7 days), recent-mean (RECENT_DAYS days), and the -ar
ones: the mean plus the latest known price's departure from its own mean, fading per hour.
lgbm: the LightGBM quantile model of issue 6 (plan on mean, 1/2 week-mean), trained on issue
times every 3 h of the day and asked from the last published price (the first LAG hours of its
forecast dropped); fitted on the complete days published before the first plan (Crucero:
once, on 2019-2021 for the selection and 2019-2022 for the test) or again each month
(Valdivia, expanding within 2023, from 2023-02-01). lgbm-blend: its mean with recent-mean-ar.
selection on Crucero 2022 only; test on Crucero 2023 and Valdivia 2023, run once."""


@dataclass(frozen=True)
class Row:
    """One back-test of the study: stage, price file, period, forecaster and plan."""

    stage: str
    file: str
    first: date
    last: date
    forecaster: str
    lag_h: int | None = None  # None: daily plan
    scenario_days: int = 0
    decay: float | None = None  # an -ar forecaster's decay when not the default
    days: int | None = None  # a recent-mean's window when not the default
    refit: str | None = None  # the learned forecasters' --refit (once, monthly)

    @property
    def plan(self) -> str:
        if self.lag_h is None:
            return "daily" + (f", scenario {self.scenario_days} d" if self.scenario_days else "")
        kind = f"scenario {self.scenario_days} d" if self.scenario_days else "point"
        return f"intraday, lag {self.lag_h} h, {kind}"

    @property
    def name(self) -> str:
        tags = [f"decay {self.decay:g}"] if self.decay is not None else []
        tags += [f"{self.days} d"] if self.days is not None else []
        tags += [f"refit {self.refit}"] if self.refit is not None else []
        return self.forecaster + (f" ({', '.join(tags)})" if tags else "")

    def command(self) -> str:
        cmd = (
            f"bessai backtest --prices data/{self.file} --forecaster {self.forecaster} "
            f"--from {self.first} --to {self.last}"
        )
        if self.refit is not None:
            cmd += f" --refit {self.refit} --issue-every-h {ISSUE_EVERY_H}"
        if self.lag_h is not None:
            cmd += f" --replan-every-h 1 --lag-h {self.lag_h}"
            if self.scenario_days:
                cmd += f" --scenario-days {self.scenario_days}"
        elif self.scenario_days:  # one plan a day on scenarios, all of it committed
            cmd += f" --replan-every-h 24 --lag-h 0 --scenario-days {self.scenario_days}"
        return cmd + " --json"


def rows(stage: str) -> list[Row]:
    """The rows of ``stage`` (selection, test or all), in the order they run."""
    out: list[Row] = []
    if stage in ("selection", "all"):
        s = ("selection", CRUCERO, date(2022, 1, 1), date(2022, 12, 31))
        out += [Row(*s, "week-mean"), Row(*s, "persistence"), Row(*s, "week-mean", 1)]
        out += [Row(*s, "week-mean-ar", 1, 0, d) for d in (0.7, 0.8, 0.9, 0.95)]
        out += [Row(*s, "week-mean-ar", 1, 7)]
        out += [Row(*s, "recent-mean", days=d) for d in (10, 14, 21, 28, 42, 56)]
        out += [Row(*s, "recent-mean-ar", 1, days=d) for d in (14, 21, 28)]
        # LightGBM (issue 6), fitted once on the complete days before 2022 (2019-2021).
        out += [Row(*s, f, lag, refit="once") for lag in (None, 1) for f in LEARNED]
        # Re-planned on scenarios the blend lost 0.7 points on 2022: no test row.
        out += [Row(*s, "lgbm-blend", 1, 7, refit="once")]
    if stage in ("test", "all"):
        for file, first in ((CRUCERO, date(2023, 1, 1)), (VALDIVIA, date(2023, 1, 2))):
            t = ("test", file, first, date(2023, 12, 31))
            out += [Row(*t, f) for f in ("persistence", "week-mean", "recent-mean")]
            out += [Row(*t, "recent-mean-ar"), Row(*t, "week-mean", scenario_days=7)]
            out += [Row(*t, f, 1) for f in ("persistence", "week-mean", "recent-mean-ar")]
            out += [Row(*t, "recent-mean-ar", 6)]
            # A 24 h lag publishes nothing of a file's first day: start a day later.
            late = first + timedelta(days=1) if file == VALDIVIA else first
            out += [Row("test", file, late, date(2023, 12, 31), "recent-mean-ar", 24)]
            out += [Row(*t, "recent-mean-ar", 1, 7)]
        out += learned_test_rows()
    return out


#: Valdivia's learned rows start here: its file holds only 2023, and the first monthly fit
#: needs 21 days plus a week of lags of complete days before it (the first day that can run
#: is 2023-01-30; February on is the period of issue 6's evaluation).
VALDIVIA_LEARNED_FROM = date(2023, 2, 1)


def learned_test_rows() -> list[Row]:
    """The LightGBM test rows: Crucero fitted once on 2019-2022, Valdivia refitted monthly
    within 2023 from February, with the naive yardsticks over Valdivia's same days. Crucero
    and Valdivia alternate so the two workers fit different models."""
    c = ("test", CRUCERO, date(2023, 1, 1), date(2023, 12, 31))
    v = ("test", VALDIVIA, VALDIVIA_LEARNED_FROM, date(2023, 12, 31))
    out: list[Row] = []
    for lag, scenario, f in ((None, 0, "lgbm"), (1, 0, "lgbm"), (1, 0, "lgbm-blend"),
                             (1, 7, "lgbm"), (None, 0, "lgbm-blend")):  # fmt: skip
        out += [Row(*c, f, lag, scenario, refit="once")]
        out += [Row(*v, f, lag, scenario, refit="monthly")]
    out += [Row(*v, "week-mean"), Row(*v, "recent-mean-ar", 1), Row(*v, "recent-mean")]
    return out


def run_row(row: Row, cache: Path | None = None) -> dict[str, object]:
    """Run one row (in a worker process) and return its summary; the learned forecasters keep
    their fitted models in ``cache`` (shared by the rows fitted on the same prices)."""
    from bessai.analysis.backtest import backtest
    from bessai.analysis.intraday import Replan
    from bessai.analysis.learned import LearnedSpec, learned_forecasters
    from bessai.market.baselines import (
        ANOMALY_DECAY_PER_H,
        RECENT_DAYS,
        anomaly_decay,
        recent_mean,
    )
    from bessai.market.prices import load_prices
    from bessai.market.training import TrainSpec
    from bessai.optimize import StorageSpec

    started = time.perf_counter()
    battery = StorageSpec(max_charge_kw=1000, capacity_kwh=4000, eta_charge=0.95,
                          eta_discharge=0.95)  # fmt: skip
    replan = None
    if row.lag_h is not None:
        replan = Replan(1, row.lag_h, row.scenario_days)
    elif row.scenario_days:
        replan = Replan(24, 0, row.scenario_days)  # one plan a day, all of it committed
    forecasters = None
    if row.refit is not None:
        train = TrainSpec(issue_every_h=ISSUE_EVERY_H, n_jobs=1)
        forecasters = learned_forecasters(LearnedSpec(train, row.refit, cache=cache))
    elif row.decay is not None or row.days is not None:
        days = RECENT_DAYS if row.days is None else row.days
        if row.forecaster.endswith("-ar"):
            decay = ANOMALY_DECAY_PER_H if row.decay is None else row.decay
            base = 7 if row.forecaster == "week-mean-ar" else days
            forecasters = {row.forecaster: anomaly_decay(decay, base)}
        else:
            forecasters = {row.forecaster: recent_mean(days)}
    result = backtest(
        load_prices(DATA / row.file),
        row.forecaster,
        battery,
        soc_initial_pct=50,
        first_day=row.first,
        last_day=row.last,
        replan=replan,
        forecasters=forecasters,
    )
    out = result.summary()
    out.update(stage=row.stage, plan=row.plan, name=row.name, command=row.command())
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def table(results: list[dict[str, object]]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| stage | node | period | forecaster | plan | net revenue (USD) | capture vs daily "
        "perfect | EFC |",
        "|---|---|---|---|---|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['stage']} | {r['node']} | {r['from']} .. {r['to']} | {r['name']} | "
            f"{r['plan']} | {r['net_revenue']:,.0f} | "
            f"{100 * float(str(r['capture_vs_daily_perfect'])):.1f} % | "
            f"{float(str(r['equivalent_full_cycles'])):.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Run the stage's rows on two workers, keep their JSON, print the protocol and table."""
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    stage = "all"
    if "--stage" in sys.argv:
        stage = sys.argv[sys.argv.index("--stage") + 1]
        args = [a for a in args if a != stage]
    out = Path(args[0] if args else "value-results")
    out.mkdir(parents=True, exist_ok=True)
    print(PROTOCOL, file=sys.stderr, flush=True)
    todo = rows(stage)
    if "--only" in sys.argv:  # re-run some rows by their position in rows(stage)
        keep = {int(k) for k in sys.argv[sys.argv.index("--only") + 1].split(",")}
        todo = [r for k, r in enumerate(todo) if k in keep]
        args = [a for a in args if not a.replace(",", "").isdigit()]
    results: list[dict[str, object]] = []
    with Pool(WORKERS) as pool:
        for k, r in enumerate(pool.imap(partial(run_row, cache=out / "models"), todo)):
            (out / f"row_{r['stage']}_{k:02d}.json").write_text(json.dumps(r, indent=1))
            print(f"{r['name']} {r['plan']}: {r['capture_vs_daily_perfect']} "
                  f"({r['seconds']} s)", file=sys.stderr, flush=True)  # fmt: skip
            results.append(r)
    print("Protocol:\n\n" + PROTOCOL + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
