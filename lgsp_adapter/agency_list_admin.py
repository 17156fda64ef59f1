"""Filling the agency list: from the national axis' list (an operator's import), and from the
daemon's own settings at start. Both are administrative acts, recorded in the audit log."""

from __future__ import annotations

import hashlib

from lgsp_adapter.agency_code import AgencyCode
from lgsp_adapter.agency_list import Agency, ImportReport, read_national_list
from lgsp_adapter.audit import AuditEntry, AuditEvent
from lgsp_adapter.config import Settings
from lgsp_adapter.store.sqlite import SqliteStore


async def import_national_list(
    store: SqliteStore, data: bytes, *, actor: str, source: str
) -> ImportReport:
    """Merge a national-axis agency list into the store's list."""
    agencies, skipped = read_national_list(data)
    digest = hashlib.sha256(data).hexdigest()

    def entries(report: ImportReport) -> list[AuditEntry]:
        report.skipped = skipped
        report.read += len(skipped)
        return [
            AuditEntry(
                event=AuditEvent.ADMIN,
                outcome="agencies_imported",
                payload_sha256=digest,
                detail=f"from {source}: {report.summary()}"[:500],
                actor=actor,
            )
        ]

    return await store.agency_list.merge(agencies, entries)


async def list_settings_agencies(store: SqliteStore, settings: Settings) -> ImportReport:
    """Put the agencies the settings name into the list, where it lacks them."""
    agencies = [
        Agency(code=str(a.code), name=a.name, parent=_parent(str(a.code)), source="config")
        for a in settings.agencies
    ] + [
        Agency(
            code=str(a.code),
            name=a.name or str(a.code),
            parent=_parent(str(a.code)),
            source="config",
        )
        for a in settings.known_agencies
    ]

    def entries(report: ImportReport) -> list[AuditEntry]:
        if not report.added and not report.updated:
            return []
        return [
            AuditEntry(
                event=AuditEvent.ADMIN,
                outcome="agencies_from_settings",
                detail=report.summary(),
                actor="daemon",
            )
        ]

    return await store.agency_list.merge(agencies, entries)


def _parent(code: str) -> str | None:
    parent = AgencyCode.parse(code).parent
    return None if parent is None else str(parent)
