"""Dead letters over HTTP, for operators (``docs/operations.md``; the CLI comes with issue 7).

GET  /v1/dead-letters?agency=&sender=&kind=&after=&limit=     oldest first, a page at a time
GET  /v1/dead-letters/{packet_id}/{recipient}                 one, with its packet's history
POST /v1/dead-letters/{packet_id}/{recipient}/replay          back to the outbox
POST /v1/dead-letters/{packet_id}/{recipient}/drop            {"reason": "..."}: given up

Operators see what happened to a packet (metadata and history), never its document: that is
for its sender and recipients.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from aiohttp import web

from lgsp_adapter.errors import ErrorCode, PermanentError
from lgsp_adapter.exchange.dead_letters import MAX_PAGE, DeadLetters
from lgsp_adapter.http.app import STORE, client_of, read_body, whole_number
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.registry.agencies import Role
from lgsp_adapter.store import DeadLetter

DEAD_LETTERS: web.AppKey[DeadLetters] = web.AppKey("dead_letters", DeadLetters)
_DROP_MAX_BYTES = 8 * 1024
_REASON_MAX = 500


def _bad(message: str) -> PermanentError:
    return PermanentError(ErrorCode.DEAD_LETTER_BAD_REQUEST, message)


def _code(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    reading = AgencyCode.read(value)
    if reading.code is None:
        raise _bad(f"{name}: {reading.problem}")
    return str(reading.code)


def _which(request: web.Request) -> tuple[UUID, str]:
    try:
        packet_id = UUID(request.match_info["packet_id"])
    except ValueError as exc:
        raise PermanentError(
            ErrorCode.DEAD_LETTER_NOT_FOUND, "a dead letter is named by a packet id (a UUID)"
        ) from exc
    recipient = _code(request.match_info["recipient"], "recipient")
    assert recipient is not None  # noqa: S101  # a path part is never missing
    return packet_id, recipient


def _shown(letter: DeadLetter) -> dict[str, Any]:
    return letter.model_dump(mode="json", exclude={"cursor"})


async def listing(request: web.Request) -> web.Response:
    """A page of dead letters."""
    client_of(request, Role.OPERATOR)
    given = whole_number(request.query, "limit", ErrorCode.DEAD_LETTER_BAD_REQUEST)
    limit = 100 if given is None else given
    if not 1 <= limit <= MAX_PAGE:
        raise _bad(f"limit is from 1 to {MAX_PAGE}")
    kind = request.query.get("kind")
    if kind is not None and not 1 <= len(kind) <= 200:
        raise _bad("kind is 1 to 200 characters")
    found = await request.app[DEAD_LETTERS].find(
        recipient=_code(request.query.get("agency"), "agency"),
        sender=_code(request.query.get("sender"), "sender"),
        kind=kind,
        after=whole_number(request.query, "after", ErrorCode.DEAD_LETTER_BAD_REQUEST) or 0,
        limit=limit,
    )
    following = {"after": found[-1].cursor} if len(found) == limit else None
    return web.json_response({"dead_letters": [_shown(f) for f in found], "next": following})


async def show(request: web.Request) -> web.Response:
    """One dead letter and the history of its packet."""
    client_of(request, Role.OPERATOR)
    packet_id, recipient = _which(request)
    letter = await request.app[DEAD_LETTERS].show(packet_id, recipient)
    history = await request.app[STORE].history(packet_id)
    return web.json_response(
        {
            **_shown(letter),
            "history": [
                e.model_dump(mode="json", exclude_none=True, exclude={"packet_id"}) for e in history
            ],
        }
    )


async def replay(request: web.Request) -> web.Response:
    """Back to the outbox, on a fresh retry schedule."""
    operator = client_of(request, Role.OPERATOR)
    packet_id, recipient = _which(request)
    record = await request.app[DEAD_LETTERS].replay(packet_id, recipient, actor=operator.name)
    return web.json_response(record.model_dump(mode="json"))


async def drop(request: web.Request) -> web.Response:
    """Given up for good; the reason is kept in the audit log."""
    operator = client_of(request, Role.OPERATOR)
    packet_id, recipient = _which(request)
    body = await read_body(request, _DROP_MAX_BYTES)
    try:
        document: Any = json.loads(body or b"null")
    except (ValueError, RecursionError) as exc:
        raise _bad(f"the request is not JSON: {exc}") from exc
    reason = document.get("reason") if isinstance(document, dict) else None
    if not isinstance(reason, str) or set(document) != {"reason"}:
        raise _bad('send {"reason": "why it is given up"}')
    # One line, printable: it lands in the audit log and the daemon's log.
    reason = " ".join("".join(c if c.isprintable() else " " for c in reason).split())
    if not reason:
        raise _bad("the reason says nothing printable")
    record = await request.app[DEAD_LETTERS].drop(
        packet_id, recipient, actor=operator.name, reason=reason[:_REASON_MAX]
    )
    return web.json_response(record.model_dump(mode="json"))


def add_dead_letter_routes(app: web.Application, dead_letters: DeadLetters) -> None:
    """Mount ``/v1/dead-letters`` on ``app``."""
    app[DEAD_LETTERS] = dead_letters
    app.router.add_get("/v1/dead-letters", listing)
    app.router.add_get("/v1/dead-letters/{packet_id}/{recipient}", show)
    app.router.add_post("/v1/dead-letters/{packet_id}/{recipient}/replay", replay)
    app.router.add_post("/v1/dead-letters/{packet_id}/{recipient}/drop", drop)
