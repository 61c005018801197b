"""GET /api/v1/sites/{id}/history through the real HTTP server of `bessai run`: the read key,
the bounds on `minutes`, an unknown site, the published schema, and the points themselves."""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta
from typing import Any

import httpx

from .conftest import RunningGateway


def _history(gw: RunningGateway, query: str = "", key: str | None = "read") -> httpx.Response:
    headers = {"X-API-Key": gw.keys[key]} if key else {}
    return httpx.get(f"{gw.base_url}/api/v1/sites/demo/history{query}", headers=headers)


def _wait_for_points(gw: RunningGateway, count: int, timeout_s: float = 40.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = _history(gw).json()
        if len(body["points"]) >= count:
            return body
        assert time.monotonic() < deadline, f"only {len(body['points'])} points"
        time.sleep(0.5)


def test_history_needs_a_key_and_knows_its_sites(running_gateway: RunningGateway) -> None:
    assert _history(running_gateway, key=None).status_code == 401
    wrong = httpx.get(
        f"{running_gateway.base_url}/api/v1/sites/demo/history",
        headers={"X-API-Key": "bess_not_a_key"},
    )
    assert wrong.status_code == 401
    unknown = httpx.get(
        f"{running_gateway.base_url}/api/v1/sites/nowhere/history",
        headers={"X-API-Key": running_gateway.keys["read"]},
    )
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "unknown site 'nowhere'; sites: demo"}


def test_minutes_is_bounded(running_gateway: RunningGateway) -> None:
    for bad in ("0", "-5", "61", "1.5", "ten", "1e9"):
        answer = _history(running_gateway, f"?minutes={bad}")
        assert answer.status_code == 422, bad
        assert answer.json()["detail"][0]["loc"] == ["query", "minutes"]
    assert _history(running_gateway, "?minutes=60").status_code == 200
    assert _history(running_gateway, "?minutes=1").status_code == 200


def test_history_holds_the_sites_recent_cycles(running_gateway: RunningGateway) -> None:
    body = _wait_for_points(running_gateway, 8)
    assert body["site"] == "demo"
    assert body["timezone"] == "America/Santiago"
    assert body["minutes"] == 10
    assert body["resolution_s"] == 1.0  # 0.5 s cycles, kept one per second
    points = body["points"]
    times = [datetime.fromisoformat(p["ts_utc"]) for p in points]
    now = datetime.fromisoformat(body["now_utc"])
    assert times == sorted(times)
    assert now - timedelta(minutes=10) <= times[0]
    assert times[-1] <= now
    # One per second bucket at most (a safety-state change may add one).
    steady = [b for a, b in itertools.pairwise(points) if a["safety_state"] == b["safety_state"]]
    assert len({int(datetime.fromisoformat(p["ts_utc"]).timestamp()) for p in steady}) == len(
        steady
    )
    last = points[-1]
    assert set(last) == {
        "ts_utc", "soc_pct", "battery_power_w", "pv_power_w", "grid_power_w",
        "load_power_w", "setpoint_w", "safety_state",
    }  # fmt: skip
    assert 0 < last["soc_pct"] < 100
    assert last["safety_state"] in {"normal", "limited", "safe"}
    # The same values the status route shows for the latest cycle.
    status = httpx.get(
        f"{running_gateway.base_url}/api/v1/sites/demo/status",
        headers={"X-API-Key": running_gateway.keys["read"]},
    ).json()
    assert status["timezone"] == "America/Santiago"
    assert datetime.fromisoformat(status["ts_utc"]) >= times[-1]

    one = _history(running_gateway, "?minutes=1").json()
    start = datetime.fromisoformat(one["now_utc"]) - timedelta(minutes=1)
    assert all(datetime.fromisoformat(p["ts_utc"]) >= start for p in one["points"])


def test_history_is_in_the_published_spec(running_gateway: RunningGateway) -> None:
    spec = httpx.get(
        f"{running_gateway.base_url}/api/v1/openapi.json",
        headers={"X-API-Key": running_gateway.keys["read"]},  # the spec needs a read key
    ).json()
    op = spec["paths"]["/api/v1/sites/{site_id}/history"]["get"]
    minutes = next(p for p in op["parameters"] if p["name"] == "minutes")
    assert minutes["schema"]["minimum"] == 1
    assert minutes["schema"]["maximum"] == 60
    assert minutes["schema"]["default"] == 10
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/SiteHistoryOut"}
    # Every code the route can give, and none it cannot: any key may read, so no 403.
    assert set(op["responses"]) >= {"200", "401", "404", "422", "429"}
    assert "403" not in op["responses"]
    point = spec["components"]["schemas"]["HistoryPointOut"]["properties"]
    assert "battery_power_w" in point
    assert "safety_state" in point
    assert op["security"]  # a key is needed
