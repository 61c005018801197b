"""A small credits log with real keys: two sites minting 15-minute credits from a gateway key,
transfers between parties, and a checkpoint in the middle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bessai.ledger import keys
from bessai.ledger.store import Ledger
from tests.carbon.conftest import _restore_logging

__all__ = ["_restore_logging"]  # the CLI tests configure logging; it is put back after each

T0 = datetime(2023, 3, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)


@dataclass
class World:
    dir: Path
    log: Path
    gateway: Ed25519PrivateKey
    gateway_pub: str
    alice: Ed25519PrivateKey
    alice_pub: str
    bob: Ed25519PrivateKey
    bob_pub: str

    def ledger(self) -> Ledger:
        return Ledger(self.log)


def mint(ledger: Ledger, key: Ed25519PrivateKey, site: str, n: int, owner: str | None = None):
    return ledger.mint(
        key,
        site=site,
        start=T0 + n * STEP,
        end=T0 + (n + 1) * STEP,
        charged_wh=1200 + n,
        discharged_wh=1000 + n,
        covered_s=900,
        co2=(0, 858 * (1000 + n) // 1000, "location-marginal", 857760),
        owner=owner,
    )


@pytest.fixture
def world(tmp_path: Path) -> World:
    pubs = {name: keys.generate(tmp_path / f"{name}.key") for name in ("gateway", "alice", "bob")}
    loaded = {name: keys.load_private(tmp_path / f"{name}.key") for name in pubs}
    return World(
        tmp_path,
        tmp_path / "credits.jsonl",
        loaded["gateway"],
        pubs["gateway"],
        loaded["alice"],
        pubs["alice"],
        loaded["bob"],
        pubs["bob"],
    )


@pytest.fixture
def small_log(world: World) -> World:
    """Records: 0-2 mints (site a), checkpoint at 3, 3 transfer gateway->alice of record 0,
    4 mint (site b, owned by bob)."""
    ledger = world.ledger()
    first = mint(ledger, world.gateway, "a", 0)
    mint(ledger, world.gateway, "a", 1)
    mint(ledger, world.gateway, "a", 2)
    ledger.checkpoint(world.gateway, T0 + 3 * STEP)
    ledger.transfer(world.gateway, first.id, world.alice_pub, T0)
    mint(ledger, world.gateway, "b", 0, owner=world.bob_pub)
    return world
