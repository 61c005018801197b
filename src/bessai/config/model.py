"""The root configuration and a site: the sections put together, with the checks that span them."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    ValidationInfo,
    model_validator,
)

from bessai.config.sections import (
    BatteryConfig,
    ControllersConfig,
    DeviceConfig,
    DispatchConfig,
    GatewayConfig,
    OptimizerConfig,
    SafetyConfig,
    SecurityConfig,
    SimulatorConfig,
    TrackingConfig,
    _Section,
)
from bessai.config.services import (
    AlertsConfig,
    ApiConfig,
    CarbonConfig,
    FleetConfig,
    LedgerConfig,
    ProxyConfig,
)
from bessai.config.vpp import VppConfig
from bessai.telemetry.config import TelemetryConfig


class SiteConfig(_Section):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    name: str = ""
    timezone: str = Field(default="America/Santiago", description="for local-time rules")
    cycle_s: float = Field(default=5.0, ge=0.1, le=600)
    slow_every: int = Field(default=12, ge=1, le=10_000, description="slow group every N cycles")
    devices: list[DeviceConfig] = Field(default_factory=lambda: [DeviceConfig()])
    battery: BatteryConfig = Field(default_factory=BatteryConfig)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    dispatch: DispatchConfig = Field(default_factory=DispatchConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    controllers: ControllersConfig = Field(default_factory=ControllersConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    simulator: SimulatorConfig = Field(default_factory=SimulatorConfig)
    vpp: VppConfig = Field(default_factory=VppConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)

    @model_validator(mode="after")
    def _one_hybrid(self) -> Self:
        hybrids = [d for d in self.devices if d.kind == "huawei_hybrid"]
        if len(hybrids) != 1:
            raise ValueError("a site needs exactly one device of kind 'huawei_hybrid'")
        if self.safety.stale_after_s < self.cycle_s:
            raise ValueError(
                f"safety.stale_after_s {self.safety.stale_after_s:g} is shorter than one cycle "
                f"({self.cycle_s:g} s): every cycle would be stale"
            )
        return self

    @model_validator(mode="after")
    def _policy_has_a_plan(self) -> Self:
        if self.controllers.policy is not None and not self.optimizer.enabled:
            raise ValueError(
                "controllers.policy needs optimizer.enabled: the policy reads the planner's "
                "forecast and falls back to its plan"
            )
        return self

    @model_validator(mode="after")
    def _known_timezone(self) -> Self:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {self.timezone!r}") from None
        return self

    @property
    def device(self) -> DeviceConfig:
        return next(d for d in self.devices if d.kind == "huawei_hybrid")


class Config(_Section):
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    sites: list[SiteConfig] = Field(min_length=1)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)
    carbon: CarbonConfig = Field(default_factory=CarbonConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    #: read by `bessai market fetch` (API key, base URL), which validates it
    market: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_sites(self) -> Self:
        ids = [s.id for s in self.sites]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate site id(s): {', '.join(duplicates)}")
        return self

    @model_validator(mode="after")
    def _proxy_site(self) -> Self:
        proxy = self.proxy
        ids = [s.id for s in self.sites]
        if proxy.site is not None and proxy.site not in ids:
            raise ValueError(f"proxy.site {proxy.site!r} is not a site ({', '.join(ids)})")
        if proxy.enabled and proxy.site is None and len(ids) > 1:
            raise ValueError(f"proxy.site: name the site to serve ({', '.join(ids)})")
        return self

    @property
    def proxy_site(self) -> str:
        """The id of the site the proxy serves."""
        return self.proxy.site or self.sites[0].id

    @model_validator(mode="after")
    def _dev_mode_on_loopback(self) -> Self:
        if self.api.dev_mode and not is_loopback(self.gateway.http_host):
            raise ValueError(
                f"api.dev_mode serves the API without keys, so gateway.http_host must be a "
                f"loopback address (127.0.0.1, ::1, localhost), not {self.gateway.http_host!r}"
            )
        return self

    @model_validator(mode="after")
    def _absolute_paths(self, info: ValidationInfo) -> Self:
        # One rule for paths (module docstring): a validated Config holds absolute paths only.
        # load_config gives the configuration file's folder; otherwise it is the current one.
        base = (info.context or {}).get("base")
        resolve_paths(self, Path(base) if base is not None else Path.cwd())
        return self

    @property
    def keys_file(self) -> Path:
        return self.api.keys_file or self.gateway.data_dir / "api_keys.json"

    @property
    def ledger_key_file(self) -> Path:
        return self.ledger.key_file or self.gateway.data_dir / "ledger" / "gateway.key"

    @property
    def ledger_log_file(self) -> Path:
        return self.ledger.log_file or self.gateway.data_dir / "ledger" / "credits.jsonl"


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_paths(config: Config, base: Path) -> None:
    """Apply the one path rule in place: `gateway.data_dir` relative to `base` (the config
    file's folder), every other relative path relative to `gateway.data_dir`; `~` expands."""
    gateway = config.gateway
    data_dir = gateway.data_dir.expanduser()
    gateway.data_dir = data_dir if data_dir.is_absolute() else (base / data_dir).resolve()

    def under(path: Path) -> Path:
        path = path.expanduser()
        return path if path.is_absolute() else gateway.data_dir / path

    def under_opt(path: Path | None) -> Path | None:
        return None if path is None else under(path)

    if config.api.keys_file is not None:
        config.api.keys_file = under(config.api.keys_file)
    config.ledger.key_file = under_opt(config.ledger.key_file)
    config.ledger.log_file = under_opt(config.ledger.log_file)
    config.carbon.marginal_factors = under_opt(config.carbon.marginal_factors)
    sinks: list[Any] = []
    for sink in config.telemetry.sinks:
        if sink.type == "lake":
            sink = sink.model_copy(update={"path": under(sink.path)})
        elif sink.type == "mqtt":
            sink = sink.model_copy(
                update={
                    "ca_file": under_opt(sink.ca_file),
                    "cert_file": under_opt(sink.cert_file),
                    "key_file": under_opt(sink.key_file),
                }
            )
        elif sink.type == "pubsub":
            sink = sink.model_copy(update={"credentials_file": under_opt(sink.credentials_file)})
        else:
            sink = sink.model_copy(update={"tls_ca_file": under_opt(sink.tls_ca_file)})
        sinks.append(sink)
    config.telemetry = config.telemetry.model_copy(
        update={"outbox_path": under(config.telemetry.outbox_path), "sinks": sinks}
    )
    for site in config.sites:
        _resolve_site_paths(site, under)


def _resolve_site_paths(site: SiteConfig, under: Callable[[Path], Path]) -> None:
    """Files named by sites: a price file (not `builtin:`), a trained forecaster (`model:`),
    an exported policy (`onnx:`), a scenario file (not a built-in scenario name)."""
    from bessai.simulator.scenario import BUILTIN_SCENARIOS

    if site.vpp.ca_file is not None:
        site.vpp.ca_file = under(site.vpp.ca_file)
    optimizer = site.optimizer
    if not optimizer.prices.startswith("builtin:"):
        optimizer.prices = str(under(Path(optimizer.prices)))
    if optimizer.forecaster.startswith("model:"):
        model = optimizer.forecaster.removeprefix("model:")
        optimizer.forecaster = f"model:{under(Path(model))}"
    for exog in optimizer.exog:
        exog.file = under(exog.file)
    if site.controllers.policy is not None:
        policy = site.controllers.policy.removeprefix("onnx:")
        site.controllers.policy = f"onnx:{under(Path(policy))}"
    scenario = site.simulator.scenario
    if scenario is not None and scenario not in BUILTIN_SCENARIOS:
        site.simulator.scenario = str(under(Path(scenario)))
