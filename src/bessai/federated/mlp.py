"""The iterative federated model: a small MLP trained with FedAvg or FedProx.

Unlike the Ridge, an MLP has no sufficient statistics: each round the server sends the current
weights, every site trains them for an epoch or a few on its own rows (minibatch SGD) and sends
them back, and the server averages them weighted by row count (FedAvg). FedProx adds
``mu/2 * ||w - w_round||^2`` to each site's loss, which keeps sites with very different data
(Crucero's solar-shaped prices beside Valdivia's) from pulling the average apart.

19 features -> ``hidden`` ReLU units -> 1, on features standardised with the pooled moments
(round 1, as for the Ridge) and the Ridge's residual target (price minus the week-mean
forecast), itself standardised. Numpy only; exported as an ONNX graph of the same operations.
The centralised reference is the same training on the pooled rows as one site.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bessai.errors import DataError
from bessai.federated.protocol import Payload
from bessai.federated.site import SiteRows
from bessai.federated.stats import FloatArray

PARAMS: tuple[str, ...] = ("w1", "b1", "w2", "b2")


@dataclass(frozen=True, slots=True)
class MlpSpec:
    """Training settings (the same for local-only, federated and centralised)."""

    hidden: int = 16
    rounds: int = 30
    local_epochs: int = 1
    batch: int = 256
    lr: float = 0.05
    mu: float = 0.0  # FedProx proximal weight; 0: FedAvg
    l2: float = 1e-4
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Scaling:
    """Pooled standardisation of features and target."""

    x_mean: FloatArray
    x_scale: FloatArray
    y_mean: float
    y_scale: float

    def payload(self) -> Payload:
        """As message fields."""
        return {"x_mean": self.x_mean, "x_scale": self.x_scale, "y_mean": self.y_mean,
                "y_scale": self.y_scale}  # fmt: skip

    @classmethod
    def of(cls, p: Payload) -> Scaling:
        """From message fields."""
        return cls(
            np.asarray(p["x_mean"], dtype=np.float64),
            np.asarray(p["x_scale"], dtype=np.float64),
            float(p["y_mean"]),
            float(p["y_scale"]),
        )


def scaling_from_sums(n: int, sx: FloatArray, sx2: FloatArray, sy: float, sy2: float) -> Scaling:
    """The standardisation from pooled first and second moments."""
    mx = sx / n
    sd = np.sqrt(np.maximum(sx2 / n - mx**2, 0.0))
    sd[sd < 1e-9] = 1.0
    my = sy / n
    return Scaling(mx, sd, my, float(np.sqrt(max(sy2 / n - my**2, 1e-12))))


def init_params(n_features: int, spec: MlpSpec) -> dict[str, FloatArray]:
    """He-initialised weights (the same on every site: the server sends them)."""
    rng = np.random.default_rng(spec.seed)
    return {
        "w1": rng.standard_normal((n_features, spec.hidden)) * np.sqrt(2.0 / n_features),
        "b1": np.zeros(spec.hidden),
        "w2": rng.standard_normal(spec.hidden) * np.sqrt(1.0 / spec.hidden),
        "b2": np.zeros(1),
    }


def predict_scaled(params: dict[str, FloatArray], z: FloatArray) -> FloatArray:
    """The network's output for standardised rows ``z``."""
    h = np.maximum(z @ params["w1"] + params["b1"], 0.0)
    return np.asarray(h @ params["w2"] + params["b2"][0])


def _grads(
    p: dict[str, FloatArray], z: FloatArray, t: FloatArray
) -> tuple[dict[str, FloatArray], float]:
    pre = z @ p["w1"] + p["b1"]
    h = np.maximum(pre, 0.0)
    err = h @ p["w2"] + p["b2"][0] - t
    n = len(t)
    d_out = 2.0 * err / n
    d_h = np.outer(d_out, p["w2"]) * (pre > 0)
    grads = {
        "w1": z.T @ d_h,
        "b1": d_h.sum(axis=0),
        "w2": h.T @ d_out,
        "b2": np.array([d_out.sum()]),
    }
    return grads, float(np.mean(err**2))


@dataclass(frozen=True, slots=True)
class LocalFit:
    """What one site's local training returns."""

    params: dict[str, FloatArray]
    n: int
    loss: float  # mean squared error (standardised units) over the site's rows, after training


def train_local(
    rows: SiteRows, start: dict[str, FloatArray], scaling: Scaling, spec: MlpSpec, round_no: int
) -> LocalFit:
    """``spec.local_epochs`` epochs of minibatch SGD from ``start`` on the site's rows, with
    the FedProx term pulling toward ``start`` when ``spec.mu > 0``. Plain SGD, not Adam: an
    optimizer state restarted every round makes the first steps large whatever the gradient,
    and the sites drift apart (measured: docs/benchmarks.md)."""
    z = (np.asarray(rows.x, dtype=np.float64) - scaling.x_mean) / scaling.x_scale
    t = (rows.y - scaling.y_mean) / scaling.y_scale
    p = {k: v.copy() for k, v in start.items()}
    rng = np.random.default_rng([spec.seed, round_no, rows.n])
    for _ in range(spec.local_epochs):
        order = rng.permutation(rows.n)
        for lo in range(0, rows.n, spec.batch):
            idx = order[lo : lo + spec.batch]
            g, _ = _grads(p, z[idx], t[idx])
            for k in p:
                p[k] = p[k] - spec.lr * (g[k] + spec.l2 * p[k] + spec.mu * (p[k] - start[k]))
    loss = float(np.mean((predict_scaled(p, z) - t) ** 2))
    return LocalFit(p, rows.n, loss)


def fedavg(fits: Sequence[LocalFit]) -> dict[str, FloatArray]:
    """The row-weighted average of the sites' parameters."""
    total = sum(f.n for f in fits)
    if total == 0:
        raise DataError("federated: no site trained on any row")
    return {k: np.sum([f.params[k] * (f.n / total) for f in fits], axis=0) for k in PARAMS}


def fit_request(
    params: dict[str, FloatArray], scaling: Scaling, spec: MlpSpec, round_no: int
) -> Payload:
    """The ``fit`` request of one round."""
    return {**params, **scaling.payload(), "epochs": spec.local_epochs, "batch": spec.batch,
            "lr": spec.lr, "mu": spec.mu, "l2": spec.l2, "seed": spec.seed, "round": round_no,
            "hidden": spec.hidden}  # fmt: skip


def answer_fit(rows: SiteRows, request: Payload) -> Payload:
    """A site's answer to ``fit``: its trained parameters, row count and loss."""
    spec = MlpSpec(
        hidden=int(request["hidden"]), local_epochs=int(request["epochs"]),
        batch=int(request["batch"]), lr=float(request["lr"]), mu=float(request["mu"]),
        l2=float(request["l2"]), seed=int(request["seed"]),
    )  # fmt: skip
    start = {k: np.asarray(request[k], dtype=np.float64) for k in PARAMS}
    fit = train_local(rows, start, Scaling.of(request), spec, int(request["round"]))
    return {**fit.params, "n": fit.n, "loss": fit.loss}


@dataclass(frozen=True, slots=True)
class MlpModel:
    """A trained MLP with its scaling: predicts the residual target on raw features."""

    params: dict[str, FloatArray]
    scaling: Scaling
    losses: tuple[float, ...]  # row-weighted train loss per round (standardised units)

    def predict(self, x: npt.NDArray[np.floating[Any]]) -> FloatArray:
        """The residual forecast for raw feature rows."""
        z = (np.asarray(x, dtype=np.float64) - self.scaling.x_mean) / self.scaling.x_scale
        return predict_scaled(self.params, z) * self.scaling.y_scale + self.scaling.y_mean


AskFit = Callable[[dict[int, Payload], int], dict[int, Payload]]


def run_rounds(ask: AskFit, ids: Sequence[int], scaling: Scaling, spec: MlpSpec,
               n_features: int) -> MlpModel:  # fmt: skip
    """``spec.rounds`` rounds of FedAvg/FedProx over the sites ``ids``; a site that misses a
    round is left out of that round's average (``ask`` enforces the minimum)."""
    params = init_params(n_features, spec)
    losses: list[float] = []
    for r in range(1, spec.rounds + 1):
        replies = ask({k: fit_request(params, scaling, spec, r) for k in ids}, r)
        fits = [
            LocalFit(
                {k: np.asarray(v[k], dtype=np.float64) for k in PARAMS},
                int(v["n"]),
                float(v["loss"]),
            )
            for v in replies.values()
        ]
        params = fedavg(fits)
        total = sum(f.n for f in fits)
        losses.append(sum(f.loss * f.n for f in fits) / total)
    return MlpModel(params, scaling, tuple(losses))


def mlp_request(model: MlpModel, floor: float) -> Payload:
    """The ``calibrate`` request of the MLP: its weights and scaling, and the spread floor."""
    return {**model.params, **model.scaling.payload(), "kind": "mlp", "floor": floor}


def mlp_from(payload: Payload) -> MlpModel:
    """The MLP a ``calibrate`` request carries."""
    params = {k: np.asarray(payload[k], dtype=np.float64) for k in PARAMS}
    return MlpModel(params, Scaling.of(payload), ())


def mlp_onnx(model: MlpModel, n_features: int) -> Any:
    """The MLP with its scaling as one ONNX graph (input ``X`` float32, output (n, 1))."""
    from onnx import TensorProto, helper, numpy_helper

    def const(name: str, value: FloatArray) -> Any:
        return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)

    s = model.scaling
    nodes = [
        helper.make_node("Sub", ["X", "xm"], ["a"]),
        helper.make_node("Div", ["a", "xs"], ["z"]),
        helper.make_node("MatMul", ["z", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h"]),
        helper.make_node("MatMul", ["h", "w2"], ["o0"]),
        helper.make_node("Add", ["o0", "b2"], ["o1"]),
        helper.make_node("Mul", ["o1", "ys"], ["o2"]),
        helper.make_node("Add", ["o2", "ym"], ["variable"]),
    ]
    p = model.params
    inits = [
        const("xm", s.x_mean), const("xs", s.x_scale), const("w1", p["w1"]), const("b1", p["b1"]),
        const("w2", p["w2"].reshape(-1, 1)), const("b2", p["b2"]),
        const("ys", np.array([s.y_scale])), const("ym", np.array([s.y_mean])),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
        inits,
    )
    from bessai.market.export import OPSET

    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
