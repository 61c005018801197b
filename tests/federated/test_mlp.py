"""The iterative model: an MLP trained with FedAvg / FedProx over the in-process transport."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bessai.errors import DataError
from bessai.federated.local import LocalTransport
from bessai.federated.mlp import PARAMS, LocalFit, MlpSpec, fedavg, init_params
from bessai.federated.server import Policy, RoundReport, run_mlp
from bessai.federated.site import SiteRows
from bessai.market.predictor import OnnxModel

FAST = MlpSpec(rounds=3)


def test_fedavg_weights_sites_by_rows() -> None:
    a = {k: np.full_like(v, 1.0) for k, v in init_params(4, FAST).items()}
    b = {k: np.full_like(v, 4.0) for k, v in a.items()}
    avg = fedavg([LocalFit(a, 300, 0.0), LocalFit(b, 100, 0.0)])
    for k in PARAMS:
        np.testing.assert_allclose(avg[k], 1.75)
    with pytest.raises(DataError, match="no site trained"):
        fedavg([LocalFit(a, 0, 0.0)])


def test_rounds_lower_the_loss_and_the_model_runs_in_the_predictor(
    site_rows: list[SiteRows], tmp_path: Path
) -> None:
    pytest.importorskip("onnx")
    t = LocalTransport(site_rows)
    fed = run_mlp(t, t.ids(), Policy(min_clients=3), FAST)
    losses = fed.model.losses
    assert len(losses) == 3
    assert losses[-1] < losses[0]
    assert fed.rounds == 1 + 3 + 1  # moments, fit x3, calibrate
    card = fed.write(tmp_path / "mlp")
    assert card["model"] == "mlp"
    assert card["onnx"]["max_abs_diff"] < 0.05  # type: ignore[index]
    model = OnnxModel(tmp_path / "mlp")
    x = site_rows[1].x[:24]
    np.testing.assert_allclose(model.raw(x)[:, 1] - x[:, 3], fed.model.predict(x), atol=0.05)


def test_fedprox_keeps_sites_near_the_round_model(site_rows: list[SiteRows]) -> None:
    t = LocalTransport(site_rows)
    free = run_mlp(t, t.ids(), Policy(min_clients=3), MlpSpec(rounds=1))
    held = run_mlp(t, t.ids(), Policy(min_clients=3), MlpSpec(rounds=1, mu=1000.0, lr=1e-3))
    start = init_params(len(site_rows[0].info.features), FAST)
    moved_free = np.abs(free.model.params["w1"] - start["w1"]).max()
    moved_held = np.abs(held.model.params["w1"] - start["w1"]).max()
    assert moved_held < moved_free / 10


def test_a_site_missing_a_fit_round_is_out_and_the_minimum_holds(
    site_rows: list[SiteRows],
) -> None:
    reports: list[RoundReport] = []
    t = LocalTransport(site_rows, drop={("fit", 2)})
    fed = run_mlp(t, t.ids(), Policy(min_clients=2), FAST, reports.append)
    assert [s.site for s in fed.sites] == ["crucero", "valdivia"]
    fits = [r for r in reports if r.stage == "fit"]
    assert [r.asked for r in fits] == [3, 2, 2]
    with pytest.raises(DataError, match=r"round 2 \(fit\) got 2 answers"):
        run_mlp(t, t.ids(), Policy(min_clients=3), FAST)
