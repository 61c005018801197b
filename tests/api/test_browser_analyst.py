"""The analyst page in a real browser: headless Chromium driven by Playwright against `bessai
analyst serve` (its own process, no device). Crucero is named at start, Valdivia is loaded
through the page; two battery sizes, a day and a month each; the figures the page received
equal `bessai backtest` and `bessai optimize` for the same inputs; screenshots in
test-artifacts/ (looked at: analyst-*.png)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from bessai.cli import app as cli
from tests.process import stop_process, wait_ready

from .browser import screenshot, unexpected, watch_errors
from .conftest import free_port, make_keys

pytestmark = pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists() and not os.environ.get("CI"),
    reason="Debian chromium missing: run `make system-deps`",
)

CRUCERO = "cen_cmg_crucero220_2019-2023.csv"
VALDIVIA = "cen_cmg_valdivia220_2023.tsv"
SMALL = ["--power-kw", "500", "--capacity-kwh", "1000"]
runner = CliRunner()


@dataclass
class AnalystServer:
    base_url: str
    key: str


@contextlib.contextmanager
def analyst_process(data_dir: Path, root: Path) -> Iterator[AnalystServer]:
    """`bessai analyst serve` with a read key and the Crucero file, stopped on exit."""
    keys = make_keys(root / "keys.json")
    port = free_port()
    log_path = root / "analyst.log"
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bessai.cli", "analyst", "serve", "--port", str(port),
             "--keys-file", str(root / "keys.json"), "--prices", str(data_dir / CRUCERO)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(
            proc,
            lambda: httpx.get(f"{base_url}/analyst").status_code == 200,
            log_path,
            name="analyst serve",
            timeout_s=60,
        )
        yield AnalystServer(base_url, keys["read"])
    finally:
        stop_process(proc)


def _cli(*args: str) -> dict[str, Any]:
    result = runner.invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def _same(cli_doc: dict[str, Any], kpis: dict[str, Any]) -> None:
    pairs = {"net_revenue": "net_revenue", "degradation_cost": "wear_cost",
             "perfect_daily_net": "perfect_daily_net", "days": "days",
             "capture_vs_daily_perfect": "capture_vs_daily_perfect",
             "equivalent_full_cycles": "equivalent_full_cycles"}  # fmt: skip
    for cli_key, page_key in pairs.items():
        assert kpis[page_key] == cli_doc[cli_key], (cli_key, kpis[page_key], cli_doc[cli_key])


def _set_battery(page: Any, power_kw: int, capacity_kwh: int) -> None:
    page.fill("#power", str(power_kw))
    page.fill("#capacity", str(capacity_kwh))


def _show_day(page: Any, day: str) -> dict[str, Any]:
    page.fill("#day", day)
    with page.expect_response(lambda r: r.url.endswith("/analyst/day")) as answer:
        page.click("#show-day")
    doc: dict[str, Any] = answer.value.json()
    assert answer.value.status == 200, doc
    return doc


def _run_month(page: Any, first: str, last: str) -> dict[str, Any]:
    page.fill("#first", first)
    page.fill("#last", last)
    with page.expect_response(
        lambda r: "/analyst/jobs/" in r.url and r.status == 200, timeout=120_000
    ) as answer:
        page.click("#run-range")
    job: dict[str, Any] = answer.value.json()
    assert job["state"] == "done", job
    return dict(job["result"])


def test_analyst_page_crucero_and_valdivia_two_sizes_day_and_month(
    page: Any, data_dir: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    errors = watch_errors(page)
    polls: list[int] = []
    page.on("response", lambda r: polls.append(r.status) if "/analyst/jobs/" in r.url else None)
    with analyst_process(data_dir, tmp_path) as server:
        page.goto(server.base_url + "/")
        page.fill("#key", server.key)
        page.click("#login-form button")
        expect(page.locator("#who")).to_have_text("read-key (read)")
        expect(page.locator("#series option")).to_have_count(2)
        expect(page.locator("#to-dashboard")).to_be_hidden()  # no gateway behind this page

        # Crucero, 1 MW / 4 MWh, a day: the plan with perfect foresight is `bessai optimize`.
        page.select_option("#series", "cen-cmg-crucero220-2019-2023")
        _set_battery(page, 1000, 4000)
        page.select_option("#forecaster", "perfect")
        day = _show_day(page, "2023-06-14")
        crucero = ["--prices", str(data_dir / CRUCERO)]
        plan = _cli("optimize", *crucero, "--from", "2023-06-14", "--to", "2023-06-14")
        assert day["plan_revenue"] == round(plan["revenue"], 2)
        assert [s["reason"] for s in day["slots"]] == [s["reason"] for s in plan["schedule"]]
        expect(page.locator("#slots tbody tr")).to_have_count(24)
        page.click("[data-filter=charge]")
        charging = sum(1 for s in day["slots"] if s["action"] == "charge")
        expect(page.locator("#slots tbody tr")).to_have_count(charging)
        expect(page.locator("#slots tbody tr.act-charge")).to_have_count(charging)
        page.click("[data-filter=all]")

        # The same day with the week-mean forecast: `bessai backtest` for that day.
        page.select_option("#forecaster", "week-mean")
        day = _show_day(page, "2023-06-14")
        bt = _cli("backtest", *crucero, "--from", "2023-06-14", "--to", "2023-06-14",
                  "--forecaster", "week-mean")  # fmt: skip
        _same(bt, day["kpis"])
        expect(page.locator("#k-net")).to_have_text(f"{round(bt['net_revenue']):,} USD")
        assert page.locator("#chart-price polygon.band").count() == 1
        screenshot(page, "analyst-crucero-day-1mw-4mwh.png")

        # Crucero, a month, the other size.
        _set_battery(page, 500, 1000)
        month = _run_month(page, "2023-05-01", "2023-05-31")
        bt = _cli("backtest", *crucero, "--from", "2023-05-01", "--to", "2023-05-31",
                  "--forecaster", "week-mean", *SMALL)  # fmt: skip
        _same(bt, month["kpis"])
        expect(page.locator("#curve-card")).to_be_visible()
        expect(page.locator("#curve-caption")).to_contain_text("31 days")
        # The page followed the job's progress (202 while it ran), then hid the bar and said
        # it was done; on a quiet machine the month may be done by the first poll, which then
        # is the only one, and the bar never counted days.
        assert polls[-1] == 200, polls
        assert 202 in polls or polls == [200], polls
        if 202 in polls:
            assert " of 31 days" in page.locator("#progress-text").text_content()
        expect(page.locator("#study-result")).to_contain_text("done in")
        expect(page.locator("#progress-box")).to_be_hidden()
        screenshot(page, "analyst-crucero-month-500kw-1mwh.png")

        # Valdivia, loaded through the page (the API's upload), both sizes, a day and a month.
        page.set_input_files("#upload", str(data_dir / VALDIVIA))
        expect(page.locator("#study-result")).to_contain_text("loaded cen_cmg_valdivia220_2023.tsv")
        expect(page.locator("#series")).to_have_value("upload-cen-cmg-valdivia220-2023")
        valdivia = ["--prices", str(data_dir / VALDIVIA)]
        day = _show_day(page, "2023-03-05")
        bt = _cli("backtest", *valdivia, "--from", "2023-03-05", "--to", "2023-03-05",
                  "--forecaster", "week-mean", *SMALL)  # fmt: skip
        _same(bt, day["kpis"])
        screenshot(page, "analyst-valdivia-day-500kw-1mwh.png")

        _set_battery(page, 1000, 4000)
        page.select_option("#forecaster", "rule")
        month = _run_month(page, "2023-07-01", "2023-07-31")
        bt = _cli("backtest", *valdivia, "--from", "2023-07-01", "--to", "2023-07-31",
                  "--forecaster", "rule")  # fmt: skip
        _same(bt, month["kpis"])
        expect(page.locator("#kpi-title")).to_have_text("2023-07-01 .. 2023-07-31 · rule")

        # How big should it be: capacities at 1 MW over the month.
        page.fill("#sweep-values", "1000, 2000, 4000")
        with page.expect_response(
            lambda r: "/analyst/jobs/" in r.url and r.status == 200, timeout=120_000
        ) as answer:
            page.click("#run-sweep")
        points = answer.value.json()["result"]["points"]
        assert [p["capacity_kwh"] for p in points] == [1000, 2000, 4000]
        assert points[2]["kpis"] == month["kpis"] | {"mean_confidence": None}
        expect(page.locator("#sweep-table tbody tr")).to_have_count(3)
        screenshot(page, "analyst-valdivia-month-1mw-4mwh-sweep.png")
    assert not unexpected(errors), errors
