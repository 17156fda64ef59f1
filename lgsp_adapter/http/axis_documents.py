"""The axis' document operations over the exchange's own parts.

``sendEdoc`` hands the file to the intake as the system's agencies' client, so it is checked,
kept, routed and audited as any submission; the same file sent again by the same system (its
answer was lost), even at the same moment, is answered with the first send's ``DocId`` and not
kept twice, as long as that send is recent and has not failed everywhere (``_send_id``).

A receiver's side is the pull inbox of the agencies the system speaks for:
``getReceivedEdocList`` lists what waits (``messagetype`` picks edXML documents or status
packets), ``getEdoc`` and ``downloadEdoc`` hand a packet out byte for byte, ``updateStatus`` is
the acknowledgement (``done`` delivered, ``fail`` refused and the sender told, ``processing``
recorded and kept waiting). ``getSentEdocList`` says how each delivery of the system's latest
sends stands. The axis' ``docId`` is our packet id; a document held for several of the
system's agencies is one ``docId``, and its acknowledgement answers for all of them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from lgsp_adapter.audit import AuditEvent, log_event
from lgsp_adapter.errors import ErrorCode, LgspError, PermanentError
from lgsp_adapter.exchange.axis_client import VIETNAM
from lgsp_adapter.exchange.idempotency import MAX_RESENDS as RESENDS
from lgsp_adapter.exchange.idempotency import idempotency_key, kept_meanwhile, keyed_id, sequence_id
from lgsp_adapter.exchange.inbox import MAX_PAGE, Acknowledgement, Inbox
from lgsp_adapter.http.app import BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT_S, INTAKE, MAX_BYTES, STORE
from lgsp_adapter.http.app import read_body as read_bounded
from lgsp_adapter.http.axis_facade import INBOX, MAX_FILE, AxisRequest, Operation, json_answer
from lgsp_adapter.packets.axis_wire import (
    MessageType,
    TransportStatus,
    answer,
    message_type,
    required,
    transport_status,
    uploaded_file,
)
from lgsp_adapter.registry.agencies import Client
from lgsp_adapter.store import Store, entry_for
from lgsp_adapter.store.records import DeliveryState, InboxItem, PacketIdTaken, SentItem

log = logging.getLogger(__name__)

FILE_PART = "file_doc"
HEADER_BODY_BYTES = 64 * 1024  # what a header-driven call may send (clients send "" or "{}")
_SERVICE_TYPE = "eDoc"
_SENDS = UUID("3c0a9e47-61b5-4f0e-8f64-2d6f1b7c9a15")  # the namespace of sends' packet ids
# How long the same file from the same system is taken as a repeated send, not a new one: a
# client retrying a send whose answer it lost does so within minutes.
RESEND_WINDOW = timedelta(hours=24)
MAX_RESENDS = RESENDS  # a send's sequence, as a document's
# Ended for good: a dead letter is not, since an operator may replay it.
SENT_PAGE = 500  # the latest packets a getSentEdocList answers on
# A delivery's state as the axis' receiveStatus says it, with the words for its description.
_RECEIVE_STATUS = {
    DeliveryState.ACCEPTED: ("processing", "on its way"),
    DeliveryState.PUBLISHED: ("processing", "on its way"),
    DeliveryState.RETRYING: ("processing", "on its way; the receiver's system is tried again"),
    DeliveryState.HELD: ("initial", "waiting for the receiver to fetch it"),
    DeliveryState.DELIVERED: ("done", "delivered"),
    DeliveryState.REFUSED: ("fail", "refused by the receiver"),
    # Not final: the exchange's operators may replay it (and a resend is a repeat till then).
    DeliveryState.DEAD_LETTERED: ("processing", "not delivered yet: with the exchange's operators"),
    DeliveryState.DROPPED: ("fail", "given up by an operator"),
}
_ACK = {TransportStatus.DONE: Acknowledgement.DONE, TransportStatus.FAIL: Acknowledgement.FAIL}


async def send_edoc(call: AxisRequest) -> web.Response:
    """A document or status packet in, as the intake takes any; ``DocId`` is its packet id."""
    claimed_hash = required(call.headers, "hash-file")
    kind = message_type(call.header("messagetype"))
    data = await _uploaded(call.request, claimed_hash)
    sender = (call.header("from") or "").strip() or None
    store = call.request.app[STORE]
    # A signed logical header (XroadVnpt-Idempotency-Key, as the SDK adds any), or plain HTTP's.
    given = call.header("Idempotency-Key") or call.request.headers.get("Idempotency-Key")
    key = idempotency_key(given)
    if key is not None:  # the system names its sends itself: the key, not the file, decides
        packet_id, repeated = keyed_id(call.caller.client.name, key), False
    else:
        packet_id, repeated = await _send_id(store, call.caller.client.name, data)
    if repeated:
        # The same file from the same system again: a send repeated after its answer was
        # lost. The protocol has no other way to say so; a second packet would be a duplicate
        # at every receiver.
        log.info("axis sendEdoc from %s: %s sent again", call.caller.client.name, packet_id)
        return json_answer(answer(DocId=str(packet_id)))
    call.audited_elsewhere()  # the intake audits its own refusals
    try:
        accepted = await call.request.app[INTAKE].submit(
            data,
            content_type=None,
            client=call.caller.client,
            claimed_sender=sender,
            packet_id=packet_id,
            idempotent=key is not None,
        )
    except PacketIdTaken:  # the same send, kept by a request at the same time
        await kept_meanwhile(store, packet_id)
        return json_answer(answer(DocId=str(packet_id)))
    if accepted.packet.kind != kind.value:
        # Kept already (it is a good packet): say so, rather than refuse what is durable.
        log.warning(
            "axis sendEdoc from %s: messagetype %s, but the file is %s; kept as %s",
            call.caller.client.name,
            kind.value,
            accepted.packet.kind,
            accepted.packet.kind,
        )
    return json_answer(answer(DocId=str(accepted.packet.id)))


async def _send_id(store: Store, client: str, data: bytes) -> tuple[UUID, bool]:
    """The packet id of a send, and whether an earlier send of the same file by the same
    system stands under it. It stands while it is recent (``RESEND_WINDOW``) and not failed
    at every recipient; past that, the same file again is a deliberate resend, and gets the
    next id of the file's sequence (so that its own repetitions are found in turn)."""
    name = f"{client}\n{hashlib.sha256(data).hexdigest()}"
    try:
        packet_id, earlier = await sequence_id(store, _SENDS, name, RESEND_WINDOW, MAX_RESENDS)
    except PermanentError as exc:
        raise PermanentError(
            ErrorCode.AXIS_BAD_REQUEST,
            f"this system has sent this file {MAX_RESENDS} times already, each failed or a "
            "day old: send it changed, or ask the exchange's operators",
        ) from exc
    return packet_id, earlier is not None


async def _uploaded(request: web.Request, claimed_hash: str) -> bytes:
    """The file of a send: a multipart part ``file_doc``, or the raw body as the vendors' SDK
    sends it; bounded by ``[axis] max_file_mb`` (within ``[limits] max_bytes``) and the body
    timeout either way."""
    max_bytes = min(request.app[MAX_BYTES], request.app.get(MAX_FILE, request.app[MAX_BYTES]))
    if request.content_type != "multipart/form-data":
        return uploaded_file(await read_bounded(request, max_bytes), claimed_hash)
    limit_s = request.app.get(BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT_S)
    try:
        async with asyncio.timeout(limit_s):
            data = await _file_part(request, max_bytes)
    except TimeoutError as exc:
        raise PermanentError(
            ErrorCode.HTTP_BODY_TIMEOUT, f"the upload did not arrive within {limit_s:g} s"
        ) from exc
    except LgspError:
        raise
    except (HttpProcessingError, ValueError, KeyError, AssertionError, RuntimeError) as exc:
        raise PermanentError(
            ErrorCode.AXIS_BAD_REQUEST, f"the multipart body cannot be read: {exc}"[:300]
        ) from exc
    return uploaded_file(data, claimed_hash)


async def _file_part(request: web.Request, max_bytes: int) -> bytes:
    declared = request.content_length
    if declared is not None and declared > max_bytes + HEADER_BODY_BYTES:
        raise _too_large(declared, max_bytes)
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name != FILE_PART:
            continue  # other fields, nested multiparts: not the file
        chunks, size = [], 0
        while chunk := await part.read_chunk(64 * 1024):
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(size, max_bytes)
            chunks.append(chunk)
        return b"".join(chunks)
    raise PermanentError(ErrorCode.AXIS_BAD_REQUEST, f"the multipart body has no {FILE_PART} part")


def _too_large(size: int, max_bytes: int) -> PermanentError:
    return PermanentError(
        ErrorCode.PACKET_TOO_LARGE,
        f"the file is over {max_bytes} bytes",
        details={"max_bytes": max_bytes, "size_bytes_at_least": size},
    )


async def received_list(call: AxisRequest) -> web.Response:
    """What waits for the system's agencies, of one ``messagetype`` (all when left out)."""
    await _header_body(call)
    given = call.header("messagetype")
    kind = message_type(given).value if given and given.strip() else None
    items = await _waiting(call, kind)
    return json_answer(answer(data=[_received_item(item, to) for item, to in items]))


async def count_received(call: AxisRequest, kind: MessageType) -> web.Response:
    """How many packets of ``kind`` wait (``countReceiveEdoc``, ``countReceiveStatus``)."""
    await _header_body(call)
    return json_answer(answer(count=len(await _waiting(call, kind.value))))


async def _waiting(call: AxisRequest, kind: str | None) -> list[tuple[InboxItem, list[str]]]:
    """Every waiting packet once, with the system's agencies it waits for, oldest first."""
    inbox: Inbox = call.request.app[INBOX]
    by_packet: dict[UUID, tuple[InboxItem, list[str]]] = {}
    after = 0
    while True:
        page = await inbox.listing(call.caller.client, kind=kind, after=after, limit=MAX_PAGE)
        for item in page:
            by_packet.setdefault(item.packet_id, (item, []))[1].append(item.recipient)
        if len(page) < MAX_PAGE:
            return list(by_packet.values())
        after = page[-1].cursor


def _received_item(item: InboxItem, to: list[str]) -> dict[str, Any]:
    moment = _vietnam(item.received_at)
    return {
        "docId": str(item.packet_id),
        "serviceType": _SERVICE_TYPE,
        "messageType": item.kind,
        "created_time": moment,
        "updated_time": moment,
        "from": item.sender,
        "to": ",".join(to),
        "status": "initial",
        "status_desc": "waiting to be fetched",
    }


async def sent_list(call: AxisRequest) -> web.Response:
    """How the system's latest sends went, one item per recipient (``messagetype`` picks)."""
    await _header_body(call)
    given = call.header("messagetype")
    kind = message_type(given).value if given and given.strip() else None
    senders = [str(code) for code in call.caller.client.agencies]
    items = await call.request.app[STORE].sent(senders, kind=kind, limit=SENT_PAGE)
    return json_answer(answer(data=[_sent_item(item) for item in items]))


def _sent_item(item: SentItem) -> dict[str, Any]:
    receive_status, description = _RECEIVE_STATUS[item.state]
    return {
        "serviceType": _SERVICE_TYPE,
        "messageType": item.kind,
        "senderDocId": str(item.packet_id),
        "receiverDocId": str(item.packet_id),
        "fromCode": item.sender,
        "toCode": item.recipient,
        "title": "",
        "notation": item.document_id or "",
        "sentTime": _vietnam(item.received_at),
        "receivedTime": _vietnam(item.updated_at) if receive_status == "done" else "",
        "sendStatus": "done",
        "sendStatusDesc": "accepted by the exchange",
        "receiveStatus": receive_status,
        "receiveStatusDesc": item.detail or description,
    }


def _vietnam(moment: datetime) -> str:
    return moment.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M:%S")


async def get_edoc(call: AxisRequest) -> web.Response:
    """The packet, as its sender submitted it, in base64 in ``data``."""
    await _header_body(call)
    payload = await _payload(call)
    return json_answer(answer(data=base64.b64encode(payload).decode("ascii")))


async def download_edoc(call: AxisRequest) -> web.Response:
    """The packet's bytes as the body (an unknown one: an empty 404, see ``refusal``)."""
    await _header_body(call)
    return web.Response(body=await _payload(call), content_type="application/octet-stream")


async def _payload(call: AxisRequest) -> bytes:
    inbox: Inbox = call.request.app[INBOX]
    packet_id = _doc_id(call)
    recipients = await inbox.recipients_of(call.caller.client, packet_id)
    packet, _ = await inbox.fetch(call.caller.client, packet_id, recipients[0])
    return packet.payload


async def update_status(call: AxisRequest) -> web.Response:
    """The system's acknowledgement of a packet it fetched."""
    await _header_body(call)
    status = transport_status(required(call.headers, "status"))
    packet_id = _doc_id(call)
    client = call.caller.client
    inbox: Inbox = call.request.app[INBOX]
    recipients = await inbox.recipients_of(client, packet_id)
    if status is TransportStatus.PROCESSING:
        await _processing(call, client, packet_id, recipients)
    else:
        reason = call.header("description") or call.header("reason")
        await inbox.acknowledge_all(client, packet_id, recipients, _ACK[status], reason)
    return json_answer(answer())


async def _processing(
    call: AxisRequest, client: Client, packet_id: UUID, recipients: list[str]
) -> None:
    """``processing``: the system has it in hand; recorded, and it stays waiting."""
    store = call.request.app[STORE]
    packet = await store.facts(packet_id)
    if packet is None:
        raise PermanentError(ErrorCode.PACKET_NOT_FOUND, f"no document {packet_id} for you")
    entries = [
        entry_for(
            packet,
            AuditEvent.HELD,
            recipient=recipient,
            outcome="inbox.processing",
            detail=f"{client.name} says it is processing it",
        )
        for recipient in recipients
    ]
    await store.append(entries)
    for entry in entries:
        log_event(log, entry)


def _doc_id(call: AxisRequest) -> UUID:
    text = required(call.headers, "docId")
    try:
        return UUID(text)
    except ValueError as exc:
        raise PermanentError(
            ErrorCode.PACKET_NOT_FOUND, f"no document {text[:100]!r} waits for this system"
        ) from exc


async def _header_body(call: AxisRequest) -> None:
    """Read (and drop) the body of a call whose parameters are headers: bounded, so that a
    client cannot make us hold a large upload meant for nothing."""
    await read_bounded(call.request, HEADER_BODY_BYTES)


def document_operations() -> dict[str, Operation]:
    """The document operations by name, as clients call them."""

    async def count_edoc(call: AxisRequest) -> web.Response:
        return await count_received(call, MessageType.EDOC)

    async def count_status(call: AxisRequest) -> web.Response:
        return await count_received(call, MessageType.STATUS)

    return {
        "sendEdoc": send_edoc,
        "getReceivedEdocList": received_list,
        "getSentEdocList": sent_list,
        "countReceiveEdoc": count_edoc,
        "countReceiveStatus": count_status,
        "getEdoc": get_edoc,
        "downloadEdoc": download_edoc,
        "updateStatus": update_status,
    }
