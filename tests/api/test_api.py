"""Every route and every authorization case, in-process against a gateway on the simulator."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from bessai.api.app import check_bind
from bessai.config import Config
from bessai.errors import ConfigError
from bessai.logging import configure_logging
from bessai.optimize import Bands
from bessai.simulator.server import SimulatorServer

from .conftest import ApiHarness, make_plan, wait_for

READ_ROUTES = [
    "/api/v1/version",
    "/api/v1/me",
    "/api/v1/health",
    "/api/v1/status",
    "/api/v1/sites/t1/status",
    "/api/v1/fleet",
    "/api/v1/sites/t1/schedule",
    "/api/v1/alerts",
    "/api/v1/audit",
    "/api/v1/vpp",
]
CONTROL_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/api/v1/sites/t1/override", {"setpoint_w": 1000, "duration_s": 30}),
    ("DELETE", "/api/v1/sites/t1/override", None),
    ("POST", "/api/v1/sites/t1/mode", {"mode": "safe"}),
    ("POST", "/api/v1/sites/t1/vpp/events/e1/opt-out", None),
]


@pytest.fixture
async def api(make_api: Callable[..., Any]) -> AsyncIterator[ApiHarness]:
    return await make_api()


async def test_every_route_needs_a_key(api: ApiHarness) -> None:
    async with api.client() as client:
        for path in [*READ_ROUTES, "/api/v1/events"]:
            r = await client.get(path)
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"] == "Bearer"
            assert "no API key" in r.json()["detail"]
        for method, path, body in CONTROL_ROUTES:
            r = await client.request(method, path, json=body)
            assert r.status_code == 401, path
        wrong = await client.get("/api/v1/status", headers={"X-API-Key": "bess_wrong"})
        assert wrong.status_code == 401
        assert wrong.json()["detail"] == "API key not recognized"
    assert api.gateway.sites["t1"].mode.value == "auto"


async def test_read_routes_answer_a_read_key_in_either_header(api: ApiHarness) -> None:
    async with api.client() as client:
        for path in READ_ROUTES:
            r = await client.get(path, headers=api.auth("read"))
            assert r.status_code == 200, (path, r.text)
            assert r.headers["cache-control"] == "no-store"
        r = await client.get("/api/v1/status", headers={"X-API-Key": api.keys["read"]})
        assert r.status_code == 200


async def test_read_key_on_control_routes_is_forbidden_and_changes_nothing(
    api: ApiHarness,
) -> None:
    site = api.gateway.sites["t1"]
    async with api.client() as client:
        for method, path, body in CONTROL_ROUTES:
            r = await client.request(method, path, json=body, headers=api.auth("read"))
            assert r.status_code == 403, path
            assert "has the read role; this needs control" in r.json()["detail"]
    assert site.override.setpoint_w is None
    assert site.mode.value == "auto"
    assert all(row["controller"] != "api" for row in api.gateway.audit.query(limit=100))


async def test_key_in_the_query_string_is_refused(api: ApiHarness) -> None:
    async with api.client() as client:
        r = await client.get("/api/v1/status", params={"api_key": api.keys["read"]})
    assert r.status_code == 400
    assert "only in a header" in r.json()["detail"]


async def test_repeated_failures_from_one_client_get_429(make_api: Callable[..., Any]) -> None:
    api = await make_api(api={"auth_failures_max": 3, "auth_failure_window_s": 60})
    async with api.client("127.0.0.5") as attacker, api.client("127.0.0.6") as other:
        for _ in range(3):
            r = await attacker.get("/api/v1/status", headers={"X-API-Key": "bess_guess"})
            assert r.status_code == 401
        locked = await attacker.get("/api/v1/status", headers=api.auth("read"))
        assert locked.status_code == 429  # even the right key: guessing must stop
        assert int(locked.headers["retry-after"]) >= 1
        assert "too many failed authentications" in locked.json()["detail"]
        fine = await other.get("/api/v1/status", headers=api.auth("read"))
        assert fine.status_code == 200


def test_failure_limiter_memory_is_bounded() -> None:
    from bessai.api.security import FailureLimiter

    limiter = FailureLimiter(max_failures=2, window_s=60, max_clients=100)
    for i in range(10_000):
        limiter.fail(f"10.0.{i // 256}.{i % 256}", now=float(i))
    assert len(limiter) == 100
    limiter.fail("a", now=0.0)
    limiter.fail("a", now=1.0)
    assert limiter.retry_after_s("a", now=2.0) == pytest.approx(58.0)
    assert limiter.retry_after_s("a", now=62.0) is None  # the window slid past both failures


async def test_oversized_bodies_get_413(api: ApiHarness) -> None:
    big = {"setpoint_w": 1000, "reason": "x" * 20_000}
    async with api.client() as client:
        r = await client.post("/api/v1/sites/t1/override", json=big, headers=api.auth("control"))
        assert r.status_code == 413
        assert "16384 byte limit" in r.json()["detail"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: streamed
            yield b'{"setpoint_w": 1000, "reason": "'
            for _ in range(40):
                yield b"y" * 1000
            yield b'"}'

        r = await client.post(
            "/api/v1/sites/t1/override",
            content=chunks(),
            headers={**api.auth("control"), "Content-Type": "application/json"},
        )
        assert r.status_code == 413
    assert api.gateway.sites["t1"].override.setpoint_w is None


async def test_page_size_is_capped(api: ApiHarness) -> None:
    async with api.client(headers=api.auth("read")) as client:
        r = await client.get("/api/v1/audit", params={"limit": 201})
        assert r.status_code == 422
        r = await client.get("/api/v1/alerts", params={"limit": 10_000})
        assert r.status_code == 422
        r = await client.get("/api/v1/audit", params={"limit": 200})
        assert r.status_code == 200


async def test_no_key_is_ever_logged(
    api: ApiHarness, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    configure_logging("debug", json_output=True)
    caplog.set_level(logging.DEBUG)
    wrong = "bess_thisIsAWrongKeyThatMustNotBeLogged0000000"
    async with api.client() as client:
        await client.get("/api/v1/status", headers=api.auth("read"))
        await client.get("/api/v1/status", headers={"X-API-Key": wrong})
        await client.post(
            "/api/v1/sites/t1/override", json={"setpoint_w": 500}, headers=api.auth("read")
        )
        await client.post(
            "/api/v1/sites/t1/override",
            json={"setpoint_w": 500, "duration_s": 5},
            headers=api.auth("control"),
        )
        await client.get("/api/v1/status", params={"token": api.keys["admin"]})
    await wait_for(lambda: api.gateway.sites["t1"].last.proposal.controller == "manual")  # type: ignore[union-attr]
    out = capsys.readouterr()
    # The test's own HTTP client logs the URLs it requests; only the server's lines count.
    server_lines = [r.getMessage() for r in caplog.records if not r.name.startswith("httpx")]
    logged = out.out + out.err + "\n".join(server_lines)
    assert "authentication failed" in logged  # the failures are logged ...
    assert "control-key" in logged  # ... and actions name the key's name
    for secret in [*api.keys.values(), wrong]:
        assert secret not in logged  # ... but never a key
    stored = (api.gateway.config.keys_file).read_text()
    audit_bytes = api.gateway.audit.path.read_bytes()
    for secret in api.keys.values():
        assert secret not in stored
        assert secret.encode() not in audit_bytes


async def test_status_fleet_version_health(api: ApiHarness) -> None:
    async with api.client(headers=api.auth("read")) as client:
        status = (await client.get("/api/v1/sites/t1/status")).json()
        fleet = (await client.get("/api/v1/fleet")).json()
        version = (await client.get("/api/v1/version")).json()
        health = await client.get("/api/v1/health")
        missing = await client.get("/api/v1/sites/nope/status")
        me = await client.get("/api/v1/me", headers=api.auth("control"))
    assert me.json() == {"name": "control-key", "role": "control"}
    assert 0 < status["soc_pct"] < 100
    assert status["battery_temp_c"] is not None
    for key in ("battery_power_w", "pv_power_w", "grid_power_w", "load_power_w"):
        assert key in status
    assert status["safety"]["state"] in ("normal", "limited")
    assert status["controller"]["name"] == "idle"
    assert status["controller"]["reason"].startswith("no controller asks for power")
    assert status["mode"] == "auto"
    assert status["override"] is None
    assert "anomaly_score" not in status  # no anomaly detector yet: absent, not a stub
    assert fleet["sites"] == 1
    assert fleet["capacity_kwh"] == 15
    assert fleet["weighted_soc_pct"] == pytest.approx(status["soc_pct"], abs=1)
    assert version["api"] == "v1"
    assert "t1" in health.json()["sites"]
    assert missing.status_code == 404
    assert missing.json()["detail"] == "unknown site 'nope'; sites: t1"


async def test_override_beyond_limits_is_clamped_and_the_device_never_sees_it(
    api: ApiHarness, sim: SimulatorServer
) -> None:
    writes: list[tuple[int, list[int]]] = []
    original = sim.device.write

    def recording(address: int, values: list[int]) -> int | None:
        writes.append((address, list(values)))
        return original(address, values)

    sim.device.write = recording  # type: ignore[method-assign]
    site = api.gateway.sites["t1"]
    async with api.client(headers=api.auth("control")) as client:
        r = await client.post(
            "/api/v1/sites/t1/override",
            json={"setpoint_w": 9000, "duration_s": 60, "reason": "fill up"},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["outcome"] == "clamped"
        assert body["applied"] is True
        assert body["requested_w"] == 9000
        assert body["setpoint_w"] == 5000
        assert body["binding_limit"].startswith("battery.max_charge_w")
        assert body["reason"].startswith("clamped by battery.max_charge_w")
        await wait_for(lambda: sim.device.get("forcible_command") == "charge")
        # The device is written mid-cycle; the cycle's record (what /status shows) lands at
        # its end, so a loaded machine can answer between the two.
        await wait_for(lambda: site.last is not None and site.last.proposal.controller == "manual")
        status = (await client.get("/api/v1/sites/t1/status")).json()
    assert status["controller"]["name"] == "manual"
    assert "fill up (by control-key)" in status["controller"]["reason"]
    assert status["override"]["setpoint_w"] == 5000
    charge_reg = sim.device.point("forcible_charge_power_w").address
    charge_writes = [v for a, v in writes if a == charge_reg]
    assert charge_writes
    assert sim.device.raw("forcible_charge_power_w") == 5000
    assert all((v[0] << 16 | v[1]) <= 5000 for v in charge_writes)  # never the unsafe 9000
    rows = api.gateway.audit.query(site="t1", limit=20)
    api_rows = [r for r in rows if r["controller"] == "api"]
    assert api_rows[0]["reason"] == "override 9000 W for 60 s: fill up (key 'control-key')"
    assert api_rows[0]["outcome"] == "clamped"
    assert api_rows[0]["setpoint_w"] == 5000
    assert any(r["controller"] == "manual" and r["setpoint_w"] == 5000 for r in rows)
    assert site.override.until is not None


async def test_blocked_override_is_refused_with_the_reason(
    api: ApiHarness, sim: SimulatorServer
) -> None:
    sim.device.plant.set_state(soc_pct=98.5)
    site = api.gateway.sites["t1"]
    await wait_for(lambda: "soc_high" in site.guard.latches)
    # The guard latches mid-cycle; the alert comes from the cycle's record, at its end.
    await wait_for(
        lambda: site.last is not None and any(x.name == "soc_high" for x in site.last.latches)
    )
    async with api.client(headers=api.auth("control")) as client:
        r = await client.post("/api/v1/sites/t1/override", json={"setpoint_w": 2000})
        too_long = await client.post(
            "/api/v1/sites/t1/override", json={"setpoint_w": -100, "duration_s": 7200}
        )
        alerts = (await client.get("/api/v1/alerts")).json()
    assert r.status_code == 409
    body = r.json()
    assert body["outcome"] == "blocked"
    assert body["applied"] is False
    assert body["setpoint_w"] == 0
    assert "SOC 98.5 % at or above 98 %" in body["reason"]
    assert site.override.setpoint_w is None
    assert sim.device.get("forcible_command") == "stop"
    assert too_long.status_code == 422
    (problem,) = too_long.json()["detail"]
    assert problem["loc"] == ["body", "duration_s"]
    assert "manual_override_max_s (3600 s)" in problem["msg"]
    limits = [a for a in alerts["active"] if a["kind"] == "safety_limit"]
    assert limits[0]["subject"] == "soc_high"
    assert limits[0]["severity"] == "info"


async def test_mode_and_clearing_the_override_are_audited(
    api: ApiHarness, sim: SimulatorServer
) -> None:
    site = api.gateway.sites["t1"]
    async with api.client(headers=api.auth("admin")) as client:
        r = await client.post(
            "/api/v1/sites/t1/override", json={"setpoint_w": -1500, "duration_s": 60}
        )
        assert r.json()["outcome"] == "allowed"
        await wait_for(lambda: sim.device.get("forcible_command") == "discharge")
        r = await client.delete("/api/v1/sites/t1/override")
        assert r.json() == {"site": "t1", "cleared": True}
        await wait_for(lambda: sim.device.get("forcible_command") == "stop")
        r = await client.post("/api/v1/sites/t1/mode", json={"mode": "safe"})
        assert r.json() == {"site": "t1", "mode": "safe", "previous": "auto"}
        await wait_for(lambda: site.last is not None and site.last.safety_state.value == "safe")
        blocked = await client.post("/api/v1/sites/t1/override", json={"setpoint_w": 1000})
        assert blocked.status_code == 409
        assert blocked.json()["reason"] == "fail-safe: operator set the site to safe mode"
        alerts = (await client.get("/api/v1/alerts")).json()["active"]
        failsafe = [a for a in alerts if a["kind"] == "failsafe"]
        assert failsafe
        assert failsafe[0]["severity"] == "warning"
        bad = await client.post("/api/v1/sites/t1/mode", json={"mode": "turbo"})
        assert bad.status_code == 422
        await client.post("/api/v1/sites/t1/mode", json={"mode": "auto"})
        page = (await client.get("/api/v1/audit", params={"limit": 2, "site": "t1"})).json()
        assert len(page["items"]) == 2
        assert page["next_offset"] == 2
        rows = (await client.get("/api/v1/audit", params={"limit": 200})).json()["items"]
        santiago = timezone(timedelta(hours=-3))
        recent = datetime.now(santiago) - timedelta(minutes=5)
        future = datetime.now(santiago) + timedelta(minutes=5)
        since_recent = await client.get("/api/v1/audit", params={"since": recent.isoformat()})
        since_future = await client.get("/api/v1/audit", params={"since": future.isoformat()})
        # Every row of the last minutes is found by `since` (the cycle may add one meanwhile).
        recent_ids = {row["id"] for row in since_recent.json()["items"]}
        assert {row["id"] for row in rows} <= recent_ids
        assert since_future.json()["items"] == []
    reasons = [row["reason"] for row in rows if row["controller"] == "api"]
    assert "mode safe -> auto (key 'admin-key')" in reasons
    assert "mode auto -> safe (key 'admin-key')" in reasons
    assert "override cleared (key 'admin-key')" in reasons
    assert site.mode.value == "auto"


async def test_schedule_shows_the_plan_and_no_forecast_without_one(api: ApiHarness) -> None:
    site = api.gateway.sites["t1"]
    async with api.client(headers=api.auth("read")) as client:
        empty = (await client.get("/api/v1/sites/t1/schedule")).json()
        now = datetime.now(UTC)
        plan = make_plan(
            [-2000, 1000, 0],
            [142.0, 41.0, 90.0],
            ["discharge: CMg 142 USD/MWh above the day's mean", "charge: cheap hour", "hold"],
        )
        site.schedule.load(plan, now - timedelta(minutes=5), now)
        shown = (await client.get("/api/v1/sites/t1/schedule")).json()
    assert empty["slots"] == []
    assert empty["following"] is False
    assert empty["why"].startswith("no plan")
    assert "forecast" not in empty
    assert "created_utc" not in empty
    assert shown["following"] is True
    assert shown["why"] == "discharge: CMg 142 USD/MWh above the day's mean"
    assert shown["status"] == "optimal"
    assert shown["net_revenue"] == 12.0
    slots = shown["slots"]
    assert [s["active"] for s in slots] == [True, False, False]
    assert [s["setpoint_w"] for s in slots] == [-2000, 1000, 0]
    assert [s["action"] for s in slots] == ["discharge", "charge", "hold"]
    assert slots[1]["price"] == 41.0
    assert slots[1]["reason"] == "charge: cheap hour"
    start = datetime.fromisoformat(slots[1]["start_utc"])
    assert datetime.fromisoformat(slots[1]["end_utc"]) - start == timedelta(minutes=15)
    assert "forecast" not in shown  # a point forecast has no bands
    # A probabilistic forecaster puts its quantile bands beside the plan; then they appear.
    site.schedule.bands = Bands(  # type: ignore[attr-defined]
        p10=[120.0, 30.0, 70.0], p50=[142.0, 41.0, 90.0], p90=[170.0, 55.0, 120.0]
    )
    async with api.client(headers=api.auth("read")) as client:
        banded = (await client.get("/api/v1/sites/t1/schedule")).json()
    assert [(f["p10"], f["p50"], f["p90"]) for f in banded["forecast"]] == [
        (120.0, 142.0, 170.0),
        (30.0, 41.0, 55.0),
        (70.0, 90.0, 120.0),
    ]
    site.schedule.load(plan, now - timedelta(hours=2), now - timedelta(hours=2))
    async with api.client(headers=api.auth("read")) as client:
        old = (await client.get("/api/v1/sites/t1/schedule")).json()
    assert old["following"] is False
    assert old["why"].startswith("idle: plan is 2:00:00")


async def test_schedule_of_the_real_optimizer(make_api: Callable[..., Any]) -> None:
    api = await make_api(
        optimizer={"enabled": True, "prices": "builtin:crucero-2023", "replay": True}
    )
    planner = api.gateway.planners["t1"]
    await wait_for(lambda: planner.plans > 0, timeout_s=30)
    async with api.client(headers=api.auth("read")) as client:
        shown = (await client.get("/api/v1/sites/t1/schedule")).json()
    assert shown["price_unit"] == "USD/MWh"
    assert shown["status"] in ("optimal", "feasible")
    assert len(shown["slots"]) >= 24
    assert sum(s["active"] for s in shown["slots"]) == 1
    assert all(s["reason"] for s in shown["slots"])


async def test_cors_is_closed_by_default_and_opens_to_listed_origins(
    make_api: Callable[..., Any],
) -> None:
    preflight = {
        "Origin": "https://ops.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    closed = await make_api()
    async with closed.client() as client:
        origin = {"Origin": "https://ops.example"}
        r = await client.get("/api/v1/status", headers={**closed.auth("read"), **origin})
        assert "access-control-allow-origin" not in r.headers
        r = await client.options("/api/v1/status", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
    opened = await make_api(api={"cors_origins": ["https://ops.example"]})
    async with opened.client() as client:
        r = await client.options("/api/v1/status", headers=preflight)
        assert r.headers["access-control-allow-origin"] == "https://ops.example"
        evil = {**preflight, "Origin": "https://evil.example"}
        other = await client.options("/api/v1/status", headers=evil)
        assert "access-control-allow-origin" not in other.headers


def test_cors_wildcard_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="'\\*' is not allowed"):
        Config.model_validate({"api": {"cors_origins": ["*"]}, "sites": [{"id": "a"}]})


async def test_dev_mode_needs_no_key_and_only_binds_to_loopback(
    make_api: Callable[..., Any],
) -> None:
    with pytest.raises(ValueError, match="must be a loopback address"):
        Config.model_validate(
            {"gateway": {"http_host": "0.0.0.0"}, "api": {"dev_mode": True}, "sites": [{"id": "a"}]}
        )
    dev = await make_api(api={"dev_mode": True})
    with pytest.raises(ConfigError, match=r"binds to loopback only, not '192\.0\.2\.1'"):
        check_bind(dev.gateway.config, "192.0.2.1")
    check_bind(dev.gateway.config, "127.0.0.1")
    async with dev.client() as client:
        r = await client.get("/api/v1/status")
        assert r.status_code == 200
        r = await client.post("/api/v1/sites/t1/mode", json={"mode": "manual"})
        assert r.status_code == 200
    rows = dev.gateway.audit.query(site="t1")
    assert rows[0]["reason"] == "mode auto -> manual (key 'dev-mode')"


async def test_revoked_key_stops_working_at_once(api: ApiHarness) -> None:
    from bessai.api.keys import KeyStore

    async with api.client() as client:
        assert (await client.get("/api/v1/fleet", headers=api.auth("read"))).status_code == 200
        KeyStore(api.gateway.config.keys_file).revoke("read-key")
        assert (await client.get("/api/v1/fleet", headers=api.auth("read"))).status_code == 401


async def test_dashboard_and_security_headers(api: ApiHarness) -> None:
    async with api.client() as client:
        page = await client.get("/")
        script = await client.get("/static/app.js")
        metrics = await client.get("/metrics")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert "//cdn" not in page.text
    assert "https://" not in page.text
    assert script.status_code == 200
    assert "https://" not in script.text
    assert 'bessai_alerts_active{severity="critical"}' in metrics.text


async def test_metrics_can_require_a_key(make_api: Callable[..., Any]) -> None:
    api = await make_api(api={"public_metrics": False})
    async with api.client() as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers=api.auth("read"))).status_code == 200


def test_openapi_is_published_under_the_version(api: ApiHarness) -> None:
    spec = api.app.openapi()
    assert spec["info"]["title"] == "open-bess-edge gateway"
    paths = set(spec["paths"])
    assert {p.replace("t1", "{site_id}") for p in READ_ROUTES} <= paths
    assert "/api/v1/sites/{site_id}/override" in paths
    assert all(p.startswith("/api/v1/") for p in paths)
    schemes = spec["components"]["securitySchemes"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schemes)


async def test_openapi_json_route(api: ApiHarness) -> None:
    async with api.client() as client:
        r = await client.get("/api/v1/openapi.json", headers=api.auth("read"))
        anonymous = await client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    assert "/api/v1/status" in r.json()["paths"]
    # The spec lists the control routes and their limits: it needs a read key like the rest.
    assert anonymous.status_code == 401
    assert "no API key" in anonymous.json()["detail"]


async def test_degraded_telemetry_is_an_alert(api: ApiHarness) -> None:
    from bessai.telemetry.health import TelemetryHealth

    gateway = api.monitor
    real = gateway.telemetry.health
    degraded = TelemetryHealth(
        "degraded",
        ("sink mqtt (127.0.0.1:1883): oldest unsent envelope is 300 s old (limit 120 s)",),
        outbox={"storage": "ok"},
    )
    gateway.telemetry.health = lambda: degraded  # type: ignore[method-assign]
    await wait_for(lambda: any(a.kind == "telemetry" for a in gateway.alerts.active()))
    async with api.client(headers=api.auth("read")) as client:
        active = (await client.get("/api/v1/alerts")).json()["active"]
    (alert,) = [a for a in active if a["kind"] == "telemetry"]
    assert alert["site"] is None
    assert alert["severity"] == "warning"
    assert "oldest unsent envelope is 300 s old" in alert["message"]
    gateway.telemetry.health = real  # type: ignore[method-assign]
    await wait_for(lambda: not any(a.kind == "telemetry" for a in gateway.alerts.active()))
