"""Evidence bundles: entries, their inclusion proofs, a signed checkpoint and the log's public
key, in one JSON file an auditor checks offline with nothing else.

A bundle carries its own key, so it proves the entries are in *that* log; that the log is the
operator's is a matter of the key's fingerprint, which the checker prints and can pin
(``--public-key``): a forger can make a self-consistent bundle under a key of their own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lgsp_adapter.audit.checkpoint import Checkpoint
from lgsp_adapter.audit.cosignature import WitnessVerifier, checkpoint_text
from lgsp_adapter.audit.entry import AuditEntry, format_time
from lgsp_adapter.audit.merkle import leaf_hash, verify_inclusion
from lgsp_adapter.audit.proofs import BadEvidence, b64, check_entry_under, entry_document
from lgsp_adapter.audit.query import AuditQuery
from lgsp_adapter.audit.signing import LogKey, NoteError, Trusted, Verifier
from lgsp_adapter.audit.store import AuditStore, StoredCheckpoint
from lgsp_adapter.audit.tree import inclusion_paths
from lgsp_adapter.errors import ErrorCode, LgspError

FORMAT = "lgsp-adapter/audit-bundle/1"
MAX_BUNDLE_BYTES = 256 * 1024 * 1024
MAX_ENTRIES = 100_000


async def covering_checkpoint(
    store: AuditStore, last_index: int, key: LogKey | None, cosigned: set[int]
) -> StoredCheckpoint:
    """The latest checkpoint witnesses cosigned, if it covers entry ``last_index`` (a bundle
    then carries their word too); else the latest, if it does; else a new one when the key is
    at hand; else ``audit.no_checkpoint``."""
    checkpoints = await store.checkpoints()
    witnessed = [row for row in checkpoints if row.size in cosigned and row.size > last_index]
    if witnessed:
        return witnessed[-1]
    if checkpoints and checkpoints[-1].size > last_index:
        return checkpoints[-1]
    if key is not None:
        made = await store.checkpoint(key)
        if made is not None and made.size > last_index:
            return made
    raise LgspError(
        ErrorCode.AUDIT_NO_CHECKPOINT,
        f"no signed checkpoint covers entry {last_index} yet; make one with "
        "`lgsp-adapter audit checkpoint`",
    )


async def make_bundle(
    store: AuditStore,
    entries: list[AuditEntry],
    *,
    subject: dict[str, Any],
    verifier: Verifier,
    key: LogKey | None = None,
) -> dict[str, Any]:
    """A bundle proving ``entries`` (what ``subject`` says they are) are in the log."""
    if not entries:
        raise LgspError(ErrorCode.AUDIT_NOT_FOUND, "no entries to bundle")
    if len(entries) > MAX_ENTRIES:
        raise LgspError(
            ErrorCode.AUDIT_BAD_QUERY,
            f"{len(entries):,} entries: a bundle holds at most {MAX_ENTRIES:,}; narrow the range",
        )
    last = max(entry.index or 0 for entry in entries)
    cosignatures = await store.cosignatures()
    cosigned = {c.size for c in cosignatures}
    checkpoint = await covering_checkpoint(store, last, key, cosigned)
    paths = await inclusion_paths(store, [entry.index or 0 for entry in entries], checkpoint.size)
    proven = []
    for entry in entries:
        index = entry.index or 0
        leaf = leaf_hash(entry.canonical())
        if not verify_inclusion(leaf, index, checkpoint.size, paths[index], checkpoint.root):
            raise LgspError(
                ErrorCode.AUDIT_TAMPERED,
                f"the stored tree does not prove entry {index}; run `lgsp-adapter audit verify`",
            )
        proven.append(
            {
                **entry_document(entry),
                "leaf_hash": b64(leaf),
                "audit_path": [b64(node) for node in paths[index]],
            }
        )
    return {
        "format": FORMAT,
        "made_at": format_time(datetime.now(UTC)),
        "subject": subject,
        "log": {
            "origin": verifier.name,
            "verifier_key": verifier.encoded(),
            "public_key_sha256": verifier.fingerprint,
        },
        "checkpoint": checkpoint.note,
        "cosignatures": [c.line for c in cosignatures if c.size == checkpoint.size],
        "entries": proven,
    }


SUBJECT_FIELDS = ("packet_id", "kind", "document_id", "outcome", "event")


def subject_of(query: AuditQuery) -> dict[str, Any]:
    """What a bundle of ``query``'s entries is about, as its ``subject`` says."""
    return query.model_dump(
        mode="json", include={*SUBJECT_FIELDS, "agency", "since", "until"}, exclude_none=True
    )


def within(subject: dict[str, Any], fields: dict[str, Any]) -> bool:
    """Whether an entry's fields match the bundle's subject."""
    if any(name in subject and fields.get(name) != subject[name] for name in SUBJECT_FIELDS):
        return False
    if "agency" in subject and subject["agency"] not in (
        fields.get("sender"),
        fields.get("recipient"),
    ):
        return False
    try:
        at = datetime.fromisoformat(str(fields.get("at")))
        if "since" in subject and at < datetime.fromisoformat(str(subject["since"])):
            return False
        if "until" in subject and at >= datetime.fromisoformat(str(subject["until"])):
            return False
    except (ValueError, TypeError):
        return False
    return True


def dump(bundle: dict[str, Any]) -> bytes:
    """The bundle as the file holds it: UTF-8 JSON, indented for people."""
    return json.dumps(bundle, ensure_ascii=False, indent=1).encode() + b"\n"


@dataclass(frozen=True)
class BundleCheck:
    """What a bundle proved."""

    verifier: Verifier
    pinned: bool
    checkpoint: Checkpoint
    entries: int
    subject: dict[str, Any]
    witnessed: list[str] = field(default_factory=list)  # witnesses whose cosignature checks
    unchecked: list[str] = field(default_factory=list)  # cosigners whose key was not given

    def summary(self) -> str:
        """Lines for people."""
        trust = (
            "the pinned key"
            if self.pinned
            else "the key inside the bundle: compare its fingerprint with the operator's"
        )
        return (
            f"bundle verifies: {self.entries} entries are in log {self.checkpoint.origin!r}"
            f" at size {self.checkpoint.size} (checkpoint of {format_time(self.checkpoint.at)})\n"
            f"subject: {json.dumps(self.subject, ensure_ascii=False)} (every entry matches it; "
            "a bundle cannot show that no other entry does)\n"
            f"key fingerprint (SHA-256): {self.verifier.fingerprint}\n"
            f"signed with {trust}"
            + "".join(f"\ncosigned by witness {name}" for name in self.witnessed)
            + "".join(
                f"\ncosigned by {name}, not checked: give its key (--witness-key)"
                for name in self.unchecked
            )
        )


def verify_bundle(
    data: bytes, pinned: Trusted | None = None, witnesses: Sequence[WitnessVerifier] = ()
) -> BundleCheck:
    """Check a bundle with nothing but itself (and a pinned key, and the keys of witnesses
    whose cosignatures it carries, when given)."""
    return check_bundle(load_evidence(data, FORMAT, "an evidence bundle"), pinned, witnesses)


def load_evidence(data: bytes, form: str, what: str) -> dict[str, Any]:
    """An evidence file's JSON object of format ``form``; ``BadEvidence`` if it is not."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise BadEvidence(f"larger than {MAX_BUNDLE_BYTES:,} bytes: not {what} of ours")
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise BadEvidence(f"not JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != form:
        raise BadEvidence(f"not {what} (format {form})")
    return document


def check_bundle(
    bundle: dict[str, Any],
    pinned: Trusted | None = None,
    witnesses: Sequence[WitnessVerifier] = (),
) -> BundleCheck:
    """``verify_bundle`` of a bundle already read."""
    if bundle.get("format") != FORMAT:
        raise BadEvidence(f"not an evidence bundle (format {FORMAT})")
    log = bundle.get("log")
    if not isinstance(log, dict):
        raise BadEvidence("the bundle names no log")
    try:
        verifier = Verifier.parse(str(log.get("verifier_key", "")))
    except NoteError as exc:
        raise BadEvidence(f"the bundle's key: {exc}") from exc
    if pinned is not None and not pinned.trusts(verifier):
        raise BadEvidence(
            f"the bundle is signed by key {verifier.fingerprint}, not the pinned "
            f"{pinned.fingerprint}"
        )
    note = bundle.get("checkpoint")
    if not isinstance(note, str):
        raise BadEvidence("the bundle has no checkpoint")
    try:
        checkpoint = Checkpoint.open(note, verifier)
    except NoteError as exc:
        raise BadEvidence(f"the checkpoint: {exc}") from exc
    entries = bundle.get("entries")
    if not isinstance(entries, list) or not entries:
        raise BadEvidence("the bundle has no entries")
    subject = bundle.get("subject")
    if not isinstance(subject, dict):
        raise BadEvidence("the bundle does not say what it is about (subject)")
    unknown = sorted(set(subject) - {*SUBJECT_FIELDS, "agency", "since", "until"})
    if unknown:
        raise BadEvidence(f"the bundle's subject names what it cannot check: {', '.join(unknown)}")
    seen: set[int] = set()
    for document in entries:
        if not isinstance(document, dict):
            raise BadEvidence("an entry is not an object")
        index = check_entry_under(document, checkpoint)
        if index in seen:
            raise BadEvidence(f"entry {index} appears twice")
        seen.add(index)
        if not within(subject, document["entry"]):
            raise BadEvidence(f"entry {index} does not match the bundle's subject")
    witnessed, unchecked = _cosigners(bundle.get("cosignatures", []), note, witnesses)
    return BundleCheck(
        verifier=verifier,
        pinned=pinned is not None,
        checkpoint=checkpoint,
        entries=len(entries),
        subject=subject,
        witnessed=witnessed,
        unchecked=unchecked,
    )


def _cosigners(
    lines: Any, note: str, witnesses: Sequence[WitnessVerifier]
) -> tuple[list[str], list[str]]:
    """Which witnesses' cosignatures of ``note`` check, and which could not be checked; a
    cosignature claiming a given witness that does not check is a forgery."""
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise BadEvidence("the bundle's cosignatures are not a list of lines")
    keys = {key.name: key for key in witnesses}
    witnessed, unchecked = [], []
    for line in lines:
        parts = line.split(" ")
        name = parts[1] if len(parts) == 3 else "?"
        key = keys.get(name)
        if key is None:
            unchecked.append(name)
            continue
        try:
            key.check(line, checkpoint_text(note))
        except NoteError as exc:
            raise BadEvidence(f"the cosignature by {name}: {exc}") from exc
        witnessed.append(name)
    return witnessed, unchecked
