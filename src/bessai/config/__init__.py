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

from bessai.config.loading import (
    ENV_PREFIX,
    apply_env_overrides,
    configured_lake,
    embedded_default,
    load_config,
)
from bessai.config.model import Config, SiteConfig, is_loopback, resolve_paths
from bessai.config.paths import default_data_dir
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
    TimeOfUseRule,
    TrackingConfig,
)
from bessai.config.services import (
    AlertsConfig,
    ApiConfig,
    CarbonConfig,
    FleetConfig,
    LedgerConfig,
    ProxyConfig,
    ProxyWriterConfig,
)
from bessai.config.vpp import VppConfig

__all__ = [
    "ENV_PREFIX",
    "AlertsConfig",
    "ApiConfig",
    "BatteryConfig",
    "CarbonConfig",
    "Config",
    "ControllersConfig",
    "DeviceConfig",
    "DispatchConfig",
    "FleetConfig",
    "GatewayConfig",
    "LedgerConfig",
    "OptimizerConfig",
    "ProxyConfig",
    "ProxyWriterConfig",
    "SafetyConfig",
    "SecurityConfig",
    "SimulatorConfig",
    "SiteConfig",
    "TimeOfUseRule",
    "TrackingConfig",
    "VppConfig",
    "apply_env_overrides",
    "configured_lake",
    "default_data_dir",
    "embedded_default",
    "is_loopback",
    "load_config",
    "resolve_paths",
]
