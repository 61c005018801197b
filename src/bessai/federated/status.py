"""The status of a federated training, as a JSON file beside the model.

The ServerApp (in Flower's SuperExec process) writes it after every round; `bessai fl serve`
reads it to update its metrics (``fl_rounds_total``, ``fl_train_loss``) and to know when the run
is over; `bessai fl status` prints it. Written whole to a temporary file and renamed, so a
reader never sees half of it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bessai.errors import DataError

if TYPE_CHECKING:
    from bessai.federated.server import RoundReport


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StatusFile:
    """Read-modify-write of the status JSON (one writer: the ServerApp)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.path)

    def start(self, min_clients: int) -> None:
        """A run began."""
        self.data = {"state": "waiting", "started_utc": _now(), "min_clients": min_clients,
                     "rounds": [], "rounds_total": 0, "train_loss": None}  # fmt: skip
        self._write()

    def update(self, **fields: Any) -> None:
        """Set top-level fields."""
        self.data.update(fields)
        self._write()

    def round(self, report: RoundReport) -> None:
        """A round finished (``stage == "done"`` only carries the final train loss)."""
        if report.train_loss is not None:
            self.data["train_loss"] = report.train_loss
        if report.stage != "done":
            entry = {**asdict(report), "dropped": list(report.dropped), "finished_utc": _now()}
            self.data["rounds"].append(entry)
            self.data["rounds_total"] = report.round_no
            self.data["state"] = "running"
        self._write()

    def fail(self, reason: str) -> None:
        """The run stopped without a model."""
        self.update(state="failed", error=reason, finished_utc=_now())

    def finish(self, model_dir: str, train_loss: float, sites: list[str]) -> None:
        """The model is written."""
        self.update(state="done", model_dir=model_dir, train_loss=train_loss, sites=sites,
                    finished_utc=_now())  # fmt: skip


def read_status(path: Path) -> dict[str, Any]:
    """The status of the run whose status file is ``path``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no status file (has `bessai fl serve` started a run?)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not a status file ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a status file")
    return data
