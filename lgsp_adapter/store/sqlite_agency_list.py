"""The agency list on SQLite: who the exchange knows, by code, with names and hierarchy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from lgsp_adapter.audit import AuditEntry
from lgsp_adapter.registry.agency_list import Agency, AgencyChange, ImportReport, search_key
from lgsp_adapter.store.sqlite_part import SqlitePart

SCHEMA = """
    CREATE TABLE agencies (
        code TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        parent TEXT,
        mail TEXT,
        mobile TEXT,
        fax TEXT,
        deleted INTEGER NOT NULL DEFAULT 0,
        source TEXT NOT NULL,
        search_key TEXT NOT NULL,          -- name and code, composed and case-folded
        updated_at TEXT NOT NULL
    );
    CREATE INDEX agencies_parent ON agencies (parent, code);
"""
COLUMNS = ("code", "name", "parent", "mail", "mobile", "fax", "deleted", "source")
# Every change to an agency takes the next version, so a system can ask what changed since.
VERSION_SCHEMA = """
    ALTER TABLE agencies ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    UPDATE agencies SET version = rowid;
    CREATE INDEX agencies_version ON agencies (version);
"""


class SqliteAgencyList(SqlitePart):
    """Reads and imports of the agency list, on the store's connections."""

    async def merge(
        self,
        agencies: Sequence[Agency],
        entries: Callable[[ImportReport], list[AuditEntry]],
        *,
        revive: Sequence[str] = (),
    ) -> ImportReport:
        """Add new agencies and update changed ones, in one short transaction with the audit
        entries ``entries`` makes of the outcome. An agency from the settings never overwrites
        one the national list gave (its name and place are the authoritative ones); the codes
        in ``revive`` (served here) are never left marked deleted.

        What changes is worked out before the transaction, so a national list of 200,000
        agencies holds the store's writer for two bulk statements, not a query per agency."""
        rows = self._read.execute(f"SELECT {', '.join(COLUMNS)} FROM agencies").fetchall()
        existing = {row[0]: tuple(row) for row in rows}
        now = datetime.now(UTC).isoformat()
        report, added, changed = merge_plan(agencies, existing, now)
        async with self._transaction():
            top = self._db.execute("SELECT COALESCE(MAX(version), 0) FROM agencies").fetchone()
            added, changed, revived = versioned(added, changed, revive, now, int(top[0]))
            self._db.executemany(
                f"INSERT INTO agencies ({', '.join(COLUMNS)}, search_key, updated_at, version)"
                f" VALUES ({', '.join('?' * (len(COLUMNS) + 3))})",
                added,
            )
            self._db.executemany(
                "UPDATE agencies SET name = ?, parent = ?, mail = ?, mobile = ?, fax = ?,"
                " deleted = ?, source = ?, search_key = ?, updated_at = ?, version = ?"
                " WHERE code = ?",
                changed,
            )
            self._db.executemany(
                "UPDATE agencies SET deleted = 0, updated_at = ?, version = ? WHERE code = ?"
                " AND deleted = 1",
                revived,
            )
            self._audit.append_in_transaction(entries(report))
        return report

    async def find(
        self,
        *,
        under: str | None = None,
        search: str | None = None,
        after: str = "",
        limit: int = 100,
        include_deleted: bool = False,
    ) -> list[Agency]:
        """Agencies by code order: those directly under ``under``, whose name or code has
        ``search`` (any case, composed or not), after the code ``after``."""
        clauses = ["code > ?"]
        parameters: list[Any] = [after]
        if under is not None:
            clauses.append("parent = ?")
            parameters.append(under)
        if search:
            clauses.append("instr(search_key, ?) > 0")
            parameters.append(search_key(search))
        if not include_deleted:
            clauses.append("deleted = 0")
        rows = self._read.execute(
            f"SELECT {', '.join(COLUMNS)} FROM agencies WHERE {' AND '.join(clauses)}"
            " ORDER BY code LIMIT ?",
            (*parameters, limit),
        ).fetchall()
        return [
            Agency.model_validate({**dict(zip(COLUMNS, row, strict=True)), "deleted": bool(row[6])})
            for row in rows
        ]

    async def changes(self, *, after_version: int, limit: int) -> list[AgencyChange]:
        """Agencies changed after ``after_version``, in version order, deleted ones too."""
        rows = self._read.execute(
            f"SELECT {', '.join(COLUMNS)}, version, updated_at FROM agencies"
            " WHERE version > ? ORDER BY version LIMIT ?",
            (after_version, limit),
        ).fetchall()
        return [agency_change(row) for row in rows]


def agency_change(row: Sequence[Any]) -> AgencyChange:
    """A change from its row: ``COLUMNS``, then version and updated_at (either backend)."""
    fields = {**dict(zip(COLUMNS, row[: len(COLUMNS)], strict=True)), "deleted": bool(row[6])}
    updated = row[len(COLUMNS) + 1]
    return AgencyChange(
        agency=Agency.model_validate(fields),
        version=int(row[len(COLUMNS)]),
        updated_at=updated if isinstance(updated, datetime) else datetime.fromisoformat(updated),
    )


def versioned(
    added: list[tuple[Any, ...]],
    changed: list[tuple[Any, ...]],
    revive: Sequence[str],
    now: str,
    top: int,
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows of a merge with the versions they take, counting on from ``top`` (the highest
    yet, read in the merge's transaction): each added row ends with its version, each changed
    one has it before its code, each revived code comes as (time, version, code)."""
    counter = iter(range(top + 1, top + 1 + len(added) + len(changed) + len(revive)))
    return (
        [(*row, next(counter)) for row in added],
        [(*row[:-1], next(counter), row[-1]) for row in changed],
        [(now, next(counter), code) for code in revive],
    )


def merge_plan(
    agencies: Sequence[Agency], existing: dict[str, tuple[Any, ...]], now: str
) -> tuple[ImportReport, list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """What a merge changes: its report, the rows to add, and the rows to update (their
    columns after the code, then the code), given the stored rows by code."""
    report = ImportReport(read=len(agencies))
    added: list[tuple[Any, ...]] = []
    changed: list[tuple[Any, ...]] = []
    for agency in agencies:
        values = _row(agency)
        row = existing.get(agency.code)
        if row is None:
            added.append((*values, _key(agency), now))
            report.added += 1
        elif row == values or (agency.source == "config" and row[7] != "config"):
            report.unchanged += 1
            continue
        else:
            changed.append((*values[1:], _key(agency), now, agency.code))
            report.updated += 1
        if agency.deleted and (row is None or not row[6]):
            report.deleted += 1
    return report, added, changed


def _key(agency: Agency) -> str:
    return search_key(f"{agency.name} {agency.code}")


def _row(agency: Agency) -> tuple[Any, ...]:
    return (
        agency.code,
        agency.name,
        agency.parent,
        agency.mail,
        agency.mobile,
        agency.fax,
        int(agency.deleted),
        agency.source,
    )
