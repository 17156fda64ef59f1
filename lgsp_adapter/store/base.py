"""The operations the exchange needs from a store (the records are ``records``).

Every operation that changes state also appends its audit entries, in the same transaction: a
delivery is never recorded without the line that says so, nor the line without the delivery.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, Unpack
from uuid import UUID

from lgsp_adapter.audit import AuditEntry
from lgsp_adapter.audit.store import AuditStore
from lgsp_adapter.registry.agency_list import AgencyListStore
from lgsp_adapter.registry.records import RegistryStore
from lgsp_adapter.store.records import (
    DeadLetter,
    DeadLetterQuery,
    DeliveryRecord,
    DeliveryState,
    InboxItem,
    OutboxItem,
    PacketFacts,
    SentItem,
    Settlement,
    StateChange,
    StoredPacket,
)

CommitObserver = Callable[[Sequence[AuditEntry], float], None]
"""Told of each commit's audit entries and how long the write took."""


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
        """Keep a new packet, one ``accepted`` delivery per recipient, and the entries;
        ``PacketIdTaken`` if a packet has its id already (nothing is written)."""
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
        self, packet_id: UUID, recipient: str, state: DeliveryState, **change: Unpack[StateChange]
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

    async def queued_recipients(self) -> list[str]:
        """Every recipient the embedded bus's queue holds a delivery for."""
        ...

    # -- RabbitMQ's bindings of routes

    async def bindings(self) -> dict[str, list[str]]:
        """The patterns each route's queues were last bound to, by queue key."""
        ...

    async def set_bindings(self, queue_key: str, patterns: list[str] | None) -> None:
        """Record the patterns a route's queues are bound to now (None: the route is gone)."""
        ...

    async def settle(
        self, packet_id: UUID, recipient: str, state: DeliveryState, **change: Unpack[Settlement]
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

    async def sent(self, senders: list[str], *, kind: str | None, limit: int) -> list[SentItem]:
        """The deliveries of the ``limit`` latest packets ``senders`` sent, newest first."""
        ...

    async def acknowledge(
        self, packet_id: UUID, recipient: str, state: DeliveryState, **change: Unpack[StateChange]
    ) -> DeliveryRecord | None:
        """End a held delivery as ``state``; None if it was not held."""
        ...

    async def acknowledge_all(
        self,
        packet_id: UUID,
        entries: dict[str, list[AuditEntry]],
        state: DeliveryState,
        detail: str | None,
    ) -> tuple[list[str], list[str]]:
        """End the held deliveries of the recipients ``entries`` names as ``state``, each
        with its entries, in one transaction; those at ``state`` already are left be. Returns
        the recipients ended otherwise already (then nothing is written) and those ended now."""
        ...

    async def dead_letters(self, **query: Unpack[DeadLetterQuery]) -> list[DeadLetter]:
        """Dead-lettered deliveries, oldest first, after the cursor ``after``."""
        ...

    async def dead_letter(self, packet_id: UUID, recipient: str) -> DeadLetter | None:
        """One delivery, if it is dead-lettered."""
        ...

    async def leave_dead_letters(
        self, packet_id: UUID, recipient: str, state: DeliveryState, entries: list[AuditEntry]
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
