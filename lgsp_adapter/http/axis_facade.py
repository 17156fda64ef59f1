"""The national axis' protocol, served: agency document software configured with this daemon's
URL (``http://host:port/axis``), its system id and its secret works as it does against the axis.

Every operation answers as the axis does: JSON with ``status``, ``ErrorCode`` and ``ErrorDesc``
(ASCII, never a null), a refusal as ``FAIL`` with our stable error code, over HTTP 200 so that
clients which read only the body read it; a passing fault (the store away, the outbox full)
over 503, and too many requests over 429, each with ``Retry-After`` as well. Every refusal is
audited, naming the system and the operation. Both GET and POST are taken for every operation,
since clients differ.

The operations map onto the exchange's own parts, so a packet through here is the same packet
as one through ``/v1/packets``: ``sendEdoc`` is the intake; the received list, ``getEdoc``,
``downloadEdoc`` and ``updateStatus`` are the pull inbox of the system's agencies. The agency
operations are in ``axis_agencies``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from lgsp_adapter.errors import ErrorCode, LgspError, PermanentError, TransientError
from lgsp_adapter.exchange.axis_client import vietnam_now
from lgsp_adapter.exchange.inbox import Inbox
from lgsp_adapter.http.app import LIMITER, status_of
from lgsp_adapter.http.axis_refusals import UNSIGNED, UnsignedRefusals, audit_refusal
from lgsp_adapter.http.axis_token import TOKEN_PATH, AxisTokens, LogIns, token
from lgsp_adapter.packets.axis_signature import (
    SIGNED_JSON,
    bearer_headers,
    parse_timestamp,
    verified_headers,
)
from lgsp_adapter.packets.axis_wire import failure, header, required
from lgsp_adapter.registry.axis_systems import AxisCaller, AxisSystems
from lgsp_adapter.store.unavailable import STORE_UNAVAILABLE, unavailable_error

log = logging.getLogger(__name__)

PREFIX = "/axis"
AXIS_SYSTEMS: web.AppKey[AxisSystems] = web.AppKey("axis_systems", AxisSystems)
AXIS_WINDOW: web.AppKey[float] = web.AppKey("axis_timestamp_window_s", float)
INBOX: web.AppKey[Inbox] = web.AppKey("axis_inbox", Inbox)
TOKENS: web.AppKey[AxisTokens] = web.AppKey("axis_tokens", AxisTokens)
MAX_FILE: web.AppKey[int] = web.AppKey("axis_max_file_bytes", int)


class AxisRequest:
    """One authenticated call: who calls, the logical headers it signed, and the request."""

    def __init__(self, request: web.Request, caller: AxisCaller, headers: dict[str, str]):
        self.request = request
        self.caller = caller
        self.headers = headers
        self.audited = False  # set when the part called audits its own refusals

    def header(self, name: str) -> str | None:
        """A signed logical header, whatever its case."""
        return header(self.headers, name)

    def audited_elsewhere(self) -> None:
        """The part about to be called audits its own refusals (the intake)."""
        self.audited = True


Operation = Callable[[AxisRequest], Awaitable[web.StreamResponse]]


def identified(request: web.Request) -> tuple[AxisCaller, dict[str, str]]:
    """The registered system that signed ``request`` (or whose bearer token it carries) and
    its logical headers; refused (``axis.signature_invalid``, ``axis.unknown_system``,
    ``axis.token_invalid``, ``axis.timestamp_invalid``) when neither holds or the signed
    timestamp is stale. A request carrying the signature headers is checked by them, even
    beside an ``Authorization`` a gateway in front of its client added. A stale request proves
    nothing of its system (anyone may replay one it sent), so it is refused as unsigned ones
    are: audited as a trickle, and not charged to the system's pace."""
    systems = request.app[AXIS_SYSTEMS]
    authorization = request.headers.get("Authorization", "")
    bearer = authorization[:7].lower() == "bearer " and SIGNED_JSON not in request.headers
    if bearer and TOKENS in request.app:
        system_id, caller = request.app[TOKENS].caller(authorization[7:].strip(), systems)
        return caller, {**bearer_headers(request.headers), "systemid": system_id}
    signed = verified_headers(request.headers, systems.secret_of)
    system_id, timestamp = required(signed, "systemid"), required(signed, "timestamp")
    found = systems.caller(system_id)
    if found is None:  # removed between the two looks
        raise PermanentError(ErrorCode.AXIS_UNKNOWN_SYSTEM, "the system is not registered")
    window_s = request.app.get(AXIS_WINDOW)
    if window_s:
        _check_fresh(parse_timestamp(timestamp), window_s)
    return found, {**signed, "systemid": system_id}


def admitted(call: AxisRequest) -> None:
    """Refuse an identified system's request unless its pace is within limits and the
    ``systemid`` it sends beside a token is its own: a refusal of the system's, audited in
    full (but for the pace's, which is not a refusal of anything it said)."""
    request = call.request
    if LIMITER in request.app:
        request.app[LIMITER].take(call.caller.client.name)
    if SIGNED_JSON not in request.headers:
        named = bearer_headers(request.headers).get("systemid")
        if named is not None and named != call.headers["systemid"]:
            raise PermanentError(
                ErrorCode.AXIS_BAD_REQUEST,
                f"the bearer token is {call.headers['systemid']!r}'s, the request names "
                f"{named[:100]!r}",
            )


def _check_fresh(at: datetime, window_s: float) -> None:
    """A timestamp within ``window_s`` of now, Vietnam time (a replayed request is older)."""
    now = vietnam_now().replace(tzinfo=None)
    if abs(now - at) > timedelta(seconds=window_s):
        raise PermanentError(
            ErrorCode.AXIS_TIMESTAMP_INVALID,
            f"the timestamp {at:%d/%m/%Y %H:%M:%S} is more than {window_s:g} s from now "
            f"({now:%d/%m/%Y %H:%M:%S} in Vietnam): a replayed or a stale request",
        )


def serve(
    operations: dict[str, Operation],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The one handler of ``/axis/{operation}``: authenticate, run, answer as the axis does."""

    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info["operation"]
        operation = operations.get(name)
        system = "?"
        call: AxisRequest | None = None
        try:
            if operation is None:
                raise PermanentError(ErrorCode.AXIS_BAD_REQUEST, f"no axis operation {name!r}")
            caller, signed = identified(request)
            system = signed["systemid"]
            call = AxisRequest(request, caller, signed)
            admitted(call)
            return await operation(call)
        except LgspError as exc:
            # Too many requests is a pace, not a refusal: not one audit entry per request.
            # What no registered system signed is audited as a trickle (UnsignedRefusals).
            if exc.code is not ErrorCode.AUTH_RATE_LIMITED and (
                (call is not None and not call.audited)
                or (call is None and request.app[UNSIGNED].audited())
            ):
                await audit_refusal(request, exc, name, system)
            return refusal(exc, name, unknown_operation=operation is None)
        except STORE_UNAVAILABLE as exc:
            log.warning("axis %s: the store is unavailable: %s", name, exc)
            return refusal(unavailable_error(exc), name)

    return handle


def refusal(error: LgspError, operation: str, *, unknown_operation: bool = False) -> web.Response:
    """``FAIL`` as the axis answers it. A send's answer carries an empty ``DocId``; a download
    answers an empty body (clients save whatever it answers as the document)."""
    limited = status_of(error) == 429  # too many requests: wait, then the same again
    transient = limited or isinstance(error, TransientError) or status_of(error) >= 500
    status = 429 if limited else 503 if transient else 404 if unknown_operation else 200
    extra: dict[str, Any] = {"DocId": ""} if operation == "sendEdoc" else {}
    if error.code is ErrorCode.AXIS_TOKEN_INVALID:  # a gateway client asks for a new one
        response = (
            web.Response(status=401)
            if operation == "downloadEdoc"
            else json_answer(failure(error, **extra), status=401)
        )
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response
    if operation == "downloadEdoc":
        return web.Response(status=status if transient else 404)
    response = json_answer(failure(error, **extra), status=status)
    if transient:
        response.headers["Retry-After"] = str(_retry_after(error))
    return response


def json_answer(body: bytes, status: int = 200) -> web.Response:
    """An answer body (``axis_wire.answer``'s bytes) as JSON."""
    return web.Response(body=body, status=status, content_type="application/json")


def _retry_after(error: LgspError) -> int:
    details = error.details if isinstance(error.details, dict) else {}
    value = details.get("retry_after_s")
    return value if isinstance(value, int) else 5


def add_axis_routes(
    app: web.Application,
    systems: AxisSystems,
    inbox: Inbox,
    operations: dict[str, Operation],
    tokens: AxisTokens,
    *,
    timestamp_window_s: float | None = None,
    max_file_bytes: int | None = None,
) -> None:
    """Mount ``/axis/{operation}`` (GET and POST) and ``/axis/token`` on ``app``."""
    app[AXIS_SYSTEMS] = systems
    app[INBOX] = inbox
    app[UNSIGNED] = UnsignedRefusals()
    if max_file_bytes is not None:
        app[MAX_FILE] = max_file_bytes
    if timestamp_window_s:
        app[AXIS_WINDOW] = timestamp_window_s
    app[TOKENS] = tokens
    handle = serve(operations)

    log_ins = LogIns()

    async def issue(request: web.Request) -> web.StreamResponse:
        return await token(request, systems, tokens, log_ins)

    app.router.add_post(TOKEN_PATH, issue)  # before the operations: "token" is none of them
    app.router.add_route("GET", PREFIX + "/{operation}", handle)
    app.router.add_route("POST", PREFIX + "/{operation}", handle)
