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
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, Self
from uuid import UUID

from lgsp_adapter.audit import AuditEntry
from lgsp_adapter.audit.entry import storable
from lgsp_adapter.errors import ErrorCode, FatalError
from lgsp_adapter.store.base import (
    FACT_COLUMNS,
    CommitObserver,
    DeadLetter,
    DeliveryRecord,
    DeliveryState,
    InboxItem,
    OutboxItem,
    PacketFacts,
    PacketIdTaken,
    StoredPacket,
    dead_letter_of,
    delivery_of,
    facts_of,
    inbox_item_of,
    packet_of,
    tell_observers,
)
from lgsp_adapter.store.postgres_agency_list import SCHEMA as AGENCY_LIST_SCHEMA
from lgsp_adapter.store.postgres_agency_list import PostgresAgencyList
from lgsp_adapter.store.postgres_audit import Conn, PostgresAuditLog
from lgsp_adapter.store.postgres_registry import PostgresRegistry
from lgsp_adapter.store.postgres_schema import migrate as migrate_part
from lgsp_adapter.store.postgres_session import OUTBOX_CHANNEL, ReplicaSession

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
]

_DELIVERY = "packet_id, recipient, state, attempts, detail, updated_at"
_PACKET = (
    "id, kind, sender, recipients, document_id, content_type, payload, sha256, client, received_at"
)
_FACTS = ", ".join(FACT_COLUMNS)
_BY_ID = "FROM packets WHERE id = $1"
_INSERT_PACKET = f"INSERT INTO packets ({_PACKET}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
_DEAD_LETTER = (
    "d.seq, p.id, d.recipient, p.sender, p.kind, p.document_id, d.attempts, d.detail,"
    " p.received_at, d.updated_at"
)


class PostgresStore:
    """The ``Store`` on PostgreSQL; ``async with await PostgresStore.open(dsn) as store``."""

    def __init__(self, audit: PostgresAuditLog, dsn: str) -> None:
        self._dsn = dsn
        self._pool = audit.pool
        self.audit = audit
        self.registry = PostgresRegistry(audit)
        self.agency_list = PostgresAgencyList(audit)
        self._observers: list[CommitObserver] = []
        self._session = ReplicaSession(dsn, audit.schema)  # its roles and locks

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

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session (giving up its locks and roles) and the pool."""
        await self._session.close()
        await self.audit.close()

    def observe(self, observer: CommitObserver) -> None:
        """As ``SqliteStore.observe``: told of this replica's commits."""
        self._observers.append(observer)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[_Transaction]:
        """One transaction holding the write lock, told to the observers once committed."""
        began = time.perf_counter()
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", self.audit.append_lock)
                tx = _Transaction(conn, self.audit)
                yield tx
            if tx.appended:
                tell_observers(self._observers, tx.appended, time.perf_counter() - began)

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
        """Keep a new packet, one ``accepted`` delivery per recipient, and the entries."""
        async with self._write() as tx:
            await tx.conn.execute(_INSERT_PACKET, *_packet_row(packet))
            await tx.conn.executemany(
                "INSERT INTO deliveries (packet_id, recipient, state, updated_at)"
                " VALUES ($1, $2, $3, clock_timestamp())",
                [(packet.id, r, DeliveryState.ACCEPTED.value) for r in packet.recipients],
            )
            await tx.conn.execute(f"NOTIFY {OUTBOX_CHANNEL}")
            await tx.append(entries)

    async def packet(self, packet_id: UUID) -> StoredPacket | None:
        """The packet, or None."""
        row = await self._pool.fetchrow(f"SELECT {_FACTS}, payload {_BY_ID}", packet_id)
        return None if row is None else packet_of(row)

    async def facts(self, packet_id: UUID) -> PacketFacts | None:
        """The packet without its bytes, or None."""
        row = await self._pool.fetchrow(f"SELECT {_FACTS} {_BY_ID}", packet_id)
        return None if row is None else facts_of(row)

    async def deliveries(self, packet_id: UUID) -> list[DeliveryRecord]:
        """The packet's deliveries, in recipient order."""
        rows = await self._pool.fetch(
            f"SELECT {_DELIVERY} FROM deliveries WHERE packet_id = $1"
            ' ORDER BY recipient COLLATE "C"',
            packet_id,
        )
        return [delivery_of(row) for row in rows]

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
        """Move a delivery to ``state`` with its entries; ``KeyError`` if there is none."""
        async with self._write() as tx:
            record = await _set_state(tx.conn, packet_id, recipient, state, detail, attempted)
            await tx.append(entries)
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

    async def enqueue(self, packet_id: UUID, recipient: str, entries: list[AuditEntry]) -> None:
        """The embedded bus's publish: queue the delivery and mark it published, together."""
        await self.enqueue_many([(packet_id, recipient, entries)])

    async def enqueue_many(self, items: list[tuple[UUID, str, list[AuditEntry]]]) -> None:
        """Publish several deliveries in one transaction."""
        async with self._write() as tx:
            for packet_id, recipient, entries in items:
                await tx.conn.execute(
                    "INSERT INTO queue (packet_id, recipient, due_at) VALUES ($1, $2, $3)"
                    " ON CONFLICT DO NOTHING",
                    packet_id,
                    recipient,
                    time.time(),
                )
                await _set_state(
                    tx.conn, packet_id, recipient, DeliveryState.PUBLISHED, None, False
                )
                await tx.append(entries)

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
            await tx.conn.execute(f"{_INSERT_PACKET} ON CONFLICT DO NOTHING", *_packet_row(packet))
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

    # -- the embedded bus's queue

    async def lease(
        self, recipients: list[str], *, limit: int, lease_s: float
    ) -> list[tuple[UUID, str]]:
        """Take up to ``limit`` due deliveries to ``recipients`` for ``lease_s`` seconds."""
        now = time.time()
        rows = await self._pool.fetch(
            "UPDATE queue SET leased_until = $1 WHERE (packet_id, recipient) IN"
            " (SELECT packet_id, recipient FROM queue WHERE recipient = ANY($2) AND due_at <= $3"
            " AND (leased_until IS NULL OR leased_until < $3) ORDER BY due_at LIMIT $4"
            " FOR UPDATE SKIP LOCKED) RETURNING packet_id, recipient",
            now + lease_s,
            recipients,
            now,
            limit,
        )
        return [(row[0], row[1]) for row in rows]

    async def release(self, packet_id: UUID, recipient: str, retry_in_s: float) -> None:
        """Give a leased delivery back, due again in ``retry_in_s``."""
        await self._pool.execute(
            "UPDATE queue SET leased_until = NULL, due_at = $1"
            " WHERE packet_id = $2 AND recipient = $3",
            time.time() + retry_in_s,
            packet_id,
            recipient,
        )

    async def release_leases(self) -> int:
        """Make every leased delivery due now (the embedded bus's holder, at its start)."""
        status = await self._pool.execute(
            "UPDATE queue SET leased_until = NULL WHERE leased_until IS NOT NULL"
        )
        return int(status.split()[-1])

    async def next_due_in(self, recipients: list[str]) -> float | None:
        """Seconds until the next delivery to ``recipients`` falls due (0 if one is due)."""
        due = await self._pool.fetchval(
            "SELECT min(greatest(due_at, coalesce(leased_until, 0))) FROM queue"
            " WHERE recipient = ANY($1)",
            recipients,
        )
        return None if due is None else max(0.0, float(due) - time.time())

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
        """The embedded bus's acknowledgement: record the outcome and take the delivery off
        the queue, or put it back due in ``retry_in_s`` seconds."""
        async with self._write() as tx:
            record = await _set_state(tx.conn, packet_id, recipient, state, detail, attempted)
            if retry_in_s is None:
                await tx.conn.execute(
                    "DELETE FROM queue WHERE packet_id = $1 AND recipient = $2",
                    packet_id,
                    recipient,
                )
            else:
                await tx.conn.execute(
                    "UPDATE queue SET due_at = $1, leased_until = NULL"
                    " WHERE packet_id = $2 AND recipient = $3",
                    time.time() + retry_in_s,
                    packet_id,
                    recipient,
                )
            await tx.append(entries)
        return record

    # -- pull inboxes and dead letters

    async def inbox(
        self, recipients: list[str], *, kind: str | None, after: int, limit: int
    ) -> list[InboxItem]:
        """Packets held for ``recipients``' pull inboxes, oldest first, after ``after``."""
        rows = await self._pool.fetch(
            "SELECT d.seq, p.id, d.recipient, p.sender, p.kind, p.document_id, p.content_type,"
            " length(p.payload), p.received_at FROM deliveries d JOIN packets p"
            " ON p.id = d.packet_id WHERE d.state = $1 AND d.recipient = ANY($2)"
            " AND ($3::text IS NULL OR p.kind = $3) AND d.seq > $4 ORDER BY d.seq LIMIT $5",
            DeliveryState.HELD.value,
            recipients,
            kind,
            after,
            limit,
        )
        return [inbox_item_of(row) for row in rows]

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
        rows = await self._pool.fetch(
            f"SELECT {_DEAD_LETTER} FROM deliveries d JOIN packets p ON p.id = d.packet_id"
            " WHERE d.state = $1 AND ($2::text IS NULL OR d.recipient = $2)"
            " AND ($3::text IS NULL OR p.sender = $3) AND ($4::text IS NULL OR p.kind = $4)"
            " AND d.seq > $5 ORDER BY d.seq LIMIT $6",
            DeliveryState.DEAD_LETTERED.value,
            recipient,
            sender,
            kind,
            after,
            limit,
        )
        return [dead_letter_of(row) for row in rows]

    async def dead_letter(self, packet_id: UUID, recipient: str) -> DeadLetter | None:
        """One delivery, if it is dead-lettered."""
        row = await self._pool.fetchrow(
            f"SELECT {_DEAD_LETTER} FROM deliveries d JOIN packets p ON p.id = d.packet_id"
            " WHERE d.state = $1 AND d.packet_id = $2 AND d.recipient = $3",
            DeliveryState.DEAD_LETTERED.value,
            packet_id,
            recipient,
        )
        return None if row is None else dead_letter_of(row)

    async def leave_dead_letters(
        self,
        packet_id: UUID,
        recipient: str,
        state: DeliveryState,
        entries: list[AuditEntry],
    ) -> DeliveryRecord | None:
        """An operator's decision on a dead letter: back to the outbox (attempts from nought)
        or ``dropped``; None if it is not dead-lettered (any more)."""
        replay = state is DeliveryState.ACCEPTED
        async with self._write() as tx:
            row = await tx.conn.fetchrow(
                "UPDATE deliveries SET state = $1, updated_at = clock_timestamp(),"
                " attempts = CASE WHEN $2 THEN 0 ELSE attempts END,"
                " detail = CASE WHEN $2 THEN NULL ELSE detail END"
                f" WHERE packet_id = $3 AND recipient = $4 AND state = $5 RETURNING {_DELIVERY}",
                state.value,
                replay,
                packet_id,
                recipient,
                DeliveryState.DEAD_LETTERED.value,
            )
            if row is None:
                return None
            if replay:
                await tx.conn.execute(f"NOTIFY {OUTBOX_CHANNEL}")
            await tx.append(entries)
        return delivery_of(row)

    async def held(self) -> list[tuple[UUID, str]]:
        """Every delivery waiting in a pull inbox, oldest first."""
        rows = await self._pool.fetch(
            "SELECT packet_id, recipient FROM deliveries WHERE state = $1 ORDER BY seq",
            DeliveryState.HELD.value,
        )
        return [(row[0], row[1]) for row in rows]

    async def acknowledge(
        self,
        packet_id: UUID,
        recipient: str,
        state: DeliveryState,
        *,
        entries: list[AuditEntry],
        detail: str | None,
    ) -> DeliveryRecord | None:
        """End a held delivery as ``state``; None if it was not held (nothing is written)."""
        async with self._write() as tx:
            row = await tx.conn.fetchrow(
                "UPDATE deliveries SET state = $1, detail = $2, updated_at = clock_timestamp(),"
                " attempts = attempts + 1 WHERE packet_id = $3 AND recipient = $4"
                f" AND state = $5 RETURNING {_DELIVERY}",
                state.value,
                _storable(detail),
                packet_id,
                recipient,
                DeliveryState.HELD.value,
            )
            if row is None:
                return None
            await tx.append(entries)
        return delivery_of(row)

    async def append(self, entries: list[AuditEntry]) -> None:
        """Entries about no stored packet (a rejection at ingest, an administrative act)."""
        if not entries:
            return
        async with self._write() as tx:
            await tx.append(entries)

    async def history(self, packet_id: UUID) -> list[AuditEntry]:
        """A packet's audit entries, in the order they were appended."""
        return await self.audit.history(packet_id)


class _Transaction:
    """A write transaction's connection, and the entries it appended (for the observers)."""

    def __init__(self, conn: Conn, audit: PostgresAuditLog) -> None:
        self.conn = conn
        self._audit = audit
        self.appended: list[AuditEntry] = []

    async def append(self, entries: list[AuditEntry]) -> None:
        if entries:
            await self._audit.append_in_transaction(self.conn, entries)
            self.appended.extend(entries)


async def _set_state(
    conn: Conn,
    packet_id: UUID,
    recipient: str,
    state: DeliveryState,
    detail: str | None,
    attempted: bool,
) -> DeliveryRecord:
    """Move a delivery, if ``DeliveryState.may_become`` allows (else leave it as it is)."""
    current = await conn.fetchrow(
        f"SELECT {_DELIVERY} FROM deliveries WHERE packet_id = $1 AND recipient = $2",
        packet_id,
        recipient,
    )
    if current is None:
        raise KeyError(f"no delivery of {packet_id} to {recipient}")
    if not DeliveryState(current[2]).may_become(state):
        return delivery_of(current)
    row = await conn.fetchrow(
        "UPDATE deliveries SET state = $1, detail = $2, updated_at = clock_timestamp(),"
        " attempts = attempts + $3 WHERE packet_id = $4 AND recipient = $5"
        f" RETURNING {_DELIVERY}",
        state.value,
        _storable(detail),
        int(attempted),
        packet_id,
        recipient,
    )
    if row is None:
        raise KeyError(f"no delivery of {packet_id} to {recipient}")
    return delivery_of(row)


def _packet_row(packet: StoredPacket) -> tuple[Any, ...]:
    # Text from the bus's headers is whatever a publisher put there; PostgreSQL refuses NUL
    # (SQLite keeps it), so it is replaced, as in audit entries.
    return (
        packet.id,
        storable(packet.kind),
        storable(packet.sender),
        [storable(code) for code in packet.recipients],
        _storable(packet.document_id),
        storable(packet.content_type),
        packet.payload,
        storable(packet.sha256),
        _storable(packet.client),
        packet.received_at,
    )


def _storable(text: str | None) -> str | None:
    return None if text is None else storable(text)
