"""``/v1/axis-systems``: integrators register the agency systems that call the axis facade.

GET    /v1/axis-systems               every system (integrators and auditors), no secrets
POST   /v1/axis-systems               register one; a secret made for it is answered once
PUT    /v1/axis-systems/{system_id}   its agencies and label, and its secret when given
DELETE /v1/axis-systems/{system_id}   remove it: its signature opens nothing any more
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lgsp_adapter.audit.entry import format_time
from lgsp_adapter.errors import ErrorCode, PermanentError
from lgsp_adapter.http.registry import integrator_of, json_body, reader_of
from lgsp_adapter.registry.axis_systems import AxisSystems
from lgsp_adapter.registry.records import AxisSystemRecord

SYSTEMS: web.AppKey[AxisSystems] = web.AppKey("axis_systems_admin", AxisSystems)


def shown(record: AxisSystemRecord, secret: str | None = None) -> dict[str, Any]:
    """A system as integrators see it: never its secret, but one made for it, once."""
    shown: dict[str, Any] = {
        "system_id": record.system_id,
        "agencies": list(record.agencies),
        "label": record.label,
        "created_at": format_time(record.created_at),
        "updated_at": format_time(record.updated_at),
        "updated_by": record.updated_by,
    }
    if secret is not None:
        shown["secret"] = secret  # made for it: shown this once, then only sealed
    return shown


async def listing(request: web.Request) -> web.Response:
    """Every registered system."""
    reader_of(request)
    records = await request.app[SYSTEMS].records()
    return web.json_response({"systems": [shown(record) for record in records]})


async def register(request: web.Request) -> web.Response:
    """Register a system."""
    actor = integrator_of(request)
    record, made = await request.app[SYSTEMS].register(await json_body(request), actor=actor)
    response = web.json_response(shown(record, made), status=201)
    response.headers["Location"] = f"/v1/axis-systems/{record.system_id}"
    return response


async def replace(request: web.Request) -> web.Response:
    """Change a system's agencies and label (and its secret, when the body gives one)."""
    actor = integrator_of(request)
    body = await json_body(request)
    if "system_id" in body:
        raise PermanentError(
            ErrorCode.REGISTRY_INVALID,
            "the system id is the path's, and cannot change: remove and register",
        )
    body["system_id"] = request.match_info["system_id"]
    record, _ = await request.app[SYSTEMS].register(body, actor=actor, replace=True)
    return web.json_response(shown(record))


async def remove(request: web.Request) -> web.Response:
    """Remove a system."""
    actor = integrator_of(request)
    await request.app[SYSTEMS].remove(request.match_info["system_id"], actor=actor)
    return web.Response(status=204)


def add_axis_systems_routes(app: web.Application, systems: AxisSystems) -> None:
    """Mount ``/v1/axis-systems`` on ``app``."""
    app[SYSTEMS] = systems
    app.router.add_get("/v1/axis-systems", listing)
    app.router.add_post("/v1/axis-systems", register)
    app.router.add_put("/v1/axis-systems/{system_id}", replace)
    app.router.add_delete("/v1/axis-systems/{system_id}", remove)
