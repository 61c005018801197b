"""The dashboard in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by
Playwright against `bessai run` on the simulator. Logs in, watches the SOC move over the live
stream, meets a 403 with a read key, overrides with a control key, and leaves a screenshot in
test-artifacts/."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bessai.optimize import Bands
from bessai.simulator.server import SimulatorServer

from .browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS, needs_chromium
from .conftest import RunningGateway, make_plan

pytestmark = needs_chromium


def _soc(text: str) -> float:
    match = re.fullmatch(r"(\d+\.\d) %", text)
    assert match, f"SOC shows {text!r}"
    return float(match.group(1))


def test_dashboard_logs_in_shows_live_soc_and_enforces_roles(
    page: object, running_gateway: RunningGateway
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))

    page.goto(running_gateway.base_url + "/")
    page.fill("#key", "bess_wrong")
    page.click("#login-form button")
    expect(page.locator("#login-error")).to_contain_text("key not recognized (401)")

    # A read key: everything visible, control refused with a clear 403.
    page.fill("#key", running_gateway.keys["read"])
    page.click("#login-form button")
    expect(page.locator("#who")).to_have_text("read-key (read)")
    expect(page.locator("#conn")).to_have_text("live")
    expect(page.locator("#soc")).to_have_text(re.compile(r"\d+\.\d %"))
    expect(page.locator("#safety")).to_have_text(re.compile("normal|limited"))
    expect(page.locator("#schedule-caption")).to_contain_text("USD/MWh")
    expect(page.locator("#schedule-table tr.active")).to_have_count(1)
    page.click("#override-form button[type=submit]")
    expect(page.locator("#control-result")).to_contain_text("403 Forbidden")
    expect(page.locator("#control-result")).to_contain_text("need a control key")

    # A control key: charge hard; the guard clamps it and the SOC rises on the live stream.
    page.click("#logout")
    page.fill("#key", running_gateway.keys["control"])
    page.click("#login-form button")
    expect(page.locator("#who")).to_have_text("control-key (control)")
    expect(page.locator("#soc")).to_have_text(re.compile(r"\d+\.\d %"))
    before = _soc(page.inner_text("#soc"))
    page.fill("#ov-setpoint", "9000")
    page.fill("#ov-duration", "120")
    page.fill("#ov-reason", "browser test")
    page.click("#override-form button[type=submit]")
    expect(page.locator("#control-result")).to_contain_text("clamped: 5.00 kW")
    expect(page.locator("#controller")).to_have_text("manual", timeout=10_000)
    expect(page.locator("#controller-reason")).to_contain_text("browser test (by control-key)")
    page.wait_for_function(
        "before => parseFloat(document.getElementById('soc').textContent) > before + 0.3",
        arg=before,
        timeout=20_000,
    )
    expect(page.locator("#commands tbody")).to_contain_text(
        "api: override 9000 W for 120 s: browser test (key 'control-key')"
    )
    page.click("#ov-clear")
    expect(page.locator("#control-result")).to_contain_text("override cleared")

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    # The browser reports the 401 and 403 the test provoked; anything else is a page fault.
    expected = re.compile(r"status of 40[13] \((Unauthorized|Forbidden)\)")
    assert [e for e in errors if not expected.search(e)] == []
    assert all(url.startswith(running_gateway.base_url) for url in requests), requests


async def test_dashboard_draws_the_schedule_forecast_band_and_alerts(
    make_api: Any, sim: SimulatorServer
) -> None:
    """In-process gateway with a plan, a price forecast and an alert: the page draws the slots
    and the p10-p90 band, lists the plan's reasons and shows the alert."""
    from playwright.async_api import async_playwright, expect

    from bessai.runtime.http import serve_http

    api = await make_api()
    gateway = api.gateway
    site = gateway.sites["t1"]
    now = datetime.now(UTC)
    site.schedule.load(
        make_plan(
            [2000, 0, -3000, -1500],
            [41.0, 60.0, 138.0, 120.0],
            [
                "charge: CMg 41 USD/MWh, cheapest quarter",
                "hold",
                "discharge: evening peak",
                "discharge",
            ],
        ),
        now - timedelta(minutes=1),
        now,
    )
    site.schedule.bands = Bands(  # type: ignore[attr-defined]
        p10=[29.0, 42.0, 97.0, 84.0], p50=[41.0, 60.0, 138.0, 120.0], p90=[57.0, 84.0, 193.0, 168.0]
    )
    api.monitor.alerts.report_anomaly(
        "t1", 4.2, 3.0, "battery temperature rises faster than modelled"
    )
    sim.device.overrides["alarm_2"] = 1 << 9  # Battery Abnormal (2068, minor): blocking
    http, port = await serve_http(api.monitor, "127.0.0.1", 0)
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 1300})
            await page.goto(f"http://127.0.0.1:{port}/")
            await page.fill("#key", api.keys["read"])
            await page.click("#login-form button")
            await expect(page.locator("#schedule-table tbody tr")).to_have_count(4)
            await expect(page.locator("#schedule-table")).to_contain_text("evening peak")
            await expect(page.locator("#schedule-caption")).to_contain_text("following the plan")
            await expect(page.locator("#schedule rect")).to_have_count(4)
            await expect(page.locator("#schedule polygon")).to_have_count(1)  # the p10-p90 band
            await expect(page.locator("#schedule-caption")).to_contain_text(
                "line: price 29–193 price · band: forecast p10–p90"
            )
            await expect(page.locator("#schedule polyline.price")).to_have_count(1)
            await expect(page.locator("#schedule-table tr.active")).to_contain_text("cheapest")
            # The alarm itself and the guard's latch on it; critical ones are listed first.
            await expect(page.locator("#alerts li.critical")).to_have_count(2)
            await expect(page.locator("#alerts")).to_contain_text(
                "CRITICAL · device alarm: Battery Abnormal (2068, minor)"
            )
            await expect(page.locator("#alerts")).to_contain_text(
                "CRITICAL · guard blocks charging and discharging: device alarm: Battery Abnormal"
            )
            await expect(page.locator("#alerts")).to_contain_text("WARNING · anomaly score 4.2")
            await expect(page.locator("#alerts")).to_contain_text(
                "WARNING · schedule asked for 2000 W; blocked: device alarm"
            )
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "dashboard-schedule.png"), full_page=True)
            await browser.close()
    finally:
        http.should_exit = True
        await http.shutdown()


MARKUP = "<img src=x onerror=alert(1)> [bold]"


async def test_dashboard_shows_site_time_and_markup_literally(make_api: Any) -> None:
    """A site in Asia/Kolkata (UTC+5:30, a zone with half hours) named with markup, an override
    reason and an alert with markup: the page names the zone, converts every time into it, and
    shows the texts as text (no element made, no script run)."""
    import httpx
    from playwright.async_api import async_playwright, expect

    from bessai.observe.alerts import Severity
    from bessai.runtime.http import serve_http

    api = await make_api(name=MARKUP, timezone="Asia/Kolkata")
    api.monitor.alerts.report(
        "device_note", True, f"inverter says {MARKUP}", site="t1", severity=Severity.WARNING
    )
    zone = ZoneInfo("Asia/Kolkata")
    http, port = await serve_http(api.monitor, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 1100})
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: dialogs.append(dialog.message))
            await page.goto(base + "/")
            await page.fill("#key", api.keys["read"])
            await page.click("#login-form button")
            await expect(page.locator("#conn")).to_have_text("live")
            async with httpx.AsyncClient(base_url=base) as client:
                answer = await client.post(
                    "/api/v1/sites/t1/override",
                    json={"setpoint_w": 1000, "duration_s": 120, "reason": MARKUP},
                    headers=api.auth("control"),
                )
                assert answer.status_code == 200, answer.text
                until = datetime.fromisoformat(answer.json()["until_utc"]).astimezone(zone)
                audit = await client.get("/api/v1/audit?limit=20", headers=api.auth("read"))
            # The override's own audit row (the cycle may already have logged its decision).
            override_row = next(row for row in audit.json()["items"] if row["controller"] == "api")
            row_ts = datetime.fromisoformat(override_row["ts"]).astimezone(zone)

            await expect(page.locator("#capacity")).to_have_text(f"{MARKUP} · 15 kWh")
            await expect(page.locator("#controller-reason")).to_contain_text(
                f"{MARKUP} (by control-key)"
            )
            await expect(page.locator("#alerts")).to_contain_text(f"inverter says {MARKUP}")
            await expect(page.locator("#commands tbody")).to_contain_text(
                f"api: override 1000 W for 120 s: {MARKUP} (key 'control-key')", timeout=10_000
            )
            # Times: the site's wall clock, the zone named, no UTC left.
            label = "Asia/Kolkata (UTC+5:30)"
            clock = await page.inner_text("#clock")
            match = re.fullmatch(r"(\d\d):(\d\d):(\d\d) " + re.escape(label), clock)
            assert match, clock
            now = datetime.now(zone)
            shown_s = int(match[1]) * 3600 + int(match[2]) * 60 + int(match[3])
            now_s = now.hour * 3600 + now.minute * 60 + now.second
            assert min(abs(shown_s - now_s), 86_400 - abs(shown_s - now_s)) <= 5
            await expect(page.locator("#override")).to_have_text(
                f"override 1.00 kW until {until:%H:%M:%S} UTC+5:30"
            )
            await expect(
                page.locator("#commands tbody tr", has_text="api: override 1000 W").first
            ).to_contain_text(f"{row_ts:%Y-%m-%d %H:%M:%S}")
            await expect(page.locator("#commands-time")).to_have_text("time (Asia/Kolkata)")
            await expect(page.locator("#history-caption")).to_contain_text(f"times in {label}")
            assert "UTC)" not in await page.inner_text("main")

            assert await page.locator("img").count() == 0
            assert dialogs == []
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "dashboard-zone-markup.png"), full_page=True)
            await browser.close()
    finally:
        http.should_exit = True
        await http.shutdown()


async def test_dashboard_says_why_the_gateway_refuses_the_stream(make_api: Any) -> None:
    """All live-stream slots taken (api.max_streams): the page says the gateway refused the
    stream and why, and goes live by itself once a slot is free."""
    import httpx
    from playwright.async_api import async_playwright, expect

    from bessai.runtime.http import serve_http

    api = await make_api(api={"max_streams": 1})
    http, port = await serve_http(api.monitor, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    try:
        async with (
            httpx.AsyncClient(base_url=base, timeout=30) as client,
            async_playwright() as pw,
        ):
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 1100})
            async with client.stream("GET", "/api/v1/events", headers=api.auth("read")) as held:
                assert held.status_code == 200
                await page.goto(base + "/")
                await page.fill("#key", api.keys["read"])
                await page.click("#login-form button")
                await expect(page.locator("#conn")).to_have_text("offline")
                await expect(page.locator("#banner")).to_contain_text(
                    "the gateway refused the live stream (503: 1 live streams already open)"
                )
            await expect(page.locator("#conn")).to_have_text("live", timeout=15_000)
            await expect(page.locator("#banner")).to_be_hidden()
            await expect(page.locator("#soc")).to_have_text(re.compile(r"\d+\.\d %"))
            await browser.close()
    finally:
        http.should_exit = True
        await http.shutdown()
