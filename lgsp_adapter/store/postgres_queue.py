"""The embedded bus's queue on PostgreSQL: as ``sqlite_queue``, and leased with
``FOR UPDATE SKIP LOCKED`` so that the replica holding the bus role never waits on a row.
"""

from __future__ import annotations

import json
import time
from typing import Unpack
from uuid import UUID

from lgsp_adapter.audit import AuditEntry
from lgsp_adapter.store.postgres_core import PostgresCore, set_state
from lgsp_adapter.store.records import DeliveryRecord, DeliveryState, Settlement


class PostgresQueue(PostgresCore):
    """The queue's part of ``PostgresStore``."""

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
                await set_state(tx.conn, packet_id, recipient, DeliveryState.PUBLISHED)
                await tx.append(entries)

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

    async def queued_recipients(self) -> list[str]:
        """Every recipient the queue holds a delivery for."""
        rows = await self._pool.fetch("SELECT DISTINCT recipient FROM queue")
        return sorted(row["recipient"] for row in rows)

    async def bindings(self) -> dict[str, list[str]]:
        """The patterns each route's queues were last bound to."""
        rows = await self._pool.fetch("SELECT queue_key, patterns FROM bus_bindings")
        return {row["queue_key"]: json.loads(row["patterns"]) for row in rows}

    async def set_bindings(self, queue_key: str, patterns: list[str] | None) -> None:
        """Record a route's bindings (None: gone)."""
        async with self._write() as tx:
            if patterns is None:
                await tx.conn.execute("DELETE FROM bus_bindings WHERE queue_key = $1", queue_key)
            else:
                await tx.conn.execute(
                    "INSERT INTO bus_bindings VALUES ($1, $2) ON CONFLICT (queue_key)"
                    " DO UPDATE SET patterns = excluded.patterns",
                    queue_key,
                    json.dumps(patterns),
                )

    async def settle(
        self, packet_id: UUID, recipient: str, state: DeliveryState, **change: Unpack[Settlement]
    ) -> DeliveryRecord:
        """The embedded bus's acknowledgement: record the outcome and take the delivery off
        the queue, or put it back due in ``retry_in_s`` seconds."""
        retry_in_s = change.get("retry_in_s")
        async with self._write() as tx:
            record = await set_state(tx.conn, packet_id, recipient, state, change)
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
            await tx.append(change["entries"])
        return record
