"""Codec: every type round-trips, sentinels become None, and device data never crashes it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bessai.errors import WriteRejectedError
from bessai.modbus.codec import decode, encode
from bessai.modbus.profile import Point, load_builtin

RANGES = {
    "U16": (0, 0xFFFE),
    "I16": (-0x8000, 0x7FFE),
    "U32": (0, 0xFFFFFFFE),
    "I32": (-0x80000000, 0x7FFFFFFE),
    "U64": (0, 0xFFFFFFFFFFFFFFFE),
    "I64": (-(1 << 63), (1 << 63) - 2),
}


def point(type_: str, **kw: object) -> Point:
    return Point.model_validate(
        {"address": 1000, "name": "p", "description": "d", "type": type_, **kw}
    )


@pytest.mark.parametrize("type_", list(RANGES))
@given(data=st.data())
def test_integer_round_trip(type_: str, data: st.DataObject) -> None:
    low, high = RANGES[type_]
    raw = data.draw(st.integers(low, high))
    p = point(type_)
    registers = encode(p, raw)
    assert len(registers) == p.length
    assert all(0 <= r <= 0xFFFF for r in registers)
    assert decode(p, registers).value == raw


@given(raw=st.integers(-0x8000, 0x7FFE), gain=st.sampled_from([10, 100, 1000]))
def test_gain_round_trip(raw: int, gain: int) -> None:
    p = point("I16", gain=gain)
    value = raw / gain
    assert decode(p, encode(p, value)).value == pytest.approx(value)


@given(text=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30))
def test_string_round_trip_nul_padded(text: str) -> None:
    p = point("STR", length=15)
    registers = encode(p, text)
    assert len(registers) == 15
    assert decode(p, registers).value == text.strip()


@given(raw=st.integers(0, 0xFFFF))
def test_enum_never_crashes_and_keeps_unknown_values(raw: int) -> None:
    p = load_builtin("huawei_sun2000").point("device_status")
    decoded = decode(p, [raw])
    assert p.enum is not None
    if raw in p.enum:
        assert decoded.value == p.enum[raw]
    elif raw == 0xFFFF:
        assert decoded.value is None
    else:
        assert decoded.value == raw


@given(raw=st.integers(0, 0xFFFF))
def test_bitfield_round_trip(raw: int) -> None:
    p = load_builtin("huawei_sun2000").point("alarm_1")
    decoded = decode(p, [raw])
    assert decoded.raw == raw
    assert encode(p, list(decoded.value or ())) == [raw]  # type: ignore[arg-type]


def test_sentinels_become_none() -> None:
    assert decode(point("U16"), [0xFFFF]).value is None
    assert decode(point("I16"), [0x7FFF]).value is None
    assert decode(point("U32"), [0xFFFF, 0xFFFF]).value is None
    assert decode(point("I32"), [0x7FFF, 0xFFFF]).value is None
    assert decode(point("U64"), [0xFFFF] * 4).value is None
    assert decode(point("I64"), [0x7FFF, 0xFFFF, 0xFFFF, 0xFFFF]).value is None
    # Alarm registers 32008/32009 count 0xFFFF as real bits.
    alarm = load_builtin("huawei_sun2000").point("alarm_1")
    assert len(decode(alarm, [0xFFFF]).value or ()) == 16


def test_real_device_frames() -> None:
    """evcc PR #32234: 37765 = [0, 4983] is 4983 W of charging; 37780 = [7, 6112] is
    464 864 -> 4648.64 kWh."""
    luna = load_builtin("huawei_luna2000")
    assert decode(luna.point("power_w"), [0, 4983]).value == 4983
    assert decode(luna.point("power_w"), [0xFFFF, 0xFE0C]).value == -500
    assert decode(luna.point("total_charge_kwh"), [7, 6112]).value == pytest.approx(4648.64)
    sun = load_builtin("huawei_sun2000")
    frame = [0x5355, 0x4E32, 0x3030, 0x302D, 0x3130, 0x4B54, 0x4C2D, 0x4D31] + [0] * 7
    assert decode(sun.point("model_name"), frame).value == "SUN2000-10KTL-M1"


def test_negative_export_counter_is_made_absolute() -> None:
    meter = load_builtin("huawei_dtsu666")
    assert decode(meter.point("exported_energy_kwh"), [0xFFFF, 0xFC18]).value == 10.0


def test_undecodable_text_is_replaced_not_raised() -> None:
    p = point("STR", length=2)
    assert decode(p, [0xFFFE, 0x4100]).value.endswith("A")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("type_", "value"), [("U16", -1), ("U16", 70000), ("I16", 40000), ("U32", 2**32)]
)
def test_encode_rejects_values_the_type_cannot_hold(type_: str, value: int) -> None:
    with pytest.raises(WriteRejectedError, match="does not fit"):
        encode(point(type_), value)


def test_encode_enum_by_label_and_rejects_unknown_label() -> None:
    p = load_builtin("huawei_luna2000").point("forcible_command")
    assert encode(p, "discharge") == [2]
    with pytest.raises(WriteRejectedError, match="choose one of"):
        encode(p, "explode")
