"""`bessai lake query`, `bessai tail --check` and the seq checker behind it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import nats
import paho.mqtt.publish as publish
import pyarrow.parquet as pq
import pytest
from brokers import BrokerProcess, nats_process
from tests.process import free_port
from typer.testing import CliRunner

from bessai.cli import app
from bessai.telemetry import Envelope, Record, TelemetryConfig, TelemetryPipeline
from bessai.telemetry.tail import SeqChecker

runner = CliRunner()


def test_seq_checker_finds_gaps_fills_and_duplicates() -> None:
    c = SeqChecker()
    for seq in (10, 11, 14, 12, 11, 15):
        c.add("a", seq)
    c.add("b", 0)
    rep = c.report()
    assert rep["a"]["missing_ranges"] == ["13"]
    assert rep["a"]["duplicates"] == 1
    assert rep["a"]["late"] == 1
    assert rep["a"]["last_seq"] == 15
    assert not c.ok
    c.add("a", 13)
    assert c.ok
    assert c.report()["b"] == {
        "first_seq": 0,
        "last_seq": 0,
        "received": 1,
        "duplicates": 0,
        "late": 0,
        "missing": 0,
        "missing_ranges": [],
    }


async def _fill_lake(tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    cfg = TelemetryConfig.model_validate(
        {
            "outbox_path": tmp_path / "o.sqlite",
            "sinks": [{"type": "lake", "path": str(lake), "flush_interval_s": 0}],
        }
    )
    pipeline = TelemetryPipeline(cfg)
    await pipeline.start()
    day1 = datetime(2026, 3, 1, 23, 59, 58, tzinfo=UTC)
    day2 = datetime(2026, 3, 2, 0, 0, 1, tzinfo=UTC)
    for i, ts in enumerate((day1, day1, day2)):
        await pipeline.emit_async(
            [
                Record("alpha", {"soc_pct": 50.0 + i, "mode": "idle"}, device_id="bat", ts=ts),
                Record("beta", {"grid_power_w": i}, ts=ts),
            ]
        )
    await pipeline.emit_async([Record("alpha", {"code": 7}, kind="alarm", ts=day2)])
    assert await pipeline.drain(5.0)
    await pipeline.stop()
    return lake


async def test_lake_is_partitioned_and_queryable(tmp_path: Path) -> None:
    lake = await _fill_lake(tmp_path)
    parts = sorted(str(p.relative_to(lake).parent) for p in lake.rglob("*.parquet"))
    assert "site=alpha/date=2026-03-01" in parts
    assert "site=beta/date=2026-03-02" in parts
    sql = (
        "SELECT site, count(*) AS n, max(seq) AS last, sum(soc_pct) AS soc "
        "FROM telemetry GROUP BY site ORDER BY site"
    )
    result = runner.invoke(app, ["lake", "query", sql, "--lake", str(lake), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows == [
        {"site": "alpha", "n": 4, "last": 3, "soc": 153.0},
        {"site": "beta", "n": 3, "last": 2, "soc": None},
    ]
    ts_out = runner.invoke(
        app,
        [
            "lake",
            "query",
            "SELECT ts FROM telemetry WHERE site_id = 'beta' ORDER BY seq LIMIT 1",
            "--lake",
            str(lake),
            "--format",
            "json",
        ],
    )
    assert ts_out.exit_code == 0, ts_out.output
    assert json.loads(ts_out.output) == [{"ts": "2026-03-01T23:59:58+00:00"}]
    csv_out = runner.invoke(
        app,
        [
            "lake",
            "query",
            "SELECT kind, code FROM telemetry WHERE kind='alarm'",
            "--lake",
            str(lake),
            "--format",
            "csv",
        ],
    )
    assert csv_out.output.splitlines() == ["kind,code", "alarm,7"]


async def test_lake_view_removes_duplicate_files(tmp_path: Path) -> None:
    lake = await _fill_lake(tmp_path)
    # A crash after writing a file but before the outbox ack: the same rows again in
    # another file (different batch split).
    src = next((lake / "site=beta" / "date=2026-03-01").glob("*.parquet"))
    src.with_name("part-copy.parquet").write_bytes(src.read_bytes())
    copied = pq.read_metadata(src).num_rows
    assert copied >= 1
    out = runner.invoke(
        app,
        [
            "lake",
            "query",
            "SELECT (SELECT count(*) FROM telemetry_raw WHERE site_id='beta') AS raw, "
            "(SELECT count(*) FROM telemetry WHERE site_id='beta') AS dedup",
            "--lake",
            str(lake),
            "--format",
            "json",
        ],
    )
    assert json.loads(out.output) == [{"raw": 3 + copied, "dedup": 3}]


def test_lake_query_errors_are_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    cmd = [sys.executable, "-m", "bessai.cli", "lake", "query", "SELECT 1", "--lake"]
    out = subprocess.run([*cmd, str(empty)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "no Parquet files under" in out.stderr
    assert "Traceback" not in out.stderr


async def test_lake_bad_sql_names_the_problem(tmp_path: Path) -> None:
    lake = await _fill_lake(tmp_path)
    from bessai.errors import TelemetryError
    from bessai.telemetry.lake import query_lake

    with pytest.raises(TelemetryError, match=r"lake query failed: .*no_such_column"):
        query_lake(lake, "SELECT no_such_column FROM telemetry")


def _envelope(site: str, seq: int) -> bytes:
    return Envelope(
        site_id=site,
        seq=seq,
        boot_id="b",
        ts=datetime.now(UTC),
        kind="telemetry",
        values={"soc_pct": 1.0},
    ).to_json()


def _start_tail(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bessai.cli", "tail", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()  # printed once the subscription is acknowledged
    assert line.startswith("# subscribed to"), line
    return proc


def test_tail_check_reports_gaps_and_duplicates_over_mqtt(mosquitto: BrokerProcess) -> None:
    proc = _start_tail("--mqtt", f"mqtt://127.0.0.1:{mosquitto.port}", "--check", "--count", "6")
    for seq in (0, 1, 3, 3, 4, 5):  # 2 missing, 3 duplicated
        publish.single(
            "bessai/v1/alpha/_/telemetry",
            _envelope("alpha", seq),
            qos=1,
            hostname="127.0.0.1",
            port=mosquitto.port,
        )
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1, err
    assert "# gap: alpha seq 2..2 missing" in out
    assert "# duplicate: alpha seq 3" in out
    report = json.loads(out[out.index("{\n") :])
    assert report["sites"]["alpha"]["missing_ranges"] == ["2"]
    assert report["sites"]["alpha"]["duplicates"] == 1


async def test_tail_check_replays_a_jetstream_stream(
    nats_server: BrokerProcess, tmp_path: Path
) -> None:
    cfg = TelemetryConfig.model_validate(
        {
            "outbox_path": tmp_path / "o.sqlite",
            "sinks": [{"type": "nats", "servers": [f"nats://127.0.0.1:{nats_server.port}"]}],
        }
    )
    pipeline = TelemetryPipeline(cfg)
    await pipeline.start()
    for i in range(25):
        await pipeline.emit_async([Record("alpha", {"cycle": i}), Record("beta", {"cycle": i})])
    assert await pipeline.drain(10.0)
    await pipeline.stop()
    out = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "bessai.cli",
            "tail",
            "--nats",
            f"nats://127.0.0.1:{nats_server.port}",
            "--stream",
            "BESSAI",
            "--check",
            "--count",
            "50",
            "--duration-s",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout[out.stdout.index("{\n") :])
    assert report["ok"] is True
    assert report["sites"]["alpha"]["last_seq"] == 24
    assert report["sites"]["beta"]["received"] == 25


@pytest.mark.parametrize("scheme", ["nats", "mqtt"])
def test_tail_to_a_closed_port_fails_with_one_line(scheme: str) -> None:
    port = free_port()
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "bessai.cli", "tail", f"--{scheme}", f"{scheme}://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    assert out.returncode == 2, out.stderr
    broker = "NATS" if scheme == "nats" else "MQTT broker"
    assert out.stderr.strip() == (
        f"error: cannot reach {broker} at {scheme}://127.0.0.1:{port}: connection refused"
    )
    assert out.stdout == ""
    # Three attempts, one second apart (and the interpreter's start-up).
    assert took < 20, took


def test_tail_retry_waits_for_a_nats_server_that_comes_up_late(tmp_path: Path) -> None:
    server = nats_process(tmp_path)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bessai.cli",
            "tail",
            "--nats",
            f"nats://127.0.0.1:{server.port}",
            "--retry",
            "--count",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(5.0)  # longer than the three attempts it makes without --retry
        assert proc.poll() is None, proc.communicate()
        server.start()
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("# subscribed to bessai.v1.> on nats://127.0.0.1"), line

        async def publish_one() -> None:
            nc = await nats.connect(f"nats://127.0.0.1:{server.port}")
            await nc.publish("bessai.v1.alpha._.telemetry", _envelope("alpha", 7))
            await nc.flush()
            await nc.close()

        asyncio.run(publish_one())
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "alpha/_ telemetry seq=7" in out
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.kill()
