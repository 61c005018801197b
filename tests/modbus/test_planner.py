"""Read planner: fewest requests, never across what the device does not serve."""

from __future__ import annotations

from bessai.modbus.planner import AddressMap, BoundPoint, plan_reads, split_request
from bessai.modbus.profile import Block, Point


def pts(*specs: tuple[int, str]) -> list[BoundPoint]:
    return [
        BoundPoint(
            "t",
            Point.model_validate(
                {"address": a, "name": f"p{a}", "description": "d", "type": t, "group": "fast"}
            ),
        )
        for a, t in specs
    ]


def amap(*blocks: tuple[int, int], max_registers: int = 64, max_gap: int = 16) -> AddressMap:
    return AddressMap(tuple(Block(start=s, end=e) for s, e in blocks), max_registers, max_gap)


def spans(requests: list) -> list[tuple[int, int]]:  # type: ignore[type-arg]
    return [(r.start, r.count) for r in requests]


def test_neighbours_coalesce_and_gaps_split() -> None:
    points = pts((100, "U16"), (101, "I32"), (110, "U16"), (126, "U16"), (142, "U16"))
    # gap 110 -> 126 is 15 (< 16): merged; 127 -> 142 is 15: merged as well
    assert spans(plan_reads(points, amap((100, 200)))) == [(100, 43)]
    assert spans(plan_reads(points, amap((100, 200), max_gap=10))) == [
        (100, 11),
        (126, 1),
        (142, 1),
    ]


def test_reads_stay_within_max_registers() -> None:
    points = pts(*[(100 + 10 * i, "U32") for i in range(10)])
    requests = plan_reads(points, amap((100, 300), max_registers=32))
    assert all(r.count <= 32 for r in requests)
    assert sum(len(r.points) for r in requests) == 10


def test_never_across_block_edges() -> None:
    points = pts((100, "U16"), (105, "U16"))
    assert spans(plan_reads(points, amap((100, 103), (103, 110)))) == [(100, 1), (105, 1)]


def test_learned_unsupported_spans_split_reads_and_drop_points() -> None:
    points = pts((100, "U16"), (104, "U16"), (108, "U16"))
    address_map = amap((100, 120))
    address_map.learn_unsupported(104, 105)
    assert spans(plan_reads(points, address_map)) == [(100, 1), (108, 1)]
    address_map.learn_unsupported(101, 103)  # a hole between points
    assert spans(plan_reads(pts((100, "U16"), (103, "U16")), address_map)) == [(100, 1), (103, 1)]


def test_split_halves_by_points() -> None:
    request = plan_reads(pts((100, "U16"), (101, "U16"), (102, "U32")), amap((100, 120)))[0]
    left, right = split_request(request)
    assert spans([left, right]) == [(100, 1), (101, 3)]


def test_each_block_reads_with_its_own_profiles_limits() -> None:
    points = pts((100, "U16"), (150, "U16"), (300, "U16"), (350, "U16"))
    address_map = AddressMap(
        (Block(start=100, end=200), Block(start=300, end=400)), limits=((125, 64), (64, 16))
    )
    # 100 -> 150 is one read inside the first block; 300 -> 350 stays two in the second.
    assert spans(plan_reads(points, address_map)) == [(100, 51), (300, 1), (350, 1)]
