"""Checking the whole log: every entry against its leaf, every checkpoint's signature and root.

The entries are re-encoded and re-hashed from their stored fields, so nothing the store says
about hashes is taken on trust; the leaf kept in each row serves only to name *which* entry
changed. When an attacker rewrote that leaf too, a signed checkpoint's root still exposes the
change, and the stored tree's hashes, where they still hash up to that signed root, lead down
to the altered entry (a hash that hashes up to a signed root is authentic). Entries appended
after the latest checkpoint are protected from the next one on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lgsp_adapter.audit.checkpoint import Checkpoint
from lgsp_adapter.audit.entry import canonical_entry
from lgsp_adapter.audit.signing import NoteError, Verifier
from lgsp_adapter.audit.store import AuditStore, StoredCheckpoint
from lgsp_adapter.audit.tree import load_frontier, root_at
from lgsp_adapter.merkle import Frontier, cover, fold, leaf_hash, node_hash, root

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the log; ``entry`` is set when an entry is at fault."""

    message: str
    entry: int | None = None
    checkpoint: int | None = None


@dataclass
class Report:
    """What ``verify_log`` checked and found."""

    size: int = 0
    archived_below: int = 0
    entries_checked: int = 0
    checkpoints_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing wrong."""
        return not self.problems

    @property
    def first_bad_entry(self) -> int | None:
        """The lowest entry index any problem names."""
        named = [p.entry for p in self.problems if p.entry is not None]
        return min(named) if named else None

    def summary(self) -> str:
        """One line for people."""
        if self.ok:
            return (
                f"the log verifies: {self.entries_checked:,} entries, "
                f"{self.checkpoints_checked:,} signed checkpoints, tree size {self.size:,}"
                + (
                    f" (entries below {self.archived_below:,} archived)"
                    if self.archived_below
                    else ""
                )
            )
        first = self.first_bad_entry
        where = f"first bad entry: {first}" if first is not None else self.problems[0].message
        return f"the log does NOT verify ({len(self.problems)} problems; {where})"


async def verify_log(
    store: AuditStore, verifier: Verifier, progress: Progress | None = None
) -> Report:
    """Recompute the log from its entries and check it against every signed checkpoint."""
    report = Report()
    signed = _open_checkpoints(await store.checkpoints(), verifier, report)
    report.checkpoints_checked = len(signed)
    report.size = await store.tree_size()
    start = max((a.end for a in await store.archives()), default=0)
    report.archived_below = start
    frontier = await _archived_prefix(store, start, signed, report)
    due = sorted(size for size in signed if size > start)
    leaves = bytearray()  # recomputed leaves from ``start`` on, to locate a change
    expected = start
    async for stored in store.stored_entries(start):
        if stored.index != expected:
            missing = list(range(expected, min(stored.index, report.size)))
            for index in missing[:1]:
                report.problems.append(
                    Problem(f"entry {index} is missing ({len(missing)} in a row)", entry=index)
                )
            found = await store.nodes([(0, i) for i in missing])
            for index in missing:  # carry on with the stored leaves, to check what follows
                if expected != index:
                    break
                leaf = found.get((0, index), b"\0" * 32)
                leaves += leaf
                frontier.append(leaf)
                expected += 1
                await _reached(store, frontier, due, signed, report, leaves, start)
            if stored.index != expected:
                report.problems.append(
                    Problem(f"entry {stored.index} is out of order", entry=stored.index)
                )
                break
        leaf = leaf_hash(canonical_entry(stored.fields))
        if stored.leaf is None:
            report.problems.append(
                Problem(
                    f"entry {stored.index} has no leaf hash",
                    entry=stored.index,
                )
            )
        elif stored.leaf != leaf:
            report.problems.append(
                Problem(
                    f"entry {stored.index} does not match its leaf hash: "
                    "changed, inserted or moved",
                    entry=stored.index,
                )
            )
        leaves += leaf
        frontier.append(leaf)
        expected += 1
        report.entries_checked += 1
        if progress is not None and report.entries_checked % 10_000 == 0:
            progress(report.entries_checked)
        await _reached(store, frontier, due, signed, report, leaves, start)
    if progress is not None:
        progress(report.entries_checked)
    if expected < report.size:
        report.problems.append(
            Problem(
                f"entries {expected} to {report.size - 1} are missing from the end",
                entry=expected,
            )
        )
    beyond = [size for size in due if size > expected]
    if beyond:
        report.problems.append(
            Problem(
                f"entries {expected} to {beyond[-1] - 1} are missing from the end: "
                f"checkpoint {beyond[-1]} signed them",
                entry=expected,
                checkpoint=beyond[-1],
            )
        )
    latest = max((size for size in signed if start < size <= expected), default=None)
    if latest is not None:
        # Proofs come from the stored tree: it must still hash up to what was signed.
        try:
            stored_root = await root_at(store, latest)
        except LookupError:
            stored_root = b""
        if stored_root != signed[latest].root:
            report.problems.append(
                Problem(
                    f"the tree's stored hashes disagree with checkpoint {latest}: "
                    "proofs against it would fail",
                    checkpoint=latest,
                )
            )
    return report


def _open_checkpoints(
    rows: list[StoredCheckpoint], verifier: Verifier, report: Report
) -> dict[int, Checkpoint]:
    signed: dict[int, Checkpoint] = {}
    for row in rows:
        try:
            checkpoint = Checkpoint.open(row.note, verifier)
        except NoteError as exc:
            report.problems.append(Problem(f"checkpoint {row.size}: {exc}", checkpoint=row.size))
            continue
        if (checkpoint.size, checkpoint.root) != (row.size, row.root):
            report.problems.append(
                Problem(
                    f"checkpoint {row.size}: its stored size or root differs from its signed note",
                    checkpoint=row.size,
                )
            )
            continue
        signed[row.size] = checkpoint
    return signed


async def _archived_prefix(
    store: AuditStore, start: int, signed: dict[int, Checkpoint], report: Report
) -> Frontier:
    """The tree's edge where the entries still in the store begin, checked against the signed
    checkpoints that archived entries fall under."""
    try:
        frontier = await load_frontier(start, store.nodes)
    except LookupError as exc:
        report.problems.append(Problem(f"the tree below the archive boundary is damaged: {exc}"))
        return Frontier()
    if start and start not in signed:
        report.problems.append(Problem(f"no signed checkpoint at the archive boundary {start}"))
    for size, checkpoint in signed.items():
        if size > start:
            continue
        try:
            prefix_root = (await load_frontier(size, store.nodes)).root()
        except LookupError:
            prefix_root = b""
        if prefix_root != checkpoint.root:
            report.problems.append(
                Problem(
                    f"checkpoint {size} (archived entries) does not match the tree's hashes",
                    checkpoint=size,
                )
            )
    return frontier


async def _reached(
    store: AuditStore,
    frontier: Frontier,
    due: list[int],
    signed: dict[int, Checkpoint],
    report: Report,
    leaves: bytearray,
    start: int,
) -> None:
    """When the recomputed tree reaches a checkpoint's size, compare roots."""
    if not due or frontier.size != due[0]:
        return
    size = due.pop(0)
    if frontier.root() == signed[size].root:
        return
    if any(p.entry is not None and p.entry < size for p in report.problems):
        report.problems.append(
            Problem(f"checkpoint {size}: its root does not match the entries", checkpoint=size)
        )
        return
    report.problems.append(await _locate(store, size, signed[size].root, leaves, start))


async def _locate(
    store: AuditStore, size: int, signed_root: bytes, leaves: bytearray, start: int
) -> Problem:
    """Find the first entry below ``size`` whose recomputed leaf differs from the signed tree,
    following stored hashes only while they hash up to the signed root."""

    def recomputed(level: int, index: int) -> bytes:
        lo, hi = max(index << level, start) - start, ((index + 1) << level) - start
        return root([bytes(leaves[i * 32 : i * 32 + 32]) for i in range(lo, hi)])

    keys = cover(0, size)
    stored = await store.nodes(keys)
    if len(stored) != len(keys) or fold([stored[k] for k in keys]) != signed_root:
        return Problem(
            f"checkpoint {size}: its root does not match the entries, and the stored tree was "
            "rewritten too, so the altered entry cannot be named",
            checkpoint=size,
        )
    for level, index in keys:
        expected = stored[(level, index)]
        if (index + 1) << level <= start or recomputed(level, index) == expected:
            continue
        # ``expected`` is authentic (it hashes up to the signed root); go down while its stored
        # children hash to it, into the first child whose recomputed hash differs.
        while level > 0:
            children = [(level - 1, 2 * index), (level - 1, 2 * index + 1)]
            found = await store.nodes(children)
            if len(found) < 2 or node_hash(found[children[0]], found[children[1]]) != expected:
                lo, hi = max(index << level, start), min((index + 1) << level, size)
                return Problem(
                    f"entries {lo} to {hi - 1}: one was altered since checkpoint {size} (the "
                    "stored tree was rewritten too, so it cannot be narrowed further)",
                    entry=lo,
                    checkpoint=size,
                )
            level -= 1
            left = children[0]
            if (left[1] + 1) << level > start and recomputed(*left) != found[left]:
                index, expected = left[1], found[left]
            else:
                index, expected = children[1][1], found[children[1]]
        return Problem(
            f"entry {index} was altered: it differs from the one signed in checkpoint {size}",
            entry=index,
            checkpoint=size,
        )
    return Problem(f"checkpoint {size}: its root does not match the entries", checkpoint=size)
