"""Federated training in process (the arithmetic, without Flower's process starts): the three
sites of `bench/federated_results.py`, the exact Ridge (3 rounds) and the MLP (30 FedAvg
rounds), with the bytes each site sends per stage (numpy arrays as float64, as Flower carries
them) and the time the sites' own work takes."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench.federated_results import SITES
from bessai.federated.answers import answer
from bessai.federated.local import LocalTransport
from bessai.federated.mlp import MlpSpec
from bessai.federated.protocol import Payload
from bessai.federated.server import Policy, run_mlp, run_ridge
from bessai.federated.site import SiteRows, load_site, site_source


def _bytes(payload: Payload) -> int:
    return sum(v.nbytes if isinstance(v, np.ndarray) else 8 for v in payload.values())


def run() -> dict[str, Any]:
    """Time the in-process Ridge and MLP federations; measure what sites send."""
    t0 = time.perf_counter()
    rows = [load_site(s.name, site_source(s.prices, first=s.first, last=s.last)) for s in SITES]
    load_s = time.perf_counter() - t0
    sent: dict[str, int] = {}

    def counting(site: SiteRows, stage: str, request: Payload) -> Payload:
        reply = answer(site, stage, request)
        sent[stage] = max(sent.get(stage, 0), _bytes(reply))
        return reply

    t = LocalTransport(rows, answer_fn=counting)
    t0 = time.perf_counter()
    ridge = run_ridge(t, t.ids(), Policy(min_clients=3))
    ridge_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    mlp = run_mlp(t, t.ids(), Policy(min_clients=3), MlpSpec())
    mlp_s = time.perf_counter() - t0
    return {
        "sites": {r.info.site: r.n for r in rows},
        "build_rows_s": round(load_s, 2),
        "ridge": {"rounds": ridge.rounds, "seconds": round(ridge_s, 3)},
        "mlp": {"rounds": mlp.rounds, "seconds": round(mlp_s, 2)},
        "largest_answer_bytes_per_stage": sent,
    }
