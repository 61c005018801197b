"""What a site does with each message (:mod:`.protocol` lists them), for either model."""

from __future__ import annotations

from typing import Any

from bessai.errors import DataError
from bessai.federated.mlp import MlpModel, answer_fit, mlp_from, mlp_request
from bessai.federated.protocol import (
    Payload,
    gram_answer,
    linear_from,
    linear_request,
    moments_answer,
)
from bessai.federated.site import SiteRows
from bessai.federated.stats import LinearModel, PointModel


def answer(rows: SiteRows, stage: str, request: Payload) -> Payload:
    """A site's answer to ``stage``: sums, an error histogram or trained weights."""
    if stage == "moments":
        return moments_answer(rows)
    if stage == "gram":
        return gram_answer(rows, request)
    if stage == "calibrate":
        model: PointModel = (
            mlp_from(request) if request.get("kind") == "mlp" else linear_from(request)
        )
        hist, sse = rows.residual_histogram(model, float(request["floor"]))
        return {"hist": hist, "sse": sse, "n": rows.n}
    if stage == "fit":
        return answer_fit(rows, request)
    raise DataError(f"federated: unknown stage {stage!r}")


def calibrate_request(model: Any, floor: float) -> Payload:
    """The ``calibrate`` request for a :class:`LinearModel` or an :class:`MlpModel`."""
    if isinstance(model, MlpModel):
        return mlp_request(model, floor)
    if isinstance(model, LinearModel):
        return linear_request(model, floor)
    raise TypeError(f"no calibrate request for {type(model).__name__}")
