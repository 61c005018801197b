"""Encode and decode point values to and from 16-bit holding registers.

Huawei conventions (docs/profiles.md, "Codec"): big-endian words and bytes, physical = raw / gain,
type-specific "invalid" sentinels mean no value, strings are NUL-padded 8-bit text.
Decoding never raises on device data: an unknown enum value stays a number, undecodable text
is replaced, and a sentinel becomes None.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bessai.errors import WriteRejectedError
from bessai.modbus.profile import Point, PointType

#: A decoded value: number in the profile's unit, text, enum label (or the raw number when the
#: label is unknown), tuple of active bit labels for bitfields, or None for "no value".
Value = float | int | str | tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class Decoded:
    """One decoded point: the value a person reads and the raw integer (or text) behind it."""

    value: Value
    raw: int | str | None


def _unsigned(registers: Sequence[int]) -> int:
    raw = 0
    for word in registers:
        raw = (raw << 16) | (word & 0xFFFF)
    return raw


def _to_signed(raw: int, bits: int) -> int:
    return raw - (1 << bits) if raw >= 1 << (bits - 1) else raw


def _check_length(point: Point, registers: Sequence[int]) -> None:
    if len(registers) != point.length:
        raise ValueError(
            f"register {point.address} ({point.name}): expected {point.length} registers, "
            f"got {len(registers)}"
        )


def decode(point: Point, registers: Sequence[int]) -> Decoded:
    """Decode the registers of one point."""
    _check_length(point, registers)
    if point.type is PointType.STR:
        data = b"".join(int(word & 0xFFFF).to_bytes(2, "big") for word in registers)
        text = data.split(b"\x00", 1)[0].decode("utf-8", errors="replace").strip()
        return Decoded(text, text)
    raw_unsigned = _unsigned(registers)
    # Sentinels are defined on the raw bit pattern, before sign and gain.
    if raw_unsigned in point.invalid_raw:
        return Decoded(None, raw_unsigned)
    if point.type is PointType.ENUM:
        assert point.enum is not None
        label = point.enum.get(raw_unsigned)
        return Decoded(label if label is not None else raw_unsigned, raw_unsigned)
    if point.type is PointType.BITFIELD:
        assert point.bits is not None
        active = tuple(text for bit, text in sorted(point.bits.items()) if raw_unsigned >> bit & 1)
        return Decoded(active, raw_unsigned)
    raw = _to_signed(raw_unsigned, 16 * point.length) if point.signed else raw_unsigned
    if point.absolute:
        raw = abs(raw)
    if point.gain == 1:
        return Decoded(raw, raw)
    return Decoded(raw / point.gain, raw)


def _raw_range(point: Point) -> tuple[int, int]:
    bits = 16 * point.length
    if point.signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def raw_to_registers(raw: int, length: int) -> list[int]:
    """Split a non-negative raw integer into `length` big-endian words."""
    return [(raw >> (16 * (length - 1 - i))) & 0xFFFF for i in range(length)]


def _enum_raw(point: Point, value: object) -> int:
    assert point.enum is not None
    if isinstance(value, str):
        for raw, label in point.enum.items():
            if label == value:
                return raw
        stripped = value.strip()
        if stripped.lstrip("-").isdigit():
            return int(stripped)
        choices = ", ".join(f"{raw}={label!r}" for raw, label in sorted(point.enum.items()))
        raise WriteRejectedError(
            f"{value!r} is not a value of {point.name}; choose one of {choices}",
            address=point.address,
        )
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise WriteRejectedError(
            f"{point.name} takes an integer or a label, not {value!r}", address=point.address
        )
    return int(value)


def _bitfield_raw(point: Point, value: object) -> int:
    assert point.bits is not None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, Iterable) and not isinstance(value, str):
        by_label = {label: bit for bit, label in point.bits.items()}
        raw = 0
        for label in value:
            if label not in by_label:
                raise WriteRejectedError(
                    f"{label!r} is not a bit of {point.name}", address=point.address
                )
            raw |= 1 << by_label[label]
        return raw
    raise WriteRejectedError(
        f"{point.name} takes an integer or a list of bit labels, not {value!r}",
        address=point.address,
    )


def encode(point: Point, value: object) -> list[int]:
    """Encode a physical value (number in the profile's unit, label, text) into registers.

    Raises WriteRejectedError when the value cannot be represented; the profile's write limits
    are checked separately (see `bessai.modbus.client`), because they can depend on live values.
    """
    if point.type is PointType.STR:
        if not isinstance(value, str):
            raise WriteRejectedError(f"{point.name} takes text", address=point.address)
        data = value.encode("utf-8")
        if len(data) > 2 * point.length:
            raise WriteRejectedError(
                f"text of {len(data)} bytes does not fit {point.name} ({2 * point.length} bytes)",
                address=point.address,
            )
        data = data.ljust(2 * point.length, b"\x00")
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if point.type is PointType.ENUM:
        raw = _enum_raw(point, value)
    elif point.type is PointType.BITFIELD:
        raw = _bitfield_raw(point, value)
    else:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise WriteRejectedError(
                f"{point.name} takes a number, not {value!r}", address=point.address
            )
        if isinstance(value, int) and point.gain.is_integer():
            raw = value * int(point.gain)  # exact for 64-bit counters, which floats are not
        else:
            raw = round(value * point.gain)
    low, high = _raw_range(point)
    if not low <= raw <= high:
        raise WriteRejectedError(
            f"{value!r} does not fit {point.type} register {point.address} ({point.name})",
            address=point.address,
        )
    if raw < 0:
        raw += 1 << (16 * point.length)
    return raw_to_registers(raw, point.length)


def physical_value(point: Point, value: object) -> float:
    """The numeric value a write would set, for limit checks (enum labels resolved)."""
    if point.type is PointType.ENUM:
        return float(_enum_raw(point, value))
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WriteRejectedError(
            f"{point.name} takes a number, not {value!r}", address=point.address
        )
    return float(value)
