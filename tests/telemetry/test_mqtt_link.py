"""The paho-on-asyncio link under the MQTT sink, against a real mosquitto: pipelined batches,
refused connections and messages, a dead link, a stalled link, the last will."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from brokers import (
    MQTT_PASSWORD,
    MQTT_USER,
    BrokerProcess,
    MqttRecorder,
    TcpProxy,
    _mosquitto,
    make_proxy,
    wait_until,
)
from tests.process import free_port

from bessai.telemetry.sinks.mqtt_link import LinkError, LinkSettings, MqttLink


def _settings(port: int, **over: object) -> LinkSettings:
    base: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "client_id": "link-test",
        "connect_timeout_s": 2.0,
        "ack_timeout_s": 1.0,
        "inflight_max": 20,
    }
    base.update(over)
    return LinkSettings(**base)  # type: ignore[arg-type]


def _messages(site: str, seqs: range) -> list[tuple[str, bytes]]:
    return [
        (
            f"bessai/v1/{site}/_/telemetry",
            json.dumps(
                {"site_id": site, "seq": s, "kind": "telemetry", "historical": False}
            ).encode(),
        )
        for s in seqs
    ]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_pipelined_batches_arrive_in_order_and_complete_in_order(
    mosquitto: BrokerProcess,
) -> None:
    recorder = MqttRecorder(mosquitto.port)
    link = await MqttLink.open(_settings(mosquitto.port))
    try:
        # Five batches queued back to back, far beyond the 20-message window.
        futures = [link.send(_messages("alpha", range(i * 300, (i + 1) * 300))) for i in range(5)]
        assert link.pending == 1500
        completed: list[int] = []
        for i, fut in enumerate(futures):
            fut.add_done_callback(lambda _f, i=i: completed.append(i))
        await asyncio.wait_for(asyncio.gather(*futures), 20.0)
        assert completed == [0, 1, 2, 3, 4]
        assert link.pending == 0
        await wait_until(lambda: len(recorder.received) >= 1500, 5.0, "1500 messages")
    finally:
        await link.close()
        recorder.close()
    # One connection, QoS 1: the subscriber sees them in publish order.
    assert [seq for _, seq in recorder.received] == list(range(1500))


async def test_a_closed_port_is_refused_and_leaves_no_socket_open() -> None:
    port = free_port()
    before = _open_fds()
    for _ in range(5):
        with pytest.raises(ConnectionRefusedError):
            await MqttLink.open(_settings(port))
    assert _open_fds() <= before


async def test_wrong_credentials_give_the_brokers_reason_code(
    mosquitto_auth: BrokerProcess,
) -> None:
    with pytest.raises(LinkError) as info:
        await MqttLink.open(_settings(mosquitto_auth.port, username=MQTT_USER, password="wrong"))
    # 3.1.1 CONNACK 4/5, reported by paho as MQTT 5 reason codes 0x86/0x87.
    assert info.value.code in {4, 5, 0x86, 0x87}, info.value
    link = await MqttLink.open(
        _settings(mosquitto_auth.port, username=MQTT_USER, password=MQTT_PASSWORD)
    )
    await asyncio.wait_for(link.send(_messages("alpha", range(3))), 5.0)
    await link.close()


async def test_a_dropped_connection_fails_every_batch_on_it(
    mosquitto: BrokerProcess, tcp_proxy_factory: list[TcpProxy]
) -> None:
    proxy = await make_proxy(tcp_proxy_factory, mosquitto.port)
    link = await MqttLink.open(_settings(proxy.port, ack_timeout_s=30.0))
    proxy.cut()
    first = link.send(_messages("alpha", range(50)))
    second = link.send(_messages("alpha", range(50, 100)))
    await asyncio.sleep(0.2)
    assert not first.done()
    t0 = time.monotonic()
    await proxy.close()  # the peer closes the TCP connection
    for fut in (first, second):
        with pytest.raises(LinkError, match="connection lost"):
            await asyncio.wait_for(fut, 5.0)
    assert time.monotonic() - t0 < 2.0
    with pytest.raises(LinkError):
        link.send(_messages("alpha", range(1)))
    link.abort()


async def test_a_stalled_connection_trips_the_ack_watchdog(
    mosquitto: BrokerProcess, tcp_proxy_factory: list[TcpProxy]
) -> None:
    proxy = await make_proxy(tcp_proxy_factory, mosquitto.port)
    link = await MqttLink.open(_settings(proxy.port, ack_timeout_s=1.0, keepalive_s=60))
    before = _open_fds()
    proxy.cut()  # no FIN, no RST: only the missing PUBACKs tell
    t0 = time.monotonic()
    batch = link.send(_messages("alpha", range(10)))
    with pytest.raises(LinkError, match="ack stall: 10 messages"):
        await asyncio.wait_for(batch, 5.0)
    waited = time.monotonic() - t0
    assert 1.0 <= waited < 2.0, waited
    assert _open_fds() == before - 1, "the stalled socket must be closed"


async def test_a_message_the_broker_refuses_fails_its_batch(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite bessai/v1/alpha/#\n")
    broker = _mosquitto(tmp_path, extra=[f"acl_file {acl}"])
    broker.start()
    try:
        link = await MqttLink.open(_settings(broker.port, protocol_v5=True))
        await asyncio.wait_for(link.send(_messages("alpha", range(5))), 5.0)
        refused = link.send(_messages("alpha", range(5, 7)) + _messages("beta", range(1)))
        # An MQTT 5 broker says why in the PUBACK; the batch must not count as delivered.
        with pytest.raises(LinkError, match="refused a message: Not authorized"):
            await asyncio.wait_for(refused, 5.0)
        link.abort()
    finally:
        broker.kill()


async def test_abort_leaves_the_last_will_and_close_does_not(mosquitto: BrokerProcess) -> None:
    recorder = MqttRecorder(mosquitto.port)
    status = "bessai/v1/alpha/status"
    try:
        for ending in ("abort", "close"):
            link = await MqttLink.open(
                _settings(mosquitto.port, will_topic=status, will_payload=b"offline")
            )
            await asyncio.wait_for(link.send([(status, b"online")], retain=True), 5.0)
            await wait_until(lambda: recorder.status.get(status) == b"online", 5.0, "online")
            if ending == "abort":
                link.abort()
                await wait_until(lambda: recorder.status.get(status) == b"offline", 5.0, "will")
            else:
                await link.close()
                await asyncio.sleep(0.5)
                assert recorder.status.get(status) == b"online", "a clean close sends no will"
    finally:
        recorder.close()
