"""The Merkle tree of RFC 6962 (Certificate Transparency), section 2.1, with the proof
verification algorithms as RFC 9162 section 2.1.3.2 and 2.1.4.2 state them.

Hashing: a leaf is SHA-256(0x00 || data), an inner node SHA-256(0x01 || left || right); a
tree of n > 1 leaves splits at k, the largest power of two below n. The empty tree hashes to
SHA-256 of nothing.

`MerkleTree` keeps the levels of complete, aligned subtrees, so any subtree hash that a proof
needs is a lookup or a short walk down the right edge: inclusion and consistency proofs cost
O(log^2 n) hashes. `CompactRange` is the streaming form: append leaves and read the root of
the prefix so far, keeping O(log n) hashes (how a verifier checks every checkpoint of a log in
one pass).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256 of 0x00 and the data."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256 of 0x01, left and right."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """A tree over leaf hashes; roots and proofs for any size up to the number of leaves."""

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        #: levels[h][i] is the hash of leaves [i * 2**h, (i + 1) * 2**h)
        self.levels: list[list[bytes]] = [list(leaves)]
        self._build_from(0)

    def __len__(self) -> int:
        return len(self.levels[0])

    def append(self, leaf: bytes) -> None:
        self.levels[0].append(leaf)
        self._build_from(len(self.levels[0]) - 1)

    def _build_from(self, index: int) -> None:
        h = 0
        while True:
            level = self.levels[h]
            if len(level) < 2:
                return
            if len(self.levels) == h + 1:
                self.levels.append([])
            parent = self.levels[h + 1]
            first = min(index // 2, len(parent))
            del parent[first:]
            for i in range(first, len(level) // 2):
                parent.append(node_hash(level[2 * i], level[2 * i + 1]))
            index = first
            h += 1

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH of leaves [start, end); `start` is aligned to the split the recursion makes."""
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:
            return self.levels[n.bit_length() - 1][start // n]
        k = _split(n)
        return node_hash(self._subtree(start, start + k), self._subtree(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first `size` leaves (all by default)."""
        size = len(self) if size is None else size
        if not 0 <= size <= len(self):
            raise ValueError(f"tree size {size} outside 0..{len(self)}")
        return self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[size]) of RFC 6962 2.1.1."""
        size = len(self) if size is None else size
        if not 0 <= index < size <= len(self):
            raise ValueError(f"no leaf {index} in a tree of size {size}")
        return self._path(index, 0, size)

    def _path(self, m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*self._path(m, start, start + k), self._subtree(start + k, end)]
        return [*self._path(m - k, start + k, end), self._subtree(start, start + k)]

    def consistency_proof(self, old_size: int, size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[size]) of RFC 6962 2.1.2 (empty when old_size is 0 or size)."""
        size = len(self) if size is None else size
        if not 0 <= old_size <= size <= len(self):
            raise ValueError(f"no consistency proof from size {old_size} to {size}")
        if old_size in (0, size):
            return []
        return self._subproof(old_size, 0, size, True)

    def _subproof(self, m: int, start: int, end: int, complete: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if complete else [self._subtree(start, end)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, start, start + k, complete), self._subtree(start + k, end)]
        return [*self._subproof(m - k, start + k, end, False), self._subtree(start, start + k)]


class CompactRange:
    """The root of a growing log in O(log n) memory: one hash per set bit of the size."""

    __slots__ = ("_peaks", "size")

    def __init__(self) -> None:
        self._peaks: list[bytes] = []  # complete subtrees, largest first
        self.size = 0

    def append(self, leaf: bytes) -> None:
        self._peaks.append(leaf)
        self.size += 1
        n = self.size
        while n & 1 == 0:  # every trailing zero bit of the new size is a merge
            right = self._peaks.pop()
            self._peaks[-1] = node_hash(self._peaks[-1], right)
            n >>= 1

    def root(self) -> bytes:
        if not self._peaks:
            return EMPTY_ROOT
        acc = self._peaks[-1]
        for peak in reversed(self._peaks[:-1]):
            acc = node_hash(peak, acc)
        return acc


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 2.1.3.2); ValueError when it cannot
    be a proof for (index, size) at all."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if len(p) != HASH_SIZE:
            raise ValueError("proof element of the wrong length")
        if sn == 0:
            raise ValueError("proof longer than the tree is high")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("proof shorter than the tree is high")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether the audit path proves the leaf at `index` is in the tree of `size` with this root."""
    try:
        return root_from_inclusion(index, size, leaf, proof) == root
    except ValueError:
        return False


def verify_consistency(
    old_size: int, size: int, old_root: bytes, root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2: is the tree (size, root) an append-only extension of
    (old_size, old_root)?"""
    if not 0 <= old_size <= size:
        return False
    if old_size == size:
        return not proof and old_root == root
    if old_size == 0:
        return not proof  # everything extends the empty tree
    if any(len(p) != HASH_SIZE for p in proof) or not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == root and sn == 0
