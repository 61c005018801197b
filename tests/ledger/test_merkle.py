"""RFC 6962 Merkle tree: the published test vectors, and inclusion and consistency proofs for
every tree size up to a few hundred, checked against a direct transcription of the RFC's
recursive definitions."""

from __future__ import annotations

import hashlib

import pytest

from bessai.ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleTree,
    leaf_hash,
    node_hash,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

# Test vectors of the Certificate Transparency implementations: the 8 leaf inputs, the roots of
# the trees of their first 1..8 leaves, and inclusion / consistency proofs. Source:
# github.com/transparency-dev/merkle, proof/verify_test.go (Apache-2.0), the same data as
# google/certificate-transparency's merkle_tree_test.cc.
LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf number counted from 1 as in the source, tree size, proof)
INCLUSION = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        2,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

VECTOR_TREE = MerkleTree([leaf_hash(bytes.fromhex(h)) for h in LEAVES])


def _hexes(proof: list[bytes]) -> list[str]:
    return [p.hex() for p in proof]


def test_empty_tree_hash() -> None:
    assert MerkleTree().root().hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert CompactRange().root() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_the_vectors(size: int) -> None:
    assert VECTOR_TREE.root(size).hex() == ROOTS[size - 1]
    compact = CompactRange()
    for leaf in VECTOR_TREE.levels[0][:size]:
        compact.append(leaf)
    assert compact.root().hex() == ROOTS[size - 1]


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION)
def test_inclusion_proofs_match_the_vectors(leaf: int, size: int, proof: list[str]) -> None:
    assert _hexes(VECTOR_TREE.inclusion_proof(leaf - 1, size)) == proof
    leaf_h = leaf_hash(bytes.fromhex(LEAVES[leaf - 1]))
    root = bytes.fromhex(ROOTS[size - 1])
    assert verify_inclusion(leaf - 1, size, leaf_h, [bytes.fromhex(p) for p in proof], root)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proofs_match_the_vectors(old: int, new: int, proof: list[str]) -> None:
    assert _hexes(VECTOR_TREE.consistency_proof(old, new)) == proof
    old_root, new_root = bytes.fromhex(ROOTS[old - 1]), bytes.fromhex(ROOTS[new - 1])
    assert verify_consistency(old, new, old_root, new_root, [bytes.fromhex(p) for p in proof])


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 2.1, MTH, transcribed directly (leaves are leaf hashes here)."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


SIZES = 300
BIG = MerkleTree([leaf_hash(i.to_bytes(4, "big")) for i in range(SIZES)])
ROOT_OF = [BIG.root(n) for n in range(SIZES + 1)]


def test_roots_of_every_size_match_the_rfc_definition() -> None:
    leaves = BIG.levels[0]
    compact = CompactRange()
    for n in range(1, SIZES + 1):
        compact.append(leaves[n - 1])
        assert ROOT_OF[n] == _mth(leaves[:n]) == compact.root(), n


def test_inclusion_of_every_leaf_in_every_tree_up_to_300() -> None:
    leaves = BIG.levels[0]
    for n in range(1, SIZES + 1):
        for m in range(n):
            proof = BIG.inclusion_proof(m, n)
            assert root_from_inclusion(m, n, leaves[m], proof) == ROOT_OF[n], (m, n)


def test_consistency_between_every_pair_of_sizes_up_to_200() -> None:
    for n in range(1, 201):
        for m in range(n + 1):
            proof = BIG.consistency_proof(m, n)
            assert verify_consistency(m, n, ROOT_OF[m], ROOT_OF[n], proof), (m, n)


@pytest.mark.parametrize("n", [2, 3, 5, 7, 8, 13, 64, 100, 257])
def test_corrupted_proofs_are_rejected(n: int) -> None:
    leaves = BIG.levels[0]
    for m in range(n):
        proof = BIG.inclusion_proof(m, n)
        root = ROOT_OF[n]
        assert not verify_inclusion(m, n, leaves[(m + 1) % n], proof, root)
        assert not verify_inclusion(m, 2 * n, leaves[m], proof, root)  # another height
        assert not verify_inclusion(m, n, leaves[m], [*proof, root], root)
        for i in range(len(proof)):
            bad = list(proof)
            bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
            assert not verify_inclusion(m, n, leaves[m], bad, root)
    for m in range(1, n):
        proof = BIG.consistency_proof(m, n)
        assert not verify_consistency(m, n, ROOT_OF[m], ROOT_OF[n], proof[:-1])
        assert not verify_consistency(m, n, ROOT_OF[n], ROOT_OF[m], proof)  # swapped roots
        for i in range(len(proof)):
            bad = list(proof)
            bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
            assert not verify_consistency(m, n, ROOT_OF[m], ROOT_OF[n], bad)


def test_a_different_history_is_not_consistent() -> None:
    forked = MerkleTree(BIG.levels[0][:50])
    forked.levels[0][17] = leaf_hash(b"forged")
    forked = MerkleTree(forked.levels[0] + BIG.levels[0][50:120])
    proof = forked.consistency_proof(40, 120)
    assert not verify_consistency(40, 120, ROOT_OF[40], forked.root(120), proof)
    assert verify_consistency(10, 120, ROOT_OF[10], forked.root(120), forked.consistency_proof(10))


def test_append_keeps_the_levels_right() -> None:
    grown = MerkleTree()
    for leaf in BIG.levels[0][:77]:
        grown.append(leaf)
        assert grown.root() == ROOT_OF[len(grown)]
