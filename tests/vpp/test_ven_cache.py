"""The VEN's cache: events and unsent reports survive a restart, and the cached events are
installed at once, before the VTN has answered anything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from bessai.config import SiteConfig
from bessai.control.audit import AuditLog
from bessai.control.site import SiteRunner
from bessai.vpp.times import format_datetime
from bessai.vpp.ven import PendingReport, Ven


def runner(tmp_path: Path) -> SiteRunner:
    config = SiteConfig.model_validate(
        {"id": "s1", "vpp": {"enabled": True, "vtn_url": "http://127.0.0.1:9/x", "client_id": "c"}}
    )
    # The VEN never touches the device; the runner is only its view of the site.
    return SiteRunner(config, cast(Any, None), AuditLog(tmp_path / "audit.sqlite"))


async def test_cached_events_are_honoured_after_a_restart(tmp_path: Path) -> None:
    cache = tmp_path / "vpp" / "s1.json"
    start = datetime.now(UTC) - timedelta(minutes=1)
    event = {
        "id": "e1",
        "programID": "p1",
        "modificationDateTime": "2026-01-01T00:00:00Z",
        "intervalPeriod": {"start": format_datetime(start), "duration": "PT1H"},
        "intervals": [{"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [2]}]}],
    }
    first = Ven(runner(tmp_path), cache)
    first.events["e1"] = event
    first.reports["e0"] = PendingReport("e0", [{"id": 0, "payloads": []}])
    await first.close()

    site = runner(tmp_path)
    second = Ven(site, cache)
    try:
        assert site.grid_event.active_limits(datetime.now(UTC))[0] == 2000.0
        assert second.reports["e0"].sent is False
        assert [i.event_id for i in second.active(datetime.now(UTC))] == ["e1"]
        assert site.grid_event.margin_w == 50.0
    finally:
        await second.session.close()


async def test_a_damaged_cache_starts_empty(tmp_path: Path) -> None:
    cache = tmp_path / "vpp" / "s1.json"
    cache.parent.mkdir(parents=True)
    cache.write_text("{not json", encoding="utf-8")
    ven = Ven(runner(tmp_path), cache)
    try:
        assert ven.events == {}
    finally:
        await ven.session.close()


async def test_a_fault_in_measuring_never_reaches_the_cycle(tmp_path: Path) -> None:
    ven = Ven(runner(tmp_path), tmp_path / "vpp" / "s1.json")
    try:
        ven.on_cycle(cast(Any, object()))  # not a CycleRecord: logged, not raised
    finally:
        await ven.session.close()
