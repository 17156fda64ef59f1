"""Proofs as JSON documents (``docs/audit.md``), made from the store and checked offline.

Hashes are base64, as in the checkpoints; ``entry`` holds the entry's fields, whose canonical
encoding (``docs/audit.md``) is the leaf's input, so a checker needs no copy of our code: any RFC
9162 verifier, the entry and the checkpoint are enough.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from lgsp_adapter.audit.checkpoint import Checkpoint
from lgsp_adapter.audit.entry import FIELDS, AuditEntry, canonical_entry
from lgsp_adapter.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from lgsp_adapter.audit.signing import NoteError, Trusted
from lgsp_adapter.audit.store import AuditStore, StoredCheckpoint
from lgsp_adapter.audit.tree import consistency_path, inclusion_path
from lgsp_adapter.errors import ErrorCode, LgspError, PermanentError


class BadEvidence(PermanentError):
    """A proof, bundle or archive that is malformed or does not verify."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.AUDIT_BAD_BUNDLE, message)


def b64(data: bytes) -> str:
    """Hashes as the documents write them."""
    return base64.b64encode(data).decode()


def unb64(text: Any, what: str) -> bytes:
    """A 32-byte hash back; ``BadEvidence`` naming ``what`` otherwise."""
    try:
        data = base64.b64decode(str(text), validate=True)
    except binascii.Error as exc:
        raise BadEvidence(f"{what} is not base64") from exc
    if len(data) != 32:
        raise BadEvidence(f"{what} is not a SHA-256 hash")
    return data


def entry_document(entry: AuditEntry) -> dict[str, Any]:
    """An entry as the documents show it: its index and its non-null fields."""
    return {
        "index": entry.index,
        "entry": {k: v for k, v in entry.fields().items() if v is not None},
    }


async def signed_checkpoint(store: AuditStore, size: int | None = None) -> StoredCheckpoint:
    """The checkpoint of ``size``, or the latest: ``audit.no_checkpoint`` when none was signed
    yet, ``audit.not_found`` when none has that size."""
    checkpoints = await store.checkpoints()
    if not checkpoints:
        raise LgspError(ErrorCode.AUDIT_NO_CHECKPOINT, "the log has no signed checkpoint yet")
    if size is None:
        return checkpoints[-1]
    for checkpoint in checkpoints:
        if checkpoint.size == size:
            return checkpoint
    raise LgspError(ErrorCode.AUDIT_NOT_FOUND, f"no checkpoint of size {size}")


async def inclusion_document(
    store: AuditStore, entry: AuditEntry, checkpoint: StoredCheckpoint
) -> dict[str, Any]:
    """That ``entry`` is in the tree ``checkpoint`` signs."""
    if entry.index is None or entry.index >= checkpoint.size:
        raise LgspError(
            ErrorCode.AUDIT_NO_CHECKPOINT,
            f"entry {entry.index} is not under the checkpoint of size {checkpoint.size}",
        )
    path = await inclusion_path(store, entry.index, checkpoint.size)
    leaf = leaf_hash(entry.canonical())
    if not verify_inclusion(leaf, entry.index, checkpoint.size, path, checkpoint.root):
        raise LgspError(
            ErrorCode.AUDIT_TAMPERED,
            f"the stored tree does not prove entry {entry.index} under the checkpoint of size "
            f"{checkpoint.size}; run `lgsp-adapter audit verify`",
        )
    return {
        "type": "inclusion",
        **entry_document(entry),
        "leaf_hash": b64(leaf),
        "tree_size": checkpoint.size,
        "audit_path": [b64(node) for node in path],
        "checkpoint": checkpoint.note,
    }


async def consistency_document(
    store: AuditStore, old: StoredCheckpoint, new: StoredCheckpoint
) -> dict[str, Any]:
    """That the tree of ``new`` only appended to the tree of ``old``."""
    path = await consistency_path(store, old.size, new.size)
    if not verify_consistency(old.size, new.size, old.root, new.root, path):
        raise LgspError(
            ErrorCode.AUDIT_TAMPERED,
            f"the stored tree does not prove size {new.size} extends size {old.size}; "
            "run `lgsp-adapter audit verify`",
        )
    return {
        "type": "consistency",
        "old_size": old.size,
        "new_size": new.size,
        "old_root": b64(old.root),
        "new_root": b64(new.root),
        "proof": [b64(node) for node in path],
        "old_checkpoint": old.note,
        "new_checkpoint": new.note,
    }


def open_checkpoint(note: Any, verifier: Trusted, what: str = "the checkpoint") -> Checkpoint:
    """A checkpoint from a document, checked; ``BadEvidence`` naming the fault."""
    if not isinstance(note, str):
        raise BadEvidence(f"{what} is missing")
    try:
        return Checkpoint.open(note, verifier)
    except NoteError as exc:
        raise BadEvidence(f"{what}: {exc}") from exc


def leaf_of(fields: dict[str, Any], what: str) -> bytes:
    """The leaf hash of entry fields read from a document; ``BadEvidence`` if they cannot be
    an entry's (unknown names, values that are not text, text that is not UTF-8)."""
    unknown = set(fields) - set(FIELDS)
    if unknown or not all(isinstance(v, str) for v in fields.values()):
        raise BadEvidence(f"{what}: fields must be text, and only {', '.join(FIELDS)}")
    try:
        return leaf_hash(canonical_entry(fields))
    except UnicodeEncodeError as exc:
        raise BadEvidence(f"{what}: a field is not valid Unicode text") from exc


def check_inclusion(document: dict[str, Any], verifier: Trusted) -> tuple[Checkpoint, int]:
    """Check an inclusion document offline; the checkpoint and the entry's index if it holds."""
    checkpoint = open_checkpoint(document.get("checkpoint"), verifier)
    return checkpoint, check_entry_under(document, checkpoint)


def check_entry_under(document: dict[str, Any], checkpoint: Checkpoint) -> int:
    """Check that the entry of ``document`` (with its ``audit_path``) is under ``checkpoint``."""
    index = document.get("index")
    fields = document.get("entry")
    path = document.get("audit_path")
    # ``type(...) is int``: JSON's true and false are ints to Python, and must not pass as 1 and 0.
    if type(index) is not int or index < 0:
        raise BadEvidence(f"an entry's index must be a whole number from 0, not {index!r}")
    if not isinstance(fields, dict) or not isinstance(path, list):
        raise BadEvidence(f"entry {index} needs its fields and an audit_path")
    leaf = leaf_of(fields, f"entry {index}")
    if "leaf_hash" in document and unb64(document["leaf_hash"], "leaf_hash") != leaf:
        raise BadEvidence(f"entry {index}: its leaf_hash is not the hash of its fields")
    proof = [unb64(node, f"entry {index}: audit path") for node in path]
    if not verify_inclusion(leaf, index, checkpoint.size, proof, checkpoint.root):
        raise BadEvidence(
            f"entry {index} is not in the log at size {checkpoint.size}: "
            "changed, or its proof is wrong"
        )
    return index


def check_consistency(document: dict[str, Any], verifier: Trusted) -> tuple[Checkpoint, Checkpoint]:
    """Check a consistency document offline; both checkpoints if it holds."""
    old = open_checkpoint(document.get("old_checkpoint"), verifier, "the old checkpoint")
    new = open_checkpoint(document.get("new_checkpoint"), verifier, "the new checkpoint")
    path = document.get("proof")
    if not isinstance(path, list):
        raise BadEvidence("a consistency document needs a proof")
    proof = [unb64(node, "proof") for node in path]
    if not verify_consistency(old.size, new.size, old.root, new.root, proof):
        raise BadEvidence(f"the log at size {new.size} does not extend the log at size {old.size}")
    return old, new
