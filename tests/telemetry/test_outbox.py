"""Outbox semantics: seq per site in the same transaction, cursors, cap policy, disk full."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from bessai.errors import OutboxError
from bessai.telemetry.envelope import Record
from bessai.telemetry.outbox import Outbox


def _cycle(i: int, *, alarm: bool = False) -> list[Record]:
    recs = [Record("s1", {"soc_pct": float(i)}), Record("s2", {"grid_power_w": i})]
    if alarm:
        recs.append(Record("s1", {"code": i}, kind="alarm"))
    return recs


def test_seq_is_per_site_and_continues_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    ob = Outbox(path)
    for i in range(3):
        ob.append(_cycle(i, alarm=i == 1))
    ob.close()
    ob = Outbox(path)
    res = ob.append(_cycle(3))
    assert [(e.site_id, e.seq) for e in res.envelopes] == [("s1", 4), ("s2", 3)]
    rows = ob.all_rows()
    for site in ("s1", "s2"):
        seqs = [r.seq for r in rows if r.site_id == site]
        assert seqs == list(range(len(seqs)))
    assert ob.integrity_check() == "ok"


def test_pragmas_are_durable(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")
    assert ob._w.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ob._w.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_rows_leave_only_when_every_sink_acked(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")
    ob.set_sinks(["a", "b"])
    for i in range(5):
        ob.append(_cycle(i))
    rows = ob.all_rows()
    assert ob.ack("a", rows[-1].id) == 0
    assert ob.ack("b", rows[3].id) == 4
    assert ob.stats.rows == 6
    assert ob.pending_for("b")[0] == 6
    assert ob.pending_for("a")[0] == 0
    assert ob.ack("b", rows[-1].id) == 6
    assert ob.stats.rows == 0
    assert ob.stats.bytes == 0
    # Ids are never reused once the table is empty, so cursors stay valid.
    ob.append(_cycle(9))
    assert ob.read_after(ob.cursor("a"), 10)[0].id > rows[-1].id


def test_cap_drops_oldest_telemetry_exactly_and_keeps_alarms(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", max_rows=10)
    dropped = 0
    for i in range(20):
        dropped += ob.append(_cycle(i, alarm=i % 4 == 0)).dropped
    rows = ob.all_rows()
    total = 20 * 2 + 5
    assert len(rows) == 10
    assert dropped == total - 10 == ob.stats.dropped_total
    assert sum(1 for r in rows if r.kind == "alarm") == 5
    # What is left of telemetry is the newest.
    tele = [r for r in rows if r.kind == "telemetry"]
    assert [r.seq for r in tele if r.site_id == "s2"] == [17, 18, 19]
    assert ob.stats.storage_state == "capped"
    ob.set_sinks(["x"])
    ob.ack("x", rows[-1].id)
    assert ob.append(_cycle(99)).storage_state == "ok"


def test_alarms_are_kept_even_beyond_the_cap(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", max_rows=2)
    for i in range(5):
        ob.append([Record("s1", {"code": i}, kind="alarm")])
    assert len(ob.all_rows()) == 5
    assert ob.stats.dropped_total == 0


def test_byte_cap(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", max_bytes=4096)
    for i in range(100):
        ob.append(_cycle(i))
    assert ob.stats.bytes <= 4096
    assert ob.stats.rows + ob.stats.dropped_total == 200


def test_payload_historical_flag(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")
    ob.append([Record("s1", {"note": '"historical":false'})])
    row = ob.all_rows()[0]
    assert row.payload_at(row.ts_us + 1, 10) == row.payload
    late = row.payload_at(row.ts_us + 11, 10)
    assert b'"historical":true' in late
    assert b'\\"historical\\":false' in late  # the string value is untouched


def test_not_an_outbox_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE foo(x)")
    with pytest.raises(OutboxError, match=r"not a bessai outbox \(tables: foo\)"):
        Outbox(path)
    # A damaged file is no longer an error that stops the gateway (issue 13, finding G): it
    # is kept aside and a new outbox started (tests/telemetry/test_outbox_repair.py).
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all" * 100)
    ob = Outbox(garbage)
    assert ob.repair is not None
    assert ob.repair.reason == "file is not a database"
    assert ob.repair.moved_to.read_bytes() == b"not a database at all" * 100
    ob.close()


def test_full_disk_drops_counted_keeps_alarms_and_recovers(tmp_path: Path) -> None:
    from bessai.telemetry.health import telemetry_health

    ob = Outbox(tmp_path / "o.sqlite")
    pages_now = ob._w.execute("PRAGMA page_count").fetchone()[0]
    # A disk that holds a few more pages than the empty outbox: SQLite answers SQLITE_FULL.
    ob.set_max_db_pages(pages_now + 6)
    big = "x" * 400
    tele_sent = alarms_sent = 0
    saw_full = False
    for i in range(300):
        recs = [Record("s1", {"soc_pct": float(i), "note": big})]
        tele_sent += 1
        if i % 10 == 0:
            recs.append(Record("s1", {"code": i, "note": big}, kind="alarm"))
            alarms_sent += 1
        res = ob.append(recs)
        saw_full |= res.storage_state == "full"
    assert saw_full
    health = telemetry_health(ob.stats, [], max_oldest_age_s=60, sink_stale_after_s=60)
    assert health.status == "degraded"
    assert any("dropped telemetry" in r for r in health.reasons), health.reasons
    rows = ob.all_rows()
    stored_tele = sum(1 for r in rows if r.kind == "telemetry")
    assert stored_tele + ob.stats.dropped_total == tele_sent
    assert sum(1 for r in rows if r.kind == "alarm") + ob.stats.held_in_memory == alarms_sent
    assert ob.integrity_check() == "ok"

    ob.set_max_db_pages(None)  # space returns
    res = ob.append([Record("s1", {"soc_pct": 1.0})])
    assert res.storage_state == "ok"
    assert res.held == 0
    rows = ob.all_rows()
    assert sum(1 for r in rows if r.kind == "alarm") == alarms_sent
    # seq stays gap-free for what was stored: held records got their seq when stored.
    stored_seqs = sorted(r.seq for r in rows)
    assert stored_seqs == sorted(set(stored_seqs))
    assert ob.stats.dropped_total + sum(1 for r in rows if r.kind == "telemetry") == tele_sent + 1
    health = telemetry_health(ob.stats, [], max_oldest_age_s=60, sink_stale_after_s=60)
    assert health.status == "degraded"  # held for drop_hold_s after the last drop
    later_us = ob.stats.updated_us + 301 * 1_000_000
    health = telemetry_health(
        ob.stats, [], max_oldest_age_s=60, sink_stale_after_s=60, now_us=later_us
    )
    assert health.status == "ok", health.reasons
    assert ob.integrity_check() == "ok"
    ob.close()
    # The persisted drop count survives a restart.
    assert Outbox(tmp_path / "o.sqlite").stats.dropped_total == ob.stats.dropped_total


def test_full_disk_with_only_alarms_holds_them_in_memory_in_order(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")
    ob.set_max_db_pages(ob._w.execute("PRAGMA page_count").fetchone()[0] + 3)
    states = [
        ob.append([Record("s1", {"code": i, "note": "y" * 500}, kind="alarm")]).storage_state
        for i in range(60)
    ]
    assert states[-1] == "full"
    assert ob.stats.held_in_memory > 0
    stored = len(ob.all_rows())
    assert stored + ob.stats.held_in_memory == 60
    ob.set_max_db_pages(None)
    ob.append([])
    rows = ob.all_rows()
    assert [r.seq for r in rows] == list(range(60))
    codes = [int(r.payload.split(b'"code":')[1].split(b",")[0]) for r in rows]
    assert codes == list(range(60))
    assert ob.stats.dropped_total == 0


def test_io_error_holds_the_cycle_in_memory_and_stores_it_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bessai.telemetry.health import telemetry_health

    ob = Outbox(tmp_path / "o.sqlite")
    ob.append(_cycle(0))
    real = ob._append_tx
    broken = [True]

    def failing(batch: list[Record]) -> object:
        if broken[0]:
            raise sqlite3.OperationalError("disk I/O error")
        return real(batch)

    monkeypatch.setattr(ob, "_append_tx", failing)
    for i in (1, 2):
        res = ob.append(_cycle(i, alarm=True))  # must not raise into the cycle
        assert res.storage_state == "error"
        assert res.envelopes == ()
    assert ob.stats.held_in_memory == 6
    assert ob.stats.dropped_total == 0
    health = telemetry_health(ob.stats, [], max_oldest_age_s=60, sink_stale_after_s=60)
    assert any("cannot be written (disk I/O error" in r for r in health.reasons)

    broken[0] = False
    res = ob.append(_cycle(3))
    assert res.storage_state == "ok"
    assert res.held == 0
    s1 = [(r.seq, r.kind) for r in ob.all_rows() if r.site_id == "s1"]
    assert s1 == [(0, "telemetry"), (1, "telemetry"), (2, "alarm"), (3, "telemetry"),
                  (4, "alarm"), (5, "telemetry")]  # fmt: skip


def test_held_records_are_bounded_and_alarms_survive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bessai.telemetry.outbox as outbox_mod

    monkeypatch.setattr(outbox_mod, "HELD_MAX", 10)
    ob = Outbox(tmp_path / "o.sqlite")

    def failing(batch: list[Record]) -> object:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(ob, "_append_tx", failing)
    dropped = sum(ob.append(_cycle(i, alarm=True)).dropped for i in range(6))
    assert ob.stats.held_in_memory == 10
    assert dropped == 18 - 10 == ob.stats.dropped_total
    assert sum(1 for r in ob._held if r.kind == "alarm") == 6


def test_one_process_per_outbox(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    ob = Outbox(path)
    with pytest.raises(OutboxError, match=rf"in use by another process \(pid {os.getpid()}\)"):
        Outbox(path)
    ob.close()
    Outbox(path).close()  # released on close (and by the OS when a process dies)
