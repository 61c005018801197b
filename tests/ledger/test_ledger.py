"""The credits log: what the store refuses to write, and what `verify_log` catches in a log
someone tampered with - any flipped byte, reordering, a fork, a double spend or double mint."""

from __future__ import annotations

import json
import os

import pytest

from bessai.errors import LedgerError
from bessai.ledger import keys
from bessai.ledger.proof import credit_bundle, verify_bundle
from bessai.ledger.records import parse_checkpoint, signed_line, transfer_body
from bessai.ledger.store import checkpoints_path
from bessai.ledger.verify import verify_log
from tests.ledger.conftest import STEP, T0, World, mint


def _verify(w: World, **kwargs: object):
    return verify_log(w.log, [w.gateway_pub], w.gateway_pub, **kwargs)  # type: ignore[arg-type]


def test_a_clean_log_verifies_with_only_the_public_key(small_log: World) -> None:
    report = _verify(small_log)
    assert report.ok, report.problems
    assert (report.records, report.checkpoints, report.anchored) == (5, 1, 3)
    assert report.state.mints == 4
    assert report.state.transfers == 1
    assert report.state.discharged_wh == 1000 + 1001 + 1002 + 1000
    # records 0-2 are authenticated by the checkpoint's signature; 3 and 4 by their own
    assert (report.signatures_by_checkpoint, report.signatures_checked) == (3, 2)
    assert "not yet anchored" in report.notes[0]
    full = _verify(small_log, all_signatures=True)
    assert full.ok
    assert full.signatures_checked == 5


def test_flipping_any_byte_of_any_record_is_detected(small_log: World) -> None:
    original = small_log.log.read_bytes()
    lines = original.split(b"\n")[:-1]
    offset = 0
    for number, line in enumerate(lines):
        for i in range(len(line)):
            data = bytearray(original)
            data[offset + i] ^= 0x01
            small_log.log.write_bytes(bytes(data))
            report = _verify(small_log)
            assert not report.ok, f"flip of byte {i} of record {number} went unnoticed"
        offset += len(line) + 1
    small_log.log.write_bytes(original)
    assert _verify(small_log).ok


def test_flipping_any_byte_of_a_checkpoint_is_detected(small_log: World) -> None:
    path = checkpoints_path(small_log.log)
    original = path.read_bytes()
    for i in range(len(original) - 1):
        data = bytearray(original)
        data[i] ^= 0x01
        path.write_bytes(bytes(data))
        assert not _verify(small_log).ok, f"flip of checkpoint byte {i} went unnoticed"


@pytest.mark.parametrize(("a", "b"), [(0, 1), (1, 2), (3, 4), (0, 4)])
def test_reordering_records_is_detected(small_log: World, a: int, b: int) -> None:
    lines = small_log.log.read_bytes().split(b"\n")[:-1]
    lines[a], lines[b] = lines[b], lines[a]
    small_log.log.write_bytes(b"\n".join(lines) + b"\n")
    report = _verify(small_log)
    assert any("does not match its place" in p for p in report.problems), report.problems


def test_removing_records_under_a_checkpoint_is_detected(small_log: World) -> None:
    lines = small_log.log.read_bytes().split(b"\n")[:-1]
    small_log.log.write_bytes(b"\n".join(lines[:2]) + b"\n")
    report = _verify(small_log)
    assert any("records were removed" in p for p in report.problems), report.problems


def test_a_fork_is_caught_by_the_checkpoint_a_verifier_kept(world: World) -> None:
    ledger = world.ledger()
    for n in range(4):
        mint(ledger, world.gateway, "a", n)
    kept = ledger.checkpoint(world.gateway)
    # The operator rewrites history with its own valid key: a different record 1 and a fresh
    # set of checkpoints. On its own the forked log is self-consistent...
    world.log.unlink()
    checkpoints_path(world.log).unlink()
    forked = world.ledger()
    mint(forked, world.gateway, "a", 0)
    forked.mint(
        world.gateway,
        site="a",
        start=T0 + STEP,
        end=T0 + 2 * STEP,
        charged_wh=0,
        discharged_wh=99_999,
        covered_s=900,
    )
    for n in range(2, 6):
        mint(forked, world.gateway, "a", n)
    forked.checkpoint(world.gateway)
    assert _verify(world).ok
    # ...but not an extension of what the verifier saw before.
    report = _verify(world, witness=kept)
    assert any(p.startswith("fork") for p in report.problems), report.problems
    witness = parse_checkpoint(json.loads(json.dumps(kept.to_json())), "kept")
    assert not _verify(world, witness=witness).ok


def test_an_honest_extension_is_consistent_with_the_kept_checkpoint(world: World) -> None:
    ledger = world.ledger()
    for n in range(3):
        mint(ledger, world.gateway, "a", n)
    kept = ledger.checkpoint(world.gateway)
    for n in range(3, 9):
        mint(ledger, world.gateway, "a", n)
    ledger.checkpoint(world.gateway)
    assert _verify(world, witness=kept).ok


def test_the_store_refuses_a_double_spend_and_the_verifier_catches_one(small_log: World) -> None:
    ledger = small_log.ledger()
    credit = ledger.entries[0].id
    ledger.transfer(small_log.alice, credit, small_log.bob_pub)  # alice passes it on
    with pytest.raises(LedgerError, match="double spend"):
        ledger.transfer(small_log.alice, credit, small_log.alice_pub)
    # Alice signs a second transfer of the same credit herself and someone slips it in.
    body = transfer_body(
        seq=ledger.size,
        credit=credit,
        prev=ledger.entries[3].id,
        sender=small_log.alice_pub,
        recipient=small_log.gateway_pub,
        ts=T0,
    )
    with small_log.log.open("ab") as handle:
        handle.write(signed_line(body, small_log.alice) + b"\n")
    report = _verify(small_log)
    assert any("double spend" in p for p in report.problems), report.problems


def test_only_the_owner_may_transfer(small_log: World) -> None:
    ledger = small_log.ledger()
    bobs = ledger.entries[4].id
    with pytest.raises(LedgerError, match="does not own"):
        ledger.transfer(small_log.alice, bobs, small_log.alice_pub)
    # A transfer signed by bob but claiming to come from someone else is not accepted either.
    body = transfer_body(
        seq=ledger.size,
        credit=bobs,
        prev=bobs,
        sender=small_log.bob_pub,
        recipient=small_log.alice_pub,
        ts=T0,
    )
    body["from"] = small_log.alice_pub
    with small_log.log.open("ab") as handle:
        handle.write(signed_line(body, small_log.bob) + b"\n")
    assert any("signed by its sender" in p for p in _verify(small_log).problems)


def test_energy_is_minted_once(small_log: World) -> None:
    ledger = small_log.ledger()
    with pytest.raises(LedgerError, match="double mint"):
        mint(ledger, small_log.gateway, "a", 1)  # the interval of record 1 again
    # A site may resume after a gap; another site is independent.
    mint(ledger, small_log.gateway, "a", 10)
    mint(ledger, small_log.gateway, "b", 1)


def test_a_mint_by_an_untrusted_key_is_rejected(small_log: World) -> None:
    ledger = small_log.ledger()
    mint(ledger, small_log.bob, "c", 0)  # the store replays anyone; the verifier does not
    report = _verify(small_log)
    assert any("not a trusted minter" in p for p in report.problems)


def test_a_torn_last_line_is_cut_at_the_next_append(small_log: World) -> None:
    with small_log.log.open("ab") as handle:
        handle.write(b'{"body":{"v":1,"seq":5')  # a crash in the middle of a write
    assert not _verify(small_log).ok
    ledger = small_log.ledger()
    assert ledger.size == 5
    mint(ledger, small_log.gateway, "a", 3)
    assert _verify(small_log).ok


def test_private_keys_are_0600_and_refused_otherwise(world: World) -> None:
    path = world.dir / "gateway.key"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert keys.load_public(path) == world.gateway_pub
    with pytest.raises(LedgerError, match="already exists"):
        keys.generate(path)
    path.chmod(0o644)
    with pytest.raises(LedgerError, match="chmod 600"):
        keys.load_private(path)


def test_floats_and_non_canonical_lines_are_refused(world: World) -> None:
    ledger = world.ledger()
    mint(ledger, world.gateway, "a", 0)
    line = world.log.read_bytes().rstrip(b"\n")
    world.log.write_bytes(line.replace(b'"covered_s":900', b'"covered_s":900.0') + b"\n")
    assert any("not a JSON line" in p for p in _verify(world).problems)
    world.log.write_bytes(line.replace(b'{"body":', b'{ "body":') + b"\n")
    assert any("canonical" in p for p in _verify(world).problems)


def test_a_credit_bundle_verifies_alone_and_tampering_fails(small_log: World) -> None:
    ledger = small_log.ledger()
    credit = ledger.entries[0].id
    ledger.checkpoint(small_log.gateway)
    bundle = credit_bundle(ledger, credit)
    report = verify_bundle(bundle, [small_log.gateway_pub], small_log.gateway_pub)
    assert report.ok, report.problems
    assert (report.owner, report.transfers, report.discharged_wh) == (small_log.alice_pub, 1, 1000)
    text = json.dumps(bundle)
    for old, new in [
        ('\\"discharged_wh\\":1000', '\\"discharged_wh\\":9000'),
        (bundle["records"][0]["proof"][0], "00" * 32),
        (bundle["checkpoint"]["body"]["root"], "11" * 32),
    ]:
        assert old in text
        bad = verify_bundle(
            json.loads(text.replace(old, new)), [small_log.gateway_pub], small_log.gateway_pub
        )
        assert not bad.ok
    other = verify_bundle(bundle, [small_log.bob_pub], small_log.bob_pub)
    assert not other.ok
