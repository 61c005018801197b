"""`GET /api/v1/carbon` and `GET /api/v1/credits`: CO2 avoided per site and fleet under each
factor method (never mixed), and the energy credits the gateway has minted (read-only: credits
are minted from measured energy only, never from a request)."""

# No `from __future__ import annotations`: FastAPI resolves route annotations where defined.

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from bessai.api.deps import READ, AuthFirstRoute, Ctx
from bessai.api.responses import KEYED
from bessai.ledger.keys import key_id
from bessai.observe.carbon import CarbonObserver, Tally


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MethodOut(_Out):
    method: str = Field(description="<basis>-<kind>: location-average, location-marginal, ...")
    kind: str = Field(description="average or marginal")
    basis: str = Field(description="GHG Protocol Scope 2: location or market")
    name: str
    description: str


class TallyOut(_Out):
    method: str
    charged_kwh: float
    discharged_kwh: float
    losses_kwh: float = Field(description="charged - discharged")
    charging_kg: float = Field(description="CO2 caused by the energy drawn to charge")
    discharging_kg: float = Field(description="CO2 avoided by the energy fed back")
    avoided_kg: float = Field(description="discharging - charging (< 0: the battery added CO2)")
    uncovered_kwh: float = Field(description="energy of intervals without a factor")
    factor_g_kwh: float | None = Field(description="factor of the last interval")


class EmbodiedOut(_Out):
    kg_per_kwh_capacity: float
    total_kg: float
    kg_per_kwh_discharged: float = Field(
        description="amortised over the life of the reference dispatch (docs/carbon.md)"
    )
    share_kg: float = Field(description="embodied share of the energy discharged since start")


class SiteCarbonOut(_Out):
    site: str
    methods: list[TallyOut]
    pending_charged_kwh: float = Field(description="measured in the open interval")
    pending_discharged_kwh: float
    embodied: EmbodiedOut


class CarbonOut(_Out):
    enabled: bool
    since_utc: datetime | None = None
    interval_s: float | None = None
    methods: list[MethodOut] = []
    sites: list[SiteCarbonOut] = []
    fleet: list[TallyOut] = Field(default=[], description="sum of the sites, per method")


class SiteCreditsOut(_Out):
    site: str
    minted: int
    kwh: float
    co2_avoided_kg: float


class CheckpointOut(_Out):
    size: int
    root: str
    ts: str


class CreditsOut(_Out):
    enabled: bool
    public_key: str | None = Field(default=None, description="verify with this (base64)")
    key_id: str | None = None
    records: int = 0
    minted: int = Field(default=0, description="credits minted (one per interval with energy)")
    kwh: float = Field(default=0.0, description="discharged energy minted")
    co2_avoided_kg: float = 0.0
    co2_caused_kg: float = 0.0
    transfers: int = Field(default=0, description="owner-signed transfers (P2P)")
    pending_kwh: float = Field(default=0.0, description="measured, not yet minted")
    unanchored_records: int = Field(default=0, description="records after the last checkpoint")
    mint_failures: int = 0
    last_error: str | None = None
    checkpoint: CheckpointOut | None = None
    sites: list[SiteCreditsOut] = []


def _tally_out(key: str, t: Tally) -> TallyOut:
    return TallyOut(
        method=key,
        charged_kwh=round(t.charged_kwh, 4),
        discharged_kwh=round(t.discharged_kwh, 4),
        losses_kwh=round(t.charged_kwh - t.discharged_kwh, 4),
        charging_kg=round(t.charging_kg, 4),
        discharging_kg=round(t.discharging_kg, 4),
        avoided_kg=round(t.saved_kg, 4),
        uncovered_kwh=round(t.uncovered_kwh, 4),
        factor_g_kwh=t.factor_g_kwh,
    )


def carbon_view(observer: CarbonObserver | None) -> CarbonOut:
    """The carbon document of the running gateway (empty when carbon accounting is off)."""
    if observer is None:
        return CarbonOut(enabled=False)
    methods: dict[str, MethodOut] = {}
    fleet: dict[str, Tally] = {}
    sites = []
    per_kwh = observer.embodied_kg_per_kwh_discharged
    for site_id, site in observer.sites.items():
        for key, (m, _) in site.sources.items():
            methods[key] = MethodOut(method=key, kind=m.kind.value, basis=m.basis.value,
                                     name=m.name, description=m.description)  # fmt: skip
        for key, t in site.tallies.items():
            total = fleet.setdefault(key, Tally())
            total.charged_kwh += t.charged_kwh
            total.discharged_kwh += t.discharged_kwh
            total.charging_kg += t.charging_kg
            total.discharging_kg += t.discharging_kg
            total.uncovered_kwh += t.uncovered_kwh
        discharged = max((t.discharged_kwh for t in site.tallies.values()), default=0.0)
        pending = site.meter.pending_kwh
        sites.append(
            SiteCarbonOut(
                site=site_id,
                methods=[_tally_out(k, t) for k, t in site.tallies.items()],
                pending_charged_kwh=round(pending[0], 4),
                pending_discharged_kwh=round(pending[1], 4),
                embodied=EmbodiedOut(
                    kg_per_kwh_capacity=observer.config.embodied_kg_per_kwh,
                    total_kg=round(site.capacity_kwh * observer.config.embodied_kg_per_kwh, 3),
                    kg_per_kwh_discharged=round(per_kwh, 6),
                    share_kg=round(discharged * per_kwh, 4),
                ),
            )
        )
    return CarbonOut(
        enabled=True,
        since_utc=observer.since,
        interval_s=observer.config.interval_s,
        methods=list(methods.values()),
        sites=sites,
        fleet=[_tally_out(k, t) for k, t in fleet.items()],
    )


def credits_view(observer: CarbonObserver | None) -> CreditsOut:
    """The energy credits minted so far and the ledger's latest checkpoint."""
    minter = observer.minter if observer is not None else None
    if observer is None or minter is None:
        return CreditsOut(enabled=False)
    ledger = minter.ledger
    summary: dict[str, Any] = ledger.state.summary()
    cp = ledger.latest_checkpoint
    return CreditsOut(
        enabled=True,
        public_key=minter.public_key,
        key_id=key_id(minter.public_key),
        records=summary["records"],
        minted=summary["mints"],
        kwh=summary["discharged_kwh"],
        co2_avoided_kg=summary["co2_avoided_kg"],
        co2_caused_kg=summary["co2_caused_kg"],
        transfers=summary["transfers"],
        pending_kwh=round(observer.pending_kwh()[1], 4),
        unanchored_records=ledger.unanchored,
        mint_failures=minter.failures,
        last_error=minter.last_error,
        checkpoint=None
        if cp is None
        else CheckpointOut(size=cp.size, root=cp.root.hex(), ts=cp.ts),
        sites=[
            SiteCreditsOut(site=s, minted=n, kwh=wh / 1000.0, co2_avoided_kg=g / 1000.0)
            for s, (n, wh, g) in dict(ledger.state.by_site).items()
        ],
    )


router = APIRouter(route_class=AuthFirstRoute, responses=KEYED, dependencies=[READ])


@router.get("/carbon", response_model=CarbonOut)
async def get_carbon(ctx: Ctx) -> CarbonOut:
    """CO2 caused by charging, avoided by discharging and the net, per site and for the
    fleet, since the gateway started, under each factor method on its own (location- or
    market-based, average or marginal), with the factors in force and the battery's
    embodied share."""
    return carbon_view(ctx.monitor.carbon)


@router.get("/credits", response_model=CreditsOut)
async def get_credits(ctx: Ctx) -> CreditsOut:
    """The energy-credits ledger (the original system's "p2p"): credits minted from
    measured energy, kWh, transfers, what is pending, and the latest signed checkpoint.
    Verify the log offline with `bessai ledger verify` and `public_key`."""
    return credits_view(ctx.monitor.carbon)
