"""``/v1/endpoints``: the registry over HTTP, for integrators (change) and auditors (read).

    GET    /v1/endpoints                      list (after=CODE, limit=N)
    POST   /v1/endpoints                      register; 201 with the system's token, shown once
    GET    /v1/endpoints/{code}               one record, its tokens (ids only); ETag: revision
    PATCH  /v1/endpoints/{code}               merge patch; If-Match: "<revision>" guards it
    DELETE /v1/endpoints/{code}               stop serving it
    POST   /v1/endpoints/{code}/enable|disable
    POST   /v1/endpoints/{code}/test          does it answer: latency and TLS
    POST   /v1/endpoints/{code}/tokens        another token for its system, shown once
    DELETE /v1/endpoints/{code}/tokens/{id}   revoke one

Secrets (endpoint passwords, bearer tokens, HMAC secrets) are write-only: shown as
``**********``. ``If-Match`` is optional, but an integrator tool should send it: without it,
the last writer of a field wins.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp import web

from lgsp_adapter.audit.entry import format_time
from lgsp_adapter.errors import ErrorCode, PermanentError
from lgsp_adapter.http.app import client_of, read_body, whole_number
from lgsp_adapter.registry.agencies import Client, Role
from lgsp_adapter.registry.probe import probe
from lgsp_adapter.registry.records import EndpointRecord, TokenRecord
from lgsp_adapter.registry.service import Registry

REGISTRY: web.AppKey[Registry] = web.AppKey("registry", Registry)
SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("probe_session", aiohttp.ClientSession)
MAX_BODY = 64 * 1024
MAX_PAGE = 1000
_READERS = frozenset({Role.INTEGRATOR, Role.AUDITOR})


def integrator_of(request: web.Request) -> str:
    """The acting integrator, as the audit log names it (or ``auth.*`` refused)."""
    client = client_of(request, Role.INTEGRATOR)
    return f"{client.name} (http)"


def reader_of(request: web.Request) -> Client:
    """An integrator or an auditor: who may read the registry."""
    return client_of(request, _READERS)


async def json_body(request: web.Request) -> dict[str, Any]:
    """A registry change's body: a JSON object of at most ``MAX_BODY`` bytes."""
    data = await read_body(request, MAX_BODY)
    try:
        body = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise PermanentError(ErrorCode.REGISTRY_INVALID, f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise PermanentError(ErrorCode.REGISTRY_INVALID, "the body must be a JSON object")
    return body


def _expected(request: web.Request) -> int | None:
    """The revision in ``If-Match`` (``"3"`` or ``3``), if sent."""
    value = request.headers.get("If-Match")
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise PermanentError(
            ErrorCode.REGISTRY_INVALID, f'If-Match must be a revision like "3", not {value!r}'
        )
    return int(text)


def view(record: EndpointRecord, tokens: list[TokenRecord] | None = None) -> dict[str, Any]:
    """A record as the API shows it: secrets masked."""
    shown = record.agency.model_dump(mode="json")
    shown["parent"] = str(record.agency.parent_code) if record.agency.parent_code else None
    shown |= {
        "revision": record.revision,
        "source": str(record.source),
        "created_at": format_time(record.created_at),
        "updated_at": format_time(record.updated_at),
        "updated_by": record.updated_by,
    }
    if record.problem is not None:  # kept by an older version: not served until mended
        shown["problem"] = record.problem
    if tokens is not None:
        shown["tokens"] = [
            {
                "id": t.id,
                "label": t.label,
                "created_at": format_time(t.created_at),
                "created_by": t.created_by,
                "revoked_at": format_time(t.revoked_at) if t.revoked_at else None,
            }
            for t in tokens
        ]
    return shown


def _answer(record: EndpointRecord, status: int = 200, **more: Any) -> web.Response:
    response = web.json_response(view(record) | more, status=status)
    response.headers["ETag"] = f'"{record.revision}"'
    return response


async def _record(registry: Registry, code: str) -> EndpointRecord:
    record = await registry.store.endpoint(code)
    if record is None:
        raise PermanentError(ErrorCode.REGISTRY_NOT_FOUND, f"{code} is not registered here")
    return record


async def list_endpoints(request: web.Request) -> web.Response:
    """A page of records, by code."""
    reader_of(request)
    given = whole_number(request.query, "limit", ErrorCode.REGISTRY_INVALID)
    limit = 200 if given is None else given
    if not 1 <= limit <= MAX_PAGE:
        raise PermanentError(ErrorCode.REGISTRY_INVALID, f"limit is from 1 to {MAX_PAGE}")
    after = request.query.get("after", "")
    records = [r for r in await request.app[REGISTRY].store.endpoints() if r.code > after]
    page = records[:limit]
    body: dict[str, Any] = {"endpoints": [view(r) for r in page]}
    if len(records) > limit:
        body["next"] = f"/v1/endpoints?after={page[-1].code}&limit={limit}"
    return web.json_response(body)


async def create(request: web.Request) -> web.Response:
    """Register an endpoint."""
    actor = integrator_of(request)
    body = await json_body(request)
    token = body.pop("token", None)
    issue = body.pop("issue_token", True)
    label = body.pop("token_label", "system")
    if not (token is None or isinstance(token, str)) or not isinstance(issue, bool):
        raise PermanentError(
            ErrorCode.REGISTRY_INVALID, "token is a string and issue_token true or false"
        )
    if not isinstance(label, str):
        raise PermanentError(ErrorCode.REGISTRY_INVALID, "token_label is a string")
    record, plain = await request.app[REGISTRY].create(
        body, actor=actor, token=token, issue_token=issue, token_label=label
    )
    more = {} if plain is None else {"token": plain}
    response = _answer(record, 201, **more)
    response.headers["Location"] = f"/v1/endpoints/{record.code}"
    return response


async def show(request: web.Request) -> web.Response:
    """One record and its tokens."""
    reader_of(request)
    registry = request.app[REGISTRY]
    record = await _record(registry, request.match_info["code"])
    response = web.json_response(view(record, await registry.store.tokens(record.code)))
    response.headers["ETag"] = f'"{record.revision}"'
    return response


async def change(request: web.Request) -> web.Response:
    """Change fields."""
    actor = integrator_of(request)
    patch = await json_body(request)
    record = await request.app[REGISTRY].change(
        request.match_info["code"], patch, actor=actor, expected_revision=_expected(request)
    )
    return _answer(record)


async def enable(request: web.Request) -> web.Response:
    """Take packets again."""
    return await _switch(request, enabled=True)


async def disable(request: web.Request) -> web.Response:
    """Refuse packets; hold deliveries on the retry schedule."""
    return await _switch(request, enabled=False)


async def _switch(request: web.Request, *, enabled: bool) -> web.Response:
    actor = integrator_of(request)
    record = await request.app[REGISTRY].set_enabled(
        request.match_info["code"], enabled, actor=actor, expected_revision=_expected(request)
    )
    return _answer(record)


async def remove(request: web.Request) -> web.Response:
    """Stop serving an agency."""
    actor = integrator_of(request)
    await request.app[REGISTRY].remove(
        request.match_info["code"], actor=actor, expected_revision=_expected(request)
    )
    return web.Response(status=204)


async def test(request: web.Request) -> web.Response:
    """Probe the endpoint as a delivery would reach it."""
    integrator_of(request)
    record = await _record(request.app[REGISTRY], request.match_info["code"])
    return web.json_response(await probe(record.agency, request.app[SESSION]))


async def issue_token(request: web.Request) -> web.Response:
    """Another token for the agency's system (a second system, or a rotation)."""
    actor = integrator_of(request)
    body = await json_body(request) if request.can_read_body else {}
    unknown = sorted(set(body) - {"label", "token"})
    if unknown:
        raise PermanentError(
            ErrorCode.REGISTRY_INVALID,
            f"a token request has a label and a token, not {', '.join(unknown)}",
            details={"unknown": unknown},
        )
    label = body.get("label", "system")
    token = body.get("token")
    if not isinstance(label, str) or not (token is None or isinstance(token, str)):
        raise PermanentError(ErrorCode.REGISTRY_INVALID, "label and token are strings")
    record, plain = await request.app[REGISTRY].issue_token(
        request.match_info["code"], actor=actor, label=label, token=token
    )
    return web.json_response({"id": record.id, "label": record.label, "token": plain}, status=201)


async def revoke_token(request: web.Request) -> web.Response:
    """Revoke a token."""
    actor = integrator_of(request)
    await request.app[REGISTRY].revoke_token(
        request.match_info["code"], request.match_info["token_id"], actor=actor
    )
    return web.Response(status=204)


def add_registry_routes(
    app: web.Application, registry: Registry, session: aiohttp.ClientSession
) -> None:
    """Mount ``/v1/endpoints``."""
    app[REGISTRY] = registry
    app[SESSION] = session
    app.router.add_get("/v1/endpoints", list_endpoints)
    app.router.add_post("/v1/endpoints", create)
    app.router.add_get("/v1/endpoints/{code}", show)
    app.router.add_patch("/v1/endpoints/{code}", change)
    app.router.add_delete("/v1/endpoints/{code}", remove)
    app.router.add_post("/v1/endpoints/{code}/enable", enable)
    app.router.add_post("/v1/endpoints/{code}/disable", disable)
    app.router.add_post("/v1/endpoints/{code}/test", test)
    app.router.add_post("/v1/endpoints/{code}/tokens", issue_token)
    app.router.add_delete("/v1/endpoints/{code}/tokens/{token_id}", revoke_token)
