"""The RFC 9162 Merkle tree: the reference vectors of Certificate Transparency, and every proof
checked by the RFC's own verification algorithms."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lgsp_adapter.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_ranges,
    cover,
    fold,
    inclusion_ranges,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)


def inclusion_proof(index: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) over a list of leaves: what a store answers from its stored subtrees."""
    return [root(leaves[lo:hi]) for lo, hi in inclusion_ranges(index, len(leaves))]


def consistency_proof(old_size: int, leaves: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) over a list of leaves."""
    return [root(leaves[lo:hi]) for lo, hi in consistency_ranges(old_size, len(leaves))]


# The eight inputs and tree roots of Certificate Transparency's reference test data.
REFERENCE_INPUTS = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
REFERENCE_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
LEAVES = [leaf_hash(entry) for entry in REFERENCE_INPUTS]


def test_the_empty_tree() -> None:
    assert root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_the_certificate_transparency_reference(size: int) -> None:
    assert root(LEAVES[:size]).hex() == REFERENCE_ROOTS[size - 1]


def tree(size: int) -> list[bytes]:
    return [leaf_hash(f"entry {i}".encode()) for i in range(size)]


@pytest.mark.parametrize("size", range(1, 34))
def test_every_inclusion_proof_verifies_and_no_other(size: int) -> None:
    leaves = tree(size)
    top = root(leaves)
    for index in range(size):
        proof = inclusion_proof(index, leaves)
        assert verify_inclusion(leaves[index], index, size, proof, top)
        assert not verify_inclusion(leaf_hash(b"forged"), index, size, proof, top)
        if size > 1:
            assert not verify_inclusion(leaves[index], (index + 1) % size, size, proof, top)
        if proof:
            bent = [hashlib.sha256(proof[0]).digest(), *proof[1:]]
            assert not verify_inclusion(leaves[index], index, size, bent, top)


@pytest.mark.parametrize("new_size", range(1, 34))
def test_every_consistency_proof_verifies_and_no_other(new_size: int) -> None:
    leaves = tree(new_size)
    new_root = root(leaves)
    for old_size in range(1, new_size + 1):
        old_root = root(leaves[:old_size])
        proof = consistency_proof(old_size, leaves)
        assert verify_consistency(old_size, new_size, old_root, new_root, proof)
        rewritten = root([leaf_hash(b"rewritten"), *leaves[1:old_size]])
        if old_size < new_size:
            assert not verify_consistency(old_size, new_size, rewritten, new_root, proof)
            assert not verify_consistency(old_size, new_size, old_root, new_root, proof[:-1])


@given(st.lists(st.binary(max_size=20), min_size=1, max_size=70), st.data())
def test_proofs_over_arbitrary_entries(entries: list[bytes], data: st.DataObject) -> None:
    leaves = [leaf_hash(e) for e in entries]
    index = data.draw(st.integers(0, len(leaves) - 1))
    old_size = data.draw(st.integers(1, len(leaves)))
    assert verify_inclusion(
        leaves[index], index, len(leaves), inclusion_proof(index, leaves), root(leaves)
    )
    assert verify_consistency(
        old_size,
        len(leaves),
        root(leaves[:old_size]),
        root(leaves),
        consistency_proof(old_size, leaves),
    )


def test_proofs_outside_the_tree_are_refused() -> None:
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_proof(3, tree(3))
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(0, tree(3))
    assert not verify_inclusion(LEAVES[0], 5, 5, [], EMPTY_ROOT)
    assert not verify_consistency(4, 3, EMPTY_ROOT, EMPTY_ROOT, [])


@given(st.integers(min_value=0, max_value=100))
def test_a_growing_frontier_keeps_every_perfect_subtree_and_the_root(size: int) -> None:
    leaves = [leaf_hash(str(i).encode()) for i in range(size)]
    frontier = Frontier()
    stored: dict[tuple[int, int], bytes] = {}
    for index, leaf in enumerate(leaves):
        completed = frontier.append(leaf)
        assert completed[0] == (0, index, leaf)
        for level, node, digest in completed:
            assert digest == root(leaves[node << level : (node + 1) << level])
            stored[(level, node)] = digest
    assert frontier.root() == root(leaves)
    # Any proof can be answered from the stored subtrees alone, and a frontier reloads from them.
    reloaded = Frontier(size, [stored[n] for n in Frontier.nodes_of(size)])
    assert reloaded.root() == root(leaves)
    for old_size in range(1, size + 1):
        for lo, hi in consistency_ranges(old_size, size):
            assert fold([stored[n] for n in cover(lo, hi)]) == root(leaves[lo:hi])
    for index in range(size):
        for lo, hi in inclusion_ranges(index, size):
            assert fold([stored[n] for n in cover(lo, hi)]) == root(leaves[lo:hi])


def test_a_frontier_refuses_the_wrong_number_of_edge_hashes() -> None:
    with pytest.raises(ValueError, match="edge subtrees"):
        Frontier(3, [EMPTY_ROOT])
