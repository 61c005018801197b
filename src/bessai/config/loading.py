"""Reading a configuration: TOML file or embedded default, `BESSAI_*` overrides, errors that name
the file, the key and why."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from bessai.config.model import Config
from bessai.config.paths import default_data_dir
from bessai.errors import ConfigError
from bessai.telemetry.config import LakeSinkConfig

ENV_PREFIX = "BESSAI_"


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


def configured_lake(config_path: Path | None) -> Path:
    """The lake directory of a configuration (the embedded default without a file): its
    first lake sink's path, else `<data_dir>/lake`."""
    config, _ = load_config(config_path)
    for sink in config.telemetry.sinks:
        if isinstance(sink, LakeSinkConfig):
            return sink.path
    return config.gateway.data_dir / "lake"
