"""Offline verification of a credits log with nothing but public keys.

What is checked (docs/credits.md, "Verifying"):
1. every line is a canonical record; its RFC 6962 leaf hash is taken over the raw line;
2. every checkpoint is signed by the log key and its root equals the Merkle root of the first
   `size` lines (any changed, removed, inserted or reordered line before it breaks this);
3. a checkpoint the verifier kept from earlier (`witness`) is consistent with the log: an
   RFC 6962 consistency proof from its size to the log's is built and checked, so a log that
   was rewritten and re-signed (a fork) is caught;
4. signatures: every record's own Ed25519 signature, except - unless `all_signatures` - the
   records under a verified checkpoint that were signed by the log key itself: that key
   signed a root which commits to those exact bytes, so their own signatures add nothing
   (records signed by anyone else, transfers included, are always checked);
5. the replayed log obeys the rules of `bessai.ledger.state` (no double mint, no double
   spend, transfers signed by the owner, `seq` = position).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bessai.errors import LedgerError
from bessai.ledger.keys import parse_public, signature_ok
from bessai.ledger.merkle import CompactRange, MerkleTree, leaf_hash, verify_consistency
from bessai.ledger.records import Checkpoint, Entry, parse_checkpoint, parse_line
from bessai.ledger.state import LedgerState
from bessai.ledger.store import checkpoints_path

MAX_PROBLEMS = 20
#: records per signature-checking task: big enough to amortise the thread hand-off
SIGNATURE_CHUNK = 512


@dataclass(slots=True)
class Report:
    records: int = 0
    checkpoints: int = 0
    #: records covered by the largest checkpoint that verified
    anchored: int = 0
    root: str = ""
    signatures_checked: int = 0
    #: records authenticated by a checkpoint's signature instead of their own
    signatures_by_checkpoint: int = 0
    state: LedgerState = field(default_factory=LedgerState)
    problems: list[str] = field(default_factory=list)
    problems_not_shown: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        else:
            self.problems_not_shown += 1


class _Keys:
    """Public keys parsed once each."""

    def __init__(self) -> None:
        self._cache: dict[str, Ed25519PublicKey | None] = {}

    def get(self, text: str) -> Ed25519PublicKey | None:
        if text not in self._cache:
            try:
                self._cache[text] = parse_public(text)
            except LedgerError:
                self._cache[text] = None
        return self._cache[text]

    def check(self, signer: str, signature: bytes, message: bytes) -> bool:
        key = self.get(signer)
        return key is not None and signature_ok(key, signature, message)


def read_lines(path: Path) -> list[bytes]:
    """The log's lines as bytes; a LedgerError naming the file when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LedgerError(f"cannot read {path}: {exc.strerror}") from None
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def verify_log(
    path: Path,
    minters: Sequence[str],
    log_key: str,
    *,
    witness: Checkpoint | None = None,
    all_signatures: bool = False,
    threads: int | None = None,
) -> Report:
    """Verify the log at `path` (and its checkpoints file) offline."""
    report = Report()
    keys = _Keys()
    lines = read_lines(path)
    report.records = len(lines)
    leaves = [leaf_hash(line) for line in lines]
    entries = _parse(lines, report)
    checkpoints = _checkpoints(checkpoints_path(path), log_key, keys, report)
    report.anchored = _match_checkpoints(leaves, checkpoints, report)
    tree = MerkleTree(leaves)
    report.root = tree.root().hex()
    if witness is not None:
        _check_witness(tree, witness, log_key, keys, report)
    bad = _signatures(entries, report, keys, log_key, all_signatures, threads)
    minter_set = set(minters)
    for entry in entries:
        if entry is None or entry.index in bad:
            continue
        try:
            report.state.apply(entry, minter_set)
        except LedgerError as exc:
            report.problem(str(exc))
    if report.anchored < report.records and not report.problems:
        report.notes.append(
            f"{report.records - report.anchored} record(s) after the last checkpoint: "
            "signed, but not yet anchored by a signed tree head"
        )
    return report


def _parse(lines: list[bytes], report: Report) -> list[Entry | None]:
    entries: list[Entry | None] = []
    for index, line in enumerate(lines):
        try:
            entries.append(parse_line(line, index))
        except LedgerError as exc:
            report.problem(str(exc))
            entries.append(None)
    return entries


def _checkpoints(path: Path, log_key: str, keys: _Keys, report: Report) -> list[Checkpoint]:
    if not path.exists():
        report.notes.append(f"no checkpoints file {path.name}: nothing anchors the log")
        return []
    good: list[Checkpoint] = []
    for number, line in enumerate(read_lines(path)):
        where = f"checkpoint {number}"
        try:
            cp = parse_checkpoint(line, where)
        except LedgerError as exc:
            report.problem(str(exc))
            continue
        if cp.signer != log_key or not keys.check(cp.signer, cp.sig, cp.message()):
            report.problem(f"{where}: not signed by the log key")
            continue
        good.append(cp)
    report.checkpoints = len(good)
    return good


def _match_checkpoints(leaves: list[bytes], checkpoints: list[Checkpoint], report: Report) -> int:
    """Compare each checkpoint's root with the log's prefix of its size, in one pass."""
    wanted: dict[int, list[Checkpoint]] = {}
    for cp in checkpoints:
        if cp.size > len(leaves):
            report.problem(
                f"checkpoint of size {cp.size} ({cp.ts}) is longer than the log "
                f"({len(leaves)} records): records were removed"
            )
        else:
            wanted.setdefault(cp.size, []).append(cp)
    anchored = 0
    compact = CompactRange()
    sizes = sorted(wanted)
    position = 0
    for size in sizes:
        while position < size:
            compact.append(leaves[position])
            position += 1
        root = compact.root()
        for cp in wanted[size]:
            if cp.root == root:
                anchored = max(anchored, size)
            else:
                report.problem(
                    f"checkpoint of size {size} ({cp.ts}) does not match the log: a record "
                    "before it was changed, removed, inserted or reordered, or the log forked"
                )
    return anchored


def _check_witness(
    tree: MerkleTree, witness: Checkpoint, log_key: str, keys: _Keys, report: Report
) -> None:
    if witness.signer != log_key or not keys.check(witness.signer, witness.sig, witness.message()):
        report.problem("the checkpoint you kept is not signed by the log key")
        return
    size = len(tree)
    if witness.size > size:
        report.problem(
            f"the log has {size} records, fewer than the {witness.size} of the checkpoint you "
            "kept: it was truncated or forked"
        )
        return
    proof = tree.consistency_proof(witness.size, size)
    if not verify_consistency(witness.size, size, witness.root, tree.root(size), proof):
        report.problem(
            f"fork: the log is not an append-only extension of the checkpoint you kept "
            f"(size {witness.size}, {witness.ts})"
        )


def _signatures(
    entries: list[Entry | None],
    report: Report,
    keys: _Keys,
    log_key: str,
    all_signatures: bool,
    threads: int | None,
) -> set[int]:
    """Check the signatures that need checking; returns the indices that failed."""
    todo: list[Entry] = []
    for entry in entries:
        if entry is None:
            continue
        if not all_signatures and entry.index < report.anchored and entry.signer == log_key:
            report.signatures_by_checkpoint += 1
        else:
            todo.append(entry)
    for entry in todo:  # parse every signer once, before the threads share the cache
        keys.get(entry.signer)
    chunks = [todo[i : i + SIGNATURE_CHUNK] for i in range(0, len(todo), SIGNATURE_CHUNK)]

    def check(chunk: list[Entry]) -> list[int]:
        return [e.index for e in chunk if not keys.check(e.signer, e.sig, e.message())]

    workers = threads or os.cpu_count() or 1
    if workers > 1 and len(chunks) > 1:
        # cryptography releases the GIL while it verifies, so threads use every core.
        with ThreadPoolExecutor(workers) as pool:
            failed = [i for result in pool.map(check, chunks) for i in result]
    else:
        failed = [i for chunk in chunks for i in check(chunk)]
    report.signatures_checked = len(todo)
    for index in failed:
        report.problem(f"record {index}: the signature does not match its signer's key")
    return set(failed)
