"""What the browser tests share: Debian's headless Chromium driven by Playwright, the pages'
screenshots in test-artifacts/ (to look at, not only to keep)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 1100}

# Skipped only outside CI: `make test` installs chromium first, and CI must never pass
# without the browser tests having run.
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="Debian chromium missing: run `make system-deps`",
)

#: What Chromium logs for answers a test provoked on purpose: a wrong key, a read key on a
#: control route, and a gateway a test stopped.
EXPECTED_CONSOLE = re.compile(
    r"status of 40[13] \((Unauthorized|Forbidden)\)|net::ERR_(CONNECTION_REFUSED|EMPTY_RESPONSE)"
)


@pytest.fixture
def page() -> Iterator[Any]:
    """A fresh page in headless Chromium (sync Playwright), closed after the test."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield browser.new_context(viewport=VIEWPORT).new_page()  # type: ignore[arg-type]
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> Path:
    """A full-page PNG in test-artifacts/; returns its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000
    return path


def watch_errors(page: Any) -> list[str]:
    """Page faults and console errors, collected as they happen."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    return errors


def unexpected(errors: list[str]) -> list[str]:
    return [e for e in errors if not EXPECTED_CONSOLE.search(e)]
