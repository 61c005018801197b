"""Shared helpers of the deployment tests: where `deploy/` is, and the Prometheus binaries."""

from __future__ import annotations

from pathlib import Path

from tests.process import find_binary

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def prometheus_binary(name: str) -> str:
    """`prometheus` or `promtool` from Debian's `prometheus` package (`make system-deps`)."""
    return find_binary(name, " (Debian package prometheus)")
