"""An upstream axis' agency list (``getSynchronizeUnit``), merged into ours.

Read as an imported national list is (``read_national_entries``): entries without a standard
code or a name are skipped and said so, the same code twice keeps the last, parent loops are
cut. The axis names a parent by its unit ``id`` (``pid``); ours are codes. The agencies served
here are left as our registry has them: the axis may call them otherwise, or list them
deleted, but what this daemon serves it routes to.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from lgsp_adapter.audit import AuditEntry, AuditEvent
from lgsp_adapter.errors import ErrorCode, InvalidPacket
from lgsp_adapter.registry.agency_list import MAX_AGENCIES, ImportReport, read_national_entries
from lgsp_adapter.store import Store


async def merge_units(
    store: Store, units: list[dict[str, Any]], *, served: Collection[str], source: str
) -> ImportReport:
    """Merge the units into the store's agency list, but for the ``served`` codes; audited
    as one ``agencies_synchronised`` entry naming ``source``. ``InvalidPacket`` for a list
    larger than any country's (an axis gone wrong)."""
    if len(units) > MAX_AGENCIES:
        raise InvalidPacket(
            ErrorCode.AGENCY_LIST_INVALID, f"more than {MAX_AGENCIES:,} agencies in one list"
        )
    code_of = {str(unit.get("id")): unit.get("code") for unit in units if unit.get("id")}
    entries = [
        {**unit, "pcode": unit.get("pcode") or code_of.get(str(unit.get("pid") or ""))}
        for unit in units
    ]
    agencies, skipped = read_national_entries(entries)
    kept = [agency for agency in agencies if agency.code not in served]
    left = len(agencies) - len(kept)

    def audited(report: ImportReport) -> list[AuditEntry]:
        report.skipped = skipped
        report.read += len(skipped) + left
        report.unchanged += left
        return [
            AuditEntry(
                event=AuditEvent.ADMIN,
                outcome="agencies_synchronised",
                detail=f"from the axis at {source}: {report.summary()}; {left} served here "
                f"left as registered"[:500],
                actor="axis-poller",
            )
        ]

    return await store.agency_list.merge(kept, audited)
