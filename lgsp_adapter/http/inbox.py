"""The pull inbox over HTTP (``/v1/inbox``), for agency systems that fetch their packets.

GET  /v1/inbox?kind=&after=&limit=          a page of waiting packets, oldest first
GET  /v1/inbox/{packet_id}[?recipient=]     the packet's bytes as submitted, and X-LGSP-*
POST /v1/inbox/{packet_id}/ack[?recipient=] {"status": "done"|"fail", "reason": "..."}
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from aiohttp import web

from lgsp_adapter.errors import ErrorCode, PermanentError
from lgsp_adapter.exchange.delivery import headers_for
from lgsp_adapter.exchange.inbox import Acknowledgement, Inbox
from lgsp_adapter.http.app import client_of, read_body, whole_number

INBOX: web.AppKey[Inbox] = web.AppKey("inbox", Inbox)
_ACK_MAX_BYTES = 8 * 1024


def _bad(message: str) -> PermanentError:
    return PermanentError(ErrorCode.INBOX_BAD_REQUEST, message)


def _number(request: web.Request, name: str, default: int) -> int:
    value = whole_number(request.query, name, ErrorCode.INBOX_BAD_REQUEST)
    return default if value is None else value


def _packet_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["packet_id"])
    except ValueError as exc:
        raise PermanentError(
            ErrorCode.PACKET_NOT_FOUND, "no such packet in this client's inboxes"
        ) from exc


async def listing(request: web.Request) -> web.Response:
    """A page of the packets waiting for the caller's agencies."""
    client = client_of(request)
    limit = _number(request, "limit", 100)
    items = await request.app[INBOX].listing(
        client,
        kind=request.query.get("kind") or None,
        after=_number(request, "after", 0),
        limit=limit,
    )
    following = {"after": items[-1].cursor} if len(items) == limit else None
    return web.json_response(
        {
            "packets": [item.model_dump(mode="json", exclude={"cursor"}) for item in items],
            "next": following,
        }
    )


async def fetch(request: web.Request) -> web.Response:
    """One packet, byte for byte as its sender submitted it."""
    client = client_of(request)
    inbox = request.app[INBOX]
    packet, recipient = await inbox.fetch(
        client, _packet_id(request), request.query.get("recipient")
    )
    # headers_for names the content type exactly as the sender submitted it.
    headers = headers_for(packet, recipient) | await inbox.signature_headers(packet)
    return web.Response(body=packet.payload, headers=headers)


async def acknowledge(request: web.Request) -> web.Response:
    """``done`` (taken in: delivered) or ``fail`` (refused, the sender told)."""
    client = client_of(request)
    body = await read_body(request, _ACK_MAX_BYTES)
    try:
        document: Any = json.loads(body or b"null")
    except (ValueError, RecursionError) as exc:
        raise _bad(f"the acknowledgement is not JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("status") not in ("done", "fail"):
        raise _bad('send {"status": "done"} or {"status": "fail", "reason": "..."}')
    reason = document.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise _bad("reason must be text")
    record = await request.app[INBOX].acknowledge(
        client,
        _packet_id(request),
        request.query.get("recipient"),
        Acknowledgement(document["status"]),
        reason,
    )
    return web.json_response(
        {
            "packet_id": str(record.packet_id),
            "recipient": record.recipient,
            "state": record.state.value,
        }
    )


def add_inbox_routes(app: web.Application, inbox: Inbox) -> None:
    """Mount ``/v1/inbox`` on ``app``."""
    app[INBOX] = inbox
    app.router.add_get("/v1/inbox", listing)
    app.router.add_get("/v1/inbox/{packet_id}", fetch)
    app.router.add_post("/v1/inbox/{packet_id}/ack", acknowledge)
