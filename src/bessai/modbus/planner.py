"""Read planner: coalesce due points into the fewest block reads a device will answer.

Huawei devices fail a whole read with exception 2 when any address in its span is not served
(docs/profiles.md, "Poll groups and requests per cycle"), so a read never crosses the edge of a
served block nor an address span learned to be unsupported in this session. Within a block,
neighbouring points are merged while the read stays within the block's profile's
`max_read_registers` and the hole between them is under its `max_read_gap`: a request costs far
more than a few extra registers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bessai.modbus.profile import Block, Point, PollGroup, Profile


@dataclass(frozen=True, slots=True)
class BoundPoint:
    """A point together with the profile it belongs to (several profiles share one device), and
    the poll group it is read with on this device when that differs from the profile's."""

    profile: str
    point: Point
    group: PollGroup | None = None

    @property
    def key(self) -> str:
        return f"{self.profile}.{self.point.name}"

    @property
    def poll_group(self) -> PollGroup | None:
        return self.group if self.group is not None else self.point.group


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One FC03 read: `count` registers from `start`, covering `points`."""

    start: int
    count: int
    points: tuple[BoundPoint, ...]

    @property
    def end(self) -> int:
        return self.start + self.count


def read_request(points: Sequence[BoundPoint]) -> ReadRequest:
    """One read covering these points (contiguous within the profile's limits)."""
    start = points[0].point.address
    end = max(bp.point.end for bp in points)
    return ReadRequest(start, end - start, tuple(points))


@dataclass(slots=True)
class AddressMap:
    """What a device serves: its blocks, minus spans learned to fail during this session.

    `limits` holds (max registers, max gap) per block, from the block's profile; blocks without
    an entry use `max_registers` and `max_gap`."""

    blocks: tuple[Block, ...]
    max_registers: int = 64
    max_gap: int = 16
    unsupported: set[tuple[int, int]] = field(default_factory=set)
    limits: tuple[tuple[int, int], ...] = ()

    @classmethod
    def for_profiles(cls, profiles: Iterable[Profile]) -> AddressMap:
        served = sorted(
            ((b, (p.max_read_registers, p.max_read_gap)) for p in profiles for b in p.blocks),
            key=lambda item: item[0].start,
        )
        return cls(
            blocks=tuple(block for block, _ in served),
            limits=tuple(limit for _, limit in served),
        )

    def limits_of(self, block: int) -> tuple[int, int]:
        """(max registers, max gap) of one read within a block."""
        if 0 <= block < len(self.limits):
            return self.limits[block]
        return self.max_registers, self.max_gap

    def block_of(self, point: Point) -> int | None:
        for index, block in enumerate(self.blocks):
            if block.start <= point.address and point.end <= block.end:
                return index
        return None

    def is_unsupported(self, start: int, end: int) -> bool:
        """True when any learned-unsupported span overlaps [start, end)."""
        return any(bad_start < end and start < bad_end for bad_start, bad_end in self.unsupported)

    def learn_unsupported(self, start: int, end: int) -> None:
        if end > start:
            self.unsupported.add((start, end))


def plan_reads(points: Iterable[BoundPoint], address_map: AddressMap) -> list[ReadRequest]:
    """Group readable points into block reads. Points the device is known not to serve are left
    out; the caller reports them as unavailable."""
    candidates = sorted(
        (
            bp
            for bp in points
            if bp.point.readable
            and address_map.block_of(bp.point) is not None
            and not address_map.is_unsupported(bp.point.address, bp.point.end)
        ),
        key=lambda bp: bp.point.address,
    )
    requests: list[ReadRequest] = []
    current: list[BoundPoint] = []
    current_block = -1
    current_start = current_end = 0
    for bp in candidates:
        block = address_map.block_of(bp.point)
        point = bp.point
        max_registers, max_gap = address_map.limits_of(current_block)
        fits = (
            current
            and block == current_block
            and max(current_end, point.end) - current_start <= max_registers
            and point.address - current_end < max_gap
            and not address_map.is_unsupported(current_end, point.address)
        )
        if fits:
            current.append(bp)
            current_end = max(current_end, point.end)
            continue
        if current:
            requests.append(read_request(current))
        current = [bp]
        current_block = block if block is not None else -1
        current_start, current_end = point.address, point.end
    if current:
        requests.append(read_request(current))
    return requests


def split_request(request: ReadRequest) -> tuple[ReadRequest, ReadRequest]:
    """Halve a multi-point read, by points, to find out which part a device refuses."""
    middle = len(request.points) // 2
    return read_request(request.points[:middle]), read_request(request.points[middle:])
