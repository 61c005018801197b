"""A credit on its own: the bundle a holder hands to a buyer or auditor, who checks it offline
with the log's public key.

A bundle holds the credit's mint and every transfer of it the log holds up to a signed
checkpoint, each with its RFC 6962 inclusion proof against that checkpoint's root. Checking it
proves that these exact records are in the log at these positions, that the log operator
signed that log state, that the minting key signed the energy figures and that each owner
signed the transfer to the next. What a bundle cannot prove is absence: a later transfer past
the checkpoint, or one left out of the bundle, is only seen by verifying the whole log (or by
asking for a bundle against a newer checkpoint and checking consistency), see docs/credits.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bessai.errors import LedgerError
from bessai.ledger.keys import parse_public, signature_ok
from bessai.ledger.merkle import verify_inclusion
from bessai.ledger.records import MINT, TRANSFER, Checkpoint, parse_checkpoint, parse_line
from bessai.ledger.state import LedgerState
from bessai.ledger.store import Ledger

BUNDLE_VERSION = 1


def credit_bundle(ledger: Ledger, credit: str) -> dict[str, Any]:
    """The bundle of `credit` against the log's latest checkpoint."""
    cp = ledger.latest_checkpoint
    held = ledger.state.credits.get(credit)
    if held is None:
        raise LedgerError(f"{ledger.path}: no credit {credit!r}")
    if cp is None or cp.size <= held.index:
        raise LedgerError(
            f"{ledger.path}: credit {credit[:16]} is not under a checkpoint yet; sign one "
            "with `bessai ledger checkpoint`"
        )
    records = []
    for entry in ledger.entries[held.index : cp.size]:
        if entry.index == held.index or (
            entry.type == TRANSFER and entry.body.get("credit") == credit
        ):
            records.append(
                {
                    "index": entry.index,
                    "line": entry.line.decode(),
                    "proof": [h.hex() for h in ledger.tree.inclusion_proof(entry.index, cp.size)],
                }
            )
    return {"v": BUNDLE_VERSION, "credit": credit, "checkpoint": cp.to_json(), "records": records}


@dataclass(slots=True)
class BundleReport:
    credit: str = ""
    owner: str = ""
    site: str = ""
    start: str = ""
    end: str = ""
    discharged_wh: int = 0
    co2_avoided_g: int | None = None
    transfers: int = 0
    checkpoint_size: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_bundle(bundle: Any, minters: list[str], log_key: str) -> BundleReport:
    """Check a credit bundle offline; every failed check is a problem in the report."""
    report = BundleReport()
    try:
        cp, records = _unpack(bundle)
    except LedgerError as exc:
        report.problems.append(str(exc))
        return report
    report.credit = str(bundle["credit"])
    report.checkpoint_size = cp.size
    if cp.signer != log_key or not signature_ok(parse_public(log_key), cp.sig, cp.message()):
        report.problems.append("the bundle's checkpoint is not signed by the log key")
        return report
    state = LedgerState()
    previous = -1
    for number, item in enumerate(records):
        where = f"bundle record {number}"
        try:
            entry = parse_line(str(item["line"]).encode(), int(item["index"]))
            proof = [bytes.fromhex(h) for h in item["proof"]]
        except (LedgerError, KeyError, TypeError, ValueError) as exc:
            report.problems.append(f"{where}: {exc}")
            return report
        if entry.index <= previous:
            report.problems.append(f"{where}: records are not in log order")
            return report
        previous = entry.index
        if not verify_inclusion(entry.index, cp.size, entry.leaf, proof, cp.root):
            report.problems.append(f"{where}: not in the log the checkpoint signs (bad proof)")
            return report
        if not signature_ok(parse_public(entry.signer, where), entry.sig, entry.message()):
            report.problems.append(f"{where}: the signature does not match its signer's key")
            return report
        if number == 0 and (entry.type != MINT or entry.id != report.credit):
            report.problems.append(f"{where}: the first record must be the credit's mint")
            return report
        if number > 0 and entry.body.get("credit") != report.credit:
            report.problems.append(f"{where}: a transfer of another credit")
            return report
        try:
            state.apply(entry, set(minters))
        except LedgerError as exc:
            report.problems.append(f"{where}: {exc}")
            return report
    credit = state.credits[report.credit]
    report.owner, report.site = credit.owner, credit.site
    report.start, report.end = (
        f"{credit.start:%Y-%m-%dT%H:%M:%SZ}",
        f"{credit.end:%Y-%m-%dT%H:%M:%SZ}",
    )
    report.discharged_wh, report.co2_avoided_g = credit.discharged_wh, credit.co2_avoided_g
    report.transfers = state.transfers
    return report


def _unpack(bundle: Any) -> tuple[Checkpoint, list[Any]]:
    if not isinstance(bundle, dict) or bundle.get("v") != BUNDLE_VERSION:
        raise LedgerError(f"not a version-{BUNDLE_VERSION} credit bundle")
    records = bundle.get("records")
    if not isinstance(records, list) or not records or not isinstance(bundle.get("credit"), str):
        raise LedgerError("a bundle needs 'credit' and at least one record")
    checkpoint = bundle.get("checkpoint")
    if not isinstance(checkpoint, dict):
        raise LedgerError("a bundle needs its 'checkpoint'")
    return parse_checkpoint(checkpoint, "bundle checkpoint"), records
