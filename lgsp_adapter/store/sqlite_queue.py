"""The embedded bus's queue: deliveries due now or later, leased to the worker posting them.

With no broker (``bus.embedded``) the store is the bus: publishing is an insert, consuming a
lease, and acknowledging the transaction that records the outcome, so a delivery is never both
settled and still queued.
"""

from __future__ import annotations

import json
import time
from typing import Unpack
from uuid import UUID

from lgsp_adapter.audit import AuditEntry
from lgsp_adapter.store.records import DeliveryRecord, DeliveryState, Settlement
from lgsp_adapter.store.sqlite_core import SqliteCore


class SqliteQueue(SqliteCore):
    """The queue's part of ``SqliteStore``."""

    async def enqueue(self, packet_id: UUID, recipient: str, entries: list[AuditEntry]) -> None:
        """The embedded bus's publish: queue the delivery and mark it published, together."""
        await self.enqueue_many([(packet_id, recipient, entries)])

    async def enqueue_many(self, items: list[tuple[UUID, str, list[AuditEntry]]]) -> None:
        """Publish several deliveries in one transaction: one disk flush for the lot."""
        async with self._write():
            for packet_id, recipient, entries in items:
                self._db.execute(
                    "INSERT OR IGNORE INTO queue (packet_id, recipient, due_at) VALUES (?, ?, ?)",
                    (str(packet_id), recipient, time.time()),
                )
                self._set_state(packet_id, recipient, DeliveryState.PUBLISHED)
                self._append(entries)

    async def lease(
        self, recipients: list[str], *, limit: int, lease_s: float
    ) -> list[tuple[UUID, str]]:
        """Take up to ``limit`` due deliveries to ``recipients`` for ``lease_s`` seconds; one
        not settled by then (its worker died) is due again."""
        now = time.time()
        async with self._write():
            rows = self._db.execute(
                "UPDATE queue SET leased_until = ? WHERE rowid IN (SELECT rowid FROM queue"
                " WHERE recipient IN (SELECT value FROM json_each(?)) AND due_at <= ?"
                " AND (leased_until IS NULL OR leased_until < ?) ORDER BY due_at LIMIT ?)"
                " RETURNING packet_id, recipient",
                (now + lease_s, json.dumps(recipients), now, now, limit),
            ).fetchall()
        return [(UUID(row[0]), row[1]) for row in rows]

    async def release(self, packet_id: UUID, recipient: str, retry_in_s: float) -> None:
        """Give a leased delivery back, due again in ``retry_in_s`` (its handling failed)."""
        async with self._write():
            self._db.execute(
                "UPDATE queue SET leased_until = NULL, due_at = ?"
                " WHERE packet_id = ? AND recipient = ?",
                (time.time() + retry_in_s, str(packet_id), recipient),
            )

    async def release_leases(self) -> int:
        """Make every leased delivery due now: at start, no worker can still hold one."""
        async with self._write():
            cursor = self._db.execute(
                "UPDATE queue SET leased_until = NULL WHERE leased_until IS NOT NULL"
            )
        return cursor.rowcount

    async def next_due_in(self, recipients: list[str]) -> float | None:
        """Seconds until the next delivery to ``recipients`` falls due (0 if one is due)."""
        row = self._read.execute(
            "SELECT min(max(due_at, coalesce(leased_until, 0))) FROM queue"
            " WHERE recipient IN (SELECT value FROM json_each(?))",
            (json.dumps(recipients),),
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return max(0.0, float(row[0]) - time.time())

    async def queued_recipients(self) -> list[str]:
        """Every recipient the queue holds a delivery for."""
        rows = self._read.execute("SELECT DISTINCT recipient FROM queue").fetchall()
        return sorted(row[0] for row in rows)

    async def bindings(self) -> dict[str, list[str]]:
        """The patterns each route's queues were last bound to."""
        rows = self._read.execute("SELECT queue_key, patterns FROM bus_bindings").fetchall()
        return {row[0]: json.loads(row[1]) for row in rows}

    async def set_bindings(self, queue_key: str, patterns: list[str] | None) -> None:
        """Record a route's bindings (None: gone)."""
        async with self._write():
            if patterns is None:
                self._db.execute("DELETE FROM bus_bindings WHERE queue_key = ?", (queue_key,))
            else:
                self._db.execute(
                    "INSERT INTO bus_bindings VALUES (?, ?) ON CONFLICT (queue_key)"
                    " DO UPDATE SET patterns = excluded.patterns",
                    (queue_key, json.dumps(patterns)),
                )

    async def settle(
        self, packet_id: UUID, recipient: str, state: DeliveryState, **change: Unpack[Settlement]
    ) -> DeliveryRecord:
        """The embedded bus's acknowledgement: record the outcome and its entries, and take the
        delivery off the queue, or put it back due in ``retry_in_s`` seconds."""
        retry_in_s = change.get("retry_in_s")
        async with self._write():
            record = self._set_state(packet_id, recipient, state, change)
            if retry_in_s is None:
                self._db.execute(
                    "DELETE FROM queue WHERE packet_id = ? AND recipient = ?",
                    (str(packet_id), recipient),
                )
            else:
                self._db.execute(
                    "UPDATE queue SET due_at = ?, leased_until = NULL"
                    " WHERE packet_id = ? AND recipient = ?",
                    (time.time() + retry_in_s, str(packet_id), recipient),
                )
            self._append(change["entries"])
        return record
