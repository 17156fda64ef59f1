"""The HTTP API (``/v1``) over aiohttp: agency systems submit packets and follow them.

Errors are JSON, ``{"error": {"code", "message", "details"}}``, with the stable codes of
``docs/errors.md`` and a status that says whose fault it is: 4xx for the caller's, 5xx for ours.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from uuid import UUID

from aiohttp import web

from lgsp_adapter import translators
from lgsp_adapter.audit.entry import format_time
from lgsp_adapter.errors import ErrorCode, FatalError, LgspError, PermanentError, TransientError
from lgsp_adapter.exchange.idempotency import idempotency_key, keyed_id
from lgsp_adapter.exchange.intake import Intake, Translation
from lgsp_adapter.http.openapi import openapi, query_names
from lgsp_adapter.http.rate_limit import RateLimiter
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.registry.agencies import Client, Role
from lgsp_adapter.registry.directory import Directory
from lgsp_adapter.store import Store
from lgsp_adapter.store.unavailable import STORE_UNAVAILABLE, unavailable_error
from lgsp_adapter.translators import Envelope

log = logging.getLogger(__name__)

_STATUS = {
    ErrorCode.AUTH_MISSING: 401,
    ErrorCode.AUTH_INVALID: 401,
    ErrorCode.PACKET_FORGED_SENDER: 403,
    ErrorCode.PACKET_NOT_FOUND: 404,
    ErrorCode.PACKET_TOO_LARGE: 413,
    ErrorCode.XML_TOO_LARGE: 413,
    ErrorCode.PACKET_UNKNOWN_RECIPIENT: 422,
    ErrorCode.AUTH_FORBIDDEN: 403,
    ErrorCode.AUTH_RATE_LIMITED: 429,
    ErrorCode.HTTP_BODY_TIMEOUT: 408,
    ErrorCode.HTTP_UNKNOWN_PARAMETER: 400,
    ErrorCode.INBOX_ALREADY_ACKNOWLEDGED: 409,
    ErrorCode.AUDIT_BAD_QUERY: 400,
    ErrorCode.AUDIT_NOT_FOUND: 404,
    ErrorCode.AUDIT_NO_CHECKPOINT: 409,
    ErrorCode.PACKET_RECIPIENT_DISABLED: 422,
    ErrorCode.PACKET_KIND_NOT_ACCEPTED: 422,
    ErrorCode.PACKET_IDEMPOTENCY_KEY_INVALID: 400,
    ErrorCode.PACKET_IDEMPOTENCY_CONFLICT: 422,
    ErrorCode.PACKET_IDEMPOTENCY_EXPIRED: 422,
    ErrorCode.PACKET_DUPLICATE_DOCUMENT: 409,
    ErrorCode.TRANSLATOR_UNKNOWN: 400,
    ErrorCode.REGISTRY_NOT_FOUND: 404,
    ErrorCode.REGISTRY_DUPLICATE: 409,
    ErrorCode.REGISTRY_TOKEN_REUSED: 409,
    ErrorCode.REGISTRY_CONFLICT: 412,
    ErrorCode.DEAD_LETTER_NOT_FOUND: 404,
    ErrorCode.DEAD_LETTER_NOT_DEAD: 409,
    ErrorCode.DEAD_LETTER_ELSEWHERE: 409,
}
_CHUNK_BYTES = 64 * 1024

STORE: web.AppKey[Store] = web.AppKey("store", Store)
DIRECTORY: web.AppKey[Directory] = web.AppKey("directory", Directory)
INTAKE: web.AppKey[Intake] = web.AppKey("intake", Intake)
MAX_BYTES: web.AppKey[int] = web.AppKey("max_bytes", int)
LIMITER: web.AppKey[RateLimiter] = web.AppKey("limiter", RateLimiter)
BODY_TIMEOUT: web.AppKey[float] = web.AppKey("body_timeout_s", float)
DEFAULT_BODY_TIMEOUT_S = 120.0


def status_of(error: LgspError) -> int:
    """The HTTP status for an error: whose fault, and whether to try again."""
    if error.code in _STATUS:
        return _STATUS[error.code]
    if isinstance(error, PermanentError):
        return 400
    if isinstance(error, TransientError | FatalError):
        return 503
    return 500


def error_response(error: LgspError) -> web.Response:
    """The JSON body and status of an error."""
    response = web.json_response(error.to_dict(), status=status_of(error))
    if response.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="lgsp-adapter"'
    details = error.details if isinstance(error.details, dict) else {}
    retry_after = details.get("retry_after_s")
    if isinstance(retry_after, int):
        response.headers["Retry-After"] = str(retry_after)

    return response


@web.middleware
async def errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn our errors into their JSON answers, and anything unexpected into a 500 we log."""
    try:
        return await handler(request)
    except LgspError as exc:
        return error_response(exc)
    except web.HTTPException:
        raise
    except STORE_UNAVAILABLE as exc:
        log.warning("%s %s: the store is unavailable: %s", request.method, request.path, exc)
        return error_response(unavailable_error(exc))
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        body = {"error": {"code": "internal", "message": "an internal error; it is logged"}}
        return web.json_response(body, status=500)


@web.middleware
async def known_parameters(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Refuse query parameters the API document does not give the operation: a misspelt
    filter (``?agncy=``) would otherwise widen a search or a page without a word."""
    resource = request.match_info.route.resource
    method = "GET" if request.method == "HEAD" else request.method
    allowed = query_names(resource.canonical, method) if resource else None
    if allowed is not None:
        unknown = sorted(set(request.query) - allowed)
        if unknown:
            raise PermanentError(
                ErrorCode.HTTP_UNKNOWN_PARAMETER,
                f"unknown query parameters: {', '.join(unknown)}",
                details={"unknown": unknown, "allowed": sorted(allowed)},
            )
    return await handler(request)


def client_of(request: web.Request, role: Role | frozenset[Role] = Role.AGENCY) -> Client:
    """The client presenting a bearer token in ``role`` (or one of those roles): else
    ``auth.missing``, ``auth.invalid`` or ``auth.forbidden``."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise PermanentError(ErrorCode.AUTH_MISSING, "send Authorization: Bearer <token>")
    client = request.app[DIRECTORY].client_for(token.strip())
    if client is None:
        raise PermanentError(ErrorCode.AUTH_INVALID, "the token is not one this exchange issued")
    if LIMITER in request.app:
        request.app[LIMITER].take(client.name)
    roles = {role} if isinstance(role, Role) else role
    if client.role not in roles:
        wanted = " or ".join(sorted(r.value for r in roles))
        raise PermanentError(
            ErrorCode.AUTH_FORBIDDEN, f"client {client.name} is not an {wanted}'s client"
        )
    return client


def whole_number(params: Mapping[str, str], name: str, code: ErrorCode) -> int | None:
    """A query parameter that must be a whole number (None when absent); otherwise a 400
    with ``code``. ASCII digits only, at most 18: ``int`` would take "²" or refuse 5,000
    digits with an error of its own."""
    value = params.get(name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise PermanentError(code, f"{name} must be a whole number, not {value!r}")
    return int(value)


def translation_for(
    request: web.Request, client: Client, content_type: str | None
) -> Translation | None:
    """The translator a submission goes through, if any: the one the sending agency's endpoint
    names, when the body comes in that translator's media type (``X-LGSP-Format: lgsp`` says
    it is one of our packets after all). Who sends is ``X-LGSP-Sender`` or the client's only
    agency; ``X-LGSP-To`` (codes, comma-separated) and ``X-LGSP-Reference`` fill what the
    agency's format may not say."""
    if request.headers.get("X-LGSP-Format", "").strip().lower() == "lgsp":
        return None
    sender = request.headers.get("X-LGSP-Sender", "").strip()
    if not sender and len(client.agencies) == 1:
        sender = str(client.agencies[0])
    code = AgencyCode.read(sender).code
    if code is None or code not in client.agencies:
        return None  # the packet itself must then say who sends, and is checked for it
    agency = request.app[DIRECTORY].served(code)
    name = agency.endpoint.translator if agency is not None else None
    if name is None:
        return None
    installed = translators.installed().get(name)
    if installed is None:  # the intake's refusal names it, in the audit log too
        return name, Envelope(sender=str(code))
    if _media(content_type) != _media(installed.media_type):
        return None
    recipients = [c.strip() for c in request.headers.get("X-LGSP-To", "").split(",") if c.strip()]
    reference = request.headers.get("X-LGSP-Reference", "").strip() or None
    return name, Envelope(sender=str(code), recipients=recipients, reference=reference)


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    """The request body, refused as soon as it is known to exceed ``max_bytes``: from its
    declared length, or while it streams in (never buffered whole)."""
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise _too_large(declared, max_bytes)
    chunks: list[bytes] = []
    size = 0
    # A body trickling in (a byte now and then) would hold a connection and a worker for ever.
    limit_s = request.app.get(BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT_S)
    try:
        async with asyncio.timeout(limit_s):
            async for chunk in request.content.iter_chunked(_CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise _too_large(size, max_bytes)
                chunks.append(chunk)
    except TimeoutError as exc:
        raise PermanentError(
            ErrorCode.HTTP_BODY_TIMEOUT,
            f"the body did not arrive within {limit_s:g} s ({size} bytes came)",
            details={"received_bytes": size},
        ) from exc
    return b"".join(chunks)


def _too_large(size: int, max_bytes: int) -> PermanentError:
    return PermanentError(
        ErrorCode.PACKET_TOO_LARGE,
        f"the packet is over {max_bytes} bytes",
        details={"max_bytes": max_bytes, "size_bytes_at_least": size},
    )


async def submit(request: web.Request) -> web.Response:
    """``POST /v1/packets``: accept a packet; 202 once it is durable."""
    client = client_of(request)
    key = idempotency_key(request.headers.get("Idempotency-Key"))
    data = await read_body(request, request.app[MAX_BYTES])
    content_type = request.headers.get("Content-Type")
    accepted = await request.app[INTAKE].submit(
        data,
        content_type=content_type,
        client=client,
        translation=translation_for(request, client, content_type),
        packet_id=keyed_id(client.name, key) if key else None,
        idempotent=key is not None,
    )
    packet = accepted.packet
    body: dict[str, Any] = {
        "packet_id": str(packet.id),
        "kind": packet.kind,
        "sender": packet.sender,
        "document_id": packet.document_id,
        "deliveries": [
            {"recipient": d.recipient, "state": d.state.value} for d in accepted.deliveries
        ],
        "warnings": [w.model_dump(mode="json", exclude_none=True) for w in accepted.read.warnings],
    }
    response = web.json_response(body, status=202)
    response.headers["Location"] = f"/v1/packets/{packet.id}"
    if accepted.repeated:  # the first answer again: nothing was kept twice
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def show(request: web.Request) -> web.Response:
    """``GET /v1/packets/{id}``: a packet's deliveries and history, for its sender or recipients."""
    client = client_of(request)
    not_found = PermanentError(ErrorCode.PACKET_NOT_FOUND, "no such packet for this client")
    try:
        packet_id = UUID(request.match_info["packet_id"])
    except ValueError as exc:
        raise not_found from exc
    store = request.app[STORE]
    packet = await store.facts(packet_id)
    mine = {str(code) for code in client.agencies}
    # Another client's packet answers exactly as a missing one: no existence leak.
    if packet is None or not (mine & {packet.sender, *packet.recipients}):
        raise not_found
    deliveries = await store.deliveries(packet_id)
    history = await store.history(packet_id)
    return web.json_response(
        {
            "packet_id": str(packet.id),
            "kind": packet.kind,
            "sender": packet.sender,
            "document_id": packet.document_id,
            "sha256": packet.sha256,
            "received_at": format_time(packet.received_at),
            "deliveries": [d.model_dump(mode="json", exclude={"packet_id"}) for d in deliveries],
            "history": [
                e.model_dump(mode="json", exclude_none=True, exclude={"packet_id"}) for e in history
            ],
        }
    )


def make_app(
    *,
    store: Store,
    directory: Directory,
    intake: Intake,
    max_bytes: int,
    mount: Callable[[web.Application], None] | None = None,
    limiter: RateLimiter | None = None,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
) -> web.Application:
    """The application, with its parts injected (the tests pass real ones on loopback);
    ``mount`` adds more routes (the audit log's)."""
    app = web.Application(middlewares=[errors, known_parameters])
    app[STORE] = store
    app[DIRECTORY] = directory
    app[INTAKE] = intake
    app[MAX_BYTES] = max_bytes
    if limiter is not None:
        app[LIMITER] = limiter
    app[BODY_TIMEOUT] = body_timeout_s
    app.router.add_post("/v1/packets", submit)
    app.router.add_get("/v1/packets/{packet_id}", show)
    app.router.add_get("/v1/openapi.json", openapi)
    if mount is not None:
        mount(app)
    return app
