"""Ed25519 keys of the ledger: one per gateway (it mints and signs checkpoints) and one per
party that owns credits. Private keys are PKCS#8 PEM files with mode 0600, never logged; a
public key travels as the base64 of its 32 raw bytes (one line in `<key>.pub`)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bessai.errors import LedgerError

PUBLIC_SUFFIX = ".pub"
RAW_PUBLIC_SIZE = 32


def public_b64(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The public key as base64 of its 32 raw bytes."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def key_id(public: str) -> str:
    """A short name for a public key: the first 16 hex digits of SHA-256 of its raw bytes."""
    return hashlib.sha256(base64.b64decode(public)).hexdigest()[:16]


def parse_public(text: str, where: str = "public key") -> Ed25519PublicKey:
    """A public key from its base64 text; LedgerError naming `where` if it is not one."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise LedgerError(f"{where}: not base64") from None
    if len(raw) != RAW_PUBLIC_SIZE:
        raise LedgerError(f"{where}: an Ed25519 public key is 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def signature_ok(public: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    """Whether `signature` is the key's Ed25519 signature of `message`."""
    try:
        public.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def generate(path: Path, *, force: bool = False) -> str:
    """Write a new private key to `path` (mode 0600, created exclusively) and its public key
    to `path.pub`; returns the public key. Refuses to overwrite a key unless `force`."""
    pub_path = path.with_name(path.name + PUBLIC_SUFFIX)
    if path.exists() and not force:
        raise LedgerError(f"{path} already exists; a new key would orphan the credits it signed")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if force and path.exists():
        path.unlink()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise LedgerError(f"cannot create key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public = public_b64(key)
    pub_path.write_text(public + "\n", encoding="ascii")
    return public


def load_private(path: Path) -> Ed25519PrivateKey:
    """Read a private key; refuses a file that group or others can read (like ssh)."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise LedgerError(f"cannot read key file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise LedgerError(
            f"key file {path} is accessible by group or others (mode {stat.S_IMODE(mode):o}); "
            f"run `chmod 600 {path}`"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise LedgerError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def load_public(spec: str | Path) -> str:
    """A public key from a `.pub` file, a private key file (its public half) or base64 text;
    returned as base64 after checking it is a key."""
    path = Path(spec)
    if path.is_file():
        if path.suffix == PUBLIC_SUFFIX:
            try:
                text = path.read_text(encoding="ascii").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise LedgerError(f"cannot read public key {path}: {exc}") from None
            parse_public(text, str(path))
            return text
        return public_b64(load_private(path))
    text = str(spec).strip()
    parse_public(text, f"public key {text!r} (neither a file nor base64)")
    return text
