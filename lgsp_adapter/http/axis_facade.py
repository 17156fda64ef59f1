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
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from lgsp_adapter.audit import AuditEntry, AuditEvent, log_event
from lgsp_adapter.errors import ErrorCode, LgspError, PermanentError, TransientError
from lgsp_adapter.exchange.axis_client import vietnam_now
from lgsp_adapter.exchange.inbox import Inbox
from lgsp_adapter.http.app import LIMITER, STORE, status_of
from lgsp_adapter.http.rate_limit import RateLimiter
from lgsp_adapter.packets.axis_signature import parse_timestamp, verified_headers
from lgsp_adapter.packets.axis_wire import failure, header
from lgsp_adapter.registry.axis_systems import AxisCaller, AxisSystems
from lgsp_adapter.store.unavailable import STORE_UNAVAILABLE

log = logging.getLogger(__name__)

PREFIX = "/axis"
AXIS_SYSTEMS: web.AppKey[AxisSystems] = web.AppKey("axis_systems", AxisSystems)
AXIS_WINDOW: web.AppKey[float] = web.AppKey("axis_timestamp_window_s", float)
INBOX: web.AppKey[Inbox] = web.AppKey("axis_inbox", Inbox)
MAX_FILE: web.AppKey[int] = web.AppKey("axis_max_file_bytes", int)
UNAUDITED_TOLD_S = 60.0


class UnsignedRefusals:
    """How many refusals of requests that no registered system signed get an audit entry: a
    steady trickle (``burst`` at once, then ``per_second``), the rest only counted in the log.
    Anyone can send those, and each entry is kept for ever; a system's own refusals are all
    audited (and its requests are rate-limited by its name)."""

    def __init__(self, per_second: float = 0.1, burst: int = 100) -> None:
        self._bucket = RateLimiter(per_second=per_second, burst=burst)
        self._unaudited = 0
        self._told_at = -UNAUDITED_TOLD_S

    def audited(self) -> bool:
        """Whether this refusal is audited (else it is counted, and told once a minute)."""
        try:
            self._bucket.take("unsigned")
            return True
        except PermanentError:
            self._unaudited += 1
            now = time.monotonic()
            if now - self._told_at >= UNAUDITED_TOLD_S:
                log.warning(
                    "axis: %d refusals of unsigned requests not audited since last told "
                    "(over %g a second are counted here only)",
                    self._unaudited,
                    self._bucket.per_second,
                )
                self._unaudited, self._told_at = 0, now
            return False


UNSIGNED: web.AppKey[UnsignedRefusals] = web.AppKey("axis_unsigned_refusals", UnsignedRefusals)


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


def authenticated(request: web.Request) -> tuple[AxisCaller, dict[str, str]]:
    """The registered system that signed ``request`` and the headers it signed; refused
    (``axis.signature_invalid``, ``axis.unknown_system``, ``axis.timestamp_invalid``) when the
    signature or the timestamp does not hold."""
    systems = request.app[AXIS_SYSTEMS]
    signed = verified_headers(request.headers, systems.secret_of)
    caller = systems.caller(signed["systemid"])
    if caller is None:  # removed between the two looks
        raise PermanentError(ErrorCode.AXIS_UNKNOWN_SYSTEM, "the system is not registered here")
    window_s = request.app.get(AXIS_WINDOW)
    if window_s:
        _check_fresh(parse_timestamp(signed["timestamp"]), window_s)
    if LIMITER in request.app:
        request.app[LIMITER].take(caller.client.name)
    return caller, signed


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
            caller, signed = authenticated(request)
            system = signed["systemid"]
            call = AxisRequest(request, caller, signed)
            return await operation(call)
        except LgspError as exc:
            # Too many requests is a pace, not a refusal: not one audit entry per request.
            # What no registered system signed is audited as a trickle (UnsignedRefusals).
            if exc.code is not ErrorCode.AUTH_RATE_LIMITED and (
                (call is not None and not call.audited)
                or (call is None and request.app[UNSIGNED].audited())
            ):
                await _audit_refusal(request, exc, name, system)
            return refusal(exc, name, unknown_operation=operation is None)
        except STORE_UNAVAILABLE as exc:
            log.warning("axis %s: the store is unavailable: %s", name, exc)
            error = TransientError(
                ErrorCode.STORE_UNAVAILABLE, "the store is unavailable for a moment; try again"
            )
            return refusal(error, name)

    return handle


def refusal(error: LgspError, operation: str, *, unknown_operation: bool = False) -> web.Response:
    """``FAIL`` as the axis answers it. A send's answer carries an empty ``DocId``; a download
    answers an empty body (clients save whatever it answers as the document)."""
    limited = status_of(error) == 429  # too many requests: wait, then the same again
    transient = limited or isinstance(error, TransientError) or status_of(error) >= 500
    status = 429 if limited else 503 if transient else 404 if unknown_operation else 200
    if operation == "downloadEdoc":
        return web.Response(status=status if transient else 404)
    extra: dict[str, Any] = {"DocId": ""} if operation == "sendEdoc" else {}
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


async def _audit_refusal(
    request: web.Request, error: LgspError, operation: str, system: str
) -> None:
    details = error.details if isinstance(error.details, dict) else {}
    entry = AuditEntry(
        event=AuditEvent.REJECTED,
        sender=details.get("sender") if isinstance(details.get("sender"), str) else None,
        outcome=str(error.code),
        detail=f"axis {operation[:40]} from system {system[:100]}: {error.message}"[:500],
        actor=f"axis/{system[:100]}",
    )
    try:
        await request.app[STORE].append([entry])
    except Exception:  # the answer still goes out; the log says why the entry is missing
        log.warning("the refusal of axis %s could not be audited", operation, exc_info=True)
        return
    log_event(log, entry)


def add_axis_routes(
    app: web.Application,
    systems: AxisSystems,
    inbox: Inbox,
    operations: dict[str, Operation],
    *,
    timestamp_window_s: float | None = None,
    max_file_bytes: int | None = None,
) -> None:
    """Mount ``/axis/{operation}`` (GET and POST) on ``app``."""
    app[AXIS_SYSTEMS] = systems
    app[INBOX] = inbox
    app[UNSIGNED] = UnsignedRefusals()
    if max_file_bytes is not None:
        app[MAX_FILE] = max_file_bytes
    if timestamp_window_s:
        app[AXIS_WINDOW] = timestamp_window_s
    handle = serve(operations)
    app.router.add_route("GET", PREFIX + "/{operation}", handle)
    app.router.add_route("POST", PREFIX + "/{operation}", handle)
