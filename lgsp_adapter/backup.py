"""``lgsp-adapter backup``: a consistent copy of a running daemon's store, checked.

SQLite's online backup copies the file page by page while the daemon goes on writing (a
write between steps restarts the copy of what changed), so the copy is one moment of the
store: every accepted packet with its deliveries and the audit log up to that moment. A copy
of the file with cp while the daemon runs is not: the write-ahead log would be missing or
half-copied. Restoring is stopping the daemon, putting the copy in the store's place and
starting it: the outbox, the retries and the log go on from that moment.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from lgsp_adapter.errors import ErrorCode, FatalError

_PAGES_PER_STEP = 1024  # 4 MB at a time: the daemon's writes go on between steps


@dataclass(frozen=True)
class Copy:
    """What a backup holds."""

    path: Path
    packets: int
    deliveries: int
    audit_entries: int
    size_bytes: int


def _copy(store: Path, to: Path) -> Copy:
    source = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(to)
        try:
            source.backup(target, pages=_PAGES_PER_STEP)
            (verdict,) = target.execute("PRAGMA integrity_check").fetchone()
            if verdict != "ok":
                raise FatalError(ErrorCode.STORE_UNAVAILABLE, f"the copy is damaged: {verdict}")
            counts = [
                target.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
                for table in ("packets", "deliveries", "audit_entries")
            ]
        finally:
            target.close()
    finally:
        source.close()
    packets, deliveries, entries = counts
    return Copy(to, packets, deliveries, entries, size_bytes=to.stat().st_size)


def backup(store: Path, to: Path) -> Copy:
    """Copy ``store`` to ``to`` (which must not exist) while its daemon runs, and check it."""
    if not store.is_file():
        raise FatalError(ErrorCode.STORE_UNAVAILABLE, f"no store at {store}")
    if to.exists():
        raise FatalError(ErrorCode.STORE_UNAVAILABLE, f"{to} exists: a backup never overwrites")
    try:
        return _copy(store, to)
    except BaseException:
        to.unlink(missing_ok=True)
        raise
