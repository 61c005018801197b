"""Operator state that must survive a restart: each site's mode, its manual override with its
expiry, and the device settings the gateway holds at 0 to block a direction (with the values
to restore).

One small JSON file in the data directory, replaced atomically (write, fsync, rename), so a
crash leaves the old or the new file, never half of one. A file that cannot be read is kept
aside (never deleted) and every site starts in safe mode: the operator decides, not a default.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("bessai.control")

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class SavedOverride:
    setpoint_w: float
    until_utc: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class SiteMemory:
    mode: str = "auto"
    override: SavedOverride | None = None
    #: device setting -> the operator's value, while the gateway holds it at 0
    device_held: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.override is not None:
            data["override"]["until_utc"] = self.override.until_utc.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SiteMemory:
        override = data.get("override")
        return cls(
            mode=str(data.get("mode", "auto")),
            override=None
            if override is None
            else SavedOverride(
                float(override["setpoint_w"]),
                datetime.fromisoformat(override["until_utc"]),
                str(override.get("reason", "")),
            ),
            device_held={str(k): float(v) for k, v in data.get("device_held", {}).items()},
        )


class StateStore:
    """The sites' saved operator state, keyed by site id."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._sites: dict[str, SiteMemory] = {}
        #: set when the file existed but could not be read: every site starts safe
        self.damaged: str | None = None
        self._load()

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            self._set_damaged(f"cannot read {self.path}: {exc.strerror}")
            return
        try:
            data = json.loads(text)
            if data.get("version") != FORMAT_VERSION:
                raise ValueError(f"unknown format version {data.get('version')!r}")
            self._sites = {
                str(site): SiteMemory.from_json(memory) for site, memory in data["sites"].items()
            }
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
            os.replace(self.path, aside)
            self._set_damaged(f"{self.path} is damaged ({exc}); kept as {aside.name}")

    def _set_damaged(self, why: str) -> None:
        self.damaged = why
        log.critical("operator state lost; every site starts in safe mode", reason=why)

    def get(self, site_id: str) -> SiteMemory | None:
        return self._sites.get(site_id)

    def save(self, site_id: str, memory: SiteMemory) -> None:
        """Record one site's state and write the file (atomically, durably)."""
        with self._lock:
            if self._sites.get(site_id) == memory:
                return
            self._sites[site_id] = memory
            payload = {
                "version": FORMAT_VERSION,
                "sites": {site: m.to_json() for site, m in sorted(self._sites.items())},
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            with tmp.open("w", encoding="utf-8") as handle:
                json.dump(payload, handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
