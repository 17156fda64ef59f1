"""What every part of the PostgreSQL store shares: its pool, and the write transaction that
takes the audit log's lock.

``PostgresStore`` is this core and its parts (``postgres_queue``, ``postgres_held``), as the
embedded store is ``sqlite_core`` and its parts.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from lgsp_adapter.audit import AuditEntry
from lgsp_adapter.audit.entry import storable
from lgsp_adapter.store.base import CommitObserver
from lgsp_adapter.store.closing import ClosedOnExit
from lgsp_adapter.store.postgres_agency_list import PostgresAgencyList
from lgsp_adapter.store.postgres_audit import Conn, PostgresAuditLog
from lgsp_adapter.store.postgres_registry import PostgresRegistry
from lgsp_adapter.store.postgres_session import ReplicaSession
from lgsp_adapter.store.records import DeliveryRecord, DeliveryState, StateChange, StoredPacket
from lgsp_adapter.store.rows import DELIVERY_SQL, FACT_COLUMNS, delivery_of, tell_observers

DELIVERY = DELIVERY_SQL
PACKET = (
    "id, kind, sender, recipients, document_id, content_type, payload, sha256, client, received_at"
)
FACTS = ", ".join(FACT_COLUMNS)
BY_ID = "FROM packets WHERE id = $1"
INSERT_PACKET = f"INSERT INTO packets ({PACKET}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
DEAD_LETTER = (
    "d.seq, p.id, d.recipient, p.sender, p.kind, p.document_id,"
    " d.attempts + d.earlier_attempts, d.detail, p.received_at, d.updated_at"
)


class PostgresCore(ClosedOnExit):
    """The pool, the audit log and registry on it, this replica's session, and the one way to
    write."""

    def __init__(self, audit: PostgresAuditLog, dsn: str) -> None:
        self._dsn = dsn
        self._pool = audit.pool
        self.audit = audit
        self.registry = PostgresRegistry(audit)
        self.agency_list = PostgresAgencyList(audit)
        self._observers: list[CommitObserver] = []
        self._session = ReplicaSession(dsn, audit.schema)  # its roles and locks

    async def close(self) -> None:
        """Close the session (giving up its locks and roles) and the pool."""
        await self._session.close()
        await self.audit.close()

    def observe(self, observer: CommitObserver) -> None:
        """As ``SqliteStore.observe``: told of this replica's commits."""
        self._observers.append(observer)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[Transaction]:
        """One transaction holding the write lock, told to the observers once committed."""
        began = time.perf_counter()
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", self.audit.append_lock)
                tx = Transaction(conn, self.audit)
                yield tx
            if tx.appended:
                tell_observers(self._observers, tx.appended, time.perf_counter() - began)


class Transaction:
    """A write transaction's connection, and the entries it appended (for the observers)."""

    def __init__(self, conn: Conn, audit: PostgresAuditLog) -> None:
        self.conn = conn
        self._audit = audit
        self.appended: list[AuditEntry] = []

    async def append(self, entries: list[AuditEntry]) -> None:
        if entries:
            await self._audit.append_in_transaction(self.conn, entries)
            self.appended.extend(entries)


async def set_state(
    conn: Conn,
    packet_id: UUID,
    recipient: str,
    state: DeliveryState,
    change: StateChange | None = None,
) -> DeliveryRecord:
    """Move a delivery, if ``DeliveryState.may_become`` allows (else leave it as it is), with
    the change's detail and attempt (its entries are the caller's to append)."""
    change = change or {"entries": []}
    current = await conn.fetchrow(
        f"SELECT {DELIVERY} FROM deliveries WHERE packet_id = $1 AND recipient = $2",
        packet_id,
        recipient,
    )
    if current is None:
        raise KeyError(f"no delivery of {packet_id} to {recipient}")
    if not DeliveryState(current[2]).may_become(state):
        return delivery_of(current)
    row = await conn.fetchrow(
        "UPDATE deliveries SET state = $1, detail = $2, updated_at = clock_timestamp(),"
        " attempts = GREATEST(attempts + $3, $6 - earlier_attempts)"
        " WHERE packet_id = $4 AND recipient = $5"
        f" RETURNING {DELIVERY}",
        state.value,
        optional_storable(change.get("detail")),
        int(change.get("attempted", False)),
        packet_id,
        recipient,
        change.get("attempts", 0),
    )
    if row is None:
        raise KeyError(f"no delivery of {packet_id} to {recipient}")
    return delivery_of(row)


def packet_row(packet: StoredPacket) -> tuple[Any, ...]:
    # Text from the bus's headers is whatever a publisher put there; PostgreSQL refuses NUL
    # (SQLite keeps it), so it is replaced, as in audit entries.
    return (
        packet.id,
        storable(packet.kind),
        storable(packet.sender),
        [storable(code) for code in packet.recipients],
        optional_storable(packet.document_id),
        storable(packet.content_type),
        packet.payload,
        storable(packet.sha256),
        optional_storable(packet.client),
        packet.received_at,
    )


def optional_storable(text: str | None) -> str | None:
    return None if text is None else storable(text)
