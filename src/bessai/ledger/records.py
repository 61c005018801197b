"""Records of the credits log and the checkpoints over it: their canonical bytes, signatures
and parsing.

A record is one line `{"body":{...},"sig":"<base64>"}`; the signature is Ed25519 over the
canonical bytes of `body` by the key in `body.signer`. Canonical JSON here is RFC 8785 for the
values the ledger uses (objects with ASCII keys, strings, integers, booleans, null): keys
sorted, no whitespace, UTF-8; floats are refused, so energy is in Wh and CO2 in g, as integers.
A line must be exactly the canonical form of what it parses to, so one meaning has one byte
string, and the Merkle leaf (RFC 6962 leaf hash of the line) pins it.

Bodies (all carry `v` = 1, `seq` = the record's index in the log, `type` and `signer`):
- `mint`: verified energy of one site over [`start`, `end`) from telemetry: `charged_wh`,
  `discharged_wh`, `covered_s` (seconds of good samples), and when a factor was known,
  `co2_caused_g` / `co2_avoided_g` with `factor` = {`method`, `mean_g_per_mwh`}; `owner` is the
  public key that may transfer the credit. The credit's id is the record's leaf hash (hex).
- `transfer`: `credit` (id), `prev` (leaf hash of the record that made the sender its owner),
  `from` (= signer, the current owner), `to` (the new owner's public key), `ts`.
A checkpoint is `{"body":{"v":1,"type":"checkpoint","log":<log key id>,"size":n,"root":<hex>,
"ts":...,"signer":<key>},"sig":...}`: the log's signed tree head.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bessai.errors import LedgerError
from bessai.ledger.keys import key_id, public_b64
from bessai.ledger.merkle import leaf_hash

VERSION = 1
_UTC_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", re.ASCII)
MINT = "mint"
TRANSFER = "transfer"
CHECKPOINT = "checkpoint"


def canonical(value: Any) -> bytes:
    """RFC 8785 bytes of a value made of dicts, lists, str, int, bool and None."""
    _check_value(value)
    return _dumps(value)


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _dumps(value: Any) -> bytes:
    return _ENCODER.encode(value).encode()


def _no_float(text: str) -> Any:
    raise ValueError(f"number {text} is not an integer")


# One decoder for every line (json.loads with hooks would build a new one each call).
_DECODER = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_float)


def _loads(data: bytes | str) -> Any:
    """JSON without floats, NaN or Infinity: what `_dumps` of it gives is canonical."""
    return _DECODER.decode(data.decode() if isinstance(data, bytes) else data)


def _check_value(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise LedgerError(f"record key {key!r} is not an ASCII string")
            _check_value(item)
    elif isinstance(value, list):
        for item in value:
            _check_value(item)
    elif isinstance(value, float):
        raise LedgerError(f"record value {value!r} is a float; use integers (Wh, g)")
    elif not (value is None or isinstance(value, str | int | bool)):
        raise LedgerError(f"record value of type {type(value).__name__} is not allowed")


def utc_text(ts: datetime) -> str:
    """`2023-01-01T00:15:00Z`: the one way a time is written in a record."""
    if ts.utcoffset() is None:
        raise LedgerError(f"time {ts} has no timezone")
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: Any, where: str) -> datetime:
    """An ISO 8601 UTC timestamp; a LedgerError naming `where` otherwise."""
    if not isinstance(text, str) or not _UTC_RE.fullmatch(text):
        raise LedgerError(f"{where}: time {text!r} is not YYYY-MM-DDTHH:MM:SSZ")
    try:
        return datetime.fromisoformat(text)  # "Z": an aware UTC time
    except ValueError:
        raise LedgerError(f"{where}: time {text!r} is not a valid date") from None


def signed_line(body: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """The record line (without the newline) of `body` signed by `key`."""
    if body.get("signer") != public_b64(key):
        raise LedgerError("body.signer is not the signing key's public key")
    signature = key.sign(canonical(body))
    return canonical({"body": body, "sig": base64.b64encode(signature).decode("ascii")})


@dataclass(frozen=True, slots=True)
class Entry:
    """One parsed record."""

    index: int
    line: bytes
    body: dict[str, Any]
    sig: bytes
    leaf: bytes

    @property
    def id(self) -> str:
        """The record's leaf hash in hex: the credit id of a mint."""
        return self.leaf.hex()

    @property
    def type(self) -> str:
        return str(self.body.get("type"))

    @property
    def signer(self) -> str:
        return str(self.body.get("signer"))

    def message(self) -> bytes:
        return _dumps(self.body)  # parsed without floats: canonical as it is


def parse_line(line: bytes, index: int, *, check_canonical: bool = True) -> Entry:
    """A record from its line; LedgerError naming the record when it is malformed."""
    where = f"record {index}"
    try:
        obj = _loads(line)
    except (UnicodeDecodeError, ValueError):  # JSONDecodeError is a ValueError
        raise LedgerError(f"{where}: not a JSON line of strings and integers") from None
    if not isinstance(obj, dict) or set(obj) != {"body", "sig"}:
        raise LedgerError(f"{where}: a record is an object with exactly 'body' and 'sig'")
    body, sig_text = obj["body"], obj["sig"]
    if not isinstance(body, dict) or not isinstance(sig_text, str):
        raise LedgerError(f"{where}: 'body' must be an object and 'sig' a string")
    if check_canonical and _dumps(obj) != line:
        raise LedgerError(f"{where}: not in canonical form (re-encoded or altered)")
    try:
        sig = base64.b64decode(sig_text, validate=True)
    except (binascii.Error, ValueError):
        raise LedgerError(f"{where}: 'sig' is not base64") from None
    return Entry(index, line, body, sig, leaf_hash(line))


def mint_body(
    *,
    seq: int,
    signer: str,
    owner: str,
    site: str,
    start: datetime,
    end: datetime,
    charged_wh: int,
    discharged_wh: int,
    covered_s: int,
    co2: tuple[int, int, str, int] | None = None,
) -> dict[str, Any]:
    """A mint body; `co2` = (caused g, avoided g, method key, mean factor g/MWh) when known."""
    body: dict[str, Any] = {
        "v": VERSION,
        "seq": seq,
        "type": MINT,
        "signer": signer,
        "owner": owner,
        "site": site,
        "start": utc_text(start),
        "end": utc_text(end),
        "charged_wh": int(charged_wh),
        "discharged_wh": int(discharged_wh),
        "covered_s": int(covered_s),
    }
    if co2 is not None:
        caused, avoided, method, factor = co2
        body["co2_caused_g"] = int(caused)
        body["co2_avoided_g"] = int(avoided)
        body["factor"] = {"method": method, "mean_g_per_mwh": int(factor)}
    return body


def transfer_body(
    *, seq: int, credit: str, prev: str, sender: str, recipient: str, ts: datetime
) -> dict[str, Any]:
    """The canonical body of a transfer of a credit to a new owner."""
    return {
        "v": VERSION,
        "seq": seq,
        "type": TRANSFER,
        "signer": sender,
        "credit": credit,
        "prev": prev,
        "from": sender,
        "to": recipient,
        "ts": utc_text(ts),
    }


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed tree head: the log had `size` records with Merkle root `root` at `ts`."""

    size: int
    root: bytes
    ts: str
    signer: str
    log: str
    sig: bytes
    line: bytes

    def message(self) -> bytes:
        return canonical(self.body())

    def body(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "type": CHECKPOINT,
            "log": self.log,
            "size": self.size,
            "root": self.root.hex(),
            "ts": self.ts,
            "signer": self.signer,
        }

    def to_json(self) -> dict[str, Any]:
        return {"body": self.body(), "sig": base64.b64encode(self.sig).decode("ascii")}


def sign_checkpoint(size: int, root: bytes, key: Ed25519PrivateKey, ts: datetime) -> Checkpoint:
    """A signed checkpoint of the log: its size and Merkle root at `ts`."""
    signer = public_b64(key)
    unsigned = Checkpoint(size, root, utc_text(ts), signer, key_id(signer), b"", b"")
    sig = key.sign(unsigned.message())
    line = canonical({"body": unsigned.body(), "sig": base64.b64encode(sig).decode("ascii")})
    return Checkpoint(size, root, unsigned.ts, signer, unsigned.log, sig, line)


def parse_checkpoint(data: bytes | dict[str, Any], where: str) -> Checkpoint:
    """A checkpoint from its line (or its parsed JSON); LedgerError naming `where`."""
    try:
        obj = _loads(data) if isinstance(data, bytes) else data
        body = obj["body"]
        if body["v"] != VERSION or body["type"] != CHECKPOINT:
            raise LedgerError(f"{where}: not a version-{VERSION} checkpoint")
        size, root = body["size"], bytes.fromhex(body["root"])
        if not isinstance(size, int) or size < 0 or len(root) != 32:
            raise LedgerError(f"{where}: bad size or root")
        parse_utc(body["ts"], where)
        sig = base64.b64decode(obj["sig"], validate=True)
        cp = Checkpoint(size, root, body["ts"], str(body["signer"]), str(body["log"]), sig, b"")
    except LedgerError:
        raise
    except (KeyError, TypeError, ValueError, binascii.Error, UnicodeDecodeError):
        raise LedgerError(f"{where}: not a checkpoint") from None
    line = canonical(cp.to_json())
    if isinstance(data, bytes) and line != data:
        raise LedgerError(f"{where}: not in canonical form (re-encoded or altered)")
    return Checkpoint(cp.size, cp.root, cp.ts, cp.signer, cp.log, cp.sig, line)
