"""API keys: random high-entropy tokens, stored only as salted SHA-256 hashes in a JSON file in
the data directory, compared in constant time.

A key is shown once, when `bessai keys add` makes it. The store re-reads its file when it changes,
so a key added or revoked from the CLI takes effect in a running gateway without a restart.
Keys are long random tokens, not passwords, so a fast hash is enough: guessing one is hopeless
whatever the hash costs, and a slow hash would only make every request slower.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from bessai.errors import ConfigError

TOKEN_PREFIX = "bess_"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class Role(StrEnum):
    READ = "read"  # status, fleet, schedule, alerts, audit
    CONTROL = "control"  # read + override and mode
    ADMIN = "admin"  # control + whatever manages the gateway itself

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANK = {Role.READ: 0, Role.CONTROL: 1, Role.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class KeyRecord:
    name: str
    role: Role
    salt: str
    hash: str
    created_utc: str


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's name (what the audit records, never the key) and its role."""

    name: str
    role: Role


def _digest(salt: str, token: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + token.encode("utf-8")).hexdigest()


class KeysFileError(ConfigError):
    """The keys file cannot be read or parsed. `stamp` (mtime, size) tells one damaged version
    of the file from the next, so a server can report each damage once."""

    def __init__(self, path: Path, problem: str, stamp: tuple[int, int] | None) -> None:
        super().__init__(
            f"API keys file {path} is damaged: {problem}; fix it, or move it away and "
            "re-create the keys with `bessai keys add`"
        )
        self.stamp = stamp


def _problem(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc})"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    if isinstance(exc, KeyError):
        return f"missing field {exc}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc) or type(exc).__name__


class KeyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._records: list[KeyRecord] = []
        self._stamp: tuple[int, int] | None = None
        #: the last damaged version of the file (stamp, problem): not re-read until it changes
        self._damaged: tuple[tuple[int, int], str] | None = None

    # -- file -----------------------------------------------------------------------------------

    def _load(self) -> list[KeyRecord]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._records, self._stamp = [], None
            return self._records
        except OSError as exc:
            raise KeysFileError(self.path, _problem(exc), None) from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return self._records
        if self._damaged is not None and self._damaged[0] == stamp:
            raise KeysFileError(self.path, self._damaged[1], stamp)
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            records = [
                KeyRecord(
                    name=str(item["name"]),
                    role=Role(item["role"]),
                    salt=str(item["salt"]),
                    hash=str(item["hash"]),
                    created_utc=str(item.get("created_utc", "")),
                )
                for item in data["keys"]
            ]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._damaged = (stamp, _problem(exc))
            raise KeysFileError(self.path, self._damaged[1], stamp) from None
        self._records, self._stamp, self._damaged = records, stamp, None
        return records

    def _save(self, records: list[KeyRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload: dict[str, Any] = {
            "keys": [
                {
                    "name": r.name,
                    "role": r.role.value,
                    "salt": r.salt,
                    "hash": r.hash,
                    "created_utc": r.created_utc,
                }
                for r in records
            ]
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        # Owner-only from the first byte: the hashes are not secrets, but the names and roles
        # tell an attacker which key is worth stealing.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        self._stamp = None

    # -- management (CLI) -----------------------------------------------------------------------

    def add(self, name: str, role: Role) -> str:
        """Create a key; returns the token, which is never stored and cannot be shown again."""
        if not NAME_PATTERN.match(name):
            raise ConfigError(
                f"key name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-', "
                "starting with a letter or digit"
            )
        with self._lock:
            records = list(self._load())
            if any(r.name == name for r in records):
                raise ConfigError(f"a key named {name!r} already exists in {self.path}")
            token = TOKEN_PREFIX + secrets.token_urlsafe(32)
            salt = secrets.token_hex(16)
            records.append(
                KeyRecord(
                    name=name,
                    role=role,
                    salt=salt,
                    hash=_digest(salt, token),
                    created_utc=datetime.now(UTC).isoformat(timespec="seconds"),
                )
            )
            self._save(records)
        return token

    def revoke(self, name: str) -> None:
        with self._lock:
            records = list(self._load())
            kept = [r for r in records if r.name != name]
            if len(kept) == len(records):
                known = ", ".join(r.name for r in records) or "none"
                raise ConfigError(f"no key named {name!r} in {self.path} (keys: {known})")
            self._save(kept)

    def list(self) -> list[KeyRecord]:
        with self._lock:
            return list(self._load())

    # -- authentication (API) -------------------------------------------------------------------

    def authenticate(self, token: str) -> Principal | None:
        """The key's principal, or None. Every stored hash is compared, match or not, so the
        time taken says nothing about which key (or how much of one) was right."""
        with self._lock:
            records = self._load()
        found: Principal | None = None
        for record in records:
            if secrets.compare_digest(_digest(record.salt, token), record.hash):
                found = Principal(record.name, record.role)
        return found
