"""Filling the agency list: from the national axis' list (an operator's import), and from the
daemon's own settings at start. Both are administrative acts, recorded in the audit log."""

from __future__ import annotations

import getpass
import hashlib
import os
import socket

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
    """Put the agencies the settings name into the list, where it lacks them; those served
    here are never left marked deleted (they are routable, whatever the national list says)."""
    named: dict[str, str] = {str(agency.code): agency.name for agency in settings.agencies}
    for known in settings.known_agencies:  # an agency listed twice: a name beats none
        code = str(known.code)
        if code not in named or (known.name and named[code] == code):
            named[code] = known.name or code
    agencies = [
        Agency(code=code, name=name, parent=_parent(code), source="config")
        for code, name in named.items()
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

    served = [str(agency.code) for agency in settings.agencies]
    return await store.agency_list.merge(agencies, entries, revive=served)


def cli_actor() -> str:
    """Who runs a command: the account and the machine, for the audit log."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()} (cli)"


def _parent(code: str) -> str | None:
    parent = AgencyCode.parse(code).parent
    return None if parent is None else str(parent)
