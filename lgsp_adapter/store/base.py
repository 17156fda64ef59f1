"""The records a store keeps and the operations the exchange needs from it.

Every operation that changes state also appends its audit entries, in the same transaction: a
delivery is never recorded without the line that says so, nor the line without the delivery.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from lgsp_adapter.audit import AuditEntry, AuditEvent


class StoredPacket(BaseModel):
    """A packet as accepted: its bytes exactly as submitted, and what routing needs."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    kind: str
    sender: str
    recipients: list[str] = Field(min_length=1)
    document_id: str | None = None
    content_type: str
    payload: bytes = Field(repr=False)
    sha256: str
    client: str | None = Field(None, description="The client system that submitted it.")
    received_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def entry_for(
    packet: StoredPacket,
    event: AuditEvent,
    *,
    recipient: str | None = None,
    outcome: str | None = None,
    detail: str | None = None,
) -> AuditEntry:
    """An audit entry about ``packet``: its ids, parties, kind and digest filled in."""
    return AuditEntry(
        event=event,
        packet_id=packet.id,
        sender=packet.sender,
        recipient=recipient,
        kind=packet.kind,
        document_id=packet.document_id,
        payload_sha256=packet.sha256,
        outcome=outcome,
        detail=detail,
    )


class DeliveryState(StrEnum):
    """Where one packet stands towards one recipient (the transport outcome, not the business
    status of an edXML document)."""

    ACCEPTED = "accepted"  # durable here, not yet on the bus
    PUBLISHED = "published"  # on the bus, confirmed
    RETRYING = "retrying"  # an attempt failed for a passing reason; another will follow
    HELD = "held"  # in the pull inbox: the agency's system has yet to fetch and acknowledge it
    DELIVERED = "delivered"  # the recipient's system took it
    REFUSED = "refused"  # the recipient's system refused it for good
    DEAD_LETTERED = "dead_lettered"  # no more attempts; an operator must act
    DROPPED = "dropped"  # dead-lettered, then given up for good by an operator

    @property
    def final(self) -> bool:
        """Nothing more will happen on its own."""
        return self in (
            DeliveryState.DELIVERED,
            DeliveryState.REFUSED,
            DeliveryState.DEAD_LETTERED,
            DeliveryState.DROPPED,
        )


class DeliveryRecord(BaseModel):
    """One packet towards one recipient."""

    model_config = ConfigDict(frozen=True)

    packet_id: UUID
    recipient: str
    state: DeliveryState
    attempts: int = 0
    detail: str | None = None
    updated_at: datetime


class DeadLetter(BaseModel):
    """A delivery no attempt will be made of until an operator says: what it was, where it
    was going, and why it stopped."""

    model_config = ConfigDict(frozen=True)

    cursor: int = Field(description="Position in the listing, for the next page.")
    packet_id: UUID
    recipient: str
    sender: str
    kind: str
    document_id: str | None
    attempts: int
    detail: str | None
    received_at: datetime
    dead_lettered_at: datetime
    here: bool = Field(
        True,
        description="Whether it can be replayed or dropped at this daemon: false for a "
        "sender's record of a delivery another daemon gave up on.",
    )


class InboxItem(BaseModel):
    """A packet waiting in a pull agency's inbox, as its system lists it."""

    model_config = ConfigDict(frozen=True)

    cursor: int = Field(description="Position in the inbox listing, for the next page.")
    packet_id: UUID
    recipient: str
    sender: str
    kind: str
    document_id: str | None
    content_type: str
    size_bytes: int
    received_at: datetime


class Store(Protocol):
    """What the exchange path needs from a store."""

    async def accept(self, packet: StoredPacket, entries: list[AuditEntry]) -> None:
        """Keep a new packet, one ``accepted`` delivery per recipient, and the entries."""
        ...

    async def packet(self, packet_id: UUID) -> StoredPacket | None:
        """The packet, or None."""
        ...

    async def deliveries(self, packet_id: UUID) -> list[DeliveryRecord]:
        """The packet's deliveries, in recipient order."""
        ...

    async def update_delivery(
        self,
        packet_id: UUID,
        recipient: str,
        state: DeliveryState,
        *,
        entries: list[AuditEntry],
        detail: str | None = None,
        attempted: bool = False,
    ) -> DeliveryRecord:
        """Move a delivery to ``state`` (counting an attempt when ``attempted``) with its
        entries; raises ``KeyError`` for an unknown delivery."""
        ...

    async def append(self, entries: list[AuditEntry]) -> None:
        """Entries about no stored packet (a rejection at ingest)."""
        ...

    async def outbox_size(self) -> tuple[int, int]:
        """How many packets wait for the bus, and their bytes."""
        ...

    async def history(self, packet_id: UUID) -> list[AuditEntry]:
        """A packet's audit entries, in the order they were appended."""
        ...

    async def close(self) -> None:
        """Finish pending writes and release the store."""
        ...
