"""The dashboard's carbon card in a real browser, against `bessai run` with carbon accounting
every 2 s and the ledger on: the methods appear side by side (never summed), credits count up,
and the card empties at logout."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from bessai.ledger import keys
from tests.api.browser import needs_chromium, screenshot
from tests.api.conftest import free_port, gateway_process, page, write_gateway_config

pytestmark = needs_chromium
__all__ = ["page"]  # the browser fixture, shared with the API tests


@pytest.fixture
def carbon_gateway(tmp_path: Path) -> Iterator[tuple[str, str]]:
    port = free_port()
    config_path, tokens = write_gateway_config(tmp_path, port)
    config = tomllib.loads(config_path.read_text())
    key_file = tmp_path / "ledger" / "gateway.key"
    keys.generate(key_file)
    config["carbon"] = {"interval_s": 2}
    config["ledger"] = {"enabled": True, "key_file": str(key_file)}
    config_path.write_text(tomli_w.dumps(config))
    with gateway_process(config_path, port, tokens["read"]):
        yield f"http://127.0.0.1:{port}", tokens["read"]


def test_the_carbon_card_shows_each_method_and_the_credits(
    page: Any, carbon_gateway: tuple[str, str]
) -> None:
    from playwright.sync_api import expect

    base_url, token = carbon_gateway
    page.goto(base_url + "/")
    page.fill("#key", token)
    page.click("#login-form button")
    rows = page.locator("#carbon-methods tbody tr")
    expect(rows).to_have_count(2, timeout=20_000)  # the country average and the CMg marginal
    methods = [rows.nth(i).locator("td").first.inner_text() for i in range(2)]
    assert sorted(methods) == ["location-average", "location-marginal"]
    expect(page.locator("#credits")).to_have_text(
        re.compile(r"^[1-9]\d* credits, "), timeout=20_000
    )
    expect(page.locator("#carbon-note")).to_contain_text("embodied share")
    screenshot(page, "dashboard-carbon.png")
    page.click("#logout")
    assert page.locator("#carbon-methods tbody tr").count() == 0
    assert page.text_content("#credits") == "–"
