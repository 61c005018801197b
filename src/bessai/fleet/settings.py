"""The fleet's configuration file: `[fleet]` (and `[api]` for its keys) alone, or a whole
gateway file with a `[fleet]` table. `BESSAI_FLEET__<KEY>` variables override keys as for the
gateway, and `BESSAI_FLEET_DATABASE_URL` the database URL, so its password stays out of the
file. Paths: `fleet.data_dir` is relative to the file's folder, other paths to `data_dir`."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from bessai.config import ApiConfig, FleetConfig, apply_env_overrides, load_config
from bessai.errors import ConfigError

DATABASE_URL_ENV = "BESSAI_FLEET_DATABASE_URL"
FLEET_TABLES = ("fleet", "api")


class _FleetFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fleet: FleetConfig = Field(default_factory=FleetConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)


@dataclass(frozen=True, slots=True)
class FleetSettings:
    """What `bessai fleet` runs with: the fleet table, the API limits and the keys file."""

    fleet: FleetConfig
    api: ApiConfig
    keys_file: Path
    source: str


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8").removeprefix("\ufeff"))
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"configuration {path} is not UTF-8 text: save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration {path} is not valid TOML: {exc}") from None


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"  {key}: {message.removeprefix('Value error, ')}")
    return "\n".join(lines)


def _under(base: Path, path: Path | None) -> Path | None:
    if path is None:
        return None
    path = path.expanduser()
    return path if path.is_absolute() else base / path


def load_fleet_settings(
    path: Path | None, environ: Mapping[str, str] | None = None
) -> FleetSettings:
    """Load and validate; a bad value is one error naming the file and key."""
    environ = os.environ if environ is None else environ
    data = _read(path) if path is not None else {}
    source = str(path) if path is not None else "the defaults"
    if "sites" in data and path is not None:
        config, _ = load_config(path, environ)
        fleet, api = config.fleet, config.api
    else:
        unknown = sorted(set(data) - set(FLEET_TABLES))
        if unknown:
            raise ConfigError(
                f"invalid configuration in {source}: table(s) {', '.join(unknown)} belong to a "
                "gateway file (which needs [[sites]]); a fleet file has [fleet] and [api]"
            )
        apply_env_overrides(data, environ)
        data = {k: v for k, v in data.items() if k in FLEET_TABLES}
        try:
            parsed = _FleetFile.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, source)) from None
        fleet, api = parsed.fleet, parsed.api
    base = path.parent if path is not None else Path.cwd()
    data_dir = _under(base, fleet.data_dir) or base
    update: dict[str, Any] = {
        "data_dir": data_dir.resolve(),
        "database_tls_ca_file": _under(data_dir, fleet.database_tls_ca_file),
        "nats_tls_ca_file": _under(data_dir, fleet.nats_tls_ca_file),
        "vtn_db": _under(data_dir, fleet.vtn_db),
    }
    url = environ.get(DATABASE_URL_ENV)
    if url:
        update["database_url"] = SecretStr(url)
    fleet = fleet.model_copy(update=update)
    keys_file = _under(data_dir, api.keys_file) or data_dir / "api_keys.json"
    return FleetSettings(fleet=fleet, api=api, keys_file=keys_file, source=source)
