"""The log's tree as a store keeps it: appending leaves, and roots and proofs from stored
subtrees.

The writer caches the tree's right edge between transactions and checks it against the store's
size inside each one, so another process appending to the same store (an operator's command, a
second replica on PostgreSQL) is noticed and the edge reloaded, never built upon stale.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from lgsp_adapter.audit.entry import AuditEntry
from lgsp_adapter.audit.store import AuditStore
from lgsp_adapter.merkle import (
    Frontier,
    Node,
    consistency_ranges,
    cover,
    fold,
    inclusion_ranges,
    leaf_hash,
)

NodeLoader = Callable[[Sequence[Node]], Awaitable[dict[Node, bytes]]]
NodeRow = tuple[int, int, bytes]  # (level, index, hash)


class TreeWriter:
    """Turns entries into the rows a store inserts, in the transaction that appends them."""

    def __init__(self) -> None:
        self._frontier: Frontier | None = None
        self._last_leaf: bytes | None = None

    async def extend(
        self, size: int, last_leaf: bytes | None, load: NodeLoader, entries: Sequence[AuditEntry]
    ) -> tuple[list[tuple[int, dict[str, str | None]]], list[NodeRow]]:
        """Entries as (index, fields) and the subtrees they complete, for a stored tree of
        ``size`` leaves whose last is ``last_leaf``, both read inside the write transaction.

        The cached edge is used only when both match it: a rolled-back transaction, or another
        writer that appended as many entries, is noticed and the edge reloaded."""
        if self._frontier is None or self._frontier.size != size or self._last_leaf != last_leaf:
            self._frontier = await load_frontier(size, load)
        frontier = self._frontier
        rows: list[tuple[int, dict[str, str | None]]] = []
        nodes: list[NodeRow] = []
        for entry in entries:
            fields = entry.fields()
            rows.append((frontier.size, fields))
            leaf = leaf_hash(entry.canonical())
            nodes.extend(frontier.append(leaf))
            self._last_leaf = leaf
        return rows, nodes

    def forget(self) -> None:
        """Drop the cached edge: the next append reloads it from the store."""
        self._frontier = None


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
    return await _range_roots(store, inclusion_ranges(index, size))


async def consistency_path(store: AuditStore, old_size: int, size: int) -> list[bytes]:
    """The consistency proof between the stored tree's first ``old_size`` and ``size`` leaves."""
    return await _range_roots(store, consistency_ranges(old_size, size))
