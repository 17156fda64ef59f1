"""The exchange store on PostgreSQL, for provinces whose daemons run as replicas.

The same records and rules as the embedded store (``sqlite``), so the same contract tests pass
on both. What SQLite gets from being one file owned by one process, replicas get here:

- Every write transaction takes the audit log's advisory lock first, as SQLite's
  ``BEGIN IMMEDIATE`` takes its write lock: writes are serialised across replicas, the audit
  log's leaves stay gapless, and cursors (``seq``) grow in commit order.
- ``exclusive(packet, recipient)``: a session advisory lock, so that two replicas handed copies
  of one delivery (the bus redelivers when a connection drops) never both post it. A replica
  that dies loses its session, and its locks with it, at once.
- ``take_role(name)``: one replica at a time relays the outbox, signs checkpoints, or runs the
  embedded bus; another takes the role over when the holder's session ends.
- ``on_outbox``: a submission taken by one replica wakes the relay of whichever holds the role
  (``NOTIFY``), rather than waiting for its next poll.

One class in four modules, as the embedded store: ``postgres_core``, ``postgres_queue``,
``postgres_held`` and this one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Unpack
from uuid import UUID

from lgsp_adapter.audit import AuditEntry
from lgsp_adapter.errors import ErrorCode, FatalError
from lgsp_adapter.store.postgres_agency_list import SCHEMA as AGENCY_LIST_SCHEMA
from lgsp_adapter.store.postgres_agency_list import VERSION_SCHEMA as AGENCY_VERSION_SCHEMA
from lgsp_adapter.store.postgres_audit import PostgresAuditLog
from lgsp_adapter.store.postgres_core import (
    BY_ID,
    DELIVERY,
    FACTS,
    INSERT_PACKET,
    packet_row,
    set_state,
)
from lgsp_adapter.store.postgres_held import PostgresHeld
from lgsp_adapter.store.postgres_queue import PostgresQueue
from lgsp_adapter.store.postgres_schema import migrate as migrate_part
from lgsp_adapter.store.postgres_session import OUTBOX_CHANNEL
from lgsp_adapter.store.records import (
    DeliveryRecord,
    DeliveryState,
    OutboxItem,
    PacketFacts,
    PacketIdTaken,
    StateChange,
    StoredPacket,
)
from lgsp_adapter.store.rows import delivery_of, facts_of, packet_of

log = logging.getLogger(__name__)


MIGRATIONS = [
    """
    CREATE TABLE packets (
        id UUID PRIMARY KEY,
        kind TEXT NOT NULL,
        sender TEXT NOT NULL,
        recipients TEXT[] NOT NULL,
        document_id TEXT,
        content_type TEXT NOT NULL,
        payload BYTEA NOT NULL,
        sha256 TEXT NOT NULL,
        client TEXT,
        received_at TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE deliveries (
        seq BIGSERIAL UNIQUE,
        packet_id UUID NOT NULL REFERENCES packets (id),
        recipient TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        detail TEXT,
        updated_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (packet_id, recipient)
    );
    CREATE INDEX deliveries_state ON deliveries (state, seq);
    CREATE TABLE queue (
        packet_id UUID NOT NULL,
        recipient TEXT NOT NULL,
        due_at DOUBLE PRECISION NOT NULL,
        leased_until DOUBLE PRECISION,
        PRIMARY KEY (packet_id, recipient),
        FOREIGN KEY (packet_id, recipient) REFERENCES deliveries (packet_id, recipient)
    );
    CREATE INDEX queue_due ON queue (recipient, due_at);
    """
    + AGENCY_LIST_SCHEMA,
    # Which daemon's replicas the database serves (claim_for).
    """
    CREATE TABLE exchange_owner (
        one INT PRIMARY KEY CHECK (one = 1),
        identity TEXT NOT NULL,
        claimed_at TIMESTAMPTZ NOT NULL
    );
    """,
    # A version per change to the agency list, for systems that synchronise it.
    AGENCY_VERSION_SCHEMA,
    # What an agency sent, newest first (the axis' getSentEdocList).
    "CREATE INDEX packets_sender ON packets (sender, received_at);",
    # The patterns each route's queues were last bound to, so that one narrowed or removed
    # is unbound from what it no longer takes.
    "CREATE TABLE bus_bindings (queue_key TEXT PRIMARY KEY, patterns TEXT NOT NULL);",
    # A replay starts a fresh retry budget and keeps the attempts made before it.
    "ALTER TABLE deliveries ADD COLUMN earlier_attempts INTEGER NOT NULL DEFAULT 0,"
    " ADD COLUMN replays INTEGER NOT NULL DEFAULT 0;",
]


class PostgresStore(PostgresQueue, PostgresHeld):
    """The ``Store`` on PostgreSQL; ``async with await PostgresStore.open(dsn) as store``."""

    @classmethod
    async def open(cls, dsn: str, *, pool_size: int = 10, migrate: bool = True) -> PostgresStore:
        """Connect and bring every part's schema up to date (audit log, registry, exchange),
        or, ``migrate`` false, refuse one that is behind."""
        audit = await PostgresAuditLog.open(dsn, pool_size=pool_size, migrate=migrate)
        store = cls(audit, dsn)
        try:
            await store.registry.migrate(migrate)
            await migrate_part(audit.pool, "exchange", MIGRATIONS, audit.schema, apply=migrate)
        except BaseException:
            await audit.close()
            raise
        return store

    # -- coordination between replicas (postgres_session)

    async def claim_for(self, identity: str) -> None:
        """Make this database the store of the daemons that are ``identity`` (their broker
        account and exchange), or refuse if it is another's: daemons serving different
        agencies sharing one would relay each other's packets under the wrong account."""
        owner = await self._pool.fetchval(
            "INSERT INTO exchange_owner (one, identity, claimed_at) VALUES (1, $1, now())"
            " ON CONFLICT (one) DO UPDATE SET one = 1 RETURNING identity",
            identity,
        )
        if owner != identity:
            raise FatalError(
                ErrorCode.CONFIG_INVALID,
                f"this database is the store of the daemons of {owner}, not of {identity}: "
                "replicas of one daemon share a database, other daemons need their own",
            )

    async def on_outbox(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever any replica puts a delivery in the outbox."""
        await self._session.listen(listener)

    async def take_role(self, role: str) -> bool:
        """Whether this replica holds ``role``, taking it if it is free. Held until the
        session ends, so a replica that dies frees its roles for another at once."""
        return await self._session.take_role(role)

    async def release_role(self, role: str) -> None:
        """Let another replica take ``role``."""
        await self._session.release_role(role)

    def exclusive(self, packet_id: UUID, recipient: str) -> AbstractAsyncContextManager[None]:
        """Hold one delivery against every other replica: a copy another replica is handling
        waits here until it is done, and then finds the outcome recorded. Within one process
        the lock is re-entrant (one session): callers serialise their own coroutines."""
        return self._session.exclusive(f"delivery:{packet_id}:{recipient}")

    # -- packets and deliveries

    async def accept(self, packet: StoredPacket, entries: list[AuditEntry]) -> None:
        """Keep a new packet, one ``accepted`` delivery per recipient, and the entries;
        ``PacketIdTaken`` if a packet has its id already (nothing is written). A request
        keeping the same id at the same time is waited for, then this one is refused."""
        async with self._write() as tx:
            status = await tx.conn.execute(
                f"{INSERT_PACKET} ON CONFLICT DO NOTHING", *packet_row(packet)
            )
            if status != "INSERT 0 1":
                raise PacketIdTaken(packet.id)
            await tx.conn.executemany(
                "INSERT INTO deliveries (packet_id, recipient, state, updated_at)"
                " VALUES ($1, $2, $3, clock_timestamp())",
                [(packet.id, r, DeliveryState.ACCEPTED.value) for r in packet.recipients],
            )
            await tx.conn.execute(f"NOTIFY {OUTBOX_CHANNEL}")
            await tx.append(entries)

    async def packet(self, packet_id: UUID) -> StoredPacket | None:
        """The packet, or None."""
        row = await self._pool.fetchrow(f"SELECT {FACTS}, payload {BY_ID}", packet_id)
        return None if row is None else packet_of(row)

    async def facts(self, packet_id: UUID) -> PacketFacts | None:
        """The packet without its bytes, or None."""
        row = await self._pool.fetchrow(f"SELECT {FACTS} {BY_ID}", packet_id)
        return None if row is None else facts_of(row)

    async def deliveries(self, packet_id: UUID) -> list[DeliveryRecord]:
        """The packet's deliveries, in recipient order."""
        rows = await self._pool.fetch(
            f"SELECT {DELIVERY} FROM deliveries WHERE packet_id = $1"
            ' ORDER BY recipient COLLATE "C"',
            packet_id,
        )
        return [delivery_of(row) for row in rows]

    async def update_delivery(
        self, packet_id: UUID, recipient: str, state: DeliveryState, **change: Unpack[StateChange]
    ) -> DeliveryRecord:
        """Move a delivery to ``state`` with its entries; ``KeyError`` if there is none."""
        async with self._write() as tx:
            record = await set_state(tx.conn, packet_id, recipient, state, change)
            await tx.append(change["entries"])
        return record

    async def outbox(self, limit: int) -> list[OutboxItem]:
        """Deliveries accepted but not yet on the bus, oldest first."""
        rows = await self._pool.fetch(
            "SELECT d.packet_id, d.recipient, length(p.payload) FROM deliveries d"
            " JOIN packets p ON p.id = d.packet_id WHERE d.state = $1"
            " ORDER BY d.updated_at, d.seq LIMIT $2",
            DeliveryState.ACCEPTED.value,
            limit,
        )
        return [OutboxItem(row[0], row[1], row[2]) for row in rows]

    async def delivery_counts(self) -> dict[DeliveryState, int]:
        """How many deliveries are in each state (for the metrics)."""
        rows = await self._pool.fetch("SELECT state, count(*) FROM deliveries GROUP BY state")
        return {DeliveryState(row[0]): int(row[1]) for row in rows}

    async def outbox_size(self) -> tuple[int, int]:
        """How many packets wait for the bus, and their bytes (each packet once)."""
        row = await self._pool.fetchrow(
            "SELECT count(*), coalesce(sum(length(payload)), 0) FROM packets WHERE id IN"
            " (SELECT packet_id FROM deliveries WHERE state = $1)",
            DeliveryState.ACCEPTED.value,
        )
        return (int(row[0]), int(row[1])) if row else (0, 0)

    async def mark_published(self, items: list[tuple[UUID, str, list[AuditEntry]]]) -> None:
        """Deliveries the bus confirmed, recorded in one transaction (only from accepted: a
        receipt may already have said how it ended)."""
        async with self._write() as tx:
            for packet_id, recipient, entries in items:
                await tx.conn.execute(
                    "UPDATE deliveries SET state = $1, updated_at = clock_timestamp()"
                    " WHERE packet_id = $2 AND recipient = $3 AND state = $4",
                    DeliveryState.PUBLISHED.value,
                    packet_id,
                    recipient,
                    DeliveryState.ACCEPTED.value,
                )
                await tx.append(entries)

    async def receive(
        self, packet: StoredPacket, recipient: str, entries: list[AuditEntry]
    ) -> bool:
        """Keep a packet that came over the bus for ``recipient``, once: False if it was
        already here (nothing is written), True if new; ``PacketIdTaken`` if another packet
        has its id."""
        async with self._write() as tx:
            await tx.conn.execute(f"{INSERT_PACKET} ON CONFLICT DO NOTHING", *packet_row(packet))
            kept = await tx.conn.fetchval("SELECT sha256 FROM packets WHERE id = $1", packet.id)
            if kept != packet.sha256:
                raise PacketIdTaken(packet.id)
            status = await tx.conn.execute(
                "INSERT INTO deliveries (packet_id, recipient, state, updated_at)"
                " VALUES ($1, $2, $3, clock_timestamp()) ON CONFLICT DO NOTHING",
                packet.id,
                recipient,
                DeliveryState.PUBLISHED.value,
            )
            new = status == "INSERT 0 1"
            if new:
                await tx.append(entries)
        return new

    async def append(self, entries: list[AuditEntry]) -> None:
        """Entries about no stored packet (a rejection at ingest, an administrative act)."""
        if not entries:
            return
        async with self._write() as tx:
            await tx.append(entries)

    async def history(self, packet_id: UUID) -> list[AuditEntry]:
        """A packet's audit entries, in the order they were appended."""
        return await self.audit.history(packet_id)
