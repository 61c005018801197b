"""Deployment configuration: one TOML file, validated by pydantic, every value overridable by a
`BESSAI_*` environment variable. A bad value is an error that names the file (or variable), the
key and why.

Environment overrides address keys with double underscores and list indices, e.g.
``BESSAI_GATEWAY__HTTP_PORT=8001`` or ``BESSAI_SITES__0__SAFETY__TEMP_MAX_C=40``; values are
parsed as TOML literals (numbers, booleans, quoted strings, arrays) and fall back to plain text.

Paths follow one rule (docs/configuration.md, "Paths"): `gateway.data_dir` is relative to the
configuration file's folder (without a file it is the per-user data directory, see
`default_data_dir`); every other relative path is relative to `gateway.data_dir`.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from bessai.errors import ConfigError
from bessai.modbus.profile import BUILTIN_PROFILES
from bessai.telemetry.config import LakeSinkConfig, TelemetryConfig

ENV_PREFIX = "BESSAI_"

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
    co2_price_per_t: float = Field(
        default=0.0,
        ge=0,
        le=100_000,
        description="carbon-aware plans: CO2 price per tonne (price file's currency) times the "
        "marginal factor the CMg bands give for the forecast; 0 = revenue only (docs/carbon.md)",
    )

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
    def _known_timezone(self) -> Self:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {self.timezone!r}") from None
        return self

    @property
    def device(self) -> DeviceConfig:
        return next(d for d in self.devices if d.kind == "huawei_hybrid")


class ApiConfig(_Section):
    """The HTTP API and dashboard: who may call it, and the limits that keep it small."""

    keys_file: Path | None = Field(
        default=None, description="API key hashes; default <data_dir>/api_keys.json"
    )
    dev_mode: bool = Field(
        default=False, description="no keys at all; refused unless http_host is loopback"
    )
    cors_origins: list[str] = Field(default_factory=list, description="empty: CORS closed")
    max_body_bytes: int = Field(default=16_384, ge=256, le=10_000_000)
    max_page_size: int = Field(default=200, ge=1, le=10_000)
    auth_failures_max: int = Field(
        default=10, ge=1, le=10_000, description="failed logins per client in the window"
    )
    auth_failure_window_s: float = Field(default=60.0, gt=0, le=86_400)
    max_streams: int = Field(default=32, ge=1, le=1_000, description="live dashboard streams")
    public_metrics: bool = Field(default=True, description="/metrics without a key (scrapers)")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="reverse proxies (addresses or CIDRs) whose X-Forwarded-For names the "
        "client; empty: the TCP peer is the client",
    )

    @model_validator(mode="after")
    def _proxies(self) -> Self:
        # Normalised because uvicorn silently ignores a network written with host bits set.
        normal = []
        for proxy in (p.strip() for p in self.trusted_proxies):
            try:
                if "/" in proxy:
                    normal.append(str(ipaddress.ip_network(proxy, strict=False)))
                else:
                    normal.append(str(ipaddress.ip_address(proxy)))
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {proxy!r} is not an IP address or CIDR network "
                    "(e.g. 127.0.0.1, 10.0.0.0/24, ::1); '*' and host names are not allowed"
                ) from None
        self.trusted_proxies = normal
        return self

    @model_validator(mode="after")
    def _origins(self) -> Self:
        for origin in self.cors_origins:
            if origin == "*":
                raise ValueError("cors_origins: '*' is not allowed; list the origins")
            if not origin.startswith(("http://", "https://")):
                raise ValueError(f"cors_origins: {origin!r} must start with http:// or https://")
        return self


class AlertsConfig(_Section):
    """Alert delivery to a webhook (optional); alerts are always in the API and metrics."""

    webhook_url: str | None = Field(default=None, pattern=r"^https?://")
    webhook_min_severity: Literal["info", "warning", "critical"] = "warning"
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=120)
    webhook_retries: int = Field(default=5, ge=0, le=20)
    webhook_backoff_s: float = Field(default=1.0, gt=0, le=600)
    webhook_backoff_max_s: float = Field(default=60.0, gt=0, le=3_600)
    history: int = Field(default=500, ge=10, le=100_000, description="resolved alerts kept")


def _network(text: str) -> str:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or network (e.g. 192.168.1.20, "
                         "192.168.1.0/24)") from None  # fmt: skip
    return text


Network = Annotated[str, AfterValidator(_network)]


class ProxyWriterConfig(_Section):
    """A Modbus client allowed to write through the proxy, and what (docs/proxy.md, "Writes")."""

    client: Network = Field(description="its address or network: 192.168.1.20, 10.0.0.0/24")
    forcible: bool = Field(
        default=True,
        description="the forcible charge/discharge sequence (47100, 47247/47249, 47083, 47246, "
        "47101) becomes a manual override from 'proxy:<address>', judged by the safety verdict",
    )
    limits: bool = Field(
        default=False,
        description="the battery power limit settings 47075/47077 go to the device: lowering "
        "always, raising only while the gateway does not hold that direction",
    )
    registers: list[int] = Field(
        default_factory=list,
        description="other writable registers passed to the device as they are (e.g. 47086)",
    )


class ProxyConfig(_Section):
    """The Modbus TCP server that re-serves a site's device to other clients (docs/proxy.md)."""

    enabled: bool = False
    host: str = Field(default="127.0.0.1", description="bind address; 0.0.0.0 for the LAN")
    port: int = Field(default=5502, ge=0, le=65535, description="502 needs root; 0: any free")
    site: str | None = Field(default=None, description="the site served; default the only one")
    unit_ids: list[Annotated[int, Field(ge=0, le=255)]] = Field(
        default_factory=lambda: [0, 1],
        min_length=1,
        description="unit ids answered as the inverter (SDongle 1, inverter access point 0); "
        "others get no answer, as on the device",
    )
    allowed_clients: list[Network] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"],
        description="addresses or networks that may connect",
    )
    max_clients: int = Field(default=32, ge=1, le=1000)
    client_requests_per_s: float = Field(
        default=20.0, gt=0, le=10_000, description="per client; faster requests wait their turn"
    )
    fast_max_age_s: float | None = Field(
        default=None, gt=0, le=3600, description="default: the site's safety.stale_after_s"
    )
    slow_max_age_s: float | None = Field(
        default=None,
        gt=0,
        le=86_400,
        description="default: stale_after_s + slow_every x cycle_s (the process image's window)",
    )
    on_demand_max_age_s: float = Field(
        default=30.0, gt=0, le=86_400, description="registers the gateway does not poll"
    )
    on_demand_interval_s: float = Field(
        default=0.5, ge=0, le=60, description="at least this long between on-demand reads"
    )
    on_demand_max_wait_s: float = Field(
        default=3.0, gt=0, le=60, description="longer in the queue: busy (exception 6)"
    )
    login_password: SecretStr = Field(
        default=SecretStr("00000a"),
        description="what a client logging in with Huawei's FC 0x41 must give; grants nothing",
    )
    writers: list[ProxyWriterConfig] = Field(default_factory=list)


class CarbonConfig(_Section):
    """Carbon accounting of every site from its measured battery power (docs/carbon.md)."""

    enabled: bool = True
    country: str = Field(
        default="CHL", description="ISO-3 code of the grid: the yearly location-based average"
    )
    marginal: Literal["prices", "none"] = Field(
        default="prices",
        description="prices: the marginal factor derived from each site's optimizer price "
        "series (CMg bands); none: average only",
    )
    marginal_factors: Path | None = Field(
        default=None, description="a measured marginal series (CSV timestamp,g_kwh) instead"
    )
    market_factor_g_kwh: float | None = Field(
        default=None,
        ge=0,
        le=5000,
        description="supplier or contract factor (Scope 2 market-based), reported on its own",
    )
    interval_s: int = Field(default=900, ge=1, le=3600, description="accounting interval")
    max_gap_s: float = Field(default=60.0, gt=0, le=3600, description="longer holes: not counted")
    embodied_kg_per_kwh: float = Field(default=100.0, ge=0, le=1000)


class LedgerConfig(_Section):
    """Energy credits minted from measured energy, signed by the gateway (docs/credits.md)."""

    enabled: bool = False
    key_file: Path | None = Field(
        default=None, description="Ed25519 private key (bessai ledger keygen) [data_dir/ledger]"
    )
    log_file: Path | None = Field(default=None, description="[data_dir/ledger/credits.jsonl]")
    owner: str | None = Field(
        default=None, description="public key (base64 or .pub file) the credits belong to"
    )
    co2_method: Literal["marginal", "average"] = Field(
        default="marginal", description="factor of the CO2 a credit states"
    )


class Config(_Section):
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    sites: list[SiteConfig] = Field(min_length=1)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)
    carbon: CarbonConfig = Field(default_factory=CarbonConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
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
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The data directory of the embedded default configuration (no `--config`): per user and
    independent of the current directory, so `bessai keys add` and `bessai run` started from
    anywhere share one key file. `$XDG_DATA_HOME/bessai`, else `~/.local/share/bessai`;
    `BESSAI_GATEWAY__DATA_DIR` overrides it."""
    environ = os.environ if environ is None else environ
    xdg = environ.get("XDG_DATA_HOME", "")
    if xdg and Path(xdg).is_absolute():  # the XDG spec says to ignore a relative value
        return Path(xdg) / "bessai"
    home = environ.get("HOME")
    return (Path(home) if home else Path.home()) / ".local" / "share" / "bessai"


def embedded_default(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The configuration `bessai run` uses without a file: one site on a built-in simulator."""
    return {
        "gateway": {"data_dir": str(default_data_dir(environ))},
        "sites": [
            {
                "id": "demo",
                "name": "Simulated SUN2000-10KTL-M1 + LUNA2000 15 kWh",
                "devices": [{"host": "127.0.0.1", "port": 0, "unit_id": 1}],
                "simulator": {"enabled": True, "speed": 1.0},
                # Real CEN prices (Crucero 220 kV) shipped with the package, replayed on today's
                # date: the schedule controller plans arbitrage on them.
                "optimizer": {"enabled": True, "prices": "builtin:crucero-2023", "replay": True},
            }
        ],
        # No broker by default: every envelope goes through the durable outbox into a local
        # Parquet lake (`bessai lake query`).
        "telemetry": {"sinks": [{"type": "lake", "path": "lake", "flush_interval_s": 60}]},
    }


def _parse_env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Apply BESSAI_* variables to the raw config tree; returns {dotted key: variable name}."""
    applied: dict[str, str] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if path[0] not in Config.model_fields:
            continue  # other BESSAI_* variables (API keys, CEN token) belong elsewhere
        node: Any = data
        for depth, part in enumerate(path[:-1]):
            key: Any = int(part) if part.isdigit() else part
            if isinstance(node, list):
                if not isinstance(key, int) or key >= len(node):
                    raise ConfigError(
                        f"environment variable {name}: {'.'.join(path[: depth + 1])} "
                        f"is not an element of a list of {len(node)}"
                    )
                node = node[key]
            else:
                if key not in node and path[depth + 1].isdigit():
                    raise ConfigError(
                        f"environment variable {name}: {'.'.join(path[: depth + 1])} is not in "
                        "the configuration file; list it there to override its elements"
                    )
                node = node.setdefault(key, {})
            if not isinstance(node, dict | list):
                raise ConfigError(
                    f"environment variable {name}: {'.'.join(path[: depth + 1])} is not a table"
                )
        last: Any = int(path[-1]) if path[-1].isdigit() else path[-1]
        node[last] = _parse_env_value(raw)
        applied[".".join(path)] = name
    return applied


def _describe(exc: ValidationError, source: str, overridden: Mapping[str, str]) -> str:
    lines = [f"invalid configuration in {source}:"]
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        origin = overridden.get(key)
        lines.append(f"  {key}: {message}" + (f" (set by {origin})" if origin else ""))
    return "\n".join(lines)


def _read_utf8(path: Path) -> str:
    """The file's text; a byte that is not UTF-8 is a one-line error naming where it is."""
    raw = path.read_bytes()
    try:
        # Editors such as Notepad save "UTF-8 with BOM"; the BOM is not TOML. Decoding the whole
        # file first keeps the error's offset a position in the file.
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"configuration {path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}, line {line}): save it as UTF-8"
        ) from None


def load_config(
    path: Path | None = None, environ: Mapping[str, str] | None = None
) -> tuple[Config, list[str]]:
    """Load and validate; returns the config and the keys set from the environment."""
    environ = os.environ if environ is None else environ
    if path is None:
        data: dict[str, Any] = embedded_default(environ)
        source = "the embedded default configuration"
    else:
        try:
            data = tomllib.loads(_read_utf8(path))
        except OSError as exc:
            raise ConfigError(f"cannot read configuration {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration {path} is not valid TOML: {exc}") from None
        source = str(path)
    overridden = apply_env_overrides(data, environ)
    base = path.parent if path is not None else Path.cwd()
    try:
        config = Config.model_validate(data, context={"base": base})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, overridden)) from None
    return config, sorted(overridden)


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
    a scenario file (not a built-in scenario name)."""
    from bessai.simulator.scenario import BUILTIN_SCENARIOS

    optimizer = site.optimizer
    if not optimizer.prices.startswith("builtin:"):
        optimizer.prices = str(under(Path(optimizer.prices)))
    if optimizer.forecaster.startswith("model:"):
        model = optimizer.forecaster.removeprefix("model:")
        optimizer.forecaster = f"model:{under(Path(model))}"
    scenario = site.simulator.scenario
    if scenario is not None and scenario not in BUILTIN_SCENARIOS:
        site.simulator.scenario = str(under(Path(scenario)))


def configured_lake(config_path: Path | None) -> Path:
    """The lake directory of a configuration (the embedded default without a file): its
    first lake sink's path, else `<data_dir>/lake`."""
    config, _ = load_config(config_path)
    for sink in config.telemetry.sinks:
        if isinstance(sink, LakeSinkConfig):
            return sink.path
    return config.gateway.data_dir / "lake"
