"""``GET /v1/agencies``: who an agency system can send to, with names and hierarchy.

    GET /v1/agencies?under=CODE&q=TEXT&after=CODE&limit=N

Each agency says whether this exchange can route to it now (``reachable``: served here or by a
daemon it knows on the bus); the rest of the national list is there for names and hierarchy.
"""

from __future__ import annotations

from aiohttp import web

from lgsp_adapter.errors import ErrorCode, PermanentError
from lgsp_adapter.http.app import DIRECTORY, client_of, whole_number
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.store import Store

AGENCY_STORE: web.AppKey[Store] = web.AppKey("agency_store", Store)
MAX_PAGE = 1000


def _code(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    if value is None:
        return None
    reading = AgencyCode.read(value)
    if reading.code is None:
        raise PermanentError(ErrorCode.AGENCY_CODE_INVALID, f"{name}: {reading.problem}")
    return str(reading.code)


async def agencies(request: web.Request) -> web.Response:
    """A page of the agency list."""
    client_of(request)
    given = whole_number(request.query, "limit", ErrorCode.AGENCY_LIST_INVALID)
    limit = 100 if given is None else given
    if not 1 <= limit <= MAX_PAGE:
        raise PermanentError(
            ErrorCode.AGENCY_LIST_INVALID, f"limit must be a whole number from 1 to {MAX_PAGE}"
        )
    found = await request.app[AGENCY_STORE].agency_list.find(
        under=_code(request, "under"),
        search=(request.query.get("q") or "").strip()[:100] or None,
        after=_code(request, "after") or "",
        limit=limit,
    )
    directory = request.app[DIRECTORY]
    return web.json_response(
        {
            "agencies": [
                {
                    **agency.model_dump(exclude={"deleted", "source"}, exclude_none=True),
                    "reachable": directory.is_known(AgencyCode.parse(agency.code)),
                }
                for agency in found
            ],
            "next": {"after": found[-1].code} if len(found) == limit else None,
        }
    )


def add_agency_list_routes(app: web.Application, store: Store) -> None:
    """Mount ``/v1/agencies`` on ``app``."""
    app[AGENCY_STORE] = store
    app.router.add_get("/v1/agencies", agencies)
