"""``lgsp-adapter backup``: a consistent copy of a running daemon's store, checked.

SQLite's online backup copies every page in one step, inside one read transaction: in WAL
mode the daemon goes on writing meanwhile, and the copy is one moment of the store (every
accepted packet with its deliveries, and the audit log, up to it). Copying in small steps
would restart at every write of a busy daemon and never end; a cp of the file while the
daemon runs is not a moment at all (the write-ahead log missing or half-copied). The copy holds
endpoint secrets: it is made readable by its owner only. Restoring is stopping the daemon,
putting the copy in the store's place and starting it: the outbox, the retries and the log go
on from that moment.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from lgsp_adapter.errors import ErrorCode, FatalError


@dataclass(frozen=True)
class Copy:
    """What a backup holds."""

    path: Path
    packets: int
    deliveries: int
    audit_entries: int
    size_bytes: int


def _copy(store: Path, to: Path) -> Copy:
    # A URI of the resolved path: '?', '#' or '%' in a name would otherwise be read as URI
    # syntax (another file opened, read-only lost).
    source = sqlite3.connect(store.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        target = sqlite3.connect(to)
        try:
            source.backup(target)
            (verdict,) = target.execute("PRAGMA integrity_check").fetchone()
            if verdict != "ok":
                raise FatalError(ErrorCode.STORE_UNAVAILABLE, f"the copy is damaged: {verdict}")
            counts = [
                target.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
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
    try:
        # Made here, for its owner only, and only if it is not there (no race with another).
        os.close(os.open(to, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        raise FatalError(
            ErrorCode.STORE_UNAVAILABLE, f"{to} exists: a backup never overwrites"
        ) from None
    try:
        return _copy(store, to)
    except BaseException:
        to.unlink(missing_ok=True)
        raise
