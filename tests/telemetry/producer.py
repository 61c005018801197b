"""A stand-in for the gateway cycle, run as its own process so tests can SIGKILL it.

It drives TelemetryPipeline exactly as the cycle will: one `emit_async` per cycle, the
forwarder beside it. After each commit it prints the committed seqs on one line, so the
test knows what was committed before the kill. SIGTERM stops it cleanly (drain, close).

    python producer.py --outbox PATH [--mqtt-port N] [--devices 2] [--period-s 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from bessai.logging import configure_logging
from bessai.telemetry import Record, TelemetryConfig, TelemetryPipeline


async def run(args: argparse.Namespace) -> None:
    sinks: list[dict[str, Any]] = []
    if args.mqtt_port:
        sinks.append(
            {"type": "mqtt", "port": args.mqtt_port, "ack_timeout_s": 2, "backoff_max_s": 1}
        )
    else:
        # Without a sink nothing would be stored at all; a broker that is down (a closed
        # loopback port) keeps every row in the outbox, as an outage does.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed_port = s.getsockname()[1]
        sinks.append({"type": "mqtt", "port": closed_port, "backoff_initial_s": 5})
    config = TelemetryConfig.model_validate({"outbox_path": args.outbox, "sinks": sinks})
    pipeline = TelemetryPipeline(config)
    await pipeline.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(f"boot {pipeline.boot_id}", flush=True)
    cycle = 0
    while not stop.is_set():
        records = [
            Record(args.site, {"cycle": cycle, "device_index": d}, device_id=f"dev{d}")
            for d in range(args.devices)
        ]
        result = await pipeline.emit_async(records)
        print(" ".join(str(e.seq) for e in result.envelopes), flush=True)
        cycle += 1
        if args.period_s:
            await asyncio.sleep(args.period_s)
    await pipeline.stop(drain_timeout_s=5.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outbox", type=Path, required=True)
    parser.add_argument("--mqtt-port", type=int, default=0)
    parser.add_argument("--site", default="alpha")
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--period-s", type=float, default=0.02)
    configure_logging("warning")  # logs to stderr: stdout carries only the seq lines
    asyncio.run(run(parser.parse_args()))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
