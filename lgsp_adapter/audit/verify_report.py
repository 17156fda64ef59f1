"""What a verification of the log found, for the CLI, the HTTP API and the auditors' page alike."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the log; ``entry`` is set when an entry is at fault."""

    message: str
    entry: int | None = None
    checkpoint: int | None = None


@dataclass
class Report:
    """What ``verify_log`` checked and found."""

    size: int = 0
    archived_below: int = 0
    entries_checked: int = 0
    checkpoints_checked: int = 0
    archives_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    witnessed: dict[str, int] = field(default_factory=dict)  # witness: largest size it vouches
    notes: list[str] = field(default_factory=list)  # what was not checked, and why

    @property
    def ok(self) -> bool:
        """Nothing wrong."""
        return not self.problems

    @property
    def first_bad_entry(self) -> int | None:
        """The lowest entry index any problem names."""
        named = [p.entry for p in self.problems if p.entry is not None]
        return min(named) if named else None

    def summary(self) -> str:
        """One line for people."""
        if self.ok:
            archived = (
                f" (entries below {self.archived_below:,} archived;"
                f" archive files checked: {self.archives_checked})"
                if self.archived_below
                else ""
            )
            vouched = "".join(
                f"; witness {name} vouches up to {size:,}"
                for name, size in sorted(self.witnessed.items())
            )
            return (
                f"the log verifies: {self.entries_checked:,} entries, "
                f"{self.checkpoints_checked:,} signed checkpoints, tree size {self.size:,}"
                + archived
                + vouched
            )
        first = self.first_bad_entry
        where = f"first bad entry: {first}" if first is not None else self.problems[0].message
        return f"the log does NOT verify ({len(self.problems)} problems; {where})"
