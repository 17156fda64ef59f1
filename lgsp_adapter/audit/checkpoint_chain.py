"""Which signed checkpoints a verification may trust, across key rotations.

A checkpoint is only as good as the key that signed it, and which key that must be depends on
its place in the log: rotation hands the log from one key to the next at a size, and a retired
key that keeps signing is as suspect as an unknown one.
"""

from __future__ import annotations

from lgsp_adapter.audit.checkpoint import Checkpoint
from lgsp_adapter.audit.signing import NoteError, Trusted, Verifier, signature_keys
from lgsp_adapter.audit.store import StoredCheckpoint
from lgsp_adapter.audit.verify_report import Problem, Report


def open_checkpoints(
    rows: list[StoredCheckpoint], trusted: Trusted, report: Report
) -> dict[int, Checkpoint]:
    """Open every checkpoint with the key in force at its size: the log's first key, then,
    from each rotation's hand-over (signed by the retiring key, then by its successor), the
    successor alone. A retired key signing after its hand-over is a problem, however much it
    is trusted, and so is any signature by a key not trusted or that does not verify."""
    signed: dict[int, Checkpoint] = {}
    current: Verifier | None = None
    for row in sorted(rows, key=lambda row: row.size):

        def problem(message: str, size: int = row.size) -> None:
            report.problems.append(Problem(f"checkpoint {size}: {message}", checkpoint=size))

        try:
            signers = signature_keys(row.note, trusted)
        except NoteError as exc:
            problem(str(exc))
            continue
        keys = [signer for signer in signers if signer is not None]
        if not keys or len(keys) != len(signers):
            try:
                Checkpoint.open(row.note, trusted)  # names what is wrong, when it can
            except NoteError as exc:
                problem(str(exc))
                continue
            problem("it also carries a signature by a key not trusted, or one that does not verify")
            continue
        if current is None:
            current = keys[0]
        if current not in keys:
            problem(
                f"signed by {', '.join(k.fingerprint[:16] for k in keys)}, not by "
                f"{current.fingerprint[:16]}, the log's key at this size"
            )
            continue
        try:
            checkpoint = Checkpoint.open(row.note, current)
        except NoteError as exc:
            problem(str(exc))
            continue
        if (checkpoint.size, checkpoint.root) != (row.size, row.root):
            problem("its stored size or root differs from its signed note")
            continue
        signed[row.size] = checkpoint
        current = keys[-1]  # a hand-over: its last signer signs from here on
    return signed
