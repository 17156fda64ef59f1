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
import bisect
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

from lgsp_adapter.audit.archive import ArchiveFile
from lgsp_adapter.audit.checkpoint import Checkpoint
from lgsp_adapter.audit.checkpoint_chain import open_checkpoints
from lgsp_adapter.audit.entry import canonical_entry
from lgsp_adapter.audit.merkle import Frontier, Node, cover, fold, leaf_hash, node_hash
from lgsp_adapter.audit.proofs import BadEvidence
from lgsp_adapter.audit.query import AuditQuery
from lgsp_adapter.audit.signing import Trusted
from lgsp_adapter.audit.store import ArchiveRecord, AuditStore
from lgsp_adapter.audit.tree import root_at
from lgsp_adapter.audit.verify_report import Problem, Report
from lgsp_adapter.audit.witness_check import Witnesses, check_witnesses

Progress = Callable[[int], None]
_NODE_BATCH = 16_000


async def verify_log(
    store: AuditStore,
    verifier: Trusted,
    progress: Progress | None = None,
    archive_dir: Path | None = None,
    witnesses: Witnesses | None = None,
) -> Report:
    """Recompute the log from its entries (archived ones from their files in ``archive_dir``)
    and check it against every signed checkpoint, the stored tree, and what ``witnesses``
    cosigned."""
    archives = await store.archives()
    report = Report()
    rows = await store.checkpoints()
    signed = open_checkpoints(rows, verifier, report)
    report.checkpoints_checked = len(signed)
    report.size = await store.tree_size()
    start = archives[-1].end if archives else 0
    report.archived_below = start
    witnesses = witnesses or Witnesses()
    run = _Run(store, signed, report, watch=witnesses.sizes())
    if archives:
        below = await store.query(AuditQuery(before=start, limit=1))
        if below:
            run.problem(
                f"entry {below[0].index} is below the archive boundary {start}: "
                "added after archiving",
                entry=below[0].index,
            )
    for record in archives:
        await run.archive(record, archive_dir, verifier)
    await run.entries(progress)
    await run.tail()
    if report.size and not rows:
        # Deleting every checkpoint would otherwise leave nothing to contradict a rewrite.
        run.problem(
            f"the log holds {report.size:,} entries and no checkpoint: no signature vouches "
            "for any of them (the daemon signs one at every start)",
            entry=0,
        )
    cosignatures = await store.cosignatures()
    check_witnesses(witnesses, verifier, rows, cosignatures, run.roots, report)
    if await store.archives() != archives:  # archived while we read: read again, once
        return await verify_log(store, verifier, progress, archive_dir, witnesses)
    return report


class _Run:
    """One pass over the whole log, archived entries first, then those in the store."""

    def __init__(
        self, store: AuditStore, signed: dict[int, Checkpoint], report: Report, watch: set[int]
    ) -> None:
        self.store = store
        self.watch = watch  # sizes the rebuilt tree's root is wanted at (witnesses')
        self.roots: dict[int, bytes] = {0: Frontier().root()}
        self.signed = signed
        self.report = report
        self.frontier = Frontier()
        self.due = sorted(signed)
        # The stored tree holds every subtree below the largest checkpoint (built when signed).
        self.built = max(signed, default=0)
        # Recomputed leaves from ``floor`` on: below it a checkpoint matched, so all is authentic.
        self.floor = 0
        self.floor_edge: list[tuple[Node, bytes]] = []  # the recomputed tree's edge at floor
        self.leaves = bytearray()
        self.pending: list[tuple[int, int, bytes]] = []
        self.suspects: list[tuple[int, int]] = []  # stored subtrees that disagreed, as ranges
        self.named: list[int] = []  # entries problems name, sorted
        self.tree_fault = False

    def problem(
        self, message: str, *, entry: int | None = None, checkpoint: int | None = None
    ) -> None:
        """Record a problem."""
        self.report.problems.append(Problem(message, entry=entry, checkpoint=checkpoint))
        if entry is not None:
            bisect.insort(self.named, entry)

    def _named_within(self, lo: int, hi: int) -> bool:
        position = bisect.bisect_left(self.named, lo)
        return position < len(self.named) and self.named[position] < hi

    async def archive(self, record: ArchiveRecord, folder: Path | None, verifier: Trusted) -> None:
        """Take in an archive's entries from its file, checked as it is read."""
        where = f"archive {record.file} (entries {record.start} to {record.end - 1})"
        if record.start != self.frontier.size:
            self.problem(
                f"{where} does not follow on from entry {self.frontier.size}",
                entry=self.frontier.size,
            )
            await self._fill(record.start)
        name = record.file
        if not name or name.startswith(".") or any(c in name for c in "/\\\x00"):
            self.problem(f"{where}: not a file name in the archive folder", entry=record.start)
        elif folder is None:
            self.problem(f"{where}: no archive folder given to check it", entry=record.start)
        else:
            await self._read_archive(record, folder / name, verifier, where)
        await self._fill(record.end)

    async def _read_archive(
        self, record: ArchiveRecord, path: Path, verifier: Trusted, where: str
    ) -> None:
        try:
            archive = await asyncio.to_thread(ArchiveFile, path, verifier)
        except BadEvidence as exc:
            self.problem(f"{where}: {exc.message}", entry=record.start)
            return
        try:
            if (archive.start, archive.end) != (record.start, record.end):
                self.problem(f"{where}: the file holds other entries", entry=record.start)
                return
            leaves = archive.entries()
            while batch := await asyncio.to_thread(_next, leaves, 5000):
                for _, leaf in batch:
                    await self._take(leaf)
            if archive.digest.hexdigest() != record.sha256:
                self.problem(f"{where}: the file is not the one archived", entry=record.start)
                return
            self.report.archives_checked += 1
        except BadEvidence as exc:
            self.problem(f"{where}: {exc.message}", entry=self.frontier.size)
        finally:
            archive.close()

    async def _fill(self, end: int) -> None:
        """Carry on to ``end`` with the stored tree's leaves, unchecked (what they stand for
        was reported), so that what follows can still be checked."""
        while self.frontier.size < end:
            upto = min(end, self.frontier.size + 5000)
            found = await self.store.node_range(0, self.frontier.size, upto)
            for index in range(self.frontier.size, upto):
                await self._take(found.get(index, b"\0" * 32), checked=False)

    async def entries(self, progress: Progress | None) -> None:
        """Take in the entries still in the store."""
        report = self.report
        async for stored in self.store.stored_entries(self.report.archived_below):
            if stored.index != self.frontier.size and not await self._gap(stored.index):
                return
            leaf = leaf_hash(canonical_entry(stored.fields))
            if stored.leaf != leaf:
                self.problem(
                    f"entry {stored.index} does not match its leaf hash: "
                    "changed, inserted or moved",
                    entry=stored.index,
                )
            await self._take(leaf)
            report.entries_checked += 1
            if progress is not None and report.entries_checked % 10_000 == 0:
                progress(report.entries_checked)
        if progress is not None:
            progress(report.entries_checked)

    async def _gap(self, index: int) -> bool:
        """Entries missing before ``index``: report them and carry on past them; False if the
        log cannot be followed."""
        expected = self.frontier.size
        if index < expected:
            self.problem(f"entry {index} is out of order", entry=index)
            return False
        self.problem(f"entry {expected} is missing ({index - expected} in a row)", entry=expected)
        await self._fill(index)
        return True

    async def _take(self, leaf: bytes, *, checked: bool = True) -> None:
        self.leaves += leaf
        for level, index, digest in self.frontier.append(leaf):
            if checked and (index + 1) << level <= self.built:
                self.pending.append((level, index, digest))
        if len(self.pending) >= _NODE_BATCH:
            await self._compare_nodes()
        if self.frontier.size in self.watch:
            self.roots[self.frontier.size] = self.frontier.root()
        if self.due and self.frontier.size == self.due[0]:
            await self._reached(self.due.pop(0))

    async def _compare_nodes(self) -> None:
        """The stored tree's hashes against the recomputed ones. A difference is only a
        suspect until the checkpoint above it is reached: an altered entry changes the
        recomputed hashes too, and the checkpoint tells which side is wrong."""
        batch, self.pending = self.pending, []
        if not batch:
            return
        spans: dict[int, tuple[int, int]] = {}
        for level, index, _ in batch:  # consecutive subtrees of each level: one read a level
            lo, hi = spans.get(level, (index, index))
            spans[level] = (min(lo, index), max(hi, index))
        found = {
            level: await self.store.node_range(level, lo, hi + 1)
            for level, (lo, hi) in spans.items()
        }
        for level, index, digest in batch:
            if found[level].get(index) != digest:
                self.suspects.append((index << level, (index + 1) << level))

    async def _reached(self, size: int) -> None:
        """The recomputed tree has a checkpoint's size: compare roots."""
        await self._compare_nodes()
        settled = [s for s in self.suspects if s[1] <= size]
        self.suspects = [s for s in self.suspects if s[1] > size]
        if self.frontier.root() == self.signed[size].root:
            if settled and not self.tree_fault:
                lo, hi = min(settled)
                self.tree_fault = True
                self.problem(
                    f"the tree's stored hash over entries {lo} to {hi - 1} disagrees with them: "
                    "proofs for them would fail"
                )
            del self.leaves[: (size - self.floor) * 32]
            self.floor = size
            self.floor_edge = list(zip(cover(0, size), self.frontier.hashes(), strict=True))
            return
        if self._named_within(0, size):
            self.problem(f"checkpoint {size}: its root does not match the entries", checkpoint=size)
            return
        located = await self._locate(size)
        self.problem(located.message, entry=located.entry, checkpoint=located.checkpoint)

    async def tail(self) -> None:
        """What the end of the pass tells: entries missing at the end, the stored tree."""
        await self._compare_nodes()
        report, expected = self.report, self.frontier.size
        if expected < report.size:
            self.problem(
                f"entries {expected} to {report.size - 1} are missing from the end",
                entry=expected,
            )
        beyond = [size for size in self.due if size > expected]
        if beyond:
            self.problem(
                f"entries {expected} to {beyond[-1] - 1} are missing from the end: "
                f"checkpoint {beyond[-1]} signed them",
                entry=expected,
                checkpoint=beyond[-1],
            )
        latest = max((s for s in self.signed if s <= expected), default=None)
        if latest is None or self.tree_fault:
            return
        try:
            stored_root = await root_at(self.store, latest)
        except LookupError:
            stored_root = b""
        if stored_root != self.signed[latest].root:
            self.problem(
                f"the tree's stored hashes disagree with checkpoint {latest}: "
                "proofs against it would fail",
                checkpoint=latest,
            )

    def _recomputed(self, level: int, index: int) -> bytes:
        """The recomputed hash of a subtree that reaches above ``floor``; the part of it
        below comes from the recomputed edge kept when the floor's checkpoint matched."""
        lo, hi = index << level, (index + 1) << level
        below = [digest for (lv, at), digest in self.floor_edge if at << lv >= lo]
        start = max(lo, self.floor)
        tree = Frontier(start - lo, below if lo < self.floor else [])
        for i in range(start - self.floor, hi - self.floor):
            tree.append(bytes(self.leaves[i * 32 : i * 32 + 32]))
        return tree.root()

    async def _locate(self, size: int) -> Problem:
        """The first entry below ``size`` whose recomputed leaf differs from the signed tree,
        found by following stored hashes only while they hash up to the signed root."""
        keys = cover(0, size)
        stored = await self.store.nodes(keys)
        if len(stored) != len(keys) or fold([stored[k] for k in keys]) != self.signed[size].root:
            differing = [
                (level, index)
                for level, index in keys
                if (index + 1) << level > self.floor
                and stored.get((level, index)) != self._recomputed(level, index)
            ]
            if len(differing) == 1:  # the rest agree: the change lies in that one subtree
                level, index = differing[0]
                return self._range(index << level, (index + 1) << level, size)
            # Everything below the last checkpoint that matched is sound: the change is above.
            return self._range(self.floor, size, size)
        for node in keys:
            found = await self._search(node, stored[node], size)
            if found is not None:
                return found
        return Problem(f"checkpoint {size}: its root does not match the entries", checkpoint=size)

    def _range(self, lo: int, hi: int, size: int) -> Problem:
        first = max(lo, self.floor)
        last = min(hi, size) - 1
        what = f"entry {first}" if first == last else f"entries {first} to {last}: one"
        return Problem(
            f"{what} was altered since checkpoint {size} (the stored tree was rewritten too, "
            "so it cannot be narrowed further)",
            entry=first,
            checkpoint=size,
        )

    async def _search(self, node: Node, authentic: bytes, size: int) -> Problem | None:
        """Within the subtree ``node`` whose hash ``authentic`` is known good, the first
        altered entry; None if there is none."""
        level, index = node
        lo, hi = index << level, (index + 1) << level
        if hi <= self.floor:
            return None  # below a checkpoint that matched
        if self._recomputed(level, index) == authentic:
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
            return self._range(lo, hi, size)
        for child in children:
            problem = await self._search(child, found[child], size)
            if problem is not None:
                return problem
        return None


def _next(leaves: Iterator[tuple[int, bytes]], count: int) -> list[tuple[int, bytes]]:
    return list(itertools.islice(leaves, count))
