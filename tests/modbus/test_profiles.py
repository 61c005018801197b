"""The shipped profiles cover what a BESS gateway needs, and a broken profile names its fault."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bessai.errors import ProfileError
from bessai.modbus.profile import (
    BUILTIN_PROFILES,
    Access,
    PointType,
    PollGroup,
    load_builtin,
    load_profile,
    load_profile_file,
)

REQUIRED = {
    "huawei_sun2000": [30000, 30015, 30025, 30035, 30050, 30070, 30071, 30072, 30073, 30075,
                       32000, 32002, 32003, 32008, 32009, 32010, 32016, 32017, 32062, 32063,
                       32064, 32080, 32085, 32087, 32089, 32095, 32106, 32114, 49999],
    "huawei_luna2000": [37760, 37762, 37765, 37780, 37782, 37022, 37046, 37048, 37758,
                        47075, 47077, 47081, 47082, 47083, 47086, 47087, 47100, 47101,
                        47246, 47247, 47249],
    "huawei_dtsu666": [37100, 37101, 37107, 37113, 37117, 37118, 37119, 37121, 37125, 37138],
}  # fmt: skip

STORAGE_CONTROL = [47075, 47077, 47081, 47082, 47083, 47086, 47087, 47100, 47101, 47246, 47247,
                   47249]  # fmt: skip


@pytest.mark.parametrize("name", BUILTIN_PROFILES)
def test_builtin_profile_covers_the_reference(name: str) -> None:
    profile = load_builtin(name)
    addresses = {p.address for p in profile.points}
    missing = [a for a in REQUIRED[name] if a not in addresses]
    assert not missing


def test_types_gains_and_signs_follow_the_reference() -> None:
    luna = load_builtin("huawei_luna2000")
    assert luna.point("soc_pct").gain == 10
    assert luna.point("power_w").type is PointType.I32
    assert luna.point("unit1_temp_c").type is PointType.I16
    assert luna.point("unit1_temp_c").group is PollGroup.FAST
    assert luna.point("forcible_period_min").unit == "min"  # 47083 is a period, not a power
    meter = load_builtin("huawei_dtsu666")
    assert meter.point("active_power_w").address == 37113
    assert meter.point("exported_energy_kwh").absolute
    sun = load_builtin("huawei_sun2000")
    assert sun.point("alarm_1").invalid == []  # 0xFFFF is a real alarm value on 32008/32009
    assert sun.point("alarm_2").invalid == []
    assert 0x030C in (sun.point("device_status").enum or {})
    assert sun.point("heartbeat").access is Access.W


def test_storage_control_registers_are_writable_with_limits() -> None:
    luna = load_builtin("huawei_luna2000")
    for point in luna.points:
        if point.address in STORAGE_CONTROL:
            assert point.access is Access.RW, point.name
            assert point.enum is not None or (point.min is not None and point.max is not None)
    assert luna.point("charge_cutoff_soc_pct").min == 90
    assert luna.point("discharge_cutoff_soc_pct").max == 20
    assert luna.point("forcible_period_min").max == 1440
    assert luna.point("forcible_charge_power_w").max_point == "max_charge_power_w"
    assert luna.point("forcible_discharge_power_w").max_point == "max_discharge_power_w"


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


def _valid() -> dict[str, object]:
    return {
        "name": "test_device",
        "description": "t",
        "kind": "meter",
        "blocks": [{"start": 100, "end": 110}],
        "points": [
            {"address": 100, "name": "power_w", "description": "p", "type": "I32", "group": "fast"},
            {"address": 102, "name": "limit_w", "description": "l", "type": "U16",
             "access": "RW", "min": 0, "max": 10},
        ],
    }  # fmt: skip


def test_valid_custom_profile_loads(tmp_path: Path) -> None:
    profile = load_profile(str(_write(tmp_path, _valid())))
    assert profile.point("power_w").length == 2


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["points"][1].update(type="U32", length=1), "register 102 (limit_w)"),
        (lambda d: d["points"][1].pop("max"), "register 102 (limit_w)"),
        (lambda d: d["points"][0].update(gain=0), "register 100 (power_w), field gain"),
        (lambda d: d["points"][0].update(address=70000), "field address"),
        (lambda d: d["points"][1].update(address=101), "overlaps"),
        (lambda d: d["points"][1].update(address=200), "not inside any served block"),
        (lambda d: d["points"][1].update(name="power_w"), "duplicate point name"),
        (lambda d: d["points"][0].update(type="float"), "register 100 (power_w), field type"),
        (lambda d: d["points"][0].update(colour="red"), "field colour"),
    ],
)
def test_bad_profile_error_names_file_register_and_field(
    tmp_path: Path, mutate: object, expected: str
) -> None:
    data = _valid()
    mutate(data)  # type: ignore[operator]
    path = _write(tmp_path, data)
    with pytest.raises(ProfileError) as info:
        load_profile_file(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_broken_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "name": "x",\n  "points": [,]\n}')
    with pytest.raises(ProfileError, match=r"line 3 column 14"):
        load_profile_file(path)


def test_unknown_builtin_is_named() -> None:
    with pytest.raises(ProfileError, match="unknown profile 'huawei_sun3000'"):
        load_builtin("huawei_sun3000")
