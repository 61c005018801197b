"""The fleet stack's NATS service, run with the compose file's own flags on loopback: JetStream
on, the store directory and the monitoring port where the compose file puts them."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx

from tests.deploy.conftest import DEPLOY
from tests.deploy.images import compose
from tests.process import LOOPBACK, find_binary, free_port
from tests.telemetry.brokers import BrokerProcess

FLEET = DEPLOY / "compose" / "fleet"


def test_the_nats_service_flags_start_jetstream(tmp_path: Path) -> None:
    nats = compose(FLEET / "compose.yaml")["services"]["nats"]
    flags = list(nats["command"])
    store = flags[flags.index("-sd") + 1]
    assert any(v.endswith(f":{store}") for v in nats["volumes"])  # the store is the volume
    monitor = flags[flags.index("-m") + 1]
    assert f"127.0.0.1:{monitor}:{monitor}" in nats["ports"]
    port, monitor_port = free_port(), free_port()
    flags[flags.index("-sd") + 1] = str(tmp_path / "store")
    flags[flags.index("-m") + 1] = str(monitor_port)
    server = BrokerProcess(
        "nats-server",
        [find_binary("nats-server"), *flags, "-a", LOOPBACK, "-p", str(port)],
        port,
        tmp_path / "nats.log",
    )
    server.start()
    try:
        health = httpx.get(
            f"http://{LOOPBACK}:{monitor_port}/healthz", params={"js-enabled-only": "true"}
        )
        assert health.status_code == 200, health.text
        jsz = httpx.get(f"http://{LOOPBACK}:{monitor_port}/jsz").json()
        assert jsz["config"]["store_dir"].startswith(str(tmp_path / "store"))
    finally:
        with contextlib.suppress(Exception):
            server.stop()
