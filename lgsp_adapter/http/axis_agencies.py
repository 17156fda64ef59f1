"""The axis' agency operations over the exchange's agency list.

``getAgenciesList`` answers every agency the list holds (not deleted); ``getSynchronizeUnit``
every agency with the version of its last change, deletions included (``?version=N``: only
what changed after N, for a client that keeps the highest version it saw).
``registerAgency`` lets a system set the details (name, parent, mail, phone, fax) of an agency
it speaks for, audited as any change to the list; creating or removing agencies is the
registry's, so ``deleteAgency`` is refused as not supported, and says where to go instead.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from lgsp_adapter.audit import AuditEntry, AuditEvent
from lgsp_adapter.errors import ErrorCode, PermanentError
from lgsp_adapter.exchange.axis_client import VIETNAM
from lgsp_adapter.http.app import STORE, read_body
from lgsp_adapter.http.axis_facade import AxisRequest, Operation, json_answer
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.packets.axis_wire import answer
from lgsp_adapter.registry.agency_list import Agency, AgencyChange, ImportReport

SYNC_PAGE = 5000  # changes read from the store at a time
_LIST_PAGE = 1000
_REGISTER_BYTES = 16 * 1024


def _listed(agency: Agency) -> dict[str, Any]:
    """An agency as the axis lists it; its ``id`` is its code, and ``pid`` its parent's."""
    return {
        "id": agency.code,
        "code": agency.code,
        "name": agency.name,
        "mail": agency.mail or "",
        "pid": agency.parent or "",
    }


def _synchronised(change: AgencyChange) -> dict[str, Any]:
    return {
        **_listed(change.agency),
        "version": change.version,
        "deleted": change.agency.deleted,
        "modifyDate": change.updated_at.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M:%S"),
        "centerCode": "",
        "isAgency": True,
    }


async def agencies_list(call: AxisRequest) -> web.Response:
    """Every agency on the list, in code order."""
    await read_body(call.request, _REGISTER_BYTES)
    agency_list = call.request.app[STORE].agency_list
    found: list[Agency] = []
    while page := await agency_list.find(after=found[-1].code if found else "", limit=_LIST_PAGE):
        found.extend(page)
        if len(page) < _LIST_PAGE:
            break
    return json_answer(answer(data=[_listed(agency) for agency in found]))


async def synchronize_unit(call: AxisRequest) -> web.Response:
    """Every agency with its version, deleted ones included, as the vendors' SDK asks (with no
    parameter: its header map cannot carry a signed ``version``, since it always sends its
    own ``XroadVnpt-version``); only those changed after ``?version=N`` when a client asks so.
    The query is unsigned, and needs no signature: it narrows what the caller may read anyway."""
    await read_body(call.request, _REGISTER_BYTES)
    text = call.request.query.get("version", "0").strip() or "0"
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise PermanentError(ErrorCode.AXIS_BAD_REQUEST, f"version {text[:40]!r} is not a number")
    agency_list = call.request.app[STORE].agency_list
    changes: list[AgencyChange] = []
    after = int(text)
    while page := await agency_list.changes(after_version=after, limit=SYNC_PAGE):
        changes.extend(page)
        if len(page) < SYNC_PAGE:
            break
        after = page[-1].version
    return json_answer(answer(data=[_synchronised(change) for change in changes]))


async def register_agency(call: AxisRequest) -> web.Response:
    """The details of one of the system's agencies, as its software keeps them."""
    body = await read_body(call.request, _REGISTER_BYTES)
    try:
        document = json.loads(body or b"null")
    except (ValueError, RecursionError) as exc:
        raise PermanentError(ErrorCode.AXIS_BAD_REQUEST, f"the body is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise PermanentError(ErrorCode.AXIS_BAD_REQUEST, "send the agency as a JSON object")
    agency = _agency(document)
    if AgencyCode.parse(agency.code) not in call.caller.client.agencies:
        raise PermanentError(
            ErrorCode.AUTH_FORBIDDEN,
            f"system {call.headers['systemid']} does not speak for {agency.code}",
            details={"sender": agency.code},
        )
    actor = call.caller.client.name

    def entries(report: ImportReport) -> list[AuditEntry]:
        return [
            AuditEntry(
                event=AuditEvent.ADMIN,
                outcome="agency_registered",
                recipient=agency.code,
                detail=f"by axis registerAgency: {report.summary()}"[:500],
                actor=actor,
            )
        ]

    await call.request.app[STORE].agency_list.merge([agency], entries)
    return json_answer(answer(data=_listed(agency)))


def _agency(document: dict[str, Any]) -> Agency:
    """The agency an axis ``registerAgency`` body describes (``pcode`` its parent)."""
    code = AgencyCode.read(str(document.get("code") or "")).code
    if code is None:
        raise PermanentError(
            ErrorCode.AGENCY_CODE_INVALID, f"code {str(document.get('code'))[:40]!r} is not one"
        )
    parent = document.get("pcode") or None
    if parent is not None and AgencyCode.read(str(parent)).code is None:
        raise PermanentError(ErrorCode.AGENCY_CODE_INVALID, f"pcode {str(parent)[:40]!r}")
    try:
        return Agency(
            code=str(code),
            name=str(document.get("name") or "").strip() or str(code),
            parent=str(parent) if parent else None,
            mail=_optional(document, "mail"),
            mobile=_optional(document, "mobile"),
            fax=_optional(document, "fax"),
            source="axis",
        )
    except ValidationError as exc:
        raise PermanentError(ErrorCode.AXIS_BAD_REQUEST, f"the agency is not valid: {exc}") from exc


def _optional(document: dict[str, Any], name: str) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    return str(value).strip() or None


async def delete_agency(call: AxisRequest) -> web.Response:
    """Not here: an agency leaves the exchange when an integrator removes it from the registry."""
    raise PermanentError(
        ErrorCode.AXIS_NOT_SUPPORTED,
        "deleteAgency is not supported: an integrator removes an agency from the registry "
        "(DELETE /v1/endpoints/{code})",
    )


def agency_operations() -> dict[str, Operation]:
    """The agency operations by name."""
    return {
        "getAgenciesList": agencies_list,
        "getAgenciesListQD20": agencies_list,
        "getSynchronizeUnit": synchronize_unit,
        "registerAgency": register_agency,
        "deleteAgency": delete_agency,
    }
