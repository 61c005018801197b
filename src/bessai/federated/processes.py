"""Starting and stopping Flower's processes: SuperLink, SuperNode, and a run submitted with
``flwr run``.

Flower's executables come from the environment where `bessai[fl]` is installed (beside this
Python, else on PATH). Runtime dependency installation is always off: sites have no internet,
and the app's code is bessai's own, already installed. A SuperLink or SuperNode starts
``flower-superexec`` children that outlive it for a while; they carry ``--parent-pid``, so
stopping a process also stops the children that name it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bessai.errors import ConfigError, DataError

FAB_DIR = Path(__file__).with_name("fab")
STOP_GRACE_S = 5.0


def flower_exe(name: str) -> str:
    """The path of Flower's executable ``name``."""
    beside = Path(sys.executable).with_name(name)
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise ConfigError(
            f"bessai fl needs Flower ({name} not found); install it with: pip install 'bessai[fl]'"
        )
    return found


def flower_env(flwr_home: Path | None = None) -> dict[str, str]:
    """The environment of Flower's processes: its bin directory first on PATH (the SuperLink
    and SuperNode start ``flower-superexec`` by name)."""
    env = dict(os.environ)
    bin_dir = str(Path(flower_exe("flower-superlink")).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    # Flower reports anonymous usage events to its makers by default; a site sends nothing
    # it was not asked to.
    env["FLWR_TELEMETRY_ENABLED"] = "0"
    if flwr_home is not None:
        env["FLWR_HOME"] = str(flwr_home)
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Tls:
    """TLS of the SuperLink's API (server side) or of a SuperNode's connection (client
    side: ``ca`` only). ``insecure``: plain HTTP, for loopback tests only."""

    insecure: bool = False
    certfile: Path | None = None
    keyfile: Path | None = None
    ca: Path | None = None

    def server_args(self) -> list[str]:
        """The SuperLink's TLS arguments."""
        if self.insecure:
            return ["--insecure"]
        if self.certfile is None or self.keyfile is None:
            raise ConfigError(
                "fl serve: give --ssl-certfile and --ssl-keyfile (or --insecure on a loopback test)"
            )
        args = ["--ssl-certfile", str(self.certfile), "--ssl-keyfile", str(self.keyfile)]
        return args + (["--ssl-ca-certfile", str(self.ca)] if self.ca else [])

    def client_args(self) -> list[str]:
        """A SuperNode's TLS arguments."""
        if self.insecure:
            return ["--insecure"]
        return ["--root-certificates", str(self.ca)] if self.ca else []


class Managed:
    """A started Flower process, its log file, and how to stop it with its children."""

    def __init__(self, name: str, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """Whether it still runs."""
        return self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM, SIGKILL after a grace period; then the children that name it."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_GRACE_S)
        for pid in children_naming(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def tail(self, lines: int = 5) -> str:
        """The end of its log (for an error message)."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return " | ".join(t.strip() for t in text.strip().splitlines()[-lines:])


def children_naming(parent: int) -> list[int]:
    """Processes whose command line says ``--parent-pid PARENT`` (Flower's SuperExec)."""
    out: list[int] = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for k, arg in enumerate(args[:-1]):
            if arg == b"--parent-pid" and args[k + 1] == str(parent).encode():
                out.append(int(entry.name))
    return out


def wait_listening(proc: Managed, host: str, port: int, timeout_s: float = 30.0) -> None:
    """Wait until ``host:port`` accepts connections, or fail with the process's log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise DataError(f"fl: {proc.name} exited ({proc.tail()})")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise DataError(f"fl: {proc.name} did not listen on {host}:{port} in {timeout_s:g} s")


@dataclass(frozen=True, slots=True)
class LinkOptions:
    """How to start a SuperLink."""

    host: str
    port: int
    tls: Tls
    state_dir: Path
    supernode_auth: bool = False


def start_superlink(opts: LinkOptions) -> Managed:
    """A SuperLink on ``host:port`` (Fleet, Control and runtime API on that one port), its
    state in an SQLite file under ``state_dir``."""
    args = [
        flower_exe("flower-superlink"), *opts.tls.server_args(),
        "--host", opts.host, "--port", str(opts.port),
        "--database", str(opts.state_dir / "superlink.db"),
        "--disable-runtime-dependency-installation",
    ]  # fmt: skip
    if opts.supernode_auth:
        args.append("--enable-supernode-auth")
    opts.state_dir.mkdir(parents=True, exist_ok=True)
    # FLWR_HOME: the bundles the SuperLink unpacks stay in the work directory, not in ~/.flwr.
    env = flower_env(opts.state_dir / "flwr")
    link = Managed("SuperLink", args, opts.state_dir / "superlink.log", env)
    wait_listening(link, opts.host, opts.port)
    return link


@dataclass(frozen=True, slots=True)
class NodeOptions:
    """How to start a SuperNode for one site."""

    superlink: str  # host:port
    tls: Tls
    node_config: dict[str, str]
    api_port: int
    log: Path
    auth_key: Path | None = None


def node_config_text(values: dict[str, str]) -> str:
    """Flower's ``--node-config`` string: TOML values, space separated."""
    return " ".join(f"{k}={json.dumps(v)}" for k, v in values.items())


def start_supernode(opts: NodeOptions) -> Managed:
    """A SuperNode connecting to ``opts.superlink``; its ClientApps run in subprocesses
    talking to it on the loopback ``api_port``."""
    args = [
        flower_exe("flower-supernode"), *opts.tls.client_args(),
        "--superlink", opts.superlink,
        "--host", "127.0.0.1", "--port", str(opts.api_port),
        "--node-config", node_config_text(opts.node_config),
    ]  # fmt: skip
    if opts.auth_key is not None:
        args += ["--auth-supernode-private-key", str(opts.auth_key)]
    home = opts.log.with_name(f"{opts.log.stem}.flwr")  # its unpacked bundles, beside its log
    node = Managed("SuperNode", args, opts.log, flower_env(home))
    wait_listening(node, "127.0.0.1", opts.api_port)
    return node


def write_cli_config(flwr_home: Path, address: str, tls: Tls) -> None:
    """The ``flwr`` CLI's connection to our SuperLink, named ``bessai``."""
    flwr_home.mkdir(parents=True, exist_ok=True)
    lines = ["[superlink]", 'default = "bessai"', "", "[superlink.bessai]",
             f"address = {json.dumps(address)}"]  # fmt: skip
    if tls.insecure:
        lines.append("insecure = true")
    elif tls.ca is not None:
        lines.append(f"root-certificates = {json.dumps(str(tls.ca))}")
    (flwr_home / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def submit_run(flwr_home: Path, run_config: dict[str, object], timeout_s: float = 120.0) -> str:
    """Submit the bundled app with ``flwr run``; the run id."""
    config = " ".join(f"{k}={json.dumps(v)}" for k, v in run_config.items())
    args = [flower_exe("flwr"), "run", str(FAB_DIR), "bessai",
            "--run-config", config, "--format", "json"]  # fmt: skip
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        env=flower_env(flwr_home),
        timeout=timeout_s,
        check=False,
    )
    try:
        out = json.loads(done.stdout)
    except json.JSONDecodeError:
        out = {}
    if done.returncode != 0 or not out.get("success", False):
        why = out.get("error") or (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise DataError(f"fl serve: flwr run failed: {why}")
    return str(out.get("run-id", ""))


def register_supernode(flwr_home: Path, public_key: Path, timeout_s: float = 60.0) -> None:
    """Allow the SuperNode holding the private key of ``public_key`` (``flwr supernode
    register``): with node authentication on, the SuperLink refuses every other node."""
    args = [flower_exe("flwr"), "supernode", "register", str(public_key), "bessai",
            "--format", "json"]  # fmt: skip
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        env=flower_env(flwr_home),
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise DataError(f"fl serve: registering {public_key} failed: {why}")
