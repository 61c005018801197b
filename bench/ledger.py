"""The energy-credits ledger at the size of a year: one site's 15-minute credits (35,040 mints)
plus owner-signed transfers, built with the real store; then the offline verification of the
whole log, in its default mode (records anchored by a checkpoint the log key signed are
authenticated by that signature) and with every record's own signature checked, in-process and
as the `bessai ledger verify` command a third party runs. Also: appending with fsync (the
gateway's cost per credit) and a credit bundle's size and check time."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bessai.ledger import keys
from bessai.ledger.proof import credit_bundle, verify_bundle
from bessai.ledger.store import Ledger
from bessai.ledger.verify import verify_log

YEAR = 35_040
TRANSFERS = 200
DURABLE_APPENDS = 200
RUNS = 3
T0 = datetime(2023, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)


def _build(root: Path) -> tuple[Path, str, float]:
    gateway_pub = keys.generate(root / "gateway.key")
    buyer_pub = keys.generate(root / "buyer.key")
    gateway = keys.load_private(root / "gateway.key")
    buyer = keys.load_private(root / "buyer.key")
    ledger = Ledger(root / "credits.jsonl", durable=False)
    started = time.perf_counter()
    for n in range(YEAR):
        # A 1 MW battery: charging 6 h a night, giving back 90 % over the evening's 6 h.
        charged_wh = 250_000 if n % 96 < 24 else 0
        discharged_wh = 225_000 if n % 96 >= 72 else 0
        ledger.mint(
            gateway,
            site="crucero",
            start=T0 + n * STEP,
            end=T0 + (n + 1) * STEP,
            charged_wh=charged_wh,
            discharged_wh=discharged_wh,
            covered_s=900,
            co2=(0, round(discharged_wh * 0.85776), "location-marginal", 857_760),
        )
    mint_s = time.perf_counter() - started
    credits = [e.id for e in ledger.entries[:TRANSFERS]]
    for credit in credits:
        ledger.transfer(gateway, credit, buyer_pub, T0)
    for credit in credits[: TRANSFERS // 2]:  # the buyer passes half of them back
        ledger.transfer(buyer, credit, gateway_pub, T0)
    ledger.checkpoint(gateway, T0 + timedelta(days=366))
    return root / "credits.jsonl", gateway_pub, mint_s


def _durable_append_ms(root: Path) -> float:
    keys.generate(root / "k.key")
    key = keys.load_private(root / "k.key")
    ledger = Ledger(root / "durable.jsonl")
    started = time.perf_counter()
    for n in range(DURABLE_APPENDS):
        ledger.mint(key, site="s", start=T0 + n * STEP, end=T0 + (n + 1) * STEP,
                    charged_wh=1, discharged_wh=1, covered_s=900)  # fmt: skip
    return 1000.0 * (time.perf_counter() - started) / DURABLE_APPENDS


def _cli_seconds(module: list[str], log: Path, pub: str, *extra: str) -> float:
    """Wall time of the command, Python's start and imports included."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", *module, "verify", str(log), "--key", pub, "--json", *extra],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0 or not json.loads(done.stdout)["ok"]:
        raise RuntimeError(f"verify failed: {done.stdout} {done.stderr}")
    return seconds


def run() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        log, pub, mint_s = _build(root)
        records = YEAR + TRANSFERS + TRANSFERS // 2
        default, full = [], []
        for _ in range(RUNS):
            t = time.perf_counter()
            report = verify_log(log, [pub], pub)
            default.append(time.perf_counter() - t)
            assert report.ok, report.problems
            assert report.records == records
            t = time.perf_counter()
            report_all = verify_log(log, [pub], pub, all_signatures=True)
            full.append(time.perf_counter() - t)
            assert report_all.ok, report_all.problems
        alone, full_cli = ["bessai.ledger"], ["bessai.cli", "ledger"]
        cli = {
            "python -m bessai.ledger verify": _cli_seconds(alone, log, pub),
            "python -m bessai.ledger verify --all-signatures": _cli_seconds(
                alone, log, pub, "--all-signatures"
            ),
            "bessai ledger verify": _cli_seconds(full_cli, log, pub),
        }
        ledger = Ledger(log)
        bundle = credit_bundle(ledger, ledger.entries[0].id)
        t = time.perf_counter()
        checked = verify_bundle(bundle, [pub], pub)
        bundle_ms = 1000.0 * (time.perf_counter() - t)
        assert checked.ok, checked.problems
        return {
            "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
            "records": records,
            "log_mb": round(log.stat().st_size / 1e6, 2),
            "mint_records_per_s_no_fsync": round(YEAR / mint_s),
            "append_ms_with_fsync": round(_durable_append_ms(root), 2),
            "verify_s": round(statistics.median(default), 2),
            "verify_signatures_by_checkpoint": report.signatures_by_checkpoint,
            "verify_signatures_checked": report.signatures_checked,
            "verify_all_signatures_s": round(statistics.median(full), 2),
            "command_s": {name: round(seconds, 2) for name, seconds in cli.items()},
            "bundle_records": len(bundle["records"]),
            "bundle_bytes": len(json.dumps(bundle)),
            "bundle_verify_ms": round(bundle_ms, 2),
        }
