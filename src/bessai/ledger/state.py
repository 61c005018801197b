"""What the log means: replaying its records in order gives every credit's owner, and the rules
that make a record acceptable. The store applies them before it appends (so it never writes a
double spend), and the verifier applies them again to whatever log it is given (so a log that
holds one anyway is caught).

Rules, besides the signature (checked by the caller):
- every record has `v` = 1 and `seq` = its index (a moved record no longer fits its place);
- a mint is signed by a trusted minting key, names a site, covers [start, end) after the end
  of that site's previous mint (energy is minted once), with non-negative integers;
- a transfer names a minted credit, is signed by that credit's current owner, and `prev` is
  the record that made the sender the owner; a credit its sender has already passed on is a
  double spend.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from bessai.errors import LedgerError
from bessai.ledger.keys import parse_public
from bessai.ledger.records import MINT, TRANSFER, VERSION, Entry, parse_utc

SITE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
AMOUNTS = ("charged_wh", "discharged_wh", "covered_s")
MINT_KEYS = frozenset({"v", "seq", "type", "signer", "owner", "site", "start", "end", *AMOUNTS})
CO2_KEYS = frozenset({"co2_caused_g", "co2_avoided_g", "factor"})
TRANSFER_KEYS = frozenset({"v", "seq", "type", "signer", "credit", "prev", "from", "to", "ts"})


@dataclass(slots=True)
class Credit:
    id: str
    index: int
    site: str
    start: datetime
    end: datetime
    discharged_wh: int
    co2_avoided_g: int | None
    co2_caused_g: int | None
    owner: str
    #: the record (mint or transfer) that made `owner` the owner
    last: str
    #: owners that have passed it on, with the index of their transfer
    spent_by: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class LedgerState:
    credits: dict[str, Credit] = field(default_factory=dict)
    last_end: dict[str, datetime] = field(default_factory=dict)
    size: int = 0
    mints: int = 0
    transfers: int = 0
    charged_wh: int = 0
    discharged_wh: int = 0
    co2_avoided_g: int = 0
    co2_caused_g: int = 0
    #: mints whose factor was unknown (no CO2 claimed)
    mints_without_co2: int = 0
    #: per site: [mints, discharged Wh, CO2 avoided g]
    by_site: dict[str, list[int]] = field(default_factory=dict)

    def apply(self, entry: Entry, minters: Collection[str]) -> None:
        """Add a record whose signature the caller has accepted; LedgerError (naming the
        record and the rule) if the log may not hold it here."""
        body = entry.body
        where = f"record {entry.index}"
        if body.get("v") != VERSION:
            raise LedgerError(f"{where}: unknown version {body.get('v')!r}")
        if body.get("seq") != entry.index:
            raise LedgerError(
                f"{where}: seq {body.get('seq')!r} does not match its place in the log "
                "(records removed, inserted or reordered)"
            )
        if entry.type == MINT:
            self._mint(entry, where, minters)
        elif entry.type == TRANSFER:
            self._transfer(entry, where)
        else:
            raise LedgerError(f"{where}: unknown record type {entry.type!r}")
        self.size += 1

    def _mint(self, entry: Entry, where: str, minters: Collection[str]) -> None:
        body = entry.body
        keys = set(body)
        if not MINT_KEYS <= keys <= MINT_KEYS | CO2_KEYS or (
            keys & CO2_KEYS and not keys >= CO2_KEYS
        ):
            raise LedgerError(f"{where}: a mint has the fields {sorted(MINT_KEYS)} (+ CO2)")
        if entry.signer not in minters:
            raise LedgerError(f"{where}: mint signed by a key that is not a trusted minter")
        site = body["site"]
        if not isinstance(site, str) or not SITE_RE.fullmatch(site):
            raise LedgerError(f"{where}: bad site id {site!r}")
        _public(body["owner"], f"{where}: owner")
        start, end = parse_utc(body["start"], where), parse_utc(body["end"], where)
        if not start < end:
            raise LedgerError(f"{where}: start is not before end")
        previous = self.last_end.get(site)
        if previous is not None and start < previous:
            raise LedgerError(
                f"{where}: double mint: site {site} from {body['start']} overlaps energy "
                f"already minted up to {previous:%Y-%m-%dT%H:%M:%SZ}"
            )
        co2_keys = ("co2_caused_g", "co2_avoided_g") if "factor" in body else ()
        for k in (*AMOUNTS, *co2_keys):
            if not _natural(body[k]):
                raise LedgerError(f"{where}: amounts must be integers >= 0")
        co2: list[int] = [body[k] for k in co2_keys]
        if co2 and not _factor_ok(body["factor"]):
            raise LedgerError(f"{where}: factor needs 'method' text and 'mean_g_per_mwh' >= 0")
        self.last_end[site] = end
        self.credits[entry.id] = Credit(
            entry.id,
            entry.index,
            site,
            start,
            end,
            body["discharged_wh"],
            co2[1] if co2 else None,
            co2[0] if co2 else None,
            body["owner"],
            entry.id,
        )
        self.mints += 1
        site_totals = self.by_site.setdefault(site, [0, 0, 0])
        site_totals[0] += 1
        site_totals[1] += body["discharged_wh"]
        site_totals[2] += co2[1] if co2 else 0
        self.charged_wh += body["charged_wh"]
        self.discharged_wh += body["discharged_wh"]
        if co2:
            self.co2_caused_g += co2[0]
            self.co2_avoided_g += co2[1]
        else:
            self.mints_without_co2 += 1

    def _transfer(self, entry: Entry, where: str) -> None:
        body = entry.body
        if set(body) != TRANSFER_KEYS:
            raise LedgerError(f"{where}: a transfer has exactly the fields {sorted(TRANSFER_KEYS)}")
        credit = self.credits.get(str(body["credit"]))
        if credit is None:
            raise LedgerError(f"{where}: transfer of unknown credit {body['credit']!r}")
        sender = body["from"]
        if entry.signer != sender:
            raise LedgerError(f"{where}: a transfer must be signed by its sender ('from')")
        if sender != credit.owner:
            spent = credit.spent_by.get(sender)
            if spent is not None:
                raise LedgerError(
                    f"{where}: double spend: credit {credit.id[:16]} was already transferred "
                    f"by this sender in record {spent}"
                )
            raise LedgerError(f"{where}: the sender does not own credit {credit.id[:16]}")
        if body["prev"] != credit.last:
            raise LedgerError(f"{where}: 'prev' is not the record that gave the sender the credit")
        _public(body["to"], f"{where}: to")
        parse_utc(body["ts"], where)
        credit.spent_by[sender] = entry.index
        credit.owner = body["to"]
        credit.last = entry.id
        self.transfers += 1

    def summary(self) -> dict[str, Any]:
        return {
            "records": self.size,
            "mints": self.mints,
            "transfers": self.transfers,
            "charged_kwh": self.charged_wh / 1000.0,
            "discharged_kwh": self.discharged_wh / 1000.0,
            "co2_avoided_kg": self.co2_avoided_g / 1000.0,
            "co2_caused_kg": self.co2_caused_g / 1000.0,
            "mints_without_co2": self.mints_without_co2,
        }


def _natural(value: Any) -> bool:
    return type(value) is int and value >= 0  # bool is an int subclass: not an amount


def _factor_ok(factor: Any) -> bool:
    return (
        isinstance(factor, dict)
        and set(factor) == {"method", "mean_g_per_mwh"}
        and isinstance(factor["method"], str)
        and _natural(factor["mean_g_per_mwh"])
    )


def _public(value: Any, where: str) -> None:
    if not isinstance(value, str) or not _is_public(value):
        raise LedgerError(f"{where} is not an Ed25519 public key")


@cache
def _is_public(text: str) -> bool:
    # A log names a handful of keys thousands of times: parse each once.
    try:
        parse_public(text)
    except LedgerError:
        return False
    return True
