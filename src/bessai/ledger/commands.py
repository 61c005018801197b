"""`bessai ledger ...`: keys, verification, transfers, checkpoints and credit bundles."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from bessai.errors import LedgerError
from bessai.ledger import keys
from bessai.ledger.proof import credit_bundle, verify_bundle
from bessai.ledger.records import parse_checkpoint
from bessai.ledger.store import Ledger
from bessai.ledger.verify import Report, verify_log

LogArg = Annotated[Path, typer.Argument(help="The credits log (a .jsonl file).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def ledger_app() -> typer.Typer:
    """The `ledger` command group (also run alone by `python -m bessai.ledger`)."""
    ledger = typer.Typer(
        help="Energy credits: signed, Merkle-logged, verifiable offline.",
        no_args_is_help=True,
        add_completion=False,
    )
    ledger.command("keygen")(keygen_command)
    ledger.command("verify")(verify_command)
    ledger.command("show")(show_command)
    ledger.command("transfer")(transfer_command)
    ledger.command("checkpoint")(checkpoint_command)
    ledger.command("prove")(prove_command)
    return ledger


def register(app: typer.Typer) -> None:
    """Add `bessai ledger` (keygen, verify, show, transfer, checkpoint, prove)."""
    app.add_typer(ledger_app(), name="ledger")


def keygen_command(
    out: Annotated[Path, typer.Argument(help="Private key file to create (mode 0600).")],
    force: Annotated[
        bool, typer.Option(help="Replace an existing key (orphans its credits).")
    ] = False,
) -> None:
    """Make an Ed25519 key pair: OUT (private, 0600) and OUT.pub (public, base64)."""
    public = keys.generate(out, force=force)
    typer.echo(f"private key {out} (mode 0600; keep it on this machine)")
    typer.echo(f"public key  {out}.pub: {public} (id {keys.key_id(public)})")


def _open(log: Path) -> Ledger:
    """An existing log (a typo must not start a new, empty one)."""
    if not log.is_file():
        raise LedgerError(f"no credits log at {log}")
    return Ledger(log)


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LedgerError(f"cannot read {what} {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LedgerError(f"{what} {path} is not JSON: {exc}") from None


def verify_command(
    log: Annotated[Path | None, typer.Argument(help="The credits log to verify.")] = None,
    key: Annotated[
        list[str] | None,
        typer.Option("--key", help="Trusted minting public key (.pub file or base64); repeat."),
    ] = None,
    log_key: Annotated[
        str | None,
        typer.Option("--log-key", help="Key that signs checkpoints [the only --key]."),
    ] = None,
    witness: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="A checkpoint you kept earlier: detects a fork."),
    ] = None,
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="Verify one credit bundle instead of a log.")
    ] = None,
    all_signatures: Annotated[
        bool,
        typer.Option("--all-signatures", help="Check every record's own signature too."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Verify a credits log (or one credit bundle) offline, with only public keys. Exits 1
    when anything fails: a changed, missing or reordered record, a fork, a double spend."""
    minters = [keys.load_public(k) for k in key or []]
    if log_key is not None:
        checkpoint_key = keys.load_public(log_key)
    elif len(minters) == 1:
        checkpoint_key = minters[0]
    else:
        raise LedgerError("give --log-key (the key that signs checkpoints) or exactly one --key")
    if (log is None) == (bundle is None):
        raise LedgerError("give a LOG to verify or --bundle FILE, not both")
    if bundle is not None:
        result = verify_bundle(_load_json(bundle, "bundle"), minters, checkpoint_key)
        _print_bundle(result.ok, result, as_json)
        raise typer.Exit(0 if result.ok else 1)
    kept = None
    if witness is not None:
        kept = parse_checkpoint(_load_json(witness, "checkpoint"), f"checkpoint {witness}")
    started = time.perf_counter()
    assert log is not None
    report = verify_log(log, minters, checkpoint_key, witness=kept, all_signatures=all_signatures)
    _print_report(log, report, time.perf_counter() - started, as_json)
    raise typer.Exit(0 if report.ok else 1)


def _report_doc(log: Path, report: Report, seconds: float) -> dict[str, Any]:
    return {
        "log": str(log),
        "ok": report.ok,
        "root": report.root,
        "checkpoints": report.checkpoints,
        "anchored": report.anchored,
        "signatures_checked": report.signatures_checked,
        "signatures_by_checkpoint": report.signatures_by_checkpoint,
        **report.state.summary(),
        "problems": report.problems,
        "problems_not_shown": report.problems_not_shown,
        "notes": report.notes,
        "seconds": round(seconds, 3),
    }


def _print_report(log: Path, report: Report, seconds: float, as_json: bool) -> None:
    doc = _report_doc(log, report, seconds)
    if as_json:
        typer.echo(json.dumps(doc, indent=1))
        return
    console = Console()
    verdict = "[bold green]OK[/]" if report.ok else "[bold red]FAILED[/]"
    console.print(
        f"{verdict} {escape(str(log))}: {doc['records']} records ({doc['mints']} mints, "
        f"{doc['transfers']} transfers), {doc['discharged_kwh']:.3f} kWh discharged, "
        f"{doc['co2_avoided_kg']:.3f} kg CO2 avoided / {doc['co2_caused_kg']:.3f} kg caused; "
        f"{doc['anchored']} anchored by {doc['checkpoints']} checkpoint(s); "
        f"{doc['signatures_checked']} signatures checked; {seconds:.2f} s",
        soft_wrap=True,
    )
    for text in report.problems:
        console.print(f"  [red]problem:[/] {escape(text)}", soft_wrap=True)
    if report.problems_not_shown:
        console.print(f"  ... and {report.problems_not_shown} more problems")
    for text in report.notes:
        console.print(f"  note: {escape(text)}", soft_wrap=True)


def _print_bundle(ok: bool, result: Any, as_json: bool) -> None:
    doc = {
        "ok": ok,
        "credit": result.credit,
        "site": result.site,
        "start": result.start,
        "end": result.end,
        "discharged_wh": result.discharged_wh,
        "co2_avoided_g": result.co2_avoided_g,
        "owner": result.owner,
        "transfers": result.transfers,
        "checkpoint_size": result.checkpoint_size,
        "problems": result.problems,
    }
    if as_json:
        typer.echo(json.dumps(doc, indent=1))
        return
    console = Console()
    if ok:
        console.print(
            f"[bold green]OK[/] credit {result.credit[:16]}: site {escape(result.site)} "
            f"{result.start}..{result.end}, {result.discharged_wh} Wh, CO2 avoided "
            f"{result.co2_avoided_g} g; owner {escape(result.owner)} after {result.transfers} "
            f"transfer(s); in the log of {result.checkpoint_size} records",
            soft_wrap=True,
        )
    else:
        console.print("[bold red]FAILED[/] " + escape("; ".join(result.problems)), soft_wrap=True)


def show_command(log: LogArg, as_json: JsonOpt = False) -> None:
    """Totals of a log, its latest checkpoint and the credits each key holds."""
    ledger = _open(log)
    owners: dict[str, int] = {}
    for credit in ledger.state.credits.values():
        owners[credit.owner] = owners.get(credit.owner, 0) + 1
    cp = ledger.latest_checkpoint
    doc = {
        **ledger.state.summary(),
        "unanchored": ledger.unanchored,
        "checkpoint": None if cp is None else {"size": cp.size, "root": cp.root.hex(), "ts": cp.ts},
        "credits_by_owner": {keys.key_id(k): n for k, n in owners.items()},
    }
    typer.echo(json.dumps(doc, indent=1) if as_json else _show_text(doc))


def _show_text(doc: dict[str, Any]) -> str:
    lines = [
        f"{doc['records']} records: {doc['mints']} mints, {doc['transfers']} transfers",
        f"energy: {doc['charged_kwh']:.3f} kWh charged, {doc['discharged_kwh']:.3f} kWh discharged",
        f"CO2: {doc['co2_avoided_kg']:.3f} kg avoided, {doc['co2_caused_kg']:.3f} kg caused",
        f"not yet under a checkpoint: {doc['unanchored']}",
    ]
    cp = doc["checkpoint"]
    if cp:
        lines.append(f"checkpoint: size {cp['size']} root {cp['root']} at {cp['ts']}")
    lines += [f"key {k}: {n} credit(s)" for k, n in doc["credits_by_owner"].items()]
    return "\n".join(lines)


def transfer_command(
    log: LogArg,
    credit: Annotated[str, typer.Option("--credit", help="Credit id (hex), see `ledger show`.")],
    to: Annotated[str, typer.Option("--to", help="Recipient public key (.pub file or base64).")],
    key: Annotated[Path, typer.Option("--key", help="The owner's private key file.")],
) -> None:
    """Transfer a credit, signed by its owner; refused if the key does not own it (a credit
    is spent once)."""
    ledger = _open(log)
    entry = ledger.transfer(keys.load_private(key), credit, keys.load_public(to))
    typer.echo(f"record {entry.index}: credit {credit[:16]} -> {keys.key_id(entry.body['to'])}")


def checkpoint_command(
    log: LogArg,
    key: Annotated[Path, typer.Option("--key", help="The log's private key file.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write it here (to keep as a witness).")
    ] = None,
) -> None:
    """Sign the log's current tree head (size and Merkle root)."""
    cp = _open(log).checkpoint(keys.load_private(key))
    if out is not None:
        out.write_text(json.dumps(cp.to_json(), indent=1) + "\n", encoding="utf-8")
    typer.echo(f"checkpoint: size {cp.size} root {cp.root.hex()} at {cp.ts}")


def prove_command(
    log: LogArg,
    credit: Annotated[str, typer.Option("--credit", help="Credit id (hex).")],
    out: Annotated[Path, typer.Option("--out", help="Bundle file to write.")],
) -> None:
    """Write a credit's bundle: its records with inclusion proofs and the signed checkpoint,
    for `bessai ledger verify --bundle` anywhere."""
    bundle = credit_bundle(_open(log), credit)
    out.write_text(json.dumps(bundle, indent=1) + "\n", encoding="utf-8")
    typer.echo(
        f"wrote {out}: {len(bundle['records'])} record(s) against checkpoint size "
        f"{bundle['checkpoint']['body']['size']}"
    )
