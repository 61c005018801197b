"""The fleet page in headless Chromium against a running `bessai fleet serve`: it asks for
a key, then shows every site (the stale one flagged), the totals and a sparkline each."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.browser import needs_chromium, page, screenshot
from tests.fleet.harness import FleetProcess, read_key
from tests.fleet.test_api import SITES, seed
from tests.telemetry.brokers import BrokerProcess

pytestmark = needs_chromium
__all__ = ["page"]  # the browser fixture


@pytest.fixture
def serving(
    fleet_dsn: str, nats_server: BrokerProcess, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    asyncio.run(seed(fleet_dsn))
    fleet = FleetProcess.create(tmp_path / "fleet", fleet_dsn, nats_server.port)
    key = read_key(tmp_path / "fleet")
    fleet.start()
    try:
        yield fleet.url(""), key
    finally:
        fleet.stop()


def test_fleet_page_shows_sites_totals_and_stale(serving: tuple[str, str], page: Any) -> None:
    from playwright.sync_api import expect

    base, key = serving
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(base + "/fleet")
    page.fill("#key", key)
    page.click("#login button")
    rows = page.locator("#sites tbody tr")
    expect(rows).to_have_count(len(SITES))
    expect(page.locator("#sites tbody td.stale")).to_have_count(1)
    expect(page.locator("#sites tbody tr", has_text="east")).to_contain_text("STALE")
    expect(page.locator("#sites tbody tr", has_text="west")).to_contain_text("safe")
    expect(page.locator("#sites tbody tr", has_text="south")).to_contain_text("Grid Loss")
    expect(page.locator("#totals")).to_contain_text("3 online / 4")
    expect(page.locator("#totals")).to_contain_text("60.0 kWh")
    expect(page.locator("svg.spark polyline")).to_have_count(len(SITES))
    screenshot(page, "fleet.png")
    assert [e for e in errors if not re.search("status of 401", e)] == []
