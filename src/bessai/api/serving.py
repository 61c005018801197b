"""Serving an app with uvicorn inside a process that owns its signals: the gateway (`bessai run`,
`bessai analyst serve`) and the fleet backend (`bessai fleet serve`) both do."""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator

import uvicorn

from bessai.errors import ConfigError


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside our loop: the caller owns SIGINT/SIGTERM (a gateway stops dispatch first)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def port_free(host: str, port: int, way_out: str) -> None:
    """A busy port as one line ending in `way_out` (how to choose another), before uvicorn logs its
    own traceback and exits. Port 0 (any free port) is always free."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is already in use{way_out}") from None
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
