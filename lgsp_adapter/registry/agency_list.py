"""The list of agencies an exchange knows: codes, names, hierarchy, contacts, as agency
systems ask "who can I send to", and as the national axis publishes it.

The national axis answers ``getAgenciesList`` (and ``getSynchronizeUnit``, incrementally) with
``{"status": "OK", "data": [{"id", "pcode", "code", "name", "mail", "mobile", "fax", ...}]}``;
an import reads that (or the bare list), keeps each agency's parent (``pcode``, else the parent
its code implies), and reports, without stopping, the entries it cannot take: a code without
the standard shape, a missing name. An entry marked ``deleted`` is kept as deleted, so a
document addressed to a dissolved body is refused with a reason rather than as unknown.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lgsp_adapter.audit.entry import AuditEntry, storable
from lgsp_adapter.errors import ErrorCode, InvalidPacket
from lgsp_adapter.packets.agency_code import AgencyCode

MAX_AGENCIES = 200_000


class Agency(BaseModel):
    """One agency of the list."""

    model_config = ConfigDict(frozen=True)

    code: str
    name: str
    parent: str | None = None
    mail: str | None = None
    mobile: str | None = None
    fax: str | None = None
    deleted: bool = False
    source: str = Field(
        "national", description="national (imported) or config (this daemon's registry, settings)."
    )

    @field_validator("name", "parent", "mail", "mobile", "fax")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        # Whatever a list or a registration holds, every store can keep (PostgreSQL no NUL).
        return None if value is None else storable(value)


@dataclass
class ImportReport:
    """What an import did."""

    read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        """One line for people."""
        return (
            f"{self.read:,} read: {self.added:,} added, {self.updated:,} updated, "
            f"{self.unchanged:,} unchanged, {self.deleted:,} marked deleted, "
            f"{len(self.skipped):,} skipped"
        )


def _text(value: Any, limit: int) -> str | None:
    """Text from the list, tidied; None for what is not text (a number, an object)."""
    if not isinstance(value, str):
        return None
    clean = value.encode("utf-8", "replace").decode("utf-8")  # lone surrogates cannot be stored
    clean = "".join(c for c in clean if c.isprintable() or c.isspace())  # NUL cannot either
    text = unicodedata.normalize("NFC", " ".join(clean.split()))
    return text[:limit] or None


def search_key(text: str) -> str:
    """What searches match on: composed, case-folded (Vietnamese capitals included)."""
    return unicodedata.normalize("NFC", text).casefold()


def read_national_list(data: bytes) -> tuple[list[Agency], list[dict[str, Any]]]:
    """The agencies of a national-axis list, and the entries skipped (with their position and
    why); ``InvalidPacket`` when the document is not such a list at all."""
    return read_national_entries(_entries_of(data))


def read_national_entries(document: list[Any]) -> tuple[list[Agency], list[dict[str, Any]]]:
    """The agencies of a national-axis list's entries (``code``, ``name``, ``pcode``,
    ``mail``, ``mobile``, ``fax``, ``deleted``), and those skipped, with why: no standard
    code, no name, the same code again. Parent chains that loop are cut."""
    agencies: dict[str, Agency] = {}
    positions: dict[str, int] = {}
    skipped: list[dict[str, Any]] = []
    for position, item in enumerate(document):
        if not isinstance(item, dict):
            skipped.append({"position": position, "why": "not an object"})
            continue
        reading = AgencyCode.read(str(item.get("code", "")))
        if reading.code is None:
            skipped.append({"position": position, "code": item.get("code"), "why": reading.problem})
            continue
        name = _text(item.get("name"), 300)
        if name is None:
            skipped.append(
                {"position": position, "code": str(reading.code), "why": "no name as text"}
            )
            continue
        pcode = item.get("pcode")
        given = AgencyCode.read(pcode).code if isinstance(pcode, str) else None
        parent = given if given is not None and given != reading.code else reading.code.parent
        code = str(reading.code)
        if code in agencies:  # the list's last word on a code wins; the earlier one is reported
            skipped.append(
                {
                    "position": positions[code],
                    "code": code,
                    "why": f"the same code again at entry {position}, which is kept",
                }
            )
        positions[code] = position
        agencies[code] = Agency(
            code=code,
            name=name,
            parent=str(parent) if parent is not None and parent != reading.code else None,
            mail=_text(item.get("mail"), 200),
            mobile=_text(item.get("mobile"), 50),
            fax=_text(item.get("fax"), 50),
            deleted=item.get("deleted") in (True, 1, "1", "true", "True", "yes"),
        )
    return _without_cycles(agencies), skipped


def _entries_of(data: bytes) -> list[Any]:
    """The list's entries, from a bare JSON array or the axis' ``{status, data}`` answer."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidPacket(ErrorCode.JSON_MALFORMED, f"not valid JSON: {exc}") from exc
    if isinstance(document, dict):
        if str(document.get("status", "OK")).upper() != "OK":
            raise InvalidPacket(
                ErrorCode.AGENCY_LIST_INVALID,
                f"the list says it failed: {document.get('ErrorDesc') or document.get('status')}",
            )
        document = document.get("data")
    if not isinstance(document, list):
        raise InvalidPacket(
            ErrorCode.AGENCY_LIST_INVALID, "expected a list of agencies (or {data: [...]})"
        )
    if len(document) > MAX_AGENCIES:
        raise InvalidPacket(
            ErrorCode.AGENCY_LIST_INVALID, f"more than {MAX_AGENCIES:,} agencies in one list"
        )
    return document


def _without_cycles(agencies: dict[str, Agency]) -> list[Agency]:
    """A parent chain that comes back to where it started is cut where it closes: that agency
    takes the parent its own code implies (or none)."""
    result = dict(agencies)
    for code in agencies:
        seen = {code}
        current = result[code].parent
        while current is not None and current in result:
            if current in seen:
                implied = AgencyCode.parse(code).parent
                result[code] = result[code].model_copy(
                    update={"parent": str(implied) if implied is not None else None}
                )
                break
            seen.add(current)
            current = result[current].parent
    return list(result.values())


@dataclass(frozen=True, slots=True)
class AgencyChange:
    """An agency as it stands after a change, with the change's place in the list's history:
    ``version`` grows with every change to any agency, so a system that synchronises asks for
    what changed after the last version it saw (the axis' ``getSynchronizeUnit``)."""

    agency: Agency
    version: int
    updated_at: datetime


class AgencyListStore(Protocol):
    """The agency list's table, on SQLite or PostgreSQL."""

    async def merge(
        self,
        agencies: Sequence[Agency],
        entries: Callable[[ImportReport], list[AuditEntry]],
        *,
        revive: Sequence[str] = (),
    ) -> ImportReport:
        """Add new agencies and update changed ones, with the entries ``entries`` makes."""
        ...

    async def find(
        self,
        *,
        under: str | None = None,
        search: str | None = None,
        after: str = "",
        limit: int = 100,
        include_deleted: bool = False,
    ) -> list[Agency]:
        """Agencies by code order."""
        ...

    async def changes(self, *, after_version: int, limit: int) -> list[AgencyChange]:
        """Agencies changed (added, updated, marked deleted) after ``after_version``, in
        version order, deleted ones included."""
        ...
