"""Submissions an agency system repeats: the same packet, kept once, answered alike.

A system that sent a packet and lost the answer (a timeout, a connection cut between our
COMMIT and its 202) sends it again. With an ``Idempotency-Key`` header the repeat is known by
its key: the packet's id is derived from the client and the key, so the store's own uniqueness
keeps it once, whatever the timing of the two requests, and the repeat gets the first answer.
The same key with another packet is refused, as is a key older than the window (a key is for
retrying one request, not for ever).

Without a key, an edXML document is known by its sender and ``DocumentId`` (the organ, the date
and the number: one document in the law): the same one again is the same packet, answered
alike; other content under the id of a new document is refused. An update, a replacement or a
revocation shares the id of the document it changes, so those are known by their content too.
A document every recipient refused (or an operator dropped) may be sent again, as a new packet.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lgsp_adapter.errors import ErrorCode, PermanentError, TransientError
from lgsp_adapter.packets.edxml_model import EdocPacket
from lgsp_adapter.packets.edxml_values import BusinessDocType
from lgsp_adapter.packets.reader import Packet
from lgsp_adapter.store import DeliveryRecord, DeliveryState, PacketFacts, Store, StoredPacket

_KEYED = uuid.UUID("5b0d7c1e-63a4-4c1b-9a53-3a0e8f6d2c41")  # the namespace of keyed ids
_DOCUMENTS = uuid.UUID("9e4f2b6a-0d37-4a8e-b1c5-7f3d2e9a6b10")  # and of documents' ids
KEPT_WAIT_STEPS, KEPT_WAIT_STEP_S = 100, 0.05  # a concurrent request's COMMIT, waited for
MAX_RESENDS = 64  # sends of one document after each failed everywhere, before one is refused
FAILED = frozenset({DeliveryState.REFUSED, DeliveryState.DROPPED})
_SHAPE = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII: UUIDs, ULIDs, a system's own ids
DEFAULT_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Repeat:
    """The id a submission is known by, and what refuses another packet found under it."""

    packet_id: uuid.UUID
    check: Callable[[PacketFacts], None]
    earlier: PacketFacts | None  # the packet kept under the id already, read once


async def keyed_repeat(
    store: Store, packet_id: uuid.UUID, sha256: str, window: timedelta
) -> Repeat:
    """A keyed submission: a repeat within ``window`` with the same content."""
    earlier = await store.facts(packet_id)
    return Repeat(packet_id, lambda found: check_repeat(found, sha256, window), earlier)


async def document_repeat(store: Store, packet: Packet, sender: str, sha256: str) -> Repeat | None:
    """A document packet's own id (its sender and DocumentId), so that a repeat is found."""
    if not isinstance(packet, EdocPacket) or not packet.message.document_id:
        return None
    name = document_name(sender, packet.message.document_id, packet.business_doc_type, sha256)
    packet_id, earlier = await document_id(store, name)
    return Repeat(packet_id, lambda found: check_document(found, sha256), earlier)


def idempotency_key(text: str | None) -> str | None:
    """The header's key, or None without one; ``packet.idempotency_key_invalid`` if malformed."""
    if text is None:
        return None
    if not _SHAPE.fullmatch(text):
        raise PermanentError(
            ErrorCode.PACKET_IDEMPOTENCY_KEY_INVALID,
            "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID, say)",
        )
    return text


def keyed_id(client: str, key: str) -> uuid.UUID:
    """The packet id a client's key stands for."""
    return uuid.uuid5(_KEYED, f"{client}\n{key}")


def check_repeat(earlier: PacketFacts, sha256: str, window: timedelta) -> None:
    """Refuse a repeat that is not one: another packet under the key, or a stale key."""
    if datetime.now(UTC) - earlier.received_at > window:
        raise PermanentError(
            ErrorCode.PACKET_IDEMPOTENCY_EXPIRED,
            f"this Idempotency-Key was used more than {window.total_seconds() / 3600:g} h ago "
            f"(packet {earlier.id}); send a new packet with a new key",
            details={"packet_id": str(earlier.id)},
        )
    if earlier.sha256 != sha256:
        raise PermanentError(
            ErrorCode.PACKET_IDEMPOTENCY_CONFLICT,
            f"this Idempotency-Key was used for another packet ({earlier.id}); a key names "
            "one packet: give this one a key of its own",
            details={"packet_id": str(earlier.id)},
        )


def document_name(sender: str, document_id: str, doc_type: BusinessDocType, sha256: str) -> str:
    """What names a document packet: a new document its id; a change to one, its content too."""
    if doc_type is BusinessDocType.NEW:
        return f"{sender}\n{document_id}"
    return f"{sender}\n{document_id}\n{int(doc_type)}\n{sha256}"


async def sequence_id(
    store: Store,
    namespace: uuid.UUID,
    name: str,
    window: timedelta | None = None,
    limit: int = MAX_RESENDS,
) -> tuple[uuid.UUID, PacketFacts | None]:
    """The id a packet named ``name`` is kept under, and the packet standing under it if any
    (a repeat, or a conflict). One failed at every recipient (or older than ``window``, when
    given) no longer stands: the next id of the sequence is tried, so that a deliberate resend
    is a new packet and its own repetitions are found in turn."""
    for resend in range(limit):
        packet_id = uuid.uuid5(namespace, name + (f"\n{resend}" if resend else ""))
        earlier = await store.facts(packet_id)
        if earlier is None:
            return packet_id, None
        if window is None or datetime.now(UTC) - earlier.received_at < window:
            states = {d.state for d in await store.deliveries(packet_id)}
            if not states <= FAILED:
                return packet_id, earlier
    raise PermanentError(
        ErrorCode.PACKET_DUPLICATE_DOCUMENT,
        f"this has been sent {limit} times already, each failed: send it changed, or ask "
        "the exchange's operators",
    )


async def document_id(store: Store, name: str) -> tuple[uuid.UUID, PacketFacts | None]:
    """The id of a document packet (``document_name``), and the packet under it if any."""
    return await sequence_id(store, _DOCUMENTS, name)


def check_document(earlier: PacketFacts, sha256: str) -> None:
    """Refuse other content under the id of a document kept already."""
    if earlier.sha256 != sha256:
        raise PermanentError(
            ErrorCode.PACKET_DUPLICATE_DOCUMENT,
            f"document {earlier.document_id} from {earlier.sender} was submitted already with "
            f"other content (packet {earlier.id}): a new document takes a new number, and a "
            "change to this one is sent as an update, a replacement or a revocation",
            details={"packet_id": str(earlier.id), "document_id": earlier.document_id},
        )


async def kept_meanwhile(store: Store, packet_id: uuid.UUID) -> PacketFacts:
    """The packet another request is keeping under ``packet_id``, once it can be read (its
    COMMIT may be on its way to the disk): a repeat's answer promises it is durable."""
    for _ in range(KEPT_WAIT_STEPS):
        earlier = await store.facts(packet_id)
        if earlier is not None:
            return earlier
        await asyncio.sleep(KEPT_WAIT_STEP_S)
    raise TransientError(
        ErrorCode.STORE_UNAVAILABLE,
        "the same packet is being kept by another request at this moment; send it again",
    )


def first_answer(earlier: PacketFacts, data: bytes) -> tuple[StoredPacket, list[DeliveryRecord]]:
    """The packet kept already, and its deliveries as they were when it was accepted: what
    its first 202 said."""
    first = [
        DeliveryRecord(
            packet_id=earlier.id,
            recipient=recipient,
            state=DeliveryState.ACCEPTED,
            updated_at=earlier.received_at,
        )
        for recipient in earlier.recipients
    ]
    return StoredPacket(**earlier.model_dump(), payload=data), first
