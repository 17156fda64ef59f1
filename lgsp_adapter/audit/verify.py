"""Checking the whole log: every entry against its leaf, every checkpoint's signature and root,
the stored tree that proofs come from, and the archives that hold what left the store.

The entries are re-encoded and re-hashed from their stored fields, so nothing the store says
about hashes is taken on trust; the leaf kept in each row serves only to name *which* entry
changed. When an attacker rewrote that leaf too, a signed checkpoint's root still exposes the
change, and the stored tree's hashes, where they still hash up to that signed root, lead down
to the altered entry (a hash that hashes up to a signed root is authentic). Entries appended
after the latest checkpoint are protected from the next one on.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lgsp_adapter.audit.archive import verify_archive
from lgsp_adapter.audit.checkpoint import Checkpoint
from lgsp_adapter.audit.entry import canonical_entry
from lgsp_adapter.audit.proofs import BadEvidence
from lgsp_adapter.audit.query import AuditQuery
from lgsp_adapter.audit.signing import NoteError, Verifier
from lgsp_adapter.audit.store import ArchiveRecord, AuditStore, StoredCheckpoint
from lgsp_adapter.audit.tree import load_frontier, root_at
from lgsp_adapter.merkle import Frontier, Node, cover, fold, leaf_hash, node_hash, root

Progress = Callable[[int], None]
_NODE_BATCH = 16_000


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
    archives_checked: int = 0
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
            archived = (
                f" (entries below {self.archived_below:,} archived;"
                f" archive files checked: {self.archives_checked})"
                if self.archived_below
                else ""
            )
            return (
                f"the log verifies: {self.entries_checked:,} entries, "
                f"{self.checkpoints_checked:,} signed checkpoints, tree size {self.size:,}"
                + archived
            )
        first = self.first_bad_entry
        where = f"first bad entry: {first}" if first is not None else self.problems[0].message
        return f"the log does NOT verify ({len(self.problems)} problems; {where})"


async def verify_log(
    store: AuditStore,
    verifier: Verifier,
    progress: Progress | None = None,
    archive_dir: Path | None = None,
) -> Report:
    """Recompute the log from its entries and check it against every signed checkpoint, and
    each archive against its file in ``archive_dir``."""
    report = Report()
    signed = _open_checkpoints(await store.checkpoints(), verifier, report)
    report.checkpoints_checked = len(signed)
    report.size = await store.tree_size()
    archives = await store.archives()
    start = archives[-1].end if archives else 0
    report.archived_below = start
    await _check_archives(store, archives, archive_dir, verifier, report)
    run = _Run(store, signed, report, start, await _archived_prefix(store, start, signed, report))
    await run.entries(progress)
    await run.tail()
    return report


class _Run:
    """One pass over the entries still in the store."""

    def __init__(
        self,
        store: AuditStore,
        signed: dict[int, Checkpoint],
        report: Report,
        start: int,
        frontier: Frontier,
    ) -> None:
        self.store = store
        self.signed = signed
        self.report = report
        self.start = start
        self.frontier = frontier
        self.due = sorted(size for size in signed if size > start)
        # The stored tree holds every subtree below the largest checkpoint (built when signed).
        self.built = max(signed, default=0)
        self.leaves = bytearray()  # recomputed leaves from ``start`` on, to locate a change
        self.pending: list[tuple[int, int, bytes]] = []
        self.tree_fault = False

    async def entries(self, progress: Progress | None) -> None:
        report = self.report
        async for stored in self.store.stored_entries(self.start):
            if stored.index != self.frontier.size and not await self._gap(stored.index):
                return
            leaf = leaf_hash(canonical_entry(stored.fields))
            if stored.leaf != leaf:
                report.problems.append(
                    Problem(
                        f"entry {stored.index} does not match its leaf hash: "
                        "changed, inserted or moved",
                        entry=stored.index,
                    )
                )
            await self._take(leaf)
            report.entries_checked += 1
            if progress is not None and report.entries_checked % 10_000 == 0:
                progress(report.entries_checked)
        if progress is not None:
            progress(report.entries_checked)

    async def _gap(self, index: int) -> bool:
        """Entries missing before ``index``: report them, carry on with the stored tree's
        leaves for them; False if the log cannot be followed past them."""
        expected = self.frontier.size
        if index < expected:
            self.report.problems.append(Problem(f"entry {index} is out of order", entry=index))
            return False
        missing = list(range(expected, index))
        self.report.problems.append(
            Problem(f"entry {expected} is missing ({len(missing)} in a row)", entry=expected)
        )
        found = await self.store.nodes([(0, i) for i in missing])
        for number in missing:
            await self._take(found.get((0, number), b"\0" * 32), checked=False)
        return True

    async def _take(self, leaf: bytes, *, checked: bool = True) -> None:
        self.leaves += leaf
        for level, index, digest in self.frontier.append(leaf):
            if checked and (index + 1) << level <= self.built:
                self.pending.append((level, index, digest))
        if len(self.pending) >= _NODE_BATCH:
            await self._compare_nodes()
        await self._reached()

    async def _compare_nodes(self) -> None:
        """The stored tree's hashes against the recomputed ones: proofs come from them."""
        batch, self.pending = self.pending, []
        if self.tree_fault or not batch:
            return
        # The batch holds consecutive subtrees of each level: one range read per level.
        spans: dict[int, tuple[int, int]] = {}
        for level, index, _ in batch:
            lo, hi = spans.get(level, (index, index))
            spans[level] = (min(lo, index), max(hi, index))
        found = {
            level: await self.store.node_range(level, lo, hi + 1)
            for level, (lo, hi) in spans.items()
        }
        for level, index, digest in sorted(batch, key=lambda node: node[1] << node[0]):
            if found[level].get(index) == digest:
                continue
            lo, hi = index << level, (index + 1) << level
            if any(p.entry is not None and lo <= p.entry < hi for p in self.report.problems):
                continue  # explained by an entry already named
            self.tree_fault = True  # one is enough: the rest would repeat it
            self.report.problems.append(
                Problem(
                    f"the tree's stored hash over entries {lo} to {hi - 1} disagrees with them: "
                    "proofs for them would fail"
                )
            )
            return

    async def _reached(self) -> None:
        """When the recomputed tree reaches a checkpoint's size, compare roots."""
        if not self.due or self.frontier.size != self.due[0]:
            return
        size = self.due.pop(0)
        if self.frontier.root() == self.signed[size].root:
            return
        if any(p.entry is not None and p.entry < size for p in self.report.problems):
            self.report.problems.append(
                Problem(f"checkpoint {size}: its root does not match the entries", checkpoint=size)
            )
            return
        self.report.problems.append(await self._locate(size))

    async def tail(self) -> None:
        """What the end of the pass tells: entries missing at the end, the stored tree."""
        await self._compare_nodes()
        report, expected = self.report, self.frontier.size
        if expected < report.size:
            report.problems.append(
                Problem(
                    f"entries {expected} to {report.size - 1} are missing from the end",
                    entry=expected,
                )
            )
        beyond = [size for size in self.due if size > expected]
        if beyond:
            report.problems.append(
                Problem(
                    f"entries {expected} to {beyond[-1] - 1} are missing from the end: "
                    f"checkpoint {beyond[-1]} signed them",
                    entry=expected,
                    checkpoint=beyond[-1],
                )
            )
        latest = max((s for s in self.signed if self.start < s <= expected), default=None)
        if latest is None or self.tree_fault:
            return
        try:
            stored_root = await root_at(self.store, latest)
        except LookupError:
            stored_root = b""
        if stored_root != self.signed[latest].root:
            report.problems.append(
                Problem(
                    f"the tree's stored hashes disagree with checkpoint {latest}: "
                    "proofs against it would fail",
                    checkpoint=latest,
                )
            )

    def _recomputed(self, level: int, index: int) -> bytes:
        lo, hi = (index << level) - self.start, ((index + 1) << level) - self.start
        return root([bytes(self.leaves[i * 32 : i * 32 + 32]) for i in range(lo, hi)])

    async def _locate(self, size: int) -> Problem:
        """The first entry below ``size`` whose recomputed leaf differs from the signed tree,
        found by following stored hashes only while they hash up to the signed root."""
        keys = cover(0, size)
        stored = await self.store.nodes(keys)
        if len(stored) != len(keys) or fold([stored[k] for k in keys]) != self.signed[size].root:
            return Problem(
                f"checkpoint {size}: its root does not match the entries, and the stored tree "
                "was rewritten too, so the altered entry cannot be named",
                checkpoint=size,
            )
        for node in keys:
            found = await self._search(node, stored[node], size)
            if found is not None:
                return found
        return Problem(f"checkpoint {size}: its root does not match the entries", checkpoint=size)

    async def _search(self, node: Node, authentic: bytes, size: int) -> Problem | None:
        """Within the subtree ``node`` whose hash ``authentic`` is known good, the first
        altered entry at or above ``start``; None if there is none."""
        level, index = node
        lo, hi = index << level, (index + 1) << level
        if hi <= self.start:
            return None  # archived: held by the archive, checked against its file
        if lo >= self.start and self._recomputed(level, index) == authentic:
            return None
        if level == 0:
            return Problem(
                f"entry {index} was altered: it differs from the one signed in checkpoint {size}",
                entry=index,
                checkpoint=size,
            )
        children = [(level - 1, 2 * index), (level - 1, 2 * index + 1)]
        found = await self.store.nodes(children)
        if len(found) < 2 or node_hash(found[children[0]], found[children[1]]) != authentic:
            first = max(lo, self.start)
            return Problem(
                f"entries {first} to {min(hi, size) - 1}: one was altered since checkpoint {size} "
                "(the stored tree was rewritten too, so it cannot be narrowed further)",
                entry=first,
                checkpoint=size,
            )
        for child in children:
            problem = await self._search(child, found[child], size)
            if problem is not None:
                return problem
        return None


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


async def _check_archives(
    store: AuditStore,
    archives: list[ArchiveRecord],
    folder: Path | None,
    verifier: Verifier,
    report: Report,
) -> None:
    """Entries may leave the store only into an archive file that proves them: each record
    must have its file, whole, chained to the one before, and nothing may sit below it."""
    if not archives:
        return
    below = await store.query(AuditQuery(before=archives[-1].end, limit=1))
    if below:
        index = below[0].index
        report.problems.append(
            Problem(
                f"entry {index} is below the archive boundary: added after archiving", entry=index
            )
        )
    expected = 0
    for record in archives:
        where = f"archive {record.file} (entries {record.start} to {record.end - 1})"
        if record.start != expected:
            report.problems.append(
                Problem(f"{where} does not follow on from entry {expected}", entry=expected)
            )
        expected = record.end
        if folder is None:
            report.problems.append(
                Problem(f"{where}: no archive folder given to check it", entry=record.start)
            )
            continue
        path = folder / record.file
        try:
            check = await asyncio.to_thread(verify_archive, path, verifier)
            digest = await asyncio.to_thread(_lines_digest, path)
        except BadEvidence as exc:
            report.problems.append(Problem(f"{where}: {exc.message}", entry=record.start))
            continue
        if (check.start, check.end, digest) != (record.start, record.end, record.sha256):
            report.problems.append(
                Problem(f"{where}: the file is not the one archived", entry=record.start)
            )
            continue
        report.archives_checked += 1


def _lines_digest(path: Path) -> str:
    """SHA-256 of an archive's lines before its trailer (what its record names)."""
    lines = path.read_bytes().splitlines(keepends=True)
    return hashlib.sha256(b"".join(lines[:-1])).hexdigest()


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
