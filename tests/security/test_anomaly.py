"""The learned score: the flattened forest gives scikit-learn's number, the threshold follows
the budget, and an outlier scores above it."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from bessai.security.anomaly import AnomalyScorer, CompiledForest, threshold_for_budget


def test_compiled_forest_scores_like_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    data = rng.normal(size=(500, 6))
    forest = IsolationForest(n_estimators=20, random_state=1).fit(data)
    compiled = CompiledForest(forest)
    probe = np.vstack([data[:20], rng.normal(scale=5, size=(20, 6))])
    expected = -forest.score_samples(probe)
    got = [compiled.score(row.tolist()) for row in probe]
    assert np.allclose(got, expected, atol=1e-9)


def test_threshold_from_the_budget() -> None:
    scores = np.linspace(0.0, 1.0, 1001)
    assert abs(threshold_for_budget(scores, 0.01) - 0.99) < 1e-9
    # Too few cycles for the quantile: above the largest benign score.
    assert threshold_for_budget(scores, 1e-5) > 1.0


def test_trained_on_benign_only_an_outlier_scores_above_the_threshold() -> None:
    rng = np.random.default_rng(5)
    scorer = AnomalyScorer(train_cycles=400, rate_per_cycle=1e-3, seed=0)
    for row in rng.normal(size=(400, 4)):
        scorer.learn(row.tolist())
    assert scorer.ready
    scorer.fit()
    assert not scorer.learning
    assert scorer.threshold is not None
    outlier = scorer.score([8.0, -8.0, 8.0, 8.0])
    assert outlier is not None
    assert outlier > scorer.threshold


def test_without_scikit_learn_the_score_is_off_and_training_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.ensemble", None)
    scorer = AnomalyScorer(train_cycles=20, rate_per_cycle=1e-3)
    for i in range(20):
        scorer.learn([float(i), 1.0])
    scorer.fit()
    assert scorer.disabled
    assert not scorer.learning
    assert not scorer.ready
    assert scorer.score([1.0, 1.0]) is None
