"""Whether a TCP port can be had, asked before a server starts so that a busy port is one line
of the server's own, not a traceback from deep inside it. Used by the HTTP servers
(:mod:`bessai.api.serving`) and the Modbus proxy."""

from __future__ import annotations

import socket


def bind_problem(host: str, port: int) -> OSError | None:
    """Why `host:port` cannot be bound now (the error of a trial bind), or None when it can;
    port 0 (any free port) always can."""
    if port == 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc
    return None
