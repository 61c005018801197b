"""Register profiles as data: the schema (pydantic) and the loader.

A profile describes one logical device (inverter, battery, meter) as a list of points and the
address blocks the device serves. Both the read planner and the simulator take the blocks from
here, so a simulated device answers exactly the spans a real one does.
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import cache
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bessai.errors import ProfileError

BUILTIN_PROFILES = ("huawei_sun2000", "huawei_luna2000", "huawei_dtsu666")

Address = Annotated[int, Field(ge=0, le=65535)]


class PointType(StrEnum):
    U16 = "U16"
    I16 = "I16"
    U32 = "U32"
    I32 = "I32"
    U64 = "U64"
    I64 = "I64"
    STR = "STR"
    BITFIELD = "bitfield"
    ENUM = "enum"


class Access(StrEnum):
    R = "R"
    RW = "RW"
    W = "W"


class PollGroup(StrEnum):
    STATIC = "static"
    FAST = "fast"
    SLOW = "slow"


#: registers per fixed-width numeric type
TYPE_WIDTH: dict[PointType, int] = {
    PointType.U16: 1,
    PointType.I16: 1,
    PointType.U32: 2,
    PointType.I32: 2,
    PointType.U64: 4,
    PointType.I64: 4,
}

#: Huawei's "no value" raw sentinels per type (docs/profiles.md, "Codec"); bitfields and enums
#: are unsigned.
DEFAULT_INVALID: dict[PointType, int] = {
    PointType.U16: 0xFFFF,
    PointType.I16: 0x7FFF,
    PointType.U32: 0xFFFFFFFF,
    PointType.I32: 0x7FFFFFFF,
    PointType.U64: 0xFFFFFFFFFFFFFFFF,
    PointType.I64: 0x7FFFFFFFFFFFFFFF,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PresentIf(_Strict):
    """A condition on a static point of the profile: it holds when that point is at least `min`.

    As `present_if`, the point exists only when the condition holds: one profile covers 1..24 PV
    strings or an optional second battery unit without asking for registers the device lacks.
    As `fast_if`, a slow point is read every cycle when the condition holds (the storage system's
    SOC when a second battery unit makes unit 1's register only half of it)."""

    point: str
    min: int


class Point(_Strict):
    address: Address
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    type: PointType
    length: int = Field(default=0, ge=0, le=125, description="registers; 0 = from the type")
    gain: float = Field(default=1.0, gt=0)
    unit: str | None = None
    access: Access = Access.R
    group: PollGroup | None = PollGroup.SLOW
    min: float | None = None
    max: float | None = None
    #: name of a point whose live value bounds writes (e.g. 47247 <= 37046)
    max_point: str | None = None
    min_point: str | None = None
    enum: dict[int, str] | None = None
    bits: dict[int, str] | None = None
    #: raw values meaning "no value"; None = the type's default sentinel, [] = none
    invalid: list[int] | None = None
    #: signed interpretation of enum/bitfield values is never needed; abs() fixes 37119 sign quirk
    absolute: bool = False
    present_if: PresentIf | None = None
    #: read with the fast group when this condition holds (or is not known yet), else `group`
    fast_if: PresentIf | None = None
    #: a point read in this one's group in its place when the device does not serve this one
    fallback: str | None = None
    source: str | None = None

    @property
    def end(self) -> int:
        """First address after the point."""
        return self.address + self.length

    @property
    def readable(self) -> bool:
        return self.access in (Access.R, Access.RW)

    @property
    def writable(self) -> bool:
        return self.access in (Access.RW, Access.W)

    @property
    def signed(self) -> bool:
        return self.type in (PointType.I16, PointType.I32, PointType.I64)

    @property
    def invalid_raw(self) -> frozenset[int]:
        if self.invalid is not None:
            return frozenset(self.invalid)
        if self.type is PointType.STR:
            return frozenset()
        # Enums and bitfields are unsigned registers: all ones means "no value" (see above).
        default = DEFAULT_INVALID.get(self.type, (1 << (16 * self.length)) - 1)
        return frozenset({default})

    @model_validator(mode="before")
    @classmethod
    def _default_length(cls, data: object) -> object:
        if not isinstance(data, dict) or data.get("length"):
            return data
        try:
            point_type = PointType(str(data.get("type")))
        except ValueError:
            return data  # the field validator reports the bad type
        width = TYPE_WIDTH.get(point_type, 1 if point_type is not PointType.STR else 0)
        return {**data, "length": width}

    @model_validator(mode="after")
    def _check_shape(self) -> Self:
        fixed = TYPE_WIDTH.get(self.type)
        if fixed is not None and self.length != fixed:
            raise ValueError(f"length {self.length} does not match type {self.type} ({fixed})")
        if self.type in (PointType.BITFIELD, PointType.ENUM) and self.length not in (1, 2):
            raise ValueError("bitfield and enum points are 1 or 2 registers long")
        if self.type is PointType.STR and self.length < 1:
            raise ValueError("STR points need a length in registers")
        if self.type is PointType.ENUM and not self.enum:
            raise ValueError("enum points need an 'enum' table")
        if self.type is PointType.BITFIELD and not self.bits:
            raise ValueError("bitfield points need a 'bits' table")
        if self.bits and max(self.bits) >= 16 * self.length:
            raise ValueError(f"bit {max(self.bits)} does not fit in {self.length} register(s)")
        return self

    @model_validator(mode="after")
    def _check_access(self) -> Self:
        numeric = self.type not in (PointType.STR, PointType.BITFIELD, PointType.ENUM)
        if self.writable and numeric and (self.min is None or self.max is None):
            raise ValueError("writable numeric points need 'min' and 'max' limits")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        if self.access is Access.W and self.group is not None:
            raise ValueError("write-only points cannot be in a poll group (set group to null)")
        if self.readable and self.group is None:
            raise ValueError("readable points need a poll group")
        if self.fast_if is not None and self.group is not PollGroup.SLOW:
            raise ValueError("fast_if is for slow points (it makes them fast)")
        if self.fallback is not None and not self.readable:
            raise ValueError("only readable points can have a fallback")
        return self


class Block(_Strict):
    """A span of addresses the device answers as a whole; unmapped registers read as `fill`."""

    start: Address
    end: Address = Field(description="first address after the block")
    fill: int = Field(default=0, ge=0, le=0xFFFF)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"block end {self.end} must be after start {self.start}")
        return self


class Profile(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    kind: Literal["inverter", "battery", "meter"]
    #: limits of one read within this profile's blocks (125 is the Modbus maximum)
    max_read_registers: int = Field(default=64, ge=1, le=125)
    max_read_gap: int = Field(default=16, ge=0, le=124)
    blocks: list[Block]
    points: list[Point]

    @model_validator(mode="after")
    def _check_points(self) -> Self:
        names: set[str] = set()
        for point in self.points:
            where = f"register {point.address} ({point.name})"
            if point.name in names:
                raise ValueError(f"{where}: duplicate point name")
            names.add(point.name)
            if not any(b.start <= point.address and point.end <= b.end for b in self.blocks):
                raise ValueError(f"{where}: not inside any served block")
        by_name = {p.name: p for p in self.points}
        for point in self.points:
            _check_references(point, by_name)
        ordered = sorted((p for p in self.points if p.readable), key=lambda p: p.address)
        for prev, cur in pairwise(ordered):
            if cur.address < prev.end:
                raise ValueError(
                    f"register {cur.address} ({cur.name}) overlaps "
                    f"register {prev.address} ({prev.name})"
                )
        return self

    def point(self, name: str) -> Point:
        """The point named `name`; a ProfileError when the profile has none."""
        for point in self.points:
            if point.name == name:
                return point
        raise ProfileError(f"profile {self.name}: no point named {name!r}")


def _check_references(point: Point, by_name: dict[str, Point]) -> None:
    """The points this one names (limits, conditions, fallback) exist and fit their role."""
    where = f"register {point.address} ({point.name})"
    for ref in (point.max_point, point.min_point):
        if ref is not None and ref not in by_name:
            raise ValueError(f"{where}: limit point {ref!r} is not in the profile")
    for key, cond in (("present_if", point.present_if), ("fast_if", point.fast_if)):
        if cond is None:
            continue
        ref_point = by_name.get(cond.point)
        if ref_point is None:
            raise ValueError(f"{where}: {key} point is not in the profile")
        if ref_point.group is not PollGroup.STATIC:
            raise ValueError(f"{where}: {key} must refer to a static point")
    if point.fallback is not None:
        substitute = by_name.get(point.fallback)
        if substitute is None or not substitute.readable or substitute is point:
            raise ValueError(f"{where}: fallback {point.fallback!r} is not another readable point")


def _format_validation_error(source: str, data: object, exc: ValidationError) -> str:
    lines = [f"invalid register profile {source}:"]
    points = data.get("points", []) if isinstance(data, dict) else []
    for err in exc.errors():
        loc = list(err["loc"])
        where = ".".join(str(part) for part in loc)
        if len(loc) >= 2 and loc[0] == "points" and isinstance(loc[1], int):
            index = loc[1]
            raw = points[index] if index < len(points) else {}
            field = ".".join(str(part) for part in loc[2:]) or "(point)"
            addr = raw.get("address", "?") if isinstance(raw, dict) else "?"
            name = raw.get("name", "?") if isinstance(raw, dict) else "?"
            where = f"register {addr} ({name}), field {field}"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


def parse_profile(data: object, source: str) -> Profile:
    """Validate a profile document; a ProfileError naming the register and field otherwise."""
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(_format_validation_error(source, data, exc)) from None


def load_profile_file(path: Path) -> Profile:
    """Read and validate a JSON register profile file; a ProfileError naming the file otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"cannot read register profile {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ProfileError(
            f"register profile {path} is not valid JSON: {exc.msg} "
            f"at line {exc.lineno} column {exc.colno}"
        ) from None
    return parse_profile(data, str(path))


@cache
def load_builtin(name: str) -> Profile:
    """Load a profile shipped in the package, e.g. ``huawei_sun2000``."""
    if name not in BUILTIN_PROFILES:
        raise ProfileError(
            f"unknown profile {name!r}; built-in profiles: {', '.join(BUILTIN_PROFILES)}"
        )
    resource = resources.files("bessai.profiles").joinpath(f"{name}.json")
    with resources.as_file(resource) as path:
        return load_profile_file(path)


def load_profile(name_or_path: str) -> Profile:
    """A built-in profile by name, or a JSON file by path."""
    if name_or_path in BUILTIN_PROFILES:
        return load_builtin(name_or_path)
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        return load_profile_file(path)
    return load_builtin(name_or_path)
