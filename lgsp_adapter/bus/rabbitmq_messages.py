"""The AMQP messages of the exchange (``docs/bus.md``): a packet towards one recipient, and a
transport receipt back to its sender's daemon; written and read here, nowhere else.

A packet's message id is its packet id, its type the packet's kind, its body the packet's bytes
as received; the ``x-lgsp-…`` headers say who sent it to whom and its digest. Every message
carries ``user_id``, the publishing account, which the broker checks: it is the one thing about
a message the broker vouches for.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from lgsp_adapter.bus.contract import Arrival, Receipt, Stray
from lgsp_adapter.store import DeliveryState, StoredPacket

HEADER_SENDER = "x-lgsp-sender"
HEADER_RECIPIENT = "x-lgsp-recipient"
HEADER_DOCUMENT_ID = "x-lgsp-document-id"
HEADER_SHA256 = "x-lgsp-payload-sha256"
HEADER_RECIPIENTS = "x-lgsp-recipients"
HEADER_REASON = "x-lgsp-reason"
HEADER_STATE = "x-lgsp-state"
HEADER_ATTEMPTS = "x-lgsp-attempts"
HEADER_PACKET_ID = "x-lgsp-packet-id"
HEADER_ATTEMPT = "x-lgsp-attempt"  # on retry copies: the delivery attempt they are for
RECEIPT = "receipt"  # the message type (and routing-key kind) of transport receipts
REASON_MAX = 500  # characters of a reason a header carries


def packet_message(
    packet: StoredPacket, recipient: str, *, user: str, **headers: Any
) -> aio_pika.Message:
    """A packet towards one recipient, persistent, published as ``user``."""
    return aio_pika.Message(
        body=packet.payload,
        message_id=str(packet.id),
        content_type=packet.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        type=packet.kind,
        app_id="lgsp-adapter",
        user_id=user,
        timestamp=datetime.now(UTC),
        headers={
            HEADER_SENDER: packet.sender,
            HEADER_RECIPIENT: recipient,
            HEADER_RECIPIENTS: ",".join(packet.recipients),
            HEADER_DOCUMENT_ID: packet.document_id or "",
            HEADER_SHA256: packet.sha256,
            **headers,
        },
    )


def read_arrival(message: AbstractIncomingMessage, queue_code: str) -> Arrival:
    """The packet a message carries; ``KeyError`` or ``ValueError`` when it lacks our headers."""
    headers = message.headers
    packet = StoredPacket(
        id=UUID(str(message.message_id)),
        kind=str(message.type),
        sender=str(headers[HEADER_SENDER]),
        recipients=str(headers[HEADER_RECIPIENTS]).split(","),
        document_id=str(headers.get(HEADER_DOCUMENT_ID) or "") or None,
        content_type=str(message.content_type or "application/octet-stream"),
        payload=message.body,
        sha256=str(headers[HEADER_SHA256]),
    )
    return Arrival(
        packet=packet,
        recipient=str(headers[HEADER_RECIPIENT]),
        attempt=int(str(headers.get(HEADER_ATTEMPT, 0))),
        publisher=message.user_id,
        queue_code=queue_code,
        hops=hops(headers.get("x-shovelled")),
    )


def hops(shovelled: Any) -> tuple[str, ...]:
    """The shovels a message crossed (RabbitMQ's ``x-shovelled``, newest first), first first:
    ``<shovel> on <node>``, for the arrival's audit entry."""
    if not isinstance(shovelled, list):
        return ()
    found = []
    for hop in reversed(shovelled):
        if isinstance(hop, dict):
            name, node = _text(hop.get("shovel-name")), _text(hop.get("shovelled-by"))
            found.append(f"{name} on {node}"[:200])
    return tuple(found[:16])


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "?" if value is None else str(value)


def read_stray(message: AbstractIncomingMessage) -> Stray:
    """What a stray is about; ``KeyError`` or ``ValueError`` when it lacks our headers."""
    headers = message.headers
    receipt = message.type == RECEIPT
    return Stray(
        packet_id=UUID(str(headers[HEADER_PACKET_ID] if receipt else message.message_id)),
        kind=str(message.type),
        sender=str(headers[HEADER_SENDER]),
        recipient=str(headers[HEADER_RECIPIENT]),
        sha256=None if receipt else str(headers.get(HEADER_SHA256) or "") or None,
        publisher=message.user_id,
        hops=hops(headers.get("x-shovelled")),
    )


def receipt_message(receipt: Receipt, *, user: str) -> aio_pika.Message:
    """How a delivery ended, for the sender's daemon; one message id per outcome, so that a
    receipt sent again (after a redelivery) is recognisably the same."""
    return aio_pika.Message(
        body=b"",
        message_id=f"{receipt.packet_id}:{receipt.recipient}:{receipt.state}",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        type=RECEIPT,
        app_id="lgsp-adapter",
        user_id=user,
        timestamp=datetime.now(UTC),
        headers={
            HEADER_PACKET_ID: str(receipt.packet_id),
            HEADER_SENDER: receipt.sender,
            HEADER_RECIPIENT: receipt.recipient,
            HEADER_STATE: receipt.state.value,
            HEADER_ATTEMPTS: receipt.attempts,
            HEADER_REASON: (receipt.detail or "")[:REASON_MAX],
        },
    )


def read_receipt(message: AbstractIncomingMessage) -> Receipt:
    """The receipt a message carries; ``KeyError`` or ``ValueError`` when it lacks our headers."""
    headers = message.headers
    return Receipt(
        packet_id=UUID(str(headers[HEADER_PACKET_ID])),
        sender=str(headers.get(HEADER_SENDER) or ""),
        recipient=str(headers[HEADER_RECIPIENT]),
        state=DeliveryState(str(headers[HEADER_STATE])),
        attempts=int(str(headers.get(HEADER_ATTEMPTS, 0))),
        detail=str(headers.get(HEADER_REASON) or "") or None,
    )
