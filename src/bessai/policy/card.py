"""The model card beside an exported policy (`card.json`): what the network reads and writes,
how it was trained and how it scored. The gateway checks it against the site before it lets the
policy propose a setpoint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bessai.errors import PolicyError

CARD_FORMAT = "bessai-policy/1"
CARD_FILE = "card.json"
MODEL_FILE = "policy.onnx"
#: the training-time network's weights, for `bessai policy check` (needs the `[rl]` extra)
WEIGHTS_FILE = "network.pt"
ENV_ID = "bessai/BESS-v0"
#: a policy trained on one battery duration (energy / power) runs on others within this factor
DURATION_TOLERANCE = 1.5
#: Observation layouts this runtime builds (the card's `layout`). Both are 29 floats for 24
#: forecast steps; they differ in which forecast fills the price window:
#: 1 = the day-ahead forecast made at the start of each market day;
#: 2 = the forecast re-made at every step from the prices published by then (`lag_steps` late),
#:     by the card's `forecaster`: the gateway's planner forecast, re-made at each re-plan.
LAYOUTS = {
    1: "day-ahead forecast made at the start of each market day",
    2: "forecast re-made at every step from the prices published by then",
}


def observation_names(forecast_steps: int) -> list[str]:
    """The observation layout of `bessai/BESS-v0`, one name per input."""
    prices = [f"price_{k:+d}_steps / price_scale" for k in range(forecast_steps + 1)]
    return [
        "soc (0..1)",
        "(cell_temp_c - 25) / 20",
        *prices,
        "sin(2 pi utc_hour / 24)",
        "cos(2 pi utc_hour / 24)",
    ]


@dataclass(frozen=True, slots=True)
class PolicyCard:
    """What a policy expects and where it came from; `card.json` holds it as JSON."""

    forecast_steps: int
    step_hours: float
    price_scale_usd_mwh: float
    duration_h: float
    model_sha256: str
    price_unit: str = "USD/MWh"
    env_id: str = ENV_ID
    format: str = CARD_FORMAT
    observation: list[str] = field(default_factory=list)
    action: str = "battery setpoint as a fraction of rated power in [-1, 1], > 0 charging"
    input_name: str = "obs"
    output_name: str = "action"
    training: dict[str, Any] = field(default_factory=dict)
    score: dict[str, Any] = field(default_factory=dict)
    #: the observation layout version (`LAYOUTS`); cards written before it existed are layout 1
    layout: int = 1
    #: layout 2: the forecaster whose re-made forecast fills the window, and the publication
    #: lag (steps) of the prices it was trained on
    forecaster: str | None = None
    lag_steps: int | None = None

    @property
    def n_obs(self) -> int:
        return self.forecast_steps + 5

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def trained_without_wear(self) -> bool:
        """Whether the policy was trained with no wear cost (every member, for an ensemble): it
        then cycles as if throughput were free."""
        members = self.training.get("members") or [self.training]
        return all(not m.get("replacement_cost_usd_per_kwh") for m in members)

    def mismatch(
        self, step_hours: float, price_unit: str, duration_h: float, forecaster: str | None = None
    ) -> str | None:
        """Why this policy does not fit a site planning on `price_unit` prices every
        `step_hours`, with a battery of `duration_h` hours, forecasting with `forecaster` (not
        checked when None); None when it fits."""
        if self.layout == 2 and forecaster is not None and forecaster != self.forecaster:
            return (
                f"trained on the {self.forecaster} forecast re-made at every step, the site's "
                f"optimizer forecasts with {forecaster}"
            )
        if abs(step_hours - self.step_hours) > 1e-9:
            return (
                f"trained on {self.step_hours:g} h steps, the site's prices have {step_hours:g} h"
            )
        if price_unit != self.price_unit:
            return f"trained on {self.price_unit} prices, the site's are {price_unit}"
        ratio = duration_h / self.duration_h
        if not 1 / DURATION_TOLERANCE <= ratio <= DURATION_TOLERANCE:
            return (
                f"trained on a {self.duration_h:g} h battery, the site's holds {duration_h:.2g} h"
                f" at full power (more than a factor {DURATION_TOLERANCE:g} apart)"
            )
        return None


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fields(data: dict[str, Any], where: Path) -> PolicyCard:
    known = set(PolicyCard.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise PolicyError(f"{where}: unknown card keys {', '.join(unknown)}")
    try:
        card = PolicyCard(**data)
    except TypeError as exc:
        raise PolicyError(f"{where}: incomplete card ({exc})") from None
    if card.format != CARD_FORMAT or card.env_id != ENV_ID:
        raise PolicyError(
            f"{where}: card format {card.format!r} for {card.env_id!r}; this gateway reads "
            f"{CARD_FORMAT!r} for {ENV_ID!r}"
        )
    if card.forecast_steps < 0 or card.step_hours <= 0 or card.price_scale_usd_mwh <= 0:
        raise PolicyError(f"{where}: forecast_steps, step_hours or price_scale out of range")
    if card.duration_h <= 0:
        raise PolicyError(f"{where}: duration_h must be positive")
    if card.layout not in LAYOUTS:
        raise PolicyError(
            f"{where}: observation layout {card.layout!r}; this runtime builds layouts "
            f"{', '.join(map(str, LAYOUTS))}"
        )
    if card.layout == 2 and (card.forecaster is None or card.lag_steps is None):
        raise PolicyError(f"{where}: observation layout 2 needs forecaster and lag_steps")
    return card


def load_card(directory: Path) -> PolicyCard:
    """Read and check `card.json` of a policy directory, and that `policy.onnx` is the file the
    card describes (by hash). Every problem is one `PolicyError` line naming the file."""
    where = directory / CARD_FILE
    model = directory / MODEL_FILE
    if not directory.is_dir():
        raise PolicyError(f"policy directory {directory} does not exist")
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"{where} is missing: not an exported policy") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PolicyError(f"{where}: unreadable card ({exc})") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{where}: a card is a JSON object")
    card = _fields(data, where)
    if not model.is_file():
        raise PolicyError(f"{model} is missing")
    if sha256_of(model) != card.model_sha256:
        raise PolicyError(f"{model} is not the model its card describes (SHA-256 differs)")
    return card
