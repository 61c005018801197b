"""The federated Ridge equals the centralised one; a dropout never mixes site sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bessai.errors import DataError
from bessai.federated.local import LocalTransport
from bessai.federated.model import read_coefficients
from bessai.federated.server import Policy, RoundReport, run_ridge
from bessai.federated.site import SiteRows
from bessai.federated.stats import (
    HIST_EDGES,
    Moments,
    add_moments,
    histogram_quantile,
    pooled_ridge,
)
from bessai.market.predictor import OnnxModel


def pooled(rows: list[SiteRows]) -> np.ndarray:
    x = np.concatenate([r.x for r in rows])
    y = np.concatenate([r.y for r in rows])
    return pooled_ridge(x, y, 1.0).vector()


def test_federated_equals_scikit_learn_on_pooled_rows(site_rows: list[SiteRows]) -> None:
    sklearn = pytest.importorskip("sklearn")
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    assert sklearn
    t = LocalTransport(site_rows)
    fed = run_ridge(t, t.ids(), Policy(min_clients=3))
    x = np.concatenate([r.x for r in site_rows]).astype(np.float64)
    y = np.concatenate([r.y for r in site_rows])
    pipe = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(x, y)
    scaler, ridge = pipe[0], pipe[-1]
    w = ridge.coef_ / scaler.scale_
    b = ridge.intercept_ - np.sum(ridge.coef_ * scaler.mean_ / scaler.scale_)
    assert np.max(np.abs(fed.model.vector() - np.append(w, b))) < 1e-9
    assert np.max(np.abs(fed.model.coef - ridge.coef_)) < 1e-9
    assert fed.rounds == 3
    assert fed.rows == {r.info.site: r.n for r in site_rows}


def test_a_site_dropping_in_the_gram_round_is_left_out_exactly(
    site_rows: list[SiteRows],
) -> None:
    reports: list[RoundReport] = []
    t = LocalTransport(site_rows, drop={("gram", 1)})
    fed = run_ridge(t, t.ids(), Policy(min_clients=2), on_round=reports.append)
    rest = [site_rows[0], site_rows[2]]
    assert np.max(np.abs(fed.model.vector() - pooled(rest))) < 1e-9
    assert [s.site for s in fed.sites] == ["crucero", "norte-2021"]
    stages = [(r.stage, r.answered, r.dropped) for r in reports if r.stage != "done"]
    # The gram round is asked again around the remaining sites' means.
    assert stages == [("moments", 3, ()), ("gram", 2, (1,)), ("gram", 2, ()), ("calibrate", 2, ())]


def test_fewer_sites_than_the_minimum_stop_the_training(site_rows: list[SiteRows]) -> None:
    t = LocalTransport(site_rows, drop={("gram", 1)})
    with pytest.raises(
        DataError, match=r"round 2 \(gram\) got 2 answers, fewer than the minimum of 3"
    ):
        run_ridge(t, t.ids(), Policy(min_clients=3))
    with pytest.raises(DataError, match="2 sites connected, fewer than the minimum of 3"):
        run_ridge(t, [0, 1], Policy(min_clients=3))


def test_a_site_dropping_in_calibration_keeps_the_model(site_rows: list[SiteRows]) -> None:
    t = LocalTransport(site_rows, drop={("calibrate", 2)})
    fed = run_ridge(t, t.ids(), Policy(min_clients=2))
    assert np.max(np.abs(fed.model.vector() - pooled(site_rows))) < 1e-9


def test_the_model_directory_runs_in_the_gateway_predictor(
    site_rows: list[SiteRows], tmp_path: Path
) -> None:
    pytest.importorskip("onnx")
    t = LocalTransport(site_rows)
    fed = run_ridge(t, t.ids(), Policy(min_clients=3))
    card = fed.write(tmp_path / "model")
    assert card["onnx"]["max_abs_diff"] < 0.05  # type: ignore[index]
    np.testing.assert_allclose(read_coefficients(tmp_path / "model"), fed.model.vector(), atol=0)
    model = OnnxModel(tmp_path / "model")
    x = site_rows[0].x[:48]
    q = model.quantiles(x)
    assert np.all(q[:, 0] <= q[:, 1])
    assert np.all(q[:, 1] <= q[:, 2])
    assert json.loads((tmp_path / "model" / "card.json").read_text())["federated"]["rounds"] == 3


def test_sites_with_another_unit_are_refused(site_rows: list[SiteRows]) -> None:
    from dataclasses import replace

    other = replace(site_rows[1], info=replace(site_rows[1].info, unit="CLP/kWh"))
    t = LocalTransport([site_rows[0], other])
    with pytest.raises(DataError, match="site 'valdivia' has unit 'CLP/kWh'"):
        run_ridge(t, t.ids(), Policy(min_clients=2))


def test_moments_add_like_pooled_rows() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 3))
    y = rng.normal(size=100)
    total = add_moments([Moments.of(x[:30], y[:30]), Moments.of(x[30:], y[30:])])
    np.testing.assert_allclose(total.mean_x(), x.mean(axis=0), rtol=1e-12)
    with pytest.raises(DataError, match="no site sent"):
        add_moments([])


def test_histogram_quantile_is_close_to_the_sample_quantile() -> None:
    rng = np.random.default_rng(2)
    v = rng.normal(size=20000)
    counts = np.histogram(v, bins=HIST_EDGES)[0].astype(np.float64)
    step = HIST_EDGES[1] - HIST_EDGES[0]
    for q in (0.1, 0.5, 0.9):
        assert abs(histogram_quantile(counts, q) - np.quantile(v, q)) < step
