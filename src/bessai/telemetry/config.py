"""Telemetry configuration: the `[telemetry]` table of the site TOML and its `[[telemetry.sinks]]`.

[telemetry]
outbox_path = "outbox.sqlite"        # relative paths: relative to gateway.data_dir
max_rows = 1_000_000
max_bytes = 536_870_912

[[telemetry.sinks]]
type = "mqtt"
host = "broker.example"
port = 8883
tls = true
username = "site-17"
password = "..."

[[telemetry.sinks]]
type = "nats"
servers = ["nats://127.0.0.1:4222"]

[[telemetry.sinks]]
type = "lake"
path = "lake"
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from bessai.errors import ConfigError


class _Strict(BaseModel):
    # A typo in a key must be an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttSinkConfig(_Strict):
    """MQTT 3.1.1 (or 5) publisher, QoS 1, persistent session."""

    type: Literal["mqtt"]
    name: str = Field(default="mqtt", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # The broker keeps the session under this id; one connection per site gets "-<site>".
    client_id_prefix: str = Field(default="bessai", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    topic_prefix: str = Field(default="bessai/v1", pattern=r"^[^+#]+[^/+#]$")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    # Ack-stall watchdog: messages waiting and no PUBACK for this long forces a reconnect.
    ack_timeout_s: float = Field(default=15.0, gt=0)
    inflight_max: int = Field(default=100, ge=1, le=65535)
    # After the connection broke, send again what the broker acknowledged in this many seconds
    # before: a broker killed before its next persistence snapshot forgot them (Mosquitto
    # acknowledges from memory). Keep it above the broker's autosave_interval; 0 turns it off.
    resend_window_s: float = Field(default=120.0, ge=0, le=86400)
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _tls_files_need_tls(self) -> MqttSinkConfig:
        if not self.tls and any(
            f is not None for f in (self.ca_file, self.cert_file, self.key_file)
        ):
            raise ValueError("ca_file/cert_file/key_file are set but tls = false")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (client certificate)")
        if self.password is not None and self.username is None:
            raise ValueError("password is set without username")
        return self


class NatsSinkConfig(_Strict):
    """NATS JetStream publisher; the server removes duplicates by `Nats-Msg-Id`."""

    type: Literal["nats"]
    name: str = Field(default="nats", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    servers: list[str] = Field(default_factory=lambda: ["nats://127.0.0.1:4222"], min_length=1)
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    tls_ca_file: Path | None = None
    stream: str = Field(default="BESSAI", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    subject_prefix: str = Field(default="bessai.v1", pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
    # Create the stream when absent; set false where the fleet operator owns stream config.
    create_stream: bool = True
    # JetStream forgets a Nats-Msg-Id after this window: it must outlast the longest outage
    # after which the gateway could re-send an already stored message.
    duplicate_window_s: float = Field(default=24 * 3600.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    ack_timeout_s: float = Field(default=10.0, gt=0)
    inflight_max: int = Field(default=256, ge=1, le=65535)
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _one_auth(self) -> NatsSinkConfig:
        if self.token is not None and self.user is not None:
            raise ValueError("set either token or user/password, not both")
        if self.password is not None and self.user is None:
            raise ValueError("password is set without user")
        return self


class LakeSinkConfig(_Strict):
    """Parquet files under `path/site=<id>/date=<YYYY-MM-DD>/`, queried with DuckDB."""

    type: Literal["lake"]
    name: str = Field(default="lake", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    path: Path
    # Rows wait in the (durable) outbox until a file is worth writing: fewer, larger files.
    flush_interval_s: float = Field(default=300.0, ge=0)
    max_rows_per_file: int = Field(default=20_000, ge=1)
    backoff_initial_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=60.0, gt=0)


class PubSubSinkConfig(_Strict):
    """Google Cloud Pub/Sub (extra `bessai[gcp]`): one message per envelope, ordering key =
    site_id, attribute `idempotency_key` = "<site_id>:<boot_id>:<seq>" for subscribers to
    de-duplicate on (Pub/Sub delivers at least once)."""

    type: Literal["pubsub"]
    name: str = Field(default="pubsub", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    project: str = Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
    topic: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9._~%+-]{2,254}$")
    # A service account key file; without it, Application Default Credentials.
    credentials_file: Path | None = None
    # host:port of the Pub/Sub emulator (or a test server): plaintext, no credentials.
    emulator_host: str | None = None
    ack_timeout_s: float = Field(default=30.0, gt=0)
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _one_target(self) -> PubSubSinkConfig:
        if self.emulator_host is not None and self.credentials_file is not None:
            raise ValueError("set credentials_file or emulator_host, not both")
        return self


SinkConfig = Annotated[
    MqttSinkConfig | NatsSinkConfig | LakeSinkConfig | PubSubSinkConfig,
    Field(discriminator="type"),
]


class TelemetryConfig(_Strict):
    """The `[telemetry]` table."""

    # Relative to gateway.data_dir when loaded from a configuration file (bessai.config).
    outbox_path: Path = Path("outbox.sqlite")
    # Size cap; reaching it drops the oldest *telemetry* rows, never alarms or commands.
    max_rows: int | None = Field(default=1_000_000, ge=1)
    max_bytes: int | None = Field(default=512 * 1024 * 1024, ge=4096)
    # A message published this long after its source time is flagged historical.
    historical_after_s: float = Field(default=15.0, gt=0)
    # Health stays degraded this long after the last drop (cap or full disk), so it cannot
    # flap back to ok between two drops.
    drop_hold_s: float = Field(default=300.0, ge=0)
    # Health is degraded when a sink's oldest unacknowledged row is older than this (the
    # lake gets its flush interval on top).
    max_oldest_age_s: float = Field(default=120.0, gt=0)
    # Health is degraded when a sink has had no ack for this long while rows wait for it.
    sink_stale_after_s: float = Field(default=60.0, gt=0)
    batch_max_rows: int = Field(default=500, ge=1)
    otlp_endpoint: str | None = None
    sinks: list[SinkConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_sink_names(self) -> TelemetryConfig:
        names = [s.name for s in self.sinks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"sink names must be unique, {dupes} repeat: give each sink a `name`")
        return self


def no_sinks_note(config: TelemetryConfig) -> str | None:
    """The warning for a configuration without sinks (None when it has one): with nothing to
    send to, the gateway stores no telemetry at all rather than fill the outbox to its cap."""
    if config.sinks:
        return None
    return (
        "no [[telemetry.sinks]] configured: telemetry is kept nowhere (neither stored nor "
        'sent); add one, e.g. a local Parquet lake: [[telemetry.sinks]] type = "lake", '
        'path = "lake"'
    )


def load_telemetry_config(data: object, *, source: str = "config") -> TelemetryConfig:
    """Validate the `[telemetry]` table; errors name the file and the key."""
    try:
        return TelemetryConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"telemetry.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from exc
