"""Telemetry throughput: outbox -> MQTT QoS 1 and -> JetStream, next to a bare client loop.

All in one run, against brokers this benchmark starts on free loopback ports, with the same
envelope (the gateway cycle's 16 site values, about 525 bytes) everywhere:
- bare: a plain paho QoS 1 loop and a plain nats-py JetStream publish loop, same in-flight
  window as the sink; the ceiling of what the broker and client library can do here;
- drain: a pre-filled outbox (N envelopes) forwarded to the sink until empty;
- sustained: a producer committing cycles (one transaction each, fsync included) while the
  forwarder publishes, until everything is acknowledged;
- scrape: `/metrics` serialisation latency while the sustained run is going.
The ratio pipeline/bare is the figure that matters; absolute numbers depend on the disk. On a
shared machine both sides swing from run to run, so MQTT bare and drain alternate for
`ROUNDS` rounds and the JSON gives every round's pair, the median ratio and its spread.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import nats
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bessai.logging import configure_logging
from bessai.observe.metrics import GatewayMetrics
from bessai.telemetry import Record, TelemetryConfig, TelemetryPipeline, render

N = 20000
ROUNDS = 5  # MQTT bare/drain pairs; the ratio's median and spread come from them
SITES = ("alpha", "beta")
CYCLE_RECORDS = 10  # envelopes per committed transaction in the sustained run
WINDOW_MQTT = 100
WINDOW_NATS = 256
# What the gateway cycle emits per site (bessai.control.emit.cycle_records).
PAYLOAD_VALUES: dict[str, float | int | str] = {
    "cycle": 123456,
    "soc_pct": 55.5,
    "battery_power_w": -1200.0,
    "battery_temp_c": 27.5,
    "pv_power_w": 3400.0,
    "grid_power_w": 150.0,
    "load_power_w": 2350.0,
    "inverter_power_w": 2200.0,
    "requested_w": -1200.0,
    "setpoint_w": -1200.0,
    "guard_outcome": "allowed",
    "controller": "schedule",
    "safety_state": "normal",
    "mode": "auto",
    "data_age_s": 0.412,
    "cycle_duration_s": 0.0213,
}


def _binary(name: str) -> str:
    found = shutil.which(name) or (
        f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}", os.X_OK) else None
    )
    if found is None:
        raise SystemExit(f"{name} is not installed: run `make system-deps`")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"broker on {port} did not start")


class _Brokers:
    def __init__(self, tmp: Path) -> None:
        self.mqtt_port = _free_port()
        self.nats_port = _free_port()
        conf = tmp / "mosquitto.conf"
        # Production-like: persistence on with the default autosave, anonymous loopback.
        conf.write_text(
            f"listener {self.mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {tmp}/\nuser {os.environ.get('USER', 'root')}\n"
            "max_queued_messages 0\n"
        )
        (tmp / "js").mkdir()
        self.procs = [
            subprocess.Popen([_binary("mosquitto"), "-c", str(conf)], stderr=subprocess.DEVNULL),
            subprocess.Popen(
                [
                    _binary("nats-server"),
                    "-js",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.nats_port),
                    "-sd",
                    str(tmp / "js"),
                ],
                stderr=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            ),
        ]
        _wait_port(self.mqtt_port)
        _wait_port(self.nats_port)

    def close(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
            p.wait(10)


def _payload(seq: int) -> bytes:
    """The envelope the pipeline publishes (same site ids, boot id length and values)."""
    from datetime import UTC, datetime

    from bessai.telemetry import Envelope

    return Envelope(
        site_id=SITES[seq % 2],
        seq=seq // 2,
        boot_id=uuid.uuid4().hex,
        ts=datetime.now(UTC),
        kind="telemetry",
        values=PAYLOAD_VALUES,
    ).to_json()


def bare_paho(port: int) -> float:
    payloads = [_payload(i) for i in range(N)]
    done = threading.Event()
    acked = 0

    def on_publish(*_: Any) -> None:
        nonlocal acked
        acked += 1
        if acked == N:
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", clean_session=False)
    client.max_inflight_messages_set(WINDOW_MQTT)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    t0 = time.perf_counter()
    for p in payloads:
        client.publish("bessai/v1/bare/_/telemetry", p, qos=1)
    if not done.wait(120):
        raise RuntimeError(f"bare paho: only {acked}/{N} acknowledged")
    elapsed = time.perf_counter() - t0
    client.disconnect()
    client.loop_stop()
    return N / elapsed


async def bare_nats(port: int) -> float:
    payloads = [_payload(i) for i in range(N)]
    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    js = nc.jetstream()
    await js.add_stream(name="BARE", subjects=["bare.>"])
    t0 = time.perf_counter()
    futures = []
    for i, p in enumerate(payloads):
        futures.append(await js.publish_async("bare.alpha", p, headers={"Nats-Msg-Id": f"b:{i}"}))
        if len(futures) >= WINDOW_NATS:
            await asyncio.gather(*futures)
            futures = []
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - t0
    await nc.close()
    return N / elapsed


def _records(i: int) -> list[Record]:
    return [Record(SITES[(i + k) % 2], PAYLOAD_VALUES) for k in range(CYCLE_RECORDS)]


async def pipeline_drain(tmp: Path, sink: dict[str, Any]) -> float:
    cfg = TelemetryConfig.model_validate({"outbox_path": tmp / "drain.sqlite", "sinks": [sink]})
    pipeline = TelemetryPipeline(cfg)
    for i in range(N // CYCLE_RECORDS):
        pipeline.emit(_records(i))
    t0 = time.perf_counter()
    await pipeline.start()
    if not await pipeline.drain(300):
        raise RuntimeError("drain did not finish")
    elapsed = time.perf_counter() - t0
    await pipeline.stop()
    (tmp / "drain.sqlite").unlink()
    return N / elapsed


async def pipeline_sustained(tmp: Path, sink: dict[str, Any]) -> dict[str, float]:
    registry = GatewayMetrics().registry
    cfg = TelemetryConfig.model_validate({"outbox_path": tmp / "sustained.sqlite", "sinks": [sink]})
    pipeline = TelemetryPipeline(cfg, registry=registry)
    await pipeline.start()
    scrapes: list[float] = []
    commits: list[float] = []
    stop = asyncio.Event()

    async def scraper() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            render(registry)
            scrapes.append(time.perf_counter() - t)
            await asyncio.sleep(0.01)

    scrape_task = asyncio.create_task(scraper())
    t0 = time.perf_counter()
    for i in range(N // CYCLE_RECORDS):
        t = time.perf_counter()
        await pipeline.emit_async(_records(i))
        commits.append(time.perf_counter() - t)
    if not await pipeline.drain(300):
        raise RuntimeError("sustained run did not drain")
    elapsed = time.perf_counter() - t0
    stop.set()
    await scrape_task
    await pipeline.stop()
    (tmp / "sustained.sqlite").unlink()
    scrapes.sort()
    return {
        "envelopes_per_s": round(N / elapsed, 1),
        "commit_ms_p50": round(statistics.median(commits) * 1000, 3),
        "commit_ms_max": round(max(commits) * 1000, 3),
        "scrape_ms_p50": round(statistics.median(scrapes) * 1000, 3),
        "scrape_ms_p99": round(scrapes[int(len(scrapes) * 0.99)] * 1000, 3),
    }


def mqtt_rounds(tmp: Path, port: int) -> dict[str, Any]:
    """Bare paho and the outbox drain, alternating, `ROUNDS` times on the same broker."""
    sink = {"type": "mqtt", "port": port, "inflight_max": WINDOW_MQTT}
    bare: list[float] = []
    drain: list[float] = []
    for _ in range(ROUNDS):
        bare.append(bare_paho(port))
        drain.append(asyncio.run(pipeline_drain(tmp, sink)))
    ratios = sorted(d / b for d, b in zip(drain, bare, strict=True))
    return {
        "bare_paho_per_s": round(statistics.median(bare), 1),
        "outbox_drain_per_s": round(statistics.median(drain), 1),
        "drain_ratio": round(statistics.median(ratios), 3),
        "drain_ratio_min": round(ratios[0], 3),
        "drain_ratio_max": round(ratios[-1], 3),
        "rounds": [
            {"bare_paho_per_s": round(b, 1), "outbox_drain_per_s": round(d, 1)}
            for b, d in zip(bare, drain, strict=True)
        ],
    }


def run() -> dict[str, Any]:
    # Logs to stderr: stdout is the JSON document.
    configure_logging("warning")
    with tempfile.TemporaryDirectory(prefix="bessai-bench-") as tmpdir:
        tmp = Path(tmpdir)
        brokers = _Brokers(tmp)
        try:
            mqtt_sink = {"type": "mqtt", "port": brokers.mqtt_port, "inflight_max": WINDOW_MQTT}
            nats_sink = {
                "type": "nats",
                "servers": [f"nats://127.0.0.1:{brokers.nats_port}"],
                "inflight_max": WINDOW_NATS,
            }
            mqtt = mqtt_rounds(tmp, brokers.mqtt_port)
            bare_nats_eps = asyncio.run(bare_nats(brokers.nats_port))
            nats_drain = asyncio.run(pipeline_drain(tmp, nats_sink))
            mqtt_sustained = asyncio.run(pipeline_sustained(tmp, mqtt_sink))
            nats_sustained = asyncio.run(pipeline_sustained(tmp, nats_sink))
        finally:
            brokers.close()
    return {
        "envelopes": N,
        "envelope_bytes": len(_payload(N)),
        "records_per_commit": CYCLE_RECORDS,
        "mqtt_qos1": {
            **mqtt,
            "sustained": mqtt_sustained,
            "sustained_ratio": round(
                mqtt_sustained["envelopes_per_s"] / mqtt["bare_paho_per_s"], 3
            ),
        },
        "jetstream": {
            "bare_nats_py_per_s": round(bare_nats_eps, 1),
            "outbox_drain_per_s": round(nats_drain, 1),
            "drain_ratio": round(nats_drain / bare_nats_eps, 3),
            "sustained": nats_sustained,
            "sustained_ratio": round(nats_sustained["envelopes_per_s"] / bare_nats_eps, 3),
        },
    }
