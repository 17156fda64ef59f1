"""RFC 9162's proofs checked by their definitions, written apart from ``lgsp_adapter.audit.merkle``.

The module under test verifies with the RFC's iterative algorithms (2.1.3.2, 2.1.4.2); this one
rebuilds the roots by recursing over the definitions of PATH and SUBPROOF (2.1.3.1, 2.1.4.1)
instead, so a mistake shared by our maker and our verifier would not also be made here.
"""

from __future__ import annotations

import hashlib


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _k(n: int) -> int:
    k = 1
    while 2 * k < n:
        k *= 2
    return k


def mth(entries: list[bytes]) -> bytes:
    """MTH(D[n]) of entries (not leaf hashes)."""
    if not entries:
        return hashlib.sha256(b"").digest()
    if len(entries) == 1:
        return _leaf(entries[0])
    k = _k(len(entries))
    return _node(mth(entries[:k]), mth(entries[k:]))


def inclusion_holds(entry: bytes, m: int, n: int, path: list[bytes], root: bytes) -> bool:
    """Whether PATH(m, D[n]) = ``path`` puts ``entry`` under ``root``."""
    rest = list(path)

    def rebuild(m: int, n: int) -> bytes:
        if n == 1:
            return _leaf(entry)
        if not rest:
            raise ValueError("path too short")
        sibling = rest.pop()
        k = _k(n)
        if m < k:
            return _node(rebuild(m, k), sibling)
        return _node(sibling, rebuild(m - k, n - k))

    if not 0 <= m < n:
        return False
    try:
        return rebuild(m, n) == root and not rest
    except ValueError:
        return False


def consistency_holds(m: int, n: int, old: bytes, new: bytes, proof: list[bytes]) -> bool:
    """Whether PROOF(m, D[n]) = ``proof`` ties the tree of ``old`` to the tree of ``new``."""
    rest = list(proof)

    def rebuild(m: int, n: int, complete: bool) -> tuple[bytes, bytes]:
        if m == n:
            if complete:
                return old, old
            if not rest:
                raise ValueError("proof too short")
            top = rest.pop()
            return top, top
        if not rest:
            raise ValueError("proof too short")
        sibling = rest.pop()
        k = _k(n)
        if m <= k:
            before, after = rebuild(m, k, complete)
            return before, _node(after, sibling)
        before, after = rebuild(m - k, n - k, False)
        return _node(sibling, before), _node(sibling, after)

    if not 0 < m <= n:
        return False
    try:
        before, after = rebuild(m, n, True)
    except ValueError:
        return False
    return before == old and after == new and not rest
