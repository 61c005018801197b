"""The Modbus TCP server that re-serves a site's device to other clients (docs/proxy.md).

The gateway stays the device's one client. Reads are answered from the words the gateway's
cycle read (`ServedImage`), or busy (exception 6) when those are older than stated, never
silently old; registers the gateway does not poll are read on demand through its connection
(`OnDemandReader`); writes go through `ClientWrites` and so through the safety verdict; Huawei's
identification and login requests are answered as the device answers them (`proxy.huawei`).

The transport is asyncio streams with pymodbus framing and PDUs, like the simulator's, so each
request knows its client's address (allow list, writers, audit) and a connection that asks
faster than `client_requests_per_s` waits for its turn instead of taking the loop from the
cycle (`max_clients` bounds the connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import time
from collections.abc import Callable

import structlog
from prometheus_client import CollectorRegistry
from pymodbus.framer import FramerSocket
from pymodbus.pdu import DecodePDU, ModbusPDU
from pymodbus.pdu.mei_message import ReadDeviceInformationResponse
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
)

from bessai.config import ProxyConfig
from bessai.control.site import CycleRecord, SiteRunner
from bessai.errors import BessaiError
from bessai.modbus.client import ModbusDevice
from bessai.modbus.serving import client_requests, exception_answer, send_answer, write_answer
from bessai.ports import bind_problem
from bessai.proxy.fetch import OnDemandReader
from bessai.proxy.huawei import (
    IDENTITY_POINTS,
    LoginSession,
    PrivateRequest,
    device_information,
    identity_text,
)
from bessai.proxy.image import Answer, Freshness, ServedImage
from bessai.proxy.metrics import ProxyMetrics
from bessai.proxy.writes import ClientWrites, RefusedError

log = structlog.get_logger("bessai.proxy")

ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE, DEVICE_FAILURE, DEVICE_BUSY = 1, 2, 3, 4, 6
SUN = "huawei_sun2000"


class _Throttle:
    """A token bucket per connection: `rate_per_s` requests a second, one second's worth in a
    burst. A request over the rate waits; it is never dropped."""

    def __init__(self, rate_per_s: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = max(1.0, rate_per_s)
        self.tokens = self.burst
        self.at = time.monotonic()

    def delay_s(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate_per_s)
        self.at = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate_per_s


def client_address(host: str) -> str:
    """The client's address as configured: IPv4-mapped IPv6 addresses as IPv4."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def freshness(config: ProxyConfig, site: SiteRunner) -> Freshness:
    """The configured ages, or the windows the process image itself judges values by."""
    stale_after_s = site.config.safety.stale_after_s
    slow_window_s = stale_after_s + site.config.slow_every * site.config.cycle_s
    return Freshness(
        fast_max_age_s=config.fast_max_age_s or stale_after_s,
        slow_max_age_s=config.slow_max_age_s or slow_window_s,
        on_demand_max_age_s=config.on_demand_max_age_s,
    )


class ProxyServer:
    """Serves one site's Modbus device to any number of local clients."""

    def __init__(
        self,
        config: ProxyConfig,
        site: SiteRunner,
        device: ModbusDevice,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.config = config
        self.site = site
        self.device = device
        self.host = config.host
        self.port = config.port
        self.unit_ids = frozenset(config.unit_ids)
        self.allowed = [ipaddress.ip_network(c, strict=False) for c in config.allowed_clients]
        self.image = ServedImage(device, freshness(config, site))
        self.metrics = ProxyMetrics(site.id, registry)
        self.reader = OnDemandReader(
            device,
            config.on_demand_interval_s,
            config.on_demand_max_wait_s,
            refused_for_s=config.on_demand_max_age_s,
            on_read=self.image.merge,
            on_sent=self.metrics.device_read,
        )
        self.writes = ClientWrites(site, device, self.image, config.writers)
        self.connections: dict[asyncio.StreamWriter, str] = {}
        self.metrics.count_clients(lambda: len(self.connections))
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._logged: set[tuple[str, str]] = set()
        #: told of every client request (client, function code, address, count): the security
        #: monitor looks for sweeps and write bursts here
        self.request_listeners: list[Callable[[str, int, int, int], None]] = []

    # -- lifecycle ----------------------------------------------------------------------------

    @staticmethod
    def check_port(host: str, port: int) -> None:
        """Fail in one line, before the gateway starts, when the port cannot be had."""
        exc = bind_problem(host, port)
        if exc is not None:
            raise _listen_error(host, port, exc)

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._on_connect, self.host, self.port)
        except OSError as exc:
            raise _listen_error(self.host, self.port, exc) from None
        sockets = list(self._server.sockets)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self.site.listeners.append(self._on_cycle)
        log.info("proxy listening", site=self.site.id, host=self.host, port=self.port,
                 unit_ids=sorted(self.unit_ids), writers=len(self.config.writers))  # fmt: skip

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.site.listeners.remove(self._on_cycle)
        if self._server is not None:
            self._server.close()
        for writer in list(self.connections):
            writer.close()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=2.0)
        await self.reader.close()
        await self.writes.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> ProxyServer:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def _on_cycle(self, record: CycleRecord) -> None:
        # Called inside the cycle: cheap, and never a reason for the cycle to fail.
        try:
            self.image.publish()
            self.writes.on_cycle(record)
        except Exception:
            log.exception("proxy could not take the cycle's registers", site=self.site.id)

    # -- connections --------------------------------------------------------------------------

    def _allowed(self, client: str) -> bool:
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in network for network in self.allowed)

    def _log_once(self, client: str, what: str, **fields: object) -> None:
        key = (client, what)
        (log.debug if key in self._logged else log.warning)(what, client=client, **fields)
        self._logged.add(key)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        peer = writer.get_extra_info("peername")
        client = client_address(str(peer[0])) if peer else "unknown"
        try:
            if not self._allowed(client):
                self.metrics.refused("not_allowed")
                self._log_once(client, "proxy connection refused: address not in allowed_clients")
                return
            if len(self.connections) >= self.config.max_clients:
                self.metrics.refused("too_many")
                self._log_once(client, "proxy connection refused: max_clients reached",
                               max_clients=self.config.max_clients)  # fmt: skip
                return
            self.connections[writer] = client
            log.info("proxy client connected", client=client, clients=len(self.connections))
            await self._serve(reader, writer, client)
        finally:
            if self.connections.pop(writer, None) is not None:
                log.info("proxy client left", client=client, clients=len(self.connections))
            writer.close()
            if task is not None:
                self._handlers.discard(task)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str
    ) -> None:
        decoder = DecodePDU(True)
        decoder.register(PrivateRequest)
        framer = FramerSocket(decoder)
        session = LoginSession(self.config.login_password.get_secret_value())
        throttle = _Throttle(self.config.client_requests_per_s)
        requests = client_requests(reader, writer, framer, _bad_frame_code)
        async with contextlib.aclosing(requests):
            async for pdu in requests:
                delay_s = throttle.delay_s()
                if delay_s > 0:
                    await asyncio.sleep(delay_s)
                try:
                    answer = await self._answer(pdu, client, session)
                except Exception:
                    # A fault of ours is the device's "failure" to the client, never a dead
                    # connection handler.
                    log.exception("proxy could not answer a request", client=client)
                    answer = exception_answer(pdu, DEVICE_FAILURE)
                if answer is None or writer.is_closing():
                    continue
                await send_answer(writer, framer, answer)

    # -- answers ------------------------------------------------------------------------------

    async def _answer(
        self, request: ModbusPDU, client: str, session: LoginSession
    ) -> ModbusPDU | None:
        if request.dev_id not in self.unit_ids:
            return None  # as on the device: a unit id it does not have gets no answer
        fc = request.function_code
        for listener in self.request_listeners:
            listener(client, fc, getattr(request, "address", 0), getattr(request, "count", 0))
        if fc == 3:
            return await self._read(request)
        if fc in (6, 16):
            return await self._write(request, client)
        if fc == 0x2B:
            return self._identify(request)
        if fc == PrivateRequest.function_code:
            assert isinstance(request, PrivateRequest)
            self.metrics.answered("login")
            answer = session.answer(request)
            if answer is not None and session.logged_in:
                log.info("proxy client logged in", client=client)
            return answer if answer is not None else exception_answer(request, ILLEGAL_FUNCTION)
        self.metrics.answered("exception")
        return exception_answer(request, ILLEGAL_FUNCTION)

    async def _read(self, request: ModbusPDU) -> ModbusPDU:
        start, count = request.address, request.count
        served = self.image.lookup(start, count, time.monotonic())
        answer = "cache"
        if served.answer is Answer.FETCH and served.span is not None:
            result = await self.reader.read(*served.span)
            if isinstance(result, int):
                self.metrics.answered("busy" if result == DEVICE_BUSY else "exception")
                return exception_answer(request, result)
            served = self.image.lookup(start, count, time.monotonic())
            answer = "forwarded"
        if served.answer is Answer.WORDS:
            self.metrics.answered(answer)
            return ReadHoldingRegistersResponse(
                registers=list(served.words),
                dev_id=request.dev_id,
                transaction_id=request.transaction_id,
            )
        if served.answer is Answer.REFUSED:
            self.metrics.answered("exception")
            return exception_answer(request, ILLEGAL_ADDRESS)
        self.metrics.answered("busy")
        return exception_answer(request, DEVICE_BUSY)

    async def _write(self, request: ModbusPDU, client: str) -> ModbusPDU:
        registers = list(request.registers)
        try:
            outcome = await self.writes.write(client, request.address, registers, time.monotonic())
        except RefusedError as refused:
            self.metrics.answered("exception")
            self.metrics.wrote("refused", refused.code)
            self._log_once(client, "proxy write refused", address=request.address,
                           code=refused.code, reason=refused.reason)  # fmt: skip
            return exception_answer(request, refused.code)
        self.metrics.answered("write")
        self.metrics.wrote(outcome)
        return write_answer(request, registers)

    def _identify(self, request: ModbusPDU) -> ModbusPDU:
        """Device identification from the identity block the gateway read at connect."""
        identity: dict[str, str] = {}
        profile = self.device.profiles.get(SUN)
        now = time.monotonic()
        points = [profile.point(name) for name in IDENTITY_POINTS] if profile is not None else []
        for point in points:
            served = self.image.lookup(point.address, point.length, now)
            if served.answer is Answer.WORDS:
                identity[point.name] = identity_text(point, list(served.words))
        if "model_name" not in identity:
            self.metrics.answered("busy")
            return exception_answer(request, DEVICE_BUSY)  # not read yet: ask again
        read_code = int(getattr(request, "read_code", 1))
        object_id = int(getattr(request, "object_id", 0))
        information = device_information(read_code, object_id, identity, request.dev_id)
        if information is None:
            self.metrics.answered("exception")
            return exception_answer(request, ILLEGAL_ADDRESS)
        self.metrics.answered("identification")
        return ReadDeviceInformationResponse(
            read_code=read_code,
            information=information,
            dev_id=request.dev_id,
            transaction_id=request.transaction_id,
        )


def _listen_error(host: str, port: int, exc: OSError) -> BessaiError:
    why = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
    return BessaiError(f"proxy: cannot listen on {host}:{port}: {why} (set [proxy] port or host)")


def _bad_frame_code(function_code: int) -> int:
    # A frame that does not decode: a count beyond 125 is an illegal value, an unknown
    # function code an illegal function, as on the device.
    return ILLEGAL_VALUE if function_code in (3, 6, 16) else ILLEGAL_FUNCTION
