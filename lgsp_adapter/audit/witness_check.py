"""What the witnesses say of a log, checked against the log as its entries rebuild it.

The log's own key vouches for nothing against the one who holds it: an operator can rewrite
entries, rebuild the tree and sign every checkpoint again. A witness's cosignature is another
party's word for a size and root, and its view (the latest checkpoint of this log it cosigned,
asked of it directly) is beyond the operator's reach. So verification fails, naming the witness,
when the rebuilt tree disagrees with a root a witness cosigned, when a stored cosignature does
not verify over the checkpoint now stored at its size, or when a witness saw entries the log no
longer holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from lgsp_adapter.audit.checkpoint import Checkpoint
from lgsp_adapter.audit.cosignature import WitnessVerifier, checkpoint_text
from lgsp_adapter.audit.entry import format_time
from lgsp_adapter.audit.proofs import b64
from lgsp_adapter.audit.signing import NoteError, Trusted, split_note
from lgsp_adapter.audit.store import StoredCheckpoint, StoredCosignature
from lgsp_adapter.audit.verify_report import Problem, Report


@dataclass(frozen=True)
class WitnessView:
    """A witness's answer to "which checkpoint of this log did you cosign last": the note
    with its cosignature, or None if it has cosigned none."""

    witness: WitnessVerifier
    note: str | None


@dataclass(frozen=True)
class Witnesses:
    """The witnesses a verification trusts, and what those that could be asked answered."""

    keys: tuple[WitnessVerifier, ...] = ()
    views: tuple[WitnessView, ...] = ()
    unreachable: tuple[str, ...] = field(default=())  # why a witness could not be asked

    def sizes(self) -> set[int]:
        """The sizes the views name, for the rebuilt tree to give its root at."""
        found = set()
        for view in self.views:
            lines = (view.note or "").split("\n")
            if len(lines) > 1 and lines[1].isascii() and lines[1].isdigit():
                found.add(int(lines[1]))
        return found


def check_witnesses(
    witnesses: Witnesses,
    trusted: Trusted,
    stored: list[StoredCheckpoint],
    cosignatures: list[StoredCosignature],
    roots: dict[int, bytes],
    report: Report,
) -> None:
    """Add to ``report`` what the witnesses vouch for and where the log contradicts them;
    ``roots`` are the rebuilt tree's roots at the sizes ``witnesses.sizes()`` names (stored
    cosignatures are checked against the stored checkpoints, which the pass checked)."""
    keys = {key.name: key for key in witnesses.keys}
    notes = {row.size: row.note for row in stored}
    for cosignature in cosignatures:
        key = keys.get(cosignature.witness)
        if key is None:
            continue  # a witness this verification was not given the key of
        _stored_cosignature(cosignature, key, notes, report)
    for view in witnesses.views:
        cosigned = any(c.witness == view.witness.name for c in cosignatures)
        if view.note is None and cosigned:
            _problem(
                report,
                f"witness {view.witness.name} says it cosigned no checkpoint of this log, but "
                "the log keeps its cosignatures: the witness lost its state, or the settings "
                "point to another server in its name",
            )
            continue
        _view(view, trusted, roots, report)
    report.notes.extend(witnesses.unreachable)


def _problem(report: Report, message: str, size: int | None = None) -> None:
    report.problems.append(Problem(message, checkpoint=size))


def _vouch(report: Report, witness: str, size: int) -> None:
    report.witnessed[witness] = max(size, report.witnessed.get(witness, 0))


def _stored_cosignature(
    cosignature: StoredCosignature, key: WitnessVerifier, notes: dict[int, str], report: Report
) -> None:
    size, name = cosignature.size, cosignature.witness
    note = notes.get(size)
    if note is None:
        _problem(
            report,
            f"witness {name} cosigned a checkpoint of size {size} that the store no longer "
            "holds: checkpoints were removed",
            size,
        )
        return
    try:
        key.check(cosignature.line, checkpoint_text(note))
    except NoteError:
        _problem(
            report,
            f"checkpoint {size}: witness {name}'s cosignature does not verify over it: {name} "
            "vouched for another state of the log at this size, so the log was rewritten and "
            "signed again after it was witnessed",
            size,
        )
        return
    _vouch(report, name, size)


def _checked(witness: WitnessVerifier, line: str, text: str) -> datetime | None:
    """When ``witness`` cosigned ``text`` with ``line``, or None if the line is not that."""
    try:
        return witness.check(line, text)
    except NoteError:
        return None


def _view(view: WitnessView, trusted: Trusted, roots: dict[int, bytes], report: Report) -> None:
    name = view.witness.name
    if view.note is None:
        report.notes.append(f"witness {name} has cosigned no checkpoint of this log yet")
        return
    try:
        checkpoint = Checkpoint.open(view.note, trusted)
        text, lines = split_note(view.note)
        when = next(filter(None, (_checked(view.witness, line, text) for line in lines)), None)
        if when is None:
            raise NoteError(f"it carries no valid cosignature by {name}")
    except NoteError as exc:
        _problem(report, f"witness {name}'s latest checkpoint of this log does not check: {exc}")
        return
    size, seen = checkpoint.size, f"at {format_time(when)}"
    if size > report.size or size not in roots:
        _problem(
            report,
            f"witness {name} cosigned checkpoint {size} {seen}, but the log now holds "
            f"{report.size:,} entries: entries it signed were removed",
            size,
        )
    elif roots[size] != checkpoint.root:
        _problem(
            report,
            f"witness {name} cosigned checkpoint {size} with root {b64(checkpoint.root)} {seen}; "
            f"the log's entries now give {b64(roots[size])}: the log was rewritten after "
            f"{name} witnessed it",
            size,
        )
    else:
        _vouch(report, name, size)
