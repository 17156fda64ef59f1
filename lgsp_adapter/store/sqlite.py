"""The embedded store: one SQLite file, in WAL mode, each change one durable transaction.

``synchronous=FULL`` makes every commit survive a power cut, which is the promise behind a 202:
an accepted packet is on disk before the sender hears so. One connection writes, in
transactions that concurrent writers share the COMMITs of (``group_commit``); another reads.
The audit log (``sqlite_audit``) shares the connections, and appends inside the same
transactions as the changes it records.

One class in four modules: ``sqlite_core`` (the connections and the write transaction),
``sqlite_queue`` (the embedded bus), ``sqlite_held`` (pull inboxes and dead letters) and
this one (packets, deliveries, opening); the schema is ``sqlite_schema``'s.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Unpack
from uuid import UUID

from lgsp_adapter.audit import AuditEntry
from lgsp_adapter.audit.entry import FIELDS
from lgsp_adapter.errors import ErrorCode, FatalError
from lgsp_adapter.store.group_commit import LOCKED_WAIT_MS, to_the_end
from lgsp_adapter.store.records import (
    DeliveryRecord,
    DeliveryState,
    OutboxItem,
    PacketFacts,
    PacketIdTaken,
    StateChange,
    StoredPacket,
)
from lgsp_adapter.store.rows import DELIVERY_SQL, delivery_of, facts_of, packet_of, schema_behind
from lgsp_adapter.store.sqlite_core import BY_ID, FACTS, PACKET_COLUMNS, fetch, now, packet_row
from lgsp_adapter.store.sqlite_held import SqliteHeld
from lgsp_adapter.store.sqlite_queue import SqliteQueue
from lgsp_adapter.store.sqlite_schema import MIGRATIONS, connect, take_ownership

__all__ = ["MIGRATIONS", "SqliteStore"]


class SqliteStore(SqliteQueue, SqliteHeld):
    """The ``Store`` on one SQLite file; use ``async with SqliteStore.open(path) as store``.

    Statements run on the event loop: a read or an insert takes microseconds, far less than the
    hop to a thread and back that aiosqlite made of each. Writes go through ``GroupCommit``,
    whose COMMIT, the one step that waits on the disk, runs in a thread."""

    @classmethod
    async def open(cls, path: Path, *, owner: bool = False, migrate: bool = True) -> SqliteStore:
        """Open (creating it and its folder if needed) and bring the schema up to date, or
        with ``migrate`` false refuse a schema that is not.

        ``owner``: this process runs the exchange on the store (the daemon), and no other may
        at the same time: two would both deliver what the queue holds."""
        if not migrate and not await asyncio.to_thread(path.exists):
            # Told to leave the schema to `migrate`, it makes no store either (a mistyped
            # path would otherwise become an empty one).
            raise schema_behind("store", 0, len(MIGRATIONS))
        lock_file = None
        connections: list[sqlite3.Connection] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if owner:
                lock_file = take_ownership(path)
            for _ in range(2):  # the writer, then the reader
                connections.append(connect(path))
            store = cls(connections[0], connections[1], lock_file)
            # Migrating may wait for another process's write, and writes a whole schema: in
            # a thread, waited for even if cancelled (closing a connection in use crashes).
            await to_the_end(asyncio.to_thread(store._prepare, migrate))
        except BaseException as exc:
            for connection in connections:
                connection.close()
            if lock_file is not None:
                lock_file.close()  # or another process could never own the store
            if isinstance(exc, OSError | sqlite3.Error):
                raise FatalError(
                    ErrorCode.STORE_UNAVAILABLE, f"cannot open the store {path}: {exc}"
                ) from exc
            raise
        return store

    def _prepare(self, migrate: bool) -> None:
        self._read.execute(f"PRAGMA busy_timeout = {LOCKED_WAIT_MS}")
        self._db.execute(f"PRAGMA busy_timeout = {LOCKED_WAIT_MS}")
        try:
            self._migrate(migrate)
        finally:
            self._db.execute("PRAGMA busy_timeout = 0")  # GroupCommit waits off the loop

    def _migrate(self, migrate: bool) -> None:
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
            self._db.execute(f"PRAGMA {pragma}")
        row = self._db.execute("PRAGMA user_version").fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise FatalError(
                ErrorCode.STORE_UNAVAILABLE,
                f"the store's schema (version {version}) is newer than this adapter knows",
            )
        if version < len(MIGRATIONS) and not migrate:
            raise schema_behind("store", version, len(MIGRATIONS))
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            if isinstance(step, str):
                self._db.executescript(f"BEGIN; {step}; PRAGMA user_version = {number}; COMMIT;")
                continue
            script, mover = step
            self._db.executescript(f"BEGIN IMMEDIATE; {script};")
            try:
                getattr(self, mover)()
                self._db.execute(f"PRAGMA user_version = {number}")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _move_audit_log(self) -> None:
        rows = self._db.execute(
            "SELECT at, event, packet_id, sender, recipient, kind, document_id, payload_sha256,"
            " outcome, detail FROM audit_log ORDER BY seq"
        ).fetchall()
        names = FIELDS[:-1]  # the plain log had no actor
        entries = [AuditEntry.from_fields(dict(zip(names, row, strict=True))) for row in rows]
        self.audit.append_in_transaction(entries)
        self._db.execute("DROP TABLE audit_log")

    # -- one process owns the store: nothing to coordinate with

    @asynccontextmanager
    async def exclusive(self, packet_id: UUID, recipient: str) -> AsyncIterator[None]:
        """Nothing to hold: no other process runs the exchange on this file."""
        yield

    async def claim_for(self, identity: str) -> None:
        """Nothing to claim: the file is this process's (``owner``)."""

    async def take_role(self, role: str) -> bool:
        """Every role is this process's."""
        return True

    async def release_role(self, role: str) -> None:
        """Nobody else could take it."""

    async def on_outbox(self, listener: Callable[[], None]) -> None:
        """Nobody else fills this outbox (the intake wakes the relay itself)."""

    async def accept(self, packet: StoredPacket, entries: list[AuditEntry]) -> None:
        """Keep a new packet, one ``accepted`` delivery per recipient, and the entries;
        ``PacketIdTaken`` if a packet has its id already (nothing is written)."""
        accepted_at = now()
        deliveries = [
            (str(packet.id), recipient, DeliveryState.ACCEPTED.value, accepted_at)
            for recipient in packet.recipients
        ]
        async with self._write():
            try:
                self._db.execute(f"INSERT INTO packets {PACKET_COLUMNS}", packet_row(packet))
            except sqlite3.IntegrityError as exc:  # as PostgreSQL: only a taken id is that
                taken = self._db.execute("SELECT 1 FROM packets WHERE id = ?", (str(packet.id),))
                if taken.fetchone() is None:
                    raise
                raise PacketIdTaken(packet.id) from exc
            self._db.executemany(
                "INSERT INTO deliveries (packet_id, recipient, state, updated_at)"
                " VALUES (?, ?, ?, ?)",
                deliveries,
            )
            self._append(entries)

    async def packet(self, packet_id: UUID) -> StoredPacket | None:
        """The packet, or None."""
        rows = fetch(self._read, f"SELECT {FACTS}, payload {BY_ID}", (str(packet_id),))
        return packet_of(rows[0]) if rows else None

    async def facts(self, packet_id: UUID) -> PacketFacts | None:
        """The packet without its bytes, or None."""
        rows = fetch(self._read, f"SELECT {FACTS} {BY_ID}", (str(packet_id),))
        return facts_of(rows[0]) if rows else None

    async def deliveries(self, packet_id: UUID) -> list[DeliveryRecord]:
        """The packet's deliveries, in recipient order."""
        rows = fetch(
            self._read,
            f"SELECT {DELIVERY_SQL} FROM deliveries WHERE packet_id = ? ORDER BY recipient",
            (str(packet_id),),
        )
        return [delivery_of(row) for row in rows]

    async def update_delivery(
        self, packet_id: UUID, recipient: str, state: DeliveryState, **change: Unpack[StateChange]
    ) -> DeliveryRecord:
        """Move a delivery to ``state`` with its entries; ``KeyError`` if there is none."""
        async with self._write():
            record = self._set_state(packet_id, recipient, state, change)
            self._append(change["entries"])
        return record

    async def outbox(self, limit: int) -> list[OutboxItem]:
        """Deliveries accepted but not yet on the bus, oldest first."""
        rows = fetch(
            self._read,
            # length() of a blob is in its record's header: the payload is not read.
            "SELECT d.packet_id, d.recipient, length(p.payload) FROM deliveries d"
            " JOIN packets p ON p.id = d.packet_id WHERE d.state = ?"
            " ORDER BY d.updated_at, d.rowid LIMIT ?",
            (DeliveryState.ACCEPTED.value, limit),
        )
        return [OutboxItem(UUID(row[0]), row[1], row[2]) for row in rows]

    async def delivery_counts(self) -> dict[DeliveryState, int]:
        """How many deliveries are in each state (for the metrics)."""
        rows = self._read.execute(
            "SELECT state, COUNT(*) FROM deliveries GROUP BY state"
        ).fetchall()
        return {DeliveryState(row[0]): int(row[1]) for row in rows}

    async def outbox_size(self) -> tuple[int, int]:
        """How many packets wait for the bus, and their bytes (each packet once, however many
        of its deliveries wait)."""
        rows = fetch(
            self._read,
            "SELECT COUNT(*), COALESCE(SUM(length(payload)), 0) FROM packets WHERE id IN"
            " (SELECT packet_id FROM deliveries WHERE state = ?)",
            (DeliveryState.ACCEPTED.value,),
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    async def mark_published(self, items: list[tuple[UUID, str, list[AuditEntry]]]) -> None:
        """Deliveries the bus confirmed, recorded in one transaction."""
        async with self._write():
            for packet_id, recipient, entries in items:
                # Only from accepted: a receipt may already have said how it ended.
                self._db.execute(
                    "UPDATE deliveries SET state = ?, updated_at = ?"
                    " WHERE packet_id = ? AND recipient = ? AND state = ?",
                    (
                        DeliveryState.PUBLISHED.value,
                        now(),
                        str(packet_id),
                        recipient,
                        DeliveryState.ACCEPTED.value,
                    ),
                )
                self._append(entries)

    async def receive(
        self, packet: StoredPacket, recipient: str, entries: list[AuditEntry]
    ) -> bool:
        """Keep a packet that came over the bus for ``recipient``, once, with ``entries``:
        False if it was already here (a redelivery: nothing is written), True if new;
        ``PacketIdTaken`` if another packet has its id."""
        async with self._write():
            self._db.execute(f"INSERT OR IGNORE INTO packets {PACKET_COLUMNS}", packet_row(packet))
            kept = self._db.execute(
                "SELECT sha256 FROM packets WHERE id = ?", (str(packet.id),)
            ).fetchone()
            if kept[0] != packet.sha256:
                raise PacketIdTaken(packet.id)
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO deliveries (packet_id, recipient, state, updated_at)"
                " VALUES (?, ?, ?, ?)",
                (str(packet.id), recipient, DeliveryState.PUBLISHED.value, now()),
            )
            new = cursor.rowcount == 1
            if new:
                self._append(entries)
        return new

    async def append(self, entries: list[AuditEntry]) -> None:
        """Entries about no stored packet (a rejection at ingest, an administrative act)."""
        await self.audit.append(entries)

    async def history(self, packet_id: UUID) -> list[AuditEntry]:
        """A packet's audit entries, in the order they were appended."""
        return await self.audit.history(packet_id)
