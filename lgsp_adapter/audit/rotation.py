"""Replacing the audit log's signing key, without breaking what it signed.

A key is rotated when it may have leaked, when its holder leaves, or on a schedule. The log
records the hand-over itself: an ``admin`` entry naming the retired key and its successor's
verifier key, then a checkpoint covering that entry signed by *both* keys (a signed note carries
any number of signatures). An auditor who pinned the old key sees the old key vouch for the new
one; one who pins the new key finds its signature on the same checkpoint, whose root covers
everything before. From there only the new key signs.

The old key is kept beside the new one as ``<key>.retired-<fingerprint>``: verifying the log
with the keys on this machine checks old checkpoints and archives with it. No daemon may run on
the store meanwhile (it would sign with the key it loaded); a daemon started later with a
retired key refuses to (``check_shared_key``).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from lgsp_adapter.audit.checkpoint import Checkpoint
from lgsp_adapter.audit.entry import AuditEntry, AuditEvent
from lgsp_adapter.audit.query import AuditQuery
from lgsp_adapter.audit.signing import Keyring, LogKey, NoteError, Verifier
from lgsp_adapter.audit.store import AuditStore, StoredCheckpoint
from lgsp_adapter.errors import ErrorCode, FatalError

ROTATED = "key_rotated"  # the outcome of the hand-over entry
_RETIRED = ".retired-"


@dataclass(frozen=True)
class Rotation:
    """What a rotation did."""

    retired: Verifier
    current: Verifier
    checkpoint: StoredCheckpoint
    kept_at: Path  # where the retired key now is


def retired_paths(key_path: Path) -> list[Path]:
    """The retired keys kept beside ``key_path``, oldest first."""
    found = key_path.parent.glob(key_path.name + _RETIRED + "*")
    return sorted(found, key=lambda path: path.stat().st_mtime)


def keyring(key_path: Path, name: str | None) -> Keyring:
    """Every key this log has been signed with that this machine holds: the retired ones
    beside the current one, oldest first."""
    keys = [LogKey.load(path, name) for path in retired_paths(key_path)]
    keys.append(LogKey.load(key_path, name))
    return Keyring(tuple(key.verifier for key in keys))


async def retired_by(store: AuditStore, checkpoint: StoredCheckpoint) -> str | None:
    """The fingerprint of the key ``checkpoint`` hands over from, if it is a rotation's
    hand-over (signed by two keys: the retired one signs nothing after it)."""
    if checkpoint.note.count("\n\u2014 ") < 2:
        return None
    found = await store.query(
        AuditQuery(
            event=AuditEvent.ADMIN,
            outcome=ROTATED,
            before=checkpoint.size,
            newest_first=True,
            limit=1,
        )
    )
    if not found:
        return None
    return (found[0].detail or "").removeprefix("retired ").split(";")[0].strip() or None


async def rotate_key(store: AuditStore, key_path: Path, name: str | None, actor: str) -> Rotation:
    """Rotate the key at ``key_path`` on ``store`` (whose daemons are all stopped); ``name``
    is the log's (``[audit] origin``), which it keeps across keys."""
    old = LogKey.load(key_path, name)
    if name is None:
        # Unset, the name is made from the key: a new key would rename the log, and its
        # checkpoints would no longer be this log's.
        raise FatalError(
            ErrorCode.CONFIG_INVALID,
            f'the log is named after its key: first set [audit] origin = "{old.name}" in the '
            "settings of every daemon on this store (the name it has now), then rotate",
        )
    latest = await store.latest_checkpoint()
    pending = key_path.with_name(key_path.name + ".new")
    if pending.exists():
        # An earlier run stopped between the hand-over and the files: finish it if the log
        # has the hand-over, else the new key was never used and is thrown away.
        new = LogKey.load(pending, name)
        if latest is not None and _signs(new, latest) and _signs(old, latest):
            return _swap(key_path, pending, old, new, latest)
        pending.unlink()
    if latest is not None and not _signs(old, latest):
        raise FatalError(
            ErrorCode.CONFIG_INVALID,
            f"{key_path} did not sign the log's latest checkpoint: it is not this log's key",
        )
    new = LogKey.generate(name)
    new.save(pending)
    try:
        old_fingerprint = old.verifier.fingerprint
        await store.append(
            [
                AuditEntry(
                    event=AuditEvent.ADMIN,
                    outcome=ROTATED,
                    actor=actor,
                    detail=f"retired {old_fingerprint}; checkpoints from here are signed by "
                    f"{new.verifier.encoded()} (fingerprint {new.verifier.fingerprint})",
                )
            ]
        )
        signed = await store.checkpoint(old, cosigner=new)
    except BaseException:
        pending.unlink()
        raise
    assert signed is not None  # noqa: S101  # the log just grew by an entry
    return _swap(key_path, pending, old, new, signed)


def _signs(key: LogKey, checkpoint: StoredCheckpoint) -> bool:
    try:
        Checkpoint.open(checkpoint.note, key.verifier)
    except NoteError:
        return False
    return True


def _swap(
    key_path: Path, pending: Path, old: LogKey, new: LogKey, signed: StoredCheckpoint
) -> Rotation:
    """Keep the old key as retired, and put the new one in its place (a rename: the key
    path never lacks a key)."""
    kept = key_path.with_name(f"{key_path.name}{_RETIRED}{old.verifier.fingerprint[:16]}")
    with contextlib.suppress(FileExistsError):
        os.link(key_path, kept)
    os.replace(pending, key_path)
    return Rotation(retired=old.verifier, current=new.verifier, checkpoint=signed, kept_at=kept)
