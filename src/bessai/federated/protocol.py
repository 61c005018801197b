"""The messages of a federated training: what the server asks and what a site answers.

A payload is a flat dict of numpy arrays and scalars (int, float, str); :mod:`.flower` carries
it in a Flower message (arrays in an ``ArrayRecord``, scalars in a ``ConfigRecord``), and the
in-process transport of the tests and benchmarks (:mod:`.local`) hands it over as it is.

What a site sends, per stage (``p`` features, 19 today):

- ``moments``: row count, feature sums (p), target sum; its unit, step, time zone, feature
  names and first/last day;
- ``gram``: centred cross-products (p x p and p), target sum of squares, row count;
- ``calibrate``: a 24 x 960 histogram of the model's errors (in units of the week's spread)
  and the sum of squared errors;
- ``fit`` (the iterative model, :mod:`.mlp`): its updated parameters and its loss.

Never a price, a timestamp or a feature row.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bessai.errors import DataError
from bessai.federated.site import SiteInfo, SiteRows
from bessai.federated.stats import Gram, LinearModel, Moments

Payload = dict[str, Any]

STAGES: tuple[str, ...] = ("moments", "gram", "calibrate", "fit")


def array(payload: Payload, key: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The float array a message carries under `key`; a DataError naming the key if absent."""
    try:
        return np.asarray(payload[key], dtype=np.float64)
    except KeyError:
        raise DataError(f"federated: the message lacks {key!r}") from None


def moments_answer(rows: SiteRows) -> Payload:
    """A site's ``moments``: row count, first and second column sums, what its rows are."""
    m = rows.moments()
    i = rows.info
    x64 = np.asarray(rows.x, dtype=np.float64)
    return {
        "n": m.n, "sum_x": m.sum_x, "sum_y": m.sum_y, "site": i.site, "unit": i.unit,
        "sum_x2": (x64**2).sum(axis=0), "sum_y2": float(np.sum(rows.y**2)),
        "timezone": i.timezone, "step_s": i.step_s, "features": ",".join(i.features),
        "first_day": i.first_day, "last_day": i.last_day,
    }  # fmt: skip


def gram_answer(rows: SiteRows, request: Payload) -> Payload:
    """A site's ``gram``: cross-products centred on the pooled means the server sent."""
    g = rows.gram(array(request, "mean_x"), float(request["mean_y"]))
    return {"xx": g.xx, "xy": g.xy, "yy": g.yy, "n": g.n}


def linear_request(model: LinearModel, floor: float) -> Payload:
    """The ``calibrate`` request of the Ridge: the model, and the spread floor."""
    return {
        "kind": "ridge",
        "weights": model.weights,
        "intercept": model.intercept,
        "mean": model.mean,
        "scale": model.scale,
        "coef": model.coef,
        "floor": floor,
    }


def linear_from(payload: Payload) -> LinearModel:
    """The Ridge a ``calibrate`` request carries."""
    return LinearModel(
        array(payload, "weights"),
        float(payload["intercept"]),
        array(payload, "coef"),
        array(payload, "mean"),
        array(payload, "scale"),
    )


def moments_of(reply: Payload) -> tuple[Moments, SiteInfo]:
    """A ``moments`` answer, read back."""
    info = SiteInfo(
        str(reply["site"]),
        str(reply["unit"]),
        str(reply["timezone"]),
        float(reply["step_s"]),
        tuple(str(reply["features"]).split(",")),
        str(reply["first_day"]),
        str(reply["last_day"]),
    )
    return Moments(int(reply["n"]), array(reply, "sum_x"), float(reply["sum_y"])), info


def gram_of(reply: Payload) -> Gram:
    """A ``gram`` answer, read back."""
    return Gram(array(reply, "xx"), array(reply, "xy"), float(reply["yy"]), int(reply["n"]))
