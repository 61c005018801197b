"""The attack kit's ground truth: every attack with its id, type, start and end, one JSON line
each, so detections can be scored against what really happened."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(slots=True)
class AttackRecord:
    """One attack as run: `start`/`end` in the campaign's own time base (cycle numbers in the
    benchmark, UTC ISO times from the CLI)."""

    id: int
    type: str
    start: Any
    end: Any = None
    params: dict[str, Any] = field(default_factory=dict)


class AttackLog:
    """Appends attack records to a JSON-lines file (or keeps them in memory only)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.records: list[AttackRecord] = []

    def add(self, record: AttackRecord) -> None:
        """Keep one finished attack."""
        self.records.append(record)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(asdict(record), default=str) + "\n")
