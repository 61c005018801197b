"""Demonstrations for the learned policy: what the LP did, step by step, as the policy would have
seen it (`bessai policy teach` writes them, `bessai policy train --imitate` starts from them).

A file holds, per executed step, the SOC before the step, the forecast window the policy reads
there (the same forecaster re-made from the prices published by then), the UTC hour and the
action the LP took as a fraction of rated power. Its metadata says which observation the
windows are, so a policy is never warm-started on another observation than it is trained on."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bessai.errors import ConfigError

F64 = npt.NDArray[np.float64]
FORMAT = "bessai-demonstrations/1"


@dataclass(frozen=True, slots=True)
class Demonstrations:
    """(step,) SOC as 0..1 before each step, (step, forecast_steps + 1) windows in USD/MWh,
    (step,) UTC hour, (step,) action in [-1, 1] (> 0 charging); `meta` says what they are."""

    soc: F64
    windows_usd_mwh: F64
    hour_utc: F64
    action: F64
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.action)
        if not len(self.soc) == len(self.hour_utc) == self.windows_usd_mwh.shape[0] == n:
            raise ConfigError("demonstrations: arrays of different lengths")

    def save(self, path: Path) -> None:
        """Write the file (a partial file is removed: a full disk leaves nothing half-read)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as fh:
                np.savez_compressed(
                    fh,
                    soc=self.soc,
                    windows_usd_mwh=self.windows_usd_mwh,
                    hour_utc=self.hour_utc,
                    action=self.action,
                    meta=np.array(json.dumps(self.meta)),
                )
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise ConfigError(f"{path}: cannot write the demonstrations ({exc.strerror})") from None

    def observations(
        self, price_scale_usd_mwh: float, factor: float = 1.0
    ) -> npt.NDArray[np.float32]:
        """The observations of `bessai/BESS-v0` (cell temperature 25 °C, as the settlement),
        the prices multiplied by `factor` (domain randomisation)."""
        n, width = self.windows_usd_mwh.shape
        obs = np.zeros((n, width + 4), dtype=np.float32)
        obs[:, 0] = np.clip(self.soc, 0.0, 1.0)
        obs[:, 2 : 2 + width] = self.windows_usd_mwh * factor / price_scale_usd_mwh
        angle = 2.0 * math.pi * self.hour_utc / 24.0
        obs[:, -2] = np.sin(angle)
        obs[:, -1] = np.cos(angle)
        return obs


def load_demonstrations(path: Path) -> Demonstrations:
    """Read a file of `bessai policy teach`; one `ConfigError` line naming it otherwise."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            demos = Demonstrations(
                data["soc"], data["windows_usd_mwh"], data["hour_utc"], data["action"], meta
            )
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such demonstrations file") from None
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"{path}: not a demonstrations file of bessai policy teach ({exc})"
        ) from None
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    return demos


def joined(files: list[Path], expect: dict[str, Any]) -> Demonstrations:
    """The demonstrations of `files` as one, each checked against `expect` (forecaster, lag,
    forecast steps, step, duration: the observation and battery being trained)."""
    parts = [load_demonstrations(f) for f in files]
    for path, part in zip(files, parts, strict=True):
        for key, want in expect.items():
            got = part.meta.get(key)
            same = (
                math.isclose(got, want, rel_tol=1e-9)
                if isinstance(got, float) and isinstance(want, float)
                else got == want
            )
            if not same:
                raise ConfigError(
                    f"{path}: {key} is {got!r}, the policy being trained has {want!r}"
                )
    meta = dict(parts[0].meta)
    meta["periods"] = [p.meta.get("period") for p in parts]
    meta["steps"] = int(sum(len(p.action) for p in parts))
    return Demonstrations(
        np.concatenate([p.soc for p in parts]),
        np.concatenate([p.windows_usd_mwh for p in parts]),
        np.concatenate([p.hour_utc for p in parts]),
        np.concatenate([p.action for p in parts]),
        meta,
    )
