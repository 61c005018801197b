"""The forecaster's results tables in docs/benchmarks.md ("CMg forecaster"), from the CLI.

Runs the exact `bessai forecast train` / `bessai forecast eval` commands listed in the docs
(about 10 minutes on 2 cores), keeps their JSON in OUT (default ./forecast-results) and prints
the two Markdown tables. Not in `make bench`: it is the full-year study, not a timing.

Two stages, so that nothing is chosen on the year it is judged on:

1. **selection**: Crucero trained on 2019–2021 and evaluated on 2022; this is where the plan
   price rule (:mod:`bessai.market.point`) and the training issue times were chosen;
2. **test**: Crucero trained on 2019–2022 and evaluated on 2023, and Valdivia 2023 walk-forward
   with monthly refits; run once with the settings stage 1 chose, beside the p50 plan for
   reference.

    .venv/bin/python -m bench.forecast_results [OUT]
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import DATA

BESSAI = str(Path(sys.executable).with_name("bessai"))
CRUCERO = DATA / "cen_cmg_crucero220_2019-2023.csv"
VALDIVIA = DATA / "cen_cmg_valdivia220_2023.tsv"

#: Plan price rules compared at evaluation (same model, same quantiles): label, eval options.
DEFAULT_RULE = ("plan on mean, ½ week-mean", [])
P50_RULE = ("plan on p50", ["--plan-on", "p50", "--baseline-share", "0"])
MEAN_RULE = ("plan on mean", ["--plan-on", "mean", "--baseline-share", "0"])

#: Trainings: label, model, train options.
LGBM_6H = ("LightGBM, 6-hourly issues", "lgbm", [])
LGBM_24H = ("LightGBM, midnight issues", "lgbm", ["--issue-every-h", "24"])
RIDGE = ("Ridge, 6-hourly issues", "ridge", [])


@dataclass(frozen=True)
class Run:
    stage: str
    group: str
    training: str
    train: list[str]
    evals: list[tuple[str, list[str]]]  # (rule label, eval command)


def runs(out: Path) -> list[Run]:
    plan: list[Run] = []

    def add(stage: str, group: str, name: str, model: str, extra: list[str],
            prices: Path, train_window: list[str], eval_window: list[str],
            rules: list[tuple[str, list[str]]]) -> None:  # fmt: skip
        d = out / f"{stage}_{prices.stem.split('_')[2]}_{model}_{len(extra)}"
        train = ["forecast", "train", "--prices", str(prices), "--kind", model, *extra,
                 *train_window, "--out", str(d)]  # fmt: skip
        evaluate = ["forecast", "eval", "--prices", str(prices), "--model", str(d),
                    *eval_window, "--json"]  # fmt: skip
        evals = [(label, [*evaluate, *opts]) for label, opts in rules]
        plan.append(Run(stage, group, name, train, evals))

    sel_train = ["--from", "2019-01-01", "--to", "2021-12-31"]
    sel_eval = ["--from", "2022-01-01", "--to", "2022-12-31"]
    for name, model, extra in (LGBM_6H, LGBM_24H):
        add("selection", "Crucero 2022, trained 2019–2021", name, model, extra, CRUCERO,
            sel_train, sel_eval, [P50_RULE, MEAN_RULE, DEFAULT_RULE])  # fmt: skip
    test_train = ["--from", "2019-01-01", "--to", "2022-12-31"]
    test_eval = ["--from", "2023-01-01", "--to", "2023-12-31"]
    walk = ["--from", "2023-02-01", "--to", "2023-12-31", "--refit", "monthly"]
    for prices, group, train_window, eval_window in (
        (CRUCERO, "Crucero 2023, trained 2019–2022", test_train, test_eval),
        (VALDIVIA, "Valdivia 2023-02 .. 12, monthly refit", [], walk),
    ):
        for name, model, extra in (LGBM_6H, LGBM_24H):
            add("test", group, name, model, extra, prices, train_window, eval_window,
                [DEFAULT_RULE, P50_RULE])  # fmt: skip
        add("test", group, RIDGE[0], RIDGE[1], RIDGE[2], prices, train_window, eval_window,
            [DEFAULT_RULE])  # fmt: skip
    return plan


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def _row(group: str, strategy: str, r: dict[str, float]) -> str:
    return (
        f"| {group} | {strategy} | {r['mae']:.2f} | {r['rmse']:.2f} | "
        f"{r['pinball_10']:.2f} / {r['pinball_50']:.2f} / {r['pinball_90']:.2f} | "
        f"{_pct(r['coverage_10_90'])} | {r['kendall_tau_within_day']:.3f} | "
        f"{r['net_revenue']:,.0f} | {_pct(r['capture_vs_daily_perfect'])} |"
    )


HEADER = [
    "| node, protocol | strategy | MAE | RMSE | pinball 0.1 / 0.5 / 0.9 | p10–p90 coverage "
    "| within-day τ | net revenue (USD) | capture vs daily perfect |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|",
]


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "forecast-results")
    out.mkdir(parents=True, exist_ok=True)
    # stage -> group -> (model rows, baseline rows)
    tables: dict[str, dict[str, tuple[list[str], list[str]]]] = {}
    for k, run in enumerate(runs(out)):
        print("$ bessai " + shlex.join(run.train), file=sys.stderr, flush=True)
        subprocess.run([BESSAI, *run.train], check=True, stdout=subprocess.DEVNULL)
        for j, (rule, evaluate) in enumerate(run.evals):
            print("$ bessai " + shlex.join(evaluate), file=sys.stderr, flush=True)
            done = subprocess.run([BESSAI, *evaluate], check=True, capture_output=True, text=True)
            (out / f"eval_{k}_{j}.json").write_text(done.stdout, encoding="utf-8")
            results = json.loads(done.stdout)["results"]
            models, baselines = tables.setdefault(run.stage, {}).setdefault(run.group, ([], []))
            models.append(_row(run.group, f"{run.training}, {rule}", results[0]))
            # The baselines do not depend on the model: one row each per group.
            if not baselines:
                baselines.extend(_row(run.group, r["strategy"], r) for r in results[1:])
            print(models[-1], file=sys.stderr, flush=True)
    for stage, groups in tables.items():
        print(f"\n{stage}\n")
        print("\n".join(HEADER))
        for models, baselines in groups.values():
            print("\n".join(models + baselines))


if __name__ == "__main__":
    main()
