"""The sections of one site's configuration: device, battery, safety, dispatch, tracking,
controllers, optimizer and simulator."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from bessai.modbus.profile import BUILTIN_PROFILES

PositiveW = Annotated[float, Field(gt=0, le=1e8)]
Pct = Annotated[float, Field(ge=0, le=100)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class GatewayConfig(_Section):
    data_dir: Path = Field(
        default=Path("var"),
        description="audit log, outbox, lake and API keys live here; relative to the config file",
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    status_display: bool = Field(default=True, description="live status table on a terminal")


class DeviceConfig(_Section):
    """One Modbus TCP device. A Huawei hybrid inverter serves the three profiles on one unit."""

    kind: Literal["huawei_hybrid"] = "huawei_hybrid"
    host: str = "127.0.0.1"
    port: int = Field(default=502, ge=0, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)
    profiles: list[str] = Field(default_factory=lambda: list(BUILTIN_PROFILES))
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    wait_after_connect_s: float = Field(default=1.0, ge=0, le=30)
    cooldown_s: float = Field(default=0.05, ge=0, le=5)
    retries: int = Field(default=3, ge=0, le=10)
    reconnect_backoff_max_s: float = Field(default=60.0, gt=0, le=3600)


class BatteryConfig(_Section):
    """What the plant can do, independent of what the device reports."""

    capacity_kwh: float = Field(default=15.0, gt=0, le=1e6)
    max_charge_w: PositiveW = 5_000.0
    max_discharge_w: PositiveW = 5_000.0
    replacement_cost_per_kwh: float = Field(
        default=300.0,
        ge=0,
        le=1e5,
        description="what new cells cost, in the price file's currency per kWh: the optimizer's "
        "default wear cost follows from it and the degradation model",
    )


class SafetyConfig(_Section):
    """Limits the SafetyGuard enforces on every request (defaults from the original design)."""

    soc_min_pct: Pct = 5.0
    soc_max_pct: Pct = 98.0
    soc_hysteresis_pct: float = Field(default=1.0, ge=0, le=20)
    temp_max_c: float = Field(default=45.0, ge=0, le=80)
    temp_min_c: float = Field(default=-10.0, ge=-40, le=40)
    temp_hysteresis_c: float = Field(default=3.0, ge=0, le=20)
    max_charge_w: PositiveW | None = None
    max_discharge_w: PositiveW | None = None
    grid_import_max_w: PositiveW | None = None
    grid_export_max_w: PositiveW | None = None
    #: alarm texts (or a prefix of them) that block any dispatch while active
    blocking_alarms: list[str] = Field(
        default_factory=lambda: [
            "Battery Abnormal",
            "Battery Reverse Connection",
            "Overtemperature",
            "Device Fault",
            "Abnormal Residual Current",
            "Low Insulation Resistance",
            "Abnormal Grounding",
            "Grid Loss",
        ]
    )
    stale_after_s: float = Field(default=15.0, gt=0, le=600)
    recovery_cycles: int = Field(default=3, ge=1, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.soc_min_pct >= self.soc_max_pct:
            raise ValueError(f"soc_min_pct {self.soc_min_pct} must be below soc_max_pct")
        if self.temp_min_c >= self.temp_max_c:
            raise ValueError(f"temp_min_c {self.temp_min_c} must be below temp_max_c")
        return self


class DispatchConfig(_Section):
    """How a setpoint becomes Huawei forcible charge/discharge writes."""

    forcible_period_min: int = Field(
        default=2, ge=1, le=60, description="device-side expiry of each forcible command"
    )
    refresh_s: float = Field(default=60.0, gt=0, description="rewrite before the period expires")
    deadband_w: float = Field(default=50.0, ge=0, description="smaller changes are not written")
    align_cutoffs: bool = Field(
        default=True, description="write the safety SOC limits to 47081/47082 at start"
    )

    @model_validator(mode="after")
    def _refresh_before_expiry(self) -> Self:
        if self.refresh_s >= self.forcible_period_min * 60:
            raise ValueError(
                f"refresh_s {self.refresh_s:g} must be shorter than the forcible period "
                f"({self.forcible_period_min} min), or the command expires between refreshes"
            )
        return self


class TrackingConfig(_Section):
    """Does the battery follow its command? Measured power against the setpoint, every cycle."""

    enabled: bool = True
    settle_s: float = Field(
        default=15.0, ge=0, le=600, description="after a new command, time to ramp and settle"
    )
    tolerance_w: float = Field(default=150.0, ge=0, le=1e6)
    tolerance_pct: float = Field(default=10.0, ge=0, le=100, description="of the command")
    alert_after_s: float = Field(
        default=60.0, ge=0, le=86_400, description="a shortfall this long raises an alert"
    )
    failsafe_after_s: float = Field(
        default=10.0,
        ge=0,
        le=3_600,
        description="movement against the command, beyond it or in a held direction this long"
        " puts the site in SAFE",
    )
    hold_s: float = Field(
        default=600.0, ge=0, le=86_400, description="SAFE lasts this long after the last violation"
    )
    taper_margin_pct: float = Field(
        default=5.0, ge=0, le=50, description="no shortfall alert this close to full or empty"
    )


class TimeOfUseRule(_Section):
    """A daily window in site local time; `end` may be "24:00"; a window may cross midnight."""

    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")
    setpoint_w: float = Field(ge=-1e8, le=1e8, description="> 0 charge, < 0 discharge")

    @property
    def times(self) -> tuple[time, time]:
        def parse(text: str) -> time:
            return time.max if text == "24:00" else time.fromisoformat(text)

        return parse(self.start), parse(self.end)

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise ValueError(f"window {self.start}-{self.end} is empty")
        return self


class ControllersConfig(_Section):
    manual_override_default_s: float = Field(default=60.0, gt=0, le=86400)
    manual_override_max_s: float = Field(default=3600.0, gt=0, le=86400)
    time_of_use: list[TimeOfUseRule] = Field(default_factory=list)
    policy: str | None = Field(
        default=None,
        pattern=r"^onnx:.+",
        description="learned dispatch: onnx:DIR, an exported policy (`bessai policy train`); it "
        "takes the plan's place and falls back to the plan when it cannot be used "
        "(docs/policy.md); needs the optimizer",
    )
    policy_max_ms: float = Field(
        default=10.0, gt=0, le=1000, description="an inference slower than this falls back"
    )


class ExogConfig(_Section):
    """One exogenous input of a trained forecaster (docs/forecast.md): a file `bessai market
    fetch --dataset` writes, which the operator refreshes; re-read when it changes."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9_]+$", description="the input's name in the model card's exog list"
    )
    file: Path = Field(description="CSV timestamp,key,value; relative: under gateway.data_dir")
    key: str | None = Field(
        default=None, description="the key to read (a bus, a technology); unset: the card's"
    )


class OptimizerConfig(_Section):
    """The model-predictive schedule: re-plan the next `horizon_h` from the measured SOC every
    `replan_s`, on a price forecast made from a price file."""

    enabled: bool = False
    prices: str = Field(
        default="builtin:crucero-2023",
        description="price file (CEN TSV/CSV, SMARD, timestamp,price) or a shipped sample",
    )
    column: str | None = None
    node: str | None = None
    replay: bool = Field(
        default=False,
        description="map today onto the same date of the price file's last year (demo)",
    )
    forecaster: str = "week-mean"
    exog: list[ExogConfig] = Field(
        default_factory=list,
        description="the exogenous inputs a model:DIR forecaster reads, by name (docs/forecast.md)",
    )
    fallback_forecaster: str = Field(
        default="week-mean",
        description="naive forecaster planned on when a model's exogenous inputs are missing or "
        "stale for the hours ahead (persistence or week-mean)",
    )
    # The loader's default (bessai.market.regular.DEFAULT_MAX_GAP_H): longer gaps stay without
    # prices, and a forecast that would read them is refused rather than made up.
    max_gap_h: float = Field(
        default=3.0,
        ge=0,
        description="longest gap in the price file filled by interpolation, hours",
    )
    replan_s: float = Field(default=900.0, ge=10, le=86400)
    horizon_h: float = Field(default=24.0, gt=0, le=168)
    max_plan_age_s: float = Field(default=2700.0, gt=0, le=86400)
    eta_charge: float = Field(default=0.95, gt=0, le=1)
    eta_discharge: float = Field(default=0.95, gt=0, le=1)
    degradation_per_mwh: float | None = Field(
        default=None,
        ge=0,
        description="wear cost per MWh of cell throughput; unset: derived from "
        "battery.replacement_cost_per_kwh and the LFP degradation model (docs/optimizer.md)",
    )
    cycles_per_day: float | None = Field(default=None, gt=0)
    scenario_days: int = Field(
        default=0,
        ge=0,
        le=28,
        description="plan on this many price scenarios (the shapes of the last days around the "
        "forecast) with recourse after the next re-plan; 0 = plan on the point forecast "
        "(docs/optimizer.md)",
    )
    co2_price_per_t: float = Field(
        default=0.0,
        ge=0,
        le=100_000,
        description="carbon-aware plans: CO2 price per tonne (price file's currency) times the "
        "marginal factor the CMg bands give for the forecast; 0 = revenue only (docs/carbon.md)",
    )

    @model_validator(mode="after")
    def _exog_needs_a_model(self) -> Self:
        names = [e.name for e in self.exog]
        if len(set(names)) != len(names):
            raise ValueError(f"exog: an input is named twice ({', '.join(names)})")
        if self.exog and not self.forecaster.startswith("model:"):
            raise ValueError(
                f"exog: forecaster {self.forecaster!r} reads no exogenous input; exog is for a "
                "model:DIR trained with --exog"
            )
        return self

    @model_validator(mode="after")
    def _plan_outlives_replan(self) -> Self:
        if self.max_plan_age_s <= self.replan_s:
            raise ValueError(
                f"max_plan_age_s {self.max_plan_age_s:g} must exceed replan_s {self.replan_s:g},"
                " or every plan expires before the next one"
            )
        return self


class SimulatorConfig(_Section):
    """Start a simulator in-process for this site (the embedded default, tests, demos)."""

    enabled: bool = False
    speed: float = Field(default=1.0, gt=0, le=10_000)
    scenario: str | None = None
    initial_soc_pct: Pct = 50.0
    load_mean_w: float = Field(default=800.0, ge=0, le=1e7, description="house load, daily mean")
    pv_peak_w: float = Field(default=8_000.0, ge=0, le=1e7, description="clear-sky PV peak")


class SecurityConfig(_Section):
    """The security monitor on the Modbus path (docs/security-monitor.md)."""

    enabled: bool = True
    reread_every: int = Field(
        default=1, ge=1, le=100, description="cycles between re-reads of one control block"
    )
    on_foreign_write: Literal["alert", "restore", "safe"] = Field(
        default="safe", description="alert only; restore the gateway's values; or restore + SAFE"
    )
    safe_hold_cycles: int = Field(
        default=12, ge=1, le=100_000, description="cycles SAFE is held after a foreign write"
    )
    train_cycles: int = Field(
        default=720, ge=20, le=1_000_000, description="benign cycles before the score is armed"
    )
    false_alarms_per_day: float = Field(
        default=0.5, gt=0, le=1_000, description="anomaly-score budget per 24 h of cycles"
    )
    persist_cycles: int = Field(
        default=2, ge=1, le=100, description="consecutive cycles over a limit before an alert"
    )
    tolerance_margin: float = Field(
        default=1.5, ge=1.0, le=100, description="learned residual tolerance x this margin"
    )
    connection_losses_per_hour: float = Field(
        default=0.0, ge=0, le=3600, description="losses tolerated (no alert) in any hour"
    )
    seed: int = 0
