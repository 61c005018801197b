"""The per-user data directory of the embedded default configuration."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


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
