"""`bessai carbon ...` on real data: the country table, the CMg-derived marginal factor, and a
report that keeps each method apart."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bessai.cli import app
from bessai.market.prices import load_prices
from tests.conftest import DATA

runner = CliRunner()
CRUCERO = DATA / "cen_cmg_crucero220_2019-2023.csv"


def _json(*args: str | Path) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)  # type: ignore[no-any-return]


def test_factors_lists_every_country_and_details_one() -> None:
    result = runner.invoke(app, ["carbon", "factors", "--json"])
    assert result.exit_code == 0
    assert len(json.loads(result.output)) == 213
    chile = _json("carbon", "factors", "CHL", "--json")
    assert chile["average_g_kwh"] == 291.113
    assert next(b["g_kwh"] for b in chile["cmg_bands"]) == 0.0


def test_marginal_writes_the_hourly_series(tmp_path: Path) -> None:
    out = tmp_path / "marginal.csv"
    doc = _json("carbon", "marginal", "--prices", CRUCERO, "--out", out, "--json")
    frame = pd.read_csv(out)
    assert len(frame) == doc["steps"] == 43_824
    assert sum(b["share_pct"] for b in doc["bands"]) == pytest.approx(100.0, abs=0.05)
    assert frame["timestamp"].iloc[0] == "2019-01-01T03:00:00Z"  # 00:00-01:00 Santiago (UTC-3)


def _flows_csv(path: Path) -> float:
    """A week of Crucero 2023 with 5 kW charging in the 4 cheapest hours a day and 4.5 kW back
    in the 4 dearest; returns the charged energy."""
    prices = load_prices(CRUCERO).prices["2023-03-01":"2023-03-07"]  # type: ignore[misc]
    kw = np.zeros(len(prices))
    soc = np.full(len(prices), 20.0)
    for day in range(len(prices) // 24):
        block = slice(24 * day, 24 * day + 24)
        order = np.argsort(prices.to_numpy()[block], kind="stable") + 24 * day
        kw[order[:4]], kw[order[-4:]] = 5.0, -4.5
    soc = 20.0 + np.concatenate([[0.0], np.cumsum(np.where(kw > 0, kw * 0.95, kw / 0.95))])[:-1]
    pd.DataFrame(
        {
            "timestamp": prices.index.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "battery_kw": kw,
            "soc_pct": np.clip(soc, 0, 100),
        }
    ).to_csv(path, index=False)
    return float(kw[kw > 0].sum())


def test_report_keeps_methods_apart_and_adds_the_embodied_share(tmp_path: Path) -> None:
    flows = tmp_path / "flows.csv"
    charged = _flows_csv(flows)
    doc = _json(
        "carbon",
        "report",
        "--flows",
        flows,
        "--marginal-prices",
        CRUCERO,
        "--capacity-kwh",
        "30",
        "--per",
        "day",
        "--json",
    )
    average, marginal = doc["methods"]
    assert (average["method"], marginal["method"]) == ("location-average", "location-marginal")
    losses = charged * (1 - 0.9)
    assert average["net_kg"] == pytest.approx(losses * 291.113 / 1000, abs=2e-3)
    assert marginal["saved_kg"] > 0
    assert len(average["per"]) == 7 or len(average["per"]) == 8  # local days of the week
    assert doc["embodied"]["total_kg"] == 3000.0
    assert doc["embodied"]["share_kg"] > 0


def test_report_without_flows_is_a_one_line_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bessai.cli", "carbon", "report"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "--lake DIR --site ID or --flows CSV" in done.stderr
