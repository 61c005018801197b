"""The server's side of a federated Ridge, over any transport.

Three stages (:mod:`.protocol`): ``moments`` -> pooled means; ``gram`` -> the pooled Ridge;
``calibrate`` -> the band calibration and the train loss. Each stage is one Flower round.

Dropout policy: a stage asks every site still in and waits at most ``round_timeout_s``; a site
that fails or does not answer is out from then on. If fewer than ``min_clients`` are left the
training stops with an error and writes nothing. If a site drops during ``gram``, the answers
of that round were centred on means that included it, so the pooled means are recomputed from
the remaining sites' moments and ``gram`` is asked again: the model is always exactly the
pooled Ridge of the sites named in its card, never a mix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from bessai.errors import DataError
from bessai.federated.answers import calibrate_request
from bessai.federated.mlp import MlpSpec, run_rounds, scaling_from_sums
from bessai.federated.model import (
    FederatedModel,
    calibration_from_histograms,
    check_sites,
    spread_floor,
)
from bessai.federated.protocol import Payload, gram_of, moments_of
from bessai.federated.site import SiteInfo
from bessai.federated.stats import add_grams, add_moments, solve_ridge
from bessai.market.bands import BandCalibration
from bessai.market.training import TrainSpec


class Transport(Protocol):
    """Carries one stage's requests to sites and brings back the answers that came."""

    def ask(self, stage: str, requests: dict[int, Payload], round_no: int) -> dict[int, Payload]:
        """Send ``requests`` (site id -> payload); return the answers received in time.
        A site missing from the result failed or did not answer."""
        ...


@dataclass(frozen=True, slots=True)
class RoundReport:
    """One finished round, for the status file and the metrics."""

    round_no: int
    stage: str
    asked: int
    answered: int
    dropped: tuple[int, ...]
    train_loss: float | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """How a training treats slow and missing sites."""

    min_clients: int = 2
    round_timeout_s: float = 120.0
    max_gram_attempts: int = 3

    def __post_init__(self) -> None:
        if self.min_clients < 1:
            raise DataError("federated: min_clients must be at least 1")
        if not self.round_timeout_s > 0:
            raise DataError("federated: the round timeout must be > 0 s")


@dataclass(slots=True)
class _Run:
    transport: Transport
    policy: Policy
    on_round: Callable[[RoundReport], None]
    rounds: int = 0
    sites: dict[int, SiteInfo] = field(default_factory=dict)

    def ask(
        self, stage: str, requests: dict[int, Payload], loss: float | None = None
    ) -> dict[int, Payload]:
        self.rounds += 1
        replies = self.transport.ask(stage, requests, self.rounds)
        replies = {k: v for k, v in replies.items() if k in requests}
        dropped = tuple(sorted(set(requests) - set(replies)))
        self.on_round(RoundReport(self.rounds, stage, len(requests), len(replies), dropped, loss))
        if len(replies) < self.policy.min_clients:
            names = [self.sites[k].site if k in self.sites else str(k) for k in dropped]
            raise DataError(
                f"federated: round {self.rounds} ({stage}) got {len(replies)} answers, fewer "
                f"than the minimum of {self.policy.min_clients} sites"
                + (f" (no answer from {', '.join(names)})" if names else "")
            )
        return replies


def _check_count(site_ids: Sequence[int], policy: Policy) -> None:
    if len(site_ids) < policy.min_clients:
        raise DataError(
            f"federated: {len(site_ids)} sites connected, fewer than the minimum of "
            f"{policy.min_clients}"
        )


def _moments_round(run: _Run, site_ids: Sequence[int]) -> dict[int, Payload]:
    """Round 1 for either model: the sites' moments, their info recorded and checked."""
    replies = run.ask("moments", {k: {} for k in site_ids})
    for k, reply in replies.items():
        run.sites[k] = moments_of(reply)[1]
    check_sites([run.sites[k] for k in sorted(replies)])
    return replies


def _calibrate(
    run: _Run, model: object, active: list[int], floor: float
) -> tuple[BandCalibration, float]:
    """The last round: pooled error histograms -> bands; the train loss (MSE, price units)."""
    calib = run.ask("calibrate", {k: calibrate_request(model, floor) for k in active})
    hist = np.sum([np.asarray(v["hist"], dtype=np.float64) for v in calib.values()], axis=0)
    n_calib = sum(int(v["n"]) for v in calib.values())
    loss = float(sum(float(v["sse"]) for v in calib.values()) / n_calib)
    run.on_round(RoundReport(run.rounds, "done", 0, 0, (), loss))
    return calibration_from_histograms(hist, floor), loss


def run_ridge(
    transport: Transport,
    site_ids: Sequence[int],
    policy: Policy,
    on_round: Callable[[RoundReport], None] = lambda report: None,
) -> FederatedModel:
    """Train the federated Ridge over the sites ``site_ids``."""
    run = _Run(transport, policy, on_round)
    _check_count(site_ids, policy)
    moments = {k: moments_of(v)[0] for k, v in _moments_round(run, site_ids).items()}
    active = sorted(moments)
    for _attempt in range(policy.max_gram_attempts):
        pooled = add_moments(moments[k] for k in active)
        request = {"mean_x": pooled.mean_x(), "mean_y": pooled.mean_y()}
        replies = run.ask("gram", {k: request for k in active})
        if sorted(replies) == active:
            break
        active = sorted(replies)  # centred on the wrong means: ask the rest again
    else:
        raise DataError(
            f"federated: sites kept dropping out of the gram round "
            f"({policy.max_gram_attempts} attempts)"
        )
    grams = {k: gram_of(v) for k, v in replies.items()}
    model = solve_ridge(pooled, add_grams(grams.values()), TrainSpec(model="ridge").ridge_alpha)
    calibration, loss = _calibrate(run, model, active, spread_floor(pooled.mean_x()))
    return FederatedModel(
        model,
        calibration,
        tuple(run.sites[k] for k in active),
        {run.sites[k].site: moments[k].n for k in active},
        run.rounds,
        loss,
    )


def run_mlp(
    transport: Transport,
    site_ids: Sequence[int],
    policy: Policy,
    spec: MlpSpec,
    on_round: Callable[[RoundReport], None] = lambda report: None,
) -> FederatedModel:
    """Train the MLP with FedAvg (``spec.mu == 0``) or FedProx over the sites ``site_ids``;
    a site that misses a round is out from then on (the minimum still applies)."""
    run = _Run(transport, policy, on_round)
    _check_count(site_ids, policy)
    replies = _moments_round(run, site_ids)
    moments = {k: moments_of(v)[0] for k, v in replies.items()}
    pooled = add_moments(moments.values())
    scaling = scaling_from_sums(
        pooled.n,
        pooled.sum_x,
        np.sum([np.asarray(v["sum_x2"], dtype=np.float64) for v in replies.values()], axis=0),
        pooled.sum_y,
        float(sum(float(v["sum_y2"]) for v in replies.values())),
    )
    alive = sorted(replies)

    def ask(requests: dict[int, Payload], _round: int) -> dict[int, Payload]:
        got = run.ask("fit", {k: v for k, v in requests.items() if k in alive})
        alive[:] = sorted(got)
        return got

    model = run_rounds(ask, alive, scaling, spec, len(pooled.sum_x))
    calibration, loss = _calibrate(run, model, alive, spread_floor(pooled.mean_x()))
    extra: dict[str, object] = {
        "fedprox_mu": spec.mu,
        "hidden": spec.hidden,
        "local_epochs": spec.local_epochs,
        "fit_rounds": spec.rounds,
    }
    return FederatedModel(
        model,
        calibration,
        tuple(run.sites[k] for k in alive),
        {run.sites[k].site: moments[k].n for k in alive},
        run.rounds,
        loss,
        extra,
        kind="mlp",
    )
