"""Files that hold a key: made whole or not at all, read only when nobody but their owner can.

The audit log's signing key is the first such file, and the registry's secret box keeps its key
the same way, so both come here. A key file half-written by a crash would stop every later
start, and one others may read has given its key away already.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from lgsp_adapter.errors import ErrorCode, FatalError


def create_private(path: Path, content: bytes) -> bool:
    """Put ``content`` at ``path``, readable by its owner only, if no file is there; False when
    one is (another process made it first). The content is written and synced under a temporary
    name and then linked into place, so ``path`` never holds part of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.partial")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)  # unlike a rename, never replaces a file already there
        except FileExistsError:
            return False
        _sync_folder(path.parent)
        return True
    finally:
        temporary.unlink(missing_ok=True)


def read_private(path: Path, what: str) -> bytes:
    """The content of ``path``; ``config.invalid`` when it is a link or not a regular file, when
    others may read it, or when it cannot be read. ``what`` names the file for the operator."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        why = "it is a link" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise FatalError(ErrorCode.CONFIG_INVALID, f"cannot read {what} {path}: {why}") from exc
    mode = os.fstat(descriptor).st_mode  # the file opened, not what the path says now
    if not stat.S_ISREG(mode) or mode & 0o077:
        os.close(descriptor)
        raise FatalError(
            ErrorCode.CONFIG_INVALID,
            f"{what} {path} must be a regular file only its owner can read (chmod 600)",
        )
    with os.fdopen(descriptor, "rb") as source:
        return source.read()


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
