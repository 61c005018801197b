"""Servers the tests start as subprocesses (brokers, `bessai fleet serve`, ...): a free loopback
port, a binary from a Debian package, and one process helper that starts a server, waits for
its port, stops or kills it, and shows its log when it does not come up."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

LOOPBACK = "127.0.0.1"


def find_binary(name: str, package_hint: str = "") -> str:
    """The path of `name`, failing the test with what to install when it is missing."""
    # Debian installs servers in /usr/sbin, which is not on every user's PATH.
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.fail(f"{name} is not installed: run `make system-deps`{package_hint}")
    return found


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    """Return once something accepts connections on the loopback `port`, else TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {LOOPBACK}:{port} after {timeout_s} s")


def stop_process(proc: subprocess.Popen[Any], timeout_s: float = 20.0) -> None:
    """SIGTERM (as an operator's Ctrl-C), then SIGKILL if it has not exited within `timeout_s`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def wait_ready(
    proc: subprocess.Popen[Any],
    ready: Callable[[], bool],
    log_path: Path,
    *,
    name: str,
    timeout_s: float,
) -> None:
    """Poll `ready()` (an HTTP error counts as not yet) until it holds; an AssertionError with
    the process's log when it exits first or `timeout_s` runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited {proc.returncode}:\n{log_path.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if ready():
                return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{name} did not come up within {timeout_s} s:\n{log_path.read_text()}"
            )
        time.sleep(0.1)


class ServerProcess:
    """A server subprocess on a fixed loopback port that can be killed and restarted; its
    output goes to `log_path`, shown in the error when the port does not open in time."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        start_timeout_s: float = 10.0,
        stop_timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.log_path = log_path
        self.env = env  # added to os.environ as it is at start()
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait for its port; RuntimeError with its log if it stays shut."""
        env = None if self.env is None else {**os.environ, **self.env}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        try:
            wait_for_port(self.port, self.start_timeout_s)
        except TimeoutError:
            self.kill()
            raise RuntimeError(f"{self.name} did not start:\n{self.log_path.read_text()}") from None

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to flush, ack or say goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `stop_timeout_s`."""
        if self.proc is not None:
            stop_process(self.proc, self.stop_timeout_s)
        self.proc = None

    def restart(self) -> None:
        """Kill and start again on the same port."""
        self.kill()
        self.start()
