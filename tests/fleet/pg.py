"""A throw-away PostgreSQL cluster for tests: initdb + pg_ctl in a temp dir on a free loopback
port (never the system service). As root, the cluster runs as the `postgres` user, because
initdb refuses to run as root."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.process import LOOPBACK, free_port

PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/bin")


def pg_binary(name: str) -> str:
    """A PostgreSQL server binary (Debian keeps them off PATH, under /usr/lib/postgresql)."""
    for folder in PG_BIN_DIRS:
        path = Path(folder) / name
        if os.access(path, os.X_OK):
            return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"PostgreSQL's {name} is not installed: run `make system-deps`")
    return found


class PgCluster:
    """One PostgreSQL server in a temp dir; `new_database()` gives each test its own DB."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        #: (certificate, key) of the server: the cluster then requires TLS
        self.tls = tls
        self.root = Path(tempfile.mkdtemp(prefix="bessai-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        self.user = "postgres" if self.as_root else os.environ.get("USER", "postgres")

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        cmd = list(argv)
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)

    def start(self) -> None:
        if self.as_root:
            shutil.chown(self.root, "postgres")
        done = self._run(
            pg_binary("initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stderr}")
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses={LOOPBACK} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        if self.tls is not None:
            opts += self._tls_options()
        done = self._run(
            pg_binary("pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
            str(self.root / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        if done.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")
            raise RuntimeError(f"pg_ctl start failed:\n{done.stderr}\n{log}")

    def _tls_options(self) -> str:
        assert self.tls is not None
        # PostgreSQL insists on a key only its owner can read.
        for source, name in zip(self.tls, ("server.crt", "server.key"), strict=True):
            target = self.root / name
            shutil.copyfile(source, target)
            target.chmod(0o600)
            if self.as_root:
                shutil.chown(target, "postgres")
        hba = self.data / "pg_hba.conf"
        lines = [line for line in hba.read_text().splitlines() if not line.startswith("host")]
        hba.write_text("\n".join([*lines, "hostssl all all 127.0.0.1/32 trust"]) + "\n")
        crt, key = self.root / "server.crt", self.root / "server.key"
        return f" -c ssl=on -c ssl_cert_file={crt} -c ssl_key_file={key}"

    def stop(self) -> None:
        self._run(pg_binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{LOOPBACK}:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its DSN."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        done = self._run(
            pg_binary("psql"), "-h", LOOPBACK, "-p", str(self.port), "-U", self.user,
            "-d", "postgres", "-c", f"CREATE DATABASE {name}",
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"CREATE DATABASE failed: {done.stderr}")
        return self.dsn(name)


def make_certs(folder: Path) -> dict[str, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (IP SAN), made with openssl."""
    folder.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "1", "-subj", "/CN=bessai-test-ca")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", f"/CN={LOOPBACK}")  # fmt: skip
    (folder / "san.ext").write_text(f"subjectAltName=IP:{LOOPBACK}\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "san.ext")  # fmt: skip
    return {"ca": folder / "ca.pem", "server": folder / "server.pem",
            "server_key": folder / "server.key"}  # fmt: skip


@contextlib.contextmanager
def pg_cluster() -> Iterator[PgCluster]:
    cluster = PgCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
