"""Learned-policy benchmark: one gateway decision with the committed PPO policy (observation
built from a site view, then onnxruntime on one thread), p50/p99/max over many decisions, and
the inference alone."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bessai.policy.observation import SiteView, observation
from bessai.policy.runner import OnnxPolicy

POLICY = Path(__file__).resolve().parents[1] / "models" / "ppo-crucero"


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    values = np.asarray(samples_ms)
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 4),
        "p99_ms": round(float(np.percentile(values, 99)), 4),
        "max_ms": round(float(values.max()), 4),
    }


def run(decisions: int = 5000) -> dict[str, object]:
    """p50/p99/max of a whole decision and of the ONNX inference alone, in ms."""
    policy = OnnxPolicy(POLICY)
    rng = np.random.default_rng(0)
    forecast = tuple(float(x) for x in 60 + 40 * np.sin(np.arange(24) / 3.8))
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    decision_ms: list[float] = []
    inference_ms: list[float] = []
    for i in range(decisions):
        view = SiteView(float(rng.uniform(5, 95)), 25.0, forecast, now, first=i % 24)
        t0 = time.perf_counter()
        _, elapsed_ms = policy.act(observation(view, policy.card))
        decision_ms.append((time.perf_counter() - t0) * 1000.0)
        inference_ms.append(elapsed_ms)
    return {
        "model": POLICY.name,
        "decisions": decisions,
        "decision": _percentiles(decision_ms),
        "onnx_inference": _percentiles(inference_ms),
    }
