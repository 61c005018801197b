"""Run all benchmarks and print their figures as one JSON document on stdout.

Each benchmark module exposes `run() -> dict`; add new ones to BENCHMARKS."""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time

from bessai.logging import configure_logging

BENCHMARKS: list[str] = [
    "device",
    "gateway",
    "proxy",
    "optimize",
    "plant",
    "telemetry",
    "api",
    "forecast",
    "ledger",
    "vpp",
    "deploy",
    "policy",
    "fleet",
    "federated",
    "security",
]


def main() -> None:
    configure_logging("warning", json_output=False)  # stdout carries only the JSON document
    selected = sys.argv[1:] or BENCHMARKS
    results: dict[str, object] = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for name in selected:
        module = importlib.import_module(f"bench.{name}")
        results[name] = module.run()
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
