"""The federated forecaster's results table in docs/benchmarks.md ("Federated forecasting").

Three sites train until 2023-02-28 and are judged on 2023-03-01 .. 2023-12-31 (day-ahead
back-test, 1 MW / 4 MWh, the `bessai forecast eval` defaults), each model fixed (no refits):

- **valdivia**, the data-poor site: only 2023-01-01 .. 02-28 of its own history (2 months);
- **crucero**: 2022-03-01 .. 2023-02-28 (12 months);
- **norte-2021**: Crucero 2021 standing in for a third northern bus (the only other USD/MWh CEN
  series shipped); it trains, it is not judged.

Per judged site: local-only (the same training on its own rows alone), federated (the three
sites), centralised (scikit-learn's Ridge on the pooled rows, the same band calibration), and the
week-mean baseline. The federation runs in process (:class:`bessai.federated.local.LocalTransport`):
the messages and the arithmetic are those of the Flower deployment, whose equality with this is
tested (tests/federated/test_flower.py). Not in `make bench`: it is a study, not a timing.

    .venv/bin/python -m bench.federated_results [OUT]
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np

from bench import DATA
from bessai.analysis.evaluate import baseline_forecaster, onnx_forecaster, run_strategy
from bessai.federated.local import LocalTransport
from bessai.federated.mlp import MlpSpec
from bessai.federated.server import Policy, run_mlp, run_ridge
from bessai.federated.site import SiteRows, load_site, site_source
from bessai.federated.stats import LinearModel
from bessai.market.options import PriceSource
from bessai.market.predictor import OnnxModel
from bessai.optimize import StorageSpec

CRUCERO = DATA / "cen_cmg_crucero220_2019-2023.csv"
VALDIVIA = DATA / "cen_cmg_valdivia220_2023.tsv"
EVAL_FIRST, EVAL_LAST = date(2023, 3, 1), date(2023, 12, 31)
STORAGE = StorageSpec(
    max_charge_kw=1000.0, capacity_kwh=4000.0, eta_charge=0.95, eta_discharge=0.95
)


@dataclass(frozen=True)
class Site:
    """A site of the study: name, price file, training window, judged or not."""

    name: str
    prices: Path
    first: str
    last: str
    judged: bool


SITES = (
    Site("valdivia", VALDIVIA, "2023-01-01", "2023-02-28", True),
    Site("crucero", CRUCERO, "2022-03-01", "2023-02-28", True),
    Site("norte-2021", CRUCERO, "2021-01-01", "2021-12-31", False),
)


def sklearn_pooled(rows: list[SiteRows]) -> LinearModel:
    """The centralised reference: scikit-learn on the pooled rows."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([r.x for r in rows]).astype(np.float64)
    y = np.concatenate([r.y for r in rows])
    pipe = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(x, y)
    scaler, ridge = pipe[0], pipe[-1]
    w = ridge.coef_ / scaler.scale_
    b = float(ridge.intercept_ - np.sum(ridge.coef_ * scaler.mean_ / scaler.scale_))
    return LinearModel(w, b, ridge.coef_, scaler.mean_, scaler.scale_)


def judge(site: Site, model_dir: Path, label: str) -> dict[str, object]:
    """MAE and back-test capture of the model in ``model_dir`` at ``site``."""
    series = PriceSource(site.prices, last=EVAL_LAST).load_window(_quiet())
    fc = (
        baseline_forecaster("week-mean")
        if label == "week-mean"
        else onnx_forecaster(OnnxModel(model_dir))
    )
    t0 = time.perf_counter()
    res = run_strategy(series, label, fc, STORAGE, first_day=EVAL_FIRST, last_day=EVAL_LAST)
    bt = res.backtest
    return {
        "site": site.name,
        "model": label,
        "mae": round(res.metrics["mae"], 3),
        "capture": round(bt.capture_daily, 4),
        "net_revenue": round(bt.net_revenue, 0),
        "days": len(bt.days),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _quiet():  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(stderr=True, quiet=True)


def main(out: Path) -> list[dict[str, object]]:
    """Train every model, judge it, write results.json and print the table."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [load_site(s.name, site_source(s.prices, first=s.first, last=s.last)) for s in SITES]
    print(json.dumps({"rows": {r.info.site: r.n for r in rows}}), file=sys.stderr)
    t = LocalTransport(rows)
    fed = run_ridge(t, t.ids(), Policy(min_clients=3))
    fed.write(out / "federated")
    central = sklearn_pooled(rows)
    diff = float(np.max(np.abs(central.vector() - fed.model.vector())))
    replace(fed, model=central, extra={"trained": "centralised (scikit-learn)"}).write(
        out / "centralised"
    )
    results: list[dict[str, object]] = []
    results += mlp_study(rows, out)
    for k, site in enumerate(SITES):
        if not site.judged:
            continue
        solo_t = LocalTransport([rows[k]])
        solo = run_ridge(solo_t, solo_t.ids(), Policy(min_clients=1))
        solo.write(out / f"local-{site.name}")
        dirs = {"local-only": out / f"local-{site.name}", "federated": out / "federated",
                "centralised": out / "centralised", "week-mean": out}  # fmt: skip
        for label, d in dirs.items():
            r = judge(site, d, label)
            print(json.dumps(r), file=sys.stderr)
            results.append(r)
    summary = {"max_abs_coefficient_diff_federated_vs_centralised": diff, "results": results}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_table(results, diff)
    return results


FEDPROX_MU = 0.1


def pooled_site(rows: list[SiteRows]) -> SiteRows:
    """Every site's rows as one site: the centralised training."""
    cat = np.concatenate
    return SiteRows(rows[0].info, cat([r.x for r in rows]), cat([r.y for r in rows]),
                    cat([r.hour for r in rows]), cat([r.spread for r in rows]),
                    cat([r.price for r in rows]))  # fmt: skip


def mlp_study(rows: list[SiteRows], out: Path) -> list[dict[str, object]]:
    """The MLP: local-only, FedAvg, FedProx and centralised, judged like the Ridge."""
    t = LocalTransport(rows)
    fedavg = run_mlp(t, t.ids(), Policy(min_clients=3), MlpSpec())
    fedavg.write(out / "mlp-fedavg")
    fedprox = run_mlp(t, t.ids(), Policy(min_clients=3), MlpSpec(mu=FEDPROX_MU))
    fedprox.write(out / "mlp-fedprox")
    central_t = LocalTransport([pooled_site(rows)])
    central = run_mlp(central_t, [0], Policy(min_clients=1), MlpSpec())
    central.write(out / "mlp-centralised")
    results: list[dict[str, object]] = []
    for k, site in enumerate(SITES):
        if not site.judged:
            continue
        solo_t = LocalTransport([rows[k]])
        run_mlp(solo_t, [0], Policy(min_clients=1), MlpSpec()).write(out / f"mlp-local-{site.name}")
        dirs = {"MLP local-only": out / f"mlp-local-{site.name}",
                "MLP FedAvg": out / "mlp-fedavg",
                f"MLP FedProx (mu {FEDPROX_MU:g})": out / "mlp-fedprox",
                "MLP centralised": out / "mlp-centralised"}  # fmt: skip
        for label, d in dirs.items():
            r = judge(site, d, label)
            print(json.dumps(r), file=sys.stderr)
            results.append(r)
    return results


def print_table(results: list[dict[str, object]], diff: float) -> None:
    """The Markdown table of docs/benchmarks.md."""
    print(
        "| site (own history) | model | MAE USD/MWh | capture vs daily perfect | net revenue USD |"
    )
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['site']} | {r['model']} | {r['mae']:.2f} | {float(r['capture']):.1%} "  # type: ignore[arg-type]
              f"| {float(r['net_revenue']):,.0f} |")  # type: ignore[arg-type]  # fmt: skip
    print(f"\nmax |federated - centralised| coefficient: {diff:.1e}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("federated-results"))
