"""Broker fixtures: each test gets its own mosquitto / nats-server on a free loopback port,
which it can kill and restart on the same port, plus a TCP proxy that can cut the network,
and independent subscribers that record every (site_id, seq) they receive."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import pytest_asyncio
from paho.mqtt.enums import CallbackAPIVersion
from tests.process import (
    LOOPBACK,
    ServerProcess,
    find_binary,
    free_port,
)

#: A broker subprocess on a fixed loopback port that can be killed and restarted.
BrokerProcess = ServerProcess

#: Save after every change (and each second): subscriptions survive a SIGKILL.
SAVE_ON_EVERY_CHANGE = ("autosave_interval 1", "autosave_on_changes true")


def _mosquitto(
    tmp_path: Path,
    *,
    password_file: Path | None = None,
    extra: Sequence[str] = (),
    autosave: Sequence[str] = SAVE_ON_EVERY_CHANGE,
) -> BrokerProcess:
    port = free_port()
    data = tmp_path / f"mosquitto-{port}"
    data.mkdir()
    conf = data / "mosquitto.conf"
    lines = [
        f"listener {port} {LOOPBACK}",
        # Started as root, mosquitto would switch to user `mosquitto` and lose access to
        # the test's private tmp dir; stay whoever we are.
        f"user {getpass.getuser()}",
        "persistence true",
        f"persistence_location {data}/",
        *autosave,
        "max_queued_messages 0",
        "max_inflight_messages 100",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
    ]
    if password_file is not None:
        lines += ["allow_anonymous false", f"password_file {password_file}"]
    else:
        lines += ["allow_anonymous true"]
    lines += list(extra)
    conf.write_text("\n".join(lines) + "\n")
    return BrokerProcess(
        "mosquitto", [find_binary("mosquitto"), "-c", str(conf)], port, data / "broker.log"
    )


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[BrokerProcess]:
    broker = _mosquitto(tmp_path)
    broker.start()
    yield broker
    broker.kill()


MQTT_USER = "gateway"
MQTT_PASSWORD = "correct-horse"


@pytest.fixture
def mosquitto_auth(tmp_path: Path) -> Iterator[BrokerProcess]:
    """Mosquitto that accepts only MQTT_USER / MQTT_PASSWORD (a real password file)."""
    pwfile = tmp_path / "passwd"
    subprocess.run(
        [find_binary("mosquitto_passwd"), "-c", "-b", str(pwfile), MQTT_USER, MQTT_PASSWORD],
        check=True,
        capture_output=True,
    )
    pwfile.chmod(0o600)
    broker = _mosquitto(tmp_path, password_file=pwfile)
    broker.start()
    yield broker
    broker.kill()


def nats_process(tmp_path: Path) -> BrokerProcess:
    """nats-server with JetStream on a free loopback port (not started yet)."""
    port = free_port()
    store = tmp_path / f"nats-{port}"
    store.mkdir()
    return BrokerProcess(
        "nats-server",
        [find_binary("nats-server"), "-js", "-a", LOOPBACK, "-p", str(port), "-sd", str(store)],
        port,
        store / "server.log",
    )


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[BrokerProcess]:
    broker = nats_process(tmp_path)
    broker.start()
    yield broker
    broker.kill()


# -- TCP proxy ---------------------------------------------------------------------------------


class TcpProxy:
    """Loopback TCP proxy that can cut the network.

    While cut, it stops moving bytes in both directions and accepts new connections without
    forwarding them: to the client this looks like a dead link (no FIN, no RST), the case
    that only keep-alives and ack timeouts detect. When restored, held bytes flow again,
    as TCP retransmission would deliver them."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.connections = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        self._open.clear()

    def restore(self) -> None:
        self._open.set()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._open.wait()
                data = await reader.read(65536)
                if not data:
                    break
                await self._open.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await self._open.wait()
        if self._closing:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(LOOPBACK, self.target_port)
        except OSError:
            writer.close()
            return
        for coro in (self._pump(reader, up_writer), self._pump(up_reader, writer)):
            task = asyncio.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        # Accept handlers are the server's tasks: release them instead of cancelling them.
        self._closing = True
        self._open.set()
        if self._server is not None:
            self._server.close()
        await asyncio.sleep(0)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task


@pytest_asyncio.fixture
async def tcp_proxy_factory() -> AsyncIterator[list[TcpProxy]]:
    proxies: list[TcpProxy] = []
    yield proxies
    for p in proxies:
        await p.close()


async def make_proxy(proxies: list[TcpProxy], target_port: int) -> TcpProxy:
    proxy = TcpProxy(target_port)
    await proxy.start()
    proxies.append(proxy)
    return proxy


# -- independent subscribers -------------------------------------------------------------------


@dataclass
class SeqRecorder:
    """Every (site_id, seq) received, in arrival order, plus the envelopes' flags."""

    received: list[tuple[str, int]] = field(default_factory=list)
    historical: set[tuple[str, int]] = field(default_factory=set)
    kinds: dict[tuple[str, int], str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, payload: bytes) -> None:
        doc = json.loads(payload)
        key = (doc["site_id"], doc["seq"])
        with self.lock:
            self.received.append(key)
            self.kinds[key] = doc["kind"]
            if doc["historical"]:
                self.historical.add(key)

    def unique(self, site_id: str) -> set[int]:
        with self.lock:
            return {s for site, s in self.received if site == site_id}

    def duplicates(self) -> int:
        with self.lock:
            return sum(n - 1 for n in Counter(self.received).values() if n > 1)


class MqttRecorder(SeqRecorder):
    """A plain paho subscriber (not our sink code) with a persistent QoS 1 session."""

    def __init__(
        self,
        port: int,
        client_id: str = "test-recorder",
        *,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        super().__init__()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self.add(msg.payload)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.subscribed = threading.Event()
        self.status: dict[str, bytes] = {}
        self.status_history: list[tuple[str, bytes]] = []
        self.client.message_callback_add("bessai/v1/+/status", self._on_status)
        self.client.connect(LOOPBACK, port, keepalive=5)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise TimeoutError("test subscriber could not subscribe")

    def _on_status(self, _c: object, _u: object, msg: paho.MQTTMessage) -> None:
        self.status[msg.topic] = msg.payload
        self.status_history.append((msg.topic, msg.payload))

    def _on_connect(self, client: paho.Client, *_: object) -> None:
        # Subscribe on every connect: a restarted broker may have lost the session.
        client.subscribe([("bessai/v1/+/+/+", 1), ("bessai/v1/+/status", 1)])
        self.subscribed.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def nats_stream_keys(port: int, stream: str = "BESSAI") -> list[tuple[str, int]]:
    """Read the whole JetStream stream back (as a fleet consumer would) -> (site, seq) list."""
    import nats

    nc = await nats.connect(f"nats://{LOOPBACK}:{port}")
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        keys: list[tuple[str, int]] = []
        for i in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(stream, i)
            doc = json.loads(msg.data or b"{}")
            keys.append((doc["site_id"], doc["seq"]))
        return keys
    finally:
        await nc.close()


async def wait_until(predicate: object, timeout_s: float, what: str) -> float:
    """Poll `predicate()` until true; returns the seconds it took; fails naming `what`."""
    assert callable(predicate)
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def established_to(port: int) -> int:
    """Client-side TCP connections of this machine to loopback `port` that are ESTABLISHED
    (from /proc/net/tcp), to catch sockets a client forgot to close."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state = fields[2], fields[3]
        if state == "01" and int(remote.split(":")[1], 16) == port:
            count += 1
    return count
