"""The credits log on disk: `<name>.jsonl` holds one record per line, `<name>.checkpoints.jsonl`
the signed tree heads. Appends are exclusive (an advisory `flock` on the log, so the gateway and
a `bessai ledger transfer` run beside it take turns), checked against the replayed state before
anything is written, and fsync'ed; nothing is ever rewritten. A torn last line (a crash inside
a write, before any checkpoint could cover it) is cut off at the next append."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bessai.errors import LedgerError
from bessai.ledger.keys import public_b64
from bessai.ledger.merkle import MerkleTree
from bessai.ledger.records import (
    Checkpoint,
    Entry,
    mint_body,
    parse_checkpoint,
    parse_line,
    sign_checkpoint,
    signed_line,
    transfer_body,
)
from bessai.ledger.state import LedgerState

log = structlog.get_logger("bessai.ledger")


class _Anyone(Collection[str]):
    """Minters accepted when the store replays its own file: its signatures are the
    verifier's business (`bessai ledger verify`), not a reason to refuse to start."""

    def __contains__(self, item: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def checkpoints_path(log_path: Path) -> Path:
    """The checkpoint file kept beside a credit log."""
    return log_path.with_name(f"{log_path.stem}.checkpoints{log_path.suffix or '.jsonl'}")


class Ledger:
    """An open credits log. `durable=False` skips the fsync per append (bulk generation in
    benchmarks and tests only)."""

    def __init__(self, path: Path, *, durable: bool = True) -> None:
        self.path = path
        self.checkpoints_file = checkpoints_path(path)
        self.durable = durable
        self.entries: list[Entry] = []
        self.tree = MerkleTree()
        self.state = LedgerState()
        self.checkpoints: list[Checkpoint] = []
        self._offset = 0
        self._cp_offset = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._catch_up()

    # -- reading ---------------------------------------------------------------------------------

    def _catch_up(self, *, repair: bool = False) -> None:
        """Read what was appended since the last read (by us or another process)."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            data = b""
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            if repair:
                self._cut_torn_tail(self._offset + complete)
            else:
                log.warning("ledger has a torn last line", path=str(self.path))
        for line in data[:complete].split(b"\n")[:-1]:
            try:
                entry = parse_line(line, len(self.entries))
                self.state.apply(entry, _Anyone())
            except LedgerError as exc:
                raise LedgerError(
                    f"{self.path}: {exc}; the log cannot take more records until "
                    "`bessai ledger verify` explains it"
                ) from None
            self.entries.append(entry)
            self.tree.append(entry.leaf)
        self._offset += complete
        self._read_checkpoints()

    def _read_checkpoints(self) -> None:
        try:
            with self.checkpoints_file.open("rb") as handle:
                handle.seek(self._cp_offset)
                data = handle.read()
        except FileNotFoundError:
            return
        complete = data.rfind(b"\n") + 1
        for number, line in enumerate(data[:complete].split(b"\n")[:-1]):
            where = f"{self.checkpoints_file} checkpoint {len(self.checkpoints) + number}"
            self.checkpoints.append(parse_checkpoint(line, where))
        self._cp_offset += complete

    def _cut_torn_tail(self, size: int) -> None:
        log.warning("cutting a torn last ledger line", path=str(self.path), at_byte=size)
        with self.path.open("r+b") as handle:
            handle.truncate(size)

    # -- writing ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[BinaryIO]:
        with self.path.open("ab") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                self._catch_up(repair=True)
                yield handle
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _write(self, handle: BinaryIO, line: bytes) -> None:
        handle.write(line + b"\n")
        handle.flush()
        if self.durable:
            os.fsync(handle.fileno())
        self._offset += len(line) + 1

    def _append(self, handle: BinaryIO, line: bytes, signer: str) -> Entry:
        entry = parse_line(line, len(self.entries))
        self.state.apply(entry, {signer})  # refuses a double mint or spend before writing
        self._write(handle, line)
        self.entries.append(entry)
        self.tree.append(entry.leaf)
        return entry

    def mint(
        self,
        key: Ed25519PrivateKey,
        *,
        site: str,
        start: datetime,
        end: datetime,
        charged_wh: int,
        discharged_wh: int,
        covered_s: int,
        co2: tuple[int, int, str, int] | None = None,
        owner: str | None = None,
    ) -> Entry:
        """Append a mint signed by `key` (the gateway's); the credit belongs to `owner`
        (default: the same key)."""
        signer = public_b64(key)
        with self._locked() as handle:
            body = mint_body(
                seq=len(self.entries),
                signer=signer,
                owner=owner or signer,
                site=site,
                start=start,
                end=end,
                charged_wh=charged_wh,
                discharged_wh=discharged_wh,
                covered_s=covered_s,
                co2=co2,
            )
            return self._append(handle, signed_line(body, key), signer)

    def transfer(
        self, key: Ed25519PrivateKey, credit: str, recipient: str, ts: datetime | None = None
    ) -> Entry:
        """Append a transfer of `credit` from the owner `key` to `recipient` (public key)."""
        sender = public_b64(key)
        with self._locked() as handle:
            held = self.state.credits.get(credit)
            if held is None:
                raise LedgerError(f"{self.path}: no credit {credit!r}")
            body = transfer_body(
                seq=len(self.entries),
                credit=credit,
                prev=held.last,
                sender=sender,
                recipient=recipient,
                ts=ts or datetime.now(UTC),
            )
            return self._append(handle, signed_line(body, key), sender)

    def checkpoint(self, key: Ed25519PrivateKey, ts: datetime | None = None) -> Checkpoint:
        """Sign the current tree head and append it to the checkpoints file."""
        with self._locked():
            cp = sign_checkpoint(len(self.entries), self.tree.root(), key, ts or datetime.now(UTC))
            with self.checkpoints_file.open("ab") as handle:
                handle.write(cp.line + b"\n")
                handle.flush()
                if self.durable:
                    os.fsync(handle.fileno())
            self._cp_offset += len(cp.line) + 1
            self.checkpoints.append(cp)
            return cp

    # -- views ----------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Pick up records other processes appended."""
        self._catch_up()

    @property
    def size(self) -> int:
        return len(self.entries)

    @property
    def latest_checkpoint(self) -> Checkpoint | None:
        return self.checkpoints[-1] if self.checkpoints else None

    @property
    def unanchored(self) -> int:
        """Records no checkpoint covers yet."""
        cp = self.latest_checkpoint
        return self.size - (cp.size if cp is not None else 0)
