"""The analyst page's long answers, timed the way the page gets them: `bessai analyst serve` in
its own process, a POST that starts the job, then a poll every 300 ms (as analyst.js does)
until it is done. A year's back-test (Crucero 2023 and Valdivia 2023, week-mean, 1 MW / 4 MWh),
the same request again (the cache), one day (the day view) and a size sweep of 10 capacities
at 1 MW over Crucero 2023. Not in the default `make bench` run (about two minutes): run it
with `python -m bench analyst`."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx

from bench import DATA

POLL_S = 0.3  # analyst.js's POLL_MS
SWEEP_KWH = [500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server() -> Iterator[httpx.Client]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bessai.cli", "analyst", "serve", "--dev", "--port", str(port),
         "--prices", str(DATA / "cen_cmg_crucero220_2019-2023.csv"),
         "--prices", str(DATA / "cen_cmg_valdivia220_2023.tsv")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TMPDIR": tempfile.gettempdir()},
    )  # fmt: skip
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if client.get("/analyst").status_code == 200:
                    break
            time.sleep(0.1)
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=20)


def _job(client: httpx.Client, path: str, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """Seconds from the POST to the poll that finds the job done, and the job."""
    started = time.perf_counter()
    answer = client.post(path, json=body)
    while answer.status_code == 202:
        time.sleep(POLL_S)
        answer = client.get(f"/api/v1/analyst/jobs/{answer.json()['id']}")
    job: dict[str, Any] = answer.json()
    assert job["state"] == "done", job
    return time.perf_counter() - started, job


def _year(client: httpx.Client, series: str) -> dict[str, object]:
    body = {"series": series, "forecaster": "week-mean", "first_day": "2023-01-01",
            "last_day": "2023-12-31"}  # fmt: skip
    seconds, job = _job(client, "/api/v1/analyst/backtests", body)
    again, cached = _job(client, "/api/v1/analyst/backtests", body)
    kpis = job["result"]["kpis"]
    return {
        "days": kpis["days"],
        "net_revenue": kpis["net_revenue"],
        "capture_vs_daily_perfect": kpis["capture_vs_daily_perfect"],
        "seconds": round(seconds, 2),
        "cached_seconds": round(again, 3),
        "cached": cached["cached"],
    }


def run() -> dict[str, object]:
    with _server() as client:
        started = time.perf_counter()
        day = client.post(
            "/api/v1/analyst/day",
            json={"series": "cen-cmg-crucero220-2019-2023", "day": "2023-06-14"},
        )
        day_s = time.perf_counter() - started
        assert day.status_code == 200, day.text
        out: dict[str, object] = {"day_seconds": round(day_s, 3)}
        out["year_crucero_2023"] = _year(client, "cen-cmg-crucero220-2019-2023")
        out["year_valdivia_2023"] = _year(client, "cen-cmg-valdivia220-2023")
        sweep = {
            "series": "cen-cmg-crucero220-2019-2023", "forecaster": "week-mean",
            "first_day": "2023-01-01", "last_day": "2023-12-31",
            "sizes": [{"power_kw": 1000, "capacity_kwh": kwh} for kwh in SWEEP_KWH],
        }  # fmt: skip
        seconds, job = _job(client, "/api/v1/analyst/sweeps", sweep)
        out["sweep_10_sizes_crucero_2023"] = {
            "seconds": round(seconds, 1),
            "points": [
                {
                    "capacity_kwh": p["capacity_kwh"],
                    "net_revenue": p["kpis"]["net_revenue"],
                    "capture_vs_daily_perfect": p["kpis"]["capture_vs_daily_perfect"],
                    "equivalent_full_cycles": p["kpis"]["equivalent_full_cycles"],
                }
                for p in job["result"]["points"]
            ],
        }
    return out
