"""`bessai policy ensemble`: one policy whose action is the mean of several trained ones'.

Seeds of the same training settings score as far apart as different settings do (docs/
benchmarks.md); averaging the members' actions buys that noise down without choosing the luckiest
seed. The members must read the same observation and fit the same battery, so the ensemble's card
is theirs with the members' training records in it. PyTorch: the `[rl]` extra."""

from __future__ import annotations

from pathlib import Path

from bessai.errors import PolicyError
from bessai.policy.card import PolicyCard, load_card
from bessai.policy.export import ExportInfo, export_policy, load_networks

#: what every member's card must share with the first's
_SHARED = (
    "forecast_steps",
    "step_hours",
    "price_scale_usd_mwh",
    "price_unit",
    "duration_h",
    "layout",
    "forecaster",
    "lag_steps",
)


def ensemble_policy(members: list[Path], out: Path) -> PolicyCard:
    """Export into `out` the policy acting the mean of `members`' actions (each an exported
    policy directory with its network.pt); `PolicyError` naming the member that does not fit."""
    if len(members) < 2:
        raise PolicyError("an ensemble needs at least two policies (--model twice or more)")
    if out.resolve() in {m.resolve() for m in members}:
        raise PolicyError(f"--out {out} is one of the members; write the ensemble elsewhere")
    cards = [load_card(m) for m in members]
    first = cards[0]
    for path, card in zip(members[1:], cards[1:], strict=True):
        for key in _SHARED:
            if getattr(card, key) != getattr(first, key):
                raise PolicyError(
                    f"{path}: {key} is {getattr(card, key)!r}, {members[0]} has "
                    f"{getattr(first, key)!r}; an ensemble's members read the same observation"
                )
    networks = [net for m in members for net in load_networks(m)]
    training = {
        "algorithm": f"mean action of {len(networks)} policies",
        "members": [
            {"directory": m.name, "model_sha256": c.model_sha256, **c.training}
            for m, c in zip(members, cards, strict=True)
        ],
    }
    info = ExportInfo(
        forecast_steps=first.forecast_steps,
        step_hours=first.step_hours,
        price_scale_usd_mwh=first.price_scale_usd_mwh,
        duration_h=first.duration_h,
        layout=first.layout,
        forecaster=first.forecaster,
        lag_steps=first.lag_steps,
        training=training,
        score={"members": [c.score for c in cards]},
    )
    return export_policy(networks, info, out, None)
