"""Minting energy credits in the gateway, from measured energy only.

The minting point is here, at the edge, right after the measurement: the carbon observer hands
each closed interval of *measured* battery energy (integrated from the cycle records, the same
snapshot the guard judged) to the `Minter`, which signs it with the gateway's key and appends
it to the log. No API route can mint; a request body never becomes energy. Writes (fsync) run
on one worker thread, in order, so the control cycle never waits on the disk; a checkpoint is
signed at most every `checkpoint_every_s` and at stop.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bessai.carbon.meter import Interval
from bessai.config import Config
from bessai.errors import BessaiError, ConfigError
from bessai.ledger import keys
from bessai.ledger.store import Ledger

log = structlog.get_logger("bessai.ledger")

#: below this much energy an interval is not worth a credit (an idle battery)
MIN_MINT_WH = 1
CHECKPOINT_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class Co2Claim:
    """What a credit states about CO2: the factor's method and value over the interval."""

    method: str
    g_kwh: float


class Minter:
    def __init__(
        self,
        ledger: Ledger,
        key: Ed25519PrivateKey,
        owner: str,
        co2_method: str,
        checkpoint_every_s: float = CHECKPOINT_EVERY_S,
    ) -> None:
        self.ledger = ledger
        self._key = key
        self.public_key = keys.public_b64(key)
        self.owner = owner
        self.co2_method = co2_method
        self.checkpoint_every_s = checkpoint_every_s
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ledger")
        self._last_checkpoint = 0.0
        self.failures = 0
        self.last_error: str | None = None

    @classmethod
    def from_config(cls, config: Config) -> Minter:
        """Open the key and log the configuration names; a missing key says how to make it."""
        key_path = config.ledger_key_file
        if not key_path.exists():
            raise ConfigError(
                f"ledger.key_file {key_path} does not exist; create it with "
                f"`bessai ledger keygen {key_path}`"
            )
        key = keys.load_private(key_path)
        owner = keys.public_b64(key)
        if config.ledger.owner is not None:
            owner = keys.load_public(config.ledger.owner)
        ledger = Ledger(Path(config.ledger_log_file))
        return cls(ledger, key, owner, config.ledger.co2_method)

    def resume_after(self, site: str) -> datetime | None:
        """The end of the site's last minted energy: a restart measures from there on."""
        return self.ledger.state.last_end.get(site)

    def submit(self, interval: Interval, co2: Co2Claim | None) -> Future[None] | None:
        charged_wh = round(interval.charged_kwh * 1000.0)
        discharged_wh = round(interval.discharged_kwh * 1000.0)
        if max(charged_wh, discharged_wh) < MIN_MINT_WH:
            return None
        claim = None
        if co2 is not None:
            claim = (
                round(interval.charged_kwh * co2.g_kwh),
                round(interval.discharged_kwh * co2.g_kwh),
                co2.method,
                round(co2.g_kwh * 1000.0),
            )
        return self._pool.submit(self._mint, interval, charged_wh, discharged_wh, claim)

    def _mint(
        self,
        interval: Interval,
        charged_wh: int,
        discharged_wh: int,
        claim: tuple[int, int, str, int] | None,
    ) -> None:
        try:
            self.ledger.mint(
                self._key,
                site=interval.site,
                start=interval.start,
                end=interval.end,
                charged_wh=charged_wh,
                discharged_wh=discharged_wh,
                covered_s=round(interval.covered_s),
                co2=claim,
                owner=self.owner,
            )
            if time.monotonic() - self._last_checkpoint >= self.checkpoint_every_s:
                self._checkpoint()
        except (BessaiError, OSError) as exc:
            # The energy stays measured in the carbon totals; the credit is what is lost, and
            # the operator hears why (metrics, API, log) instead of the cycle stopping.
            self.failures += 1
            self.last_error = str(exc)
            log.error("minting failed", site=interval.site, error=str(exc))

    def _checkpoint(self) -> None:
        self.ledger.checkpoint(self._key, datetime.now(UTC))
        self._last_checkpoint = time.monotonic()

    def close(self) -> None:
        """Finish queued mints and anchor them with a final checkpoint."""
        self._pool.submit(self._final_checkpoint)
        self._pool.shutdown(wait=True)

    def _final_checkpoint(self) -> None:
        try:
            cp = self.ledger.latest_checkpoint
            if cp is None or cp.size < self.ledger.size:
                self._checkpoint()
        except (BessaiError, OSError) as exc:
            self.failures += 1
            self.last_error = str(exc)
            log.error("final checkpoint failed", error=str(exc))
