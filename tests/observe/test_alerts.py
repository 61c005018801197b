"""The alert manager: fire once, de-duplicate, resolve, severities, hooks, metrics, and webhook
delivery with retries against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bessai.config import AlertsConfig
from bessai.control.site import SiteRunner
from bessai.observe.alerts import AlertManager, Severity, WebhookSender
from bessai.simulator.server import SimulatorServer

T0 = datetime(2026, 1, 15, 16, 0, tzinfo=UTC)


def gauge(registry: CollectorRegistry, severity: str) -> float | None:
    return registry.get_sample_value("bessai_alerts_active", {"severity": severity})


def test_fire_deduplicates_and_resolve_moves_to_history() -> None:
    registry = CollectorRegistry()
    manager = AlertManager(registry=registry)
    events: list[tuple[str, int]] = []
    manager.listeners.append(lambda event, alert: events.append((event, alert.id)))
    first = manager.fire("s1", "safety_block", "manual", Severity.WARNING, "blocked: 46 °C", T0)
    again = manager.fire(
        "s1",
        "safety_block",
        "manual",
        Severity.WARNING,
        "blocked: 47 °C",
        T0 + timedelta(seconds=5),
    )
    assert again.id == first.id
    assert again.count == 2
    assert again.message == "blocked: 47 °C"
    assert again.first_utc == T0
    assert len(manager.active()) == 1
    assert gauge(registry, "warning") == 1
    assert registry.get_sample_value("bessai_alerts_fired_total", {"severity": "warning"}) == 1
    manager.resolve("s1", "safety_block", "manual", T0 + timedelta(seconds=9))
    assert manager.active() == []
    assert gauge(registry, "warning") == 0
    (resolved,) = manager.recent()
    assert resolved.resolved_utc == T0 + timedelta(seconds=9)
    assert not resolved.active
    assert events == [("fired", first.id), ("resolved", first.id)]


def test_a_severity_change_is_a_new_alert() -> None:
    manager = AlertManager()
    low = manager.fire(None, "outbox_backlog", "", Severity.WARNING, "1 200 envelopes", T0)
    high = manager.fire(None, "outbox_backlog", "", Severity.CRITICAL, "15 000 envelopes", T0)
    assert high.id != low.id
    assert [a.severity for a in manager.active()] == [Severity.CRITICAL]
    assert manager.recent()[0].id == low.id


def test_history_is_bounded_and_active_sorted_by_severity() -> None:
    manager = AlertManager(AlertsConfig(history=10))
    for i in range(50):
        manager.fire("s", "anomaly", str(i), Severity.INFO, "x", T0)
        manager.resolve("s", "anomaly", str(i), T0)
    assert len(manager.recent(limit=100)) == 10
    manager.fire("s", "anomaly", "a", Severity.INFO, "x", T0)
    manager.fire("s", "anomaly", "b", Severity.CRITICAL, "x", T0 + timedelta(seconds=1))
    assert [a.subject for a in manager.active()] == ["b", "a"]


def test_hooks_for_outbox_backlog_and_anomaly_scores() -> None:
    manager = AlertManager()
    manager.report_outbox_backlog(depth=50, limit=1000)
    assert manager.active() == []
    manager.report_outbox_backlog(depth=1500, limit=1000)
    (backlog,) = manager.active()
    assert backlog.severity is Severity.WARNING
    assert backlog.site is None
    assert backlog.message == "telemetry outbox holds 1500 envelopes (limit 1000)"
    manager.report_outbox_backlog(depth=12_000, limit=1000)
    assert manager.active()[0].severity is Severity.CRITICAL
    manager.report_outbox_backlog(depth=10, limit=1000)
    assert manager.active() == []
    manager.report_anomaly("s1", 4.2, 3.0, "battery temperature rise")
    assert manager.active()[0].message == ("anomaly score 4.2 above 3: battery temperature rise")
    manager.report_anomaly("s1", 1.0, 3.0, "battery temperature rise")
    assert manager.active() == []
    manager.report_telemetry(["sink mqtt (127.0.0.1:1883): oldest unsent envelope is 300 s old"])
    (telemetry,) = manager.active()
    assert telemetry.severity is Severity.WARNING
    assert telemetry.message.startswith("telemetry degraded: sink mqtt")
    manager.report_telemetry(["outbox storage is full"], storage_state="full")
    assert manager.active()[0].severity is Severity.CRITICAL
    manager.report_telemetry([])
    assert manager.active() == []
    with pytest.raises(ValueError, match="belongs to the cycle"):
        manager.report("failsafe", True, "x")


async def test_cycle_conditions_fire_and_resolve_against_the_simulator(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner]
) -> None:
    registry = CollectorRegistry()
    manager = AlertManager(registry=registry)
    runner = make_runner()
    runner.listeners.append(lambda record: manager.observe(runner, record))
    await runner.step()
    assert manager.active() == []
    # Battery Reverse Connection (blocking, major) and PV String Loss (warning) on 32010.
    sim.device.overrides["alarm_3"] = (1 << 4) | (1 << 6)
    runner.override.set(2000, datetime.now(UTC), 60, "charge")
    await asyncio.sleep(0.05)
    await runner.step()
    kinds = {(a.kind, a.subject): a.severity for a in manager.active("t1")}
    assert kinds[("device_alarm", "Battery Reverse Connection (2069, major)")] is Severity.CRITICAL
    assert kinds[("device_alarm", "PV String Loss (2015, warning)")] is Severity.INFO
    assert kinds[("safety_limit", "alarm")] is Severity.CRITICAL
    latch = next(a for a in manager.active() if a.kind == "safety_limit")
    assert latch.message.startswith("guard blocks charging and discharging: device alarm: Battery")
    assert kinds[("safety_block", "manual")] is Severity.WARNING
    assert gauge(registry, "critical") == 2
    await runner.step()  # still there: the same alerts, counted again
    block = next(a for a in manager.active() if a.kind == "safety_block")
    assert block.count == 2
    del sim.device.overrides["alarm_3"]
    sim.device.set("alarm_3", 0)
    await asyncio.sleep(0.05)
    await runner.step()
    assert manager.active() == []
    assert gauge(registry, "critical") == 0
    assert {a.kind for a in manager.recent()} == {"device_alarm", "safety_limit", "safety_block"}


async def test_stale_data_fires_a_critical_failsafe_alert(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner]
) -> None:
    manager = AlertManager()
    runner = make_runner()
    runner.listeners.append(lambda record: manager.observe(runner, record))
    await runner.step()
    sim.faults.silence_until = float("inf")
    for _ in range(8):
        await runner.step()
        if any(a.kind == "failsafe" for a in manager.active()):
            break
    failsafe = next(a for a in manager.active() if a.kind == "failsafe")
    assert failsafe.severity is Severity.CRITICAL
    assert "no good battery data" in failsafe.message


# -- webhook -------------------------------------------------------------------------------------


class Receiver:
    """A minimal HTTP/1.1 server on loopback answering with scripted status codes."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode().split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                body = await reader.readexactly(length)
                self.bodies.append(json.loads(body))
                self.times.append(asyncio.get_running_loop().time())
                status = self.statuses.pop(0) if self.statuses else 200
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> Receiver:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def test_webhook_retries_with_backoff_then_delivers_in_order() -> None:
    async with Receiver([503, 503]) as rx:
        config = AlertsConfig(
            webhook_url=f"http://127.0.0.1:{rx.port}/hook?token=s3cret",
            webhook_backoff_s=0.05,
            webhook_retries=3,
        )
        sender = WebhookSender(config)
        manager = AlertManager(config, webhook=sender)
        sender.start()
        manager.fire("s1", "failsafe", "", Severity.CRITICAL, "SAFE: no data", T0)
        manager.fire("s1", "safety_limit", "soc_high", Severity.INFO, "full", T0)  # below min
        manager.resolve("s1", "failsafe", "", T0)
        for _ in range(100):
            if sender.delivered == 2:
                break
            await asyncio.sleep(0.02)
        await manager.close()
    assert sender.delivered == 2
    assert [(b["event"], b["alert"]["kind"]) for b in rx.bodies] == [
        ("fired", "failsafe"), ("fired", "failsafe"), ("fired", "failsafe"),
        ("resolved", "failsafe"),
    ]  # fmt: skip
    gaps = [b - a for a, b in zip(rx.times, rx.times[1:3], strict=False)]
    assert gaps[0] >= 0.045
    assert gaps[1] >= 0.09  # back-off doubles
    assert sender.host == f"127.0.0.1:{rx.port}"


async def test_webhook_gives_up_on_a_client_error_and_on_a_dead_receiver(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with Receiver([400]) as rx:
        config = AlertsConfig(
            webhook_url=f"http://127.0.0.1:{rx.port}/hook", webhook_backoff_s=0.01
        )
        sender = WebhookSender(config)
        sender.start()
        manager = AlertManager(config, webhook=sender)
        manager.fire("s1", "failsafe", "", Severity.CRITICAL, "x", T0)
        await manager.close()
    assert len(rx.bodies) == 1  # 400 is not retried
    assert sender.failed == 1
    port = rx.port  # now closed: connection refused on every attempt
    config = AlertsConfig(
        webhook_url=f"http://127.0.0.1:{port}/hook?token=s3cret",
        webhook_backoff_s=0.01,
        webhook_retries=2,
    )
    sender = WebhookSender(config)
    sender.start()
    manager = AlertManager(config, webhook=sender)
    manager.fire("s1", "failsafe", "", Severity.CRITICAL, "x", T0)
    for _ in range(100):
        if sender.failed:
            break
        await asyncio.sleep(0.02)
    await manager.close()
    assert sender.failed == 1
    assert "s3cret" not in capsys.readouterr().err


def test_webhook_queue_is_bounded() -> None:
    sender = WebhookSender(AlertsConfig(webhook_url="http://127.0.0.1:9/hook"))
    manager = AlertManager(webhook=sender)
    for i in range(WebhookSender.QUEUE_MAX + 5):
        manager.fire("s", "anomaly", str(i), Severity.CRITICAL, "x", T0)
    assert sender.dropped == 5
