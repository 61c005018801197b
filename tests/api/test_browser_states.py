"""The dashboard tells the truth about what it shows, in a real browser (Debian's headless
Chromium driven by Playwright) against `bessai run` on the simulator: nothing before login and
nothing after logout; a gateway that stalls or stops shown as not live, and live again when it
is back; a setpoint that is empty or not a number refused in the page and never sent; the
recent minutes drawn at once after a reload. Every state leaves a screenshot in
test-artifacts/."""

from __future__ import annotations

import os
import re
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from .browser import needs_chromium, screenshot, unexpected, watch_errors
from .conftest import RunningGateway, free_port, gateway_process, write_gateway_config

pytestmark = needs_chromium

LIVE_VALUES = ("#soc", "#battery", "#pv", "#grid", "#load", "#temp", "#setpoint", "#controller")


def _login(page: Any, base_url: str, key: str) -> None:
    from playwright.sync_api import expect

    page.goto(base_url + "/")
    page.fill("#key", key)
    page.click("#login-form button")
    expect(page.locator("#conn")).to_have_text("live", timeout=15_000)
    expect(page.locator("#soc")).to_have_text(re.compile(r"\d+\.\d %"))


def _age_s(page: Any) -> float:
    text = page.inner_text("#age")
    match = re.fullmatch(r"(\d+\.\d) s", text)
    assert match, f"data age shows {text!r}"
    return float(match.group(1))


def _style(page: Any, element_id: str, prop: str) -> str:
    value: str = page.evaluate(
        "([id, prop]) => getComputedStyle(document.getElementById(id))[prop]", [element_id, prop]
    )
    return value


def _santiago_label() -> str:
    offset = datetime.now(ZoneInfo("America/Santiago")).utcoffset()
    assert offset is not None
    return f"America/Santiago (UTC{int(offset.total_seconds() // 3600):+d})"


def test_nothing_of_the_dashboard_shows_before_login(
    page: Any, running_gateway: RunningGateway
) -> None:
    from playwright.sync_api import expect

    errors = watch_errors(page)
    page.goto(running_gateway.base_url + "/")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#main")).to_be_hidden()
    assert _style(page, "main", "display") == "none"
    for selector in ("#soc", "#chart-soc", "#schedule", "#override-form", "#commands", "#banner"):
        expect(page.locator(selector)).to_be_hidden()
    for selector in ("#logout", "#clock", "#site"):
        expect(page.locator(selector)).to_be_hidden()
    expect(page.locator("#conn")).to_have_text("logged out")
    shown = page.inner_text("body")  # the rendered text only
    assert "State of charge" not in shown
    assert "Recent commands" not in shown
    screenshot(page, "dashboard-login.png")
    assert unexpected(errors) == []


def test_logout_clears_the_data_closes_the_stream_and_is_not_live(
    page: Any, running_gateway: RunningGateway
) -> None:
    from playwright.sync_api import expect

    errors = watch_errors(page)
    _login(page, running_gateway.base_url, running_gateway.keys["read"])
    expect(page.locator("#clock")).to_contain_text(_santiago_label())
    expect(page.locator("#commands tbody tr")).not_to_have_count(0)
    page.wait_for_function("document.getElementById('chart-soc').dataset.points > 0")
    closed: list[str] = []
    page.on("requestfailed", lambda r: closed.append(r.url))
    after: list[str] = []

    page.click("#logout")
    page.on("request", lambda r: after.append(r.url))
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#main")).to_be_hidden()
    expect(page.locator("#conn")).to_have_text("logged out")
    assert "on" not in (page.get_attribute("#conn", "class") or "").split()
    for selector in (*LIVE_VALUES, "#safety", "#cycle", "#age"):
        assert page.text_content(selector) == "–", selector
    assert page.text_content("#who") == ""
    assert page.text_content("#capacity") == ""
    assert page.get_attribute("#chart-soc", "data-points") == "0"
    assert page.get_attribute("#chart-power", "data-points") == "0"
    assert page.locator("#commands tbody tr").count() == 0
    assert page.locator("#schedule-table tbody tr").count() == 0
    assert page.locator("#alerts li").all_inner_texts() == ["none"]
    assert page.evaluate("sessionStorage.getItem('bessai.key')") is None
    # Longer than the stream's 2 s retry and the 5 s refresh: nothing asks the gateway again.
    page.wait_for_timeout(6_000)
    assert f"{running_gateway.base_url}/api/v1/events" in closed
    assert [url for url in after if "/api/" in url] == []
    expect(page.locator("#conn")).to_have_text("logged out")
    expect(page.locator("#main")).to_be_hidden()
    screenshot(page, "dashboard-logged-out.png")

    # Logging in again starts a fresh session with fresh data.
    _login(page, running_gateway.base_url, running_gateway.keys["read"])
    expect(page.locator("#who")).to_have_text("read-key (read)")
    assert unexpected(errors) == []


def test_a_stalled_or_stopped_gateway_shows_not_live_and_recovers(
    page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    config_path, keys = write_gateway_config(tmp_path, port)
    errors = watch_errors(page)
    conn, banner, safety = page.locator("#conn"), page.locator("#banner"), page.locator("#safety")
    stale = re.compile(r"\bstale\b")
    with gateway_process(config_path, port, keys["read"]) as proc:
        _login(page, base_url, keys["read"])
        expect(banner).to_be_hidden()
        expect(safety).to_have_text(re.compile("normal|limited"))
        page.wait_for_timeout(3_000)  # some history before the stall

        # Stalled: the process is frozen; the stream stays open but brings nothing.
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            expect(conn).to_have_text("not live", timeout=20_000)
            expect(banner).to_be_visible()
            expect(banner).to_contain_text("No new data from the gateway since")
            expect(banner).to_contain_text(_santiago_label())
            expect(safety).to_have_text("unknown")
            expect(page.locator("#main")).to_have_class(stale)
            first = _age_s(page)
            page.wait_for_timeout(2_100)
            assert _age_s(page) >= first + 1.5  # counted by the page, not sent by the gateway
            screenshot(page, "dashboard-stalled.png")
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        expect(conn).to_have_text("live", timeout=20_000)
        expect(banner).to_be_hidden()
        expect(safety).not_to_have_text("unknown")
        expect(page.locator("#main")).not_to_have_class(stale)

        # Stopped, as with Ctrl-C: the stream ends and the gateway stops answering.
        proc.terminate()
        proc.wait(timeout=20)
        expect(conn).to_have_text("offline", timeout=10_000)
        expect(banner).to_contain_text(
            re.compile(r"Gateway unreachable since \d\d:\d\d:\d\d " + re.escape(_santiago_label()))
        )
        expect(banner).to_contain_text("not live")
        expect(safety).to_have_text("unknown")
        expect(page.locator("#safety-reasons")).to_contain_text("not live: last known state")
        for element_id in ("soc", "battery", "setpoint"):
            assert _style(page, element_id, "textDecorationLine") == "line-through", element_id
        assert _style(page, "soc", "color") == "rgb(107, 119, 133)"  # --muted
        first = _age_s(page)
        page.wait_for_timeout(2_100)
        assert _age_s(page) >= first + 1.5
        screenshot(page, "dashboard-offline.png")

    # Back on the same port: the page reconnects by itself.
    with gateway_process(config_path, port, keys["read"]):
        expect(conn).to_have_text("live", timeout=20_000)
        expect(banner).to_be_hidden()
        expect(safety).not_to_have_text("unknown")
        expect(page.locator("#main")).not_to_have_class(stale)
        assert _style(page, "soc", "textDecorationLine") == "none"
        expect(page.locator("#soc")).to_have_text(re.compile(r"\d+\.\d %"))
        page.wait_for_timeout(1_500)  # a few points after the gap, for the screenshot
        screenshot(page, "dashboard-recovered.png")
    assert unexpected(errors) == []


def test_an_empty_or_non_numeric_setpoint_is_refused_and_never_sent(
    page: Any, running_gateway: RunningGateway
) -> None:
    from playwright.sync_api import expect

    errors = watch_errors(page)
    control = {"X-API-Key": running_gateway.keys["control"]}
    audit_url = f"{running_gateway.base_url}/api/v1/audit?site=demo&limit=1"
    newest_before = httpx.get(audit_url, headers=control).json()["items"][0]["id"]
    _login(page, running_gateway.base_url, running_gateway.keys["control"])
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url) if r.method != "GET" else None)
    result = page.locator("#control-result")
    cases = [
        ("", "300", "ov-setpoint", "Enter a setpoint in W"),
        ("   ", "300", "ov-setpoint", "Enter a setpoint in W"),
        ("abc", "300", "ov-setpoint", 'The setpoint "abc" is not a number of watts'),
        ("12kW", "300", "ov-setpoint", 'The setpoint "12kW" is not a number of watts'),
        ("1e999", "300", "ov-setpoint", "is not a number of watts"),
        ("1500", "", "ov-duration", "Enter how long the override lasts"),
        ("1500", "soon", "ov-duration", 'The duration "soon" is not a positive number'),
        ("1500", "0", "ov-duration", 'The duration "0" is not a positive number'),
    ]
    for setpoint, duration, field, message in cases:
        page.fill("#ov-setpoint", setpoint)
        page.fill("#ov-duration", duration)
        page.click("#override-form button[type=submit]")
        expect(result).to_contain_text(message)
        expect(result).to_contain_text("Nothing was sent.")
        expect(result).to_have_class("error")
        expect(page.locator("#" + field)).to_have_attribute("aria-invalid", "true")
        if setpoint == "":
            screenshot(page, "dashboard-refused.png")
    page.wait_for_timeout(500)
    assert posted == []
    rows = httpx.get(audit_url.replace("limit=1", "limit=50"), headers=control).json()["items"]
    assert [r for r in rows if r["id"] > newest_before and r["controller"] == "api"] == []

    # An explicit 0 is a real request (stop) and goes through the guard.
    page.fill("#ov-setpoint", "0")
    page.fill("#ov-duration", "60")
    page.click("#override-form button[type=submit]")
    expect(result).to_contain_text("allowed: 0.00 kW")
    expect(page.locator("#ov-setpoint")).not_to_have_attribute("aria-invalid", "true")
    assert len(posted) == 1
    page.click("#ov-clear")
    expect(result).to_contain_text("override cleared")
    assert unexpected(errors) == []


def test_a_reload_draws_the_recent_minutes_at_once(
    page: Any, running_gateway: RunningGateway
) -> None:
    from playwright.sync_api import expect

    errors = watch_errors(page)
    read = {"X-API-Key": running_gateway.keys["read"]}
    url = f"{running_gateway.base_url}/api/v1/sites/demo/history"
    deadline = time.monotonic() + 60
    while len(httpx.get(url, headers=read).json()["points"]) < 30:
        assert time.monotonic() < deadline, "the gateway kept no history"
        time.sleep(1)
    _login(page, running_gateway.base_url, running_gateway.keys["read"])
    page.reload()
    # The key is still in the tab: the page logs in again and draws the gateway's history. The
    # stream alone brings at most two points a second: 30 in 5 s can only be the history.
    expect(page.locator("#conn")).to_have_text("live", timeout=5_000)
    page.wait_for_function(
        "document.getElementById('chart-soc').dataset.points >= 30"
        " && document.querySelector('#chart-soc path.s-soc').dataset.points >= 30",
        timeout=5_000,
    )
    soc_ticks = page.locator("#chart-soc text.tick:not(.time)").all_text_contents()
    assert soc_ticks == ["0 %", "25 %", "50 %", "75 %", "100 %"]
    power_ticks = page.locator("#chart-power text.tick:not(.time)").all_text_contents()
    assert len(power_ticks) >= 3
    assert all(t.endswith(" kW") for t in power_ticks)
    assert "0 kW" in power_ticks
    for chart in ("#chart-soc", "#chart-power"):
        times = page.locator(f"{chart} text.time").all_text_contents()
        assert len(times) >= 2, times
        assert all(re.fullmatch(r"\d\d:\d\d(:\d\d)?", t) for t in times), times
    assert page.text_content("#chart-soc text.axis-title") == "SOC (%)"
    assert page.text_content("#chart-power text.axis-title") == "power (kW)"
    for series in ("bat", "pv", "grid", "load", "sp"):
        assert int(page.get_attribute(f"#chart-power path.s-{series}", "data-points") or 0) >= 30
    legend = page.inner_text("#recent")
    for name in ("SOC (%)", "battery (kW, + charging)", "PV (kW)", "grid (kW, + importing)"):
        assert name in legend
    expect(page.locator("#history-caption")).to_contain_text("times in " + _santiago_label())
    screenshot(page, "dashboard-history.png")
    assert unexpected(errors) == []
