"""The exception hierarchy. Every error a user can cause derives from BessaiError and
carries a message that names what is wrong and where; the CLI prints it without a traceback."""

from __future__ import annotations


class BessaiError(Exception):
    """Base class of every error the product raises on purpose."""


class ConfigError(BessaiError):
    """A configuration file, key or value is invalid."""


class ProfileError(ConfigError):
    """A register profile is invalid (names file, register and field)."""


class DataError(BessaiError):
    """An input data file (prices, scenarios, ...) is malformed."""


class DeviceError(BessaiError):
    """A device could not be read or written."""

    def __init__(self, message: str, *, device: str = "", address: int | None = None) -> None:
        where = []
        if device:
            where.append(f"device {device}")
        if address is not None:
            where.append(f"register {address}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)
        self.device = device
        self.address = address


class ModbusExceptionError(DeviceError):
    """The device answered with a Modbus exception code."""

    def __init__(
        self, code: int, *, device: str = "", address: int | None = None, count: int = 1
    ) -> None:
        name = MODBUS_EXCEPTION_NAMES.get(code, "unknown exception")
        span = f" x{count}" if count > 1 else ""
        super().__init__(f"Modbus exception {code} ({name}){span}", device=device, address=address)
        self.code = code
        self.count = count


class DeviceTimeoutError(DeviceError):
    """The device did not answer within the timeout."""


class UnitNotAnsweringError(DeviceTimeoutError):
    """The TCP connection is up but the unit id has never answered: most often a wrong unit id.
    The message says so in one line, without the device suffix (it names host, port and unit)."""

    def __init__(self, message: str, *, device: str = "") -> None:
        super().__init__(message)
        self.device = device


class DeviceConnectionError(DeviceError):
    """The TCP connection could not be made or was lost."""


class WriteRejectedError(DeviceError):
    """A write was refused before anything was sent (not writable, out of limits)."""


class VerificationError(DeviceError):
    """The value read back after a write differs from the value written."""


MODBUS_EXCEPTION_NAMES: dict[int, str] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
    0x80: "permission denied (login required)",
}


class TelemetryError(BessaiError):
    """The telemetry path (outbox, sinks, lake) failed in a way the caller must hear about."""


class OutboxError(TelemetryError):
    """The outbox database cannot be opened or is not an outbox (names the file)."""


class SinkError(TelemetryError):
    """A sink could not deliver a batch; the forwarder retries it with back-off."""

    def __init__(self, message: str, *, sink: str) -> None:
        super().__init__(f"{message} (sink {sink})")
        self.sink = sink


class SinkAuthError(SinkError):
    """The broker refused the credentials; retrying helps only once an operator fixes them."""


class LedgerError(BessaiError):
    """The credits ledger cannot be read, written or trusted (names the file and record)."""


class PolicyError(BessaiError):
    """A learned policy cannot be loaded, does not fit the site, or gave an unusable answer."""
