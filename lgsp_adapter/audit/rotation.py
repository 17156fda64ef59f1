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

from lgsp_adapter.audit.entry import AuditEntry, AuditEvent
from lgsp_adapter.audit.signing import (
    Keyring,
    LogKey,
    NoteError,
    Verifier,
    signature_keys,
    signed_last_by,
)
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
        # An earlier run stopped half-way. Finish it if the log names the pending key: with
        # its hand-over signed (only the files were left), or its entry alone (the
        # checkpoint was not); else the pending key was never used and is thrown away.
        new = LogKey.load(pending, name)
        if latest is not None and _signers(latest, old, new) == [old.verifier, new.verifier]:
            return _swap(key_path, pending, old, new, latest)
        if await _names_as_successor(store, new):
            return await _hand_over(store, key_path, pending, old, new)
        pending.unlink()
    if latest is not None and not signed_last_by(latest.note, old.verifier):
        raise FatalError(
            ErrorCode.CONFIG_INVALID,
            f"{key_path} did not sign the log's latest checkpoint last: it is not this log's "
            "current key (another key, a retired one, or another [audit] origin)",
        )
    new = LogKey.generate(name)
    new.save(pending)
    entry = AuditEntry(
        event=AuditEvent.ADMIN,
        outcome=ROTATED,
        actor=actor,
        detail=f"retired {old.verifier.fingerprint}; checkpoints from here are signed by "
        f"{new.verifier.encoded()} (fingerprint {new.verifier.fingerprint})",
    )
    try:
        await store.append([entry])
    except BaseException:
        pending.unlink()  # not named in the log: nothing to finish
        raise
    # From here the log names the pending key: a failure leaves it for the next run.
    return await _hand_over(store, key_path, pending, old, new)


async def _hand_over(
    store: AuditStore, key_path: Path, pending: Path, old: LogKey, new: LogKey
) -> Rotation:
    signed = await store.checkpoint(old, cosigner=new)
    assert signed is not None  # noqa: S101  # the log holds at least the hand-over entry
    return _swap(key_path, pending, old, new, signed)


def _signers(checkpoint: StoredCheckpoint, *keys: LogKey) -> list[Verifier | None]:
    try:
        return signature_keys(checkpoint.note, Keyring(tuple(k.verifier for k in keys)))
    except NoteError:
        return []


async def _names_as_successor(store: AuditStore, new: LogKey) -> bool:
    """Whether the log's last entry is a hand-over entry naming ``new`` (its checkpoint not
    signed yet)."""
    size = await store.tree_size()
    last = await store.entries(size - 1, size) if size else []
    return bool(
        last and last[0].outcome == ROTATED and new.verifier.encoded() in (last[0].detail or "")
    )


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
