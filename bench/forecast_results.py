"""The forecaster's results table in docs/benchmarks.md ("CMg forecaster"), from the CLI.

Runs the exact `bessai forecast train` / `bessai forecast eval` commands listed in the docs
(about 9 minutes on 2 cores), keeps their JSON in OUT (default ./forecast-results) and prints
the Markdown table. Not in `make bench`: it is the full-year study, not a timing.

    .venv/bin/python -m bench.forecast_results [OUT]
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

DATA = Path(
    os.environ.get("BESSAI_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
BESSAI = str(Path(sys.executable).with_name("bessai"))
CRUCERO = DATA / "cen_cmg_crucero220_2019-2023.csv"
VALDIVIA = DATA / "cen_cmg_valdivia220_2023.tsv"


#: (directory suffix, model, extra train options). "lgbm-24h" issues only at midnight, the
#: back-test's own protocol, instead of every 6 h.
VARIANTS: tuple[tuple[str, str, list[str]], ...] = (
    ("lgbm", "lgbm", []),
    ("lgbm-24h", "lgbm", ["--issue-every-h", "24"]),
    ("ridge", "ridge", []),
)


def runs(out: Path) -> list[tuple[str, list[str], list[str]]]:
    """(label, train command, eval command) per row group."""
    rows = []
    for name, model, extra in VARIANTS:
        d = out / f"crucero_{name}"
        rows.append(
            (
                f"Crucero 220, trained 2019–2022, {name}",
                ["forecast", "train", "--prices", str(CRUCERO), "--model", model, *extra,
                 "--from", "2019-01-01", "--to", "2022-12-31", "--out", str(d)],
                ["forecast", "eval", "--prices", str(CRUCERO), "--model", str(d),
                 "--from", "2023-01-01", "--to", "2023-12-31", "--json"],
            )
        )  # fmt: skip
    for name, model, extra in VARIANTS:
        d = out / f"valdivia_{name}"
        rows.append(
            (
                f"Valdivia 220, walk-forward 2023 (monthly refit), {name}",
                ["forecast", "train", "--prices", str(VALDIVIA), "--model", model, *extra,
                 "--out", str(d)],
                ["forecast", "eval", "--prices", str(VALDIVIA), "--model", str(d),
                 "--from", "2023-02-01", "--to", "2023-12-31", "--refit", "monthly", "--json"],
            )
        )  # fmt: skip
    return rows


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "forecast-results")
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "| node, protocol | strategy | MAE | RMSE | pinball 0.1 / 0.5 / 0.9 | p10–p90 coverage "
        "| within-day τ | net revenue (USD) | capture vs daily perfect |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k, (label, train, evaluate) in enumerate(runs(out)):
        for cmd in (train, evaluate):
            print("$ bessai " + shlex.join(cmd), file=sys.stderr, flush=True)
        subprocess.run([BESSAI, *train], check=True, stdout=subprocess.DEVNULL)
        done = subprocess.run([BESSAI, *evaluate], check=True, capture_output=True, text=True)
        (out / f"eval_{k}.json").write_text(done.stdout, encoding="utf-8")
        for r in json.loads(done.stdout)["results"]:
            lines.append(
                f"| {label} | {r['strategy']} | {r['mae']:.2f} | {r['rmse']:.2f} | "
                f"{r['pinball_10']:.2f} / {r['pinball_50']:.2f} / {r['pinball_90']:.2f} | "
                f"{_pct(r['coverage_10_90'])} | {r['kendall_tau_within_day']:.3f} | "
                f"{r['net_revenue']:,.0f} | {_pct(r['capture_vs_daily_perfect'])} |"
            )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
