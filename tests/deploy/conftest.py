"""Shared helpers of the deployment tests: where `deploy/` is, and the Prometheus binaries."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def prometheus_binary(name: str) -> str:
    """`prometheus` or `promtool` from Debian's `prometheus` package (`make system-deps`)."""
    found = shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.fail(f"{name} is not installed: run `make system-deps` (Debian package prometheus)")
    return found
