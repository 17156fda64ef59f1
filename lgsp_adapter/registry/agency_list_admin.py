"""Filling the agency list: from the national axis' list (an operator's import), and from the
daemon's registry and settings. Both are administrative acts, recorded in the audit log."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from lgsp_adapter.audit import AuditEntry, AuditEvent
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.registry.agencies import KnownAgency, ServedAgency
from lgsp_adapter.registry.agency_list import (
    Agency,
    AgencyListStore,
    ImportReport,
    read_national_list,
)


async def import_national_list(
    agency_list: AgencyListStore, data: bytes, *, actor: str, source: str
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

    return await agency_list.merge(agencies, entries)


async def list_served_agencies(
    agency_list: AgencyListStore, served: Sequence[ServedAgency], known: Sequence[KnownAgency]
) -> ImportReport:
    """Put the agencies this daemon serves (the registry's) and knows on the bus (the
    settings') into the list, where it lacks them; those served here are never left marked
    deleted (they are routable, whatever the national list says). Called at start and after
    every registry change, so "who can I send to" includes a commune registered a moment ago."""
    named: dict[str, tuple[str, str | None]] = {
        str(agency.code): (agency.name, _text(agency.parent_code)) for agency in served
    }
    for other in known:  # an agency listed twice: a name beats none
        code = str(other.code)
        if code not in named or (other.name and named[code][0] == code):
            named[code] = (other.name or code, _text(other.code.parent))
    agencies = [
        Agency(code=code, name=name, parent=parent, source="config")
        for code, (name, parent) in named.items()
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

    return await agency_list.merge(
        agencies, entries, revive=[str(agency.code) for agency in served]
    )


def _text(code: AgencyCode | None) -> str | None:
    return None if code is None else str(code)
