"""A damaged outbox at open: kept aside (never deleted), a new one started, `seq` carried over
so that consumers de-duplicating on (site_id, seq) never drop a new envelope as an old one."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bessai.telemetry import Record, TelemetryConfig, TelemetryPipeline
from bessai.telemetry.outbox import Outbox
from bessai.telemetry.tail import SeqChecker


def _filled(path: Path, cycles: int = 300) -> None:
    ob = Outbox(path)
    for i in range(cycles):
        ob.append([Record("alpha", {"cycle": i, "pad": "x" * 200}), Record("beta", {"cycle": i})])
    ob.close()


def _kept(path: Path) -> list[Path]:
    """The kept damaged files (their -wal/-shm companions aside)."""
    kept = path.parent.glob(f"{path.name}.corrupt-*")
    return sorted(p for p in kept if not p.name.endswith(("-wal", "-shm", "-journal")))


def _damage(path: Path, how: str) -> bytes:
    if how == "garbage":
        path.write_bytes(os.urandom(16384))
    elif how == "truncated":
        _filled(path)
        os.truncate(path, path.stat().st_size // 2)
    elif how == "pages":  # the counters' page survives, a table's interior pages do not
        _filled(path)
        with path.open("r+b") as fh:
            fh.seek(4096 * 5)
            fh.write(os.urandom(4096 * 3))
    return path.read_bytes()


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_an_unreadable_outbox_is_kept_and_seq_continues_from_the_time_floor(
    tmp_path: Path, how: str
) -> None:
    path = tmp_path / "outbox.sqlite"
    damaged = _damage(path, how)
    before_ms = time.time_ns() // 1_000_000
    with capture_logs() as logs:
        ob = Outbox(path)
    critical = [e for e in logs if e["log_level"] == "critical"]
    assert critical, logs
    assert "outbox damaged" in critical[0]["event"]
    (kept,) = _kept(path)
    assert kept.read_bytes() == damaged, "the damaged file is kept byte for byte"
    assert ob.repair is not None
    assert ob.repair.moved_to == kept
    assert ob.repair.seq_floor is not None
    assert ob.repair.seq_floor >= before_ms
    # Any earlier seq (here at most 300) is below the floor: no (site_id, seq) is reused.
    res = ob.append([Record("alpha", {"cycle": 0}), Record("gamma", {"cycle": 0})])
    assert [e.seq for e in res.envelopes] == [ob.repair.seq_floor, ob.repair.seq_floor]
    assert ob.integrity_check() == "ok"
    assert ob.stats.repaired is not None
    assert str(kept) in ob.stats.repaired
    ob.close()
    # Reopened: a sound file now, the floor stays for sites that have not emitted yet.
    ob = Outbox(path)
    assert ob.repair is None
    assert ob.next_seq("alpha") == ob.next_seq("gamma") > before_ms
    assert ob.next_seq("delta") >= before_ms
    ob.close()
    assert len(_kept(path)) == 1


def test_readable_counters_are_salvaged_with_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    damaged = _damage(path, "pages")
    wal = path.with_name(path.name + "-wal")
    wal.write_bytes(b"stale wal of the damaged file")
    ob = Outbox(path)
    assert ob.repair is not None
    assert ob.repair.seq_floor is None
    assert ob.repair.next_seq == {"alpha": 300, "beta": 300}
    assert ob.next_seq("alpha") == 300
    res = ob.append([Record("beta", {"cycle": 300})])
    assert res.envelopes[0].seq == 300
    (kept,) = _kept(path)
    assert kept.read_bytes() == damaged
    # The WAL belongs to the damaged file: it moved with it, not into the new outbox.
    assert kept.with_name(kept.name + "-wal").read_bytes() == b"stale wal of the damaged file"
    assert ob.integrity_check() == "ok"
    ob.close()


def test_a_foreign_database_is_an_error_not_a_repair(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE photos(id INTEGER)")
    from bessai.errors import OutboxError

    with pytest.raises(OutboxError, match="not a bessai outbox"):
        Outbox(path)
    assert _kept(path) == []


def test_leftovers_of_an_interrupted_repair_do_not_matter(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    _damage(path, "garbage")
    path.with_name(path.name + ".repair").write_bytes(b"half-built by a crashed repair")
    ob = Outbox(path)
    assert ob.repair is not None
    assert ob.integrity_check() == "ok"
    assert not path.with_name(path.name + ".repair").exists()
    ob.close()


async def test_the_pipeline_reports_a_repair_loudly_then_as_a_note(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    _damage(path, "garbage")
    cfg = {"outbox_path": path, "drop_hold_s": 0.5}
    pipeline = TelemetryPipeline(TelemetryConfig.model_validate(cfg))
    health = pipeline.health()
    assert health.status == "degraded"
    assert any("was damaged (file is not a database)" in r for r in health.reasons)
    await asyncio.sleep(0.6)
    health = pipeline.health()
    assert health.status == "ok", health.reasons
    assert any("was damaged" in n for n in health.notes)
    await pipeline.stop()


def test_the_seq_checker_takes_a_floor_jump_in_one_range() -> None:
    checker = SeqChecker()
    floor = time.time_ns() // 1_000_000
    for seq in (0, 1, 2, floor, floor + 1):
        checker.add("alpha", seq)
    report = checker.report()["alpha"]
    assert report["missing"] == floor - 3
    assert report["missing_ranges"] == [f"3-{floor - 1}"]
    checker.add("alpha", 3)  # a late re-send fills the start of the range
    assert checker.report()["alpha"]["missing_ranges"] == [f"4-{floor - 1}"]
    checker.add("alpha", 100)
    assert checker.report()["alpha"]["missing_ranges"] == ["4-99", f"101-{floor - 1}"]
    assert not checker.ok
