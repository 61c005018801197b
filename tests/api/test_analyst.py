"""The analyst routes (`/api/v1/analyst/...`) on the standalone analyst app: their figures equal
`bessai backtest` and `bessai optimize` for the same inputs; ranges are jobs with progress,
cached by their inputs; a read key suffices."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from bessai.api.analyst import MAX_PENDING, BusyError, Jobs, ResultCache
from bessai.api.analyst_app import create_analyst_app, make_analyst
from bessai.api.keys import KeyStore
from bessai.cli import app as cli
from bessai.config import ApiConfig

from .conftest import make_keys

CRUCERO = "cen_cmg_crucero220_2019-2023.csv"
VALDIVIA = "cen_cmg_valdivia220_2023.tsv"
runner = CliRunner()


@pytest.fixture
async def client(data_dir: Path, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    keys = make_keys(tmp_path / "keys.json")
    analyst = make_analyst([data_dir / CRUCERO, data_dir / VALDIVIA], [])
    app = create_analyst_app(
        ApiConfig(max_body_bytes=2_000_000), KeyStore(tmp_path / "keys.json"), analyst
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers={"X-API-Key": keys["read"]}
    ) as c:
        yield c


def _cli(*args: str) -> dict[str, Any]:
    result = runner.invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def _battery_args(battery: dict[str, float]) -> list[str]:
    return ["--power-kw", str(battery["power_kw"]), "--capacity-kwh", str(battery["capacity_kwh"])]


async def _finish(client: httpx.AsyncClient, job: dict[str, Any]) -> dict[str, Any]:
    for _ in range(600):
        if job["state"] in ("done", "failed"):
            break
        await asyncio.sleep(0.1)
        answer = await client.get(f"/api/v1/analyst/jobs/{job['id']}")
        job = answer.json()
    assert job["state"] == "done", job
    return job


SUMMARY_KEYS = {
    "revenue": "revenue",
    "degradation_cost": "wear_cost",
    "net_revenue": "net_revenue",
    "perfect_daily_net": "perfect_daily_net",
    "whole_period_net": "whole_period_net",
    "capture_vs_daily_perfect": "capture_vs_daily_perfect",
    "equivalent_full_cycles": "equivalent_full_cycles",
    "days": "days",
}


def _same_summary(cli_doc: dict[str, Any], kpis: dict[str, Any]) -> None:
    for cli_key, api_key in SUMMARY_KEYS.items():
        assert kpis[api_key] == cli_doc[cli_key], (cli_key, kpis[api_key], cli_doc[cli_key])


BIG = {"power_kw": 1000, "capacity_kwh": 4000}
SMALL = {"power_kw": 500, "capacity_kwh": 1000}


@pytest.mark.parametrize(
    ("series", "file", "day", "battery"),
    [
        ("cen-cmg-crucero220-2019-2023", CRUCERO, "2023-06-14", BIG),
        ("cen-cmg-valdivia220-2023", VALDIVIA, "2023-03-05", SMALL),
    ],
)
async def test_day_equals_bessai_optimize_and_backtest(
    client: httpx.AsyncClient,
    data_dir: Path,
    series: str,
    file: str,
    day: str,
    battery: dict[str, float],
) -> None:
    prices = ["--prices", str(data_dir / file), "--from", day, "--to", day]
    # Perfect foresight: the day's plan is `bessai optimize` on the day's real prices.
    body = {"series": series, "forecaster": "perfect", "day": day, "battery": battery}
    answer = await client.post("/api/v1/analyst/day", json=body)
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    plan = _cli("optimize", *prices, *_battery_args(battery))
    assert doc["plan_revenue"] == round(plan["revenue"], 2)
    assert len(doc["slots"]) == len(plan["schedule"]) == 24
    for slot, step in zip(doc["slots"], plan["schedule"], strict=True):
        assert slot["start_utc"] == step["timestamp"]
        assert slot["planned_kw"] == round(step["charge_kw"] - step["discharge_kw"], 3)
        assert slot["planned_soc_pct"] == step["soc_pct"]
        assert slot["reason"] == step["reason"]
    _same_summary(_cli("backtest", *prices, "--forecaster", "perfect", *_battery_args(battery)),
                  doc["kpis"])  # fmt: skip

    # A forecaster: the day's figures are `bessai backtest` for that day, with its bands.
    body["forecaster"] = "week-mean"
    doc = (await client.post("/api/v1/analyst/day", json=body)).json()
    bt = _cli("backtest", *prices, "--forecaster", "week-mean", *_battery_args(battery))
    _same_summary(bt, doc["kpis"])
    first = doc["slots"][0]
    assert first["p10"] <= first["p50"] <= first["p90"]
    assert 0 < doc["kpis"]["mean_confidence"] <= 1
    assert {s["action"] for s in doc["slots"]} <= {"charge", "discharge", "idle"}


async def test_month_backtest_is_a_job_equal_to_bessai_backtest_and_cached(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    battery = {"power_kw": 500, "capacity_kwh": 2000}
    body = {
        "series": "cen-cmg-valdivia220-2023",
        "forecaster": "rule",
        "first_day": "2023-05-01",
        "last_day": "2023-05-31",
        "battery": battery,
    }
    answer = await client.post("/api/v1/analyst/backtests", json=body)
    assert answer.status_code == 202, answer.text
    job = await _finish(client, answer.json())
    assert (job["done"], job["total"]) == (31, 31)
    result = job["result"]
    bt = _cli(
        "backtest", "--prices", str(data_dir / VALDIVIA), "--from", "2023-05-01",
        "--to", "2023-05-31", "--forecaster", "rule", *_battery_args(battery),
    )  # fmt: skip
    _same_summary(bt, result["kpis"])
    assert len(result["curve"]) == 31
    assert result["curve"][-1]["cumulative_net"] == pytest.approx(bt["net_revenue"], abs=0.02)
    assert result["curve"][-1]["cumulative_perfect"] == pytest.approx(
        bt["perfect_daily_net"], abs=0.02
    )
    assert len(result["slots"]) == 31 * 24

    # The same inputs again: the finished job at once, from the cache.
    again = await client.post("/api/v1/analyst/backtests", json=body)
    assert again.status_code == 200
    assert again.json()["cached"] is True
    assert again.json()["result"] == result


async def test_sweep_equals_one_backtest_per_size(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    sizes = [{"power_kw": 1000, "capacity_kwh": 1000}, {"power_kw": 1000, "capacity_kwh": 4000}]
    body = {
        "series": "cen-cmg-crucero220-2019-2023",
        "forecaster": "week-mean",
        "first_day": "2023-02-01",
        "last_day": "2023-02-07",
        "sizes": sizes,
    }
    answer = await client.post("/api/v1/analyst/sweeps", json=body)
    job = await _finish(client, answer.json())
    assert job["total"] == 14
    points = job["result"]["points"]
    assert [p["duration_h"] for p in points] == [1.0, 4.0]
    for size, point in zip(sizes, points, strict=True):
        bt = _cli(
            "backtest", "--prices", str(data_dir / CRUCERO), "--from", "2023-02-01",
            "--to", "2023-02-07", "--forecaster", "week-mean", *_battery_args(size),
        )  # fmt: skip
        _same_summary(bt, point["kpis"])
    assert points[1]["kpis"]["net_revenue"] > points[0]["kpis"]["net_revenue"]


async def test_catalog_upload_and_errors(client: httpx.AsyncClient, data_dir: Path) -> None:
    catalog = (await client.get("/api/v1/analyst/catalog")).json()
    ids = [s["id"] for s in catalog["series"]]
    assert ids == ["crucero-2023", "cen-cmg-crucero220-2019-2023", "cen-cmg-valdivia220-2023"]
    assert catalog["forecasters"][:4] == ["perfect", "week-mean", "persistence", "rule"]

    content = (data_dir / VALDIVIA).read_text(encoding="utf-8")
    up = await client.post(
        "/api/v1/analyst/series", json={"name": "valdivia.tsv", "content": content}
    )
    assert up.status_code == 200, up.text
    assert up.json()["id"] == "upload-valdivia"
    assert up.json()["first_day"] == "2023-01-01"
    bad = await client.post("/api/v1/analyst/series", json={"name": "x.csv", "content": "a,b\n"})
    assert bad.status_code == 400
    assert "x.csv" in bad.json()["detail"]

    day = {"series": "upload-valdivia", "forecaster": "week-mean", "day": "2024-02-01"}
    outside = await client.post("/api/v1/analyst/day", json=day)
    assert outside.status_code == 400
    assert "2023-01-01 .. 2023-12-31" in outside.json()["detail"]
    day["series"] = "nowhere"
    assert (await client.post("/api/v1/analyst/day", json=day)).status_code == 404
    day.update(series="upload-valdivia", day="2023-01-01")  # no history before the first day
    first = await client.post("/api/v1/analyst/day", json=day)
    assert first.status_code == 400, first.text
    day.update(day="2023-02-01", forecaster="oracle")
    unknown = await client.post("/api/v1/analyst/day", json=day)
    assert unknown.status_code == 400
    assert "unknown forecaster 'oracle'" in unknown.json()["detail"]
    assert (await client.get("/api/v1/analyst/jobs/nope")).status_code == 404

    spec = (await client.get("/api/v1/openapi.json")).json()
    assert "/api/v1/analyst/backtests" in spec["paths"]
    no_key = await client.get("/api/v1/analyst/catalog", headers={"X-API-Key": ""})
    assert no_key.status_code == 401


async def test_trained_model_directory_is_a_forecaster_equal_to_forecast_eval(
    data_dir: Path, tmp_path: Path
) -> None:
    prices = ["--prices", str(data_dir / VALDIVIA)]
    model = tmp_path / "models" / "ridge-valdivia"
    trained = runner.invoke(
        cli, ["forecast", "train", *prices, "--kind", "ridge", "--out", str(model),
              "--from", "2023-01-01", "--to", "2023-03-31"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    keys = make_keys(tmp_path / "keys.json")
    analyst = make_analyst([data_dir / VALDIVIA], [tmp_path / "models"])
    app = create_analyst_app(ApiConfig(), KeyStore(tmp_path / "keys.json"), analyst)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": f"Bearer {keys['read']}"},
    ) as client:
        catalog = (await client.get("/api/v1/analyst/catalog")).json()
        assert "model:ridge-valdivia" in catalog["forecasters"]
        body = {"series": "cen-cmg-valdivia220-2023", "forecaster": "model:ridge-valdivia",
                "day": "2023-06-14"}  # fmt: skip
        answer = await client.post("/api/v1/analyst/day", json=body)
        assert answer.status_code == 200, answer.text
        doc = answer.json()
    evaluated = _cli("forecast", "eval", "--model", str(model), *prices,
                     "--from", "2023-06-14", "--to", "2023-06-14")  # fmt: skip
    row = next(r for r in evaluated["results"] if r["strategy"] == "ridge")
    for key in ("net_revenue", "perfect_daily_net", "capture_vs_daily_perfect", "days"):
        assert doc["kpis"][key] == row[key], key
    assert all(s["p10"] <= s["p50"] <= s["p90"] for s in doc["slots"])


async def test_the_gateway_serves_the_analyst_page_and_routes(
    make_api: Callable[..., Any],
) -> None:
    api = await make_api()
    async with api.client(headers=api.auth("read")) as client:
        catalog = (await client.get("/api/v1/analyst/catalog")).json()
        assert catalog["gateway"] is True
        assert [s["id"] for s in catalog["series"]] == ["crucero-2023"]
        page = await client.get("/analyst")
        assert page.status_code == 200
        assert 'src="/static/analyst.js"' in page.text
        day = {"series": "crucero-2023", "forecaster": "persistence", "day": "2023-06-14"}
        answer = await client.post("/api/v1/analyst/day", json=day)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["slots"]) == 24
        spec = (await client.get("/api/v1/openapi.json")).json()
        assert "/api/v1/analyst/sweeps" in spec["paths"]
        dashboard = await client.get("/")
        assert 'href="/analyst"' in dashboard.text


def test_jobs_are_bounded_deduplicated_and_cached() -> None:
    release = threading.Event()
    jobs = Jobs(ResultCache(size=8))

    def slow(progress: Any) -> str:
        progress(0, 1)
        release.wait(10)
        progress(1, 1)
        return "result"

    first = jobs.submit("backtest", "k0", slow)
    assert jobs.submit("backtest", "k0", slow) is first  # the same inputs: the same job
    for i in range(1, MAX_PENDING):
        jobs.submit("backtest", f"k{i}", slow)
    with pytest.raises(BusyError, match="retry when one has finished"):
        jobs.submit("backtest", "one-too-many", slow)
    release.set()
    deadline = time.monotonic() + 10
    while first.state != "done":
        assert time.monotonic() < deadline, first
        time.sleep(0.01)
    again = jobs.submit("backtest", "k0", slow)
    assert (again.state, again.cached, again.result) == ("done", True, "result")
    assert again.id != first.id


def test_analyst_serve_says_what_it_needs() -> None:
    no_keys = runner.invoke(cli, ["analyst", "serve"])
    assert no_keys.exit_code != 0
    assert "needs API keys" in str(no_keys.exception)
    no_file = runner.invoke(cli, ["analyst", "serve", "--dev", "--prices", "/nowhere.csv"])
    assert "/nowhere.csv: no such file or directory" in str(no_file.exception)
    wide = runner.invoke(cli, ["analyst", "serve", "--dev", "--host", "0.0.0.0"])
    assert "loopback only" in str(wide.exception)
