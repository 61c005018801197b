"""Huawei's own requests, answered the way the inverter answers them.

- **Device identification** (FC 0x2B / MEI 0x0E): read code 1-2 gives vendor "HUAWEI", the model
  and the software version; read code 3 from object 0x87 gives Huawei's device list (object 0x87
  the number of devices, then one "1=model;2=software;3=protocol;4=serial;5=unit id" entry per
  device), which Home Assistant's discovery probes. Both are built from the identity block the
  gateway read at connect (30000-30069), so they cost the device nothing.
- **Login** (private FC 0x41): sub-function 0x24 hands out a 16-byte challenge, 0x25 checks the
  client's HMAC-SHA256 (key SHA-256 of the password) over it and answers with the proxy's own
  HMAC over the client's challenge, so a client that verifies the answer (mutual
  authentication) accepts it. A login grants nothing: what a client may write is set by its
  address in `[proxy] writers`. Other sub-functions (file uploads) answer "illegal function".
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct

from pymodbus.pdu import ModbusPDU

from bessai.modbus.codec import decode
from bessai.modbus.profile import Point

LOGIN_CHALLENGE = 0x24
LOGIN = 0x25
CHALLENGE_BYTES = 16
DEVICE_LIST_OBJECT = 0x87

#: identity points (huawei_sun2000) the identification answers are made of
IDENTITY_POINTS = (
    "model_name",
    "serial_number",
    "software_version",
    "modbus_protocol_version",
)


class PrivateRequest(ModbusPDU):
    """A request with Huawei's private function code 0x41: a sub-function and its bytes."""

    function_code = 0x41
    rtu_byte_count_pos = 3

    def __init__(self, dev_id: int = 0, transaction_id: int = 0) -> None:
        super().__init__(dev_id=dev_id, transaction_id=transaction_id)
        self.sub_command = -1
        self.content = b""

    def decode(self, data: bytes) -> None:
        self.sub_command = int(data[0]) if data else -1
        self.content = bytes(data[1:])

    def encode(self) -> bytes:
        return bytes([self.sub_command & 0xFF, *self.content])


class PrivateResponse(ModbusPDU):
    """The answer to a `PrivateRequest`: sub-function, length of what follows, content."""

    function_code = 0x41

    def __init__(
        self, sub_command: int, content: bytes, dev_id: int = 0, transaction_id: int = 0
    ) -> None:
        super().__init__(dev_id=dev_id, transaction_id=transaction_id)
        self.sub_command = sub_command
        self.content = content

    def encode(self) -> bytes:
        return bytes([self.sub_command, len(self.content), *self.content])


def digest(password: str, seed: bytes) -> bytes:
    """Huawei's login MAC: HMAC-SHA256 keyed with the SHA-256 of the password."""
    key = hashlib.sha256(password.encode("utf-8")).digest()
    return hmac.digest(key, seed, "sha256")


class LoginSession:
    """One connection's login state (the challenge it was given, whether it logged in)."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.challenge: bytes | None = None
        self.logged_in = False

    def answer(self, request: PrivateRequest) -> PrivateResponse | None:
        """The response to a login sub-function, or None for a sub-function not served."""
        if request.sub_command == LOGIN_CHALLENGE:
            self.challenge = secrets.token_bytes(CHALLENGE_BYTES)
            # 17 bytes follow the length: the challenge and one reserved byte.
            return self._response(request, self.challenge + b"\x00")
        if request.sub_command == LOGIN:
            client_challenge = self._check(request.content)
            if client_challenge is None:
                self.logged_in = False
                return self._response(request, b"\x01\x00")  # failure flag, no MAC
            self.logged_in = True
            mac = digest(self.password, client_challenge)
            # success flag, MAC length, MAC, password status 0 (normal)
            return self._response(request, bytes([0, len(mac)]) + mac + b"\x00\x00")
        return None

    def _check(self, content: bytes) -> bytes | None:
        """The client's challenge when its MAC over ours is right, else None."""
        try:
            # total length, client challenge (16), user length, user, MAC length, MAC
            offset = 1
            client_challenge = content[offset : offset + CHALLENGE_BYTES]
            offset += CHALLENGE_BYTES
            user_len = content[offset]
            offset += 1 + user_len
            mac_len = content[offset]
            mac = content[offset + 1 : offset + 1 + mac_len]
        except IndexError:
            return None
        if self.challenge is None or len(client_challenge) != CHALLENGE_BYTES:
            return None
        if not hmac.compare_digest(mac, digest(self.password, self.challenge)):
            return None
        return bytes(client_challenge)

    @staticmethod
    def _response(request: PrivateRequest, content: bytes) -> PrivateResponse:
        return PrivateResponse(request.sub_command, content, request.dev_id, request.transaction_id)


def identity_text(point: Point, words: list[int]) -> str:
    """A STR identity point's words as text (NULs and padding removed)."""
    value = decode(point, words).value
    return "" if value is None else str(value)


def device_information(
    read_code: int, object_id: int, identity: dict[str, str], unit_id: int
) -> dict[int, bytes] | None:
    """The objects to answer a device identification request with, or None when the request
    asks for an object the device does not have (exception 2)."""
    model = identity.get("model_name", "")
    software = identity.get("software_version", "")
    if read_code in (1, 2):
        return {0: b"HUAWEI", 1: model.encode(), 2: software.encode()}
    if read_code == 3 and object_id <= DEVICE_LIST_OBJECT:
        entry = ";".join(
            f"{key}={value}"
            for key, value in (
                (1, model),
                (2, software),
                (3, identity.get("modbus_protocol_version", "")),
                (4, identity.get("serial_number", "")),
                (5, str(unit_id)),
            )
        )
        return {DEVICE_LIST_OBJECT: struct.pack(">B", 1), DEVICE_LIST_OBJECT + 1: entry.encode()}
    if read_code == 4 and object_id in (0, 1, 2):
        return {object_id: (b"HUAWEI", model.encode(), software.encode())[object_id]}
    return None
