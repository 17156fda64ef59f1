"""The log's tree as a store keeps it: built from the entries' leaves when a checkpoint is
signed, and roots and proofs answered from its stored subtrees."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from lgsp_adapter.audit.merkle import (
    Frontier,
    Node,
    consistency_ranges,
    cover,
    fold,
    inclusion_ranges,
)
from lgsp_adapter.audit.store import AuditStore

NodeLoader = Callable[[Sequence[Node]], Awaitable[dict[Node, bytes]]]
NodeRow = tuple[int, int, bytes]  # (level, index, hash)


async def extend(
    built: int, load: NodeLoader, leaves: Sequence[tuple[int, bytes]]
) -> tuple[list[NodeRow], bytes]:
    """The subtrees to store so a stored tree of ``built`` leaves takes in ``leaves`` (index
    and hash, in order, from ``built`` on), and the new root.

    Appending an entry stores only its leaf, in its row, to keep the exchange path to one
    insert; the tree's other hashes are built here, in bulk, when a checkpoint is signed."""
    frontier = await load_frontier(built, load)
    rows: list[NodeRow] = []
    for index, leaf in leaves:
        if index != frontier.size:
            raise LookupError(f"entry {frontier.size} is missing: the tree cannot take it in")
        rows.extend(frontier.append(leaf))
    return rows, frontier.root()


async def load_frontier(size: int, load: NodeLoader) -> Frontier:
    """The right edge of the stored tree of ``size`` leaves."""
    keys = Frontier.nodes_of(size)
    found = await load(keys)
    missing = [key for key in keys if key not in found]
    if missing:
        raise LookupError(f"the store's tree lacks subtrees {missing} of a tree of {size}")
    return Frontier(size, [found[key] for key in keys])


async def root_at(store: AuditStore, size: int) -> bytes:
    """The root of the stored tree's first ``size`` leaves (from stored subtrees)."""
    return (await load_frontier(size, store.nodes)).root()


async def _range_roots(store: AuditStore, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    covers = [cover(lo, hi) for lo, hi in ranges]
    wanted = sorted({node for nodes in covers for node in nodes})
    found = await store.nodes(wanted)
    missing = [node for node in wanted if node not in found]
    if missing:
        raise LookupError(f"the store's tree lacks subtrees {missing}")
    return [fold([found[node] for node in nodes]) for nodes in covers]


async def inclusion_path(store: AuditStore, index: int, size: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the stored tree of ``size`` leaves."""
    return (await inclusion_paths(store, [index], size))[index]


async def inclusion_paths(
    store: AuditStore, indexes: Sequence[int], size: int
) -> dict[int, list[bytes]]:
    """The audit paths of many leaves, from one round of lookups (a bundle's entries)."""
    ranges = {index: inclusion_ranges(index, size) for index in indexes}
    flat = [r for index in indexes for r in ranges[index]]
    roots = iter(await _range_roots(store, flat))
    return {index: [next(roots) for _ in ranges[index]] for index in indexes}


async def consistency_path(store: AuditStore, old_size: int, size: int) -> list[bytes]:
    """The consistency proof between the stored tree's first ``old_size`` and ``size`` leaves."""
    return await _range_roots(store, consistency_ranges(old_size, size))
