"""Shared by the carbon tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`bessai`'s root callback configures logging for the whole process (level warning):
    put the suite's configuration back, so later tests that read info events still see them."""
    saved = structlog.get_config()
    pymodbus = logging.getLogger("pymodbus").level
    yield
    structlog.configure(**saved)
    logging.getLogger("pymodbus").setLevel(pymodbus)
