"""Sink options against real brokers: MQTT over TLS with a client CA, MQTT 5, NATS auth."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from brokers import BrokerProcess, MqttRecorder, _mosquitto, nats_stream_keys, wait_until
from tests.process import LOOPBACK, find_binary, free_port

from bessai.telemetry import Record, TelemetryConfig, TelemetryPipeline


def _certs(tmp_path: Path) -> dict[str, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (IP SAN), made with openssl."""
    openssl = find_binary("openssl")
    d = tmp_path / "pki"
    d.mkdir()

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=bessai-test-ca",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        f"/CN={LOOPBACK}",
    )
    (d / "san.ext").write_text(f"subjectAltName=IP:{LOOPBACK}\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    )
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_mqtt_over_tls_verified_by_ca(tmp_path: Path, protocol: str) -> None:
    certs = _certs(tmp_path)
    tls_port = free_port()
    broker = _mosquitto(
        tmp_path,
        extra=[
            f"listener {tls_port} {LOOPBACK}",
            f"cafile {certs['ca']}",
            f"certfile {certs['cert']}",
            f"keyfile {certs['key']}",
        ],
    )
    broker.start()
    recorder = MqttRecorder(broker.port)  # plain listener of the same broker
    cfg = TelemetryConfig.model_validate(
        {
            "outbox_path": tmp_path / "o.sqlite",
            "sinks": [
                {
                    "type": "mqtt",
                    "port": tls_port,
                    "tls": True,
                    "ca_file": str(certs["ca"]),
                    "protocol": protocol,
                }
            ],
        }
    )
    pipeline = TelemetryPipeline(cfg)
    await pipeline.start()
    try:
        for i in range(10):
            await pipeline.emit_async([Record("alpha", {"cycle": i}, device_id="bat1")])
        assert await pipeline.drain(10.0)
        await wait_until(lambda: len(recorder.unique("alpha")) == 10, 5.0, "10 envelopes")
        assert recorder.status["bessai/v1/alpha/status"] == b"online"
    finally:
        await pipeline.stop()
        recorder.close()
        broker.kill()


async def test_mqtt_tls_rejects_an_unknown_ca(tmp_path: Path) -> None:
    certs = _certs(tmp_path)
    (tmp_path / "other").mkdir()
    other = _certs(tmp_path / "other")  # a CA that did not sign the broker's certificate
    tls_port = free_port()
    broker = _mosquitto(
        tmp_path,
        extra=[
            f"listener {tls_port} {LOOPBACK}",
            f"certfile {certs['cert']}",
            f"keyfile {certs['key']}",
        ],
    )
    broker.start()
    cfg = TelemetryConfig.model_validate(
        {
            "outbox_path": tmp_path / "o.sqlite",
            "sink_stale_after_s": 0.5,
            "sinks": [
                {
                    "type": "mqtt",
                    "port": tls_port,
                    "tls": True,
                    "ca_file": str(other["ca"]),
                    "connect_timeout_s": 2.0,
                }
            ],
        }
    )
    pipeline = TelemetryPipeline(cfg)
    await pipeline.start()
    try:
        await pipeline.emit_async([Record("alpha", {"cycle": 0})])
        await wait_until(lambda: pipeline.sinks[0].status.errors_total > 0, 5.0, "a TLS failure")
        error = pipeline.sinks[0].status.last_error or ""
        assert "CERTIFICATE_VERIFY_FAILED" in error, error
        assert pipeline.outbox.stats.rows == 1  # kept for when the operator fixes the CA
    finally:
        await pipeline.stop()
        broker.kill()


async def test_nats_wrong_password_is_reported_and_right_one_delivers(tmp_path: Path) -> None:
    port = free_port()
    store = tmp_path / "js"
    store.mkdir()
    server = BrokerProcess(
        "nats-server",
        [
            find_binary("nats-server"),
            "-js",
            "-a",
            LOOPBACK,
            "-p",
            str(port),
            "-sd",
            str(store),
            "--user",
            "gw",
            "--pass",
            "right",
        ],
        port,
        tmp_path / "nats.log",
    )
    server.start()

    def cfg(password: str) -> TelemetryConfig:
        return TelemetryConfig.model_validate(
            {
                "outbox_path": tmp_path / "o.sqlite",
                "sinks": [
                    {
                        "type": "nats",
                        "servers": [f"nats://{LOOPBACK}:{port}"],
                        "user": "gw",
                        "password": password,
                        "connect_timeout_s": 1.0,
                        "backoff_max_s": 0.5,
                    }
                ],
            }
        )

    try:
        pipeline = TelemetryPipeline(cfg("wrong"))
        await pipeline.start()
        for i in range(5):
            await pipeline.emit_async([Record("alpha", {"cycle": i})])
        await wait_until(
            lambda: pipeline.sinks[0].status.state == "auth_failed", 5.0, "auth failure"
        )
        health = pipeline.health()
        await pipeline.stop()
        assert health.status == "degraded"
        assert any("credentials refused" in r for r in health.reasons), health.reasons
        assert "Authorization Violation" in (health.sinks["nats"]["last_error"] or "")

        pipeline = TelemetryPipeline(cfg("right"))
        await pipeline.start()
        assert await pipeline.drain(10.0)
        await pipeline.stop()
    finally:
        server.kill()
    server.argv = [a for a in server.argv if a not in ("--user", "gw", "--pass", "right")]
    server.start()  # read the stream back without auth: same store, same data
    try:
        keys = await nats_stream_keys(port)
    finally:
        server.kill()
    assert sorted(s for _, s in keys) == list(range(5))
