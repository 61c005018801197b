"""The poll groups of the shipped profiles: what the cycle needs is read every cycle, and a
steady-state cycle of the hybrid system stays within the request budget (docs/profiles.md).

These count the planner's requests, a structural figure; `make bench` (bench/device.py) counts
the same on the wire."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bessai.config import SiteConfig
from bessai.errors import ProfileError
from bessai.modbus.client import ModbusDevice, Reading
from bessai.modbus.planner import ReadRequest
from bessai.modbus.profile import BUILTIN_PROFILES, PollGroup, load_builtin, parse_profile

FAST = {PollGroup.FAST}
SLOW_CYCLE = {PollGroup.FAST, PollGroup.SLOW}
SLOW_EVERY = SiteConfig.model_fields["slow_every"].default
BUDGET = 4.0  # requests per cycle on average: what evcc needs for a hybrid system

#: what one cycle uses (devices/huawei.py measurements, the guard, telemetry), one battery unit
EVERY_CYCLE = {
    32008, 32009, 32010,  # alarms (guard: blocking alarms)
    32064, 32080, 32089,  # PV power, inverter AC power (load), device status
    37000, 37001, 37004,  # unit 1 status, power, SOC = the storage system's with one unit
    37006,  # working mode B: 1 while a forcible command runs
    37022,  # battery temperature (unit 1)
    37100, 37113,  # meter status, grid power
}  # fmt: skip
#: with a second unit: its live values and the storage system's sums
EVERY_CYCLE_TWO_UNITS = EVERY_CYCLE | {37738, 37741, 37743, 37752, 37760, 37762, 37765}
#: device limits the guard applies and the control registers the dispatcher re-reads
EVERY_SLOW_CYCLE = {37046, 37048, 47075, 47077, 47081, 47082, 47083, 47087, 47100, 47246, 47247,
                    47249, 37780, 37782, 37119, 37121}  # fmt: skip


def hybrid(pv_strings: int = 2, unit2_model: int = 0) -> ModbusDevice:
    """A device as after its first poll (static values known), without a connection."""
    device = ModbusDevice(
        "127.0.0.1", 1, 1, [load_builtin(name) for name in BUILTIN_PROFILES], name="plan"
    )
    now = datetime.now(UTC)
    for profile, name, raw in (
        ("huawei_sun2000", "pv_string_count", pv_strings),
        ("huawei_luna2000", "unit2_product_model", unit2_model),
    ):
        point = device.profiles[profile].point(name)
        device.last_values[f"{profile}.{name}"] = Reading(profile, point, raw, raw, now)
    return device


def addresses(plan: list[ReadRequest]) -> set[int]:
    return {bp.point.address for request in plan for bp in request.points}


def per_cycle(device: ModbusDevice) -> float:
    fast, slow = len(device.plan(FAST)), len(device.plan(SLOW_CYCLE))
    return ((SLOW_EVERY - 1) * fast + slow) / SLOW_EVERY


@pytest.mark.parametrize("pv_strings", [1, 2, 24])
def test_one_battery_unit_stays_within_the_budget(pv_strings: int) -> None:
    device = hybrid(pv_strings)
    fast = device.plan(FAST)
    assert len(fast) == 3
    assert addresses(fast) >= EVERY_CYCLE
    assert per_cycle(device) <= BUDGET
    assert addresses(device.plan(SLOW_CYCLE)) >= EVERY_CYCLE | EVERY_SLOW_CYCLE


def test_a_second_unit_adds_its_block_to_every_cycle() -> None:
    # Each unit's temperature lives in its own block, so two units cost one request more.
    device = hybrid(unit2_model=2)
    fast = device.plan(FAST)
    assert len(fast) == 4
    assert addresses(fast) >= EVERY_CYCLE_TWO_UNITS
    assert addresses(device.plan(SLOW_CYCLE)) >= EVERY_SLOW_CYCLE


def test_storage_values_stand_in_where_unit_1_is_not_served() -> None:
    # Firmware that refuses per-unit power and SOC (evcc #31630): the ESS registers are read
    # every cycle in their place.
    device = hybrid()
    device.address_map.learn_unsupported(37001, 37003)
    device.address_map.learn_unsupported(37004, 37005)
    fast = addresses(device.plan(FAST))
    assert {37760, 37765} <= fast
    assert 37001 not in fast


def test_unknown_conditions_read_the_conditional_points_every_cycle() -> None:
    # Before the static group is known, a second unit is possible: its values are asked for.
    device = ModbusDevice("127.0.0.1", 1, 1, [load_builtin(n) for n in BUILTIN_PROFILES])
    assert addresses(device.plan(FAST)) >= EVERY_CYCLE_TWO_UNITS


def test_fast_if_and_fallback_are_checked_when_a_profile_loads() -> None:
    base = {
        "name": "t",
        "description": "t",
        "kind": "battery",
        "blocks": [{"start": 0, "end": 10}],
        "points": [
            {"address": 0, "name": "units", "description": "u", "type": "U16", "group": "static"},
            {"address": 1, "name": "a", "description": "a", "type": "U16", "group": "fast"},
            {"address": 2, "name": "b", "description": "b", "type": "U16", "group": "slow"},
        ],
    }
    points = base["points"]
    assert isinstance(points, list)
    good = {**base, "points": [points[0], {**points[1], "fallback": "b"},
                               {**points[2], "fast_if": {"point": "units", "min": 2}}]}  # fmt: skip
    assert parse_profile(good, "t.json").point("b").fast_if is not None
    for bad, message in (
        ({**points[1], "fallback": "nope"}, "fallback 'nope' is not another readable point"),
        ({**points[1], "fast_if": {"point": "units", "min": 2}}, "fast_if is for slow points"),
    ):
        with pytest.raises(ProfileError, match=message):
            parse_profile({**base, "points": [points[0], bad, points[2]]}, "t.json")
    with pytest.raises(ProfileError, match="fast_if must refer to a static point"):
        parse_profile(
            {**base, "points": [points[0], points[1],
                                {**points[2], "fast_if": {"point": "a", "min": 1}}]},
            "t.json",
        )  # fmt: skip
