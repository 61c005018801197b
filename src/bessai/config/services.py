"""Gateway-wide service sections: the HTTP API, alerts, the Modbus proxy, carbon and the ledger."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    model_validator,
)

from bessai.config.sections import Pct, _Section


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


class FleetConfig(_Section):
    """`bessai fleet serve`: the fleet backend that consumes the gateways' JetStream stream
    into PostgreSQL (docs/fleet.md). A gateway ignores this table; a fleet-only file may
    hold just `[fleet]` (plus `[api]` for its keys)."""

    database_url: SecretStr = Field(
        default=SecretStr("postgresql://bessai@127.0.0.1:5432/bessai"),
        description="PostgreSQL DSN; BESSAI_FLEET_DATABASE_URL overrides it (keep the "
        "password out of the file)",
    )
    readonly_database_url: SecretStr | None = Field(
        default=None,
        description="DSN of a read-only role for `bessai fleet query`; default database_url "
        "in a read-only transaction",
    )
    database_tls_ca_file: Path | None = Field(
        default=None, description="CA bundle: verify the PostgreSQL server (sslmode verify-full)"
    )
    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        min_length=1,
        description="NATS server(s), comma-separated (a cluster's seed servers)",
    )
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_token: SecretStr | None = None
    nats_tls_ca_file: Path | None = None
    stream: str = Field(default="BESSAI", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    subject_prefix: str = Field(default="bessai.v1", pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
    consumer: str = Field(
        default="bessai-fleet",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="durable consumer shared by every `fleet serve` process (they split the work)",
    )
    batch_size: int = Field(default=1_000, ge=1, le=100_000, description="messages per fetch")
    max_ack_pending: int = Field(
        default=20_000, ge=1, le=1_000_000, description="unacknowledged messages in flight"
    )
    ack_wait_s: float = Field(
        default=30.0, gt=0, le=3_600, description="redelivered when not acked within this"
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8090, ge=0, le=65535)
    stale_after_s: float = Field(
        default=60.0, gt=0, le=86_400, description="a site not heard from for this long is stale"
    )
    flex_horizon_h: float = Field(
        default=1.0, gt=0, le=48, description="horizon of the flexibility totals"
    )
    soc_min_pct: Pct = Field(default=5.0, description="floor of the discharge flexibility")
    soc_max_pct: Pct = Field(default=98.0, description="ceiling of the charge flexibility")
    data_dir: Path = Field(
        default=Path("var"), description="API keys (api.keys_file) live here; relative to the file"
    )
    vtn: bool = Field(
        default=False,
        description="also serve the OpenADR 3.1 VTN of the fleet's VPP at /openadr3/3.1.0 "
        "(docs/vpp.md); its clients come from BESSAI_VTN_CLIENTS (ID:SECRET:ROLE, comma "
        "separated)",
    )
    vtn_db: Path | None = Field(
        default=None, description="SQLite file of the VTN's objects (relative to data_dir)"
    )
