"""The records a store keeps and the operations the exchange needs from it.

Every operation that changes state also appends its audit entries, in the same transaction: a
delivery is never recorded without the line that says so, nor the line without the delivery.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lgsp_adapter.audit import AuditEntry, AuditEvent
from lgsp_adapter.audit.store import AuditStore
from lgsp_adapter.errors import ErrorCode, FatalError
from lgsp_adapter.registry.agency_list import AgencyListStore
from lgsp_adapter.registry.records import RegistryStore

log = logging.getLogger(__name__)


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
    """A packet came over the bus with the id of another packet already kept (its digest
    differs): ``receive`` keeps nothing of it. Only a forger makes one; the bus refuses it."""


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


CommitObserver = Callable[[Sequence[AuditEntry], float], None]
"""Told of each commit's audit entries and how long the write took."""


def schema_behind(part: str, version: int, wanted: int) -> FatalError:
    """Why a store told not to migrate (``[store] migrate_on_start = false``) will not open."""
    return FatalError(
        ErrorCode.STORE_UNAVAILABLE,
        f"the {part} schema is at version {version} and this adapter's at {wanted}: run "
        "`lgsp-adapter migrate` ([store] migrate_on_start is false)",
    )


def tell_observers(
    observers: Sequence[CommitObserver], committed: Sequence[AuditEntry], took: float
) -> None:
    """Tell each observer of a commit. Committed is committed: a failing observer (a metric)
    is logged, never turned into an error (intake would answer 500 for a packet it kept)."""
    for observer in observers:
        try:
            observer(committed, took)
        except Exception:
            log.exception("a commit observer failed")


# Rows as both stores select them. The models read either store's column types: text ids and
# ISO times on SQLite, native UUIDs and timestamps on PostgreSQL.
DELIVERY_COLUMNS = ("packet_id", "recipient", "state", "attempts", "detail", "updated_at")
_DEAD_LETTER_FIELDS = (
    "cursor",
    "packet_id",
    "recipient",
    "sender",
    "kind",
    "document_id",
    "attempts",
    "detail",
    "received_at",
    "dead_lettered_at",
)
_INBOX_FIELDS = (
    "cursor",
    "packet_id",
    "recipient",
    "sender",
    "kind",
    "document_id",
    "content_type",
    "size_bytes",
    "received_at",
)


FACT_COLUMNS = (
    "id",
    "kind",
    "sender",
    "recipients",
    "document_id",
    "content_type",
    "sha256",
    "client",
    "received_at",
)
"""A packet's columns but its payload, in the order ``facts_of`` and ``packet_of`` read."""


def facts_of(row: Iterable[Any]) -> PacketFacts:
    """A packet's facts from a row of ``FACT_COLUMNS``."""
    return PacketFacts.model_validate(dict(zip(FACT_COLUMNS, row, strict=True)))


def packet_of(row: Iterable[Any]) -> StoredPacket:
    """A packet from a row of ``FACT_COLUMNS`` and then its payload."""
    *facts, payload = row
    fields = dict(zip(FACT_COLUMNS, facts, strict=True))
    return StoredPacket.model_validate({**fields, "payload": bytes(payload)})


def delivery_of(row: Iterable[Any]) -> DeliveryRecord:
    """A delivery from a row of ``DELIVERY_COLUMNS``."""
    return DeliveryRecord.model_validate(dict(zip(DELIVERY_COLUMNS, row, strict=True)))


def dead_letter_of(row: Iterable[Any]) -> DeadLetter:
    """A dead letter from its listing's row (cursor first, then the packet's and the
    delivery's columns)."""
    return DeadLetter.model_validate(dict(zip(_DEAD_LETTER_FIELDS, row, strict=True)))


def inbox_item_of(row: Iterable[Any]) -> InboxItem:
    """An inbox item from its listing's row (cursor first)."""
    return InboxItem.model_validate(dict(zip(_INBOX_FIELDS, row, strict=True)))


class Store(Protocol):
    """Everything the daemon keeps, on SQLite (one process) or PostgreSQL (replicas).

    Both pass the same contract tests (tests/test_store.py). Every state change appends its
    audit entries in the same transaction."""

    @property
    def audit(self) -> AuditStore:
        """The audit log, in the same database."""
        ...

    @property
    def registry(self) -> RegistryStore:
        """The registry of served endpoints and their tokens."""
        ...

    @property
    def agency_list(self) -> AgencyListStore:
        """The agencies the exchange knows."""
        ...

    def observe(self, observer: CommitObserver) -> None:
        """Call ``observer`` after each commit that appended to the audit log."""
        ...

    async def close(self) -> None:
        """Finish pending writes and release the store."""
        ...

    # -- replicas: trivial on SQLite, where one process owns the store

    def exclusive(self, packet_id: UUID, recipient: str) -> AbstractAsyncContextManager[None]:
        """Hold one delivery against other processes sharing the store."""
        ...

    async def claim_for(self, identity: str) -> None:
        """Refuse a store that belongs to other daemons (``FatalError``)."""
        ...

    async def take_role(self, role: str) -> bool:
        """Whether this process holds ``role`` (relay, checkpoints, embedded bus), taking it
        if no other process does."""
        ...

    async def release_role(self, role: str) -> None:
        """Let another process take ``role`` (this one cannot do its work now)."""
        ...

    async def on_outbox(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` when another process puts a delivery in the outbox."""
        ...

    # -- packets and deliveries

    async def accept(self, packet: StoredPacket, entries: list[AuditEntry]) -> None:
        """Keep a new packet, one ``accepted`` delivery per recipient, and the entries."""
        ...

    async def packet(self, packet_id: UUID) -> StoredPacket | None:
        """The packet, or None."""
        ...

    async def facts(self, packet_id: UUID) -> PacketFacts | None:
        """The packet without its bytes, or None."""
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

    async def outbox(self, limit: int) -> list[OutboxItem]:
        """Deliveries accepted but not yet on the bus, oldest first."""
        ...

    async def outbox_size(self) -> tuple[int, int]:
        """How many packets wait for the bus, and their bytes."""
        ...

    async def delivery_counts(self) -> dict[DeliveryState, int]:
        """How many deliveries are in each state."""
        ...

    async def mark_published(self, items: list[tuple[UUID, str, list[AuditEntry]]]) -> None:
        """Deliveries the bus confirmed, recorded in one transaction."""
        ...

    async def receive(
        self, packet: StoredPacket, recipient: str, entries: list[AuditEntry]
    ) -> bool:
        """Keep a packet that came over the bus, once; False if it was already here.
        ``PacketIdTaken`` if another packet has its id (nothing is written)."""
        ...

    # -- the embedded bus's queue

    async def enqueue(self, packet_id: UUID, recipient: str, entries: list[AuditEntry]) -> None:
        """Queue a delivery and mark it published, together."""
        ...

    async def enqueue_many(self, items: list[tuple[UUID, str, list[AuditEntry]]]) -> None:
        """Queue several deliveries in one transaction."""
        ...

    async def lease(
        self, recipients: list[str], *, limit: int, lease_s: float
    ) -> list[tuple[UUID, str]]:
        """Take up to ``limit`` due deliveries for ``lease_s`` seconds."""
        ...

    async def release(self, packet_id: UUID, recipient: str, retry_in_s: float) -> None:
        """Give a leased delivery back, due again in ``retry_in_s``."""
        ...

    async def release_leases(self) -> int:
        """Make every leased delivery due now."""
        ...

    async def next_due_in(self, recipients: list[str]) -> float | None:
        """Seconds until the next delivery to ``recipients`` falls due."""
        ...

    async def settle(
        self,
        packet_id: UUID,
        recipient: str,
        state: DeliveryState,
        *,
        entries: list[AuditEntry],
        detail: str | None = None,
        attempted: bool = False,
        retry_in_s: float | None = None,
    ) -> DeliveryRecord:
        """Record an outcome and take the delivery off the queue, or put it back."""
        ...

    # -- pull inboxes and dead letters

    async def inbox(
        self, recipients: list[str], *, kind: str | None, after: int, limit: int
    ) -> list[InboxItem]:
        """Packets held for ``recipients``' pull inboxes, oldest first."""
        ...

    async def held(self) -> list[tuple[UUID, str]]:
        """Every delivery waiting in a pull inbox, oldest first."""
        ...

    async def acknowledge(
        self,
        packet_id: UUID,
        recipient: str,
        state: DeliveryState,
        *,
        entries: list[AuditEntry],
        detail: str | None,
    ) -> DeliveryRecord | None:
        """End a held delivery as ``state``; None if it was not held."""
        ...

    async def dead_letters(
        self,
        *,
        recipient: str | None,
        sender: str | None,
        kind: str | None,
        after: int,
        limit: int,
    ) -> list[DeadLetter]:
        """Dead-lettered deliveries, oldest first, after the cursor ``after``."""
        ...

    async def dead_letter(self, packet_id: UUID, recipient: str) -> DeadLetter | None:
        """One delivery, if it is dead-lettered."""
        ...

    async def leave_dead_letters(
        self,
        packet_id: UUID,
        recipient: str,
        state: DeliveryState,
        entries: list[AuditEntry],
    ) -> DeliveryRecord | None:
        """Replay (``accepted``) or drop a dead letter; None if it is not one (any more)."""
        ...

    # -- the audit log

    async def append(self, entries: list[AuditEntry]) -> None:
        """Entries about no stored packet (a rejection at ingest)."""
        ...

    async def history(self, packet_id: UUID) -> list[AuditEntry]:
        """A packet's audit entries, in the order they were appended."""
        ...
