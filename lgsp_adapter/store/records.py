"""The records a store keeps: packets, their deliveries and the states a delivery moves through.

They are pydantic models so that either backend's rows (text and ISO times on SQLite, native
UUIDs and timestamps on PostgreSQL) read into the same values.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import NamedTuple, NotRequired, TypedDict
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lgsp_adapter.audit import AuditEntry, AuditEvent


class PacketFacts(BaseModel):
    """What a packet is and where it goes, without its bytes: enough for a receipt, an audit
    entry or a check, and as cheap to read for a 5 MB document as for a 2 KB one."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    kind: str
    sender: str
    recipients: list[str] = Field(min_length=1)
    document_id: str | None = None
    content_type: str
    sha256: str
    client: str | None = Field(None, description="The client system that submitted it.")
    received_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @field_validator("recipients", mode="before")
    @classmethod
    def _listed(cls, value: object) -> object:
        # SQLite keeps the list as JSON text; PostgreSQL as an array.
        return json.loads(value) if isinstance(value, str) else value


class StoredPacket(PacketFacts):
    """A packet as accepted: its bytes exactly as submitted, and what routing needs."""

    payload: bytes = Field(repr=False)


class PacketIdTaken(Exception):
    """A packet's id is already kept, and nothing of the new one is written. Over the bus
    (``receive``) the other packet's digest differs: only a forger makes one, and the bus
    refuses it. At intake (``accept``) the id was derived from what identifies the packet (an
    axis send's file, an axis' document id), so it is the same packet, kept by a request that
    came at the same time."""


class OutboxItem(NamedTuple):
    """A delivery waiting for the bus, and its packet's size: the relay bounds a batch's
    bytes before it reads any of them."""

    packet_id: UUID
    recipient: str
    size: int


def entry_for(
    packet: PacketFacts,
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

    def may_become(self, state: DeliveryState) -> bool:
        """Whether a delivery here may move to ``state``. A delivered packet stays delivered:
        a late outcome of an older attempt must not reopen it (it would be posted again). No
        ended delivery starts again: a bus redelivery racing a pull inbox's "fail" must not
        put the packet back in the inbox."""
        if self is DeliveryState.DELIVERED:
            return state is self
        return not (self.final and not state.final)


class DeliveryRecord(BaseModel):
    """One packet towards one recipient."""

    model_config = ConfigDict(frozen=True)

    packet_id: UUID
    recipient: str
    state: DeliveryState
    attempts: int = 0  # every attempt made, replays or not: what people and receipts see
    since_replay: int = 0  # those since the last replay: where the retry schedule stands
    replays: int = 0  # how often an operator put it back from the dead letters
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


class SentItem(BaseModel):
    """One delivery of a packet an agency sent, as its system lists what it sent."""

    model_config = ConfigDict(frozen=True)

    packet_id: UUID
    recipient: str
    sender: str
    kind: str
    document_id: str | None
    received_at: datetime
    state: DeliveryState
    updated_at: datetime
    detail: str | None


class StateChange(TypedDict):
    """What a delivery's move to a new state writes beside the state, in the same transaction.

    One definition for the keyword arguments of ``update_delivery``, ``settle`` and
    ``acknowledge``, so the Store and its two backends cannot drift apart on them.
    """

    entries: list[AuditEntry]  # the audit entries that say so
    detail: NotRequired[str | None]  # why, for people: the last error, what the receipt said
    attempted: NotRequired[bool]  # counts as a delivery attempt (default: it does not)
    # The count another daemon kept (a receipt's): the delivery has made at least these in
    # all, replays included.
    attempts: NotRequired[int]


class Settlement(StateChange):
    """A state change that also takes the delivery off the queue, or puts it back."""

    retry_in_s: NotRequired[float | None]  # due again in this many seconds (default: done)


class DeadLetterQuery(TypedDict):
    """Which dead letters to list: each filter None for any, a page of ``limit`` after the
    cursor ``after``. The keyword arguments of ``Store.dead_letters``, declared once."""

    recipient: str | None
    sender: str | None
    kind: str | None
    after: int
    limit: int


def split_acknowledged(
    entries: dict[str, list[AuditEntry]], now_in: dict[str, DeliveryState], state: DeliveryState
) -> tuple[list[str], list[str]]:
    """The recipients ended otherwise than ``state`` (or not found), and those still held."""
    otherwise = [r for r in entries if now_in.get(r) not in (DeliveryState.HELD, state)]
    return otherwise, [r for r in entries if now_in.get(r) is DeliveryState.HELD]
