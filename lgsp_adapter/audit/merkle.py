"""The Merkle tree of RFC 9162 (Certificate Transparency 2.0), for a log auditors can verify.

Leaves are entries' bytes, hashed ``SHA-256(0x00 || entry)``; interior nodes
``SHA-256(0x01 || left || right)``. A tree of n leaves splits at the largest power of two
smaller than n. An *inclusion proof* shows an entry is in a tree of a given size and root; a
*consistency proof* shows a larger tree only appended to a smaller one. The verifiers follow the
RFC's algorithms (sections 2.1.3.2 and 2.1.4.2) step by step, so any RFC 9162 implementation
checks what this module proves, and this module checks theirs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    """The hash of one log entry as a leaf."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH: the root hash of the tree over ``leaves`` (leaf hashes, in order)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root(leaves[:k]), root(leaves[k:]))


Range = tuple[int, int]  # leaves [lo, hi) whose tree root is one element of a proof
Node = tuple[int, int]  # (level, index): the perfect subtree over leaves [index·2^level, +2^level)


def inclusion_ranges(index: int, tree_size: int) -> list[Range]:
    """The leaf ranges whose roots make PATH(index, D[tree_size]), in proof order."""
    if not 0 <= index < tree_size:
        raise ValueError(f"leaf {index} is not in a tree of {tree_size}")
    return _path(index, 0, tree_size)


def _path(m: int, lo: int, hi: int) -> list[Range]:
    if hi - lo == 1:
        return []
    k = _split(hi - lo)
    if m < k:
        return [*_path(m, lo, lo + k), (lo + k, hi)]
    return [*_path(m - k, lo + k, hi), (lo, lo + k)]


def consistency_ranges(old_size: int, tree_size: int) -> list[Range]:
    """The leaf ranges whose roots make PROOF(old_size, D[tree_size]), in proof order."""
    if not 0 < old_size <= tree_size:
        raise ValueError(f"no consistency proof from size {old_size} to {tree_size}")
    return _subproof(old_size, 0, tree_size, complete=True)


def _subproof(m: int, lo: int, hi: int, *, complete: bool) -> list[Range]:
    if m == hi - lo:
        return [] if complete else [(lo, hi)]
    k = _split(hi - lo)
    if m <= k:
        return [*_subproof(m, lo, lo + k, complete=complete), (lo + k, hi)]
    return [*_subproof(m - k, lo + k, hi, complete=False), (lo, lo + k)]


def cover(lo: int, hi: int) -> list[Node]:
    """The perfect subtrees that make up leaves [lo, hi), left to right.

    For the ranges of this tree's proofs and for any prefix [0, n), their roots folded from the
    right give the range's root: a store that keeps every perfect subtree's hash answers any
    proof with a few lookups instead of rehashing the log."""
    nodes: list[Node] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        while lo % (1 << level):
            level -= 1
        nodes.append((level, lo >> level))
        lo += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """The root over consecutive perfect subtrees (a ``cover``), given their hashes in order."""
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


class Frontier:
    """The right edge of a growing tree: the hashes of the perfect subtrees covering [0, size).

    Appending a leaf completes at most log2(n) subtrees, one on average; ``append`` returns
    them so a store can keep every perfect subtree's hash as the log grows."""

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        nodes = cover(0, size)
        if len(nodes) != len(hashes):
            raise ValueError(f"a tree of {size} leaves has {len(nodes)} edge subtrees")
        self.size = size
        self._levels = [level for level, _ in nodes]
        self._hashes = list(hashes)

    @staticmethod
    def nodes_of(size: int) -> list[Node]:
        """Which stored subtrees ``Frontier(size, ...)`` needs."""
        return cover(0, size)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; returns the subtrees it completed as (level, index, hash), itself
        first."""
        level, index, current = 0, self.size, leaf
        completed = [(level, index, current)]
        while index & 1:  # a right child: its left sibling is the last edge subtree
            self._levels.pop()
            current = node_hash(self._hashes.pop(), current)
            level, index = level + 1, index >> 1
            completed.append((level, index, current))
        self._levels.append(level)
        self._hashes.append(current)
        self.size += 1
        return completed

    def root(self) -> bytes:
        """MTH of the tree so far."""
        return fold(self._hashes)

    def hashes(self) -> list[bytes]:
        """The edge subtrees' hashes, left to right (what ``nodes_of(size)`` names)."""
        return list(self._hashes)


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    """RFC 9162, 2.1.3.2: whether ``proof`` shows ``leaf`` at ``index`` under ``expected_root``."""
    # Python's bit operations on a negative index would walk a valid-looking path.
    if not 0 <= index < tree_size:
        return False
    fn, sn = index, tree_size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162, 2.1.4.2: whether ``proof`` shows the tree of ``new_size`` and ``new_root``
    appends to the tree of ``old_size`` and ``old_root``."""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:  # the proof of a tree against itself is empty (SUBPROOF(m, D[m]))
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
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
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
