"""A learned anomaly score on the residuals and the readings' changes: an IsolationForest trained
on benign cycles only (never on attack labels), with its threshold set from a false-alarm
budget.

The budget is alarms per 24 h. With `persist` consecutive cycles needed for an alarm, the
per-cycle exceedance rate allowed is about (budget x cycle / 86 400) ** (1 / persist) if cycles
were independent; they are not, so the threshold takes the plain per-cycle rate (the stricter
one) and the persistence is the safety margin. Where training holds too few cycles to place that
quantile, the threshold is extrapolated above the largest benign score by the spread of the top
percent of scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import structlog
from numpy.typing import NDArray

log = structlog.get_logger("bessai.security")

#: trees in the forest: enough for a stable score, few enough for a few milliseconds per cycle
N_TREES = 48


def threshold_for_budget(scores: NDArray[np.float64], rate_per_cycle: float) -> float:
    """The score above which a benign cycle falls at `rate_per_cycle`."""
    ordered = np.sort(scores)
    n = len(ordered)
    if n * rate_per_cycle >= 1.0:
        return float(np.quantile(ordered, 1.0 - rate_per_cycle))
    top = ordered[-1]
    spread = top - float(np.quantile(ordered, 0.99))
    return float(top + max(spread, 1e-3))


class CompiledForest:
    """A fitted IsolationForest flattened into plain lists, to score one row in well under a
    millisecond (scikit-learn's own call costs milliseconds per row in overhead). Gives the
    same number as `-IsolationForest.score_samples` (tested)."""

    def __init__(self, forest: Any) -> None:
        self.trees: list[tuple[list[int], list[int], list[int], list[float], list[float]]] = []
        for tree, features, lengths, averages in zip(
            forest.estimators_,
            forest.estimators_features_,
            forest._decision_path_lengths,
            forest._average_path_length_per_tree,
            strict=True,
        ):
            t = tree.tree_
            # Feature numbers of the tree refer to its feature subset: map them back.
            feature = [int(features[f]) if f >= 0 else -1 for f in t.feature]
            leaf = [float(d) + float(a) - 1.0 for d, a in zip(lengths, averages, strict=True)]
            self.trees.append(
                (t.children_left.tolist(), t.children_right.tolist(), feature,
                 t.threshold.tolist(), leaf)
            )  # fmt: skip
        from sklearn.ensemble._iforest import _average_path_length

        self.denominator = len(self.trees) * float(_average_path_length([forest._max_samples])[0])

    def score(self, row: list[float]) -> float:
        """2 ** (-mean path length / c(n)): near 1 isolated at once, near 0.5 or less inside."""
        total = 0.0
        for left, right, feature, threshold, leaf in self.trees:
            node = 0
            while left[node] != -1:
                node = left[node] if row[feature[node]] <= threshold[node] else right[node]
            total += leaf[node]
        return float(2.0 ** (-total / self.denominator)) if self.denominator else 1.0


class AnomalyScorer:
    """Collects benign feature vectors, fits once, then scores each cycle."""

    def __init__(self, train_cycles: int, rate_per_cycle: float, seed: int = 0) -> None:
        self.train_cycles = train_cycles
        self.rate_per_cycle = rate_per_cycle
        self.seed = seed
        self._rows: list[list[float]] = []
        self._mean: NDArray[np.float64] | None = None
        self._scale: NDArray[np.float64] | None = None
        self._forest: CompiledForest | None = None
        self.threshold: float | None = None
        #: scikit-learn is not installed (an edge install without the extra): no score
        self.disabled = False

    @property
    def learning(self) -> bool:
        """True until the forest is fitted (or found impossible to fit)."""
        return self._forest is None and not self.disabled

    def learn(self, features: list[float]) -> None:
        """Add one benign cycle (`ready` once enough are in: then `fit`)."""
        self._rows.append(features)

    @property
    def ready(self) -> bool:
        """Enough benign cycles are in and the forest is not fitted yet."""
        return self.learning and len(self._rows) >= self.train_cycles

    def fit(self) -> None:
        """Fit the forest and place the threshold (CPU work, once)."""
        try:
            from sklearn.ensemble import IsolationForest  # loaded only when a site trains
        except ImportError:
            log.warning("anomaly score off: scikit-learn is not installed "
                        "(pip install 'bessai[security]'); the rule checks stay armed")  # fmt: skip
            self.disabled = True
            self._rows = []
            return

        data = np.asarray(self._rows, dtype=np.float64)
        self._mean = data.mean(axis=0)
        self._scale = np.maximum(data.std(axis=0), 1e-6)
        scaled = (data - self._mean) / self._scale
        forest = IsolationForest(n_estimators=N_TREES, random_state=self.seed)
        forest.fit(scaled)
        scores = -forest.score_samples(scaled)
        self.threshold = threshold_for_budget(scores, self.rate_per_cycle)
        self._forest = CompiledForest(forest)
        self._rows = []

    def score(self, features: list[float]) -> float | None:
        """This cycle's score (higher = stranger), None while learning."""
        if self._forest is None or self._mean is None or self._scale is None:
            return None
        row = ((np.asarray(features, dtype=np.float64) - self._mean) / self._scale).tolist()
        return self._forest.score(row)
