"""The federated Ridge: from the sites' summed answers to a model directory the gateway runs.

The directory is the one `bessai forecast train --kind ridge` writes (``point.onnx`` and
``card.json``, :mod:`bessai.market.export`), so a gateway plans on it with
``forecaster = "model:DIR"``. The card adds a ``federated`` section: the sites that took part,
their row counts, the rounds, and the coefficients in full precision (the ONNX file holds them
in float32).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bessai.errors import DataError
from bessai.federated.site import FEDERATED_SPEC, SiteInfo
from bessai.federated.stats import FloatArray, PointModel, histogram_quantile
from bessai.market.bands import QUANTILES, BandCalibration
from bessai.market.features import BASE_FEATURES

CARD = "card.json"
CARD_FORMAT = 1


def spread_floor(mean_x: FloatArray) -> float:
    """The calibration's spread floor: a tenth of the pooled mean of ``std_168h`` (the
    centralised calibration takes a tenth of the median, which sums cannot give)."""
    return max(0.1 * float(mean_x[BASE_FEATURES.index("std_168h")]), 1e-6)


def calibration_from_histograms(hist: FloatArray, floor: float) -> BandCalibration:
    """Per-hour p10/p90 of the pooled error histograms (24, bins): the ``residual`` band
    calibration. An hour with fewer than 20 errors takes the pooled quantile, as centrally."""
    pooled = hist.sum(axis=0)
    lower: list[float] = []
    upper: list[float] = []
    for k in range(24):
        counts = hist[k] if hist[k].sum() >= 20 else pooled
        lower.append(histogram_quantile(counts, QUANTILES[0]))
        upper.append(histogram_quantile(counts, QUANTILES[2]))
    return BandCalibration("residual", tuple(lower), tuple(upper), floor)


def check_sites(infos: Sequence[SiteInfo]) -> None:
    """Refuse a federation whose sites' rows do not fit one model."""
    if not infos:
        raise DataError("federated: no site took part")
    first = infos[0]
    for info in infos[1:]:
        for key in ("unit", "step_s", "features"):
            if getattr(info, key) != getattr(first, key):
                raise DataError(
                    f"federated: site {info.site!r} has {key} {getattr(info, key)!r}, site "
                    f"{first.site!r} {getattr(first, key)!r}; one model needs the same"
                )


@dataclass(frozen=True, slots=True)
class FederatedModel:
    """The aggregated model (``kind`` "ridge": a :class:`LinearModel`; "mlp": an
    :class:`.mlp.MlpModel`) and what the card says about its making."""

    model: Any
    calibration: BandCalibration
    sites: tuple[SiteInfo, ...]
    rows: dict[str, int]
    rounds: int
    train_loss: float  # mean squared error over every site's rows, price units squared
    extra: dict[str, object] = field(default_factory=dict)
    kind: str = "ridge"

    def card(self) -> dict[str, object]:
        """The model card (the keys the predictor reads, and the federation's)."""
        from bessai.market.export import library_versions

        spec = FEDERATED_SPEC
        first = self.sites[0]
        return {
            "format": CARD_FORMAT,
            "model": self.kind,
            "features": list(first.features),
            "exog": [],
            "horizon_h": spec.horizon_h,
            "files": {"point": "point.onnx"},
            "calibration": self.calibration.to_json(),
            "point": spec.plan_point().to_json(),
            "validation": {},
            "train": spec.params(),
            "versions": library_versions(),
            "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "node": "federated: " + ", ".join(s.site for s in self.sites),
            "unit": first.unit,
            "timezone": first.timezone,
            "step_s": first.step_s,
            "federated": {
                "rounds": self.rounds,
                "sites": [
                    {
                        "site": s.site,
                        "rows": self.rows[s.site],
                        "first_day": s.first_day,
                        "last_day": s.last_day,
                        "timezone": s.timezone,
                    }
                    for s in self.sites
                ],
                "train_mse": self.train_loss,
                **self._coefficients(),
                **self.extra,
            },
        }

    def _coefficients(self) -> dict[str, object]:
        if self.kind != "ridge":
            return {"algorithm": "MLP, FedAvg/FedProx (iterative)"}
        return {
            "algorithm": "ridge from summed sufficient statistics (exact)",
            "weights": [float(w) for w in self.model.weights],
            "intercept": self.model.intercept,
            "alpha": FEDERATED_SPEC.ridge_alpha,
        }

    def _probe(self) -> npt.NDArray[np.float32]:
        """Rows spread like the training rows, to check the ONNX export on."""
        m = self.model
        mean, scale = (
            (m.scaling.x_mean, m.scaling.x_scale) if self.kind == "mlp" else (m.mean, m.scale)
        )
        rng = np.random.default_rng(0)
        return np.asarray(mean + rng.standard_normal((64, len(mean))) * scale, dtype=np.float32)

    def onnx(self) -> Any:
        """The model as ONNX (input ``X``, output (n, 1))."""
        n = len(self.sites[0].features)
        if self.kind == "mlp":
            from bessai.federated.mlp import mlp_onnx

            return mlp_onnx(self.model, n)
        from bessai.market.export import linear_onnx

        return linear_onnx(self.model.weights, self.model.intercept, n)

    def write(self, out: Path) -> dict[str, object]:
        """Write ``point.onnx`` and ``card.json`` into ``out``; the ONNX model is checked
        against the float64 coefficients on the way."""
        out.mkdir(parents=True, exist_ok=True)
        data = self.onnx().SerializeToString()
        diff = _onnx_diff(data, self.model, self._probe())
        (out / "point.onnx").write_bytes(data)
        card = self.card()
        card["onnx"] = {"max_abs_diff": round(diff, 6), "tolerance": 0.05}
        card["int8"] = {"applied": False, "reason": "federated models ship in float32"}
        tmp = out / f".{CARD}.tmp"
        tmp.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        tmp.replace(out / CARD)  # a reader never sees half a card
        return card


def _onnx_diff(data: bytes, model: PointModel, x: npt.NDArray[np.float32]) -> float:
    """Largest difference between the ONNX model and the float64 one on rows ``x``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = np.asarray(sess.run(None, {"X": x})[0], dtype=np.float64).ravel()
    return float(np.max(np.abs(got - model.predict(x))))


def read_coefficients(model_dir: Path) -> FloatArray:
    """Weights and intercept in full precision from a federated card."""
    card = json.loads((model_dir / CARD).read_text(encoding="utf-8"))
    fed = card.get("federated")
    if not isinstance(fed, dict):
        raise DataError(f"{model_dir}: not a federated model (the card has no 'federated')")
    return np.append(np.asarray(fed["weights"], dtype=np.float64), float(fed["intercept"]))
