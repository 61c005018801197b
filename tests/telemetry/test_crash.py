"""Crash safety: a SIGKILLed producer continues seq without loss; a torn WAL holds whole
transactions only; the cap drops exactly what it counts while a broker is away."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from brokers import BrokerProcess, MqttRecorder, _mosquitto, wait_until

from bessai.telemetry import Outbox, Record, TelemetryConfig, TelemetryPipeline

PRODUCER = Path(__file__).with_name("producer.py")


class Producer:
    """The producer subprocess and the seq lines it printed (committed before printing)."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PRODUCER), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[list[int]] = []
        self.boot_id = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("boot "):
                self.boot_id = line.split()[1]
            elif line.strip():
                self.lines.append([int(x) for x in line.split()])

    def wait_lines(self, n: int, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.lines) < n:
            assert self.proc.poll() is None, "producer died"
            assert time.monotonic() < deadline, f"producer printed {len(self.lines)} of {n}"
            time.sleep(0.01)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(5)

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(20)
        self._reader.join(5)

    @property
    def seqs(self) -> list[int]:
        return [s for line in self.lines for s in line]


@pytest.mark.slow
async def test_producer_sigkill_restart_continues_seq_and_loses_nothing(
    mosquitto: BrokerProcess, tmp_path: Path
) -> None:
    recorder = MqttRecorder(mosquitto.port)
    outbox = tmp_path / "outbox.sqlite"
    args = ("--outbox", str(outbox), "--mqtt-port", str(mosquitto.port), "--devices", "2")
    try:
        first = Producer(*args)
        first.wait_lines(60)
        first.kill()
        printed = first.seqs
        assert printed == list(range(len(printed)))

        # What the dead process committed, read back from disk.
        ob = Outbox(outbox)
        committed_next = ob.next_seq("alpha")
        assert ob.integrity_check() == "ok"
        ob.close()
        # Printing follows the commit, so at most the one cycle in between is unprinted.
        assert len(printed) <= committed_next <= len(printed) + 2

        second = Producer(*args)
        second.wait_lines(60)
        second.terminate()  # clean stop: drains what it can
        assert second.seqs[0] == committed_next, "seq must continue, no gap, no reuse"
        assert second.boot_id
        assert second.boot_id != first.boot_id
        last = second.seqs[-1]
        await wait_until(
            lambda: recorder.unique("alpha") >= set(range(last + 1)),
            10.0,
            "every committed seq at the subscriber",
        )
    finally:
        recorder.close()
    print(f"duplicates at the subscriber: {recorder.duplicates()}")


@pytest.mark.slow
def test_truncated_wal_after_sigkill_holds_whole_transactions(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.sqlite"
    writer = Producer("--outbox", str(outbox), "--devices", "3", "--period-s", "0")
    writer.wait_lines(300)
    writer.kill()
    wal = outbox.with_name(outbox.name + "-wal")
    shm = outbox.with_name(outbox.name + "-shm")
    wal_size = wal.stat().st_size
    assert wal_size > 32, "the writer must leave a WAL behind"
    rng = random.Random(20261123)
    offsets = sorted({0, 31, 32 + 24, wal_size, *(rng.randrange(wal_size) for _ in range(14))})
    counts = set()
    for i, offset in enumerate(offsets):
        case = tmp_path / f"case{i}"
        case.mkdir()
        db = case / "outbox.sqlite"
        shutil.copy(outbox, db)
        shutil.copy(wal, case / wal.name)
        if shm.exists():  # a stale index from the dead process, as after a real crash
            shutil.copy(shm, case / shm.name)
        with (case / wal.name).open("r+b") as fh:
            fh.truncate(offset)
        ob = Outbox(db)
        assert ob.integrity_check() == "ok", f"offset {offset}"
        rows = ob.all_rows()
        seqs = [r.seq for r in rows]
        # A prefix of whole cycles: seq 0..n-1 with n a multiple of the 3 rows per cycle,
        # and the three rows of each cycle carry the same cycle number.
        assert seqs == list(range(len(seqs))), f"offset {offset}: gap in seq"
        assert len(rows) % 3 == 0, f"offset {offset}: a torn cycle ({len(rows)} rows)"
        cycles = [json.loads(r.payload)["values"]["cycle"] for r in rows]
        assert cycles == [c for c in range(len(rows) // 3) for _ in range(3)], f"offset {offset}"
        assert ob.next_seq("alpha") == len(rows), "the seq counter is in the same transaction"
        counts.add(len(rows))
        ob.close()
    assert len(counts) > 1, "truncation should have cut off transactions at some offset"


async def test_cap_drops_exactly_keeps_alarms_degrades_and_recovers(tmp_path: Path) -> None:
    broker = _mosquitto(tmp_path)
    broker.start()
    recorder = MqttRecorder(broker.port)
    await asyncio.sleep(1.5)  # the broker saves the subscriber's session (autosave 1 s)
    broker.kill()
    config = TelemetryConfig.model_validate(
        {
            "outbox_path": tmp_path / "outbox.sqlite",
            "max_rows": 40,
            "drop_hold_s": 0,
            "sinks": [
                {
                    "type": "mqtt",
                    "port": broker.port,
                    "backoff_initial_s": 0.1,
                    "backoff_max_s": 0.5,
                }
            ],
        }
    )
    pipeline = TelemetryPipeline(config)
    await pipeline.start()
    emitted = {"alpha": 0, "beta": 0}
    alarms: set[tuple[str, int]] = set()
    reported_drops = 0
    try:
        for cycle in range(100):
            recs = [Record(site, {"cycle": cycle}) for site in emitted]
            if cycle % 10 == 0:
                recs.append(Record("alpha", {"code": cycle}, kind="alarm"))
            result = await pipeline.emit_async(recs)
            reported_drops += result.dropped
            for env in result.envelopes:
                emitted[env.site_id] += 1
                if env.kind == "alarm":
                    alarms.add((env.site_id, env.seq))
        stats = pipeline.outbox.stats
        total = sum(emitted.values())
        assert stats.rows == 40
        assert stats.dropped_total == reported_drops == total - 40
        assert stats.dropped.get(("alpha", "alarm"), 0) == 0
        health = pipeline.health()
        assert health.status == "degraded"
        assert any("cap reached" in r for r in health.reasons), health.reasons
        assert pipeline.outbox.integrity_check() == "ok"

        broker.start()  # the uplink returns: the backlog drains and the cap lets go
        assert await pipeline.drain(15.0)
        await pipeline.emit_async([Record("alpha", {"cycle": 100})])
        emitted["alpha"] += 1
        assert await pipeline.drain(5.0)
        await wait_until(
            lambda: len(recorder.received) >= 41, 5.0, "the kept envelopes at the subscriber"
        )
        assert pipeline.health().status == "ok", pipeline.health().reasons
    finally:
        await pipeline.stop()
        recorder.close()
        broker.kill()
    received = set(recorder.received)
    assert alarms <= received, "every alarm survives the cap"
    for site, n in emitted.items():
        got = {s for st, s in received if st == site}
        # Every seq not received is one the cap dropped, and the count matches exactly.
        assert n - len(got) == stats.dropped.get((site, "telemetry"), 0), site
