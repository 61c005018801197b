"""Serving an app with uvicorn inside a process that owns its signals: the gateway (`bessai run`,
`bessai analyst serve`) and the fleet backend (`bessai fleet serve`) both do."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

import uvicorn

from bessai.errors import ConfigError
from bessai.ports import bind_problem


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside our loop: the caller owns SIGINT/SIGTERM (a gateway stops dispatch first)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def port_free(host: str, port: int, way_out: str) -> None:
    """A busy port as one line ending in `way_out` (how to choose another), before uvicorn logs its
    own traceback and exits. Port 0 (any free port) is always free."""
    exc = bind_problem(host, port)
    if exc is None:
        return
    if exc.errno == errno.EADDRINUSE:
        raise ConfigError(f"port {port} on {host} is already in use{way_out}")
    raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}")
